"""Causal smoothing of crop parameters for video (the reference smooths offline, spec 4.14).

A One-Euro filter (Casiez et al., CHI 2012) is a low-pass filter whose cut-off rises with the speed
of the signal: while a head is still, landmark jitter is filtered hard and the crop does not shake;
when it moves, the cut-off opens and the crop follows without lag.  It needs only the previous
state, so frames can be processed as a stream.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def _alpha(cutoff: np.ndarray | float, dt: float) -> np.ndarray:
    tau = 1.0 / (2.0 * math.pi * np.asarray(cutoff, np.float64))
    return 1.0 / (1.0 + tau / dt)


@dataclass
class OneEuroFilter:
    """Per-component One-Euro filter.

    ``min_cutoff`` (Hz) sets the smoothing at rest, ``beta`` how fast the cut-off opens with speed,
    ``d_cutoff`` (Hz) smooths the speed estimate.  ``scale`` divides the speed before ``beta`` is
    applied, so that speeds are compared in natural units (e.g. face sizes per second).
    """

    min_cutoff: float = 1.0
    beta: float = 0.0
    d_cutoff: float = 1.0
    _x: np.ndarray | None = field(default=None, repr=False)
    _dx: np.ndarray | None = field(default=None, repr=False)

    def reset(self) -> None:
        self._x = self._dx = None

    @property
    def value(self) -> np.ndarray | None:
        return None if self._x is None else self._x.copy()

    def __call__(self, x, dt: float, scale=1.0) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._x is None:
            self._x = x.copy()
            self._dx = np.zeros_like(x)
            return x.copy()
        dx = (x - self._x) / dt
        a_d = _alpha(self.d_cutoff, dt)
        self._dx = self._dx + a_d * (dx - self._dx)
        cutoff = self.min_cutoff + self.beta * np.abs(self._dx) / np.asarray(scale, np.float64)
        a = _alpha(cutoff, dt)
        self._x = self._x + a * (x - self._x)
        return self._x.copy()


@dataclass
class SteadyBox:
    """Hold a crop box still while the face moves inside it; follow only when it wanders off.

    The reference crops a driving video with one box for the whole video, so the head's own
    translation and scaling stay visible to the motion extractor.  This is the streaming
    equivalent: the box stays where it was set while the face's centre stays within ``tolerance``
    of the box side and its size within ``tolerance`` (relative); beyond that the box glides
    towards the face (time constant ``1/rate`` seconds) until the face is well inside again.
    Input and output are (cx, cy, size, angle).
    """

    tolerance: float = 0.15
    rate: float = 3.0
    _box: np.ndarray | None = field(default=None, repr=False)
    _following: bool = field(default=False, repr=False)

    def reset(self) -> None:
        self._box = None
        self._following = False

    @property
    def value(self) -> np.ndarray | None:
        return None if self._box is None else self._box.copy()

    def __call__(self, x, dt: float) -> np.ndarray:
        x = np.asarray(x, np.float64)
        if self._box is None:
            self._box = x.copy()
            return x.copy()
        b = self._box
        off = max(float(np.hypot(*(x[:2] - b[:2]))) / b[2], abs(math.log(x[2] / b[2])))
        if off > self.tolerance:
            self._following = True
        if self._following:
            self._box = b + (1.0 - math.exp(-self.rate * dt)) * (x - b)
            if off < self.tolerance / 4:
                self._following = False
        return self._box.copy()
