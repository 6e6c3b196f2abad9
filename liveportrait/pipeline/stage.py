"""What every stage of the pipeline reads: the options, the networks' runner, the face finders and the progress
wrapper, held in one ``StageContext`` that ``Pipeline`` (core.py) makes and gives to each stage object."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterator

if TYPE_CHECKING:
    from ..animator import Animator
    from ..config import AnimateConfig
    from ..face.animal import AnimalFaceFinder
    from ..face.cropper import Cropper

Progress = Callable[[Iterator, "int | None", str], Iterator]


def no_progress(iterable: Iterator, total: int | None, description: str) -> Iterator:
    return iterable


class FaceModels:
    """The face finders the stages share, each made on first use (MediaPipe's models take a second to load,
    the animal finder more, and a job with --crop none or a motion template needs neither)."""

    def __init__(self, cropper: "Cropper | None" = None, animal_finder: "AnimalFaceFinder | None" = None):
        self._cropper, self._animal_finder = cropper, animal_finder

    @property
    def cropper(self) -> "Cropper":
        if self._cropper is None:
            from ..face.cropper import Cropper

            self._cropper = Cropper()
        return self._cropper

    @property
    def animal_finder(self) -> "AnimalFaceFinder":
        """The cat and dog face finder; it skips the human faces that ``cropper`` finds."""
        if self._animal_finder is None:
            from ..face.animal import AnimalFaceFinder

            self._animal_finder = AnimalFaceFinder(human=self.cropper)
        return self._animal_finder


@dataclass
class StageContext:
    config: "AnimateConfig"
    animator: "Animator"
    faces: FaceModels
    progress: Progress = no_progress


class Stage:
    """One stage of the pipeline: methods over a ``StageContext`` (the same one for every stage of a pipeline)."""

    def __init__(self, context: StageContext):
        self.context = context

    @property
    def config(self) -> "AnimateConfig":
        return self.context.config

    @property
    def animator(self) -> "Animator":
        return self.context.animator

    @property
    def cropper(self) -> "Cropper":
        return self.context.faces.cropper

    def progress(self, iterable: Iterator, total: int | None, description: str) -> Iterator:
        return self.context.progress(iterable, total, description)
