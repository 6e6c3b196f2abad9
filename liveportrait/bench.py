"""The speed benchmark behind ``liveportrait benchmark`` and ``benchmarks/bench_speed.py``.

One row per (backend, precision): milliseconds per frame of each stage, end-to-end frames per
second of the product itself (``LivePortraitPipeline``, as ``liveportrait animate`` runs it: the
driving's motion, the source prepared, W and G, paste-back into the photo, encoding with the
networks a frame ahead in a thread, the output marked), the peak resident memory of the process, and the GFLOP/s each
network reaches (float32 eager FLOPs divided by the measured time, so rewrites that remove work
show as more than the hardware's rate). Each row runs in its own process when several are asked
for, so that peak memory is that row's own. The inputs are the example photo's face and the example
clip (``example_inputs``), so that W runs on keypoints like a user's. ``compare_end_to_end`` times
whole jobs of float32 eager and of animate's default, taking turns.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

STAGES = ("M", "W", "G", "S", "crop", "paste", "decode", "encode")


@dataclass
class Row:
    backend: str
    precision: str
    device: str
    frames: int
    allocator: str = "default"
    ms: dict[str, float] = field(default_factory=dict)
    fps: float = 0.0
    fps_serial: float = 0.0
    peak_rss_mb: float = 0.0
    gflops: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


# the CPU features the kernels and the precision rule depend on (speed/compute.py reads the same flags),
# reported with every benchmark, present or not
CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16")


def cpu_features(cpuinfo: str | None = None) -> tuple[str, dict[str, bool]]:
    """(model name, {feature: present}) from ``/proc/cpuinfo`` (or its text), as the precision rule reads it;
    the model is ``platform.processor()`` and every feature False where there is no such file."""
    from .speed.compute import cpu_info

    model, flags = cpu_info(cpuinfo)
    return model or platform.processor() or platform.machine(), {f: f in flags for f in CPU_FEATURES}


def machine_description() -> str:
    cpu, features = cpu_features()
    flags = ", ".join(f if on else f"no {f}" for f, on in features.items())
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        cores = os.cpu_count()
    gpu = ""
    if torch.cuda.is_available():
        gpu = f", GPU {torch.cuda.get_device_name(0)}"
    load = ""
    if hasattr(os, "getloadavg"):
        load = ", load average %.2f" % os.getloadavg()[0]
    return f"{cpu} ({flags}), {cores} cores{gpu}, torch {torch.__version__}{load}"


# what the benchmark animates by default: a photo and an already framed driving clip of the example media
# (../shared/examples beside the checkout, or $LIVEPORTRAIT_SHARED), so that the keypoints W sees are M's on
# faces, as a user's are (random pictures give keypoints whose Gaussian heatmaps are mostly denormal floats)
EXAMPLE_PHOTO = "source/s1.jpg"
EXAMPLE_CLIP = "driving/d0.mp4"


def example_file(name: str) -> Path | None:
    """``examples/<name>`` of the shared example media, or None where they are not there."""
    roots = [Path(os.environ["LIVEPORTRAIT_SHARED"])] if os.environ.get("LIVEPORTRAIT_SHARED") else []
    roots.append(Path(__file__).resolve().parents[1].parent / "shared")
    for root in roots:
        if (root / "examples" / name).is_file():
            return root / "examples" / name
    return None


def network_gflop(networks) -> dict[str, float]:
    """Float32 FLOPs (2 per multiply-add) of one frame of M, W and G, counted on the eager modules."""
    from torch.utils.flop_counter import FlopCounterMode

    from .speed.onnx_backend import example_inputs

    ex = example_inputs(networks)
    out = {}
    for name, fn in (("M", lambda: networks.M(*ex["M"])), ("W", lambda: networks.W(*ex["W"])),
                     ("G", lambda: networks.G(*ex["G"])), ("F", lambda: networks.F(*ex["F"]))):
        counter = FlopCounterMode(display=False)
        with counter, torch.inference_mode():
            fn()
        out[name] = counter.get_total_flops() / 1e9
    return out


def _synthetic_networks(config_name: str):
    from .networks import LivePortraitNetworks, ModelConfig
    from .networks.blocks import SpectralNormConv2d

    torch.manual_seed(0)
    nets = LivePortraitNetworks(ModelConfig.named(config_name))
    with torch.no_grad():
        for m in nets.modules():
            if isinstance(m, SpectralNormConv2d):
                m.reset_spectral_vectors()
    return nets.eval()


def load_networks(weights: str | None, config_name: str = "released"):
    """(networks, note): released weights when found, else synthetic random weights of the config."""
    from .errors import WeightsError
    from .networks import LivePortraitNetworks
    from .networks.checkpoint import locate_weights

    if weights != "synthetic":
        try:
            nets = LivePortraitNetworks.from_pretrained(weights, config_name, download=False)
            return nets, f"weights: {locate_weights(weights).base_dir.parent}"
        except WeightsError:
            if weights:
                raise
    return _synthetic_networks(config_name), (f"weights: synthetic random ({config_name} config): "
                                              "speed is that of real weights, pictures are not")


def _timeit(fn, frames: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return float(np.median(times)) * 1e3


def _test_frames(n: int, size: int = 512, seed: int = 0) -> list[np.ndarray]:
    """A moving smooth pattern (compresses like video, not like noise)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size // 16, size // 16, 3), dtype=np.uint8)
    import cv2

    big = cv2.resize(base, (size * 2, size * 2), interpolation=cv2.INTER_CUBIC)
    return [np.ascontiguousarray(big[i * 4:i * 4 + size, i * 3:i * 3 + size]) for i in range(n)]


