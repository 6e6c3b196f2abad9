"""Overlapping the live loop's stages: each on its own thread, joined by one-slot boxes that keep the newest item.

A frame goes camera decode (the source's thread) -> face tracking + M (``front``) -> W+G, paste-back and
watermark (``back``) -> encode or show (the caller's thread). While ``back`` renders frame n, ``front``
already tracks frame n+1, so the rate approaches 1 / (slowest stage) instead of 1 / (sum of stages) where
the stages do not compete for the same cores (tracking on the CPU beside W+G on a GPU). A stage starts a
frame only once the next stage has taken its last one, and then takes the newest: frames are dropped at
the camera's box, before any work is spent on them, and nothing queues.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable

from .sources import LatestFrame

THREAD_PREFIX = "liveportrait-live"  # every thread of a live loop's stages is named so (tests count them)


class Timings(dict):
    """Milliseconds per named step of one frame, in the order they ran."""

    @contextmanager
    def time(self, name: str):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self[name] = self.get(name, 0.0) + (time.perf_counter() - t0) * 1e3


@dataclass
class Work:
    """One frame on its way through the stages."""

    index: int
    time: float  # perf_counter() when its camera frame arrived: latency is measured from here
    value: Any
    timings: Timings = field(default_factory=Timings)
    where: dict[str, str] = field(default_factory=dict)  # step name -> the stage (thread) that ran it


@dataclass
class Stage:
    """``fn(value, timings) -> value`` (None skips the frame, e.g. no face in it), run on its own thread."""

    name: str
    fn: Callable[[Any, Timings], Any]


class StageLoop:
    """Runs ``stages`` on threads of their own between the source's box and the caller's sink."""

    def __init__(self, stages: list[Stage]):
        self.stages = stages
        self.boxes = [LatestFrame() for _ in stages]  # box i: the output of stage i
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []

    def start(self, inbox: LatestFrame) -> "StageLoop":
        boxes = [inbox] + self.boxes
        for i, stage in enumerate(self.stages):
            t = threading.Thread(target=self._work, args=(stage, boxes[i], boxes[i + 1]), daemon=True,
                                 name=f"{THREAD_PREFIX}-{stage.name}")
            self._threads.append(t)
            t.start()
        return self

    @property
    def output(self) -> LatestFrame:
        return self.boxes[-1]

    def _work(self, stage: Stage, inbox: LatestFrame, outbox: LatestFrame) -> None:
        try:
            while not self._stop.is_set():
                if not outbox.wait_empty(timeout=0.2):  # the next stage is still on our last item
                    continue
                item = inbox.take(timeout=0.2)
                if item is None:
                    if inbox.done:
                        return
                    continue
                if not isinstance(item, Work):  # a source's Arrival: the first stage starts its Work
                    work = Work(item.index, item.time, item.frame)
                    if getattr(item, "decode_ms", 0.0):
                        work.timings["camera decode"] = item.decode_ms
                        work.where["camera decode"] = "source"
                    item = work
                before = set(item.timings)
                value = stage.fn(item.value, item.timings)
                for step in set(item.timings) - before:
                    item.where[step] = stage.name
                if value is None:
                    continue
                item.value = value
                outbox.put(item)
        except BaseException as exc:  # reported by the caller (stop() raises it), never lost on a thread
            self.errors.append(exc)
        finally:
            outbox.close()

    def stop(self, timeout: float = 10.0) -> None:
        """End every stage thread (each finishes the frame in hand) and raise a stage's error, if any."""
        self._stop.set()
        for t in self._threads:
            t.join(timeout)
        if self.errors:
            raise self.errors[0]

    @property
    def alive(self) -> list[threading.Thread]:
        return [t for t in self._threads if t.is_alive()]
