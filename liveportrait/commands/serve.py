"""``liveportrait serve``: the job server (HTTP API over the Python API), locally or on a Ray cluster."""

from __future__ import annotations

import argparse
import os
import sys

from . import (
    HelpFormatter,
    add_c2pa_arguments,
    add_compute_arguments,
    c2pa_settings,
    listen_socket,
    number,
    require_extra,
)

TOKEN_VARIABLE = "LIVEPORTRAIT_TOKEN"


def add_pipeline_arguments(p: argparse.ArgumentParser) -> None:
    """The options every worker loads its pipeline with (as ``animate``'s compute options)."""
    g = p.add_argument_group("compute")
    add_compute_arguments(g)
    g.add_argument("--workers", type=number(int, 1, 256), default=1,
                   help="workers, each with the networks loaded, running one job at a time")
    g.add_argument("--ray", metavar="ADDRESS|auto|local", default=None,
                   help="run the workers as Ray actors: on the cluster at ADDRESS, the one `ray start` or "
                        "$RAY_ADDRESS names (auto), or a new one on this machine (local)")
    g.add_argument("--ray-cpus", type=number(float, above=0), default=1, help="CPUs per Ray worker")
    g.add_argument("--ray-gpus", type=number(float, 0), default=0,
                   help="GPUs per Ray worker (fractions share a GPU, e.g. 0.25)")
    add_c2pa_arguments(p)  # every result signed with C2PA Content Credentials (the files must be on every node)


def pipeline_spec(args):
    from ..serve.workers import PipelineSpec

    return PipelineSpec(args.weights, args.device, args.precision, args.backend, args.model_config,
                        c2pa_settings(args))


def make_workers(args, on_retry=None, preload: tuple[str, ...] = ("human",)):
    """Local pipelines or Ray actors, as the options say (the ``preload`` variants' networks loaded when this
    returns; the animal ones, if not among them, the first time an animal job comes)."""
    if args.ray is None:
        from ..serve.workers import LocalWorkers

        return LocalWorkers(pipeline_spec(args), args.workers, preload)
    require_extra("serve", ("ray",), "--ray")
    from ..serve.workers import RayWorkers

    return RayWorkers(pipeline_spec(args), args.workers, args.ray, args.ray_cpus, args.ray_gpus, on_retry=on_retry,
                      preload=preload)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "serve", help="serve animation jobs over HTTP (a queue that survives restarts; Ray for more machines)",
        description="A job server: POST /v1/jobs with a source and a driving, follow GET /v1/jobs/ID, fetch "
                    "GET /v1/jobs/ID/result. Jobs are kept in --data and survive restarts; a full queue answers "
                    "429. OpenAPI documentation at /docs. A job with \"animal\": true in its options animates a cat "
                    "or dog photo (as animate --animal) if the weights folder has the animal weights; each worker "
                    "loads the animal networks for its first animal job and keeps them.",
        formatter_class=HelpFormatter)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on; any but loopback needs --token")
    p.add_argument("--port", type=number(int, 1, 65535), default=8000, help="port to listen on")
    p.add_argument("--data", default="liveportrait-jobs", metavar="DIR",
                   help="where jobs, their uploads and results are kept (SQLite database and one folder per job)")
    p.add_argument("--token", default=None,
                   help=f"require 'Authorization: Bearer TOKEN' on every request (default: ${TOKEN_VARIABLE})")
    p.add_argument("--cors", action="append", default=[], metavar="ORIGIN",
                   help="allow browser requests from ORIGIN (repeatable; off by default)")
    limits = p.add_argument_group("limits")
    limits.add_argument("--queue", type=number(int, 1), default=16, help="jobs waiting before 429 Too Many Requests")
    limits.add_argument("--max-upload-mb", type=number(above=0), default=200, help="largest upload accepted")
    limits.add_argument("--max-pixels", type=number(int, 1), default=40_000_000, help="largest source photo")
    limits.add_argument("--max-video-seconds", type=number(above=0), default=600, help="longest video accepted")
    limits.add_argument("--job-timeout", type=number(above=0), default=1800, metavar="SECONDS",
                        help="a job running longer fails")
    add_pipeline_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .._lazy import is_loopback
    from ..errors import InputError

    token = args.token or os.environ.get(TOKEN_VARIABLE) or None
    if not is_loopback(args.host) and not token:
        raise InputError(f"listening on {args.host} makes the server reachable from other machines: give --token "
                         f"(or set ${TOKEN_VARIABLE})")
    require_extra("serve", ("fastapi", "uvicorn", "python_multipart"), "liveportrait serve")
    c2pa_settings(args)  # bad C2PA credentials: one line and exit code 8, before anything starts
    sock = listen_socket(args.host, args.port)  # a busy port: one line and exit code 9, in a second
    try:
        if args.ray is None:  # missing weights: one line before anything is created (Ray's nodes have their own)
            from ..networks.checkpoint import locate_weights

            locate_weights(args.weights)
        return _serve(args, token, sock)
    finally:
        sock.close()


def _serve(args: argparse.Namespace, token: str | None, sock) -> int:
    """Listen at once and load the networks meanwhile: /healthz answers 503 "loading" and jobs queue until
    the workers are ready; a failed load stops the server with its error."""
    import threading

    from ..serve.store import JobStore

    store = JobStore(args.data)  # an unwritable folder fails here, before any network loads

    import uvicorn

    from ..serve.app import ServerSettings, create_app
    from ..serve.runner import JobRunner
    from ..serve.workers import StartingWorkers
    from ..uploads import UploadLimits

    runner = JobRunner(store, StartingWorkers(pipeline_spec(args), args.workers), timeout=args.job_timeout)
    limits = UploadLimits.every_kind_at_most(args.max_upload_mb, max_pixels=args.max_pixels,
                                             video_seconds=args.max_video_seconds)
    settings = ServerSettings(token=token, cors=tuple(args.cors), queue_size=args.queue, limits=limits,
                              c2pa=c2pa_settings(args))
    server = uvicorn.Server(uvicorn.Config(create_app(store, runner, settings), log_level="warning" if args.quiet
                                           else "info", access_log=not args.quiet, timeout_graceful_shutdown=5))
    failed: list[BaseException] = []

    def load() -> None:
        try:
            workers = make_workers(args)
        except BaseException as exc:  # noqa: BLE001 - reported by the main thread once the server stopped
            failed.append(exc)
            server.should_exit = True
            return
        runner.start(workers)
        if not args.quiet:
            where = f"Ray workers at {', '.join(workers.where)}" if args.ray else f"{workers.n} worker(s)"
            print(f"ready: {where}", file=sys.stderr, flush=True)

    if not args.quiet:
        print(f"serving on http://{args.host}:{args.port} (jobs in {store.data}; API docs at /docs); loading "
              "networks ...", file=sys.stderr, flush=True)
    loader = threading.Thread(target=load, name="liveportrait-load", daemon=True)
    loader.start()
    try:
        server.run(sockets=[sock])
    finally:
        runner.stop()
        loader.join(60)
        runner.workers.close()
        store.close()
    if failed:
        raise failed[0]
    return 0
