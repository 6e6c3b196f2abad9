"""bfloat16 on the CPU, network by network: speed and error of each way to run W and G in bfloat16.

    python benchmarks/bench_bf16.py [--rounds 3] [--photos s1 s9] [--quick]

Every configuration of W, and of G, runs in this one process, taking turns round after round (one call
each per round, after a warm-up call), so that a load that drifts from minute to minute on a shared
machine hits them all alike; the tables show each one's best time, the spread of its times over the
rounds, and its speed-up over float32 eager as the median of the per-round ratios [lowest, highest].

Errors are against float32 eager on the same inputs: the relative L2 error of each output, and the PSNR
of the rendered uint8 frame (G's 512x512 output, clipped, x255, truncated as the pipeline does). For a W
configuration the frame is G in float32 (the exact fast path) applied to its output, so that the figure is
W's own; for G, its frame from float32 eager W's output. Inputs: the conformance fixture's (its feature
volume and keypoints) and the example photos (resized to 256x256, their F volume and keypoints from float32
eager, the driving keypoints those of the photo d12.jpg). Weights: the conformance kit's synthetic ones
(../shared/conformance/synth_weights.py), else random ones of the released shape.

The configurations:

W: eager fp32 | fast fp32 (the exact rewrites) | autocast bf16 (eager modules) | ours (``Bf16Warping``:
   oneDNN convolutions on channels-last maps, transposed convolutions for the upsampled ones), all bf16 |
   ours, mask head fp32 | ours, hourglass and mask fp32 (third and fourth bf16) | ours, all fp32 (the
   layout only, mask head by FFT; slower than the exact fast path, which is why the default bf16 path
   runs FastWarping) | that with the source volume's grid_sample in bf16 | with a direct mask convolution.
   Explicit bf16 weights of the eager
   module cannot run W: ``avg_pool3d`` has no bfloat16 CPU kernel.
G: eager fp32 | fast fp32 | autocast bf16, contiguous and channels-last | explicit bf16 weights and
   activations (``G.bfloat16()``), contiguous and channels-last | ours (the default: convolutions bf16
   but ``fc``; residual stream, instance-norm statistics, SPADE modulation arithmetic fp32) | ours with
   ``fc`` in bf16 too | ours with the modulation in PyTorch operations instead of the compiled kernel.

And the reason for the ceiling on this CPU: one 512->512 3x3 convolution on 64x64 (G's middle blocks)
in float32 and in bfloat16 channels-last, interleaved, its GFLOP/s and the ratio.

Finally the default path end to end per frame of network work (M float32, S, W and G), eager against
ours, the same way.
"""

from __future__ import annotations

import argparse
import copy
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"


def psnr_u8(a: torch.Tensor, b: torch.Tensor) -> float:
    a8 = (a.float().clamp(0, 1) * 255).to(torch.uint8).double()
    b8 = (b.float().clamp(0, 1) * 255).to(torch.uint8).double()
    mse = float(((a8 - b8) ** 2).mean())
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return float((a - b).norm() / b.norm())


def load_networks():
    from liveportrait.bench import load_networks as random_networks
    from liveportrait.networks import LivePortraitNetworks

    recipe = SHARED / "conformance" / "synth_weights.py"
    if recipe.is_file():
        import importlib.util

        spec = importlib.util.spec_from_file_location("synth_weights", recipe)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        out = tempfile.mkdtemp(prefix="lp-bf16-weights-")
        module.write_checkpoints(out)
        return LivePortraitNetworks.from_pretrained(out, locate=False).eval(), "conformance kit synthetic weights"
    nets, note = random_networks("synthetic")
    return nets, note


