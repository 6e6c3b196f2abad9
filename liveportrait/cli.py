"""The ``liveportrait`` command line.

Subcommands live in their own modules and register themselves here; heavy imports (torch, cv2)
happen inside the command functions so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from . import __version__
from .errors import LivePortraitError

# module path of each subcommand, relative to this package; each module defines
# ``register(subparsers)`` which adds its parser and sets ``func`` to a callable taking the args.
SUBCOMMANDS = [
    "commands.animate",
    "commands.crop",
    "commands.download",
    "commands.convert",
    "commands.verify",
    "commands.benchmark",
    "commands.app",
    "commands.live",
    "commands.train",
    "commands.data",
]

# commands that run the networks frame after frame: they keep freed memory for the next frame
# (see speed/allocator.py; LIVEPORTRAIT_ALLOCATOR=default opts out)
REUSE_MEMORY = {"animate", "live", "app"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="liveportrait",
        description="Animate a portrait photo or video with a driving video, image or motion template.",
    )
    parser.add_argument("--version", action="version", version=f"liveportrait {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__package__}.commands"):
                continue  # subcommand not written yet
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.command in REUSE_MEMORY:
        from .speed.allocator import tune_allocator

        tune_allocator()
    try:
        return int(args.func(args) or 0)
    except LivePortraitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
