"""Synthetic portrait clips and a face backend that finds them, so training runs without real data.

A synthetic "face" is a skin-coloured ellipse with dark eyes and a red mouth on a textured
background; it drifts, rolls a little, blinks and opens its mouth.  ``BlobBackend`` implements the
face-backend protocol (detect + 478 landmarks) by finding skin-coloured blobs and placing a fixed
478-point template (eyes, lips, jaw, brows where the mesh has them) on each blob's ellipse.
"""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from liveportrait.face import mesh
from liveportrait.face.backend import Face

SKIN = np.array([224, 172, 140], np.float32)
TOL = 45.0


def template_points() -> np.ndarray:
    """(478, 2) points in the unit face (x right, y down, face ellipse = unit circle)."""
    rng = np.random.default_rng(1234)
    r = np.sqrt(rng.random(mesh.NUM_POINTS)) * 0.8
    a = rng.random(mesh.NUM_POINTS) * 2 * np.pi
    p = np.stack([r * np.cos(a), r * np.sin(a)], 1)

    def put(i, x, y):
        p[i] = (x, y)

    for sign, (outer, upper, inner, lower) in ((-1, mesh.RIGHT_EYE), (1, mesh.LEFT_EYE)):
        put(outer, sign * 0.62, -0.2)
        put(upper, sign * 0.4, -0.3)
        put(inner, sign * 0.18, -0.2)
        put(lower, sign * 0.4, -0.1)
    for sign, brow in ((-1, mesh.RIGHT_BROW), (1, mesh.LEFT_BROW)):
        for k, i in enumerate(brow):
            put(i, sign * (0.15 + 0.55 * k / (len(brow) - 1)), -0.45)
    for k, i in enumerate(mesh.JAW):
        t = math.pi - k * math.pi / (len(mesh.JAW) - 1)
        put(i, math.cos(t), math.sin(t))
    put(mesh.MOUTH_CORNERS[0], -0.3, 0.5)
    put(mesh.MOUTH_CORNERS[1], 0.3, 0.5)
    put(mesh.INNER_LIP[0], 0.0, 0.46)
    put(mesh.INNER_LIP[1], 0.0, 0.54)
    put(0, 0.0, 0.4)
    put(17, 0.0, 0.62)
    put(10, 0.0, -0.95)
    put(152, 0.0, 1.0)
    put(1, 0.0, 0.1)
    return p


TEMPLATE = template_points()


def place(center, axes, angle) -> np.ndarray:
    """Template landmarks (478, 3) on an ellipse: centre (x, y), semi-axes (a, b), roll (radians)."""
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    xy = (TEMPLATE * np.asarray(axes)) @ rot.T + np.asarray(center)
    return np.concatenate([xy, np.zeros((len(xy), 1))], 1).astype(np.float32)


def draw_face(img: np.ndarray, center, axes, angle, eye_open: float, mouth_open: float, rng) -> None:
    cx, cy = center
    face = np.zeros(img.shape[:2], np.uint8)
    cv2.ellipse(face, (int(round(cx)), int(round(cy))), (int(axes[0]), int(axes[1])), math.degrees(angle), 0, 360,
                1, -1)
    texture = SKIN + rng.normal(0, 6, img.shape).astype(np.float32)
    img[face > 0] = np.clip(texture[face > 0], 0, 255)
    lm = place(center, axes, angle)
    for eye in (mesh.RIGHT_EYE, mesh.LEFT_EYE):
        e = lm[list(eye), :2]
        ec = e.mean(0)
        w = np.linalg.norm(e[0] - e[2]) / 2
        cv2.ellipse(img, (int(ec[0]), int(ec[1])), (max(1, int(w)), max(1, int(w * 0.5 * eye_open))),
                    math.degrees(angle), 0, 360, (40, 30, 30), -1)
    m = lm[list(mesh.MOUTH_CORNERS), :2]
    mc = m.mean(0)
    w = np.linalg.norm(m[0] - m[1]) / 2
    cv2.ellipse(img, (int(mc[0]), int(mc[1])), (max(1, int(w)), max(1, int(w * 0.6 * mouth_open))),
                math.degrees(angle), 0, 360, (170, 30, 40), -1)


