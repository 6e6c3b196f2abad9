"""Per-stage speed, end-to-end frames per second, peak memory and GFLOP/s of every backend.

    python benchmarks/bench_speed.py [--weights DIR] [--frames N] [--backend B ...] [--precision P ...]

Full-size networks; without weights, random weights of the released configuration (the speed is the
same as with the real ones). Each (backend, precision) row runs in its own process so that its peak
memory is its own. The default rows are eager fp32 (the reference's way), eager bf16, fast fp32 and
the ONNX runtimes that are installed. Same options as ``liveportrait benchmark``.
"""

from __future__ import annotations

import argparse
import sys

from liveportrait.commands import benchmark


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_speed")
    sub = parser.add_subparsers(dest="command")
    benchmark.register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--precision" not in argv:
        argv += ["--precision", "fp32", "--precision", "bf16"]
    if "--weights" not in argv:
        argv += ["--weights", "synthetic"]
    args = parser.parse_args(["benchmark", *argv])
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
