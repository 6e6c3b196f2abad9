"""``liveportrait app``: the web interface (Animate, Edit, Retarget video) on this computer."""

from __future__ import annotations

import argparse
import os
import sys

from . import (
    WEIGHTS_HELP,
    HelpFormatter,
    add_c2pa_arguments,
    add_compute_arguments,
    c2pa_settings,
    listen_socket,
    number,
    require_extra,
)

SHARE_WARNING = ("warning: --share publishes this app on a public link through Gradio's relay servers: anyone "
                 "who has the link can use it, and your uploads and results travel through a third party.")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "app", help="open the web interface (animate, edit expressions, retarget videos)",
        description="Serve the LivePortrait web interface on this computer (http://127.0.0.1:PORT by default). "
                    "Nothing leaves the machine: analytics are off and no public link is made unless --share.",
        formatter_class=HelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; 0.0.0.0 makes the app reachable from other machines")
    p.add_argument("--port", type=number(int, 0, 65535), default=7860,
                   help="port to listen on (0: the first free one from 7860 on)")
    p.add_argument("--share", action="store_true",
                   help="also make a temporary public link through Gradio's servers (off by default)")
    add_compute_arguments(p, WEIGHTS_HELP + "; the animal weights, for animal mode, are looked for there too, when "
                             "first used")
    p.add_argument("--audio-weights", metavar="DIR",
                   help="speech driving's JoyVASA layout folder: JoyVASA/ and the HuBERT folder (default: "
                        "$LIVEPORTRAIT_AUDIO_WEIGHTS, then the user cache); without them the app says what to fetch")
    p.add_argument("--max-upload-mb", type=number(above=0), default=500,
                   help="largest upload accepted (videos; photos: 30)")
    from ..config import AnimateConfig
    from .options import add_options

    add_options(p, AnimateConfig, only=("--no-watermark",))  # the app's results, every tab's
    add_c2pa_arguments(p)  # every result of every tab signed with C2PA Content Credentials
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def _stay_offline() -> None:
    """Once the weights are loaded nothing needs the Hugging Face Hub: no telemetry, no look-ups."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
    try:
        from huggingface_hub import constants
    except ImportError:
        return
    constants.HF_HUB_OFFLINE = True
    constants.HF_HUB_DISABLE_TELEMETRY = True


def run(args: argparse.Namespace) -> int:
    require_extra("app", ("gradio", "gradio_client"), "the web app")
    c2pa = c2pa_settings(args)  # bad C2PA credentials: one line and exit code 8, before any network loads
    from ..live.webrtc import ice_servers

    ice_servers()  # a malformed $LIVEPORTRAIT_ICE_SERVERS (the Live tab's STUN/TURN): one line, exit code 2, now
    if args.share:
        print(SHARE_WARNING, file=sys.stderr)
    from .._lazy import is_loopback

    if not is_loopback(args.host) and not args.quiet:
        print(f"note: listening on {args.host}: other machines on the network can use this app", file=sys.stderr)
    if args.port:  # a busy port: one line and exit code 9 now, not Gradio's traceback after the load
        listen_socket(args.host, args.port).close()
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

    from ..api import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained(args.weights, device=args.device, backend=args.backend,
                                                precision=args.precision, model_config=args.model_config,
                                                quiet=args.quiet, c2pa=c2pa)
    _stay_offline()

    from ..app.backend import AppBackend
    from ..app.ui import build_app, launch  # imports gradio
    from ..uploads import UploadLimits

    limits = UploadLimits(video_mb=args.max_upload_mb, image_mb=min(30.0, args.max_upload_mb),
                          template_mb=min(50.0, args.max_upload_mb), audio_mb=min(200.0, args.max_upload_mb))
    def load_animal():
        """The animal pipeline, on the first animal job: found like the human weights, never downloaded
        here (the app stays offline: a missing folder is a message saying what to fetch)."""
        from ..networks import LivePortraitNetworks

        nets = LivePortraitNetworks.from_pretrained(args.weights, args.model_config, animal=True, download=False,
                                                    quiet=True)
        return LivePortraitPipeline(nets, device=args.device, precision=args.precision, backend=args.backend,
                                    cropper=backend.cropper, tune_memory=False, variant="animal", c2pa=c2pa)

    backend = AppBackend(pipe, limits=limits, watermark=not args.no_watermark, animal=load_animal,
                         audio_weights=args.audio_weights)
    demo = build_app(backend)
    launch(demo, args.host, args.port or None, args.share, allowed_paths=[str(backend.workdir)],
           max_file_mb=limits.largest_mb, block=True, quiet=args.quiet)
    return 0
