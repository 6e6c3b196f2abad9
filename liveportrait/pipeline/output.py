"""Output: a rendering's frames streamed into the file (and the comparison video, and the motion
template), marked by the writers, renamed into place only when everything succeeded."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Iterator

from ..config import AnimateConfig
from ..plan import JobPlan
from ..provenance import Stamp
from .render import Rendering
from .stage import Progress, no_progress


@dataclass
class AnimationResult:
    output: Path
    frames: int
    fps: Fraction
    faces: int
    has_audio: bool
    template: Path | None = None
    comparison: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    still: bool = False  # one picture, not frames

    def summary(self) -> str:
        """'183 frames, 25 fps, with sound, 1 face' for a video; 'still image, 2 faces' for a picture."""
        faces = f"{self.faces} face{'s' if self.faces != 1 else ''}"
        if self.still:
            return f"still image, {faces}"
        sound = "with sound" if self.has_audio else "no sound"
        return f"{self.frames} frame{'s' if self.frames != 1 else ''}, {float(self.fps):g} fps, {sound}, {faces}"


def write(rendering: Rendering, plan: JobPlan, config: AnimateConfig, progress: Progress = no_progress
          ) -> AnimationResult:
    """Stream a rendering into ``plan``'s output (and comparison, and motion template) atomically, encoded and
    stamped as ``config`` says; a failure leaves no partial file and no folder this made."""
    from ..files import remove_new_folders_on_error

    if plan.output is None:
        raise ValueError("the plan has no output: plan_job(..., decide_output=True) or plan.with_output(path)")
    t0 = time.perf_counter()
    with remove_new_folders_on_error(*plan.paths_written):
        result = _write_outputs(rendering, plan, config, progress)
    result.seconds = time.perf_counter() - t0
    return result


def _write_outputs(r: Rendering, plan: JobPlan, cfg: AnimateConfig, progress: Progress) -> AnimationResult:
    from ..media import save_template

    out_path, comparison_path = plan.output, plan.comparison if r.comparison else None
    from ..provenance.c2pa import for_plan  # C2PA Content Credentials, when the config has a certificate

    stamp = Stamp(watermark=cfg.watermark, c2pa=for_plan(cfg, plan))
    if r.still:
        from ..media import write_image

        frame = next(iter(r.frames))
        if r.comparison:
            frame, concat = frame
            if comparison_path is not None:
                write_image(comparison_path, concat, stamp=stamp)  # the writers put the label and the watermark
        write_image(out_path, frame, stamp=stamp)
        result = AnimationResult(out_path, 1, r.fps, r.faces, False, None, comparison_path)
    else:
        written, has_audio = _write_video(out_path, plan.output_kind, r.frames, r.fps, r.total, r.audio, cfg,
                                          progress, stamp, comparison_path, paired=r.comparison)
        result = AnimationResult(out_path, written, r.fps, r.faces, has_audio, None, comparison_path)
    if plan.template is not None and r.template is not None:
        # the driving's motion, reusable without its faces (written only once the output exists)
        result.template = plan.template
        save_template(result.template, r.template)
    result.notes = list(r.notes)
    result.still = r.still
    return result


def _open_writer(path: Path, kind: str, fps: Fraction, audio: Path | None, cfg: AnimateConfig, stamp: Stamp):
    """The writer of one output; it marks every frame and labels the file with ``stamp`` itself."""
    from ..media import GifWriter, PngSequenceWriter, VideoWriter

    if kind == "gif":
        return GifWriter(path, fps, stamp=stamp)
    if kind == "png":
        return PngSequenceWriter(path, stamp=stamp)
    return VideoWriter(path, fps, crf=cfg.crf, audio_from=audio, stamp=stamp)


def _write_video(path: Path, kind: str, frames: Iterator, fps: Fraction, total: int, audio: Path | None,
                 cfg: AnimateConfig, progress: Progress, stamp: Stamp, comparison: Path | None = None,
                 paired: bool = False) -> tuple[int, bool]:
    """Stream frames into the output (and the comparison video); both appear only if all succeeded.
    ``paired``: the frames come as (frame, comparison panel)."""
    writer = _open_writer(path, kind, fps, audio, cfg, stamp)
    side = None
    try:
        if comparison is not None:
            side = _open_writer(comparison, kind if kind != "png" else "mp4", fps, audio, cfg, stamp)
        from ..media.streams import prefetch

        # the networks run one frame ahead in a thread while this one pastes and encodes
        for item in progress(prefetch(frames, depth=2), total, "animating"):
            if paired:
                item, concat = item
                if side is not None:
                    side.write(concat)
            writer.write(item)
        if side is not None:
            side.close()
        writer.close()
    except BaseException:
        writer.abort()
        if side is not None:
            side.abort()
        raise
    return writer.frames_written, bool(getattr(writer, "has_audio", False))