def run_row(backend: str, precision: str, device: str, frames: int, weights: str | None,
            config_name: str = "released", threads: int | None = None, image: str | None = None,
            video: str | None = None, allocator: str = "default") -> Row:
    """Benchmark one backend and precision in this process. ``allocator="tuned"`` first applies the
    setting ``liveportrait animate`` uses (``allocator.py``); a process cannot go back from it."""
    import cv2

    from .animator import Animator
    from .face import geometry
    from .face.mask import PasteBack
    from .media import VideoReader, VideoWriter
    from .motion.compose import MotionOptions
    from .provenance import NOT_GENERATED
    from .speed.backends import accelerate, set_threads
    from .speed.compute import cpu_has_native_bf16

    if allocator == "tuned":
        from .speed.allocator import tune_allocator

        if not tune_allocator():
            allocator = "default"  # not glibc, or switched off by LIVEPORTRAIT_ALLOCATOR=default
    set_threads(threads)
    row = Row(backend, precision, device, frames, allocator)
    nets, note = load_networks(weights, config_name)
    row.notes.append(note)
    flop = network_gflop(nets)
    accel = accelerate(nets, backend, device=device, precision=precision)
    anim = Animator(accel, device, precision)

    inputs = example_inputs(image, video)
    row.notes.append(inputs.note)
    src256 = inputs.source_256
    src = anim.prepare_source(src256)
    opts = MotionOptions()

    with tempfile.TemporaryDirectory() as tmp:
        clip = inputs.clip
        if clip is None:
            clip = Path(tmp) / "driving.mp4"
            w = VideoWriter(clip, Fraction(25), crf=18, stamp=NOT_GENERATED)  # a test pattern, not a result
            for f in _test_frames(max(frames + 2, 4)):
                w.write(f)
            w.close()
        with VideoReader(clip) as reader:
            drv = [f for _, f in zip(range(frames + 2), reader)]
        drv256 = [cv2.resize(f, (256, 256), interpolation=cv2.INTER_AREA) for f in drv]
        ref = anim.extract_motion(drv256[0]).motion
        info = anim.extract_motion(drv256[1])

        # half precision without the instructions for it is emulated and very slow: time one call
        # of each network and skip the end-to-end stream
        emulated = precision != "fp32" and device == "cpu" and not (
            precision == "bf16" and cpu_has_native_bf16())
        nf, warm = (1, 0) if emulated else (frames, 1)
        row.ms["M"] = _timeit(lambda: anim.extract_motion(drv256[1]), nf, warm)
        row.ms["S"] = _timeit(lambda: anim.driving_keypoints(src, info.motion, ref, opts), nf, warm)
        x_d = anim.driving_keypoints(src, info.motion, ref, opts)
        with torch.inference_mode(), anim._autocast():
            w_out = accel.W(src.f_s, kp_driving=x_d, kp_source=src.x_s)
            row.ms["W"] = _timeit(lambda: accel.W(src.f_s, kp_driving=x_d, kp_source=src.x_s), nf, warm)
            row.ms["G"] = _timeit(lambda: accel.G(w_out.out.float()), nf, warm)
        # the crop of a driving frame (affine warp to the network input; face tracking is not timed here)
        m = np.array([[0.5, 0.0, 0.0], [0.0, 0.5, 0.0]], np.float32)
        m3 = np.vstack([m, [0, 0, 1]]).astype(np.float32)
        row.ms["crop"] = _timeit(lambda: geometry.to_net_input(geometry.warp(drv[0], m3, 512)), frames)
        canvas, paste = inputs.canvas, PasteBack(inputs.canvas.shape, inputs.crop_to_canvas)
        out512 = _test_frames(1, 512, seed=2)[0]  # the cost of pasting does not depend on the picture
        row.ms["paste"] = _timeit(lambda: paste(out512, canvas), frames)

        def decode():
            with VideoReader(clip) as r:
                for _ in zip(range(frames), r):
                    pass
        t = time.perf_counter()
        decode()
        row.ms["decode"] = (time.perf_counter() - t) * 1e3 / frames

        def encode():
            # the encoder alone (the watermark has its own benchmark, benchmarks/bench_watermark.py)
            wr = VideoWriter(Path(tmp) / "enc.mp4", Fraction(25), crf=18, stamp=NOT_GENERATED)
            for _ in range(frames):
                wr.write(canvas)
            wr.close()
        t = time.perf_counter()
        encode()
        row.ms["encode"] = (time.perf_counter() - t) * 1e3 / frames

        row.fps_serial = 1e3 / sum(row.ms[s] for s in STAGES)
        if emulated:
            row.notes.append(f"{precision} on this CPU is emulated: one call per network, "
                             "end-to-end fps estimated from the stage sum")
        else:
            row.fps = end_to_end_fps(accel, backend, precision, device, canvas, clip, Path(tmp) / "e2e.mp4",
                                     inputs.box, max_frames=frames + 2)
    row.peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name in ("M", "W", "G"):
        row.gflops[name] = flop[name] / (row.ms[name] / 1e3)
    return row


