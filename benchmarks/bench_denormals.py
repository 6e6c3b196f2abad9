"""W with and without its subnormal heatmap values set to zero, on the benchmark's face keypoints and on a
test pattern's, taking turns in one process.

    python benchmarks/bench_denormals.py [--rounds 3] [--global-ftz] [--model-config tiny]

Full-size synthetic networks (random weights of the released shape: the speed of real ones). "faces": the
example photo's face framed as animate frames it, driven by frame 11 of the example clip against its frame 0
(``liveportrait.bench.example_inputs``); "pattern": the synthetic picture and clip the benchmark used to
animate. ``--global-ftz`` calls ``torch.set_flush_denormal(True)`` before any thread exists and times W
without its own flush, for comparison. Prints the best time of each and every round's, and the largest
difference of W's output between the two ways.
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--global-ftz", action="store_true")
    parser.add_argument("--model-config", default="released", help="released (full size) or tiny")
    args = parser.parse_args()
    import torch

    if args.global_ftz:
        torch.set_flush_denormal(True)  # before any worker thread exists: they inherit it
    import cv2

    from liveportrait.animator import Animator
    from liveportrait.bench import _synthetic_networks, _test_frames, example_inputs, machine_description
    from liveportrait.media import VideoReader
    from liveportrait.motion.compose import MotionOptions
    from liveportrait.speed import fastnets
    from liveportrait.speed.backends import accelerate, set_threads

    set_threads()
    nets = _synthetic_networks(args.model_config)
    fast = accelerate(nets, "fast")
    anim = Animator(fast, "cpu", "fp32")
    opts = MotionOptions()

    def small(img):
        return cv2.resize(img, (256, 256), interpolation=cv2.INTER_AREA)

    inputs = example_inputs()
    if inputs.clip is None:
        sys.exit("the example media are needed (../shared/examples or $LIVEPORTRAIT_SHARED)")
    src = anim.prepare_source(inputs.source_256)
    with VideoReader(inputs.clip) as reader:
        frames = [small(f) for _, f in zip(range(12), reader)]
    faces = anim.driving_keypoints(src, anim.extract_motion(frames[11]).motion, anim.extract_motion(frames[0]).motion,
                                   opts)
    pattern = [small(f) for f in _test_frames(3, 512)]
    src_p = anim.prepare_source(small(_test_frames(1, 512, seed=1)[0]))
    kp_p = anim.driving_keypoints(src_p, anim.extract_motion(pattern[1]).motion,
                                  anim.extract_motion(pattern[0]).motion, opts)
    cases = {"faces": (src, faces), "pattern": (src_p, kp_p)}
    flush = fastnets.flush_subnormal_
    ways = {"none": lambda t: t} if args.global_ftz else {"flush": flush, "none": lambda t: t}
    times: dict[str, list[float]] = {}
    loads = []
    try:
        with torch.inference_mode():
            outs = {}
            for case, (s, kp) in cases.items():
                for way, fn in ways.items():
                    fastnets.flush_subnormal_ = fn
                    outs[case, way] = fast.W(s.f_s, kp_driving=kp, kp_source=s.x_s).out  # also the warm-up
            for _ in range(args.rounds):
                for case, (s, kp) in cases.items():
                    for way, fn in ways.items():
                        fastnets.flush_subnormal_ = fn
                        loads.append(os.getloadavg()[0])
                        t = time.perf_counter()
                        fast.W(s.f_s, kp_driving=kp, kp_source=s.x_s)
                        times.setdefault(f"{case}/{way}", []).append(time.perf_counter() - t)
    finally:
        fastnets.flush_subnormal_ = flush
    print(f"machine: {machine_description()}; load average {min(loads):.2f} to {max(loads):.2f}")
    print(f"{inputs.note}; global flush-to-zero: {'on' if args.global_ftz else 'off'}")
    for key, ts in times.items():
        print(f"W {key}: best {min(ts):.2f} s (rounds: {', '.join(f'{t:.2f}' for t in ts)})")
    if not args.global_ftz:
        for case in cases:
            diff = (outs[case, "flush"] - outs[case, "none"]).abs().max().item()
            ratio = min(times[f"{case}/none"]) / min(times[f"{case}/flush"])
            print(f"{case}: without the flush / with it {ratio:.2f}x; largest output difference {diff:.1e}")


if __name__ == "__main__":
    main()
