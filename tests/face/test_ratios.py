"""Eye and lip ratios on synthetic landmarks (spec 4.11)."""

from __future__ import annotations

import numpy as np
import pytest

from liveportrait.face import mesh
from liveportrait.face.ratios import eye_ratio, lip_ratio


def mesh_points(eye_open=(0.3, 0.2), lip_open=0.25) -> np.ndarray:
    p = np.zeros((478, 2), np.float32)
    for (outer, upper, inner, lower), cx, r in ((mesh.RIGHT_EYE, 100, eye_open[0]),
                                                (mesh.LEFT_EYE, 200, eye_open[1])):
        p[outer] = (cx - 20, 100)
        p[inner] = (cx + 20, 100)
        p[upper] = (cx, 100 - 20 * r)
        p[lower] = (cx, 100 + 20 * r)
    p[mesh.MOUTH_CORNERS[0]] = (120, 200)
    p[mesh.MOUTH_CORNERS[1]] = (180, 200)
    p[mesh.INNER_LIP[0]] = (150, 200 - 30 * lip_open)
    p[mesh.INNER_LIP[1]] = (150, 200 + 30 * lip_open)
    return p


def test_mesh_ratios_measure_lid_and_lip_opening():
    p = mesh_points()
    np.testing.assert_allclose(eye_ratio(p), [0.3, 0.2], rtol=1e-5)
    np.testing.assert_allclose(lip_ratio(p), [0.25], rtol=1e-5)
    assert eye_ratio(p).dtype == np.float32 and eye_ratio(p).shape == (2,)
    assert lip_ratio(p).shape == (1,)


def test_ratios_do_not_change_with_scale_rotation_translation():
    p = mesh_points()
    a = 0.7
    r = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]], np.float32)
    q = (p @ r) * 3.5 + np.float32([40, -7])
    np.testing.assert_allclose(eye_ratio(q), eye_ratio(p), rtol=1e-4)
    np.testing.assert_allclose(lip_ratio(q), lip_ratio(p), rtol=1e-4)


def test_203_point_indices_are_the_reference_ones():
    p = np.zeros((203, 2), np.float32)
    p[0], p[12], p[6], p[18] = (0, 0), (10, 0), (5, -1), (5, 1)  # left eye: 2/10
    p[24], p[36], p[30], p[42] = (20, 0), (30, 0), (25, -2), (25, 2)  # right eye: 4/10
    p[48], p[66], p[90], p[102] = (0, 10), (20, 10), (10, 9), (10, 12)  # lips: 3/20
    np.testing.assert_allclose(eye_ratio(p), [0.2, 0.4], rtol=1e-5)
    np.testing.assert_allclose(lip_ratio(p), [0.15], rtol=1e-5)


def test_closed_mouth_is_zero_and_unknown_sets_are_refused():
    assert lip_ratio(mesh_points(lip_open=0.0))[0] == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(ValueError):
        eye_ratio(np.zeros((68, 2)))
