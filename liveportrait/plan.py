"""Everything about a job that can be known before a network loads, checked in milliseconds.

``plan_job`` reads headers, not pictures' worth of work: the inputs exist and are what their bytes
say, a template loads safely, the options make sense together, the reference frame is inside the
driving, and the output (and what is written beside it) can be created. A bad job fails here with
one clear line instead of after seconds of model loading and motion extraction. Imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Sequence

from .config import OUTPUT_FORMATS, AnimateConfig
from .errors import InputError

PathLike = str | os.PathLike
STILL_FPS = Fraction(25)  # the rate given to a still result turned into frames (the reference's default)


@dataclass
class DrivingInput:
    """One driving as far as its header tells: kind, frame count (exact for templates, the
    container's estimate for videos), rate and sound. A template is loaded here already."""

    path: Path
    kind: str  # "video", "image" or "template"
    frames: int | None
    fps: Fraction | None
    has_audio: bool = False
    template: object | None = None  # liveportrait.media.MotionTemplate

    @property
    def is_video(self) -> bool:
        """Moves over time: a video, or a template of more than one frame."""
        return self.kind == "video" or (self.kind == "template" and (self.frames or 0) > 1)


@dataclass
class JobPlan:
    """A checked job: what goes in, what comes out and where; what the pipeline needs to start."""

    source: Path
    source_kind: str  # "image" or "video"
    source_info: object | None  # liveportrait.media.VideoInfo of a source video
    drivings: list[DrivingInput]
    output: Path
    output_kind: str  # one of OUTPUT_FORMATS; "png" for a video result is a folder of frames
    image_output: bool  # a still result: one picture
    comparison: Path | None = None
    template: Path | None = None  # where the driving video's motion is saved
    fps: Fraction = STILL_FPS  # the output's rate
    notes: list[str] = field(default_factory=list)

    @property
    def paths_written(self) -> list[Path]:
        return [p for p in (self.output, self.comparison, self.template) if p is not None]


def plan_job(source: PathLike, driving: PathLike | Sequence[PathLike], output: PathLike | None,
             config: AnimateConfig) -> JobPlan:
    """Check a job end to end without running a network; raises InputError/OutputError."""
    from .media import probe
    from .media._files import check_output

    config.check()
    source = Path(source)
    driving_paths = [Path(d) for d in ([driving] if isinstance(driving, (str, os.PathLike)) else driving)]
    if not driving_paths:
        raise InputError("no driving input was given")
    source_kind = _kind(source, "source", ("image", "video"))
    drivings = [_driving(p) for p in driving_paths]
    source_info = probe(source) if source_kind == "video" else None
    if source_kind == "image":
        _check_image(source)

    image_output = source_kind == "image" and not any(d.is_video for d in drivings)
    out = default_output(source, driving_paths[0], Path(output) if output else None, image_output,
                         config.output_format)
    kind = output_kind(out, config.output_format, image_output)
    if kind == "png" and not image_output and out.suffix:
        out = out.with_suffix("")  # a folder of frames
    plan = JobPlan(source, source_kind, source_info, drivings, out, kind, image_output)
    plan.fps = _output_fps(plan, plan.notes)
    _check_reference_frame(drivings, config.reference_frame)
    if config.comparison:
        plan.comparison = out.with_name(out.stem + "_concat" + (out.suffix or ".mp4"))
    main = drivings[0]
    if config.save_template and main.kind == "video":
        plan.template = (out.with_name(out.stem + ".lpt.npz") if out.suffix
                         else out.parent / (out.name + ".lpt.npz"))
    for path in plan.paths_written:
        if path == out and kind == "png" and not image_output:
            _check_frames_folder(path)
        else:
            check_output(path)
    return plan


def _kind(path: Path, what: str, allowed: tuple[str, ...]) -> str:
    """The sniffed kind of an input file, or one clear InputError."""
    from .media import media_kind
    from .media._files import check_input_file

    if not path.exists():
        raise InputError(f"{path}: no such file")
    check_input_file(path, what)
    kind = media_kind(path)
    if kind not in allowed:
        names = {"image": "an image", "video": "a video", "template": "a motion template"}
        raise InputError(f"{path}: not {' or '.join(names[k] for k in allowed)}")
    return kind


def _check_image(path: Path) -> None:
    """Decode the header and the pixels' size: corrupt and oversized pictures fail now."""
    from .media import read_image

    read_image(path)


def _driving(path: Path) -> DrivingInput:
    from .media import load_template, probe

    kind = _kind(path, "driving", ("video", "image", "template"))
    if kind == "template":
        tpl = load_template(path)
        return DrivingInput(path, kind, tpl.n_frames, tpl.fps, template=tpl)
    if kind == "video":
        info = probe(path)
        return DrivingInput(path, kind, info.frame_count, info.fps, info.has_audio)
    _check_image(path)
    return DrivingInput(path, kind, 1, None)


def _output_fps(plan: JobPlan, notes: list[str]) -> Fraction:
    """The source video's rate, else the first moving driving's; a note when drivings disagree."""
    if plan.source_info is not None:
        return plan.source_info.fps
    moving = [d for d in plan.drivings if d.is_video and d.fps]
    if not moving:
        return STILL_FPS
    fps = moving[0].fps
    others = sorted({d.fps for d in moving[1:] if d.fps != fps})
    if others:
        notes.append(f"note: the drivings have different frame rates ({', '.join(f'{float(f):g}' for f in others)}"
                     f" fps besides {float(fps):g}); every face is driven frame by frame and the output plays at "
                     f"{float(fps):g} fps, the first driving's rate")
    return fps


def _check_reference_frame(drivings: list[DrivingInput], choice) -> None:
    if choice == "auto":
        return
    for d in drivings:
        if d.is_video and d.frames and int(choice) >= d.frames:
            count = "" if d.kind == "template" else "about "
            raise InputError(f"--reference-frame {choice} is outside the driving {d.path.name}'s {count}{d.frames} "
                             "frames")


def _check_frames_folder(folder: Path) -> None:
    from .errors import OutputError
    from .media._files import check_folder_writable

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder (a video result as png is a folder of frames)")
    check_folder_writable(folder.parent)


def default_output(source: Path, driving: Path, out: Path | None, image_output: bool, fmt: str | None) -> Path:
    """Where a result goes: ``animations/SOURCE--DRIVING.EXT`` unless told; inside ``out`` when it is a folder."""
    ext = "." + (fmt or ("png" if image_output else "mp4"))
    name = f"{source.stem}--{driving.stem.replace('.lpt', '')}{ext}"
    if out is None:
        return Path("animations") / name
    if out.is_dir() or str(out).endswith(os.sep) or not out.suffix:
        if fmt == "png" and not image_output and not out.is_dir():
            return out  # a PNG sequence folder
        return out / name
    return out


def output_kind(path: Path, fmt: str | None, image_output: bool) -> str:
    """The output format from ``--format`` or the extension; refuses what cannot hold the result."""
    ext = path.suffix.lower().lstrip(".")
    kind = fmt or ext or ("png" if image_output else "mp4")
    kind = {"jpeg": "jpg", "mov": "mp4", "mkv": "mp4", "m4v": "mp4", "webp": "png"}.get(kind, kind)
    if kind not in OUTPUT_FORMATS:
        raise InputError(f"unknown output format {kind!r}; choose one of {', '.join(OUTPUT_FORMATS)}")
    if not image_output and (kind == "jpg" or (fmt is None and ext == "webp")):
        raise InputError(f"a video result cannot be written as .{ext or kind}; use .mp4, .gif or --format png "
                         "(a folder of frames)")
    return kind