def synthetic_frames(n: int = 30, size: int = 256, faces: int = 1, seed: int = 0, blur: float = 0.0) -> list:
    rng = np.random.default_rng(seed)
    base = np.zeros((size, size, 3), np.float32)
    base[:] = rng.integers(20, 120, 3)
    coarse = rng.normal(0, 15, (size // 32, size // 32, 1)).astype(np.float32)
    base += cv2.resize(coarse, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]  # smooth shading
    base += rng.normal(0, 4, base.shape)  # and a little grain
    for k in range(0, size, 16):
        cv2.line(base, (k, 0), (size - 1 - k, size - 1), (90, 140, 200), 1)
    base = np.clip(base, 0, 255)
    frames = []
    phase = rng.random() * 6
    for t in range(n):
        img = base.copy()
        for f in range(faces):
            off = (f - (faces - 1) / 2) * size * 0.45
            cx = size / 2 + off + 10 * math.sin(0.3 * t + phase) * (0.4 if faces > 1 else 1)
            cy = size / 2 + 6 * math.cos(0.2 * t + phase)
            axes = (40 * (0.55 if faces > 1 else 1), 52 * (0.55 if faces > 1 else 1))
            draw_face(img, (cx, cy), axes, 0.12 * math.sin(0.25 * t), 0.3 + 0.7 * abs(math.sin(0.4 * t)),
                      0.2 + 0.8 * abs(math.sin(0.3 * t + 1)), rng)
        img = np.clip(img, 0, 255).astype(np.uint8)
        if blur:
            img = cv2.GaussianBlur(img, (0, 0), blur)
        frames.append(img)
    return frames


class BlobBackend:
    """Face backend for synthetic clips: skin-coloured blobs are faces."""

    num_landmarks = mesh.NUM_POINTS

    def _blobs(self, image: np.ndarray) -> list[np.ndarray]:
        mask = (np.abs(image.astype(np.float32) - SKIN).max(-1) < TOL).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        out = []
        for c in contours:
            if cv2.contourArea(c) < 300:
                continue
            filled = np.zeros_like(mask)
            cv2.drawContours(filled, [c], -1, 1, -1)
            out.append(filled)
        return out

    @staticmethod
    def _ellipse(filled: np.ndarray):
        ys, xs = np.nonzero(filled)
        pts = np.stack([xs, ys], 1).astype(np.float64)
        c = pts.mean(0)
        cov = np.cov((pts - c).T)
        vals, vecs = np.linalg.eigh(cov)
        down = vecs[:, 1] if vecs[1, 1] >= 0 else -vecs[:, 1]  # the long (vertical) axis, pointing down
        angle = math.atan2(-down[0], down[1])
        return c, (2 * math.sqrt(vals[0]), 2 * math.sqrt(vals[1])), angle

    def detect(self, image_rgb: np.ndarray, thorough: bool = False) -> list[Face]:
        faces = []
        for filled in self._blobs(image_rgb):
            ys, xs = np.nonzero(filled)
            faces.append(Face(box=np.array([xs.min(), ys.min(), xs.max(), ys.max()], np.float64), score=0.99))
        return faces

    def landmarks(self, image_rgb: np.ndarray, face: Face) -> np.ndarray | None:
        centre = face.center if face.landmarks is None else np.asarray(face.landmarks)[:, :2].mean(0)
        best, dist = None, np.inf
        for filled in self._blobs(image_rgb):
            c, axes, angle = self._ellipse(filled)
            d = np.linalg.norm(c - centre)
            if d < dist:
                best, dist = (c, axes, angle), d
        if best is None:
            return None
        return place(*best)


@pytest.fixture(scope="session")
def blob_cropper():
    from liveportrait.face.cropper import Cropper

    return Cropper(BlobBackend())


def write_video(path: Path, frames, fps: int = 10) -> Path:
    from liveportrait.media import write_video as write

    path.parent.mkdir(parents=True, exist_ok=True)
    write(path, frames, fps)
    return path


@pytest.fixture(scope="session")
def synthetic_videos(tmp_path_factory) -> Path:
    """INPUT_DIR with alice (two videos), bob, carol (two faces: dropped), dave (blurred: dropped)."""
    root = tmp_path_factory.mktemp("videos")
    write_video(root / "alice" / "a1.mp4", synthetic_frames(30, seed=1))
    write_video(root / "alice" / "a2.mp4", synthetic_frames(20, seed=2))
    write_video(root / "bob" / "b1.mp4", synthetic_frames(30, seed=3))
    write_video(root / "carol" / "c1.mp4", synthetic_frames(20, faces=2, seed=4))
    write_video(root / "dave" / "d1.mp4", synthetic_frames(20, seed=5, blur=4.0))
    return root


def small_options(**kw):
    from liveportrait.train.data import PrepareOptions
    from liveportrait.train.quality import QualityThresholds

    base = dict(max_seconds=1.5, min_seconds=0.8, size=256, jpeg_quality=90,
                thresholds=QualityThresholds(min_sharpness=40.0, min_resolution=128, min_face_size=40.0))
    base.update(kw)
    return PrepareOptions(**base)


@pytest.fixture(scope="session")
def synthetic():
    """The generators above, for tests that need more clips or videos."""
    import types

    return types.SimpleNamespace(frames=synthetic_frames, write_video=write_video, backend=BlobBackend)


@pytest.fixture(scope="session")
def prepare_options():
    return small_options


@pytest.fixture(scope="session")
def prepared(synthetic_videos, blob_cropper, tmp_path_factory) -> Path:
    from liveportrait.train.data import prepare

    out = tmp_path_factory.mktemp("prepared")
    prepare(synthetic_videos, out, small_options(), cropper=blob_cropper, log=None)
    return out


@pytest.fixture(autouse=True)
def _few_threads():
    """The machines running these tests are shared: one intra-op thread keeps timings steady."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
