"""One way to make a live engine from a photo, for ``liveportrait live`` and the web app's Live tab alike."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from .engine import LiveEngine


@dataclass
class LivePortrait:
    """A photo prepared for live driving: its face's source state and how to paste a result back."""

    image: np.ndarray  # the photo as animated (limited in size)
    anim: object  # the Animator
    src: object  # PreparedSource
    options: object  # MotionOptions
    paste: Callable | None  # PasteBack, None for a framed face or paste-back off
    cropper: object  # the face finder, reused to track the driving face

    @property
    def output_size(self) -> tuple[int, int]:
        """(width, height) of the frames the engine makes: the photo's with paste-back, else 512 square."""
        if self.paste is None:
            return 512, 512
        h, w = self.image.shape[:2]
        return w, h


def live_config(crop: bool = True, paste_back: bool = True, stitching: bool = True, relative: bool = True):
    """The animate configuration a live photo is prepared with (one framing rule, one paste-back)."""
    from ..config import AnimateConfig
    from ..motion.compose import MotionOptions

    return AnimateConfig.defaults().but(crop="auto" if crop else "none", paste_back=paste_back,
                                        motion=MotionOptions(stitching=stitching, relative=relative))


def prepare_portrait(pipe, image: np.ndarray, config) -> LivePortrait:
    """The photo's face prepared by ``pipe`` (a ``LivePortraitPipeline``) as ``animate`` prepares a photo.

    A photo without a face raises ``NoFaceError`` here, before any camera frame is taken."""
    from ..media.image import limit_size

    image = limit_size(image, config.source_max_dim)
    stages = pipe.engine(config)
    face = stages.source.prepare_image(image)[0]
    return LivePortrait(image, stages.animator, face.prepared, config.motion, face.paste, pipe.cropper)


def driving_cropper(cropper, mode: str = "auto", fps: float = 25.0) -> Callable | None:
    """``crop_driving`` for :class:`LiveEngine`: track the driving face (``auto``: unless frames are square)."""
    if mode == "never":
        return None
    from ..pipeline import resize_256

    tracker = None

    def crop_driving(frame):
        nonlocal tracker
        h, w = frame.shape[:2]
        if mode == "auto" and h == w:
            return resize_256(frame), None, None
        if tracker is None:
            from ..face.cropper import VideoFaceTracker

            tracker = VideoFaceTracker(cropper, preset="driving", fps=fps)
        fc = tracker.update(frame)
        return None if fc is None else (fc.crop_256, fc.eye_ratio, fc.lip_ratio)

    return crop_driving


def make_engine(portrait: LivePortrait, crop_driving: str = "auto", fps: float = 25.0, smoothing: float = 1.0,
                delay_s: float = 0.0, mark: Callable | None = None) -> LiveEngine:
    """The live engine of a prepared photo (paste-back when the photo was prepared with it)."""
    image, paste = portrait.image, portrait.paste
    compose = (lambda out: paste(out, image)) if paste is not None else None
    return LiveEngine(portrait.anim, portrait.src, portrait.options,
                      crop_driving=driving_cropper(portrait.cropper, crop_driving, fps), compose=compose,
                      smoothing=smoothing, delay_s=delay_s, mark=mark)
