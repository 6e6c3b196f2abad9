"""``liveportrait animate``: the main job."""

from __future__ import annotations

import argparse
import sys
import time

from . import HelpFormatter, add_compute_arguments


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
    from . import add_c2pa_arguments

    add_c2pa_arguments(p)  # --c2pa-cert, --c2pa-key, --c2pa-tsa (content credentials)

    groups = {"input and output": io, "motion": p.add_argument_group("motion"),
              "framing": p.add_argument_group("framing"), "compute": p.add_argument_group("compute")}
    add_compute_arguments(groups["compute"])
    from ..config import AnimateConfig
    from .options import add_options

    add_options(p, AnimateConfig, groups=groups)  # every option of an animation, from its config field
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
    from ..config import AnimateConfig
    from .options import config_from_namespace

    precision, backend = args.precision, args.backend
    if device != "auto":
        from ..speed import pick_backend
        from ..speed.compute import resolve_precision

        precision = resolve_precision(precision, device)
        backend = pick_backend(backend, device, precision)
    config = config_from_namespace(args, AnimateConfig).but(device=device, precision=precision, backend=backend)
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
    if args.max_seconds is not None:  # a preview in seconds: frames at the output's rate
        frames = max(1, round(args.max_seconds * float(plan.fps)))
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
