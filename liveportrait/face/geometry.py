"""Crop geometry (spec 4.4): the face rectangle, crop<->original affines, warping.

Everything here is a pure function of numpy arrays.  Matrices are 3x3 float32 so that they can be
composed and inverted directly; ``M_o2c`` maps original-image pixels to crop pixels.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from .. import config
from . import mesh

# reference framings (spec 4.4 and 4.16)
SOURCE_SCALE, SOURCE_VY = 2.3, -0.125
DRIVING_SCALE, DRIVING_VY = 2.2, -0.1
CROP_SIZE, NET_SIZE = 512, 256


@dataclass(frozen=True)
class FaceRect:
    """A square around a face: centre (x, y), side, and the roll of the face in radians."""

    center: np.ndarray
    size: float
    angle: float

    def box(self) -> np.ndarray:
        """The axis-aligned square (x0, y0, x1, y1) of the same centre and side (no roll)."""
        return square_box(self.center, self.size)


def _mean_of_means(pts: np.ndarray, *groups) -> np.ndarray:
    return np.mean([pts[list(g)].mean(0) for g in groups], axis=0)


def anchor_points(pts: np.ndarray) -> np.ndarray:
    """(eye point, mouth point), shape (2, 2), by the rule for this landmark count (spec 4.4)."""
    pts = np.asarray(pts, np.float64)[:, :2]
    n = len(pts)
    if n == mesh.NUM_POINTS or n == 468:
        eye = _mean_of_means(pts, mesh.RIGHT_EYE, mesh.LEFT_EYE)
        mouth = pts[list(mesh.MOUTH_CORNERS)].mean(0)
    elif n == 203:
        eye = _mean_of_means(pts, (0, 6, 12, 18), (24, 30, 36, 42))
        mouth = (pts[48] + pts[66]) / 2
    elif n == 106:
        eye = _mean_of_means(pts, (33, 35, 40, 39), (87, 89, 94, 93))
        mouth = (pts[52] + pts[61]) / 2
    elif n == 68:
        eye = ((pts[36] + pts[39]) / 2 + (pts[42] + pts[45]) / 2) / 2
        mouth = (pts[48] + pts[54]) / 2
    elif n == 9:  # X-Pose's animal face: eye corners (0, 1) and (2, 3), nose, lip corners (5, 6), lips
        eye = ((pts[2] + pts[3]) / 2 + (pts[0] + pts[1]) / 2) / 2
        mouth = (pts[5] + pts[6]) / 2
    elif n == 5:
        eye = (pts[0] + pts[1]) / 2
        mouth = (pts[3] + pts[4]) / 2
    elif n >= 101:
        eye = _mean_of_means(pts, (39, 42, 45, 48), (51, 54, 57, 60))
        mouth = (pts[75] + pts[81]) / 2
    else:
        raise ValueError(f"no anchor rule for {n} landmarks")
    return np.stack([eye, mouth])


def framing_points(pts: np.ndarray) -> np.ndarray:
    """The points whose extent sets the crop size: a face-contour subset for the mesh, else all."""
    pts = np.asarray(pts)[:, :2]
    if len(pts) in (mesh.NUM_POINTS, 468):
        return pts[mesh.FRAMING]
    return pts


def rect_from_landmarks(pts: np.ndarray, scale: float = SOURCE_SCALE, vx_ratio: float = 0.0,
                        vy_ratio: float = SOURCE_VY) -> tuple[np.ndarray, float, float]:
    """``(center (2,), size, angle)`` of the face square (the reference's parse_rect_from_landmark).

    The vertical axis runs from the eye anchor to the mouth anchor; the square is the extent of the
    framing points along that axis and its normal, squared to the longer side, times ``scale``,
    then shifted by ``vx_ratio``/``vy_ratio`` of its side (negative ``vy``: towards the forehead).
    """
    eye, mouth = anchor_points(pts)
    cloud = framing_points(pts).astype(np.float64)
    uy = mouth - eye
    norm = float(np.hypot(*uy))
    uy = uy / norm if norm > 1e-3 else np.array([0.0, 1.0])
    ux = np.array([uy[1], -uy[0]])
    angle = math.atan2(ux[1], ux[0])  # cos = ux_x, sin = ux_y
    c0 = cloud.mean(0)
    rot = (cloud - c0) @ np.stack([ux, uy]).T
    lt, rb = rot.min(0), rot.max(0)
    c1 = (lt + rb) / 2
    size = float((rb - lt).max() * scale)
    center = c0 + ux * c1[0] + uy * c1[1]
    center = center + ux * (vx_ratio * size) + uy * (vy_ratio * size)
    return center, size, angle


def face_rect(pts: np.ndarray, scale: float = SOURCE_SCALE, vx_ratio: float = 0.0,
              vy_ratio: float = SOURCE_VY) -> FaceRect:
    center, size, angle = rect_from_landmarks(pts, scale, vx_ratio, vy_ratio)
    return FaceRect(center, size, angle)


def crop_matrix(center, size: float, angle: float, dsize: int = CROP_SIZE,
                rotate: bool = True) -> np.ndarray:
    """M_o2c (3x3 float32): crop = s * R(angle) (p - center) + dsize/2, with s = dsize / size."""
    s = dsize / float(size)
    cx, cy = float(center[0]), float(center[1])
    tc = dsize / 2
    if rotate:
        c, n = math.cos(angle), math.sin(angle)
        m = [[s * c, s * n, tc - s * (c * cx + n * cy)],
             [-s * n, s * c, tc - s * (-n * cx + c * cy)]]
    else:
        m = [[s, 0.0, tc - s * cx], [0.0, s, tc - s * cy]]
    return np.array(m + [[0.0, 0.0, 1.0]], np.float32)


def box_matrix(box, dsize: int = CROP_SIZE) -> np.ndarray:
    """M_o2c for an axis-aligned box (x0, y0, x1, y1), scaled by its width (driving crops, --crop-box)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return crop_matrix(((x0 + x1) / 2, (y0 + y1) / 2), x1 - x0, 0.0, dsize, rotate=False)


def invert(m: np.ndarray) -> np.ndarray:
    """Inverse of a 3x3 affine, float32 (M_c2o from M_o2c)."""
    return np.linalg.inv(np.asarray(m, np.float32)).astype(np.float32)


def square_box(center, size: float) -> np.ndarray:
    cx, cy = float(center[0]), float(center[1])
    h = size / 2
    return np.array([cx - h, cy - h, cx + h, cy + h])


def transform_points(pts: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 3x3 (or 2x3) affine to (N, 2+) points; extra columns are dropped."""
    p = np.asarray(pts, np.float64)[:, :2]
    m = np.asarray(m, np.float64)
    return (p @ m[:2, :2].T + m[:2, 2]).astype(np.float32)


def warp(img: np.ndarray, m_o2c: np.ndarray, dsize: int | tuple[int, int] = CROP_SIZE,
         interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Warp ``img`` by a 3x3 affine into a ``dsize`` picture (int: square; tuple: (w, h)), zero border."""
    size = (dsize, dsize) if isinstance(dsize, int) else tuple(dsize)
    return cv2.warpAffine(img, np.asarray(m_o2c, np.float32)[:2], size, flags=interpolation,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_net_input(crop: np.ndarray, size: int = NET_SIZE, area: bool = True) -> np.ndarray:
    """512 crop -> 256 network picture: INTER_AREA for sources, bilinear for driving (spec 4.4)."""
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_AREA if area else cv2.INTER_LINEAR)


def parse_box(text: str) -> np.ndarray:
    """``config.parse_box`` (the one parser of crop boxes) as an array, for the crop geometry."""
    return np.array(config.parse_box(text))
