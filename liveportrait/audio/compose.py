"""Driving keypoints from generated motion, as JoyVASA composes them (audio-driving-spec 4.3).

It differs from video driving (motion/compose.py) on purpose: the generated lip expression replaces the
source's (absolute), scale and translation move for every region, and eyes-only leaves the expression
alone. The shared pieces (keypoint transform, hull multiplier, stitching and driving multiplier) are reused.
"""

from __future__ import annotations

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
