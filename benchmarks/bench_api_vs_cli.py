"""The Python API against the command line on the same job: the same backend, precision and speed?

    python benchmarks/bench_api_vs_cli.py [--rounds 3] [--full] [--frames 12]

One job (an example photo animated by the first frames of an example driving video, written as mp4) is
run by ``liveportrait animate`` and by a script that uses only ``LivePortraitPipeline``, each in a fresh
process, taking turns round after round so that a drifting machine load hits both alike. Printed: each
one's backend, precision and device (the CLI's from its summary line, the API's from ``pipe.compute``),
its wall time per round, and the ratio API / CLI per round (1.00: the same speed).

Weights: tiny random networks by default (seconds per job), ``--full`` the conformance kit's synthetic
full-size weights (../shared/conformance/synth_weights.py; the speed of the released networks).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"

API_SCRIPT = """
import json, sys
from liveportrait import LivePortraitPipeline
weights, model_config, source, driving, output = sys.argv[1:6]
pipe = LivePortraitPipeline.from_pretrained(weights, model_config=model_config or None, download=False, quiet=True)
pipe.set_progress_bar_config(disable=True)
result = pipe(source, driving).save(output)
c = pipe.compute
print(json.dumps({"frames": result.frames, "device": c.device, "precision": c.precision, "backend": c.backend}))
"""


def write_weights(folder: Path, full: bool) -> str:
    """Weights in the released layout; returns the model config name to pass ("" for the files' own)."""
    if full:
        spec = importlib.util.spec_from_file_location("synth_weights", SHARED / "conformance" / "synth_weights.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        module.write_checkpoints(str(folder))
        return ""
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.networks.checkpoint import save_released

    torch.manual_seed(0)
    save_released(LivePortraitNetworks(ModelConfig.tiny()), folder)
    return "tiny"


def short_driving(src: Path, out: Path, frames: int) -> None:
    from liveportrait.media import VideoReader, VideoWriter
    from liveportrait.provenance import NOT_GENERATED

    with VideoReader(src) as reader, VideoWriter(out, reader.info.fps, stamp=NOT_GENERATED) as writer:
        for _, frame in zip(range(frames), reader):
            writer.write(frame)


def run_cli(weights: Path, model_config: str, source: Path, driving: Path, output: Path) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "liveportrait.cli", "animate", "-s", str(source), "-d", str(driving), "-o",
           str(output), "--weights", str(weights), "--no-template"]
    if model_config:
        cmd += ["--model-config", model_config]
    t = time.perf_counter()
    res = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"animate failed: {res.stderr.strip()[-500:]}")
    m = re.search(r"\((\d+) frames.*; (\w+), (\w+), (\w+)\)", res.stdout)
    info = {"frames": int(m.group(1)), "device": m.group(2), "precision": m.group(3), "backend": m.group(4)} if m \
        else {"summary": res.stdout.strip()}
    return seconds, info


def run_api(weights: Path, model_config: str, source: Path, driving: Path, output: Path) -> tuple[float, dict]:
    t = time.perf_counter()
    res = subprocess.run([sys.executable, "-c", API_SCRIPT, str(weights), model_config, str(source), str(driving),
                          str(output)], capture_output=True, text=True)
    seconds = time.perf_counter() - t
    if res.returncode != 0:
        sys.exit(f"the API script failed: {res.stderr.strip()[-500:]}")
    return seconds, json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--frames", type=int, default=12, help="driving frames (of d0.mp4)")
    parser.add_argument("--full", action="store_true", help="full-size synthetic weights instead of tiny ones")
    parser.add_argument("--source", default=str(SHARED / "examples" / "source" / "s0.jpg"))
    parser.add_argument("--driving", default=str(SHARED / "examples" / "driving" / "d0.mp4"))
    args = parser.parse_args(argv)
    for p in (args.source, args.driving):
        if not Path(p).is_file():
            sys.exit(f"{p}: no such file (the examples are in ../shared/examples)")
    from liveportrait.bench import machine_description

    print(f"machine: {machine_description()}")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        weights = tmp / "weights"
        model_config = write_weights(weights, args.full)
        driving = tmp / "driving.mp4"
        short_driving(Path(args.driving), driving, args.frames)
        print(f"job: {Path(args.source).name} animated by {args.frames} frames of {Path(args.driving).name}, "
              f"{'full-size synthetic' if args.full else 'tiny'} weights; {args.rounds} rounds, CLI and API "
              "taking turns, each a fresh process", flush=True)
        times: dict[str, list[float]] = {"cli": [], "api": []}
        seen: dict[str, dict] = {}
        for r in range(args.rounds):
            for name, fn in (("cli", run_cli), ("api", run_api)):
                seconds, info = fn(weights, model_config, Path(args.source), driving, tmp / f"{name}{r}.mp4")
                times[name].append(seconds)
                seen[name] = info
            print(f"  round {r + 1}: CLI {times['cli'][-1]:.2f} s, API {times['api'][-1]:.2f} s", flush=True)
    for name in ("cli", "api"):
        print(f"{name.upper()}: {seen[name]}; best {min(times[name]):.2f} s per job")
    ratios = [a / c for a, c in zip(times["api"], times["cli"])]
    same = all(seen["cli"].get(k) == seen["api"].get(k) for k in ("frames", "device", "precision", "backend"))
    print(f"API / CLI wall time: median {statistics.median(ratios):.2f} [{min(ratios):.2f}-{max(ratios):.2f}]; "
          f"same frames, device, precision and backend: {same}")
    if os.environ.get("CI") == "true" and not same:
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
