"""Subnormal floats: W's Gaussian heatmaps underflow into them where keypoints are far from a point of the
volume (random pictures' keypoints, and real ones at the volume's edges); the fast W sets them to zero
before its convolutions read them (x86 CPUs compute with them in slow microcode), which changes each value
by less than 1.2e-38 and keeps the float32 bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.speed import FIDELITY_REL_L2, accelerate, fastnets

TINY = torch.finfo(torch.float32).tiny


def subnormal(t: torch.Tensor) -> torch.Tensor:
    return (t != 0) & (t.abs() < TINY)


def test_flush_subnormal_zeroes_only_subnormals():
    values = torch.tensor([0.0, 1e-39, -1e-40, TINY, -TINY, 3e-38, 1.0, -2.5, 1e-45], dtype=torch.float32)
    out = fastnets.flush_subnormal_(values.clone())
    expected = values.clone()
    expected[[1, 2, 8]] = 0
    assert torch.equal(out, expected)
    assert not subnormal(out).any()


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    return LivePortraitNetworks(ModelConfig.tiny()).eval()


def test_fast_warping_flushes_the_heatmaps_and_keeps_its_bound(tiny_nets, monkeypatch):
    from liveportrait.networks.warping import kp2gaussian, make_coordinate_grid
    from liveportrait.speed.onnx_backend import example_inputs

    feat, _, _ = example_inputs(tiny_nets, 1)["W"]
    torch.manual_seed(3)
    # keypoints spread as M's on random pictures: most of each Gaussian underflows, part of it to subnormals
    kp_s = 1.5 * (2 * torch.rand(1, 21, 3) - 1)
    kp_d = kp_s + 0.3 * torch.randn(1, 21, 3)
    grid = make_coordinate_grid(tuple(feat.shape[2:]), kp_s)
    assert subnormal(kp2gaussian(kp_d, grid)).any(), "these keypoints should give subnormal heatmap values"
    seen = []
    real_flush = fastnets.flush_subnormal_

    def spy(t):
        out = real_flush(t)
        seen.append(bool(subnormal(out).any()))
        return out

    monkeypatch.setattr(fastnets, "flush_subnormal_", spy)
    fast = accelerate(tiny_nets, "fast")
    with torch.inference_mode():
        ref = tiny_nets.W(feat, kp_d, kp_s)
        ours = fast.W(feat, kp_d, kp_s)
    assert seen == [False]
    for key in ("out", "occlusion_map", "deformation"):
        a, b = getattr(ours, key).double().numpy(), getattr(ref, key).double().numpy()
        assert np.linalg.norm(a - b) / np.linalg.norm(b) <= FIDELITY_REL_L2["fast"], key
