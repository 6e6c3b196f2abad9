"""Real parts for the job server and batch tests: tiny weights (``tiny_weights``: human only;
``animal_weights``: the hub's layout with the animal folder too), short real clips, a ``liveportrait serve``
process on 127.0.0.1 (stopped afterwards) and an HTTP client. FastAPI, uvicorn and Ray are the 'serve'
extra: under CI=true their absence fails (``require_module``)."""

from __future__ import annotations

import contextlib
import os
import pickle
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import require_module

HOW = "bash scripts/install.sh serve"
FAST = {"source_max_dim": 256}  # small outputs: the tiny networks' jobs take about a second


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Evil:
    """Unpickling this runs a command: the restricted loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.fixture(scope="session")
def media(examples_dir, tmp_path_factory) -> dict[str, Path]:
    from tests.test_api import short_clip

    d = tmp_path_factory.mktemp("serve_media")
    ex = examples_dir
    shutil.copy(ex / "source/s0.jpg", d / "photo.jpg")
    shutil.copy(ex / "source/s25.jpg", d / "dog.jpg")  # a shiba: the animal finder frames it
    shutil.copy(ex / "source/s1.jpg", d / "person.jpg")  # a human: an animal job on it must say so
    short_clip(ex / "driving/d12.mp4", d / "driving.mp4", 6)
    short_clip(ex / "driving/d12.mp4", d / "long.mp4", 40)
    shutil.copy(ex / "driving/d1.pkl", d / "template.pkl")
    (d / "evil.pkl").write_bytes(pickle.dumps(Evil(d / "pwned"), protocol=4))
    (d / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(4000))
    (d / "notes.txt").write_text("not a picture\n" * 50)
    return {p.stem: p for p in d.iterdir()}


@pytest.fixture(scope="session")
def httpx():
    require_module("fastapi", HOW)
    require_module("uvicorn", HOW)
    require_module("python_multipart", HOW)
    return require_module("httpx", HOW)


class Server:
    """``liveportrait serve`` in a child process, on a free loopback port."""

    def __init__(self, data: Path, weights: Path, *args: str, env: dict | None = None, log_dir: Path | None = None):
        self.data, self.weights, self.args, self.env = data, weights, args, env
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (log_dir or data.parent) / f"{data.name}-server-{self.port}.log"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 120) -> "Server":
        import httpx

        cmd = [sys.executable, "-m", "liveportrait.cli", "serve", "--port", str(self.port), "--data", str(self.data),
               "--weights", str(self.weights), "--model-config", "tiny", *self.args]
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         env={**os.environ, **(self.env or {})})
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise AssertionError(f"the server exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                headers = {"Authorization": f"Bearer {self.env['LIVEPORTRAIT_TOKEN']}"} if self.env else {}
                if httpx.get(self.url + "/healthz", headers=headers, timeout=2).status_code == 200:
                    return self
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"the server did not answer in {timeout} s:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """``kill -9``: no clean-up at all."""
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_server(tiny_weights, httpx):
    """``start_server(data, *args)``: a started server (on ``tiny_weights`` unless ``weights`` says); all are
    stopped after the test."""
    started: list[Server] = []

    def start(data: Path, *args: str, env: dict | None = None, log_dir: Path | None = None,
              weights: Path | None = None) -> Server:
        server = Server(data, weights or tiny_weights, *args, env=env, log_dir=log_dir)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


def submit(client, media: dict, source="photo", driving="driving", options=None, **kwargs):
    """POST a job with files from ``media`` (a name) or given as (filename, bytes)."""
    import json

    def part(x):
        if isinstance(x, tuple):
            return x
        return (media[x].name, media[x].read_bytes())

    files = {}
    if source is not None:
        files["source"] = part(source)
    if driving is not None:
        files["driving"] = part(driving)
    data = {"options": json.dumps(FAST if options is None else options)} if options != "omit" else {}
    return client.post("/v1/jobs", files=files, data=data, **kwargs)


def wait_for(client, job_id: str, states=("succeeded", "failed", "cancelled"), timeout: float = 120) -> dict:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        job = client.get(f"/v1/jobs/{job_id}").json()
        if job["state"] in states:
            return job
        time.sleep(0.1)
    raise AssertionError(f"job {job_id} still {job['state']} after {timeout} s: {job}")


def scrape(client) -> dict[str, float]:
    """``/metrics`` parsed as Prometheus text: sample name with its labels (``'liveportrait_jobs{state="queued"}'``)
    -> value."""
    from prometheus_client.parser import text_string_to_metric_families

    r = client.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4"), r.headers
    out = {}
    for family in text_string_to_metric_families(r.text):
        for s in family.samples:
            labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
            out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
    return out


def check_marked_video(path: Path, frames: int, audio: bool = True, size: tuple[int, int] | None = None) -> None:
    """A complete, marked mp4 with the driving's frame count, 25 fps, (by default) sound and ``size``."""
    from liveportrait.media import probe
    from liveportrait.provenance.verify import verify

    info = probe(path)
    assert (info.frame_count, info.fps, info.has_audio) == (frames, 25, audio), info
    if size is not None:
        assert (info.width, info.height) == size, info
    assert verify(path, max_frames=4).marked


HUMAN_IN_ANIMAL_JOB = 'no cat or dog face was found, only a human face: animate it without "animal": true'
ANIMAL_JOB = {**FAST, "animal": True}
