"""``liveportrait batch JOBS``: many animations from a .jsonl or .csv, on local workers or on Ray."""

from __future__ import annotations

import argparse
import sys

from . import HelpFormatter, c2pa_settings, number
from .serve import add_pipeline_arguments, make_workers, pipeline_spec


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "batch", help="run many animations from a .jsonl or .csv of jobs (locally or on a Ray cluster)",
        description="Run every job of JOBS: a .jsonl with one {\"source\", \"driving\", \"output\", \"options\"} "
                    "object a line, or a .csv with those columns (options as JSON). Paths are relative to the "
                    "jobs file. All lines are checked first; jobs whose output exists are skipped, so a re-run "
                    "finishes an interrupted batch. \"animal\": true in options makes a line an animal job "
                    "(as animate --animal; a cat or dog not found needs \"crop\": \"x0,y0,x1,y1\").",
        formatter_class=HelpFormatter)
    p.add_argument("jobs", metavar="JOBS", help="the jobs file (.jsonl or .csv)")
    p.add_argument("--force", action="store_true", help="run jobs whose output exists too")
    p.add_argument("--job-timeout", type=number(above=0), default=None, metavar="SECONDS",
                   help="a job running longer fails (default: no limit)")
    add_pipeline_arguments(p)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar (the summary line stays)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..serve.batch import check_animal_weights, preload, read_jobs, run_batch

    c2pa_settings(args)  # bad C2PA credentials: one line and exit code 8, before any job is read
    jobs = read_jobs(args.jobs, args.job_timeout)  # every line checked before a network loads
    if all(j.complete for j in jobs) and not args.force:
        print(f"all {len(jobs)} jobs are done already (--force runs them again)", file=sys.stderr)
        return 0
    todo = [j for j in jobs if args.force or not j.complete]
    if args.ray is None:  # here, before a network loads; on Ray, the nodes answer once their actors start
        check_animal_weights(args.jobs, todo, pipeline_spec(args).animal_error)

    def retried(task, attempt, exc):
        print(f"note: a worker died running {task.output.name}; running it again (attempt {attempt + 1})",
              file=sys.stderr)

    if not args.quiet and args.ray is None:  # (Ray's actors load on their nodes and answer for themselves)
        print(f"{len(todo)} job(s) to run; loading networks for {args.workers} worker(s) ...", file=sys.stderr,
              flush=True)
    workers = make_workers(args, on_retry=retried, preload=preload(todo))
    try:
        check_animal_weights(args.jobs, todo, workers.animal_error)
        report = run_batch(jobs, workers, force=args.force, show_progress=not args.quiet)
    finally:
        workers.close()
    for job, message in report.failed:
        print(f"failed: {args.jobs}:{job.line} ({job.task.output.name}): {message}", file=sys.stderr)
    skipped = f", {len(report.skipped)} skipped (done already)" if report.skipped else ""
    print(f"{len(report.done)} done, {len(report.failed)} failed{skipped}", file=sys.stderr)
    return 1 if report.failed else 0
