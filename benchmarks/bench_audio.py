"""Audio driving on the CPU: memory against audio length, first-window latency, and per-second costs.

    python benchmarks/bench_audio.py [--seconds 10 120] [--weights DIR] [--threads N] [--no-first-frame]

Full-size networks: the audio conformance kit's synthetic JoyVASA + HuBERT files (written into a temporary
folder by ../shared/conformance-audio/synth_weights_audio.py unless ``--weights`` names a JoyVASA-layout
folder). Each audio length runs in its own child process, so that its peak RSS is its own: the motion is
streamed window by window (4 s of audio each) as the product does, and only the last window is kept, so the
peak should not grow with the audio. The audio is a synthetic warble (speech-like pitch and loudness),
written as a 16 kHz WAV and decoded through the product's reader.

Printed per length: windows, frames, peak RSS (MiB), load time, first-window latency (audio read and
encoded, 50 denoising steps with guidance: when the first frames could be rendered), and the per-second-of-
audio costs of the HuBERT encoding and of the motion sampling.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import wave
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
KIT = HERE.parent.parent / "shared" / "conformance-audio"
PHOTO = HERE.parent.parent / "shared" / "examples" / "source" / "s1.jpg"


def write_warble(path: Path, seconds: float, rate: int = 16000) -> None:
    t = np.arange(int(seconds * rate)) / rate
    pitch = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    loud = 0.5 * (0.55 + 0.45 * np.sin(2 * np.pi * 3.1 * t)) * (np.sin(2 * np.pi * 0.25 * t) > -0.7)
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    x = loud * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)) / 1.6
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes((np.clip(x, -1, 1) * 32767).astype("<i2").tobytes())


def child(weights: str, audio: str) -> dict:
    """One run: load, then stream the motion of ``audio``, timing encoding and sampling apart."""
    import torch

    from liveportrait.audio import AudioMotionModel, RandomNoise
    from liveportrait.audio.io import read_audio_chunks

    t0 = time.perf_counter()
    model = AudioMotionModel.from_pretrained(weights)
    load = time.perf_counter() - t0
    spent = {"encode": 0.0, "sample": 0.0}
    encode, sample = model.encode, model.sample

    def timed(name, fn):
        def run(*a, **k):
            s = time.perf_counter()
            out = fn(*a, **k)
            spent[name] += time.perf_counter() - s
            return out
        return run

    model.encode, model.sample = timed("encode", encode), timed("sample", sample)
    start = time.perf_counter()
    first, windows, frames = None, 0, 0
    with torch.inference_mode():
        for coef in model.stream_coefficients(read_audio_chunks(audio), RandomNoise(0)):
            if first is None:
                first = time.perf_counter() - start
            windows, frames = windows + 1, frames + len(coef)
    total = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux
    return {"load_s": load, "first_window_s": first, "total_s": total, "windows": windows, "frames": frames,
            "encode_s": spent["encode"], "sample_s": spent["sample"], "peak_rss_mib": peak}


def first_frame_child(weights: str, audio: str, photo: str) -> dict:
    """The product's speech job up to its first frame, on full-size networks."""
    from liveportrait.api import LivePortraitPipeline
    from liveportrait.audio import AudioDriving, AudioMotionModel
    from liveportrait.audio.animate import animate_image_audio
    from liveportrait.bench import _synthetic_networks
    from liveportrait.media import read_image
    from liveportrait.pipeline.frames import limit_size

    t0 = time.perf_counter()
    pipe = LivePortraitPipeline(_synthetic_networks("released"), device="cpu")
    pipe.set_progress_bar_config(disable=True)
    model = AudioMotionModel.from_pretrained(weights)
    load = time.perf_counter() - t0
    engine = pipe.engine(pipe._config(None))
    image = limit_size(read_image(photo), engine.config.source_max_dim)
    t1 = time.perf_counter()
    faces = engine.source.prepare_image(image)
    prepare = time.perf_counter() - t1
    window = {}
    stream = model.stream

    def timed_stream(*a, **k):
        for i, m in enumerate(stream(*a, **k)):
            if i == 0:
                window["s"] = time.perf_counter() - start
            yield m

    model.stream = timed_stream
    driving = AudioDriving.open(audio, model, seed=0)
    start = time.perf_counter()
    frames = animate_image_audio(engine, image, faces, driving)
    frame = next(frames)
    first = time.perf_counter() - start
    frames.close()
    c = pipe.compute
    return {"load_s": load, "prepare_s": prepare, "first_window_s": window["s"], "first_frame_s": first,
            "frame_shape": list(frame.shape), "compute": f"{c.device}, {c.precision}, {c.backend}"}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, nargs="+", default=[10.0, 120.0])
    p.add_argument("--weights", help="a JoyVASA-layout folder (default: the kit's synthetic files)")
    p.add_argument("--threads", type=int, default=0, help="torch threads in the child (0: torch's default)")
    p.add_argument("--no-first-frame", action="store_true", help="skip the first-frame latency (full-size "
                                                                    "LivePortrait networks, a few GB)")
    p.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--first-frame-child", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child or a.first_frame_child:
        if a.threads:
            import torch

            torch.set_num_threads(a.threads)
        print(json.dumps(child(*a.child) if a.child else first_frame_child(*a.first_frame_child)))
        return
    with tempfile.TemporaryDirectory(prefix="bench_audio_") as tmp:
        weights = a.weights
        if weights is None:
            sys.path.insert(0, str(KIT))
            import synth_weights_audio

            weights = str(Path(tmp) / "weights")
            synth_weights_audio.write_all(weights, "release")
        print(f"{'audio s':>8} {'windows':>7} {'frames':>6} {'peak RSS MiB':>12} {'load s':>7} "
              f"{'first window s':>14} {'encode s/s':>10} {'sample s/s':>10} {'realtime x':>10}")
        for seconds in a.seconds:
            audio = Path(tmp) / f"warble_{seconds:g}s.wav"
            write_warble(audio, seconds)
            cmd = [sys.executable, __file__, "--child", weights, str(audio), "--threads", str(a.threads)]
            out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ})
            r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{seconds:8.1f} {r['windows']:7d} {r['frames']:6d} {r['peak_rss_mib']:12.0f} {r['load_s']:7.1f} "
                  f"{r['first_window_s']:14.2f} {r['encode_s'] / seconds:10.3f} {r['sample_s'] / seconds:10.3f} "
                  f"{seconds / r['total_s']:10.2f}", flush=True)
        if a.no_first_frame:
            return
        audio = Path(tmp) / "warble_first_frame.wav"
        write_warble(audio, min(a.seconds))
        cmd = [sys.executable, __file__, "--first-frame-child", weights, str(audio), str(PHOTO),
               "--threads", str(a.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True, env={**os.environ})
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"first frame of `animate -s {PHOTO.name} -d speech`: {r['first_frame_s']:.2f} s after streaming "
              f"starts (first window {r['first_window_s']:.2f} s, then frame 0 rendered and pasted back "
              f"{r['first_frame_s'] - r['first_window_s']:.2f} s; {r['compute']}, full-size networks, "
              f"{r['frame_shape'][1]}x{r['frame_shape'][0]} output; loading {r['load_s']:.1f} s and preparing the "
              f"photo {r['prepare_s']:.1f} s before that)", flush=True)


if __name__ == "__main__":
    main()
