"""``liveportrait batch`` locally and on Ray, and ``serve --ray``: a local Ray cluster started here on
127.0.0.1 (two CPUs) and shut down afterwards; tiny networks.

Every job of a .jsonl/.csv completes with a marked output and a re-run skips complete outputs; a bad line
fails the whole batch in one line before any network loads; a Ray worker killed mid-batch is restarted
and every job still completes; ``--ray auto`` gives the frames a local batch gives; the server's jobs run
on Ray actors with ``serve --ray``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module
from tests.serve.conftest import FAST, HOW, check_marked_video, submit, wait_for


def write_jobs(path: Path, jobs: list[dict]) -> Path:
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def batch(jobs: Path, weights: Path, *args: str, env: dict | None = None, timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "liveportrait.cli", "batch", str(jobs), "--weights", str(weights),
                           "--model-config", "tiny", "-q", *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def some_jobs(media: dict, out: str = "out") -> list[dict]:
    return [{"source": str(media["photo"]), "driving": str(media["driving"]), "output": f"{out}/a.mp4",
             "options": FAST},
            {"source": str(media["photo"]), "driving": str(media["template"]), "output": f"{out}/b.mp4",
             "options": {**FAST, "region": "exp"}},
            {"source": str(media["photo"]), "driving": str(media["photo"]), "output": f"{out}/c.png",
             "options": FAST}]


def test_batch_runs_every_job_and_a_rerun_skips_complete_ones(media, tiny_weights, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", some_jobs(media))
    r = batch(jobs, tiny_weights, "--workers", "2")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    check_marked_video(out / "a.mp4", 6)
    assert (out / "a.lpt.npz").is_file()  # as animate: the driving's motion beside the output
    from liveportrait.media import load_template, probe
    from liveportrait.provenance.verify import verify

    n = load_template(media["template"]).n_frames
    assert probe(out / "b.mp4").frame_count == n and verify(out / "c.png").marked
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    r = batch(jobs, tiny_weights)
    assert r.returncode == 0 and "all 3 jobs are done already" in r.stderr, r.stderr
    (out / "b.mp4").unlink()
    r = batch(jobs, tiny_weights)
    assert r.returncode == 0, r.stderr
    assert "1 done, 0 failed, 2 skipped" in r.stderr and probe(out / "b.mp4").frame_count == n
    assert all(stamps[p.name] == p.stat().st_mtime_ns for p in out.iterdir() if p.name != "b.mp4")
    assert not [p for p in out.iterdir() if ".part" in p.name]
    csv = tmp_path / "jobs.csv"
    csv.write_text(f'source,driving,output,options\n{media["photo"]},{media["driving"]},csv/a.gif,'
                   f'"{json.dumps(FAST).replace(chr(34), chr(34) * 2)}"\n')
    r = batch(csv, tiny_weights)
    assert r.returncode == 0, r.stderr
    assert probe(tmp_path / "csv/a.gif").frame_count == 6


def test_a_bad_line_fails_the_batch_before_any_network_loads(media, tiny_weights, tmp_path):
    good = some_jobs(media)[0]
    cases = [({"options": {"bogus": 1}}, 2, "jobs.jsonl:2: unknown option 'bogus'"),
             ({"source": str(tmp_path / "missing.jpg")}, 2, "no such file"),
             ({"driving": str(media["evil"])}, 5, "jobs.jsonl:2:"),
             ({"extra": 1}, 2, "unknown field extra"),
             ({"output": ""}, 2, "missing output"),
             ({"output": "out/a.mp4"}, 2, "also line 1's"),
             ({"output": "frames", "options": {"output_format": "png"}}, 2, "one file")]
    for change, code, words in cases:
        jobs = write_jobs(tmp_path / "jobs.jsonl", [good, {**good, "output": "out/z.mp4", **change}])
        t0 = time.monotonic()
        r = batch(jobs, tiny_weights, timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code and len(lines) == 1 and words in lines[0], (change, r.stderr)
        assert time.monotonic() - t0 < 30 and not (tmp_path / "out").exists(), change
    assert not media["evil"].with_name("pwned").exists()
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert batch(tmp_path / "bad.jsonl", tiny_weights).returncode == 2


@pytest.fixture(scope="module")
def ray_address():
    """A Ray cluster of this process on 127.0.0.1 (2 CPUs, no dashboard), shut down after the module."""
    ray = require_module("ray", HOW)
    require_module("fastapi", HOW)
    ray.init(num_cpus=2, include_dashboard=False, _node_ip_address="127.0.0.1", object_store_memory=200 * 2**20,
             log_to_driver=False, configure_logging=False)
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def test_a_ray_worker_killed_mid_batch_and_every_job_still_completes(ray_address, media, tiny_weights, tmp_path):
    from liveportrait.serve.batch import read_jobs, run_batch
    from liveportrait.serve.workers import PipelineSpec, RayWorkers

    lines = [{"source": str(media["photo"]), "driving": str(media["long" if i < 2 else "driving"]),
              "output": f"out/{i}.mp4", "options": FAST} for i in range(4)]
    jobs = read_jobs(write_jobs(tmp_path / "jobs.jsonl", lines))
    retried, killed = [], []
    workers = RayWorkers(PipelineSpec(str(tiny_weights), model_config="tiny"), 2, address=ray_address,
                         on_retry=lambda task, attempt, exc: retried.append((task.output.name, type(exc).__name__)))

    def kill_once(kind, job, slot, state):
        if kind == "progress" and not killed and state["frames_done"] >= 2:
            pid = int(workers.where[slot].rsplit(":", 1)[1])
            assert pid != os.getpid()
            killed.append((job.task.output.name, pid))
            os.kill(pid, signal.SIGKILL)  # the actor's process, mid-job

    try:
        report = run_batch(jobs, workers, show_progress=False, on_event=kill_once)
    finally:
        workers.close()
    assert killed and [name for name, _ in retried] == [killed[0][0]], (killed, retried)
    assert not report.failed and len(report.done) == 4, report.failed
    for i in range(4):
        check_marked_video(tmp_path / "out" / f"{i}.mp4", 40 if i < 2 else 6)
    assert not [p for p in (tmp_path / "out").iterdir() if ".part" in p.name]


def frames(path: Path) -> np.ndarray:
    from liveportrait.media import VideoReader

    with VideoReader(path) as r:
        return np.stack(list(r)).astype(int)


def test_batch_on_ray_auto_gives_the_frames_of_a_local_batch(ray_address, media, tiny_weights, tmp_path):
    jobs = write_jobs(tmp_path / "jobs.jsonl", some_jobs(media, "ray")[:1])
    r = batch(jobs, tiny_weights, "--ray", "auto", "--workers", "2", env={"RAY_ADDRESS": ray_address})
    assert r.returncode == 0, r.stderr
    local = write_jobs(tmp_path / "local.jsonl", some_jobs(media, "local")[:1])
    assert batch(local, tiny_weights).returncode == 0
    a, b = tmp_path / "ray/a.mp4", tmp_path / "local/a.mp4"
    check_marked_video(a, 6)
    assert (tmp_path / "ray/a.lpt.npz").is_file()
    fa, fb = frames(a), frames(b)
    assert fa.shape == fb.shape and np.abs(fa - fb).mean() < 3  # the same pictures up to H.264


def test_serve_dispatches_jobs_to_ray_workers(ray_address, start_server, media, tmp_path, httpx):
    server = start_server(tmp_path / "data", "--ray", ray_address)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        job = submit(client, media).json()
        done = wait_for(client, job["id"])
        assert done["state"] == "succeeded", done
        assert int(done["worker"].rsplit(":", 1)[1]) != server.proc.pid  # ran in a Ray actor's process
        result = tmp_path / "result.mp4"
        result.write_bytes(client.get(f"/v1/jobs/{job['id']}/result").content)
    check_marked_video(result, 6)
