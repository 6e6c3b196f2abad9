"""M, the motion extractor: image to canonical keypoints, head pose bins, expression, t, scale."""

from __future__ import annotations

import torch
from torch import nn

from .config import MotionConfig
from .convnextv2 import ConvNeXtV2
from .outputs import MotionOutput


class MotionExtractor(nn.Module):
    """Raw head outputs; ``liveportrait.motion.keypoints.kp_info`` turns them into degrees and (21, 3)."""

    def __init__(self, config: MotionConfig | None = None):
        super().__init__()
        c = config or MotionConfig()
        self.config = c
        self.detector = ConvNeXtV2(c.in_chans, c.depths, c.dims, c.num_kp, c.num_bins)

    def forward(self, x: torch.Tensor) -> MotionOutput:
        """``x``: (B, 3, 256, 256) RGB in [0, 1]. Returns pitch, yaw, roll, t, exp, scale, kp."""
        return self.detector(x)
