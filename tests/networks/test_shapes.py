"""Tiny configs run every layer of the released architecture with the released tensor shapes' structure."""

from __future__ import annotations

import pytest
import torch

from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.networks.config import AppearanceConfig


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return LivePortraitNetworks(ModelConfig.tiny())


def test_tiny_forward_shapes(tiny):
    c = tiny.config
    img = torch.rand(2, 3, 256, 256)
    with torch.inference_mode():
        f = tiny.F(img)
        assert f.shape == (2, c.appearance.reshape_channel, c.appearance.reshape_depth, 64, 64)
        raw = tiny.M(img)
        assert list(raw) == ["pitch", "yaw", "roll", "t", "exp", "scale", "kp"]
        assert raw["pitch"].shape == (2, 66) and raw["kp"].shape == (2, 63)
        kp = torch.rand(2, 21, 3) - 0.5
        w = tiny.W(f, kp_driving=kp, kp_source=kp)
        assert w["out"].shape == (2, c.warping.out_channels, 64, 64)
        assert w["deformation"].shape == (2, c.appearance.reshape_depth, 64, 64, 3)
        assert w["occlusion_map"].shape == (2, 1, 64, 64)
        out = tiny.G(w["out"])
        assert out.shape == (2, 3, 512, 512) and 0 < out.min() and out.max() < 1
        assert tiny.S.stitch_delta(kp, kp).shape == (2, 65)


def test_spectral_norm_divides_by_top_singular_value(tiny):
    conv = tiny.G.G_middle_0.conv_0
    w = conv.weight_orig.detach().reshape(conv.weight_orig.shape[0], -1)
    sigma = torch.linalg.matrix_norm(w, ord=2)
    with torch.no_grad():
        eff = conv.effective_weight()
    torch.testing.assert_close(eff, conv.weight_orig / sigma, rtol=1e-4, atol=1e-6)
    # the cached weight follows a new checkpoint
    with torch.no_grad():
        conv.weight_orig.mul_(2)
        assert torch.allclose(conv.effective_weight(), eff, rtol=1e-4)  # scale-invariant by construction
        conv.weight_u.mul_(-1)
        assert torch.allclose(conv.effective_weight(), -eff, rtol=1e-4)


def test_inconsistent_config_is_rejected():
    with pytest.raises(ValueError, match="reshape_channel"):
        ModelConfig(appearance=AppearanceConfig(max_features=256))
