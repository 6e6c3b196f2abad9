"""``liveportrait crop SOURCE``: show how faces are found and framed (a debugging aid).

For a picture, every selected face is cropped to 512x512 and written as a PNG, and its box, roll
angle and eye/lip ratios are printed, one line per face; for a video, the tracked crops are
written as an mp4 under a progress bar, and a summary follows (frames, frames with a face, where
the crops went).

Like ``animate``, everything that can be checked cheaply is checked before the face models load:
the source (read with the project's one image / video reader, so the same pixel cap, EXIF
rotation, truncation checks and messages apply) and the output folder (exit 6 when it cannot be
written). A failed run leaves no folder behind that it created.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import crop_box, number


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "crop",
        help="find and frame the faces in a picture or video, write the crops, print boxes and ratios",
        description="Find faces, frame them as the networks expect (512x512), write the crops and "
                    "print each crop box (x0,y0,x1,y1 in the original, before the roll angle), the "
                    "roll, and the eye/lip open ratios. Faces are numbered from left to right.",
    )
    p.add_argument("source", metavar="SOURCE", help="picture or video")
    p.add_argument("-o", "--output-dir", default="outputs/crops", help="where to write crops (default: %(default)s)")
    p.add_argument("--face", default="largest",
                   help="which face: 'largest' (default), 'all', or a number counted from the left (0 = leftmost)")
    p.add_argument("--driving", action="store_true",
                   help="frame as a driving video (scale 2.2, vy -0.1, no roll correction) instead of as a source")
    p.add_argument("--scale", type=number(above=0), default=None,
                   help="crop side over face size (default 2.3 for sources, 2.2 with --driving)")
    p.add_argument("--vy", type=number(), default=None,
                   help="vertical shift as a fraction of the crop side, negative = up "
                        "(default -0.125 for sources, -0.1 with --driving)")
    p.add_argument("--crop-box", type=crop_box, default=None, metavar="x0,y0,x1,y1",
                   help="crop this box instead of looking for a face (pictures only)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def _fmt(values, digits: int = 3) -> str:
    if values is None:
        return "-"
    return "[" + ", ".join(f"{float(v):.{digits}f}" for v in values) + "]"


def _describe(fc) -> str:
    import math

    box = ",".join(f"{v:.1f}" for v in fc.box)
    return (f"box={box} roll={math.degrees(fc.angle):+.1f}deg size={fc.size:.1f} "
            f"eye={_fmt(fc.eye_ratio)} lip={_fmt(fc.lip_ratio)}")


def _face_arg(text: str):
    from ..errors import InputError

    t = text.strip().lower()
    if t in ("largest", "all"):
        return t
    if t.isdigit():
        return int(t)
    raise InputError(f"--face must be 'largest', 'all' or a face number, got {text!r}")


def source_kind(src: Path) -> str:
    """The source's kind, ``"image"`` or ``"video"``, judged by content (then extension), with animate's
    messages for a missing file and for anything else."""
    from ..errors import InputError
    from ..files import check_input_file
    from ..media import is_image, is_video

    if not src.exists():
        raise InputError(f"{src}: no such file")
    if is_video(src):
        kind = "video"
    elif is_image(src):
        kind = "image"
    else:
        raise InputError(f"{src}: not an image or a video")
    check_input_file(src, kind)  # a folder, an empty or an unreadable file: the readers' own words
    return kind


def run(args: argparse.Namespace) -> int:
    from ..errors import InputError
    from ..face.cropper import DRIVING, SOURCE, Framing
    from ..files import check_folder_writable, remove_new_folders_on_error

    # everything cheap first: options, the source, the output folder; the face models load last
    face = _face_arg(args.face)
    src = Path(args.source)
    kind = source_kind(src)
    if kind == "video" and args.crop_box:
        raise InputError("--crop-box applies to pictures only")
    if kind == "video" and face == "all":
        raise InputError("--face all applies to pictures; for a video pick 'largest' or a face number")
    base = DRIVING if args.driving else SOURCE
    framing = Framing(
        scale=args.scale if args.scale is not None else base.scale,
        vx_ratio=0.0,
        vy_ratio=args.vy if args.vy is not None else base.vy_ratio,
        rotate=base.rotate, area=base.area, dsize=base.dsize,
    )
    out_dir = Path(args.output_dir)
    if kind == "video":
        from ..media import VideoReader

        reader = VideoReader(src)  # decodes the first frame: a corrupt or truncated file fails here
        try:
            check_folder_writable(out_dir)
            with remove_new_folders_on_error(out_dir):
                return _run_video(src, reader, out_dir, framing, face, args.quiet)
        finally:
            reader.close()

    from ..media import read_image

    image = read_image(src)
    check_folder_writable(out_dir)
    with remove_new_folders_on_error(out_dir):
        return _run_picture(src, image, out_dir, framing, face, args.crop_box)


def _run_picture(src: Path, image, out_dir: Path, framing, face, box: str | None) -> int:
    from ..errors import NoFaceError
    from ..face import geometry
    from ..face.cropper import Cropper
    from ..files import make_folder
    from ..media import write_image
    from ..provenance import NOT_GENERATED

    cropper = Cropper()
    if box:
        crops = [cropper.crop_from_box(image, geometry.parse_box(box), area=framing.area)]
    else:
        try:
            crops = cropper.crop_image(image, face=face, scale=framing.scale, vx_ratio=0.0,
                                       vy_ratio=framing.vy_ratio, rotate=framing.rotate, area=framing.area)
        except NoFaceError as exc:
            raise NoFaceError(f"{src}: {exc}") from None
    h, w = image.shape[:2]
    print(f"{src}: {w}x{h}, {len(crops)} face(s)")
    make_folder(out_dir)
    for i, fc in enumerate(crops):
        name = out_dir / f"{src.stem}_face{i}.png"
        write_image(name, fc.crop_512, stamp=NOT_GENERATED)  # pixels of the user's own picture
        print(f"face {i}: {_describe(fc)} -> {name}")
    return 0


def _run_video(src: Path, reader, out_dir: Path, framing, face, quiet: bool) -> int:
    from ..errors import NoFaceError
    from ..face.cropper import Cropper, VideoFaceTracker
    from ..files import make_folder
    from ..media import VideoWriter
    from ..provenance import NOT_GENERATED
    from .animate import progress_factory

    info = reader.info
    tracker = VideoFaceTracker(Cropper(), preset=framing, face=face, fps=float(info.fps))
    name = out_dir / f"{src.stem}_crop.mp4"
    progress = progress_factory(quiet)
    frames = progress(reader, info.frame_count, "cropping") if progress else reader
    writer = None
    first = None  # (frame index, crop) where the face was first seen
    index = 0
    try:
        for index, frame in enumerate(frames, 1):
            fc = tracker.update(frame)
            if fc is None:
                continue  # before the face is first seen: nothing to write
            if writer is None:
                make_folder(out_dir)
                writer = VideoWriter(name, info.fps, stamp=NOT_GENERATED)  # frames of the user's video
                first = (index - 1, fc)
            writer.write(fc.crop_512)
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    finally:
        if progress and hasattr(frames, "close"):
            frames.close()
    if writer is None:
        raise NoFaceError(f"{src}: no human face was found in any of its {index} frames")
    writer.close()
    s = tracker.stats
    with_face = s.frames - s.frames_without_face
    print(f"{src}: {s.frames} frames, {with_face} with a face, {s.frames_without_face} without, "
          f"{s.detections} detections, {s.reacquired} re-acquisitions")
    print(f"first face at frame {first[0]}: {_describe(first[1])}")
    print(f"wrote {name} ({writer.frames_written} frames, {float(info.fps):g} fps)")
    return 0
