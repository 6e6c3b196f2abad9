"""Power iteration for the generator's spectral-normalised convolutions.

``SpectralNormConv2d`` keeps the released ``weight_orig``/``weight_u``/``weight_v`` and divides by
sigma = u . (W v) with the stored vectors; at inference they never change.  Training must refresh
them as ``torch.nn.utils.spectral_norm`` did when the released weights were trained: before each
forward in train mode, one step ``v = normalise(W^T u)``, ``u = normalise(W v)``, without
gradient.  The vectors are buffers, so checkpoints keep them and resuming continues exactly.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..networks.blocks import SpectralNormConv2d


@torch.no_grad()
def power_iteration_(module: nn.Module, iterations: int = 1, eps: float = 1e-12) -> int:
    """Update u and v of every SpectralNormConv2d in ``module``; returns how many were updated."""
    n = 0
    for m in module.modules():
        if not isinstance(m, SpectralNormConv2d):
            continue
        w = m.weight_orig.detach().reshape(m.weight_orig.shape[0], -1)
        u, v = m.weight_u, m.weight_v
        for _ in range(iterations):
            v.copy_(F.normalize(torch.mv(w.t(), u), dim=0, eps=eps))
            u.copy_(F.normalize(torch.mv(w, v), dim=0, eps=eps))
        n += 1
    return n
