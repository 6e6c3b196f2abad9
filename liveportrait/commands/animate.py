"""``liveportrait animate``: the main job."""

from __future__ import annotations

import argparse
import sys
import time

from ..config import CRF, SOURCE_MAX_DIM, SOURCE_SCALE, SOURCE_VIDEO_MAX_DIM, SOURCE_VIDEO_SMOOTH, SOURCE_VY
from . import HelpFormatter, add_compute_arguments, crop_box, number


def _face(value: str):
    if value in ("largest", "all"):
        return value
    try:
        return int(value)
    except ValueError:
        raise argparse.ArgumentTypeError("takes largest, all or a face number (0 = leftmost)") from None


def _reference(value: str):
    if value == "auto":
        return value
    try:
        frame = int(value)
    except ValueError:
        frame = -1
    if frame < 0:
        raise argparse.ArgumentTypeError("takes a frame number (0 is the first) or auto")
    return frame


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "animate", help="animate a photo or video with a driving video, image or motion template",
        description="Animate the face(s) of SOURCE with the motion of DRIVING and paste the result back into "
                    "the original picture, with the driving's sound.",
        formatter_class=HelpFormatter)
    io = p.add_argument_group("input and output")
    io.add_argument("-s", "--source", required=True, help="photo (jpg, png, webp...) or video of a face")
    io.add_argument("-d", "--driving", action="append",
                    help="driving video, image, motion template (.pkl, .lpt.npz) or speech (wav, mp3...: any audio "
                         "PyAV reads); repeat it to give each face "
                         "of --face all its own driving")
    io.add_argument("-o", "--output", help="output file, or a folder (default: animations/SOURCE--DRIVING.mp4)")
    io.add_argument("--format", choices=("mp4", "gif", "png", "jpg"), help="output format (default: from -o, "
                    "else mp4 for videos and png for a single image; png with a video gives a folder of frames)")
    io.add_argument("--crf", type=number(int, 0, 51), default=CRF,
                    help="H.264 quality: lower is better, 18 is visually lossless")
    io.add_argument("--audio-from", choices=("driving", "source"), default="driving",
                    help="which input's sound goes into the output (falls back to the other)")
    io.add_argument("--comparison", action="store_true",
                    help="also write OUTPUT_concat with driving | source | result side by side")
    io.add_argument("--max-frames", type=number(int, 1), default=None, metavar="N",
                    help="only the first N frames of a video driving or source: a quick preview of a long job "
                         "(--max-seconds S does the same in seconds)")
    io.add_argument("--no-template", action="store_true",
                    help="do not save the driving video's motion as a template next to the output")
    io.add_argument("--no-watermark", action="store_true",
                    help="leave out the invisible watermark (the 'AI-generated' metadata label stays)")
    from . import add_c2pa_arguments

    add_c2pa_arguments(p)  # --c2pa-cert, --c2pa-key, --c2pa-tsa (content credentials)

    motion = p.add_argument_group("motion")
    motion.add_argument("--absolute", action="store_true",
                        help="copy the driving's pose and expression as they are instead of its motion "
                             "relative to the reference frame")
    motion.add_argument("--animation-region", choices=("all", "exp", "pose", "lip", "eyes"), default="all",
                        help="what the driving moves: all, exp (expression only), pose (head only), lip or eyes")
    motion.add_argument("--driving-option", choices=("expression-friendly", "pose-friendly"),
                        default="expression-friendly",
                        help="expression-friendly scales a driving video's motion to the source's face size; "
                             "pose-friendly takes it as it is")
    motion.add_argument("--driving-multiplier", type=number(low=0), default=1.0,
                        help="scale of the motion (larger exaggerates)")
    motion.add_argument("--reference-frame", type=_reference, default=0, metavar="N|auto",
                        help="driving frame taken as neutral; auto picks the frame with eyes open and mouth closed")
    motion.add_argument("--smooth", type=number(low=0), default=0.0, metavar="VARIANCE",
                        help="temporal smoothing of the driving motion for photo sources (Kalman observation "
                             "variance; try 1e-6; 0 is off)")
    motion.add_argument("--source-video-smooth", type=number(low=0), default=SOURCE_VIDEO_SMOOTH, metavar="VARIANCE",
                        help="smoothing of the motion for video sources")
    motion.add_argument("--no-stitching", action="store_true", help="turn off the stitching network")
    motion.add_argument("--eye-retargeting", action="store_true", help="drive the eyes by the driving's eye ratio")
    motion.add_argument("--lip-retargeting", action="store_true", help="drive the lips by the driving's lip ratio")
    motion.add_argument("--normalize-lip", action="store_true", help="close the source's mouth before animating")
    motion.add_argument("--source-video-eye-retargeting", action="store_true",
                        help="keep the source video's eyes as open as in its first frame")

    framing = p.add_argument_group("framing")
    framing.add_argument("--animal", action="store_true",
                         help="the source photo is a cat or dog: the animal weights and face finder, the reference's "
                              "animal defaults (no stitching, no paste-back); the driving is a human face as usual")
    framing.add_argument("--face", type=_face, default="largest", metavar="largest|all|N",
                         help="which face to animate: the largest, every one (photos and videos; for a video, the "
                              "faces of its first frame), or number N counted from the left, starting at 0")
    framing.add_argument("--no-crop", action="store_true", help="the source is already a framed face")
    framing.add_argument("--crop-box", type=crop_box, metavar="x0,y0,x1,y1",
                         help="frame this box instead of detecting a face")
    framing.add_argument("--scale", type=number(above=0), default=SOURCE_SCALE,
                         help="source crop scale (larger: more around the face)")
    framing.add_argument("--vx", type=number(), default=0.0, help="source crop horizontal shift")
    framing.add_argument("--vy", type=number(), default=SOURCE_VY, help="source crop vertical shift (negative: up)")
    framing.add_argument("--crop-driving", choices=("auto", "always", "never"), default="auto",
                         help="crop the driving video's face (auto: only when the video is not square)")
    framing.add_argument("--no-paste-back", action="store_true", help="output the animated crop only")
    framing.add_argument("--max-dim", type=number(int, 0), default=None,
                         help=f"longest side of the source kept for output (default: {SOURCE_MAX_DIM} for a photo, "
                              f"{SOURCE_VIDEO_MAX_DIM} for a video as the reference; 0: no limit)")

    compute = p.add_argument_group("compute")
    add_compute_arguments(compute)
    compute.add_argument("--batch-size", type=number(int, 1), default=1, help="driving frames rendered at once")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bars")
    from .speech import add_audio_arguments  # imports no torch: --help stays fast

    add_audio_arguments(p)
    p.set_defaults(func=run)


