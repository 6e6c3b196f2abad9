"""The pipeline object: networks, options and face models loaded once, and its stages."""

from __future__ import annotations

import os

from ..animator import Animator
from ..config import AnimateConfig
from ..plan import JobPlan, plan_job
from .driving import DrivingStage
from .output import AnimationResult, write
from .render import FrameStage, render
from .source import SourceCache, SourceStage
from .stage import FaceModels, Progress, StageContext, no_progress


class Pipeline:
    """The stages over one set of networks, options and face models, in the order a job meets them:
    ``driving`` (a driving -> its ``DrivingMotion``), ``source`` (a photo -> its ``SourceFace``s, a source video
    -> its ``SourceVideoMotion``) and ``frames`` (both -> the output frames, lazily); ``write`` (output.py) streams
    the frames into a file. ``run`` below is the whole job."""

    def __init__(self, networks, config: AnimateConfig | None = None, cropper=None,
                 progress: Progress | None = None, source_cache: SourceCache | None = None,
                 faces: FaceModels | None = None):
        """``cropper``: the face finder to use (made when needed), or ``faces``: the face models of another
        pipeline to share; ``source_cache``: photos prepared by other jobs of the same networks."""
        config = config or AnimateConfig()
        if config.backend != "eager" and networks.backend != config.backend:
            from ..speed import accelerate

            networks = accelerate(networks, config.backend, device=config.device, precision=config.precision)
        self.context = StageContext(config, Animator(networks, config.device, config.precision),
                                    faces or FaceModels(cropper), progress or no_progress)
        self.driving = DrivingStage(self.context)
        self.source = SourceStage(self.context, source_cache)
        self.frames = FrameStage(self.context)

    @property
    def config(self) -> AnimateConfig:
        return self.context.config

    @property
    def animator(self) -> Animator:
        return self.context.animator

    @property
    def cropper(self):
        return self.context.faces.cropper


def run(source, driving, output: str | os.PathLike | None, pipeline: Pipeline,
        plan: JobPlan | None = None) -> AnimationResult:
    """Animate ``source`` with ``driving`` (one, or one per face) and write the result atomically.

    The job is checked first (``plan_job``: inputs, options, output location) unless a checked
    ``plan`` is given; a run that fails leaves neither a partial file nor a folder it created."""
    plan = plan or plan_job(source, driving, output, pipeline.config)
    return write(render(plan, pipeline), plan, pipeline.config, pipeline.context.progress)
