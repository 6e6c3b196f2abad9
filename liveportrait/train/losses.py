"""The training objectives of both stages, as functions of tensors.

Keypoint terms follow the paper (and face-vid2vid, which it builds on): equivariance under a random
affine warp, the keypoint prior (spread and depth), head pose against targets, the deformation
(expression) prior, and the landmark-guided wing loss.  Image terms: a multi-scale perceptual
loss, least-squares GAN losses with feature matching, an identity (cosine) loss and masked L1.
Everything returns a scalar tensor in float32.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# ---------------------------------------------------------------------------------------------
# keypoints


def wing_loss(pred: torch.Tensor, target: torch.Tensor, width: float = 10.0, curvature: float = 2.0,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Wing loss (Feng et al. 2018) summed over coordinates, averaged over points and samples.

    ``pred``/``target`` (B, N, 2) in [-1, 1]; they are scaled to [0, 100] "pixels" first so the
    usual constants (w=10, eps=2) keep their meaning.  ``weight`` (B,) masks samples out.
    """
    d = ((pred.float() - target.float()) * 50.0).abs()
    c = width - width * math.log(1 + width / curvature)
    loss = torch.where(d < width, width * torch.log1p(d / curvature), d - c).sum(-1).mean(-1)
    return _weighted_mean(loss, weight)


def _weighted_mean(per_sample: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    if weight is None:
        return per_sample.mean()
    w = weight.to(per_sample.dtype)
    return (per_sample * w).sum() / w.sum().clamp(min=1.0)


def random_affine(batch: int, sigma: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """(B, 2, 3) affine maps near the identity: identity plus N(0, sigma) noise on every entry."""
    eye = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]]).expand(batch, 2, 3)
    return eye + torch.randn(batch, 2, 3, generator=generator) * sigma


def warp_affine(images: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Resample ``images`` so that output point p shows input point A p + b (normalised coordinates)."""
    grid = F.affine_grid(theta.to(images.device, torch.float32), list(images.shape), align_corners=False)
    return F.grid_sample(images, grid.to(images.dtype), mode="bilinear", padding_mode="reflection",
                         align_corners=False)


def equivariance_loss(kp: torch.Tensor, kp_warped: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """Keypoints found on the warped image, mapped back by the warp, must land on the originals."""
    theta = theta.to(kp.device, torch.float32)
    back = kp_warped[..., :2].float() @ theta[:, :, :2].transpose(1, 2) + theta[:, None, :, 2]
    return (kp[..., :2].float() - back).abs().mean()


def keypoint_prior_loss(kp: torch.Tensor, distance: float = 0.1, depth: float = 0.33) -> torch.Tensor:
    """Keypoints closer than sqrt(``distance``) repel each other; their mean depth is pulled to ``depth``."""
    kp = kp.float()
    k = kp.shape[1]
    d2 = (kp[:, :, None, :] - kp[:, None, :, :]).pow(2).sum(-1)
    spread = F.relu(distance - d2).sum((1, 2)) - k * distance  # the diagonal contributes ``distance`` each
    z = (kp[:, :, 2].mean(1) - depth).abs()
    return (spread + z).mean()


def head_pose_loss(pred_deg: torch.Tensor, target_deg: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """L1 in radians between (B, 3) predicted and target (pitch, yaw, roll)."""
    per = (pred_deg.float() - target_deg.float().to(pred_deg.device)).abs().mean(-1) * (math.pi / 180)
    return _weighted_mean(per, None if valid is None else valid.to(pred_deg.device))


def deformation_prior_loss(exp: torch.Tensor) -> torch.Tensor:
    return exp.float().abs().mean()


# ---------------------------------------------------------------------------------------------
# images


class PerceptualLoss(nn.Module):
    """Weighted L1 between backbone activations of prediction and target, over an image pyramid."""

    def __init__(self, backbone: nn.Module, layer_weights, scales=(1.0,)):
        super().__init__()
        self.backbone = backbone
        self.layer_weights = [float(w) for w in layer_weights]
        self.scales = [float(s) for s in scales]

    def forward(self, pred: torch.Tensor, target: torch.Tensor, scales=None) -> torch.Tensor:
        total = pred.new_zeros((), dtype=torch.float32)
        for s in scales or self.scales:
            p, t = pred, target
            if s != 1.0:
                size = [max(8, int(round(pred.shape[-2] * s))), max(8, int(round(pred.shape[-1] * s)))]
                p = F.interpolate(p, size=size, mode="bilinear", align_corners=False, antialias=True)
                t = F.interpolate(t, size=size, mode="bilinear", align_corners=False, antialias=True)
            fp = self.backbone(p)
            with torch.no_grad():
                ft = self.backbone(t)
            for w, a, b in zip(self.layer_weights, fp, ft):
                if w:
                    total = total + w * (a.float() - b.float()).abs().mean()
        return total


def lsgan_generator_loss(outputs: list) -> torch.Tensor:
    """Least-squares GAN: the generator wants every patch scored 1 (mean over scales)."""
    return sum(((logits.float() - 1) ** 2).mean() for _, logits in outputs) / len(outputs)


def lsgan_discriminator_loss(real: list, fake: list) -> torch.Tensor:
    total = 0.0
    for (_, lr), (_, lf) in zip(real, fake):
        total = total + ((lr.float() - 1) ** 2).mean() + (lf.float() ** 2).mean()
    return total / len(real)


def feature_matching_loss(real: list, fake: list) -> torch.Tensor:
    """L1 between the discriminator's features of real (detached) and generated images."""
    total, n = 0.0, 0
    for (fr, _), (ff, _) in zip(real, fake):
        for a, b in zip(fr, ff):
            total = total + (a.detach().float() - b.float()).abs().mean()
            n += 1
    return total / max(n, 1)


def identity_loss(encoder: nn.Module, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - cosine similarity of identity embeddings (the encoder returns unit vectors)."""
    e_p = encoder(pred)
    with torch.no_grad():
        e_t = encoder(target)
    return (1 - (e_p * e_t).sum(-1)).mean()


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean absolute difference over the pixels where ``mask`` (B, 1, H, W) is 1."""
    diff = (a.float() - b.float()).abs()
    if mask is None:
        return diff.mean()
    m = mask.to(diff.dtype)
    return (diff * m).sum() / (m.sum() * diff.shape[1]).clamp(min=1.0)
