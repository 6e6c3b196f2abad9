"""The orchestration: read a source and a driving, animate, paste back, write with sound.

Two passes keep memory flat however long the videos are. The stages, in the order a job meets them:

* ``driving.py``: pass 1 of a driving, its motion (a few hundred bytes a frame), which is what smoothing,
  the neutral reference frame and the motion template need;
* ``source.py``: the source prepared once: a photo's faces, or a source video's motion per frame;
* ``render.py``: pass 2, the frames, made lazily one at a time (decode, render, paste back);
* ``output.py``: the frames streamed into a temporary file, renamed only when everything succeeded.

``core.Pipeline`` holds the networks, options and face models (one ``stage.StageContext``) and a stage object of
each: ``pipeline.driving``, ``pipeline.source``, ``pipeline.frames``. ``render`` calls them in order and returns the
lazy ``Rendering``; ``write`` streams it into a file; ``run`` (plan, render, write) is the whole job. The public
entry point is ``liveportrait.LivePortraitPipeline``.
"""

from __future__ import annotations

from ..config import AnimateConfig, FaceChoice  # noqa: F401 - re-exported
from ..plan import STILL_FPS, JobPlan, MediaInput, default_output, output_kind, plan_job  # noqa: F401
from .core import Pipeline, run
from .driving import DrivingMotion, pick_reference_frame
from .frames import FramesInfo, limit_size, open_frames, resize_256, resize_to_limit, side_by_side
from .output import AnimationResult, write
from .render import Rendering, render
from .source import SourceFace

__all__ = ["AnimateConfig", "AnimationResult", "DrivingMotion", "FramesInfo", "Pipeline", "Rendering", "SourceFace",
           "default_output", "limit_size", "open_frames", "output_kind", "pick_reference_frame", "plan_job", "render",
           "resize_256", "resize_to_limit", "run", "side_by_side", "write"]
