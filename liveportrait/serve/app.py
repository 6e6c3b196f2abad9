"""The HTTP API of ``liveportrait serve`` (FastAPI): submit, follow, fetch and cancel animation jobs.

A job is checked (options, the uploads' real content, sizes and pixels, templates through the restricted
loader) and persisted before the 202 answer; the queue is bounded (429 with ``Retry-After``); with a
token every request must carry it (compared in constant time); every error is a JSON object
``{"error": "one line", "status": code}``, never a traceback. No request names a server-side path.
An animal job (``"animal": true``) on a server whose weights lack the animal ones is refused (422) before
its uploads are read.
"""

from __future__ import annotations

import errno
import hmac
import json
import math
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from fastapi import FastAPI, File, Form, Header, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import LivePortraitError, OutputError
from ..uploads import UploadLimits, check_upload, load_photo
from .jobs import FINISHED, JOB_OPTIONS, JOB_STATES, check_job, job_config
from .metrics import exposition, metrics_registry
from .runner import JobRunner
from .store import JobStore, QueueFull

_SUFFIX = re.compile(r"^\.[a-z0-9]{1,5}$")
_MEDIA_TYPES = {".mp4": "video/mp4", ".gif": "image/gif", ".png": "image/png", ".jpg": "image/jpeg"}
_CHUNK = 1 << 20
DISK_FULL = "the server's disk is full; try again later"


@dataclass(frozen=True)
class ServerSettings:
    token: str | None = None
    cors: tuple[str, ...] = ()
    limits: UploadLimits = UploadLimits()
    queue_size: int = 16  # jobs waiting (not counting those running) before 429
    max_idempotency_key: int = 200
    c2pa: object | None = None  # provenance.c2pa.C2paSettings the results are signed with: checked at each submission


class ApiError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status, self.headers = status, headers


def error_response(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": " ".join(str(message).split()), "status": status}, status, headers=headers)


def create_app(store: JobStore, runner: JobRunner, settings: ServerSettings = ServerSettings()) -> FastAPI:
    app = FastAPI(title="liveportrait", version=__version__,
                  description="Portrait animation jobs: POST a source and a driving, follow the job, fetch the "
                              "result. Jobs survive restarts; a full queue answers 429 with Retry-After.")
    limits = settings.limits
    body_limit = int(2 * limits.largest_mb * 2**20 + 2**20)  # two uploads and the form around them

    if settings.cors:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors), allow_methods=["GET", "POST", "DELETE"],
                           allow_headers=["Authorization", "Idempotency-Key", "Content-Type"])

    @app.middleware("http")
    async def guard(request: Request, call_next):
        if settings.token is not None and request.method != "OPTIONS":
            given = request.headers.get("authorization", "")
            scheme, _, token = given.partition(" ")
            if not (scheme.lower() == "bearer" and hmac.compare_digest(token.encode(), settings.token.encode())):
                return error_response(401, "missing or wrong token: send 'Authorization: Bearer TOKEN'",
                                      {"WWW-Authenticate": "Bearer"})
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return error_response(411, "send the upload with a Content-Length")
            if not length.isdigit() or int(length) > body_limit:
                return error_response(413, f"the upload is larger than {body_limit / 2**20:.0f} MB")
        return await call_next(request)

    @app.exception_handler(ApiError)
    async def api_error(request, exc: ApiError):
        return error_response(exc.status, str(exc), exc.headers)

    @app.exception_handler(LivePortraitError)
    async def job_error(request, exc: LivePortraitError):
        return error_response(503 if isinstance(exc, OutputError) else 422, str(exc))

    @app.exception_handler(HTTPException)
    async def http_error(request, exc: HTTPException):
        return error_response(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        if first.get("type") == "missing":
            return error_response(422, f"missing field {where!r}")
        return error_response(422, f"{where}: {first.get('msg', 'invalid')}")

    @app.exception_handler(Exception)
    async def internal_error(request, exc: Exception):
        if _disk_full(exc):
            return error_response(507, DISK_FULL)
        return error_response(500, f"internal error ({type(exc).__name__})")

    def retry_after() -> str:
        per_job = runner.job_seconds / runner.jobs_done if runner.jobs_done else 5.0
        return str(max(1, math.ceil(per_job * max(1, settings.queue_size) / max(1, runner.workers.n))))

    def full() -> ApiError:
        runner.rejected += 1
        return ApiError(429, f"the queue is full ({settings.queue_size} jobs waiting); retry later",
                        {"Retry-After": retry_after()})

    @app.post("/v1/jobs", status_code=202, summary="Submit an animation job")
    def submit(source: UploadFile = File(..., description="photo or video with a face"),
               driving: UploadFile = File(..., description="driving video, photo or motion template"),
               options: str = Form("{}", description="JSON object of AnimateConfig / MotionOptions field names "
                                                     f"and values: {', '.join(JOB_OPTIONS)}"),
               idempotency_key: str | None = Header(None, description="resubmitting with it returns the same job")):
        if idempotency_key is not None:
            if not 0 < len(idempotency_key) <= settings.max_idempotency_key or not idempotency_key.isprintable():
                raise ApiError(422, f"Idempotency-Key must be 1 to {settings.max_idempotency_key} printable "
                                    "characters")
            existing = store.find_key(idempotency_key)
            if existing is not None:
                return existing
        if store.counts().get("queued", 0) >= settings.queue_size:
            raise full()
        opts = _parse_options(options)
        config = job_config(opts)
        if settings.c2pa is not None:
            _check_c2pa(settings.c2pa)  # credentials that expired or went away since the start: 422, nothing queued
        if config.animal and runner.workers.animal_error() is not None:
            from .workers import ANIMAL_WEIGHTS_MISSING

            raise ApiError(422, ANIMAL_WEIGHTS_MISSING)  # refused before the uploads are read
        job_id, folder = store.new_folder()
        try:
            src = _save_upload(source, folder, "source", limits)
            drv = _save_upload(driving, folder, "driving", limits)
            _, kind = check_upload(src, ("image", "video"), "a source photo or video", limits)
            check_upload(drv, ("video", "image", "template"), "a driving video, photo or motion template", limits)
            if kind == "image":
                load_photo(src, "a source photo", limits)
            plan = check_job(src, drv, None, config, folder)
            job, created = store.add(job_id, src, drv, plan.output, {"save_template": False, **opts},
                                     idempotency_key, settings.queue_size)
        except LivePortraitError as exc:
            store.remove_files(job_id)
            raise ApiError(503 if isinstance(exc, OutputError) else 422, _hide(str(exc), folder)) from None
        except QueueFull:
            store.remove_files(job_id)
            raise full() from None
        except BaseException as exc:
            store.remove_files(job_id)
            if _disk_full(exc):
                raise ApiError(507, DISK_FULL) from None
            raise
        runner.notify()
        return job

    @app.get("/v1/jobs", summary="List jobs, newest first")
    def list_jobs(state: str | None = Query(None, description=" | ".join(JOB_STATES)),
                  limit: int = Query(100, ge=1, le=1000)):
        if state is not None and state not in JOB_STATES:
            raise ApiError(422, f"state must be one of {', '.join(JOB_STATES)}")
        return {"jobs": store.list(state, limit)}

    def job_or_404(job_id: str) -> dict:
        job = store.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id!r}")
        return job

    @app.get("/v1/jobs/{job_id}", summary="A job's state, progress, frames done, fps, ETA and error")
    def get_job(job_id: str):
        return job_or_404(job_id)

    @app.get("/v1/jobs/{job_id}/result", summary="The result file (marked as generated)",
             response_class=FileResponse)
    def get_result(job_id: str):
        job = job_or_404(job_id)
        if job["state"] != "succeeded":
            why = f": {job['error']}" if job["error"] else "; it is ready when the state is succeeded"
            raise ApiError(409, f"job {job_id} is {job['state']}{why}")
        path = store.files(store.row(job_id))[2]
        return FileResponse(path, media_type=_MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
                            filename=f"{job_id}{path.suffix}")

    @app.delete("/v1/jobs/{job_id}", summary="Cancel a queued or running job")
    def cancel(job_id: str):
        job = job_or_404(job_id)
        if job["state"] in FINISHED:
            raise ApiError(409, f"job {job_id} is already {job['state']}")
        if store.cancel_queued(job_id):
            return store.get(job_id)
        for _ in range(50):  # just claimed: its worker registers it in a moment
            if runner.cancel(job_id):
                return JSONResponse(dict(store.get(job_id), cancelling=True), 202)
            if store.get(job_id)["state"] in FINISHED:
                break
            time.sleep(0.02)
        return store.get(job_id)

    @app.get("/healthz", summary="Readiness: the workers and the queue (503 and status 'loading' while the "
                                 "networks load; jobs are queued meanwhile)")
    def healthz():
        counts = store.counts()
        body = {"status": "ok" if runner.started else "loading", "version": __version__,
                "workers": runner.workers.n, "busy": runner.busy, "queued": counts.get("queued", 0),
                "pipelines": runner.workers.loaded()}
        return body if runner.started else JSONResponse(body, status_code=503)

    registry = metrics_registry(store, runner)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics")
    def metrics(request: Request):
        body, content_type = exposition(registry, request.headers.get("accept"))
        return Response(body, media_type=content_type)

    return app


