"""``liveportrait batch`` locally and on Ray, and ``serve --ray``: a local Ray cluster started here on
127.0.0.1 (two CPUs) and shut down afterwards; tiny networks.

Every job of a .jsonl/.csv completes with a marked output and a re-run skips complete outputs; a bad line
fails the whole batch in one line before any network loads; a Ray worker killed mid-batch is restarted
and every job still completes; ``--ray auto`` gives the frames a local batch gives; the server's jobs run
on Ray actors with ``serve --ray``, where a running job can be cancelled and the time limit holds. Animal
jobs: a batch mixing human and animal lines finishes both (a human photo as an animal job fails with the
finder's message), a worker loads one animal pipeline on first use, and ``serve --ray`` runs animal jobs on
its actors.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import require_module
from tests.serve.conftest import (
    ANIMAL_JOB,
    FAST,
    HOW,
    HUMAN_IN_ANIMAL_JOB,
    check_marked_video,
    scrape,
    submit,
    wait_for,
)


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
    # weights laid out as released whose files cannot be loaded: a batch that loaded a network before checking
    # its lines would stop with that load's error instead of the line's
    unloadable = tmp_path / "unloadable"
    shutil.copytree(tiny_weights, unloadable)
    files = [f for f in unloadable.rglob("*") if f.is_file()]
    assert files
    for f in files:
        f.write_bytes(b"not a checkpoint")
    good = some_jobs(media)[0]
    loaded = batch(write_jobs(tmp_path / "good.jsonl", [good]), unloadable, timeout=120)
    assert loaded.returncode == 5 and "refused to load this checkpoint" in loaded.stderr, loaded.stderr  # a load fails
    cases = [({"options": {"bogus": 1}}, 2, "jobs.jsonl:2: unknown option 'bogus'"),
             ({"source": str(tmp_path / "missing.jpg")}, 2, "no such file"),
             ({"driving": str(media["evil"])}, 5, "jobs.jsonl:2:"),
             ({"extra": 1}, 2, "unknown field extra"),
             ({"output": ""}, 2, "missing output"),
             ({"output": "out/a.mp4"}, 2, "also line 1's"),
             ({"output": "frames", "options": {"output_format": "png"}}, 2, "one file"),
             ({"source": str(media["driving"]), "options": ANIMAL_JOB}, 2, "jobs.jsonl:2: animal mode animates a"),
             # tiny_weights has no animal folder: the batch stops before a network loads, naming the line
             ({"source": str(media["dog"]), "options": ANIMAL_JOB}, 4,
              "jobs.jsonl:2: an animal job needs the animal weights: LivePortrait weights not found")]
    for change, code, words in cases:
        jobs = write_jobs(tmp_path / "jobs.jsonl", [good, {**good, "output": "out/z.mp4", **change}])
        r = batch(jobs, unloadable, timeout=60)
        lines = r.stderr.strip().splitlines()
        assert r.returncode == code and len(lines) == 1 and words in lines[0], (change, r.stderr)
        assert not (tmp_path / "out").exists(), change
    assert not media["evil"].with_name("pwned").exists()
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    assert batch(tmp_path / "bad.jsonl", tiny_weights).returncode == 2


def test_a_batch_mixing_human_and_animal_lines_finishes_both(media, animal_weights, tmp_path):
    """One worker: the human line, then the dog (the animal pipeline loaded for it), then a human photo as
    an animal job, which fails with the animal finder's message while the others are written."""
    jobs = write_jobs(tmp_path / "jobs.jsonl", [
        {"source": str(media["photo"]), "driving": str(media["driving"]), "output": "out/human.mp4", "options": FAST},
        {"source": str(media["dog"]), "driving": str(media["driving"]), "output": "out/dog.mp4", "options": ANIMAL_JOB},
        {"source": str(media["person"]), "driving": str(media["driving"]), "output": "out/person.mp4",
         "options": ANIMAL_JOB}])
    r = batch(jobs, animal_weights)
    assert r.returncode == 1, r.stderr
    assert f"failed: {jobs}:3 (person.mp4): {HUMAN_IN_ANIMAL_JOB}" in r.stderr, r.stderr
    assert "2 done, 1 failed" in r.stderr, r.stderr
    out = tmp_path / "out"
    check_marked_video(out / "human.mp4", 6, size=(218, 256))  # pasted back into the photo (256 px high)
    check_marked_video(out / "dog.mp4", 6, size=(512, 512))  # animal mode: the 512 crop, no paste-back
    assert not (out / "person.mp4").exists() and not [p for p in out.iterdir() if ".part" in p.name]


