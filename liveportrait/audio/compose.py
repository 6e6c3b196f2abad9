"""Driving keypoints from generated motion, as JoyVASA composes them (audio-driving-spec 4.3).

It differs from video driving (motion/compose.py) on purpose: the generated lip expression replaces the
source's (absolute), scale and translation move for every region, and eyes-only leaves the expression
alone. The shared pieces (keypoint transform, hull multiplier, stitching and driving multiplier) are reused.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import torch

from ..config import MotionOptions
from ..motion.compose import IDX_LIP, Motion, expression_friendly, finish_keypoints, motion_multiplier
from ..motion.keypoints import transform_keypoints

# JoyVASA's inference defaults (4.1): absolute composition, no stitching, multiplier 1.1
AUDIO_MOTION_OPTIONS = MotionOptions(relative=False, stitching=False, multiplier=1.1)


def as_motion(m: dict[str, np.ndarray]) -> Motion:
    """Per-frame motion arrays (the sampler's output) as a batched Motion."""
    t = {k: torch.from_numpy(np.ascontiguousarray(m[k], np.float32)) for k in ("R", "exp", "t", "scale")}
    n = t["R"].shape[0]
    return Motion(R=t["R"].reshape(n, 3, 3), exp=t["exp"].reshape(n, -1, 3), t=t["t"].reshape(n, 3),
                  scale=t["scale"].reshape(n, 1))


def compose_audio_motion(kp_s: torch.Tensor, src: Motion, drv: Motion, ref: Motion, region: str) -> torch.Tensor:
    """x = scale' (kp_s R' + delta) + t' for each generated frame, relative to the first one (``ref``)."""
    n = len(drv)
    exp_s = src.exp.expand(n, -1, -1)
    R_new = (drv.R @ ref.R.transpose(1, 2)) @ src.R if region in ("all", "pose") else src.R.expand(n, -1, -1)
    lips = list(IDX_LIP)
    if region in ("all", "exp"):
        delta = exp_s + (drv.exp - ref.exp)
        delta[:, lips] = drv.exp[:, lips]
    elif region == "lip":
        delta = exp_s.clone()
        delta[:, lips] = exp_s[:, lips] + drv.exp[:, lips] - ref.exp[:, lips]
    else:
        delta = exp_s
    scale_new = src.scale * (drv.scale / ref.scale)
    t_new = src.t + (drv.t - ref.t)
    return transform_keypoints(kp_s, R_new, delta, scale_new, t_new)


class AudioKeypoints:
    """Driving keypoints chunk by chunk: the first frame seen is the reference for every later chunk."""

    def __init__(self, kp_s: torch.Tensor, src: Motion, x_s: torch.Tensor,
                 options: MotionOptions = AUDIO_MOTION_OPTIONS, stitch_delta=None):
        self.kp_s, self.src, self.x_s, self.options, self.stitch_delta = kp_s, src, x_s, options, stitch_delta
        self.ref: Motion | None = None
        self.x0: torch.Tensor | None = None
        self.mu = 1.0

    @torch.inference_mode()
    def __call__(self, drv: Motion) -> torch.Tensor:
        o = self.options
        if self.ref is None:
            self.ref = drv[0]
        x = compose_audio_motion(self.kp_s, self.src, drv, self.ref, o.region)
        if o.relative and o.driving_option == "expression-friendly":
            if self.x0 is None:
                self.x0 = x[0:1].clone()
                self.mu = motion_multiplier(self.x_s, self.x0)
            x = expression_friendly(self.x_s, x, self.x0, self.mu)
        return finish_keypoints(self.x_s, x, o, self.stitch_delta)


# -- head pose from elsewhere (--pose-from): the speech's expression with another track's pose ------------


@dataclass(frozen=True)
class PoseTrack:
    """Head pose over time: R (P, 3, 3, LivePortrait's transposed rotation), t (P, 3), scale (P, 1), float32,
    at ``fps`` (None: one frame held). Composed like the generated pose, relative to its first frame: the
    source keeps its own pose at frame 0 and turns as the track turns from its first frame on."""

    R: np.ndarray
    t: np.ndarray
    scale: np.ndarray
    fps: Fraction | None
    name: str

    def __len__(self) -> int:
        return int(self.R.shape[0])

    @classmethod
    def still(cls) -> "PoseTrack":
        """One pose held: relative to itself it never moves, so the head keeps the source's own pose."""
        return cls(np.eye(3, dtype=np.float32)[None], np.zeros((1, 3), np.float32), np.ones((1, 1), np.float32),
                   None, "still")

    @classmethod
    def from_template(cls, tpl, name: str = "template") -> "PoseTrack":
        """The pose part (R, t, scale) of a ``MotionTemplate``; its expression is not used."""
        return cls(np.asarray(tpl.R, np.float32).reshape(-1, 3, 3), np.asarray(tpl.t, np.float32).reshape(-1, 3),
                   np.asarray(tpl.scale, np.float32).reshape(-1, 1), Fraction(tpl.fps), name)


def pose_indices(start: int, count: int, fps, n_pose: int, pose_fps) -> np.ndarray:
    """The pose frame shown at output frames start .. start+count-1 (output at ``fps``, the track at
    ``pose_fps``): the track's frame playing at that time (sample and hold), and past its end the track
    played backwards, then forwards again (ping-pong: 0 1 2 1 0 1 ...). Ping-pong rather than a loop because
    a loop jumps from the last pose back to the first (the head would snap) unless the track happens to
    end where it starts; going back and forth is continuous. A one-frame track (``still``) is frame 0."""
    if n_pose <= 1 or count <= 0:
        return np.zeros(max(count, 0), np.int64)
    f = np.arange(start, start + count, dtype=np.int64)
    ratio = Fraction(pose_fps) / Fraction(fps) if pose_fps else Fraction(1)
    k = f * ratio.numerator // ratio.denominator
    period = 2 * (n_pose - 1)
    k = k % period
    return np.where(k < n_pose, k, period - k)


def with_pose(m: dict[str, np.ndarray], pose: PoseTrack, start: int, fps) -> dict[str, np.ndarray]:
    """Generated motion (one window, output frames from ``start``) with its head pose (R, t, scale) taken from
    ``pose``; the expression (lips, eyes, brows) stays the speech's. The sampled angles are dropped: R is the
    track's. The result composes by ``compose_audio_motion`` like any generated motion, so there is one rule."""
    n = len(m["exp"])
    idx = pose_indices(start, n, fps, len(pose), pose.fps)
    out = {k: v for k, v in m.items() if k not in ("pitch", "yaw", "roll")}
    out.update(R=pose.R[idx], t=pose.t[idx], scale=pose.scale[idx])
    return out
