"""W, the warping module: moves the source feature volume from source to driving keypoints.

A dense-motion hourglass predicts, from per-keypoint translations and Gaussian heatmaps, a soft
assignment of every voxel to one of the keypoints (or the background) and an occlusion map; the
source volume is resampled along the blended flow and projected to 2-D.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .blocks import Hourglass, SameBlock2d
from .config import DenseMotionConfig, WarpingConfig
from .outputs import DenseMotionOutput, WarpingOutput

KP_VARIANCE = 0.01


def make_coordinate_grid(spatial_size: tuple[int, int, int], ref: torch.Tensor) -> torch.Tensor:
    """(D, H, W, 3) grid of (x, y, z) in [-1, 1], in ``ref``'s dtype and device.

    The spacing is that of align_corners=True while every grid_sample uses align_corners=False:
    the trained weights expect this slight zoom, so it is kept.
    """
    d, h, w = spatial_size
    x = torch.arange(w, device=ref.device).to(ref.dtype)
    y = torch.arange(h, device=ref.device).to(ref.dtype)
    z = torch.arange(d, device=ref.device).to(ref.dtype)
    x = 2 * (x / (w - 1)) - 1
    y = 2 * (y / (h - 1)) - 1
    z = 2 * (z / (d - 1)) - 1
    xx = x.view(1, 1, -1).expand(d, h, w)
    yy = y.view(1, -1, 1).expand(d, h, w)
    zz = z.view(-1, 1, 1).expand(d, h, w)
    return torch.stack([xx, yy, zz], dim=3)


def kp2gaussian(kp: torch.Tensor, grid: torch.Tensor, variance: float = KP_VARIANCE) -> torch.Tensor:
    """(B, K, D, H, W) isotropic Gaussians centred on the keypoints."""
    diff = grid[None, None] - kp[:, :, None, None, None, :]
    return torch.exp(-0.5 * (diff**2).sum(-1) / variance)


class DenseMotionNetwork(nn.Module):
    def __init__(self, num_kp: int, feature_channel: int, estimate_occlusion_map: bool,
                 config: DenseMotionConfig):
        super().__init__()
        c = config
        self.num_kp = num_kp
        self.hourglass = Hourglass(c.block_expansion, (num_kp + 1) * (c.compress + 1), c.num_blocks, c.max_features)
        out = self.hourglass.out_filters
        self.mask = nn.Conv3d(out, num_kp + 1, kernel_size=c.mask_kernel_size, padding=c.mask_kernel_size // 2)
        self.compress = nn.Conv3d(feature_channel, c.compress, kernel_size=1)
        self.norm = nn.BatchNorm3d(c.compress, affine=True)
        self.occlusion = (nn.Conv2d(out * c.reshape_depth, 1, kernel_size=7, padding=3)
                          if estimate_occlusion_map else None)

    @staticmethod
    def sparse_motions(grid: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, D, H, W, 3): slot 0 is the identity, slot k+1 translates by kp_s[k] - kp_d[k]."""
        b = kp_driving.shape[0]
        identity = grid[None, None]
        per_kp = (identity - kp_driving[:, :, None, None, None, :]) + kp_source[:, :, None, None, None, :]
        return torch.cat([identity.expand(b, 1, *grid.shape), per_kp], dim=1)

    @staticmethod
    def deformed_features(feature: torch.Tensor, sparse: torch.Tensor) -> torch.Tensor:
        """Sample the compressed feature once per slot: (B, K+1, C, D, H, W)."""
        b, slots = sparse.shape[:2]
        c, d, h, w = feature.shape[1:]
        rep = feature.unsqueeze(1).expand(b, slots, c, d, h, w).reshape(b * slots, c, d, h, w)
        out = F.grid_sample(rep, sparse.reshape(b * slots, d, h, w, 3), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        return out.view(b, slots, c, d, h, w)

    @staticmethod
    def heatmaps(grid: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> torch.Tensor:
        """(B, K+1, 1, D, H, W): driving minus source Gaussians, background slot zero."""
        heat = kp2gaussian(kp_driving, grid) - kp2gaussian(kp_source, grid)
        zeros = torch.zeros_like(heat[:, :1])
        return torch.cat([zeros, heat], dim=1).unsqueeze(2)

    def forward(self, feature: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> DenseMotionOutput:
        b, _, d, h, w = feature.shape
        feature = F.relu(self.norm(self.compress(feature)))
        grid = make_coordinate_grid((d, h, w), kp_source)
        sparse = self.sparse_motions(grid, kp_driving, kp_source)
        deformed = self.deformed_features(feature, sparse)
        heat = self.heatmaps(grid, kp_driving, kp_source).to(deformed.dtype)
        x = torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)
        prediction = self.hourglass(x)
        mask = F.softmax(self.mask(prediction), dim=1)
        # blend the per-slot flows with the soft assignment
        deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1)
        occlusion_map = None
        if self.occlusion is not None:
            pc, pd = prediction.shape[1:3]
            occlusion_map = torch.sigmoid(self.occlusion(prediction.reshape(b, pc * pd, h, w)))
        return DenseMotionOutput(mask=mask, deformation=deformation.permute(0, 2, 3, 4, 1), occlusion_map=occlusion_map)


class WarpingNetwork(nn.Module):
    def __init__(self, config: WarpingConfig | None = None):
        super().__init__()
        c = config or WarpingConfig()
        self.config = c
        self.dense_motion_network = DenseMotionNetwork(c.num_kp, c.reshape_channel, c.estimate_occlusion_map,
                                                       c.dense_motion)
        self.third = SameBlock2d(c.max_features, c.out_channels, kernel_size=3, padding=1, lrelu=True)
        self.fourth = nn.Conv2d(c.out_channels, c.out_channels, kernel_size=1)

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor,
                kp_source: torch.Tensor) -> WarpingOutput:
        """Driving keypoints come first, as in the reference's signature."""
        dense = self.dense_motion_network(feature_3d, kp_driving, kp_source)
        deformation = dense.deformation
        out = F.grid_sample(feature_3d, deformation.to(feature_3d.dtype), mode="bilinear",
                            padding_mode="zeros", align_corners=False)
        b, c, d, h, w = out.shape
        out = self.fourth(self.third(out.reshape(b, c * d, h, w)))
        if dense.occlusion_map is not None:
            out = out * dense.occlusion_map
        return WarpingOutput(out=out, occlusion_map=dense.occlusion_map, deformation=deformation)
