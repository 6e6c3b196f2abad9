"""Crop geometry on synthetic landmarks: no detector needed."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from liveportrait.face import geometry, mesh


def synthetic_203(center=(300.0, 200.0), width=100.0, roll=0.0) -> np.ndarray:
    """203 points on a face-like layout: eyes at y=-0.2w, mouth at +0.3w, a jaw ring for extent."""
    rng = np.random.default_rng(0)
    pts = np.zeros((203, 2))
    t = np.linspace(0, 2 * np.pi, 203, endpoint=False)
    pts[:] = np.stack([0.5 * width * np.cos(t), 0.6 * width * np.sin(t) + 0.05 * width], 1)
    for base, cx in ((0, -0.25), (24, 0.25)):  # eye rings: corners 0/12, lids 6/18
        a = np.linspace(0, 2 * np.pi, 24, endpoint=False)
        pts[base:base + 24] = np.stack([cx * width - 0.1 * width * np.cos(a),
                                        -0.2 * width - 0.03 * width * np.sin(a)], 1)
    pts[48] = (-0.2 * width, 0.3 * width)
    pts[66] = (0.2 * width, 0.3 * width)
    pts += rng.normal(0, 1e-3, pts.shape)
    c, s = math.cos(roll), math.sin(roll)
    return pts @ np.array([[c, s], [-s, c]]) + np.asarray(center)


def test_rect_recovers_roll_centre_and_size():
    for roll in (0.0, 0.3, -0.5):
        pts = synthetic_203(roll=roll)
        center, size, angle = geometry.rect_from_landmarks(pts, scale=1.0, vx_ratio=0, vy_ratio=0)
        assert angle == pytest.approx(roll, abs=1e-3)
        # the ring spans 1.2w vertically, which wins the squaring: size = 120 at scale 1
        assert size == pytest.approx(120.0, rel=1e-3)
        rot = np.array([[math.cos(roll), math.sin(roll)], [-math.sin(roll), math.cos(roll)]])
        expected = np.array([0.0, 0.05 * 100]) @ rot + (300, 200)
        np.testing.assert_allclose(center, expected, atol=0.05)


def test_vy_moves_the_box_towards_the_forehead_along_the_face_axis():
    roll = 0.4
    pts = synthetic_203(roll=roll)
    c0, s0, _ = geometry.rect_from_landmarks(pts, 2.0, 0.0, 0.0)
    c1, s1, _ = geometry.rect_from_landmarks(pts, 2.0, 0.0, -0.1)
    assert s1 == pytest.approx(s0)
    shift = c1 - c0
    up = -np.array([-math.sin(roll), math.cos(roll)])  # minus the eye->mouth direction
    np.testing.assert_allclose(shift, up * 0.1 * s0, atol=1e-2)


def test_crop_matrix_maps_centre_to_middle_and_inverts():
    m = geometry.crop_matrix((300.0, 200.0), 250.0, 0.3, 512)
    assert m.dtype == np.float32 and m.shape == (3, 3)
    np.testing.assert_allclose(geometry.transform_points(np.array([[300.0, 200.0]]), m), [[256, 256]], atol=1e-3)
    inv = geometry.invert(m)
    np.testing.assert_allclose(inv @ m, np.eye(3), atol=1e-5)
    # the face axis (rotated by the angle) becomes the crop's vertical
    down = np.array([[300 - math.sin(0.3) * 10, 200 + math.cos(0.3) * 10]])
    p = geometry.transform_points(down, m)[0]
    assert p[0] == pytest.approx(256, abs=1e-3) and p[1] > 256


def test_warp_puts_a_marked_pixel_where_the_matrix_says():
    img = np.zeros((400, 600, 3), np.uint8)
    cv2.circle(img, (350, 180), 3, (255, 255, 255), -1)
    m = geometry.crop_matrix((300.0, 200.0), 250.0, -0.2, 512)
    crop = geometry.warp(img, m, 512)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    expected = geometry.transform_points(np.array([[350.0, 180.0]]), m)[0]
    assert abs(xs.mean() - expected[0]) < 1.0 and abs(ys.mean() - expected[1]) < 1.0


def test_box_matrix_is_the_reference_driving_crop():
    m = geometry.box_matrix((100, 50, 356, 306), 512)
    s = 512 / 256
    np.testing.assert_allclose(m[:2], [[s, 0, 256 - s * 228], [0, s, 256 - s * 178]], atol=1e-4)


def test_anchor_rules_follow_the_spec_table():
    pts = np.arange(106 * 2, dtype=np.float64).reshape(106, 2)
    eye, mouth = geometry.anchor_points(pts)
    np.testing.assert_allclose(eye, (pts[[33, 35, 40, 39]].mean(0) + pts[[87, 89, 94, 93]].mean(0)) / 2)
    np.testing.assert_allclose(mouth, (pts[52] + pts[61]) / 2)
    p68 = np.random.default_rng(1).normal(size=(68, 2))
    eye, mouth = geometry.anchor_points(p68)
    np.testing.assert_allclose(eye, ((p68[36] + p68[39]) / 2 + (p68[42] + p68[45]) / 2) / 2)
    np.testing.assert_allclose(mouth, (p68[48] + p68[54]) / 2)
    p9 = np.random.default_rng(2).normal(size=(9, 2))  # X-Pose's animal face
    eye, mouth = geometry.anchor_points(p9)
    np.testing.assert_allclose(eye, np.mean([(p9[2] + p9[3]) / 2, (p9[0] + p9[1]) / 2], 0))
    np.testing.assert_allclose(mouth, (p9[5] + p9[6]) / 2)
    with pytest.raises(ValueError):
        geometry.anchor_points(np.zeros((7, 2)))


def test_mesh_framing_points_are_a_subset_and_exclude_the_forehead():
    assert mesh.FRAMING.max() < mesh.NUM_POINTS
    assert 10 not in mesh.FRAMING  # top of the forehead: the reference's cloud stops at the brows
    assert 152 in mesh.FRAMING  # chin


def test_parse_box():
    np.testing.assert_allclose(geometry.parse_box("1,2,30,40"), [1, 2, 30, 40])
    for bad in ("1,2,3", "5,5,1,1", "a,b,c,d"):
        with pytest.raises(ValueError):
            geometry.parse_box(bad)
