"""Implicit-keypoint math shared by the pipeline, the editor and training.

Conventions (those of the released networks):
- keypoints are row vectors (x, y, z) in the [-1, 1] frame of the feature volume, shape (B, K, 3);
- ``R`` is the *transposed* rotation Rz @ Ry @ Rx, applied from the right: ``x @ R``;
- x = s * (x_c @ R + exp) + (tx, ty, 0): the z translation is never applied.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # the annotation only: motion does not import the networks
    from ..networks.outputs import MotionOutput

NUM_BINS = 66
BIN_DEGREES = 3.0
BIN_OFFSET = 97.5


def headpose_to_degrees(logits: torch.Tensor) -> torch.Tensor:
    """(B, 66) bin logits -> (B,) degrees: softmax expectation of the bin index, x3, -97.5."""
    if logits.ndim < 2 or logits.shape[1] != NUM_BINS:
        return logits  # already in degrees
    idx = torch.arange(NUM_BINS, device=logits.device, dtype=torch.float32)
    prob = F.softmax(logits.float(), dim=1)
    return torch.sum(prob * idx, dim=1) * BIN_DEGREES - BIN_OFFSET


def rotation_matrix(pitch: torch.Tensor, yaw: torch.Tensor, roll: torch.Tensor) -> torch.Tensor:
    """(B, 3, 3) transposed rotation from angles in degrees (any shape (B,) or (B, 1))."""
    p, y, r = (a.reshape(-1, 1).float() / 180 * math.pi for a in (pitch, yaw, roll))
    ones, zeros = torch.ones_like(p), torch.zeros_like(p)
    rot_x = torch.cat([ones, zeros, zeros, zeros, torch.cos(p), -torch.sin(p), zeros, torch.sin(p), torch.cos(p)],
                      dim=1).reshape(-1, 3, 3)
    rot_y = torch.cat([torch.cos(y), zeros, torch.sin(y), zeros, ones, zeros, -torch.sin(y), zeros, torch.cos(y)],
                      dim=1).reshape(-1, 3, 3)
    rot_z = torch.cat([torch.cos(r), -torch.sin(r), zeros, torch.sin(r), torch.cos(r), zeros, zeros, zeros, ones],
                      dim=1).reshape(-1, 3, 3)
    return torch.bmm(torch.bmm(rot_z, rot_y), rot_x).permute(0, 2, 1)


def kp_info(raw: MotionOutput, num_kp: int = 21) -> dict[str, torch.Tensor]:
    """Motion-extractor outputs to usable motion: degrees (B, 1), kp and exp (B, K, 3), t (B, 3), scale (B, 1)."""
    raw = raw.float()
    b = raw.kp.shape[0]
    return {
        "pitch": headpose_to_degrees(raw.pitch).reshape(b, 1),
        "yaw": headpose_to_degrees(raw.yaw).reshape(b, 1),
        "roll": headpose_to_degrees(raw.roll).reshape(b, 1),
        "t": raw.t,
        "exp": raw.exp.reshape(b, num_kp, 3),
        "scale": raw.scale,
        "kp": raw.kp.reshape(b, num_kp, 3),
    }


def transform_keypoints(kp: torch.Tensor, R: torch.Tensor, exp: torch.Tensor, scale: torch.Tensor,
                        t: torch.Tensor, keep_tz: bool = False) -> torch.Tensor:
    """x = scale * (kp @ R + exp) + (tx, ty, 0) (spec 4.2). ``scale`` (B, 1), ``t`` (B, 3). ``keep_tz``
    adds t_z too, as the reference's portrait editor does in two places."""
    x = (kp @ R + exp) * scale.reshape(-1, 1, 1)
    return x + (t[:, None, :] if keep_tz else F.pad(t[:, None, 0:2], (0, 1)))


def transform_info(info: dict[str, torch.Tensor]) -> torch.Tensor:
    """Keypoints of one frame's own motion (``kp_info`` output)."""
    R = rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    return transform_keypoints(info["kp"], R, info["exp"], info["scale"], info["t"])


def apply_stitching(kp_driving: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """Add the stitching MLP's output: per-keypoint offsets, then a shared (dx, dy)."""
    b, k = kp_driving.shape[:2]
    out = kp_driving + delta[:, : 3 * k].reshape(b, k, 3)
    return out + F.pad(delta[:, 3 * k: 3 * k + 2].reshape(b, 1, 2), (0, 1))

