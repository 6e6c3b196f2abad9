"""How long a new user waits: ``liveportrait serve`` from launch to its first answer (time to listen) and to
ready, and ``animate`` from launch to its first line, on full-size weights.

    python benchmarks/bench_start.py [WEIGHTS_DIR] [--tree CHECKOUT]

``--tree`` runs another checkout of this project (e.g. a ``git worktree`` of an older commit) with this
environment, for a before/after figure in one run. Without a folder, full-size synthetic weights are made
from the conformance kit (../shared/conformance/synth_weights.py).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from bench_load import synth

from liveportrait.bench import machine_description


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_times(tree: Path, weights: Path, data: Path, timeout: float = 600) -> tuple[float, float]:
    """(seconds to the first HTTP answer of /healthz, seconds to its 200) of a fresh ``serve``."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(tree)}
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "liveportrait.cli", "serve", "--weights", str(weights), "--port",
                             str(port), "--data", str(data), "-q"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    first = None
    try:
        while time.perf_counter() - t0 < timeout:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:
                    if r.status == 200:
                        return first or time.perf_counter() - t0, time.perf_counter() - t0
            except urllib.error.HTTPError:  # 503 while loading: it listens
                first = first or time.perf_counter() - t0
            except (urllib.error.URLError, ConnectionError, OSError):
                pass
            time.sleep(0.05)
        raise RuntimeError("serve did not get ready")
    finally:
        proc.terminate()
        proc.wait(60)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="?")
    ap.add_argument("--tree", action="append", default=[], help="another checkout to compare (repeatable)")
    ap.add_argument("--runs", type=int, default=2)
    args = ap.parse_args()
    trees = [Path(__file__).resolve().parents[1]] + [Path(t).resolve() for t in args.tree]
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(args.weights) if args.weights else synth(Path(tmp) / "weights")
        print(machine_description())
        print(f"{'tree':<40}{'serve: listening (s)':>22}{'serve: ready (s)':>18}")
        results = {t: [] for t in trees}
        for run in range(args.runs):  # interleaved: the machine's load drifts
            for t in trees:
                results[t].append(serve_times(t, weights, Path(tmp) / f"data-{run}-{trees.index(t)}"))
        for t, times in results.items():
            print(f"{str(t)[-40:]:<40}{min(a for a, _ in times):>22.2f}{min(b for _, b in times):>18.2f}")


if __name__ == "__main__":
    main()
