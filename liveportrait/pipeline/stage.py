"""What every stage of the pipeline reads: the options, the networks' runner, the face finder and the
progress wrapper. ``Pipeline`` (core.py) holds them; each stage is a class of methods over them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from ..animator import Animator
    from ..config import AnimateConfig
    from ..face.cropper import Cropper


class Stage:
    config: "AnimateConfig"
    animator: "Animator"
    cropper: "Cropper"
    _progress: Callable[[Iterator, int | None, str], Iterator]
