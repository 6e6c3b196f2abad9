"""Tiny configs run every layer of the released architecture with the released tensor shapes' structure."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
import torch

from liveportrait.networks import LivePortraitNetworks, ModelConfig, MotionOutput, WarpingNetwork, WarpingOutput
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
        assert isinstance(raw, MotionOutput)  # the released names, in the released order
        assert [f.name for f in dataclasses.fields(raw)] == ["pitch", "yaw", "roll", "t", "exp", "scale", "kp"]
        assert raw.pitch.shape == (2, 66) and raw.kp.shape == (2, 63)
        kp = torch.rand(2, 21, 3) - 0.5
        w = tiny.W(f, kp_driving=kp, kp_source=kp)
        assert isinstance(w, WarpingOutput)
        assert w.out.shape == (2, c.warping.out_channels, 64, 64)
        assert w.deformation.shape == (2, c.appearance.reshape_depth, 64, 64, 3)
        assert w.occlusion_map.shape == (2, 1, 64, 64)
        out = tiny.G(w.out)
        assert out.shape == (2, 3, 512, 512) and 0 < out.min() and out.max() < 1
        assert tiny.S.stitch_delta(kp, kp).shape == (2, 65)


def test_warping_without_occlusion_head_says_none(tiny):
    config = dataclasses.replace(tiny.config.warping, estimate_occlusion_map=False)
    w = WarpingNetwork(config).eval()
    kp = torch.rand(1, 21, 3) - 0.5
    with torch.inference_mode():
        out = w(torch.rand(1, 8, 2, 64, 64), kp_driving=kp, kp_source=kp + 0.01)
    assert out.occlusion_map is None and out.out.shape == (1, config.out_channels, 64, 64)


def spec_sn_weight(conv) -> np.ndarray:
    """Spec 2.0, inference: W_orig / sigma with sigma = u . (W_mat v), from the stored u and v (float64 numpy)."""
    w = conv.weight_orig.detach().double().numpy()
    u, v = conv.weight_u.double().numpy(), conv.weight_v.double().numpy()
    return w / (u @ (w.reshape(w.shape[0], -1) @ v))


def test_spectral_norm_divides_by_top_singular_value(tiny):
    conv = copy.deepcopy(tiny.G.G_middle_0.conv_0)  # edited below: keep the shared networks intact
    # as initialised, u and v are the top singular pair: sigma is the largest singular value
    top = np.linalg.svd(conv.weight_orig.detach().double().reshape(conv.weight_orig.shape[0], -1).numpy(),
                        compute_uv=False)[0]
    with torch.no_grad():
        eff = conv.effective_weight()
    np.testing.assert_allclose(eff.numpy(), conv.weight_orig.detach().double().numpy() / top, rtol=1e-4, atol=1e-7)
    # released checkpoints store u and v from training (not exactly the top pair): sigma comes from them
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        u = conv.weight_u + 0.3 * torch.randn(conv.weight_u.shape, generator=g)
        conv.weight_u.copy_(u / u.norm())
        v = conv.weight_v + 0.3 * torch.randn(conv.weight_v.shape, generator=g)
        conv.weight_v.copy_(v / v.norm())
        moved = conv.effective_weight()
    expected = spec_sn_weight(conv)
    assert np.abs(expected - conv.weight_orig.detach().double().numpy() / top).max() > 1e-3  # a real change
    np.testing.assert_allclose(moved.numpy(), expected, rtol=1e-4, atol=1e-7)
    # the cached weight follows a new checkpoint (new weights, same u and v: not a mere rescaling)
    with torch.no_grad():
        conv.weight_orig.copy_(torch.randn(conv.weight_orig.shape, generator=g) * 0.05)
        reloaded = conv.effective_weight()
    np.testing.assert_allclose(reloaded.numpy(), spec_sn_weight(conv), rtol=1e-4, atol=1e-7)
    assert np.abs(reloaded.numpy() - moved.numpy()).max() > 1e-3


def test_inconsistent_config_is_rejected():
    with pytest.raises(ValueError, match="reshape_channel"):
        ModelConfig(appearance=AppearanceConfig(max_features=256))
