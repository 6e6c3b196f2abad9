"""Checkpoint loading time: released .pth (weights_only) against safetensors.

    python benchmarks/bench_load.py [WEIGHTS_DIR]

Without a folder, full-size synthetic weights are generated in a temporary folder from the
conformance kit (../shared/conformance/synth_weights.py).
"""

from __future__ import annotations

import importlib.util
import sys
import tempfile
import time
from pathlib import Path

import torch

from liveportrait.networks import LivePortraitNetworks
from liveportrait.networks.checkpoint import convert_to_safetensors, resolve_layout

REPO = Path(__file__).resolve().parents[1]


def synth(out: Path) -> Path:
    spec = importlib.util.spec_from_file_location("synth", REPO.parent / "shared/conformance/synth_weights.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.write_checkpoints(str(out))
    return out


def best_of(fn, n=3) -> float:
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(sys.argv[1]) if len(sys.argv) > 1 else synth(Path(tmp) / "pth")
        st = Path(tmp) / "safetensors"
        convert_to_safetensors(resolve_layout(src), st)
        nets = LivePortraitNetworks()
        t_pth = best_of(lambda: nets.load_layout(resolve_layout(src)))
        t_st = best_of(lambda: nets.load_layout(resolve_layout(st)))
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
        print(f"{'format':<14}{'load all five (s)':>20}")
        print(f"{'.pth':<14}{t_pth:>20.3f}")
        print(f"{'safetensors':<14}{t_st:>20.3f}")


if __name__ == "__main__":
    main()