def inputs(nets, photos: list[str]) -> dict[str, tuple]:
    """name -> (feature volume, kp driving, kp source) for W."""
    out = {}
    fixture = SHARED / "conformance" / "fixture_s0_d1.npz"
    if fixture.is_file():
        d = np.load(fixture)
        out["fixture s0_d1"] = (torch.from_numpy(d["F_out"]), torch.from_numpy(d["W_kp_driving"]),
                                torch.from_numpy(d["W_kp_source"]))
    if photos:
        import cv2

        from liveportrait.animator import Animator
        from liveportrait.media import read_image
        from liveportrait.motion.compose import MotionOptions

        anim = Animator(nets, "cpu", "fp32")
        drv = cv2.resize(read_image(SHARED / "examples" / "driving" / "d12.jpg"), (256, 256),
                         interpolation=cv2.INTER_AREA)
        motion = anim.extract_motion(drv).motion
        for name in photos:
            img = cv2.resize(read_image(SHARED / "examples" / "source" / f"{name}.jpg"), (256, 256),
                             interpolation=cv2.INTER_AREA)
            src = anim.prepare_source(img)
            x_d = anim.driving_keypoints(src, motion, None, MotionOptions(), driving_is_video=False)
            out[f"photo {name}"] = (src.f_s, x_d, src.x_s)
    return out


def _autocast(fn):
    def run(*args):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = fn(*args)
        return {k: v.float() for k, v in out.items()} if isinstance(out, dict) else out.float()
    return run


def w_configs(nets):
    from liveportrait.speed.bf16 import Bf16Warping
    from liveportrait.speed.fastnets import FastWarping

    fast = FastWarping(nets.W)

    class SampledInBf16(Bf16Warping):
        """The default, with the source volume sampled in bfloat16 (grid_sample on bfloat16 tensors)."""

        def _forward(self, feature_3d, kp_driving, kp_source):
            real = F.grid_sample

            def bf16_sample(x, grid, **kw):
                if x.shape[1] == feature_3d.shape[1] and x.shape[0] == feature_3d.shape[0]:
                    return real(x.bfloat16(), grid.bfloat16(), **kw).float()
                return real(x, grid, **kw)
            F.grid_sample = bf16_sample
            try:
                return super()._forward(feature_3d, kp_driving, kp_source)
            finally:
                F.grid_sample = real

    return {
        "eager fp32": nets.W,
        "fast fp32 (exact rewrites)": fast,
        "autocast bf16 (eager modules)": _autocast(nets.W),
        "ours, all bf16": Bf16Warping(nets.W, float32=()),
        "ours, mask head fp32": Bf16Warping(nets.W, float32=("mask",)),
        "ours, hourglass + mask fp32": Bf16Warping(nets.W, float32=("hourglass", "mask")),
        "ours, all fp32": Bf16Warping(nets.W),
        "ours all fp32, grid_sample in bf16": SampledInBf16(nets.W),
        "ours all fp32, mask head direct (no FFT)": Bf16Warping(nets.W, mask_fft=False),
    }


def g_configs(nets):
    from liveportrait.speed import bf16
    from liveportrait.speed.fastnets import FastGenerator

    g_cl = copy.deepcopy(nets.G).to(memory_format=torch.channels_last)
    g_b = copy.deepcopy(nets.G).bfloat16()
    g_bcl = copy.deepcopy(nets.G).bfloat16().to(memory_format=torch.channels_last)
    ours = bf16.Bf16Generator(nets.G)

    def torch_modulation(x):
        bf16.COMPILED_MODULATION = False
        try:
            return ours(x)
        finally:
            bf16.COMPILED_MODULATION = True

    return {
        "eager fp32": nets.G,
        "fast fp32 (exact rewrites)": FastGenerator(nets.G),
        "autocast bf16, contiguous": _autocast(nets.G),
        "autocast bf16, channels-last": _autocast(lambda x: g_cl(x.contiguous(memory_format=torch.channels_last))),
        "bf16 weights + activations, contiguous": lambda x: g_b(x.bfloat16()).float(),
        "bf16 weights + activations, channels-last": lambda x: g_bcl(
            x.bfloat16().contiguous(memory_format=torch.channels_last)).float(),
        "ours (default)": ours,
        "ours, fc bf16 too": bf16.Bf16Generator(nets.G, float32=()),
        "ours, modulation in PyTorch ops": torch_modulation,
    }


