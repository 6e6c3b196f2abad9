"""Checkpoint loading time: released .pth (weights_only) against safetensors, and ``from_pretrained``
(networks built on the meta device, the files' tensors taken as they are) against building the networks
on the CPU first (random initialisation and 18 spectral-norm SVDs that the checkpoint then overwrites).

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

from liveportrait.bench import machine_description
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
        print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; {machine_description()}")
        print(f"{'format':<14}{'from_pretrained (s)':>22}{'build on CPU + load (s)':>26}")
        for name, folder in ((".pth", src), ("safetensors", st)):
            # interleaved, best of 3 each: timings drift minute to minute
            fast, slow = [], []
            for _ in range(3):
                fast.append(best_of(lambda: LivePortraitNetworks.from_pretrained(folder, locate=False), 1))
                slow.append(best_of(lambda: LivePortraitNetworks().load_layout(resolve_layout(folder)), 1))
            print(f"{name:<14}{min(fast):>22.3f}{min(slow):>26.3f}")
        print("from_pretrained maps the files: their pages are read on the first frame, not here")



if __name__ == "__main__":
    main()
