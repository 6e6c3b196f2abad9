"""Speed-up of each backend over float32 eager, measured interleaved in one process.

    python benchmarks/bench_speedup.py [--rounds N] [--backend fast --backend onnxruntime ...]

On a shared machine the load changes from minute to minute; timing the backends one after the
other, round after round, and keeping each one's best round makes their ratio robust to it. One
"frame" is what every output frame costs the networks: M on the driving frame, stitching, W and G.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--backend", action="append")
    parser.add_argument("--weights", default="synthetic")
    parser.add_argument("--model-config", default="released")
    args = parser.parse_args()
    backends = args.backend or ["fast"]

    from liveportrait.animator import Animator
    from liveportrait.motion.compose import MotionOptions
    from liveportrait.speed import accelerate, set_threads
    from liveportrait.speed.bench import load_networks, machine_description

    set_threads()
    nets, note = load_networks(args.weights, args.model_config)
    rng = np.random.default_rng(0)
    src_img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    drv_img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    anims = {"eager": Animator(nets, "cpu", "fp32")}
    for b in backends:
        anims[b] = Animator(accelerate(nets, b), "cpu", "fp32")
    states = {}
    for name, anim in anims.items():
        src = anim.prepare_source(src_img)
        ref = anim.extract_motion(src_img).motion
        states[name] = (anim, src, ref)

    def frame(name):
        anim, src, ref = states[name]
        motion = anim.extract_motion(drv_img).motion
        x_d = anim.driving_keypoints(src, motion, ref, MotionOptions())
        return anim.render(src, x_d)

    with torch.inference_mode():
        outs = {name: frame(name) for name in anims}  # warm-up (plans, kernels)
    best = {name: float("inf") for name in anims}
    loads = []
    for _ in range(args.rounds):
        for name in anims:
            loads.append(os.getloadavg()[0])
            t = time.perf_counter()
            frame(name)
            best[name] = min(best[name], time.perf_counter() - t)
    print(f"machine: {machine_description()}")
    print(f"{note}; load average during the run {min(loads):.2f} to {max(loads):.2f}")
    print("| backend | s per frame (networks) | speed-up | max abs diff vs eager (0..1 image) |")
    print("|---|---|---|---|")
    for name in anims:
        diff = float((outs[name] - outs["eager"]).abs().max())
        print(f"| {name} | {best[name]:.2f} | {best['eager'] / best[name]:.2f}x | {diff:.1e} |")


if __name__ == "__main__":
    main()