def test_a_worker_keeps_one_pipeline_per_variant(animal_weights, tiny_weights, media, tmp_path):
    """The animal pipeline is loaded on first use, from the animal folder, then kept; a spec whose weights
    lack it says so (no server path in the job's message) and the human pipeline keeps working."""
    import torch

    from liveportrait.errors import InputError, WeightsError
    from liveportrait.serve.jobs import Progress, check_job, job_config, run_job
    from liveportrait.serve.workers import ANIMAL_WEIGHTS_MISSING, PipelineSpec, SlotPipelines

    spec = PipelineSpec(str(animal_weights), device="cpu", model_config="tiny")
    assert spec.animal_error() is None
    slot = SlotPipelines(spec)
    assert slot.loaded == ("human",)
    animal = slot.get("animal")
    assert slot.get("animal") is animal and slot.loaded == ("human", "animal") and animal.variant == "animal"
    human_f = slot.get("human").base_networks.appearance_feature_extractor.state_dict()
    animal_f = animal.base_networks.appearance_feature_extractor.state_dict()
    assert not all(torch.equal(human_f[k], animal_f[k]) for k in human_f)  # the animal folder's weights
    config = job_config(ANIMAL_JOB)
    plan = check_job(media["dog"], media["driving"], tmp_path / "x.mp4", config)
    with pytest.raises(InputError, match="this pipeline has the human weights: animal=True needs"):
        run_job(slot.get("human"), plan, config, Progress())
    without = PipelineSpec(str(tiny_weights), device="cpu", model_config="tiny")
    assert "liveportrait_animals/base_models_v1.1" in without.animal_error()
    lacking = SlotPipelines(without)
    with pytest.raises(WeightsError) as err:
        lacking.get("animal")
    assert str(err.value) == ANIMAL_WEIGHTS_MISSING and str(tiny_weights) not in str(err.value)
    assert lacking.loaded == ("human",)


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
    # the Ray nodes say whether they have the animal weights (tiny_weights has none): one line, no job run
    mixed = write_jobs(tmp_path / "mixed.jsonl", [some_jobs(media, "mixed")[0], {
        "source": str(media["dog"]), "driving": str(media["driving"]), "output": "mixed/dog.mp4",
        "options": ANIMAL_JOB}])
    r = batch(mixed, tiny_weights, "--ray", "auto", env={"RAY_ADDRESS": ray_address})
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 4 and len(lines) == 1, r.stderr
    assert "mixed.jsonl:2: an animal job needs the animal weights" in lines[0], r.stderr
    assert not (tmp_path / "mixed").exists()


def test_serve_dispatches_jobs_to_ray_workers(ray_address, start_server, media, tmp_path, httpx, animal_weights):
    """Human and animal jobs on one Ray actor: each succeeds in the actor's process, a human photo as an
    animal job fails with the finder's message, and the actor holds one pipeline of each variant."""
    server = start_server(tmp_path / "data", "--ray", ray_address, weights=animal_weights)
    with httpx.Client(base_url=server.url, timeout=60) as client:
        jobs = {name: submit(client, media, **kw).json() for name, kw in (
            ("human", {}), ("dog", {"source": "dog", "options": ANIMAL_JOB}),
            ("person", {"source": "person", "options": ANIMAL_JOB}), ("dog again", {"source": "dog",
                                                                                  "options": ANIMAL_JOB}))}
        done = {name: wait_for(client, job["id"]) for name, job in jobs.items()}
        for name in ("human", "dog", "dog again"):
            assert done[name]["state"] == "succeeded", done[name]
            assert int(done[name]["worker"].rsplit(":", 1)[1]) != server.proc.pid  # ran in a Ray actor's process
            result = tmp_path / f"{name}.mp4"
            result.write_bytes(client.get(f"/v1/jobs/{jobs[name]['id']}/result").content)
            check_marked_video(result, 6, size=(512, 512) if name != "human" else None)
        assert done["person"]["state"] == "failed" and done["person"]["error"].startswith(HUMAN_IN_ANIMAL_JOB), done
        assert client.get("/healthz").json()["pipelines"] == {"human": 1, "animal": 1}
        assert scrape(client)['liveportrait_pipelines{variant="animal"}'] == 1


def test_serve_on_ray_cancels_a_running_job_and_keeps_the_time_limit(ray_address, start_server, media, tmp_path,
                                                                      httpx):
    """Under ``serve --ray`` the stop reaches the actor: a running job cancelled ends "cancelled", one past
    ``--job-timeout`` fails with the time-limit line, and neither leaves a result behind."""
    for timeout, name in ((None, "cancel"), (1, "time limit")):
        data = tmp_path / name.replace(" ", "-")
        server = start_server(data, "--ray", ray_address, *(["--job-timeout", str(timeout)] if timeout else []))
        with httpx.Client(base_url=server.url, timeout=60) as client:
            job = submit(client, media, driving="long").json()
            if timeout is None:
                wait_for(client, job["id"], states=("running",))
                assert client.delete(f"/v1/jobs/{job['id']}").status_code == 202
            done = wait_for(client, job["id"], timeout=150)
            if timeout is None:
                assert done["state"] == "cancelled" and done["error"] == "cancelled", done
            else:
                assert done["state"] == "failed" and done["error"] == "the job ran past its time limit of 1 s", done
            assert int(done["worker"].rsplit(":", 1)[1]) != server.proc.pid  # it ran in an actor
            assert client.get(f"/v1/jobs/{job['id']}/result").status_code == 409
            assert sorted(p.name for p in (data / "jobs" / job["id"]).iterdir()) == ["driving.mp4", "source.jpg"]
            if timeout is None:  # the actor is free again: a short job after it succeeds
                after = wait_for(client, submit(client, media).json()["id"])
                assert after["state"] == "succeeded", after
        server.stop()
