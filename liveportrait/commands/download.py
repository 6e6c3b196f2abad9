"""``liveportrait download``: fetch the released checkpoints into the user cache (or a folder)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("download", help="download the released LivePortrait weights",
                              description="Download the released checkpoints from the Hugging Face Hub.")
    p.add_argument("--dest", help="folder to download into (default: the user cache; see `liveportrait "
                                  "download --where`)")
    p.add_argument("--animal", action="store_true", help="also fetch the animal base models")
    p.add_argument("--audio", action="store_true",
                   help="fetch the speech-driving files instead: the JoyVASA motion generator and template "
                        "(jdh-algo/JoyVASA) and the HuBERT encoder (TencentGameMate/chinese-hubert-base), "
                        "into the audio cache or --dest")
    p.add_argument("--where", action="store_true", help="print where weights are looked for, and exit "
                                                        "(with --audio: the audio weights)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if getattr(args, "audio", False):
        return _run_audio(args)
    from ..networks.checkpoint import download_weights, resolve_layout, weights_search_path

    if args.where:
        for origin, root in weights_search_path(args.dest):
            missing = resolve_layout(root, args.animal).missing()
            state = "complete" if not missing else f"{len(missing)} file(s) missing"
            print(f"{origin:>22}: {root} ({state})")
        return 0
    layout = download_weights(args.dest, animal=args.animal)
    print(f"weights ready in {layout.base_dir.parent}")
    return 0


def _run_audio(args: argparse.Namespace) -> int:
    from ..audio.weights import audio_weights_search_path, download_audio_weights, resolve_audio_layout

    if args.where:
        for origin, root in audio_weights_search_path(args.dest):
            missing = resolve_audio_layout(root).missing()
            state = "complete" if not missing else f"{len(missing)} file(s) missing"
            print(f"{origin:>28}: {root} ({state})")
        return 0
    layout = download_audio_weights(args.dest)
    print(f"audio weights ready in {layout.root}")
    return 0
