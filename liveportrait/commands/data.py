"""``liveportrait data``: prepare training clips from portrait videos, and summarise them."""

from __future__ import annotations

import argparse

from . import HelpFormatter


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "data", help="prepare training data (face clips) from a folder of videos",
        description="Turn portrait videos into training clips: at most --max-seconds long, exactly one face "
                    "throughout, low-quality clips dropped, faces cropped, with a manifest. Re-running skips "
                    "the videos already done.")
    sub = p.add_subparsers(dest="data_command", metavar="ACTION")
    q = sub.add_parser("prepare", help="cut, filter and crop videos into OUT_DIR",
                       formatter_class=HelpFormatter,
                       description="Videos in sub-folders of INPUT_DIR get the sub-folder's name as identity.")
    q.add_argument("input_dir", metavar="INPUT_DIR", help="folder of videos (searched recursively)")
    q.add_argument("-o", "--output", required=True, metavar="OUT_DIR", help="where clips and manifest go")
    q.add_argument("--max-seconds", type=float, default=30.0, help="longest clip")
    q.add_argument("--min-seconds", type=float, default=2.0, help="shortest clip kept")
    q.add_argument("--frame-step", type=int, default=1, help="keep every N-th frame")
    q.add_argument("--size", type=int, default=512, help="side of the stored face crops")
    q.add_argument("--framing", choices=("driving", "source"), default="driving",
                   help="crop framing: driving (scale 2.2, upright) or source (scale 2.3, roll-corrected)")
    q.add_argument("--crop-mode", choices=("clip", "frame"), default="clip",
                   help="clip: one crop box per clip (head motion kept); frame: a box per frame")
    q.add_argument("--check-every", type=int, default=1,
                   help="count the faces with a full detection every N kept frames (tracking in between)")
    q.add_argument("--identity", choices=("folder", "none"), default="folder",
                   help="folder: INPUT_DIR/<identity>/video.mp4; none: no identities")
    q.add_argument("--scorer", metavar="MODULE:NAME", help="a custom quality scorer (see liveportrait.train.quality)")
    q.add_argument("--min-sharpness", type=float, default=15.0, help="variance of the Laplacian of the face crop")
    q.add_argument("--min-brightness", type=float, default=40.0, help="darkest mean level of the face crop (0-255)")
    q.add_argument("--max-brightness", type=float, default=220.0,
                   help="brightest mean level of the face crop (0-255)")
    q.add_argument("--max-clipped", type=float, default=0.25, help="fraction of under/over-exposed pixels")
    q.add_argument("--min-resolution", type=int, default=256, help="shorter side of the video")
    q.add_argument("--min-face-size", type=float, default=96.0, help="face size in pixels of the video")
    q.add_argument("-q", "--quiet", action="store_true", help="only the final report")
    q.set_defaults(func=run_prepare)
    s = sub.add_parser("stats", help="counts per identity of a prepared folder")
    s.add_argument("root", metavar="OUT_DIR", help="a folder written by 'liveportrait data prepare'")
    s.set_defaults(func=run_stats)
    p.set_defaults(func=lambda args: (p.print_help(), 0)[1])


def options_from_args(args: argparse.Namespace):
    from ..train.data import PrepareOptions
    from ..train.quality import QualityThresholds

    return PrepareOptions(
        max_seconds=args.max_seconds, min_seconds=args.min_seconds, frame_step=args.frame_step, size=args.size,
        framing=args.framing, crop_mode=args.crop_mode, check_every=args.check_every, identity=args.identity,
        scorer=args.scorer,
        thresholds=QualityThresholds(min_sharpness=args.min_sharpness, min_brightness=args.min_brightness,
                                     max_brightness=args.max_brightness, max_clipped=args.max_clipped,
                                     min_resolution=args.min_resolution, min_face_size=args.min_face_size))


def run_prepare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..train.data import format_report, prepare, write_summary

    prepare(args.input_dir, args.output, options_from_args(args), log=None if args.quiet else print)
    print(format_report(write_summary(Path(args.output))))
    return 0


def run_stats(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ..errors import InputError
    from ..train.data import MANIFEST, format_report, write_summary

    root = Path(args.root)
    if not (root / MANIFEST).is_file():
        raise InputError(f"{root} has no {MANIFEST}: not a prepared folder")
    print(format_report(write_summary(root)))
    return 0
