"""The backend contract and the mediapipe adapter."""

from __future__ import annotations

import numpy as np
import pytest

from liveportrait.face.backend import (
    Face,
    FaceBackend,
    box_iou,
    merge_detections,
    roi_for_face,
    roi_from_points,
)


def test_box_iou_and_merge():
    a = np.array([0, 0, 10, 10.0])
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, np.array([5, 0, 15, 10.0])) == pytest.approx(50 / 150)
    assert box_iou(a, np.array([20, 20, 30, 30.0])) == 0.0
    faces = [Face(a, 0.9), Face(a + 1, 0.8), Face(a + 50, 0.7)]
    assert [f.score for f in merge_detections(faces)] == [0.9, 0.7]


def test_roi_is_a_square_turned_with_the_eyes():
    roi = roi_from_points(np.array([0, 0, 100, 60.0]), (20, 20), (80, 50))
    assert roi.size == pytest.approx(150)
    assert roi.rotation == pytest.approx(np.arctan2(30, 60))
    lm = np.zeros((478, 3), np.float32)
    lm[:, :2] = np.random.default_rng(0).uniform(100, 200, (478, 2))
    lm[33, :2], lm[263, :2] = (120, 150), (180, 150)
    tracked = roi_for_face(Face(np.zeros(4), 1.0, landmarks=lm))
    assert tracked.rotation == pytest.approx(0.0)
    assert tracked.center == pytest.approx((150, 150), abs=2)


def test_mediapipe_backend_meets_the_contract(cropper, source_dir, load_rgb):
    backend = cropper.backend
    assert isinstance(backend, FaceBackend)
    img = load_rgb(source_dir / "s7.jpg")
    (face,) = backend.detect(img)
    assert face.score > 0.5 and face.keypoints.shape == (6, 2) and face.landmarks is None
    lm = backend.landmarks(img, face)
    assert lm.shape == (478, 3) and lm.dtype == np.float32
    x0, y0, x1, y1 = face.box
    inside = (lm[:, 0] > x0 - 0.3 * (x1 - x0)) & (lm[:, 0] < x1 + 0.3 * (x1 - x0))
    assert inside.all()
    # tracking: the region from the landmarks themselves gives the same landmarks back
    again = backend.landmarks(img, Face(face.box, 1.0, landmarks=lm))
    iod = np.linalg.norm(lm[33, :2] - lm[263, :2])
    assert np.median(np.linalg.norm(again[:, :2] - lm[:, :2], axis=1)) < 0.03 * iod
    # nothing where there is no face
    assert backend.landmarks(np.zeros_like(img), face) is None
    assert backend.detect(np.zeros_like(img)) == []
