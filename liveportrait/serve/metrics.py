"""The job server's Prometheus metrics, read from the job store and the runner when scraped and written in
the text exposition format by ``prometheus-client``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily
from prometheus_client.registry import Collector

from .jobs import JOB_STATES


class JobMetrics(Collector):
    """Queue depth, jobs by state, workers, pipelines by variant, time per frame, refused submissions."""

    def __init__(self, store, runner):
        self.store, self.runner = store, runner

    def collect(self):
        counts = self.store.counts()
        yield GaugeMetricFamily("liveportrait_queue_depth", "Jobs waiting for a worker.",
                                value=counts.get("queued", 0))
        jobs = GaugeMetricFamily("liveportrait_jobs", "Jobs by state.", labels=["state"])
        for state in JOB_STATES:
            jobs.add_metric([state], counts.get(state, 0))
        yield jobs
        yield GaugeMetricFamily("liveportrait_workers", "Worker slots (pipelines loaded).",
                                value=self.runner.workers.n)
        pipelines = GaugeMetricFamily("liveportrait_pipelines",
                                      "Pipelines loaded, by variant (at most one of each per worker).",
                                      labels=["variant"])
        for variant, n in self.runner.workers.loaded().items():
            pipelines.add_metric([variant], n)
        yield pipelines
        yield SummaryMetricFamily("liveportrait_frame_seconds",
                                  "Time per output frame of finished jobs (whole job time).",
                                  count_value=self.runner.frames, sum_value=self.runner.frame_seconds)
        yield CounterMetricFamily("liveportrait_rejected", "Submissions refused because the queue was full.",
                                  value=self.runner.rejected)


def metrics_registry(store, runner) -> CollectorRegistry:
    """A registry of this server's own (not the process-wide one: a process may run several apps)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(JobMetrics(store, runner))
    return registry


def exposition(registry: CollectorRegistry, accept: str | None) -> tuple[bytes, str]:
    """The body and content type of a scrape, in the format the scraper's Accept header asks for (OpenMetrics
    or a newer text format when it says so; else the classic text format, version 0.0.4)."""
    encode, content_type = choose_encoder(accept or "")
    return encode(registry), content_type
