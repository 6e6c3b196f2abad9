"""liveportrait: portrait animation with stitching and retargeting control.

Weight-compatible with the released LivePortrait checkpoints.

    from liveportrait import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained()
    pipe("photo.jpg", "driving.mp4").save("animated.mp4")

Names are imported on first use, so ``import liveportrait`` (and ``liveportrait --help``) stays fast.
"""

from __future__ import annotations

from ._lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "api": ("LivePortraitPipeline", "AnimationOutput", "export_to_video", "export_to_image"),
    "config": ("AnimateConfig", "MotionOptions"),
    "media": ("MotionTemplate", "load_template", "save_template", "read_image"),
    "errors": ("LivePortraitError", "InputError", "NoFaceError", "OutputError", "WeightsError", "UnsafeFileError"),
    "pipeline": ("AnimationResult",),
    "plan": ("VideoFrames",),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ += ["__version__"]


