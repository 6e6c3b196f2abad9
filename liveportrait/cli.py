"""The ``liveportrait`` command line.

Subcommands live in their own modules and register themselves here; heavy imports (torch, cv2)
happen inside the command functions so that ``--help`` stays fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import signal
import sys
import threading

from . import __version__, timing  # noqa: F401 - timing: the run's clock starts now
from .commands import ArgumentParser
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
    "commands.serve",
    "commands.batch",
    "commands.motion",
]

# commands that run the networks frame after frame: they keep freed memory for the next frame
# (see speed/allocator.py; LIVEPORTRAIT_ALLOCATOR=default opts out)
REUSE_MEMORY = {"animate", "live", "app"}


def build_parser() -> argparse.ArgumentParser:
    parser = ArgumentParser(
        prog="liveportrait",
        description="Animate a portrait photo or video with a driving video, image or motion template.",
    )
    parser.add_argument("--version", action="version", version=f"liveportrait {__version__}")
    # every subcommand's parser (and theirs) is an ArgumentParser too: one-line usage errors everywhere
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=ArgumentParser)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f".{name}", __package__)
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith(f"{__package__}.commands"):
                continue  # subcommand not written yet
            raise
        module.register(subparsers)
    parser.subcommands = subparsers.choices  # name -> its parser, for errors that belong to a subcommand
    return parser


def parse(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """``parse_args``, but an unknown option after a subcommand is that subcommand's error, pointing to its
    own ``--help`` (argparse reports it from the top level, whose help lists only the commands)."""
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        owner = parser.subcommands.get(getattr(args, "command", None) or "", parser)
        owner.error(f"unrecognized arguments: {' '.join(unknown)}")
    return args


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parse(parser, argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    if args.command in REUSE_MEMORY:
        from .speed.allocator import tune_allocator

        tune_allocator()
    try:
        with stop_signals_interrupt():
            return int(args.func(args) or 0)
    except LivePortraitError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Stopped as exc:
        print(f"stopped ({signal.Signals(exc.signum).name})", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


class Stopped(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM, SIGHUP): unwinds like Ctrl-C, so every writer
    deletes its partial file on the way out."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


@contextlib.contextmanager
def stop_signals_interrupt():
    """Turn SIGTERM and SIGHUP (``kill``, ``timeout``, a closed terminal) into ``Stopped`` in the main
    thread; a second signal during the clean-up is ignored so that the clean-up finishes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    names = [n for n in ("SIGTERM", "SIGHUP") if hasattr(signal, n)]
    previous = {n: signal.getsignal(getattr(signal, n)) for n in names}

    def stop(signum, frame):
        for n in names:
            signal.signal(getattr(signal, n), signal.SIG_IGN)
        raise Stopped(signum)

    for n in names:
        signal.signal(getattr(signal, n), stop)
    try:
        yield
    finally:
        for n, handler in previous.items():
            signal.signal(getattr(signal, n), handler)


if __name__ == "__main__":
    sys.exit(main())
