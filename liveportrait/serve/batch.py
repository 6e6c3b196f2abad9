"""Batches: many jobs from a ``.jsonl`` or ``.csv`` file, run on local or Ray workers, one progress bar.

A line is ``{"source": ..., "driving": ..., "output": ..., "options": {...}}`` (a CSV has those columns,
``options`` as JSON text); relative paths are relative to the jobs file. Every line is checked before a
network loads; a job whose output exists is skipped (outputs are written atomically, so one that exists
is complete), and a failed job does not stop the others. Human and animal lines (``"animal": true`` in
``options``) mix: the workers load the animal pipeline for the first animal line (``preload``,
``check_animal_weights``).
"""

from __future__ import annotations

import csv
import json
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import InputError, LivePortraitError, WeightsError
from .jobs import JobStopped, Progress, check_job, job_config, job_message, job_variant, stopped_message
from .workers import Task

FIELDS = ("source", "driving", "output", "options")


@dataclass
class BatchJob:
    line: int
    task: Task
    frames: int  # the frames the result will have (the container's estimate for a video)
    variant: str = "human"  # the weights it needs: "human" or "animal"

    @property
    def complete(self) -> bool:
        out = self.task.output
        return out.is_file() and out.stat().st_size > 0


@dataclass
class BatchReport:
    done: list[BatchJob] = field(default_factory=list)
    skipped: list[BatchJob] = field(default_factory=list)
    failed: list[tuple[BatchJob, str]] = field(default_factory=list)


def read_jobs(path: str | Path, timeout: float | None = None) -> list[BatchJob]:
    """Every job of a jobs file, checked as ``animate`` checks one (inputs, options, output); the first
    bad line is an InputError naming it."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such jobs file")
    rows = list(_rows(path))
    if not rows:
        raise InputError(f"{path}: no jobs in it")
    jobs, outputs = [], {}
    for line, row in rows:
        try:
            job = _job(path.parent, line, row, timeout)
        except LivePortraitError as exc:
            raise type(exc)(f"{path}:{line}: {exc}") from None
        if job.task.output in outputs:
            raise InputError(f"{path}:{line}: the output {job.task.output} is also line {outputs[job.task.output]}'s")
        outputs[job.task.output] = line
        jobs.append(job)
    return jobs


def _rows(path: Path):
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            for i, row in enumerate(reader, start=2):
                if not any((v or "").strip() for v in row.values()):
                    continue
                if None in row:
                    raise InputError(f"{path}:{i}: more values than the header has columns")
                options = (row.get("options") or "").strip()
                try:
                    row["options"] = json.loads(options) if options else {}
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{i}: options is not valid JSON ({exc.msg})") from None
                except RecursionError:
                    raise InputError(f"{path}:{i}: options is nested too deeply") from None
                yield i, {k: v for k, v in row.items() if v not in (None, "") or k == "options"}
    elif suffix in (".jsonl", ".ndjson"):
        with open(path) as f:
            for i, text in enumerate(f, start=1):
                if not text.strip():
                    continue
                try:
                    yield i, json.loads(text)
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path}:{i}: not a JSON object ({exc.msg})") from None
                except RecursionError:
                    raise InputError(f"{path}:{i}: nested too deeply to be a job") from None
    else:
        raise InputError(f"{path}: a jobs file is .jsonl (one JSON object a line) or .csv")


def _job(base: Path, line: int, row, timeout: float | None) -> BatchJob:
    if not isinstance(row, dict):
        raise InputError("a line is a JSON object with source, driving, output and options")
    unknown = sorted(set(row) - set(FIELDS))
    if unknown:
        raise InputError(f"unknown field{'s' if len(unknown) > 1 else ''} {', '.join(unknown)}; a job has "
                         f"{', '.join(FIELDS)}")
    missing = [k for k in FIELDS[:3] if not isinstance(row.get(k), str) or not row[k].strip()]
    if missing:
        raise InputError(f"missing {', '.join(missing)}")
    source, driving, output = (base / Path(row[k]).expanduser() for k in FIELDS[:3])
    options = row.get("options") or {}
    config = job_config(options)
    plan = check_job(source, driving, output, config)
    frames = 1 if plan.image_output else max([d.frames or 1 for d in plan.drivings] + [plan.src.frames or 1])
    return BatchJob(line, Task(source, driving, plan.output, dict(options), timeout), frames, job_variant(config))


def preload(jobs: list[BatchJob]) -> tuple[str, ...]:
    """The variant the workers load at the start: human when any job is, else animal (an animal batch never
    loads the human networks); the other is loaded by the first worker that needs it."""
    return ("human",) if any(j.variant == "human" for j in jobs) or not jobs else ("animal",)


def check_animal_weights(path: str | Path, jobs: list[BatchJob], animal_error) -> None:
    """A WeightsError naming the first animal line when ``animal_error()`` (the workers' or the weights
    spec's) says the animal weights are missing; nothing when no job is an animal one."""
    first = next((j for j in jobs if j.variant == "animal"), None)
    if first is None:
        return
    missing = animal_error()
    if missing:
        raise WeightsError(f"{path}:{first.line}: an animal job needs the animal weights: {missing}")


def run_batch(jobs: list[BatchJob], workers, force: bool = False, show_progress: bool = True,
              on_event: Callable[[str, BatchJob, int, dict], None] | None = None) -> BatchReport:
    """Run the jobs whose outputs are missing (all with ``force``) on ``workers``, one job per slot at a
    time; ``on_event(kind, job, slot, info)`` hears "start", "progress", "done" and "failed"."""
    report = BatchReport()
    pending: queue.Queue = queue.Queue()
    for job in jobs:
        if job.complete and not force:
            report.skipped.append(job)
        else:
            pending.put(job)
    todo = pending.qsize()
    bar = _bar(sum(j.frames for j in list(pending.queue)), todo, show_progress)
    lock = threading.Lock()
    emit = on_event or (lambda *a: None)

    def work(slot: int) -> None:
        while True:
            try:
                job = pending.get_nowait()
            except queue.Empty:
                return
            seen = [0]

            def update(state: dict, job=job, seen=seen, slot=slot) -> None:
                with lock:
                    step = min(state["frames_done"], job.frames) - seen[0]
                    if step > 0:
                        bar.update(step)
                        seen[0] += step
                emit("progress", job, slot, state)

            emit("start", job, slot, {})
            try:
                workers.run(slot, job.task, Progress(on_update=update))
            except JobStopped as exc:
                _failed(report, job, stopped_message(exc, job.task.timeout), lock, emit, slot)
            except Exception as exc:  # noqa: BLE001 - one job's failure is reported, the others run
                _failed(report, job, job_message(str(exc)) or type(exc).__name__, lock, emit, slot)
            else:
                with lock:
                    report.done.append(job)
                emit("done", job, slot, {})
            with lock:
                bar.update(job.frames - seen[0])
                bar.set_postfix_str(f"{len(report.done) + len(report.failed)}/{todo} jobs")

    threads = [threading.Thread(target=work, args=(s,), daemon=True) for s in range(min(workers.n, todo))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    bar.close()
    return report


def _failed(report: BatchReport, job: BatchJob, message: str, lock, emit, slot: int) -> None:
    with lock:
        report.failed.append((job, message))
    emit("failed", job, slot, {"error": message})


def _bar(total_frames: int, jobs: int, show: bool):
    from tqdm import tqdm

    return tqdm(total=total_frames, unit="frame", desc=f"{jobs} jobs", dynamic_ncols=True, disable=not show)
