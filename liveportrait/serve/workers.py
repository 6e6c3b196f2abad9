"""Workers that keep networks loaded between jobs: pipelines in threads of this process, or Ray actors.

Both run a ``Task`` in a numbered slot (one job at a time per slot) and report through a ``Progress``.
A Ray actor gets the inputs' bytes and sends the result's bytes back, so the cluster needs no shared
disk; the caller writes them atomically. When an actor dies (a node lost, ``kill -9``) Ray restarts it and
the job is run again from the start, up to ``retries`` times.

A worker holds at most one pipeline per variant (human, animal): those named at the start are loaded then,
the other the first time a job needs it, and kept. Whether the animal weights are there is known before a
job is accepted (``animal_error``), so an animal job is refused at submission, not failed in a worker.
"""

from __future__ import annotations

import os
import queue
import re
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..config import ComputeOptions
from ..errors import LivePortraitError
from .jobs import VARIANTS, JobStopped, Progress, check_job, job_config, job_variant, run_job

# what a submitter is told (no server paths) when the server's weights lack the animal ones
ANIMAL_WEIGHTS_MISSING = ("this server cannot run animal jobs: its weights folder has no animal weights "
                          "(liveportrait_animals/base_models_v1.1); `liveportrait download --animal` fetches them")


@dataclass(frozen=True)
class PipelineSpec:
    """How every worker loads its pipeline (the arguments of ``from_pretrained``)."""

    weights: str | None = None
    device: str = ComputeOptions.device  # the compute block's defaults (config.py)
    precision: str = ComputeOptions.precision
    backend: str = ComputeOptions.backend
    model_config: str | None = None
    # provenance.c2pa.C2paSettings (checked when made): every job's config gets it, so every result is signed
    c2pa: object | None = None

    def load(self, threads: int | None = None, variant: str = "human"):
        if threads:
            import torch

            torch.set_num_threads(threads)  # workers share the cores instead of each taking all of them
        from ..api import LivePortraitPipeline

        # only the human weights may be downloaded (at the start, as `animate` does); the animal ones were
        # checked before the job was accepted, and a worker never starts a download in the middle of a job
        pipe = LivePortraitPipeline.from_pretrained(self.weights, device=self.device, precision=self.precision,
                                                    backend=self.backend, model_config=self.model_config,
                                                    variant=variant, download=variant == "human", quiet=True)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def animal_error(self) -> str | None:
        """None when the animal weights are where this spec looks (stat calls only); else what is missing."""
        from ..errors import WeightsError
        from ..networks.checkpoint import locate_weights

        try:
            locate_weights(self.weights, animal=True)
        except WeightsError as exc:
            return str(exc)
        return None


class StartingWorkers:
    """What the server's workers say while their networks load: the server listens (and queues jobs) at once,
    and the real workers take over once loaded."""

    def __init__(self, spec: PipelineSpec, n: int, where: str = "loading"):
        self.spec, self.n, self.where = spec, n, [where] * n

    def animal_error(self) -> str | None:
        return self.spec.animal_error()

    def loaded(self) -> dict[str, int]:
        return dict.fromkeys(VARIANTS, 0)

    def close(self) -> None:
        pass


class SlotPipelines:
    """One worker's pipelines, at most one per variant: ``preload`` loaded now (a failure is the start's
    error, as the operator gave it), the others the first time a job needs them, then kept."""

    def __init__(self, spec: PipelineSpec, threads: int | None = None, preload: tuple[str, ...] = ("human",)):
        self.spec, self.threads = spec, threads
        self.pipes: dict[str, object] = {}
        for variant in preload:
            self.pipes[variant] = spec.load(threads, variant)

    def get(self, variant: str):
        """The pipeline of ``variant``, loaded now if this worker has none yet."""
        from ..errors import WeightsError

        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {', '.join(VARIANTS)}, got {variant!r}")
        pipe = self.pipes.get(variant)
        if pipe is None:
            try:  # a job that reaches here passed ``animal_error``, unless the files went away since
                pipe = self.spec.load(self.threads, variant)
            except WeightsError:
                if variant != "animal":
                    raise
                raise WeightsError(ANIMAL_WEIGHTS_MISSING) from None  # a job's error names no server path
            self.pipes[variant] = pipe
        return pipe

    @property
    def loaded(self) -> tuple[str, ...]:
        return tuple(self.pipes)


@dataclass
class Task:
    """A job as a worker sees it: input files, the result's path, options, time limit (seconds)."""

    source: Path
    driving: Path
    output: Path
    options: dict = field(default_factory=dict)
    timeout: float | None = None


