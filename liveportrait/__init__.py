"""liveportrait: portrait animation with stitching and retargeting control.

Weight-compatible with the released LivePortrait checkpoints.

    from liveportrait import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained()
    pipe("photo.jpg", "driving.mp4").save("animated.mp4")

Names are imported on first use, so ``import liveportrait`` (and ``liveportrait --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "api": ("LivePortraitPipeline", "AnimationOutput", "export_to_video", "export_to_image"),
    "config": ("AnimateConfig", "MotionOptions"),
    "media": ("MotionTemplate", "load_template", "save_template", "read_image"),
    "errors": ("LivePortraitError", "InputError", "NoFaceError", "OutputError", "WeightsError", "UnsafeFileError"),
    "pipeline": ("AnimationResult",),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