def end_to_end_fps(networks, backend: str, precision: str, device: str, canvas: np.ndarray, driving: Path,
                   output: Path, box: str | None = None, max_frames: int | None = None) -> float:
    """Frames per second of a whole job through the public API: ``canvas`` animated by ``driving`` and
    written to ``output``. The face is found as ``animate`` finds it (``box`` "auto", once per job), or
    framed from the given box ("x0,y0,x1,y1"; default: the canvas's centre square), and pasted back; the
    clip is already framed; ``max_frames``: only the clip's first frames."""
    from .api import LivePortraitPipeline

    pipe = LivePortraitPipeline(networks, device=device, precision=precision, backend=backend, tune_memory=False)
    pipe.set_progress_bar_config(disable=True)
    if box is None:
        h, w = canvas.shape[:2]
        side = min(h, w) // 2
        box = f"{(w - side) // 2},{(h - side) // 2},{(w + side) // 2},{(h + side) // 2}"
    t = time.perf_counter()
    result = pipe(canvas, str(driving), crop=box, crop_driving="never", save_template=False,
                  max_frames=max_frames).save(output)
    return result.frames / (time.perf_counter() - t)


@dataclass
class Inputs:
    """What the benchmark animates: the source's 256x256 network input, the picture it is pasted back
    into with the crop's matrix, the face's box in that picture, and the driving clip (None: make one)."""

    source_256: np.ndarray
    canvas: np.ndarray
    crop_to_canvas: np.ndarray
    box: str | None  # the job's crop: "auto" (found as animate finds it) or a box
    clip: Path | None
    note: str


def example_inputs(image: str | None = None, video: str | None = None) -> Inputs:
    """The photo (``image``, else the example photo) with its face framed as ``animate`` frames it, and
    the driving clip (``video``, else the example clip); without the example media or a face finder, a
    synthetic picture's centre and a synthetic clip, and the note says so."""
    import cv2

    from .media import read_image

    photo = Path(image) if image else example_file(EXAMPLE_PHOTO)
    clip = Path(video) if video else example_file(EXAMPLE_CLIP)
    clip_note = f"driving {clip.name}" if clip else "driving: a synthetic clip (example media not found)"
    if photo is not None:
        picture = read_image(photo)
        try:
            from .face.cropper import Cropper

            crop = Cropper().crop_image(picture)[0]
            return Inputs(crop.crop_256, picture, np.asarray(crop.M_c2o, np.float32), "auto", clip,
                          f"source {photo.name} (its face framed as animate frames it), {clip_note}, batch 1 "
                          "(animate's default)")
        except Exception as exc:  # noqa: BLE001 - no face finder installed, or no face: the picture's centre
            why = f"{type(exc).__name__}"
        small = cv2.resize(picture, (256, 256), interpolation=cv2.INTER_AREA)
        canvas = cv2.resize(picture, (512, 512), interpolation=cv2.INTER_AREA)
        return Inputs(small, canvas, np.eye(3, dtype=np.float32), "0,0,512,512", clip,
                      f"source {photo.name} resized whole (no face framed: {why}), {clip_note}, batch 1")
    src_img = _test_frames(1, 512, seed=1)[0]
    canvas = cv2.resize(src_img, (1280, 720))
    return Inputs(cv2.resize(src_img, (256, 256), interpolation=cv2.INTER_AREA), canvas,
                  np.array([[1.0, 0, 384], [0, 1.0, 104], [0, 0, 1]], np.float32), None, clip,
                  f"source: a synthetic picture (example media not found: random keypoints, whose heatmaps are "
                  f"denormal floats), {clip_note}, batch 1")