def _threads_each(workers: int) -> int | None:
    return max(1, (os.cpu_count() or 1) // workers) if workers > 1 else None


class LocalWorkers:
    """``n`` workers in this process, each with its own pipelines (a pipeline runs one call at a time)."""

    def __init__(self, spec: PipelineSpec, n: int = 1, preload: tuple[str, ...] = ("human",)):
        self.spec, self.n = spec, n
        self.slots = [SlotPipelines(spec, _threads_each(n), preload) for _ in range(n)]
        self.where = [f"{os.uname().nodename}:{os.getpid()}"] * n

    def run(self, slot: int, task: Task, progress: Progress) -> dict:
        config = job_config(task.options).but(c2pa=self.spec.c2pa)  # the server's C2PA credentials, if any
        plan = check_job(task.source, task.driving, task.output, config)
        return run_job(self.slots[slot].get(job_variant(config)), plan, config, progress)

    def animal_error(self) -> str | None:
        return self.spec.animal_error()

    def loaded(self) -> dict[str, int]:
        """How many pipelines of each variant are loaded, over all workers."""
        return _count(s.loaded for s in self.slots)

    def close(self) -> None:
        self.slots = []


def _count(loaded) -> dict[str, int]:
    counts = dict.fromkeys(VARIANTS, 0)
    for variants in loaded:
        for v in variants:
            counts[v] += 1
    return counts


class AnimatorActor:
    """A Ray actor holding one pipeline; ``run`` streams progress events, then the result's files."""

    def __init__(self, spec: PipelineSpec, threads: int | None = None, preload: tuple[str, ...] = ("human",)):
        self.spec = spec
        self.pipes = SlotPipelines(spec, threads, preload)
        self._progress: Progress | None = None

    def ready(self) -> str:
        return f"{os.uname().nodename}:{os.getpid()}"

    def animal_error(self) -> str | None:
        """Whether this node has the animal weights (None) or what is missing."""
        return self.spec.animal_error()

    def stop(self, reason: str) -> None:
        """Called concurrently with ``run`` (the actor has two threads) to cancel the job in progress."""
        if self._progress is not None:
            self._progress.stop(reason)

    def run(self, source: tuple[str, bytes], driving: tuple[str, bytes], output_name: str, options: dict,
            timeout: float | None):
        import tempfile

        where = self.ready()
        events: queue.Queue = queue.Queue()
        deadline = time.monotonic() + timeout if timeout else None
        progress = self._progress = Progress(on_update=lambda s: events.put(("progress", s)), deadline=deadline)
        with tempfile.TemporaryDirectory(prefix="liveportrait-job-") as tmp:
            folder = Path(tmp)
            paths = []
            for (name, data), role in ((source, "source"), (driving, "driving")):
                path = folder / role / Path(name).name
                path.parent.mkdir()
                path.write_bytes(data)
                paths.append(path)
            task = Task(paths[0], paths[1], folder / "out" / Path(output_name).name, options, timeout)

            def work():
                try:
                    config = job_config(task.options).but(c2pa=self.spec.c2pa)  # signed on this node
                    plan = check_job(task.source, task.driving, task.output, config)
                    summary = run_job(self.pipes.get(job_variant(config)), plan, config, progress)
                    files = {role: path.read_bytes() for role, path in
                             zip(("output", "comparison", "template"), (plan.output, plan.comparison, plan.template))
                             if path is not None and path.is_file()}
                    events.put(("done", {"summary": summary, "files": files}))
                except JobStopped as exc:
                    events.put(("stopped", {"reason": exc.reason, "message": str(exc)}))
                except LivePortraitError as exc:
                    events.put(("error", {"type": type(exc).__name__, "message": str(exc)}))
                except BaseException as exc:  # noqa: BLE001 - sent to the caller as a failure
                    events.put(("error", {"type": type(exc).__name__, "message": f"{type(exc).__name__}: {exc}"}))

            thread = threading.Thread(target=work, name="liveportrait-job", daemon=True)
            thread.start()
            while True:
                kind, body = events.get()
                yield {"event": kind, "where": where, "loaded": self.pipes.loaded, **body}
                if kind != "progress":
                    break
            thread.join()
            self._progress = None


def ray_init(address: str | None) -> None:
    """Connect to a Ray cluster (``auto``: the one ``RAY_ADDRESS`` or ``ray start`` names; an address), or
    start a local one on 127.0.0.1 when there is none; once per process."""
    import ray

    from ..errors import InputError

    if ray.is_initialized():
        return
    kwargs = {"include_dashboard": False, "log_to_driver": False, "configure_logging": False}
    try:
        if address in (None, "local"):
            ray.init(_node_ip_address="127.0.0.1", **kwargs)
        else:
            ray.init(address=address, **kwargs)
    except ConnectionError as exc:
        raise InputError(f"cannot reach the Ray cluster at {address}: {exc}") from None


class RayWorkers:
    """``n`` Ray actors, each with ``num_cpus``/``num_gpus`` (fractions allowed) and networks loaded; a
    dead actor is restarted by Ray and its job run again from the start (``retries`` times)."""

    def __init__(self, spec: PipelineSpec, n: int = 1, address: str | None = "auto", num_cpus: float = 1,
                 num_gpus: float = 0, retries: int = 3, on_retry=None, preload: tuple[str, ...] = ("human",)):
        import ray

        ray_init(address)
        threads = max(1, int(num_cpus)) if num_cpus >= 1 else 1
        remote = ray.remote(AnimatorActor).options(num_cpus=num_cpus, num_gpus=num_gpus, max_restarts=-1,
                                                   max_task_retries=0, max_concurrency=2)
        self.n, self.retries, self.on_retry = n, retries, on_retry
        self.actors = [remote.remote(spec, threads, tuple(preload)) for _ in range(n)]
        self._loaded = [tuple(preload)] * n
        try:
            self.where = ray.get([a.ready.remote() for a in self.actors])  # networks loaded, or the error now
            # the nodes' own answer: the weights must be on every node, not necessarily on this one
            self._animal_error = next((e for e in ray.get([a.animal_error.remote() for a in self.actors]) if e),
                                      None)
        except ray.exceptions.RayError as exc:
            self.close()
            raise _remote_error(exc, "the Ray workers could not start") from None

    def run(self, slot: int, task: Task, progress: Progress) -> dict:
        import ray
        from ray.exceptions import RayActorError, WorkerCrashedError

        actor = self.actors[slot]
        source = (task.source.name, task.source.read_bytes())
        driving = (task.driving.name, task.driving.read_bytes())
        for attempt in range(self.retries + 1):
            stream = actor.run.remote(source, driving, task.output.name, task.options, task.timeout)
            try:
                for ref in stream:
                    event = ray.get(ref)
                    self._loaded[slot] = tuple(event.get("loaded", self._loaded[slot]))
                    if progress.stop_reason:
                        actor.stop.remote(progress.stop_reason)
                    if event["event"] == "progress":
                        self.where[slot] = event["where"]
                        progress.frames = event["frames_done"]
                        progress.total = event["frames_total"]
                        progress.report(force=True)
                        continue
                    return self._finish(event, task, progress)
            except (RayActorError, WorkerCrashedError) as exc:
                if attempt == self.retries:
                    raise _remote_error(exc, f"the Ray worker died {attempt + 1} times running this job") from None
                progress.frames = 0
                if self.on_retry is not None:
                    self.on_retry(task, attempt + 1, exc)
                self._wait_restarted(actor)
        raise AssertionError("unreachable")

    def animal_error(self) -> str | None:
        return self._animal_error

    def loaded(self) -> dict[str, int]:
        """Pipelines of each variant the actors hold, as they last reported."""
        return _count(self._loaded)

    def _wait_restarted(self, actor, timeout: float = 300) -> None:
        import ray
        from ray.exceptions import RayActorError

        end = time.monotonic() + timeout
        while True:
            try:
                ray.get(actor.ready.remote(), timeout=60)
                return
            except RayActorError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.5)

    @staticmethod
    def _finish(event: dict, task: Task, progress: Progress) -> dict:
        from ..errors import InputError, NoFaceError, OutputError, UnsafeFileError, WeightsError

        if event["event"] == "stopped":
            raise JobStopped(event["reason"], event["message"])
        if event["event"] == "error":
            kinds = {c.__name__: c for c in (InputError, NoFaceError, OutputError, UnsafeFileError, WeightsError)}
            raise kinds.get(event["type"], LivePortraitError)(event["message"])
        write_files(event["files"], task)
        summary = dict(event["summary"], output=str(task.output))
        return summary

    def close(self) -> None:
        import ray

        for a in self.actors:
            ray.kill(a)
        self.actors = []


def _remote_error(exc: BaseException, what: str) -> LivePortraitError:
    """A Ray error as one line: the project's own error (its class, so its exit code) when the remote
    traceback ends with one, else ``what`` and the error's first line."""
    from .. import errors

    lines = [line for line in str(exc).splitlines() if line.strip()]
    for line in reversed(lines):
        found = re.match(r"^liveportrait\.errors\.(\w+): (.*)$", line)
        if found and isinstance(getattr(errors, found[1], None), type):
            return getattr(errors, found[1])(found[2])
    return LivePortraitError(f"{what}: {lines[0] if lines else type(exc).__name__}")


def write_files(files: dict[str, bytes], task: Task) -> None:
    """A remote result's files, each written atomically where the job's plan puts them."""
    from ..files import atomic_output

    config = job_config(task.options)
    plan = check_job(task.source, task.driving, task.output, config)
    for role, path in (("output", plan.output), ("comparison", plan.comparison), ("template", plan.template)):
        if role in files and path is not None:
            with atomic_output(path, suffix=path.suffix) as tmp:
                tmp.write_bytes(files[role])
