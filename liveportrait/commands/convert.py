"""``liveportrait convert``: turn a released weights folder into safetensors (faster, no pickle)."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("convert", help="convert released .pth weights to safetensors",
                              description="Write every released checkpoint as .safetensors in the same layout, "
                                          "plus a config.json naming the architecture. The result loads with --weights "
                                          "like the original folder.")
    p.add_argument("src", nargs="?", help="released weights folder (default: the one `animate` would use)")
    p.add_argument("-o", "--output", required=True, help="output folder")
    p.add_argument("--animal", action="store_true", help="convert the animal base models")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..networks.checkpoint import convert_to_safetensors, locate_weights

    layout = locate_weights(args.src, animal=args.animal)
    for path in convert_to_safetensors(layout, args.output):
        print(path)
    return 0
