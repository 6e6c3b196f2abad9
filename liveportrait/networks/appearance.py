"""F, the appearance feature extractor: a 256x256 image to a (C, D, 64, 64) feature volume."""

from __future__ import annotations

import torch
from torch import nn

from .blocks import DownBlock2d, ResBlock3d, SameBlock2d
from .config import AppearanceConfig


class AppearanceFeatureExtractor(nn.Module):
    def __init__(self, config: AppearanceConfig | None = None):
        super().__init__()
        c = config or AppearanceConfig()
        self.config = c
        self.first = SameBlock2d(c.image_channel, c.block_expansion)
        self.down_blocks = nn.ModuleList(
            DownBlock2d(min(c.max_features, c.block_expansion * 2**i),
                        min(c.max_features, c.block_expansion * 2 ** (i + 1)))
            for i in range(c.num_down_blocks)
        )
        out_features = min(c.max_features, c.block_expansion * 2**c.num_down_blocks)
        self.second = nn.Conv2d(out_features, c.max_features, kernel_size=1)
        self.resblocks_3d = nn.Sequential()
        for i in range(c.num_resblocks):
            self.resblocks_3d.add_module(f"3dr{i}", ResBlock3d(c.reshape_channel))

    def forward(self, source_image: torch.Tensor) -> torch.Tensor:
        """``source_image``: (B, 3, 256, 256) RGB in [0, 1]."""
        out = self.first(source_image)
        for block in self.down_blocks:
            out = block(out)
        out = self.second(out)
        b, _, h, w = out.shape
        # channel c' = depth * c + d: the 2-D channels unfold into a depth axis
        out = out.view(b, self.config.reshape_channel, self.config.reshape_depth, h, w)
        return self.resblocks_3d(out)
