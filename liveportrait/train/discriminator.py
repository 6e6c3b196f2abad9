"""Multi-scale patch discriminators, one per region of the cascaded GAN loss.

Each ``PatchDiscriminator`` is a pix2pixHD-style stack of 4x4 convolutions that scores
overlapping patches; ``MultiScaleDiscriminator`` runs copies on an image pyramid;
``CascadedDiscriminator`` holds one multi-scale discriminator per region ("image", "face", "eye",
"lip") and takes a dict of region patches.  Outputs keep the intermediate features for the
feature-matching loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .config import DiscriminatorConfig


class PatchDiscriminator(nn.Module):
    def __init__(self, in_channels: int = 3, channels: int = 64, max_channels: int = 512, num_layers: int = 4,
                 spectral: bool = True):
        super().__init__()
        wrap = spectral_norm if spectral else (lambda m: m)
        blocks = []
        cin = in_channels
        for i in range(num_layers):
            cout = min(max_channels, channels * 2**i)
            stride = 2 if i < num_layers - 1 else 1
            layers: list[nn.Module] = [wrap(nn.Conv2d(cin, cout, 4, stride, padding=2))]
            if i > 0 and not spectral:
                layers.append(nn.InstanceNorm2d(cout, affine=True))
            layers.append(nn.LeakyReLU(0.2))
            blocks.append(nn.Sequential(*layers))
            cin = cout
        self.blocks = nn.ModuleList(blocks)
        self.head = wrap(nn.Conv2d(cin, 1, 4, 1, padding=2))

    def forward(self, x: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor]:
        feats = []
        for b in self.blocks:
            x = b(x)
            feats.append(x)
        return feats, self.head(x)


class MultiScaleDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig):
        super().__init__()
        self.scales = nn.ModuleList(
            PatchDiscriminator(3, cfg.channels, cfg.max_channels, cfg.num_layers, cfg.spectral_norm)
            for _ in range(cfg.num_scales))

    def forward(self, x: torch.Tensor) -> list[tuple[list[torch.Tensor], torch.Tensor]]:
        x = x * 2 - 1
        out = []
        for i, d in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            out.append(d(x))
        return out


class CascadedDiscriminator(nn.Module):
    def __init__(self, cfg: DiscriminatorConfig, regions):
        super().__init__()
        self.regions = list(regions)
        self.nets = nn.ModuleDict({r: MultiScaleDiscriminator(cfg) for r in self.regions})

    def forward(self, patches: dict[str, torch.Tensor]) -> dict[str, list]:
        return {r: self.nets[r](patches[r]) for r in self.regions}
