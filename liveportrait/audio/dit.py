"""JoyVASA's motion generator network: the diffusion transformer that denoises a window of motion given
audio features and the previous window's motion (audio-driving-spec 2.2, 3.3, 3.4).

Attribute names mirror the released checkpoint's keys (``denoising_net.transformer.layers.0...``) so the
stored state dict loads strictly; the sizes come from the checkpoint's stored args.
"""

from __future__ import annotations

import math

import torch
from torch import nn

TIME_TABLE_ROWS = 501  # the reference builds this table itself (the stored one is discarded)
PE_MAX_LEN = 600
SCHEDULE_BUFFERS = ("betas", "alphas", "alpha_bars", "sigmas_flex", "sigmas_inflex")


def sinusoid_table(rows: int, dim: int) -> torch.Tensor:
    """1 x rows x dim: sin / cos of p * exp(-2i ln(10000) / dim) in the even / odd columns, float32."""
    pos = torch.arange(0, rows, dtype=torch.float32)[:, None]
    w = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(rows, dim)
    pe[:, 0::2] = torch.sin(pos * w)
    pe[:, 1::2] = torch.cos(pos * w)
    return pe[None]


class PositionalEncoding(nn.Module):
    """Holds the stored table ``pe`` (1 x 600 x D); ``persistent=False`` for the time table, which is rebuilt."""

    def __init__(self, dim: int, rows: int, persistent: bool = True):
        super().__init__()
        self.register_buffer("pe", sinusoid_table(rows, dim), persistent=persistent)


class DiffusionSchedule(nn.Module):
    """The cosine-schedule buffers, as stored (recomputing them in another precision costs tolerance at t=1)."""

    def __init__(self, n_diff_steps: int):
        super().__init__()
        for name in SCHEDULE_BUFFERS:
            self.register_buffer(name, torch.zeros(n_diff_steps + 1))


class DenoisingNetwork(nn.Module):
    """Post-norm transformer decoder over [previous P frames, current N frames] of motion, each frame
    cross-attending only its own audio frame (the alignment mask), predicting clean motion x0."""

    def __init__(self, motion_feat_dim: int = 70, feature_dim: int = 256, n_motions: int = 100,
                 n_prev_motions: int = 25, n_layers: int = 8, n_heads: int = 8, mlp_ratio: int = 4,
                 legacy_pe: bool = False):
        super().__init__()
        d, length = feature_dim, n_prev_motions + n_motions
        self.n_prev_motions, self.n_motions, self.legacy_pe = n_prev_motions, n_motions, legacy_pe
        self.register_buffer("alignment_mask", ~torch.eye(length, dtype=torch.bool))
        self.TE = PositionalEncoding(d, TIME_TABLE_ROWS, persistent=False)
        self.diff_step_map = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.Linear(d, d))
        self.PE = PositionalEncoding(d, PE_MAX_LEN)
        self.feature_proj = nn.Linear(motion_feat_dim, d)
        layer = nn.TransformerDecoderLayer(d, n_heads, dim_feedforward=mlp_ratio * d, dropout=0.0,
                                           activation="gelu", batch_first=True)
        self.transformer = nn.TransformerDecoder(layer, num_layers=n_layers)
        self.motion_dec = nn.Sequential(nn.Linear(d, d // 2), nn.GELU(), nn.Linear(d // 2, motion_feat_dim))

    def forward(self, motion: torch.Tensor, audio: torch.Tensor, prev_motion: torch.Tensor,
                prev_audio: torch.Tensor, step: torch.Tensor) -> torch.Tensor:
        """(B, N, Mf) noisy motion, (B, N, D) audio, (B, P, Mf), (B, P, D), (B,) steps -> (B, P+N, Mf)."""
        e = self.diff_step_map(self.TE.pe[0, step])[:, None]
        z = self.feature_proj(torch.cat([prev_motion, motion], dim=1))
        length = z.shape[1]
        # before the reference's Dec 2025 fix one row (index P+N) was added to every frame
        z = z + (self.PE.pe[:, length:length + 1] if self.legacy_pe else self.PE.pe[:, :length]) + e
        memory = torch.cat([prev_audio, audio], dim=1)
        z = self.transformer(z, memory, memory_mask=self.alignment_mask[:length, :length])
        return self.motion_dec(z)


class MotionGenerator(nn.Module):
    """Everything of ``DitTalkingHead`` but the audio encoder (kept apart so its own loader can fill it):
    the learned start context and null-audio embedding, the 768 -> D audio map, the denoiser, the schedule."""

    def __init__(self, motion_feat_dim: int = 70, feature_dim: int = 256, n_motions: int = 100,
                 n_prev_motions: int = 25, n_diff_steps: int = 50, audio_hidden: int = 768, legacy_pe: bool = False):
        super().__init__()
        self.motion_feat_dim, self.feature_dim = motion_feat_dim, feature_dim
        self.n_motions, self.n_prev_motions, self.n_diff_steps = n_motions, n_prev_motions, n_diff_steps
        self.start_audio_feat = nn.Parameter(torch.zeros(1, n_prev_motions, feature_dim))
        self.start_motion_feat = nn.Parameter(torch.zeros(1, n_prev_motions, motion_feat_dim))
        self.null_audio_feat = nn.Parameter(torch.zeros(1, 1, feature_dim))
        self.audio_feature_map = nn.Linear(audio_hidden, feature_dim)
        self.denoising_net = DenoisingNetwork(motion_feat_dim, feature_dim, n_motions, n_prev_motions,
                                              legacy_pe=legacy_pe)
        self.diffusion_sched = DiffusionSchedule(n_diff_steps)
