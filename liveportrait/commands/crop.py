"""``liveportrait crop SOURCE``: show how faces are found and framed (a debugging aid).

For a picture, every selected face is cropped to 512x512 and written as a PNG; for a video, the
tracked crops are written as an mp4.  Boxes, roll angles and eye/lip ratios are printed, one line
per face (pictures) or per frame (videos).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from . import crop_box, number

VIDEO_EXTENSIONS = {".mp4", ".mov", ".avi", ".webm", ".mkv", ".m4v"}


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


def read_picture(path: Path):
    """RGB uint8 array, EXIF orientation applied."""
    import numpy as np
    from PIL import Image, ImageOps, UnidentifiedImageError

    from ..errors import InputError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return np.asarray(im.convert("RGB")).copy()
    except (UnidentifiedImageError, OSError, ValueError) as exc:
        raise InputError(f"cannot read the picture {path}: {exc}") from exc


def _face_arg(text: str):
    from ..errors import InputError

    t = text.strip().lower()
    if t in ("largest", "all"):
        return t
    if t.isdigit():
        return int(t)
    raise InputError(f"--face must be 'largest', 'all' or a face number, got {text!r}")


def run(args: argparse.Namespace) -> int:
    import cv2

    from ..errors import InputError, NoFaceError
    from ..face import geometry
    from ..face.cropper import DRIVING, SOURCE, Cropper, Framing

    src = Path(args.source)
    if not src.is_file():
        raise InputError(f"{src} does not exist or is not a file")
    out_dir = Path(args.output_dir)
    face = _face_arg(args.face)
    base = DRIVING if args.driving else SOURCE
    framing = Framing(
        scale=args.scale if args.scale is not None else base.scale,
        vx_ratio=0.0,
        vy_ratio=args.vy if args.vy is not None else base.vy_ratio,
        rotate=base.rotate, area=base.area, dsize=base.dsize,
    )
    cropper = Cropper()

    if src.suffix.lower() in VIDEO_EXTENSIONS:
        if args.crop_box:
            raise InputError("--crop-box applies to pictures only")
        return _run_video(src, out_dir, cropper, framing, face, cv2)

    image = read_picture(src)
    out_dir.mkdir(parents=True, exist_ok=True)
    if args.crop_box:
        crops = [cropper.crop_from_box(image, geometry.parse_box(args.crop_box), area=framing.area)]
    else:
        try:
            crops = cropper.crop_image(image, face=face, scale=framing.scale, vx_ratio=0.0,
                                       vy_ratio=framing.vy_ratio, rotate=framing.rotate, area=framing.area)
        except NoFaceError as exc:
            raise NoFaceError(f"{src}: {exc}") from None
    h, w = image.shape[:2]
    print(f"{src}: {w}x{h}, {len(crops)} face(s)")
    for i, fc in enumerate(crops):
        name = out_dir / f"{src.stem}_face{i}.png"
        cv2.imwrite(str(name), cv2.cvtColor(fc.crop_512, cv2.COLOR_RGB2BGR))
        print(f"face {i}: {_describe(fc)} -> {name}")
    return 0


def _run_video(src: Path, out_dir: Path, cropper, framing, face, cv2) -> int:
    import numpy as np

    from ..errors import InputError, NoFaceError
    from ..face.cropper import VideoFaceTracker

    if face == "all":
        raise InputError("--face all applies to pictures; for a video pick 'largest' or a face number")
    cap = cv2.VideoCapture(str(src))
    if not cap.isOpened():
        raise InputError(f"cannot read the video {src}")
    fps = cap.get(cv2.CAP_PROP_FPS) or 25.0
    tracker = VideoFaceTracker(cropper, preset=framing, face=face, fps=fps)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = out_dir / f"{src.stem}_crop.mp4"
    writer = None
    index = 0
    try:
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            fc = tracker.update(np.ascontiguousarray(frame[:, :, ::-1]))
            if fc is None:
                print(f"frame {index}: no face yet")
            else:
                if writer is None:
                    writer = cv2.VideoWriter(str(name), cv2.VideoWriter_fourcc(*"mp4v"), fps,
                                             (framing.dsize, framing.dsize))
                writer.write(cv2.cvtColor(fc.crop_512, cv2.COLOR_RGB2BGR))
                flag = " (held: no face)" if fc.held else ""
                print(f"frame {index}: {_describe(fc)}{flag}")
            index += 1
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if index == 0:
        raise InputError(f"{src} has no readable frames")
    if writer is None:
        raise NoFaceError(f"{src}: no human face was found in any of its {index} frames")
    s = tracker.stats
    print(f"{src}: {index} frames, {s.frames_without_face} without a face, {s.detections} detections, "
          f"{s.reacquired} re-acquisitions -> {name}")
    return 0
