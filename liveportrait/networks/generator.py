"""G, the SPADE generator: warped 64x64 features to a 512x512 RGB image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import SPADEResnetBlock
from .config import GeneratorConfig


class SPADEDecoder(nn.Module):
    def __init__(self, config: GeneratorConfig | None = None):
        super().__init__()
        c = config or GeneratorConfig()
        self.config = c
        cin = c.input_channels
        hidden = c.spade_hidden
        self.fc = nn.Conv2d(cin, 2 * cin, 3, padding=1)
        for i in range(6):
            self.add_module(f"G_middle_{i}", SPADEResnetBlock(2 * cin, 2 * cin, cin, hidden))
        self.up_0 = SPADEResnetBlock(2 * cin, cin, cin, hidden)
        self.up_1 = SPADEResnetBlock(cin, c.out_channels, cin, hidden)
        if c.upscale > 1:
            self.conv_img = nn.Sequential(nn.Conv2d(c.out_channels, 3 * c.upscale**2, 3, padding=1),
                                          nn.PixelShuffle(c.upscale))
        else:
            self.conv_img = nn.Conv2d(c.out_channels, 3, 3, padding=1)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """``feature``: (B, 256, 64, 64), also the SPADE label map. Returns (B, 3, 512, 512) in (0, 1)."""
        seg = feature
        x = self.fc(feature)
        for i in range(6):
            x = getattr(self, f"G_middle_{i}")(x, seg)
        x = self.up_0(F.interpolate(x, scale_factor=2), seg)
        x = self.up_1(F.interpolate(x, scale_factor=2), seg)
        x = self.conv_img(F.leaky_relu(x, 0.2))
        return torch.sigmoid(x)
