"""Windows, sampling and de-normalisation of JoyVASA motion (audio-driving-spec 3.1, 3.5 to 3.8).

Pure functions and small stateful helpers, each usable window by window so that motion streams: audio is
cut into fixed windows as it arrives, each window is sampled given the previous one, and the smoothing is
causal.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable, Iterator

import numpy as np
import torch

from ..motion.keypoints import rotation_matrix
from .defaults import SAMPLE_RATE, SMOOTH_ALPHA

PAD_FRONT, PAD_BACK = 1280, 640  # 80 ms of silence before the speech, 40 ms after


@dataclass(frozen=True)
class WindowGeometry:
    """How audio is cut: N motion frames per window at ``fps``, 16 kHz samples."""

    n_motions: int = 100
    fps: float = 25.0
    pad_mode: str = "zero"

    @property
    def samples_per_frame(self) -> float:
        return SAMPLE_RATE / self.fps

    def bound(self, i: int) -> int:
        """First sample of window i (windows are consecutive and do not overlap)."""
        return round(i * self.n_motions * self.samples_per_frame)

    def n_frames(self, total_samples: int) -> int:
        """Motion frames for a padded signal of ``total_samples`` (spec 3.1: n_sub windows minus padded frames)."""
        u, n = self.samples_per_frame, self.n_motions
        clip_len = int(total_samples / SAMPLE_RATE * self.fps)
        n_sub = 1 if clip_len <= n else math.ceil(clip_len / n)
        pad = n_sub * round(u * n) - total_samples
        return n_sub * n - (math.ceil(pad / u) if pad > 0 else 0)


def iter_windows(chunks: Iterable[np.ndarray], geometry: WindowGeometry) -> Iterator[tuple[np.ndarray, int]]:
    """(window samples, frames of it that are real) from 16 kHz mono float32 chunks of any size.

    The 80/40 ms pads are added here; the last window is padded (zeros, or its last sample for
    ``pad_mode`` 'replicate') and says how many of its frames to keep. Memory is one window.
    """
    buf = [np.zeros(PAD_FRONT, np.float32)]
    held = PAD_FRONT
    i = 0
    total = PAD_FRONT
    for chunk in chunks:
        chunk = np.asarray(chunk, np.float32).reshape(-1)
        buf.append(chunk)
        held += len(chunk)
        total += len(chunk)
        while held >= geometry.bound(i + 1) - geometry.bound(i):
            data = np.concatenate(buf)
            size = geometry.bound(i + 1) - geometry.bound(i)
            yield data[:size], geometry.n_motions
            buf, held, i = [data[size:]], len(data) - size, i + 1
    # the end: the back pad, then a last window only if it holds frames (n_frames counts them)
    data = np.concatenate(buf + [np.zeros(PAD_BACK, np.float32)])
    total += PAD_BACK
    frames_left = geometry.n_frames(total) - i * geometry.n_motions
    while frames_left > 0:
        size = geometry.bound(i + 1) - geometry.bound(i)
        window, data = data[:size], data[size:]
        if len(window) < size:
            fill = window[-1] if geometry.pad_mode == "replicate" and len(window) else 0.0
            window = np.concatenate([window, np.full(size - len(window), fill, np.float32)])
        keep = min(frames_left, geometry.n_motions)
        yield window, keep
        frames_left -= keep
        i += 1


class RandomNoise:
    """Sampling noise from one seeded generator: x_T once, then T-1 draws per window (the reference's order)."""

    def __init__(self, seed: int | None = None):
        self.generator = torch.Generator()
        if seed is None:
            self.generator.seed()
        else:
            self.generator.manual_seed(int(seed))

    def initial(self, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)

    def step(self, window: int, t: int, shape) -> torch.Tensor:
        return torch.randn(shape, generator=self.generator)


class RecordedNoise:
    """The noise a fixture recorded: x_T (1, N, Mf) and z (W, T-1, 1, N, Mf), index T - t for step t."""

    def __init__(self, x_T: np.ndarray, z: np.ndarray):
        self.x_T, self.z = torch.from_numpy(np.asarray(x_T, np.float32)), np.asarray(z, np.float32)

    def initial(self, shape) -> torch.Tensor:
        return self.x_T.reshape(shape)

    def step(self, window: int, t: int, shape) -> torch.Tensor:
        return torch.from_numpy(self.z[window, self.z.shape[1] + 1 - t]).reshape(shape)


def ddpm_coefficients(sched, t: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(c0, c1, sigma) of the posterior-mean ancestral step x_{t-1} = c0 x_t + c1 x0 + sigma z (float32)."""
    a_t, ab_t, ab_prev = sched.alphas[t], sched.alpha_bars[t], sched.alpha_bars[t - 1]
    c0 = (1 - ab_prev) * torch.sqrt(a_t) / (1 - ab_t)
    c1 = (1 - a_t) * torch.sqrt(ab_prev) / (1 - ab_t)
    return c0, c1, sched.sigmas_inflex[t]


def denormalize(coef: np.ndarray, template: dict) -> dict[str, np.ndarray]:
    """(F, >=70) normalised motion -> LivePortrait motion (float32): exp (F, 21, 3) from mean/std, scale (F, 1),
    t (F, 3) and pitch/yaw/roll (F, 1, degrees) from min/max; channels past 70 are unused."""
    c = np.asarray(coef, np.float32)

    def minmax(values, q):
        lo, hi = template[f"min_{q}"], template[f"max_{q}"]
        return values * (hi - lo) + lo

    out = {"exp": (c[:, 0:63] * template["std_exp"] + template["mean_exp"]).reshape(-1, 21, 3),
           "scale": minmax(c[:, 63:64], "scale"), "t": minmax(c[:, 64:67], "t")}
    for j, q in enumerate(("pitch", "yaw", "roll")):
        out[q] = minmax(c[:, 67 + j:68 + j], q)
    return with_rotation(out)


def with_rotation(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Adds R (F, 3, 3): LivePortrait's (transposed) rotation of the angles in degrees."""
    R = rotation_matrix(*(torch.from_numpy(np.ascontiguousarray(m[q]).reshape(-1)) for q in ("pitch", "yaw", "roll")))
    return {**m, "R": R.numpy()}


class EmaSmoother:
    """Causal exponential moving average of (scale, t, pitch, yaw, roll), frame by frame, across windows
    (s_0 = v_0, s_f = a v_f + (1 - a) s_{f-1}, float32); exp passes unchanged, R follows the angles."""

    KEYS = (("scale", 1), ("t", 3), ("pitch", 1), ("yaw", 1), ("roll", 1))

    def __init__(self, alpha: float = SMOOTH_ALPHA):
        self.alpha = np.float32(alpha)
        self.state: np.ndarray | None = None

    def __call__(self, m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        v = np.concatenate([m[k].reshape(-1, n) for k, n in self.KEYS], axis=1).astype(np.float32)
        out = np.empty_like(v)
        a, b = self.alpha, np.float32(1) - self.alpha
        s = self.state
        for f in range(len(v)):
            s = v[f] if s is None else a * v[f] + b * s
            out[f] = s
        self.state = s
        res, col = dict(m), 0
        for k, n in self.KEYS:
            res[k] = out[:, col:col + n]
            col += n
        return with_rotation(res)
