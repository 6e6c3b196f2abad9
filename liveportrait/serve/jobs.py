"""One job over the Python API: its options and inputs checked before it is accepted (milliseconds, no
torch), then run on a loaded pipeline with progress, cancellation and a time limit.

The server, batches and Ray actors all go through ``check_job`` and ``run_job``, so a job means the same
thing everywhere: ``options`` are the field names of ``AnimateConfig`` and ``MotionOptions`` (as for
``pipe(source, driving, **options)``), and the result is one file written atomically and marked.
``"animal": true`` makes an animal job: it starts from the reference's animal defaults (as ``animate
--animal``) and runs on a pipeline with the animal weights (``job_variant``).
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..config import AnimateConfig, api_options
from ..errors import InputError

# a job's options: the Python API's keyword arguments (config.py's fields by name) but the C2PA credentials,
# which are the server's (its files), for its documentation
JOB_OPTIONS = tuple(sorted(name for name in api_options(AnimateConfig) if name != "c2pa"))
VARIANTS = ("human", "animal")
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
FINISHED = ("succeeded", "failed", "cancelled")


class JobStopped(Exception):
    """Raised inside a running job when it is cancelled, runs out of time or the worker shuts down; the
    writers delete their partial files on the way out."""

    def __init__(self, reason: str, message: str = ""):
        super().__init__(message or reason)
        self.reason = reason  # "cancelled", "timeout" or "shutdown"


def job_config(options: Any) -> AnimateConfig:
    """The config of a job's ``options`` (a JSON object of config field names), or one InputError.
    ``"animal": true`` starts from the animal defaults (no stitching, no paste-back; the job's own options
    still apply); ``crop`` is "auto", "none" or a box, as "x0,y0,x1,y1" or [x0, y0, x1, y1]."""
    from ..api import make_config

    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise InputError(f"options must be a JSON object of option names and values, got {type(options).__name__}")
    if "motion" in options:
        raise InputError("give motion options by their own names (region, multiplier, relative, ...), not 'motion'")
    options = dict(options)
    if "crop" in options:
        options["crop"] = _crop_option(options["crop"])
    base = AnimateConfig.defaults("animal") if options.get("animal") is True else None
    try:
        return make_config(base, **options)
    except (TypeError, ValueError, AttributeError) as exc:  # a value of the wrong JSON type
        raise InputError(f"bad option value: {exc}") from None


def _crop_option(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, (list, tuple)) and len(value) == 4 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
        return ",".join(f"{v:g}" for v in value)
    raise InputError(f'crop must be "auto", "none" or a box "x0,y0,x1,y1" (or [x0, y0, x1, y1]), got {value!r}')


def job_variant(config: AnimateConfig) -> str:
    """The weights a job needs: "animal" or "human"."""
    return "animal" if config.animal else "human"


def check_job(source: Path, driving: Path, output: Path | None, config: AnimateConfig, folder: Path | None = None):
    """``plan_job`` for a job whose result is one file: ``output``, or ``folder``/result.EXT with the
    extension the result needs. Returns the plan (its ``output`` decided)."""
    from ..plan import plan_job

    plan = plan_job(source, driving, None, config, decide_output=False)
    if config.animal and plan.source_kind != "image":
        from ..config import ANIMAL_PHOTO_ONLY

        raise InputError(ANIMAL_PHOTO_ONLY)
    if not plan.image_output and config.output_format == "png":
        raise InputError("a video result as png is a folder of frames; a job's result is one file: use mp4 or gif")
    if output is None:
        output = folder / ("result." + result_extension(plan.image_output, config))
    return plan.with_output(output, config)


def result_extension(image_output: bool, config: AnimateConfig) -> str:
    return config.output_format or ("png" if image_output else "mp4")


@dataclass
class Progress:
    """The pipeline's progress hook for one job: counts the frames written, reports them (at most
    ``every`` seconds apart) and stops the job when asked or when its ``deadline`` (monotonic) passes."""

    on_update: Callable[[dict], None] | None = None
    deadline: float | None = None
    every: float = 0.2
    frames: int = 0
    total: int | None = None
    stop_reason: str | None = None
    started: float = field(default_factory=time.monotonic)
    _last: float = 0.0

    def stop(self, reason: str) -> None:
        self.stop_reason = reason

    def check(self) -> None:
        if self.stop_reason:
            raise JobStopped(self.stop_reason)
        if self.deadline is not None and time.monotonic() > self.deadline:
            raise JobStopped("timeout", "the job ran past its time limit")

    def __call__(self, iterable, total, desc):
        if desc == "animating":
            self.total = total
        for item in iterable:
            self.check()
            yield item
            if desc == "animating":
                self.frames += 1
                self.report(force=self.frames == total)
        self.check()

    @property
    def state(self) -> dict:
        """frames done, total, fps and ETA so far."""
        elapsed = time.monotonic() - self.started
        fps = self.frames / elapsed if self.frames and elapsed > 0 else None
        left = (self.total - self.frames) / fps if fps and self.total else None
        progress = min(1.0, self.frames / self.total) if self.total else 0.0
        return {"frames_done": self.frames, "frames_total": self.total, "fps": fps, "eta_s": left,
                "progress": progress}

    def report(self, force: bool = False) -> None:
        now = time.monotonic()
        if self.on_update is not None and (force or now - self._last >= self.every):
            self._last = now
            self.on_update(self.state)


def run_job(pipe, plan, config: AnimateConfig, progress: Progress) -> dict:
    """Animate and write a checked job on a loaded ``LivePortraitPipeline`` (of the job's variant); a summary
    of what was written (a pipeline of the other variant refuses the job: ``LivePortraitPipeline.engine``)."""
    progress.check()
    out = pipe.animate_planned(plan, config, progress=progress)
    progress.total = out.frame_count
    progress.report(force=True)
    result = out.save_planned(plan)
    return {"frames": result.frames, "fps": float(result.fps), "has_audio": bool(result.has_audio),
            "faces": result.faces, "still": bool(result.still), "seconds": round(result.seconds, 3),
            "output": str(result.output)}


def stopped_message(exc: JobStopped, timeout: float | None) -> str:
    if exc.reason == "timeout" and timeout:
        return f"the job ran past its time limit of {timeout:g} s"
    return {"cancelled": "cancelled", "shutdown": "the worker shut down"}.get(exc.reason, str(exc))


# the command line's words in messages that reach a job's submitter, as the job's options
_JOB_WORDS = ((re.compile(r"--crop-box x0,y0,x1,y1"), 'the option "crop": "x0,y0,x1,y1"'),
              (re.compile(r"--crop-box"), 'the option "crop"'),
              (re.compile(r"without --animal"), 'without "animal": true'),
              (re.compile(r"add --animal"), 'add "animal": true'))


def job_message(text: str) -> str:
    """A pipeline error as one line for a job: options named as a job gives them, not as command-line flags."""
    text = " ".join(str(text).split())
    for pattern, words in _JOB_WORDS:
        text = pattern.sub(words, text)
    return text