def progress_factory(quiet: bool):
    if quiet:
        return None
    from tqdm import tqdm

    def progress(it, total, desc):
        return tqdm(it, total=total, desc=desc, unit="frame", dynamic_ncols=True, leave=False)

    return progress


def config_from_args(args: argparse.Namespace, device: str = "auto"):
    """The one config object from the command line; with ``device`` "auto" the compute fields stay
    unresolved (enough to check the job before torch is imported)."""
    from ..config import AnimateConfig, MotionOptions
    from ..errors import InputError

    if args.no_crop and args.crop_box:
        raise InputError("--no-crop and --crop-box cannot be used together")
    precision, backend = args.precision, args.backend
    if device != "auto":
        from ..speed import pick_backend
        from ..speed.compute import resolve_precision

        precision = resolve_precision(precision, device)
        backend = pick_backend(backend, device, precision)
    motion = MotionOptions(
        relative=not args.absolute, region=args.animation_region, driving_option=args.driving_option,
        multiplier=args.driving_multiplier, stitching=not args.no_stitching, eye_retargeting=args.eye_retargeting,
        lip_retargeting=args.lip_retargeting, normalize_lip=args.normalize_lip,
        source_video_eye_retargeting=args.source_video_eye_retargeting)
    config = AnimateConfig(
        motion=motion, crop="none" if args.no_crop else (args.crop_box or "auto"), face=args.face,
        source_scale=args.scale, source_vx=args.vx, source_vy=args.vy, crop_driving=args.crop_driving,
        paste_back=not args.no_paste_back, source_max_dim=SOURCE_MAX_DIM if args.max_dim is None else args.max_dim,
        source_video_max_dim=SOURCE_VIDEO_MAX_DIM if args.max_dim is None else args.max_dim,
        reference_frame=args.reference_frame,
        smooth=args.smooth, source_video_smooth=args.source_video_smooth, output_format=args.format,
        crf=args.crf, audio_from=args.audio_from, max_frames=args.max_frames, comparison=args.comparison,
        save_template=not args.no_template,
        watermark=not args.no_watermark, device=device, precision=precision, batch_size=args.batch_size,
        backend=backend)
    from . import c2pa_settings

    config = config.but(c2pa=c2pa_settings(args))  # C2PA credentials checked here, before any network loads
    return config.as_animal() if args.animal else config


def run(args: argparse.Namespace) -> int:
    from ..plan import check_source_face, plan_job
    from ..timing import run_time
    from .speech import is_speech_job, run_speech

    if not args.driving and getattr(args, "text", None) is None:
        from ..errors import InputError

        raise InputError("the following arguments are required: -d/--driving (or --text)")
    # everything that can be wrong with the job is found before torch loads or a network runs
    config = config_from_args(args)
    if is_speech_job(args):
        return run_speech(args, config)
    if getattr(args, "pose_from", None) is not None:
        from ..errors import InputError

        raise InputError(f"--pose-from is for speech driving (-d speech.wav, --speech-from-video or --text); "
                         f"{args.driving[0]} is not audio")
    plan = plan_job(args.source, args.driving, args.output, config)
    if getattr(args, "max_seconds", None) is not None:  # a preview in seconds: frames at the output's rate
        from .speech import max_seconds

        frames = max(1, round(max_seconds(args) * float(plan.fps)))
        config = config.but(max_frames=min(frames, config.max_frames or frames))
        plan = plan.limited(config.max_frames)
    if config.animal and plan.source_kind != "image":
        from ..config import ANIMAL_PHOTO_ONLY
        from ..errors import InputError

        raise InputError(f"{args.source}: {ANIMAL_PHOTO_ONLY}")

    cropper = check_source_face(plan, config)  # a photo without the face fails now, not after the load

    from ..api import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained(args.weights, device=args.device, backend=args.backend,
                                                precision=args.precision, model_config=args.model_config,
                                                quiet=args.quiet, variant="animal" if config.animal else "human",
                                                cropper=cropper)
    loaded = time.perf_counter()
    pipe.set_progress_bar_config(disable=args.quiet)
    result = pipe.animate_planned(plan, config).save_planned(plan)
    if not args.quiet:
        c = pipe.compute
        print(f"wrote {result.output} ({result.summary()}; {run_time(loaded)}; {c.device}, {c.precision}, "
              f"{c.backend})")
        if result.comparison:
            print(f"comparison: {result.comparison}")
        if result.template:
            print(f"motion template: {result.template}")
    for note in result.notes:
        print(note, file=sys.stderr)
    return 0