def end_to_end_worker(backend: str, precision: str, allocator: str, device: str, frames: int, weights: str | None,
                      config_name: str = "released", threads: int | None = None, image: str | None = None,
                      video: str | None = None) -> dict:
    """One configuration's whole jobs as ``animate`` runs them (the public API with animate's defaults:
    the face found in the photo, pasted back, encoded, the networks a frame ahead in a thread), on the
    example photo and clip: a warm-up job, then jobs of 2 and 2 + ``frames`` output frames. Seconds per
    frame are the difference of the two over ``frames`` (the one-off costs cancel), for the wall clock
    and for the networks (M, W, G and S timed in their forward passes, whichever thread runs them)."""
    from .api import LivePortraitPipeline
    from .speed.backends import set_threads

    set_threads(threads)
    nets, note = load_networks(weights, config_name)
    pipe = LivePortraitPipeline(nets, device=device, precision=precision, backend=backend,
                                tune_memory=allocator == "tuned")
    pipe.set_progress_bar_config(disable=True)
    spent = [0.0]
    started: dict[int, float] = {}

    def before(module, args, kwargs=None):
        started[id(module)] = time.perf_counter()

    def after(module, args, output):
        spent[0] += time.perf_counter() - started.pop(id(module))

    net = pipe.networks
    for name in ("M", "W", "G", "S"):
        module = getattr(net, name, None)
        if isinstance(module, torch.nn.Module):
            module.register_forward_pre_hook(before)
            module.register_forward_hook(after)
    inputs = example_inputs(image, video)
    out: dict = {"note": inputs.note + "; " + note, "backend": pipe.compute.backend,
                 "precision": pipe.compute.precision, "allocator": allocator, "load": []}
    with tempfile.TemporaryDirectory() as tmp:
        clip = inputs.clip
        if clip is None:
            from .media import VideoWriter
            from .provenance import NOT_GENERATED

            clip = Path(tmp) / "driving.mp4"
            w = VideoWriter(clip, Fraction(25), crf=18, stamp=NOT_GENERATED)
            for f in _test_frames(frames + 4):
                w.write(f)
            w.close()
        crop_driving = "auto" if inputs.box == "auto" else "never"

        def job(n: int) -> tuple[float, float]:
            spent[0] = 0.0
            out["load"].append(os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0)
            t = time.perf_counter()
            pipe(inputs.canvas, str(clip), crop=inputs.box or "auto", crop_driving=crop_driving, max_frames=n,
                 save_template=False).save(Path(tmp) / f"job{n}.mp4")
            return time.perf_counter() - t, spent[0]

        job(2)
        short, long = job(2), job(2 + frames)
    out["jobs"] = {"2": short, str(2 + frames): long}  # (wall, networks) seconds of each job
    out["wall_s"] = (long[0] - short[0]) / frames
    out["net_s"] = (long[1] - short[1]) / frames
    return out


def compare_end_to_end(rounds: int, device: str, frames: int, weights: str | None, config_name: str = "released",
                       threads: int | None = None, image: str | None = None, video: str | None = None,
                       configs: list[tuple[str, str, str]] | None = None, echo=None) -> list[dict]:
    """``end_to_end_worker`` for float32 eager with the default allocator (the reference's way) and for
    animate's defaults, each in a process of its own, taking turns for ``rounds`` rounds; per
    configuration the round with the least wall time per frame, and every round's times."""
    configs = configs or [("eager", "fp32", "default"), ("auto", "auto", "tuned")]
    runs: dict[tuple, list[dict]] = {c: [] for c in configs}
    for r in range(rounds):
        for c in configs:
            spec = dict(backend=c[0], precision=c[1], allocator=c[2], device=device, frames=frames, weights=weights,
                        config_name=config_name, threads=threads, image=image, video=video)
            res = subprocess.run([sys.executable, "-m", "liveportrait.bench", json.dumps({"end_to_end": spec})],
                                 capture_output=True, text=True)
            if res.returncode != 0:
                raise RuntimeError(f"end to end {c[0]}/{c[1]} failed: {res.stderr.strip()[-600:]}")
            runs[c].append(json.loads(res.stdout.strip().splitlines()[-1]))
            if echo:
                echo(r, runs[c][-1])
    best = []
    for c in configs:
        top = dict(min(runs[c], key=lambda x: x["wall_s"]))
        top["rounds"] = [(x["wall_s"], x["net_s"]) for x in runs[c]]
        top["load"] = [v for x in runs[c] for v in x["load"]]
        best.append(top)
    return best