def _check_c2pa(c2pa) -> None:
    from ..errors import CredentialsError

    try:
        c2pa.check()
    except CredentialsError as exc:  # the reason without the server's paths
        raise ApiError(422, f"this server cannot sign results with C2PA: {exc.reason}") from None


def _disk_full(exc: BaseException) -> bool:
    return (isinstance(exc, OSError) and exc.errno == errno.ENOSPC) or "disk is full" in str(exc)  # or SQLite's


def _parse_options(text: str) -> dict:
    try:
        options = json.loads(text or "{}")
    except json.JSONDecodeError as exc:
        raise ApiError(422, f"options is not valid JSON ({exc.msg} at character {exc.pos})") from None
    except RecursionError:  # "[[[[...]]]]" thousands deep: the parser's stack, not a server error
        raise ApiError(422, "options is nested too deeply to be option names and values") from None
    if not isinstance(options, dict):
        raise ApiError(422, "options must be a JSON object of option names and values")
    return options


def _save_upload(upload: UploadFile, folder: Path, role: str, limits: UploadLimits) -> Path:
    """Copy an upload into the job's folder as ROLE.EXT (only the extension of the client's name is kept,
    and only if it looks like one: the name never becomes a path); refuse it past the largest limit."""
    name = Path(upload.filename or "").name.lower()
    suffix = ".lpt.npz" if name.endswith(".lpt.npz") else Path(name).suffix
    path = folder / (role + (suffix if _SUFFIX.match(suffix or "") else ""))
    most = limits.largest_mb * 2**20
    size = 0
    with open(path, "wb") as out:
        while chunk := upload.file.read(_CHUNK):
            size += len(chunk)
            if size > most:
                raise ApiError(413, f"the {role} is larger than {limits.largest_mb:g} MB")
            out.write(chunk)
    return path


def _hide(message: str, folder: Path) -> str:
    """A message without the server's paths: files are named by their role."""
    return message.replace(str(folder) + os.sep, "").replace(str(folder), "")

