"""Typed outputs of M and W, with the released models' names, so that a misspelt field fails where it is
written instead of as a missing key deep in the pipeline."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import torch


@dataclass
class MotionOutput:
    """M's raw heads: pitch, yaw and roll as 66-bin logits (B, 66), t (B, 3), exp (B, 3K), scale (B, 1),
    kp (B, 3K). ``liveportrait.motion.keypoints.kp_info`` turns them into degrees and (B, K, 3)."""

    pitch: torch.Tensor
    yaw: torch.Tensor
    roll: torch.Tensor
    t: torch.Tensor
    exp: torch.Tensor
    scale: torch.Tensor
    kp: torch.Tensor

    def map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> MotionOutput:
        """The same fields, each through ``fn`` (a slice of the batch, a dtype, a device)."""
        return MotionOutput(**{f.name: fn(getattr(self, f.name)) for f in fields(self)})

    def float(self) -> MotionOutput:
        return self.map(torch.Tensor.float)


@dataclass
class WarpingOutput:
    """W's outputs: ``out`` the warped 2-D feature (occlusion applied) for G, ``occlusion_map`` (B, 1, H, W) or
    None for a network without the occlusion head, ``deformation`` the blended flow (B, D, H, W, 3)."""

    out: torch.Tensor
    occlusion_map: torch.Tensor | None
    deformation: torch.Tensor


@dataclass
class DenseMotionOutput:
    """W's dense-motion hourglass: the soft assignment ``mask`` (B, K+1, D, H, W), the blended ``deformation``
    and the ``occlusion_map`` (None without the occlusion head)."""

    mask: torch.Tensor
    deformation: torch.Tensor
    occlusion_map: torch.Tensor | None
