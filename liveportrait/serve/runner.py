"""The server's dispatcher: one thread per worker slot takes the oldest queued job from the store, runs
it (locally or on a Ray actor) and records its progress and outcome.

A job stopped by a shutdown goes back to the queue; one cancelled or out of time is finished as such.
Metrics (frame time, jobs run) are kept here for ``/metrics``.
"""

from __future__ import annotations

import json
import threading
import time

from ..errors import LivePortraitError
from .jobs import JobStopped, Progress, job_message, stopped_message
from .store import JobStore
from .workers import Task


class JobRunner:
    def __init__(self, store: JobStore, workers, timeout: float | None = None):
        self.store, self.workers, self.timeout = store, workers, timeout
        self._wake = threading.Condition()
        self._running: dict[str, Progress] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.frame_seconds = 0.0  # the sum and count of per-frame times, for /metrics
        self.frames = 0
        self.job_seconds = 0.0  # the time of succeeded jobs, for Retry-After
        self.jobs_done = 0
        self.rejected = 0
        self.started = False  # the workers are loaded and taking jobs (until then /healthz says "loading")

    def start(self, workers=None) -> None:
        """Take jobs, with ``workers`` (loaded meanwhile, while the server already queued jobs) if given."""
        if workers is not None:
            self.workers = workers
        self.store.recover()
        self.started = True
        for slot in range(self.workers.n):
            t = threading.Thread(target=self._loop, args=(slot,), name=f"liveportrait-worker-{slot}", daemon=True)
            t.start()
            self._threads.append(t)

    def notify(self) -> None:
        """A job was queued."""
        with self._wake:
            self._wake.notify_all()

    def cancel(self, job_id: str) -> bool:
        """Stop a running job; False when it is not running here."""
        progress = self._running.get(job_id)
        if progress is None:
            return False
        progress.stop("cancelled")
        return True

    def stop(self, wait: float = 30) -> None:
        """Stop taking jobs; running ones are interrupted and queued again for the next start."""
        self._stop.set()
        for progress in list(self._running.values()):
            progress.stop("shutdown")
        self.notify()
        for t in self._threads:
            t.join(wait)

    @property
    def busy(self) -> int:
        return len(self._running)

    def _loop(self, slot: int) -> None:
        while not self._stop.is_set():
            row = self.store.claim(self.workers.where[slot])
            if row is None:
                with self._wake:
                    self._wake.wait(1.0)
                continue
            self._run(slot, row)

    def _run(self, slot: int, row) -> None:
        job_id = row["id"]
        source, driving, result = self.store.files(row)
        task = Task(source, driving, result, json.loads(row["options"]), self.timeout)
        progress = Progress(on_update=lambda s: self.store.update(job_id, **s, worker=self.workers.where[slot]),
                            deadline=time.monotonic() + self.timeout if self.timeout else None)
        self._running[job_id] = progress
        try:
            summary = self.workers.run(slot, task, progress)
        except JobStopped as exc:
            if exc.reason == "shutdown":
                self.store.requeue(job_id)
            else:
                self.store.finish(job_id, "cancelled" if exc.reason == "cancelled" else "failed",
                                  stopped_message(exc, self.timeout))
        except LivePortraitError as exc:
            self.store.finish(job_id, "failed", _one_line(job_message(str(exc))))
        except Exception as exc:  # noqa: BLE001 - a job's failure must not stop the worker
            self.store.finish(job_id, "failed", _one_line(f"{type(exc).__name__}: {exc}"))
        else:
            elapsed = time.monotonic() - progress.started
            self.job_seconds += elapsed
            self.jobs_done += 1
            if summary["frames"]:
                self.frame_seconds += elapsed
                self.frames += summary["frames"]
            self.store.finish(job_id, "succeeded", progress=1.0, frames_done=summary["frames"],
                              frames_total=summary["frames"], fps=summary["frames"] / elapsed if elapsed else None)
        finally:
            self._running.pop(job_id, None)


def _one_line(text: str) -> str:
    return " ".join(text.split())[:500]
