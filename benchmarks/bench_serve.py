"""Jobs per minute and per-job overhead of the job server and of Ray batches against direct pipeline calls.

    python benchmarks/bench_serve.py [--jobs 8] [--workers 1 2 4] [--frames 6] [--no-ray] [--no-api]

The same job (the example photo s0 driven by the first ``--frames`` frames of d12.mp4, with its sound,
``source_max_dim=256``) runs ``--jobs`` times: directly (one loaded ``LivePortraitPipeline``, calls one
after another), through ``liveportrait serve --workers N`` (a real server on 127.0.0.1; all jobs submitted
at once over HTTP, timed from the first POST to the last job succeeded) and as a batch on N Ray actors
(a local Ray cluster on 127.0.0.1). Start-up (loading the networks, starting Ray) is not timed.

Overhead per job is how much longer each job holds a worker than a direct call does:
``wall * N / jobs - direct seconds per job``; with more workers than cores it includes their contention.
Weights: tiny networks with seeded random weights unless ``--weights`` (and ``--model-config``) are given.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = Path(os.environ.get("LIVEPORTRAIT_SHARED", REPO.parent / "shared")) / "examples"
OPTIONS = {"source_max_dim": 256}


def make_inputs(folder: Path, frames: int) -> tuple[Path, Path]:
    from liveportrait.media import VideoReader, VideoWriter
    from liveportrait.provenance import NOT_GENERATED

    driving = folder / "driving.mp4"
    src = EXAMPLES / "driving/d12.mp4"
    with VideoReader(src) as r, VideoWriter(driving, r.info.fps, audio_from=src, stamp=NOT_GENERATED) as w:
        for i, frame in enumerate(r):
            if i == frames:
                break
            w.write(frame)
    return EXAMPLES / "source/s0.jpg", driving


def tiny_weights(folder: Path) -> Path:
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig
    from liveportrait.networks.checkpoint import save_released

    torch.manual_seed(0)
    save_released(LivePortraitNetworks(ModelConfig.tiny()), folder)
    return folder


def direct(weights, model_config, source, driving, jobs: int, out: Path) -> float:
    """Seconds per job of plain ``pipe(source, driving).save(...)`` calls: the median of ``jobs`` calls after a
    warm-up call (the median, since the machine may be shared)."""
    from liveportrait import LivePortraitPipeline

    pipe = LivePortraitPipeline.from_pretrained(weights, model_config=model_config, quiet=True)
    pipe.set_progress_bar_config(disable=True)
    pipe(source, driving, **OPTIONS).save(out / "warm.mp4")
    times = []
    for i in range(jobs):
        t0 = time.perf_counter()
        pipe(source, driving, **OPTIONS).save(out / f"direct{i}.mp4", save_template=False)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def api(weights, model_config, source, driving, jobs: int, workers: int, data: Path) -> float:
    """Wall seconds for ``jobs`` jobs through a ``liveportrait serve --workers N`` on loopback."""
    import httpx

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "liveportrait.cli", "serve", "--port", str(port), "--data", str(data), "-q",
           "--workers", str(workers), "--queue", str(jobs), "--weights", str(weights)]
    if model_config:
        cmd += ["--model-config", model_config]
    server = subprocess.Popen(cmd)
    try:
        for _ in range(600):
            try:
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        files = {"source": (source.name, source.read_bytes()), "driving": (driving.name, driving.read_bytes())}

        def post(_):
            with httpx.Client(base_url=url, timeout=120) as c:
                r = c.post("/v1/jobs", files=files, data={"options": json.dumps(OPTIONS)})
                r.raise_for_status()
                return r.json()["id"]

        t0 = time.perf_counter()
        with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
            ids = list(pool.map(post, range(jobs)))
        with httpx.Client(base_url=url, timeout=60) as c:
            for job_id in ids:
                while (state := c.get(f"/v1/jobs/{job_id}").json()["state"]) not in ("succeeded", "failed"):
                    time.sleep(0.05)
                assert state == "succeeded", c.get(f"/v1/jobs/{job_id}").json()
        return time.perf_counter() - t0
    finally:
        server.terminate()
        server.wait(60)


def ray_batch(weights, model_config, source, driving, jobs: int, workers: int, out: Path) -> float:
    """Wall seconds for ``jobs`` jobs as a batch on ``workers`` Ray actors (one CPU each)."""
    from liveportrait.serve.batch import read_jobs, run_batch
    from liveportrait.serve.workers import PipelineSpec, RayWorkers

    lines = [{"source": str(source), "driving": str(driving), "output": f"ray{workers}/{i}.mp4",
              "options": {**OPTIONS, "save_template": False}} for i in range(jobs)]
    (out / "jobs.jsonl").write_text("".join(json.dumps(j) + "\n" for j in lines))
    batch = read_jobs(out / "jobs.jsonl")
    pool = RayWorkers(PipelineSpec(str(weights), model_config=model_config), workers, address=None)
    try:
        t0 = time.perf_counter()
        report = run_batch(batch, pool, show_progress=False)
        wall = time.perf_counter() - t0
    finally:
        pool.close()
    assert not report.failed, report.failed
    return wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--frames", type=int, default=6, help="driving frames per job")
    ap.add_argument("--weights", help="a weights folder (default: tiny random networks)")
    ap.add_argument("--model-config", default=None)
    ap.add_argument("--no-api", action="store_true")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    weights = args.weights or tiny_weights(tmp / "weights")
    model_config = args.model_config or (None if args.weights else "tiny")
    source, driving = make_inputs(tmp, args.frames)
    print(f"{args.jobs} jobs of {args.frames} frames each; {os.cpu_count()} CPU cores (load average "
          f"{os.getloadavg()[0]:.1f} at the start); weights: {'tiny' if not args.weights else args.weights}")
    per_job = direct(weights, model_config, source, driving, args.jobs, tmp)
    rows = [("direct call", 1, per_job * args.jobs)]
    if not args.no_api:
        rows += [("serve (HTTP)", w, api(weights, model_config, source, driving, args.jobs, w, tmp / f"data{w}"))
                 for w in args.workers]
    if not args.no_ray:
        import ray

        ray.init(num_cpus=max(args.workers), include_dashboard=False, _node_ip_address="127.0.0.1",
                 object_store_memory=200 * 2**20, log_to_driver=False, configure_logging=False)
        try:
            rows += [("batch on Ray", w, ray_batch(weights, model_config, source, driving, args.jobs, w, tmp))
                     for w in args.workers]
        finally:
            ray.shutdown()
    print(f"{'how':<14} {'workers':>7} {'wall s':>8} {'jobs/min':>9} {'overhead/job s':>15}")
    for how, w, wall in rows:
        overhead = wall * w / args.jobs - per_job
        print(f"{how:<14} {w:>7} {wall:>8.2f} {60 * args.jobs / wall:>9.1f} {overhead:>15.3f}")


if __name__ == "__main__":
    main()
