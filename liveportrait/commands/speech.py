"""``liveportrait animate -s photo.jpg -d speech.wav`` and ``liveportrait motion speech.wav``: the command
line's audio parts.

``add_audio_arguments`` adds the audio options to the animate parser; ``is_speech_job`` tells a speech driving
from the others; ``run_speech`` runs the job after checking everything that can be wrong with it (the photo,
the audio, the output, the audio weights) before a network loads. ``register`` adds the ``motion`` command,
which saves the sampled motion as a template.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ..audio.defaults import smoothing_alpha
from ..config import SpeechOptions
from ..errors import InputError
from .options import add_options


def add_audio_arguments(parser: argparse.ArgumentParser, video_flag: bool = True) -> None:
    g = parser.add_argument_group("speech driving (-d speech.wav: any audio PyAV reads)")
    g.add_argument("--audio-weights", help="JoyVASA layout folder: JoyVASA/ and the HuBERT folder (default: "
                                           "$LIVEPORTRAIT_AUDIO_WEIGHTS, then the user cache)")
    if video_flag:
        g.add_argument("--speech-from-video", action="store_true",
                       help="-d is a video whose sound drives the photo (its faces are not used)")
        g.add_argument("--text", help="words to speak (offline, with espeak-ng) and animate the photo with, "
                                      "instead of -d")
        g.add_argument("--voice", help="espeak-ng voice of --text (e.g. en-us, de, fr; default: its English)")
    add_options(parser, SpeechOptions, groups={"speech": g})
    g.add_argument("--pose-from", metavar="TEMPLATE|VIDEO|still",
                   help="head pose from a motion template (.pkl, .lpt.npz)"
                        + (", a driving video" if video_flag else "")
                        + " or 'still' (the source's own pose) instead of the model's; relative to its first frame, "
                          "played back and forth when shorter than the speech; lips and eyes stay the speech's")


def is_speech_job(args: argparse.Namespace) -> bool:
    from ..audio.io import is_audio_file

    if getattr(args, "text", None) is not None:
        return True
    drivings = args.driving if isinstance(args.driving, list) else [args.driving]
    return len(drivings) == 1 and (getattr(args, "speech_from_video", False) or is_audio_file(drivings[0]))


def speech_output(args: argparse.Namespace) -> Path:
    from ..files import check_output
    from ..plan import default_output

    out = default_output(Path(args.source), Path(args.driving[0]), Path(args.output) if args.output else None,
                         False, "mp4")
    if out.suffix.lower() not in (".mp4", ".mov", ".mkv"):
        raise InputError(f"{out}: a speech-driven animation is written as a video (.mp4, .mov or .mkv)")
    return check_output(out)


def run_speech(args: argparse.Namespace, config) -> int:
    """The job (``config``: animate's options, from ``config_from_args``), checked first: a photo source,
    a readable audio track, a writable output, audio weights. With ``--text``, the words are spoken first
    (espeak-ng) into a temporary WAV that drives the photo."""
    from ..audio.pose import check_pose_from

    args.pose_from = check_pose_from(getattr(args, "pose_from", None))  # checked once, before anything is spoken
    if getattr(args, "text", None) is None:
        return _run_speech(args, config)
    import tempfile

    from ..audio.tts import check_text, speak, tts_program

    if args.driving:
        raise InputError("give --text or -d, not both")
    text = check_text(args.text)
    tts_program()
    with tempfile.TemporaryDirectory(prefix="liveportrait-tts-") as tmp:
        args.driving = [str(speak(text, Path(tmp) / "text.wav", args.voice))]
        args.speech_from_video = False
        return _run_speech(args, config)


def _run_speech(args: argparse.Namespace, config) -> int:
    """The speech job through the Python API (``pipe(photo, audio=...)``), after the cheap checks: the photo and
    its face, the audio, the pose, the output and the weights are refused before any network loads."""
    from ..api import LivePortraitPipeline
    from ..audio.io import probe_audio
    from ..audio.pose import check_pose_from
    from ..audio.weights import locate_audio_weights
    from ..media import is_image, read_image
    from ..plan import check_photo_face
    from ..timing import run_time

    if not is_image(args.source):
        raise InputError(f"{args.source}: speech drives a photo; give an image as the source")
    photo = read_image(args.source)  # unreadable or empty photos fail here
    out = speech_output(args)
    check_pose_from(args.pose_from)
    locate_audio_weights(args.audio_weights)
    probe_audio(args.driving[0], max_seconds=args.max_seconds)
    cropper = check_photo_face(photo, config, name=args.source)
    del photo

    pipe = LivePortraitPipeline.from_pretrained(args.weights, device=args.device, backend=args.backend,
                                                precision=args.precision, model_config=args.model_config,
                                                quiet=args.quiet, cropper=cropper)
    pipe.set_progress_bar_config(disable=args.quiet)
    loaded = time.perf_counter()
    first: list[float] = []
    output = pipe(args.source, audio=args.driving[0], seed=args.seed, audio_weights=args.audio_weights,
                  pose_from=args.pose_from, max_seconds=args.max_seconds, cfg_scale=args.cfg_scale,
                  audio_smooth=args.audio_smooth, config=config,
                  callback_on_frame=lambda i, frame: first or first.append(time.perf_counter()))
    started = time.perf_counter()
    r = output.save(out)
    if not args.quiet:
        print(f"wrote {r.output} ({r.summary()}, seed {output.seed}; first frame after "
              f"{(first[0] if first else started) - started:.1f} s; {run_time(loaded)})")
    if not r.has_audio:
        print(f"{args.driving[0]}: its sound could not be muxed into the video", file=sys.stderr)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("motion", help="sample the motion of a speech and save it as a motion template",
                              description="Sample head and face motion from speech (JoyVASA) and save it as a "
                                          "motion template (.lpt.npz) that drives any photo with `animate -d`.")
    p.add_argument("speech", help="audio file (wav, mp3, ...), or a video's sound")
    p.add_argument("-o", "--output", help="template file (default: SPEECH.lpt.npz in this folder)")
    add_audio_arguments(p, video_flag=False)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(func=run_motion)


def run_motion(args: argparse.Namespace) -> int:
    from ..audio.drive import AudioDriving
    from ..audio.io import probe_audio
    from ..audio.model import AudioMotionModel
    from ..audio.pose import PendingVideoPose, check_pose_from
    from ..audio.weights import locate_audio_weights
    from ..files import check_output
    from ..media import save_template

    out = Path(args.output) if args.output else Path(Path(args.speech).stem + ".lpt.npz")
    if not str(out).endswith((".lpt.npz", ".npz")):
        raise InputError(f"{out}: a motion template is written as .lpt.npz")
    out = check_output(out)
    pose = check_pose_from(args.pose_from)
    if isinstance(pose, PendingVideoPose):
        raise InputError(f"--pose-from {pose.path}: `motion` takes a motion template or still, not a video "
                         "(`liveportrait animate -s photo -d VIDEO` saves a video's motion as a template)")
    info = probe_audio(args.speech, max_seconds=args.max_seconds)
    layout = locate_audio_weights(args.audio_weights)
    driving = AudioDriving.open(args.speech, AudioMotionModel.from_pretrained(layout), args.seed, args.cfg_scale,
                                smoothing_alpha(args.audio_smooth), info=info, pose=pose)
    template = driving.template()
    save_template(out, template)
    if not args.quiet:
        print(f"wrote {out} ({template.n_frames} frames, {float(template.fps):g} fps, seed {driving.seed})")
    return 0
