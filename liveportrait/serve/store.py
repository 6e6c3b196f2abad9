"""The server's jobs on disk: SQLite in WAL mode (``DATA/jobs.sqlite3``) and one folder per job.

A job's inputs are written and flushed to ``DATA/jobs/ID/`` and its row committed (synchronous=FULL)
before the server answers 202, so an accepted job survives a crash; on start, jobs that were running
are queued again and run from the start, and half-written results (the writers' hidden ``.part`` files)
are removed. One connection, used under a lock: SQLite serialises writers anyway.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import threading
import time
import uuid
from pathlib import Path

from ..errors import OutputError
from .jobs import FINISHED

ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT UNIQUE NOT NULL,
    idempotency_key TEXT UNIQUE,
    state TEXT NOT NULL,
    options TEXT NOT NULL,
    source TEXT NOT NULL,
    driving TEXT NOT NULL,
    result TEXT,
    progress REAL NOT NULL DEFAULT 0,
    frames_done INTEGER NOT NULL DEFAULT 0,
    frames_total INTEGER,
    fps REAL,
    eta_s REAL,
    error TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    worker TEXT,
    created REAL NOT NULL,
    started REAL,
    finished REAL
)
"""
_PUBLIC = ("id", "state", "progress", "frames_done", "frames_total", "fps", "eta_s", "error", "attempts", "worker",
           "created", "started", "finished")


class QueueFull(Exception):
    """The queue holds as many waiting jobs as it may."""


class JobStore:
    """Jobs and their files under ``data``; every method is safe to call from any thread."""

    def __init__(self, data: str | os.PathLike):
        from ..files import check_folder_writable, make_folder

        self.data = check_folder_writable(Path(data))
        self.jobs_dir = self.data / "jobs"
        make_folder(self.jobs_dir)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.data / "jobs.sqlite3", check_same_thread=False, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
        except sqlite3.Error as exc:
            raise OutputError(f"cannot keep the job database in {self.data}: {exc}") from None

    # -- accepting ----------------------------------------------------------------------------------

    def new_folder(self) -> tuple[str, Path]:
        """A fresh job id and its folder, where the uploads go before ``add``."""
        job_id = uuid.uuid4().hex
        folder = self.jobs_dir / job_id
        folder.mkdir()
        return job_id, folder

    def add(self, job_id: str, source: Path, driving: Path, result: Path, options: dict,
            idempotency_key: str | None, max_queued: int | None = None) -> tuple[dict, bool]:
        """Commit a queued job whose files are in place; returns (job, created). With a key already
        used, the earlier job (and False): this one's folder is removed. QueueFull when ``max_queued``
        jobs wait already (checked and inserted in one step)."""
        _sync_folder(source.parent)
        with self._lock:
            if max_queued is not None and self._by_key(idempotency_key) is None:
                queued = self._db.execute("SELECT COUNT(*) FROM jobs WHERE state = 'queued'").fetchone()[0]
                if queued >= max_queued:
                    raise QueueFull()
            try:
                self._db.execute(
                    "INSERT INTO jobs (id, idempotency_key, state, options, source, driving, result, created) "
                    "VALUES (?, ?, 'queued', ?, ?, ?, ?, ?)",
                    (job_id, idempotency_key, json.dumps(options), source.name, driving.name, result.name,
                     time.time()))
            except sqlite3.IntegrityError:
                existing = self._by_key(idempotency_key)
                if existing is None:
                    raise
                self.remove_files(job_id)
                return existing, False
        return self.get(job_id), True

    def find_key(self, key: str) -> dict | None:
        with self._lock:
            return self._by_key(key)

    def _by_key(self, key: str | None) -> dict | None:
        row = self._db.execute("SELECT * FROM jobs WHERE idempotency_key = ?", (key,)).fetchone()
        return _public(row) if row else None

    # -- reading ------------------------------------------------------------------------------------

    def get(self, job_id: str) -> dict | None:
        row = self.row(job_id)
        return _public(row) if row else None

    def row(self, job_id: str) -> sqlite3.Row | None:
        if not ID_PATTERN.match(job_id):
            return None  # never a path: ids are hex
        with self._lock:
            return self._db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()

    def list(self, state: str | None = None, limit: int = 100) -> list[dict]:
        query, args = "SELECT * FROM jobs", []
        if state:
            query, args = query + " WHERE state = ?", [state]
        with self._lock:
            rows = self._db.execute(query + " ORDER BY seq DESC LIMIT ?", (*args, limit)).fetchall()
        return [_public(r) for r in rows]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state").fetchall()
        return {state: n for state, n in rows}

    def files(self, row: sqlite3.Row) -> tuple[Path, Path, Path]:
        folder = self.jobs_dir / row["id"]
        return folder / row["source"], folder / row["driving"], folder / row["result"]

    # -- running ------------------------------------------------------------------------------------

    def claim(self, worker: str) -> sqlite3.Row | None:
        """The oldest queued job, now running (or None)."""
        with self._lock:
            return self._db.execute(
                "UPDATE jobs SET state = 'running', started = ?, attempts = attempts + 1, worker = ?, "
                "progress = 0, frames_done = 0 "
                "WHERE seq = (SELECT seq FROM jobs WHERE state = 'queued' ORDER BY seq LIMIT 1) RETURNING *",
                (time.time(), worker)).fetchone()

    def update(self, job_id: str, **values) -> None:
        names = ", ".join(f"{k} = ?" for k in values)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {names} WHERE id = ?", (*values.values(), job_id))

    def finish(self, job_id: str, state: str, error: str | None = None, **values) -> None:
        assert state in FINISHED
        self.update(job_id, state=state, error=error, finished=time.time(), eta_s=None, **values)

    def cancel_queued(self, job_id: str) -> bool:
        """Cancel a job that has not started; False when it has (or is finished)."""
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = 'cancelled', finished = ?, error = 'cancelled' "
                                   "WHERE id = ? AND state = 'queued'", (time.time(), job_id))
            return cur.rowcount == 1

    def requeue(self, job_id: str) -> None:
        self.update(job_id, state="queued", progress=0, frames_done=0, eta_s=None, started=None)

    def recover(self) -> int:
        """After a crash or a stop: jobs that were running go back to the queue, and the hidden partial
        results of the writers are deleted. Returns how many were re-queued."""
        for part in self.jobs_dir.glob("*/.*.part*"):
            from ..files import discard

            discard(part)
        with self._lock:
            cur = self._db.execute("UPDATE jobs SET state = 'queued', progress = 0, frames_done = 0, eta_s = NULL, "
                                   "started = NULL WHERE state = 'running'")
            return cur.rowcount

    def remove_files(self, job_id: str) -> None:
        shutil.rmtree(self.jobs_dir / job_id, ignore_errors=True)

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _public(row: sqlite3.Row) -> dict:
    job = {k: row[k] for k in _PUBLIC}
    job["options"] = json.loads(row["options"])
    return job


def _sync_folder(folder: Path) -> None:
    """fsync every file of a job's folder and the folder itself: on disk before the job is acknowledged."""
    for path in folder.iterdir():
        with open(path, "rb") as f:
            os.fsync(f.fileno())
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
