"""The pipeline object: networks, options and face models loaded once, every stage's methods."""

from __future__ import annotations

import os
from typing import Callable, Iterator

from ..animator import Animator
from ..config import AnimateConfig
from ..plan import JobPlan, plan_job
from .driving import DrivingStage
from .output import AnimationResult, write
from .render import RenderStage, render
from .source import SourceStage


class Pipeline(DrivingStage, SourceStage, RenderStage):
    """Prepare a source once, animate a stream of driving motion. Networks and face models load once."""

    def __init__(self, networks, config: AnimateConfig | None = None, cropper=None,
                 progress: Callable[[Iterator, int | None, str], Iterator] | None = None, source_cache=None,
                 animal_finder=None):
        self.config = config or AnimateConfig()
        self._animal_finder = animal_finder  # a face.animal.AnimalFaceFinder to share, or None (made when needed)
        self.source_cache = source_cache  # a render.SourceCache shared by the jobs of one pipeline, or None
        if self.config.backend != "eager" and networks.backend != self.config.backend:
            from ..speed import accelerate

            networks = accelerate(networks, self.config.backend, device=self.config.device,
                                  precision=self.config.precision)
        self.animator = Animator(networks, self.config.device, self.config.precision)
        self._cropper = cropper
        self._progress = progress or (lambda it, total, desc: it)

    @property
    def cropper(self):
        if self._cropper is None:
            from ..face.cropper import Cropper

            self._cropper = Cropper()
        return self._cropper


def run(source, driving, output: str | os.PathLike | None, pipeline: Pipeline,
        plan: JobPlan | None = None) -> AnimationResult:
    """Animate ``source`` with ``driving`` (one, or one per face) and write the result atomically.

    The job is checked first (``plan_job``: inputs, options, output location) unless a checked
    ``plan`` is given; a run that fails leaves neither a partial file nor a folder it created."""
    plan = plan or plan_job(source, driving, output, pipeline.config)
    return write(render(plan, pipeline), plan, pipeline)