def format_end_to_end(results: list[dict], frames: int) -> str:
    """The end-to-end lines: seconds per frame, wall clock and networks, and the speed-up of each
    configuration over the first (float32 eager, the reference's way)."""
    base = results[0]
    loads = [v for r in results for v in r["load"]]
    lines = [f"animate end to end ({len(base['rounds'])} interleaved round(s), {frames} frame(s) timed per job, "
             f"best round; load average {min(loads):.2f} to {max(loads):.2f}), seconds per output frame:"]
    for r in results:
        ratio = base["wall_s"] / r["wall_s"] if r["wall_s"] > 0 else float("nan")
        per_round = ", ".join(f"{w:.2f}" for w, _ in r["rounds"])
        lines.append(f"  {r['backend']}/{r['precision']} ({r['allocator']} allocator): wall {r['wall_s']:.2f} s, "
                     f"networks {r['net_s']:.2f} s, the rest {r['wall_s'] - r['net_s']:.2f} s; "
                     f"{ratio:.2f}x float32 eager (rounds: {per_round} s)")
    lines.append(f"  {base['note']}")
    return "\n".join(lines)


def run_rows(specs: list[tuple[str, str, str]], device: str, frames: int, weights: str | None,
             config_name: str = "released", threads: int | None = None, subprocesses: bool = True,
             image: str | None = None, video: str | None = None, echo=None) -> list[Row]:
    """Each (backend, precision, allocator) in its own process (clean peak memory, its own allocator
    setting), or all in this one."""
    rows = []
    for backend, precision, allocator in specs:
        if not subprocesses:
            rows.append(run_row(backend, precision, device, frames, weights, config_name, threads, image, video,
                                allocator))
        else:
            cmd = [sys.executable, "-m", "liveportrait.bench", json.dumps(
                dict(backend=backend, precision=precision, device=device, frames=frames, weights=weights,
                     config_name=config_name, threads=threads, image=image, video=video, allocator=allocator))]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                row = Row(backend, precision, device, frames, allocator,
                          notes=[f"failed: {res.stderr.strip()[-400:]}"])
            else:
                row = Row(**json.loads(res.stdout.strip().splitlines()[-1]))
            rows.append(row)
        if echo:
            echo(rows[-1])
    return rows


def format_table(rows: list[Row], baseline: Row | None = None) -> str:
    """Markdown table; "x eager" is relative to float32 eager with the default allocator when there is
    such a row (the reference's way of running), else to float32 eager."""
    eager = [r for r in rows if r.backend == "eager" and r.precision == "fp32" and r.fps]
    base = baseline or next((r for r in eager if r.allocator == "default"), eager[0] if eager else None)
    head = ["backend", "precision", "allocator"] + [f"{s} ms" for s in STAGES] + [
        "fps", "x eager", "peak RSS MB", "GFLOP/s M/W/G"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        fps = r.fps or r.fps_serial
        if not fps:
            lines.append(f"| {r.backend} | {r.precision} | {r.allocator} | " + " | ".join("-" for _ in head[3:])
                         + " |")
            continue
        speed = f"{fps / base.fps:.2f}" if base and base.fps else "-"
        shown = f"{r.fps:.3f}" if r.fps else f"~{r.fps_serial:.4f}"
        cells = [r.backend, r.precision, r.allocator] + [f"{r.ms.get(s, float('nan')):.1f}" for s in STAGES] + [
            shown, speed, f"{r.peak_rss_mb:.0f}",
            "/".join(f"{r.gflops.get(n, 0):.0f}" for n in ("M", "W", "G"))]
        lines.append("| " + " | ".join(cells) + " |")
    notes = sorted({n for r in rows for n in r.notes})
    return "\n".join(lines + [""] + [f"- {n}" for n in notes])


def _main() -> None:
    spec = json.loads(sys.argv[1])
    if "end_to_end" in spec:
        print(json.dumps(end_to_end_worker(**spec["end_to_end"])))
        return
    row = run_row(**spec)
    print(json.dumps(asdict(row)))


if __name__ == "__main__":
    _main()
