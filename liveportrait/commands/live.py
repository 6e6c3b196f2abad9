"""``liveportrait live``: animate a photo with a camera or a video, frame by frame, as frames arrive."""

from __future__ import annotations

import argparse
import os
import sys

from . import HelpFormatter, add_compute_arguments, number


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "live", help="animate a photo live from a camera (or a video played in real time)",
        description="Animate the face of SOURCE with each new frame of a camera or a video file as it arrives. "
                    "Motion is taken relative to the first driving frame (causal, nothing is read ahead). "
                    "When rendering is slower than the frames arrive, frames are dropped, not queued.",
        formatter_class=HelpFormatter)
    p.add_argument("-s", "--source", required=True, help="photo of a face")
    drv = p.add_mutually_exclusive_group(required=True)
    drv.add_argument("--camera", type=number(int, 0), metavar="N", help="camera index for cv2.VideoCapture")
    drv.add_argument("--driving", help="video file, played at its own frame rate in real time")
    p.add_argument("-o", "--output", help="write the result to this video instead of showing a window")
    p.add_argument("--no-window", action="store_true", help="never open a window (print statistics only)")
    p.add_argument("--virtual-camera", action="store_true",
                   help="also send the frames to a virtual camera that video-call apps (Zoom, Meet, OBS) can pick: "
                        "needs the 'live' extra and a driver (OBS Virtual Camera on Windows and macOS, v4l2loopback "
                        "on Linux); a camera carries no sound")
    # an animation's options from AnimateConfig's fields (their defaults and checks), live's own from LiveOptions'
    from ..config import AnimateConfig, LiveOptions
    from .options import add_options

    add_options(p, AnimateConfig, only=("--no-watermark", "--max-frames", "--no-crop", "--crop-driving",
                                        "--no-paste-back", "--no-stitching"),
                help={"--no-watermark": "leave out the invisible watermark of -o's video (the 'AI-generated' "
                                        "metadata label stays)",
                      "--max-frames": "stop after this many rendered frames",
                      "--crop-driving": "track and crop the driving face (auto: when the frames are not square)",
                      "--no-paste-back": "show the animated crop only"})
    add_options(p, LiveOptions)
    add_compute_arguments(p, model_config_default="released", threads=True)
    p.add_argument("--delay-ms", type=float, default=0.0, help=argparse.SUPPRESS)  # slow renderer (tests)
    p.add_argument("-q", "--quiet", action="store_true", help="only the final statistics")
    p.set_defaults(func=run)


def has_display() -> bool:
    if sys.platform.startswith("linux"):
        return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    return True


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from ..api import LivePortraitPipeline
    from ..config import AnimateConfig, LiveOptions
    from ..errors import InputError
    from ..live import CameraSource, FileSource
    from ..live.session import make_engine, prepare_portrait
    from ..media import read_image
    from ..media.image import limit_size
    from ..media.streams import BackgroundWriter
    from ..plan import check_photo_face
    from ..speed import set_threads
    from .options import config_from_namespace

    set_threads(args.threads)
    if args.driving and not os.path.exists(args.driving):
        raise InputError(f"{args.driving}: no such file")
    image = read_image(args.source)
    # the source prepared as animate prepares a photo (one engine, one framing rule, one paste-back), its face
    # looked for before the networks load
    config = config_from_namespace(args, AnimateConfig)  # the options live takes; animate's defaults for the rest
    live = config_from_namespace(args, LiveOptions)
    image = limit_size(image, config.source_max_dim)
    cropper = check_photo_face(image, config, name=args.source)
    source = CameraSource(args.camera) if args.camera is not None else FileSource(args.driving)
    camera = stamp = None
    if args.virtual_camera:  # no driver: one line and exit code 10, before any network loads
        from ..live.virtualcam import VirtualCamera
        from ..provenance import Stamp

        h, w = image.shape[:2]
        camera = VirtualCamera(*((w, h) if config.paste_back and config.crop != "none" else (512, 512)), fps=source.fps)
        stamp = Stamp(watermark=config.watermark)  # every frame the camera sends is marked
        if not args.quiet:
            print(f"sending to the virtual camera {camera.device} (pictures only: a camera carries no sound)",
                  file=sys.stderr)
    # device, precision and backend by the one rule, as animate (bf16 on a CPU that computes it natively)
    pipe = LivePortraitPipeline.from_pretrained(args.weights, device=args.device, precision=args.precision,
                                                backend=args.backend, model_config=args.model_config,
                                                quiet=args.quiet, cropper=cropper)
    portrait = prepare_portrait(pipe, image, config)
    engine = make_engine(portrait, config.crop_driving, source.fps, smoothing=live.smoothing,
                         delay_s=args.delay_ms / 1e3, mark=stamp.mark if stamp is not None else None)

    writer = None
    window = not args.output and not args.no_window and has_display()
    stop_flag = [False]
    if args.output:
        from fractions import Fraction

        from ..media import VideoWriter
        from ..provenance import Stamp

        fps = Fraction(source.fps).limit_denominator(1001)
        # the writer labels the file and watermarks every frame (in the writer's thread, not the renderer's)
        own = Stamp(stamp.run_id, watermark=False) if stamp is not None else Stamp(watermark=config.watermark)
        vw = VideoWriter(args.output, fps, crf=config.crf, stamp=own)
        last = {"i": -1, "frame": None}

        def write(item):
            # frames dropped in between are filled with the last result so the video keeps real time
            index, frame = item
            if last["frame"] is not None:
                for _ in range(index - last["i"] - 1):
                    vw.write(last["frame"])
            vw.write(frame)
            last["i"], last["frame"] = index, frame

        writer = BackgroundWriter(write)

        def sink(index, frame):
            writer.put((index, frame))
    elif window:
        import cv2

        def sink(index, frame):
            nonlocal window
            if not window:
                return
            try:
                cv2.imshow("liveportrait", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
            except cv2.error:  # opencv-python-headless has no GUI
                window = False
                print("this OpenCV build cannot open windows (headless); use -o OUT.mp4 to keep the result",
                      file=sys.stderr)
                return
            if cv2.waitKey(1) & 0xFF in (27, ord("q")):
                stop_flag[0] = True
    else:
        def sink(index, frame):
            pass

    if camera is not None:
        show = sink

        def sink(index, frame):
            camera.send(frame)
            show(index, frame)

    def report(stats):
        if not args.quiet:
            print(stats.summary(), file=sys.stderr, flush=True)

    try:
        # the networks on threads of their own; tracking and M beside W+G where W+G runs on a GPU (live.stages)
        stats = engine.run(source, sink, max_frames=config.max_frames, stop=lambda: stop_flag[0], report=report)
    except BaseException:
        if writer is not None:
            try:
                writer.close()
            finally:
                vw.abort()
        raise
    finally:
        if camera is not None:
            camera.close()
    if writer is not None:
        writer.close()
        vw.close()
    if window:
        import cv2

        try:
            cv2.destroyAllWindows()
        except cv2.error:
            pass
    print(stats.summary())
    if not args.quiet:
        print(f"per frame (median): {stats.stages_line()}", file=sys.stderr)
    if args.output:
        print(f"wrote {args.output}")
    _ = np  # numpy is imported for the callbacks' arrays
    return 0
