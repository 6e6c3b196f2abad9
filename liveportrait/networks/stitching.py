"""S: the stitching MLP and the eye and lip retargeting MLPs."""

from __future__ import annotations

import torch
from torch import nn

from .config import MLPConfig, StitchingConfig


class MLP(nn.Module):
    """Linear layers with ReLU between them; keys ``mlp.0``, ``mlp.2``... as released."""

    def __init__(self, config: MLPConfig):
        super().__init__()
        sizes = [config.input_size, *config.hidden_sizes, config.output_size]
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if i < len(sizes) - 2:
                layers.append(nn.ReLU(inplace=True))
        self.mlp = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)


class StitchingRetargeting(nn.Module):
    """Holds the three MLPs; they always run in float32 (the reference never autocasts them)."""

    def __init__(self, config: StitchingConfig | None = None):
        super().__init__()
        c = config or StitchingConfig()
        self.config = c
        self.stitching = MLP(c.stitching)
        self.lip = MLP(c.lip)
        self.eye = MLP(c.eye)

    @staticmethod
    def _flat(*parts: torch.Tensor) -> torch.Tensor:
        b = parts[0].shape[0]
        return torch.cat([p.reshape(b, -1).float() for p in parts], dim=1)

    def stitch_delta(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        """(B, 21*3 + 2): per-keypoint offsets, then a global (dx, dy)."""
        return self.stitching(self._flat(kp_source, kp_driving))

    def eye_delta(self, kp_source: torch.Tensor, eye_ratio: torch.Tensor) -> torch.Tensor:
        """``eye_ratio``: (B, 3) = source left, source right, target."""
        return self.eye(self._flat(kp_source, eye_ratio)).reshape(kp_source.shape[0], -1, 3)

    def lip_delta(self, kp_source: torch.Tensor, lip_ratio: torch.Tensor) -> torch.Tensor:
        """``lip_ratio``: (B, 2) = source, target."""
        return self.lip(self._flat(kp_source, lip_ratio)).reshape(kp_source.shape[0], -1, 3)

    def forward(self, kp_source: torch.Tensor, kp_driving: torch.Tensor) -> torch.Tensor:
        return self.stitch_delta(kp_source, kp_driving)
