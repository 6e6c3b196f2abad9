"""Streaming helpers and the live engine: frames are dropped, never queued, when rendering is slow."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from liveportrait.live import Arrival, FrameSource, LatestFrame, LiveEngine, MotionSmoother
from liveportrait.media.streams import BackgroundWriter, prefetch


def test_prefetch_keeps_order_and_raises_errors():
    assert list(prefetch(range(20), depth=2)) == list(range(20))

    def broken():
        yield 1
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        list(prefetch(broken()))


def _prefetch_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "liveportrait-prefetch" and t.is_alive()}


def test_prefetch_can_stop_early():
    before = _prefetch_threads()
    it = prefetch(iter(range(10**9)), depth=2)
    assert next(it) == 0
    ours = _prefetch_threads() - before
    assert len(ours) == 1  # the producer runs (blocked on the full queue) while the consumer holds the iterator
    it.close()  # the producer thread is released and ends
    (producer,) = ours
    producer.join(timeout=10)  # a bound for a loaded machine: it ends in milliseconds
    assert not producer.is_alive(), "the prefetch producer thread outlived close()"


def test_background_writer_runs_in_order_and_reports_errors():
    seen = []
    w = BackgroundWriter(seen.append)
    for i in range(10):
        w.put(i)
    w.close()
    assert seen == list(range(10))

    def fail(_):
        raise OSError("disk full")

    w = BackgroundWriter(fail)
    w.put(1)
    with pytest.raises(OSError, match="disk full"):
        w.close()


def test_latest_frame_overwrites():
    box = LatestFrame()
    for i in range(5):
        box.put(Arrival(i, time.perf_counter(), np.zeros(1)))
    assert box.take().index == 4
    assert box.arrived == 5 and box.overwritten == 4
    box.close()
    assert box.take() is None

    box = LatestFrame()
    threading.Timer(0.05, lambda: box.put(Arrival(7, 0.0, np.zeros(1)))).start()
    assert box.take(timeout=2).index == 7


class ScriptedSource(FrameSource):
    """Frame 0; then, while the renderer is busy with it, frames 1-4; then, once 4 is rendered, frame 5.
    Every step waits on an event (bounded), not on the clock."""

    def __init__(self):
        super().__init__()
        self.busy, self.release, self.rendered_4 = threading.Event(), threading.Event(), threading.Event()

    def _put(self, i: int) -> None:
        self.box.put(Arrival(i, time.perf_counter(), np.full(1, i)))

    def _run(self):
        self._put(0)
        if not self.busy.wait(10):
            return
        for i in range(1, 5):
            self._put(i)
        self.release.set()
        if self.rendered_4.wait(10):
            self._put(5)


def test_live_engine_renders_the_newest_frame_and_drops_the_ones_it_missed():
    """A slow renderer takes the newest frame when it is free again: frames that arrived meanwhile are dropped,
    never queued (a queue would make the latency grow with every frame)."""
    source = ScriptedSource()
    engine = LiveEngine(None, None)
    started = []

    def render(frame, timings):  # the render stage, on its thread
        i = int(frame[0])
        started.append(i)
        if i == 0:  # busy: frames 1-4 arrive now
            source.busy.set()
            assert source.release.wait(10)
        if i == 4:
            source.rendered_4.set()
        return frame

    engine.render = render  # taken by the stage when run starts
    shown = []
    stats = engine.run(source, lambda index, out: shown.append((index, int(out[0]))), warmup=False)
    assert started == [0, 4, 5] and shown == [(0, 0), (4, 4), (5, 5)]
    assert (stats.arrived, stats.rendered, stats.dropped) == (6, 3, 3) and source.box.overwritten == 3


def test_motion_smoother_is_identity_at_one_and_keeps_rotations():
    import torch

    from liveportrait.motion.compose import Motion
    from liveportrait.motion.keypoints import rotation_matrix

    def motion(angle):
        a = torch.tensor([angle])
        return Motion(R=rotation_matrix(a, a * 0.5, a * 0), exp=torch.full((1, 21, 3), angle),
                      t=torch.zeros(1, 3), scale=torch.ones(1, 1))

    s = MotionSmoother(1.0)
    m = motion(10.0)
    assert s(m) is m
    s = MotionSmoother(0.5)
    s(motion(0.0))
    out = s(motion(20.0))
    assert torch.allclose(out.exp, torch.full((1, 21, 3), 10.0))
    eye = out.R[0] @ out.R[0].T
    assert torch.allclose(eye, torch.eye(3), atol=1e-5)
