"""Clip quality: per-frame scores of the face crop, a verdict per clip.

The scorer is pluggable: anything with ``frame_scores`` and ``verdict`` (the ``QualityScorer``
protocol) can replace ``BasicQualityScorer``; ``load_scorer("package.module:factory")`` builds one
from the command line (``liveportrait data prepare --scorer``).  A learned image-quality model fits
the same two methods.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import InputError


@runtime_checkable
class QualityScorer(Protocol):
    def frame_scores(self, face_crop: np.ndarray, face_size: float) -> dict[str, float]:
        """Scores of one frame: ``face_crop`` is a 256x256 RGB crop of the face (1.2 times its
        size, upright), ``face_size`` the face's side in pixels of the original frame."""
        ...

    def verdict(self, scores: dict[str, float], width: int, height: int) -> str | None:
        """None to keep a clip, else the reason to drop it, as "kind (details)" (reports count
        clips by kind); ``scores`` are the clip's (``aggregate`` of its frames' scores),
        ``width``/``height`` the video's size."""
        ...


@dataclass(frozen=True)
class QualityThresholds:
    min_sharpness: float = 15.0  # variance of the Laplacian of the grey 256 crop
    min_brightness: float = 40.0  # mean grey level (0-255)
    max_brightness: float = 220.0
    max_clipped: float = 0.25  # fraction of pixels below 5 or above 250
    min_resolution: int = 256  # shorter side of the video
    min_face_size: float = 96.0  # side of the face's landmark box in original pixels


def aggregate(frame_scores: list[dict[str, float]]) -> dict[str, float]:
    """Median of every score over the frames (robust to a few bad frames)."""
    if not frame_scores:
        return {}
    keys = sorted(set().union(*frame_scores))
    return {k: float(np.median([s[k] for s in frame_scores if k in s])) for k in keys}


class BasicQualityScorer:
    """Sharpness, exposure, resolution and face size against fixed thresholds."""

    def __init__(self, thresholds: QualityThresholds | None = None):
        self.thresholds = thresholds or QualityThresholds()

    def frame_scores(self, face_crop: np.ndarray, face_size: float) -> dict[str, float]:
        grey = cv2.cvtColor(np.ascontiguousarray(face_crop), cv2.COLOR_RGB2GRAY)
        if grey.shape[0] != 256:
            grey = cv2.resize(grey, (256, 256), interpolation=cv2.INTER_AREA)
        sharp = float(cv2.Laplacian(grey, cv2.CV_64F).var())
        return {
            "sharpness": sharp,
            "brightness": float(grey.mean()),
            "clipped": float(((grey < 5) | (grey > 250)).mean()),
            "face_size": float(face_size),
        }

    def verdict(self, scores: dict[str, float], width: int, height: int) -> str | None:
        t = self.thresholds
        if min(width, height) < t.min_resolution:
            return f"low resolution ({width}x{height}, shorter side < {t.min_resolution})"
        if scores.get("face_size", np.inf) < t.min_face_size:
            return f"small face ({scores['face_size']:.0f} px < {t.min_face_size:g})"
        if scores.get("sharpness", np.inf) < t.min_sharpness:
            return f"blurry (sharpness {scores['sharpness']:.1f} < {t.min_sharpness:g})"
        b = scores.get("brightness")
        if b is not None and not t.min_brightness <= b <= t.max_brightness:
            return f"badly exposed (brightness {b:.0f} outside {t.min_brightness:g}-{t.max_brightness:g})"
        if scores.get("clipped", 0.0) > t.max_clipped:
            return f"badly exposed ({100 * scores['clipped']:.0f}% clipped pixels)"
        return None


def load_scorer(spec: str | None, thresholds: QualityThresholds | None = None) -> QualityScorer:
    """``None`` -> BasicQualityScorer; ``"module:name"`` -> ``name()`` (a class or a factory)."""
    if not spec:
        return BasicQualityScorer(thresholds)
    mod_name, sep, attr = spec.partition(":")
    if not sep or not mod_name or not attr:
        raise InputError(f"--scorer takes MODULE:NAME (e.g. mypkg.quality:Scorer), got {spec!r}")
    try:
        obj = getattr(importlib.import_module(mod_name), attr)
    except (ImportError, AttributeError) as exc:
        raise InputError(f"--scorer {spec}: cannot import it ({exc})") from None
    is_factory = isinstance(obj, type) or (callable(obj) and not isinstance(obj, QualityScorer))
    scorer = obj() if is_factory else obj
    if not isinstance(scorer, QualityScorer):
        raise InputError(f"--scorer {spec}: the object has no frame_scores/verdict methods")
    return scorer
