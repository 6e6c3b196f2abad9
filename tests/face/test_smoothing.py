"""Causal crop smoothing."""

from __future__ import annotations

import numpy as np

from liveportrait.face.smoothing import OneEuroFilter, SteadyBox


def test_one_euro_removes_jitter_at_rest():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=0.3, beta=3.0)
    raw = 100 + rng.normal(0, 2.0, 200)
    out = np.array([f([x], 1 / 25, scale=100.0)[0] for x in raw])
    assert np.std(np.diff(out[50:])) < 0.2 * np.std(np.diff(raw[50:]))


def test_one_euro_follows_a_fast_move_with_little_lag():
    f = OneEuroFilter(min_cutoff=0.3, beta=3.0)
    t = np.arange(100) / 25
    raw = np.where(t < 1, 100.0, 100.0 + 100 * (t - 1))  # then moves one face size per second
    out = np.array([f([x], 1 / 25, scale=100.0)[0] for x in raw])
    lag = raw[-1] - out[-1]
    assert 0 <= lag < 15  # a fixed 0.3 Hz low-pass would trail by about 50


def test_steady_box_holds_still_then_follows_a_face_that_wanders_off():
    s = SteadyBox(tolerance=0.15, rate=3.0)
    rng = np.random.default_rng(1)
    held = [s([250 + rng.normal(0, 5), 250, 500, 0], 1 / 25) for _ in range(50)]
    assert np.ptp([h[0] for h in held]) == 0  # jitter inside the dead zone never moves it
    for _ in range(60):
        out = s([400, 250, 500, 0], 1 / 25)  # the face moved 30% of the box away
    assert abs(out[0] - 400) < 0.05 * 500
    s.reset()
    assert s.value is None
