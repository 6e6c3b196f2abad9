"""Streaming helpers and the live engine: frames are dropped, never queued, when rendering is slow."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from liveportrait.speed.stream import Arrival, BackgroundWriter, LatestFrame, MotionSmoother, prefetch


def test_prefetch_keeps_order_and_raises_errors():
    assert list(prefetch(range(20), depth=2)) == list(range(20))

    def broken():
        yield 1
        raise RuntimeError("decoder failed")

    with pytest.raises(RuntimeError, match="decoder failed"):
        list(prefetch(broken()))


def test_prefetch_can_stop_early():
    it = prefetch(iter(range(10**9)), depth=2)
    assert next(it) == 0
    it.close()  # the producer thread is released


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
