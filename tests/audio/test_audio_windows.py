"""Windowing, noise and smoothing of the audio sampler, on numbers worked out by hand from the spec (3.1, 3.8)."""

from __future__ import annotations

import numpy as np
import pytest

from liveportrait.audio.sampler import PAD_BACK, PAD_FRONT, EmaSmoother, RandomNoise, WindowGeometry, iter_windows


# raw samples -> (windows, frames kept in the last window); the signal gets 1280 + 640 samples of padding:
#   0      -> L 1920:  clip 3,   one window, pad 62080 -> 97 padded frames dropped: 3 frames
#   62079  -> L 63999: clip 99,  pad 1 -> 1 frame dropped: 99
#   62080  -> L 64000: clip 100, pad 0: 100
#   62719  -> L 64639: clip 100, one window, pad -639: nothing appended or dropped: 100
#   62720  -> L 64640: clip 101, two windows, pad 63360 -> 99 dropped: 100 + 1
#   87836  -> the kit's speech: 2 windows, 140 frames (its meta_json)
@pytest.mark.parametrize("raw, windows, last", [(0, 1, 3), (62079, 1, 99), (62080, 1, 100), (62719, 1, 100),
                                                (62720, 2, 1), (87836, 2, 40)])
def test_window_counts(raw, windows, last):
    out = list(iter_windows([np.ones(raw, np.float32)], WindowGeometry()))
    assert len(out) == windows
    assert all(len(w) == 64000 for w, _ in out)
    assert [k for _, k in out] == [100] * (windows - 1) + [last]


def test_windows_hold_the_padded_signal_in_order():
    raw = np.arange(1, 70001, dtype=np.float32)
    (w0, _), (w1, _) = iter_windows([raw], WindowGeometry())
    np.testing.assert_array_equal(w0[:PAD_FRONT], 0)
    np.testing.assert_array_equal(w0[PAD_FRONT:], raw[: 64000 - PAD_FRONT])
    rest = raw[64000 - PAD_FRONT:]
    np.testing.assert_array_equal(w1[: len(rest)], rest)
    np.testing.assert_array_equal(w1[len(rest):], 0)  # the 640 back pad, then the window's zero padding
    assert len(rest) + PAD_BACK < 64000


def test_chunking_does_not_change_the_windows():
    rng = np.random.default_rng(3)
    raw = rng.standard_normal(200_123).astype(np.float32)
    whole = list(iter_windows([raw], WindowGeometry()))
    cuts = np.sort(rng.integers(0, len(raw), 40))
    pieces = list(iter_windows(np.split(raw, cuts), WindowGeometry()))
    assert len(whole) == len(pieces) == 4
    for (a, ka), (b, kb) in zip(whole, pieces):
        assert ka == kb
        np.testing.assert_array_equal(a, b)


def test_windows_are_produced_while_the_audio_arrives():
    """The first window is out before the rest of the audio has been read: streaming."""
    read = []

    def chunks():
        for i in range(10):
            read.append(i)
            yield np.zeros(16000, np.float32)

    it = iter_windows(chunks(), WindowGeometry())
    next(it)
    assert len(read) == 4  # 1280 + 4 * 16000 >= 64000


def test_same_seed_same_noise_other_seed_other_noise():
    a, b, c = RandomNoise(7), RandomNoise(7), RandomNoise(8)
    shape = (1, 100, 73)
    xa, xb, xc = a.initial(shape), b.initial(shape), c.initial(shape)
    assert np.array_equal(xa, xb) and not np.array_equal(xa, xc)
    assert np.array_equal(a.step(0, 50, shape), b.step(0, 50, shape))


def test_ema_smoothing_by_hand_and_across_chunks():
    m = {"scale": np.array([[1.0], [2.0], [3.0]], np.float32), "t": np.zeros((3, 3), np.float32),
         "pitch": np.array([[10.0], [0.0], [0.0]], np.float32), "yaw": np.zeros((3, 1), np.float32),
         "roll": np.zeros((3, 1), np.float32), "exp": np.ones((3, 21, 3), np.float32)}
    out = EmaSmoother(0.5)(m)
    np.testing.assert_allclose(out["scale"][:, 0], [1.0, 1.5, 2.25])
    np.testing.assert_allclose(out["pitch"][:, 0], [10.0, 5.0, 2.5])
    np.testing.assert_array_equal(out["exp"], m["exp"])
    # the rotation follows the smoothed pitch: a rotation about x by 2.5 degrees at the last frame
    c, s = np.cos(np.radians(2.5)), np.sin(np.radians(2.5))
    np.testing.assert_allclose(out["R"][2], np.array([[1, 0, 0], [0, c, -s], [0, s, c]]).T, atol=1e-6)
    split = EmaSmoother(0.5)
    first = split({k: v[:1] for k, v in m.items()})
    rest = split({k: v[1:] for k, v in m.items()})
    np.testing.assert_allclose(np.concatenate([first["scale"], rest["scale"]])[:, 0], [1.0, 1.5, 2.25])
