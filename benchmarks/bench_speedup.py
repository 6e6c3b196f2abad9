"""Speed-up of each backend over float32 eager, for the network work of one output frame.

    python benchmarks/bench_speedup.py [--rounds N] [--backend fast --backend openvino ...]

One "frame" is what every output frame costs the networks: M on the driving frame, stitching, W and G.
Each configuration runs in a process of its own (the C allocator's setting is per process), and the
configurations take turns, round after round; each keeps its best frame, which makes the ratios robust
to a load that changes from minute to minute on a shared machine. The rows:

* ``eager``, default allocator: the reference's way (plain modules, the C library's malloc as is);
  the baseline of the speed-up column;
* ``eager`` and every ``--backend`` with the allocator as ``liveportrait animate`` sets it
  (freed memory kept for the next frame, see ``liveportrait/speed/allocator.py``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time


def worker(backend: str, allocator: str, frames: int, weights: str, model_config: str, out: str) -> dict:
    if allocator == "tuned":
        from liveportrait.speed.allocator import tune_allocator

        if not tune_allocator():
            raise SystemExit("the allocator setting did not take effect (not glibc?)")
    import numpy as np
    import torch

    from liveportrait.animator import Animator
    from liveportrait.bench import load_networks
    from liveportrait.motion.compose import MotionOptions
    from liveportrait.speed import accelerate, set_threads

    set_threads()
    nets, note = load_networks(weights, model_config)
    rng = np.random.default_rng(0)
    src_img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    drv_img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    anim = Animator(accelerate(nets, backend), "cpu", "fp32")
    src = anim.prepare_source(src_img)
    ref = anim.extract_motion(src_img).motion

    def frame():
        motion = anim.extract_motion(drv_img).motion
        x_d = anim.driving_keypoints(src, motion, ref, MotionOptions())
        return anim.render(src, x_d)

    with torch.inference_mode():
        image = frame()  # warm-up: transformed weights, compiled kernels, the allocator's heap
        best = float("inf")
        loads = []
        for _ in range(frames):
            loads.append(os.getloadavg()[0])
            t = time.perf_counter()
            frame()
            best = min(best, time.perf_counter() - t)
    np.save(out, image.float().numpy())
    return {"seconds": best, "load": loads, "note": note}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=2, help="timed frames per process (after one warm-up)")
    parser.add_argument("--backend", action="append")
    parser.add_argument("--weights", default="synthetic")
    parser.add_argument("--model-config", default="released")
    parser.add_argument("--worker", nargs=3, metavar=("BACKEND", "ALLOCATOR", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        backend, allocator, out = args.worker
        print(json.dumps(worker(backend, allocator, args.frames, args.weights, args.model_config, out)))
        return

    import numpy as np

    from liveportrait.bench import machine_description

    configs = [("eager", "default"), ("eager", "tuned")] + [(b, "tuned") for b in (args.backend or ["fast"])]
    best = {c: float("inf") for c in configs}
    loads, note = [], ""
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for backend, allocator in configs:
                out = os.path.join(tmp, f"{backend}-{allocator}.npy")
                cmd = [sys.executable, __file__, "--frames", str(args.frames), "--weights", args.weights,
                       "--model-config", args.model_config, "--worker", backend, allocator, out]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    raise SystemExit(f"{backend} ({allocator} allocator) failed:\n{res.stderr[-2000:]}")
                info = json.loads(res.stdout.strip().splitlines()[-1])
                best[(backend, allocator)] = min(best[(backend, allocator)], info["seconds"])
                loads += info["load"]
                note = info["note"]
                print(f"round {r + 1}: {backend:12s} {allocator:8s} {info['seconds']:.2f} s", file=sys.stderr)
        images = {c: np.load(os.path.join(tmp, f"{c[0]}-{c[1]}.npy")) for c in configs}
    base = best[("eager", "default")]
    print(f"machine: {machine_description()}")
    print(f"{note}; load average during the run {min(loads):.2f} to {max(loads):.2f}")
    print("| backend | allocator | s per frame (networks) | speed-up over eager, default allocator |"
          " max abs diff vs eager (0..1 image) |")
    print("|---|---|---|---|---|")
    for c in configs:
        diff = float(np.abs(images[c] - images[("eager", "default")]).max())
        print(f"| {c[0]} | {c[1]} | {best[c]:.2f} | {base / best[c]:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
