"""Eye- and lip-open ratios (spec 4.11) on the reference's scale.

The retargeting networks take these numbers as inputs, so they must mean what they meant in
training: per eye, the distance between the lid mid-points over the distance between the eye
corners; for the lips, the distance between the inner-lip mid-points over the mouth width.  The
distances are float32 and the denominators get the reference's +1e-6.  Both the mesh (478 points)
and the reference's 203-point set are understood.
"""

from __future__ import annotations

import numpy as np

from . import mesh

# (upper lid, lower lid, corner, corner) per eye, then (upper lip, lower lip, corner, corner)
_SETS = {
    mesh.NUM_POINTS: (
        (mesh.RIGHT_EYE[1], mesh.RIGHT_EYE[3], mesh.RIGHT_EYE[0], mesh.RIGHT_EYE[2]),
        (mesh.LEFT_EYE[1], mesh.LEFT_EYE[3], mesh.LEFT_EYE[0], mesh.LEFT_EYE[2]),
        (mesh.INNER_LIP[0], mesh.INNER_LIP[1], mesh.MOUTH_CORNERS[0], mesh.MOUTH_CORNERS[1]),
    ),
    203: ((6, 18, 0, 12), (30, 42, 24, 36), (90, 102, 48, 66)),
}
_SETS[468] = _SETS[mesh.NUM_POINTS]


def _ratio(p: np.ndarray, a: int, b: int, c: int, d: int) -> np.float32:
    num = np.linalg.norm(p[a] - p[b])
    den = np.linalg.norm(p[c] - p[d])
    return np.float32(num / (den + np.float32(1e-6)))


def _points(lm: np.ndarray) -> tuple[np.ndarray, tuple]:
    p = np.asarray(lm, np.float32)[:, :2]
    if len(p) not in _SETS:
        raise ValueError(f"no ratio points for a {len(p)}-point landmark set")
    return p, _SETS[len(p)]


def eye_ratio(lm: np.ndarray) -> np.ndarray:
    """(2,) float32: [right eye (image left), left eye (image right)] open ratios."""
    p, (right, left, _) = _points(lm)
    return np.array([_ratio(p, *right), _ratio(p, *left)], np.float32)


def lip_ratio(lm: np.ndarray) -> np.ndarray:
    """(1,) float32: inner-lip opening over mouth width."""
    p, (_, _, m) = _points(lm)
    return np.array([_ratio(p, *m)], np.float32)
