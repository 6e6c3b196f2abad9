"""Everything about a job that can be known before a network loads, checked in milliseconds.

``plan_job`` reads headers, not pictures' worth of work: the inputs exist and are what their bytes
say, a template loads safely, the options make sense together, the reference frame is inside the
driving, and the output (and what is written beside it) can be created. A bad job fails here with
one clear line instead of after seconds of model loading and motion extraction. Imports no torch.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path

from .config import OUTPUT_FORMATS, AnimateConfig
from .errors import InputError

PathLike = str | os.PathLike
STILL_FPS = Fraction(25)  # the rate given to a still result turned into frames (the reference's default)


@dataclass
class MediaInput:
    """One input as far as its header tells: kind, frame count (exact for templates and frames in
    memory, the container's estimate for videos), rate and sound. A file has a ``path``; pixels
    given in memory are in ``image`` (a still) or ``sequence`` (video frames); a template is loaded."""

    path: Path | None
    kind: str  # "video", "image" or "template"
    frames: int | None
    fps: Fraction | None
    has_audio: bool = False
    template: object | None = None  # liveportrait.media.MotionTemplate
    image: object | None = None  # HxWx3 uint8 RGB
    sequence: object | None = None  # a sequence (re-readable) or an iterator (read once) of frames
    info: object | None = None  # liveportrait.media.VideoInfo of a video file
    size: tuple[int, int] | None = None  # (width, height) of a still or a video's frames, where known
    limit: int | None = None  # a preview's frame limit: only the first frames of a video are read

    def limited(self, limit: int | None) -> "MediaInput":
        """This input cut to its first ``limit`` frames (a template sliced, a video read that far)."""
        if limit is None or not self.is_video:
            return self
        if self.kind == "template":
            template = self.template.slice(0, limit)
            return replace(self, template=template, frames=template.n_frames)
        return replace(self, limit=limit, frames=min(self.frames, limit) if self.frames else limit)

    @property
    def is_video(self) -> bool:
        """Moves over time: a video, or a template of more than one frame."""
        return self.kind == "video" or (self.kind == "template" and (self.frames or 0) > 1)

    @property
    def name(self) -> str:
        """For default output names: the file's stem, or what was given."""
        if self.path is not None:
            return self.path.stem.replace(".lpt", "")
        return {"image": "image", "video": "frames", "template": "motion"}[self.kind]


DrivingInput = MediaInput  # (the name the pipeline used first)


@dataclass(frozen=True)
class VideoFrames:
    """Video frames in memory with their rate, where plain frames are taken at 25 fps: ``frames`` a list or a
    (T, H, W, 3) array (read more than once, as a source video is) or an iterator (read once: a driving);
    ``fps`` is what a face tracker, a motion template and the output's rate then use."""

    frames: object
    fps: float | Fraction

    def __post_init__(self) -> None:
        ok = isinstance(self.fps, (int, float, Fraction)) and not isinstance(self.fps, bool) and 0 < self.fps < 1e4
        if not ok:
            raise InputError(f"frames per second must be a positive number, got {self.fps!r}")


@dataclass
class JobPlan:
    """A checked job: what goes in, what comes out and where; what the pipeline needs to start.
    The output fields are None until ``with_output`` (the Python API saves later, if at all)."""

    src: MediaInput
    drivings: list[MediaInput]
    image_output: bool  # a still result: one picture
    output: Path | None = None
    output_kind: str | None = None  # one of OUTPUT_FORMATS; "png" for a video result is a folder of frames
    comparison: Path | None = None
    template: Path | None = None  # where the driving video's motion is saved
    fps: Fraction = STILL_FPS  # the output's rate
    notes: list[str] = field(default_factory=list)

    def limited(self, limit: int | None) -> "JobPlan":
        """The job cut to its first ``limit`` frames of every video input (a preview)."""
        if limit is None:
            return self
        return replace(self, src=self.src.limited(limit), drivings=[d.limited(limit) for d in self.drivings])

    @property
    def paths_written(self) -> list[Path]:
        return [p for p in (self.output, self.comparison, self.template) if p is not None]

    @property
    def source(self) -> Path | None:
        return self.src.path

    @property
    def source_kind(self) -> str:
        return self.src.kind

    def with_output(self, output: PathLike | None, config: AnimateConfig) -> "JobPlan":
        """This plan with its output decided and checked: format, location, what goes beside it."""
        from .files import check_output

        plan = replace(self, notes=list(self.notes))
        out = default_output(self.src.name, self.drivings[0].name, Path(output) if output else None,
                             self.image_output, config.output_format)
        kind = output_kind(out, config.output_format, self.image_output)
        if kind == "png" and not self.image_output and out.suffix:
            out = out.with_suffix("")  # a folder of frames
        plan.output, plan.output_kind = out.expanduser().absolute(), kind
        out = plan.output
        plan.comparison = out.with_name(out.stem + "_concat" + (out.suffix or ".mp4")) if config.comparison else None
        main = self.drivings[0]
        plan.template = None
        if config.save_template and main.kind == "video":
            plan.template = (out.with_name(out.stem + ".lpt.npz") if out.suffix
                             else out.parent / (out.name + ".lpt.npz"))
        _check_not_an_input(plan)
        for path in plan.paths_written:
            if path == out and kind == "png" and not self.image_output:
                _check_frames_folder(path)
            else:
                check_output(path)
        return plan


def plan_job(source, driving, output: PathLike | None, config: AnimateConfig, *,
             decide_output: bool = True) -> JobPlan:
    """Check a job end to end without running a network; raises InputError/OutputError.

    ``source``: a path, an RGB array or PIL image, or video frames (a sequence, or an (T, H, W, 3)
    array). ``driving``: the same, a motion template, an iterator of frames (read once), or a list
    of those, one per face. With ``decide_output`` off the output is left for ``with_output``.
    """
    config.check()
    drivings_given = _split_drivings(driving)
    if not drivings_given:
        raise InputError("no driving input was given")
    src = as_input(source, "source")
    if src.kind == "template":
        raise InputError("a motion template is a driving, not a source")
    if src.kind == "video" and src.path is None and not _rereadable(src.sequence):
        raise InputError("a source video given as frames must be a sequence (a list or an array), not an "
                         "iterator: it is read twice")
    drivings = [as_input(d, "driving") for d in drivings_given]
    image_output = src.kind == "image" and not any(d.is_video for d in drivings)
    plan = JobPlan(src, drivings, image_output)
    plan.fps = _output_fps(plan, plan.notes)
    _check_reference_frame(drivings, config.reference_frame)
    _check_crop_box(src, config.crop)
    plan = plan.limited(config.max_frames)
    return plan.with_output(output, config) if decide_output else plan


def check_source_face(plan: JobPlan, config: AnimateConfig, cropper=None):
    """A photo source shows the face the job needs, found before any network loads: the face finder takes a
    tenth of a second, loading and warming the networks seconds. Returns the face finder (made here unless
    given) for the pipeline to reuse. Source videos are not checked (a face may enter after the first frame)."""
    if plan.src.kind != "image":
        return cropper
    if plan.src.image is not None:
        image = plan.src.image
    else:
        from .media import read_image

        image = read_image(plan.src.path)
    return check_photo_face(image, config, cropper, str(plan.src.path or "the source"))


def check_photo_face(image, config: AnimateConfig, cropper=None, name: str = "the source"):
    """``check_source_face`` for a photo's pixels (a human face); framed inputs (``crop`` none or a box) and pets
    are not looked at here. Returns the face finder for the pipeline to reuse."""
    if config.crop != "auto" or config.animal:
        # a pet's face finder takes seconds a picture (cascades on turned and widened copies): run twice it would
        # cost more than the load it saves (a tenth of a second now), so the pipeline's own search decides
        return cropper
    from .face.cropper import Cropper
    from .media.image import limit_size

    cropper = cropper or Cropper()
    image = limit_size(image, config.source_max_dim)
    try:
        cropper.crop_image(image, config.face, config.source_scale, config.source_vx, config.source_vy)
    except InputError as exc:
        raise type(exc)(f"{name}: {exc}") from None
    return cropper


def as_input(obj, role: str) -> MediaInput:
    """Any accepted form of a source or driving, checked and described (no network runs)."""
    import numpy as np

    from .media import MotionTemplate

    if isinstance(obj, (str, os.PathLike)):
        path = Path(obj)
        kind = _kind(path, role, ("image", "video") if role == "source" else ("video", "image", "template"))
        if kind == "template":
            from .media import load_template

            tpl = load_template(path)
            return MediaInput(path, kind, tpl.n_frames, tpl.fps, template=tpl)
        if kind == "video":
            from .media import probe

            info = probe(path)
            return MediaInput(path, kind, info.frame_count, info.fps, info.has_audio, info=info,
                              size=(info.width, info.height))
        height, width = _check_image(path).shape[:2]
        return MediaInput(path, kind, 1, None, size=(width, height))
    if isinstance(obj, MotionTemplate):
        return MediaInput(None, "template", obj.n_frames, obj.fps, template=obj)
    if isinstance(obj, VideoFrames):
        media = as_input(obj.frames, role)
        if media.kind != "video":
            raise InputError(f"the {role} frames must be a list, a (T, H, W, 3) array or an iterator of frames")
        return replace(media, fps=Fraction(obj.fps).limit_denominator(1001))
    if type(obj).__module__.startswith("PIL."):
        return _still(_rgb(np.asarray(obj.convert("RGB")), role))
    if isinstance(obj, np.ndarray):
        if obj.ndim == 4:
            return _frames([_rgb(f, role) for f in obj], role)
        return _still(_rgb(obj, role))
    if isinstance(obj, (list, tuple)):
        return _frames([_rgb(np.asarray(f), role) for f in obj], role)
    if hasattr(obj, "__iter__") or hasattr(obj, "__next__"):
        return MediaInput(None, "video", None, None, sequence=iter(obj))
    raise InputError(f"cannot use a {type(obj).__name__} as the {role}: give a path, an RGB array, a PIL image, "
                     "frames" + (" or a motion template" if role == "driving" else ""))


def _still(image) -> MediaInput:
    return MediaInput(None, "image", 1, None, image=image, size=(image.shape[1], image.shape[0]))


def _frames(frames: list, role: str) -> MediaInput:
    if not frames:
        raise InputError(f"the {role} frames are empty")
    return MediaInput(None, "video", len(frames), None, sequence=frames, size=(frames[0].shape[1], frames[0].shape[0]))


def _split_drivings(driving) -> list:
    """One driving, or a list of them (one per face): a list of paths, templates, images or videos
    is several drivings; a list of HxWx3 frames is one video."""
    import numpy as np

    from .media import MotionTemplate

    if not isinstance(driving, (list, tuple)):
        return [driving]

    def whole(d) -> bool:
        return (isinstance(d, (str, os.PathLike, MotionTemplate, VideoFrames, list, tuple))
                or type(d).__module__.startswith("PIL.")
                or (isinstance(d, np.ndarray) and d.ndim == 4))

    return list(driving) if all(whole(d) for d in driving) else [driving]


def _rgb(a, role: str):
    """An HxWx3 uint8 RGB frame (gray and RGBA made RGB), or one clear InputError."""
    import numpy as np

    a = np.asarray(a)
    if a.ndim == 2:
        a = np.repeat(a[:, :, None], 3, axis=2)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise InputError(f"the {role} must be HxWx3 uint8 RGB pixels, got {a.dtype} {a.shape}")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise InputError(f"the {role} is an empty picture ({a.shape[0]}x{a.shape[1]} pixels)")
    return np.ascontiguousarray(a[:, :, :3])


def _rereadable(frames) -> bool:
    return isinstance(frames, (list, tuple))


def _kind(path: Path, what: str, allowed: tuple[str, ...]) -> str:
    """The sniffed kind of an input file, or one clear InputError."""
    from .files import check_input_file
    from .media import media_kind

    if not path.exists():
        raise InputError(f"{path}: no such file")
    check_input_file(path, what)
    kind = media_kind(path)
    if kind not in allowed:
        names = {"image": "an image", "video": "a video", "template": "a motion template"}
        raise InputError(f"{path}: not {' or '.join(names[k] for k in allowed)}")
    return kind


def _check_image(path: Path):
    """Decode the picture: corrupt and oversized pictures fail now. Returns its pixels."""
    from .media import read_image

    return read_image(path)


def _output_fps(plan: JobPlan, notes: list[str]) -> Fraction:
    """The source video's rate, else the first moving driving's; a note when drivings disagree."""
    if plan.src.kind == "video":
        return plan.src.fps or STILL_FPS
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
            # a template's count and frames in memory are exact; a container's unless it only has a duration
            estimated = d.kind == "video" and d.info is not None and not d.info.frame_count_exact
            name = f"the driving {d.path.name}" if d.path is not None else f"the driving {d.kind}"
            raise InputError(f"--reference-frame {choice} is outside {name}, which has "
                             f"{'about ' if estimated else ''}{d.frames} frames (0 to {d.frames - 1})")


def _check_crop_box(src: MediaInput, crop: str) -> None:
    """A crop box must overlap the source picture (a box beside it would silently frame nothing)."""
    if crop in ("auto", "none") or src.size is None:
        return
    from .config import parse_box

    x0, y0, x1, y1 = parse_box(crop)
    width, height = src.size
    if x1 <= 0 or y1 <= 0 or x0 >= width or y0 >= height:
        raise InputError(f"the crop box {crop} lies outside the source picture ({width}x{height} pixels): "
                         "x0,y0,x1,y1 are in the picture's pixels, from its top-left corner")


def _check_not_an_input(plan: JobPlan) -> None:
    """No output may land on an input: writing over the user's photo or driving would destroy it."""
    from .errors import OutputError

    inputs = [m.path for m in (plan.src, *plan.drivings) if m.path is not None]
    for written in plan.paths_written:
        for given in inputs:
            same = written.exists() and os.path.samefile(written, given) if given.exists() else False
            if same or written.resolve() == given.resolve():
                raise OutputError(f"{written}: this output would overwrite the input {given}; choose another -o")


def _check_frames_folder(folder: Path) -> None:
    from .errors import OutputError
    from .files import check_folder_writable

    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder}: exists and is not a folder (a video result as png is a folder of frames)")
    check_folder_writable(folder.parent)


def default_output(source: Path | str, driving: Path | str, out: Path | None, image_output: bool,
                   fmt: str | None) -> Path:
    """Where a result goes: ``animations/SOURCE--DRIVING.EXT`` unless told; inside ``out`` when it is a folder.
    ``source`` and ``driving`` are paths or names."""
    ext = "." + (fmt or ("png" if image_output else "mp4"))
    stem = lambda p: Path(p).stem.replace(".lpt", "") if isinstance(p, Path) else str(p)  # noqa: E731
    name = f"{stem(source)}--{stem(driving)}{ext}"
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
    if image_output and kind in ("mp4", "gif"):
        raise InputError(f"this result is one picture (a photo driven by a photo or a one-frame template): write it "
                         f"as .png or .jpg, not .{kind}")
    if not image_output and (kind == "jpg" or (fmt is None and ext == "webp")):
        raise InputError(f"a video result cannot be written as .{ext or kind}; use .mp4, .gif or --format png "
                         "(a folder of frames)")
    return kind