def interleaved(configs: dict, call, rounds: int, echo) -> dict[str, list[float]]:
    """Seconds of one call per config per round, configurations taking turns."""
    times: dict[str, list[float]] = {name: [] for name in configs}
    for name, fn in configs.items():  # warm-up: prepared weights, compiled kernels, oneDNN primitives
        try:
            call(fn)
        except Exception as exc:  # noqa: BLE001 - a configuration PyTorch cannot run is reported, not fatal
            times[name] = None
            echo(f"  {name}: cannot run ({type(exc).__name__}: {str(exc).splitlines()[0][:100]})")
    for r in range(rounds):
        for name, fn in configs.items():
            if times[name] is None:
                continue
            t = time.perf_counter()
            call(fn)
            times[name].append(time.perf_counter() - t)
        echo(f"  round {r + 1}: " + ", ".join(f"{n.split(' (')[0]} {v[-1]:.2f}s" for n, v in times.items() if v))
    return times


def ratio_text(times: dict, name: str, base: str = "eager fp32") -> str:
    ratios = [b / t for b, t in zip(times[base], times[name])]
    return f"{statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"


def time_text(ts: list[float]) -> str:
    return f"{min(ts):.3f} | {100 * (max(ts) / min(ts) - 1):.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--photos", nargs="*", default=["s1", "s9"], help="example source photos (names)")
    parser.add_argument("--quick", action="store_true", help="errors on the fixture only, one round")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.photos = 1, []

    from liveportrait.bench import machine_description
    from liveportrait.speed.backends import cpu_has_native_bf16, resolve_precision, set_threads
    from liveportrait.speed.fastnets import FastGenerator

    set_threads()

    def echo(msg):
        print(msg, file=sys.stderr, flush=True)

    print(f"machine: {machine_description()}")
    print(f"native bfloat16 (cpuinfo flags): {cpu_has_native_bf16()}; precision 'auto' here: "
          f"{resolve_precision('auto', 'cpu')}")
    nets, note = load_networks()
    print(f"weights: {note}")
    wc, gc = w_configs(nets), g_configs(nets)  # outside inference mode: copies of modules stay usable
    exact_g = FastGenerator(nets.G)
    with torch.inference_mode():
        ins = inputs(nets, args.photos)
        first = next(iter(ins.values()))

        # -- errors ----------------------------------------------------------------------------------
        w_err: dict[str, list] = {n: [] for n in wc}
        g_err: dict[str, list] = {n: [] for n in gc}
        both: dict[str, tuple] = {}
        for iname, (f_s, kp_d, kp_s) in ins.items():
            echo(f"errors on {iname} ...")
            w_ref = nets.W(f_s, kp_d, kp_s)
            frame_ref = nets.G(w_ref.out)
            for name, fn in wc.items():
                if name == "eager fp32":
                    continue
                try:
                    o = fn(f_s, kp_d, kp_s)
                except Exception:  # noqa: BLE001
                    continue
                w_err[name].append((rel(o.out, w_ref.out), rel(o.deformation, w_ref.deformation),
                                    rel(o.occlusion_map, w_ref.occlusion_map),
                                    psnr_u8(exact_g(o.out), frame_ref)))
            for name, fn in gc.items():
                if name == "eager fp32":
                    continue
                try:
                    o = fn(w_ref.out)
                except Exception:  # noqa: BLE001
                    continue
                g_err[name].append((rel(o, frame_ref), psnr_u8(o, frame_ref)))
            frame = gc["ours (default)"](wc["fast fp32 (exact rewrites)"](f_s, kp_d, kp_s).out)
            both[iname] = (rel(frame, frame_ref), psnr_u8(frame, frame_ref))

        # -- speed -----------------------------------------------------------------------------------
        echo("W, interleaved rounds ...")
        w_times = interleaved(wc, lambda fn: fn(*first), args.rounds, echo)
        w_in = nets.W(*first).out
        echo("G, interleaved rounds ...")
        g_times = interleaved(gc, lambda fn: fn(w_in), args.rounds, echo)

        # -- the default path, per frame of network work ------------------------------------------------
        from liveportrait.animator import Animator
        from liveportrait.motion.compose import MotionOptions
        from liveportrait.speed import accelerate

        rng = np.random.default_rng(0)
        src_img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
        drv_img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
        frames = {}
        for name, anim in (("eager fp32", Animator(nets, "cpu", "fp32")),
                           ("fast fp32", Animator(accelerate(nets, "fast"), "cpu", "fp32")),
                           ("fast bf16 (default here)", Animator(accelerate(nets, "fast", precision="bf16"), "cpu",
                                                                 "bf16"))):
            src = anim.prepare_source(src_img)
            ref = anim.extract_motion(src_img).motion

            def frame(anim=anim, src=src, ref=ref):
                motion = anim.extract_motion(drv_img).motion
                x_d = anim.driving_keypoints(src, motion, ref, MotionOptions())
                return anim.render(src, x_d), x_d
            frames[name] = frame
        echo("frames, interleaved rounds ...")
        f_times = interleaved(frames, lambda fn: fn(), args.rounds, echo)
        img_ref, kp_ref = frames["eager fp32"]()
        img_b, kp_b = frames["fast bf16 (default here)"]()

        echo("one 512->512 3x3 convolution on 64x64, interleaved rounds ...")
        x = torch.randn(1, 512, 64, 64)
        w = torch.randn(512, 512, 3, 3) * 0.02
        xb, wb = (t.bfloat16().contiguous(memory_format=torch.channels_last) for t in (x, w))
        convs = {"eager fp32": lambda: F.conv2d(x, w, padding=1),
                 "bf16 channels-last": lambda: F.conv2d(xb, wb, padding=1)}
        c_times = interleaved(convs, lambda fn: fn(), max(3, args.rounds), echo)

    print()
    gflop = 2 * 512 * 512 * 9 * 64 * 64 / 1e9
    print(f"512->512 3x3 conv on 64x64 ({gflop:.1f} GFLOP): float32 {gflop / min(c_times['eager fp32']):.0f} GFLOP/s, "
          f"bfloat16 channels-last {gflop / min(c_times['bf16 channels-last']):.0f} GFLOP/s, "
          f"ratio {ratio_text(c_times, 'bf16 channels-last')}")
    print()
    print("W (warping), one call; best time of the rounds, spread = slowest / best - 1; x eager = median of the "
          "per-round ratios [min-max]; errors: worst over the inputs")
    print("| W configuration | s | spread | x eager fp32 | rel L2 out | rel L2 deformation | rel L2 occlusion | "
          "frame PSNR dB (min) |")
    print("|---|---|---|---|---|---|---|---|")
    for name in wc:
        if w_times[name] is None:
            print(f"| {name} | cannot run | | | | | | |")
            continue
        errs = w_err[name]
        cells = ["0", "0", "0", "inf"] if name == "eager fp32" else (
            [f"{max(e[i] for e in errs):.1e}" for i in range(3)] + [f"{min(e[3] for e in errs):.1f}"])
        print(f"| {name} | {time_text(w_times[name])} | {ratio_text(w_times, name)} | " + " | ".join(cells) + " |")
    print()
    print("| G configuration | s | spread | x eager fp32 | rel L2 frame | frame PSNR dB (min) |")
    print("|---|---|---|---|---|---|")
    for name in gc:
        if g_times[name] is None:
            print(f"| {name} | cannot run | | | | |")
            continue
        errs = g_err[name]
        cells = ["0", "inf"] if name == "eager fp32" else [f"{max(e[0] for e in errs):.1e}",
                                                           f"{min(e[1] for e in errs):.1f}"]
        print(f"| {name} | {time_text(g_times[name])} | {ratio_text(g_times, name)} | " + " | ".join(cells) + " |")
    print()
    print("Default bf16 path (W fast fp32 + G ours), frame against float32 eager:")
    for iname, (r, p) in both.items():
        print(f"  {iname}: rel L2 {r:.1e}, PSNR {p:.1f} dB")
    print()
    print("Per frame of network work (M, S, W, G through the Animator; random 256x256 source and driving):")
    print("| path | s per frame | spread | x eager fp32 |")
    print("|---|---|---|---|")
    for name in frames:
        print(f"| {name} | {time_text(f_times[name])} | {ratio_text(f_times, name)} |")
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    print(f"  bf16 frame vs eager: PSNR {psnr_u8(img_b, img_ref):.1f} dB; keypoints identical: "
          f"{torch.equal(kp_b, kp_ref)}")


if __name__ == "__main__":
    main()
