"""The exact rewrites compute the same convolutions (float32 rounding only)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from liveportrait.speed.winograd import (
    FFTConv3d,
    UpsampledConv2d,
    UpsampledConv3d,
    WinogradConv2d,
    WinogradConv3d,
    transform_kernel,
    winograd_conv,
)

torch.manual_seed(0)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("m", [2, 4])
@pytest.mark.parametrize("size", [(16, 16), (20, 12), (7, 9)])
def test_winograd_conv2d(m, size):
    conv = nn.Conv2d(24, 40, 3, padding=1)
    x = torch.randn(2, 24, *size)
    wc = WinogradConv2d(lambda: conv.weight, lambda: conv.bias, lambda: (conv.weight, conv.bias), m)
    with torch.no_grad():
        assert rel(wc(x), conv(x)) < 1e-5


def test_winograd_strips_and_rebuild_on_new_weights():
    conv = nn.Conv2d(8, 8, 3, padding=1)
    x = torch.randn(1, 8, 32, 32)
    u = transform_kernel(conv.weight, 4)[None]
    with torch.no_grad():
        ref = conv(x)
        for tiles in (1, 8, 1000):
            assert rel(winograd_conv(x, u, conv.bias, 4, tiles), ref) < 1e-5
        wc = WinogradConv2d(lambda: conv.weight, lambda: conv.bias, lambda: (conv.weight, conv.bias))
        wc(x)
        conv.weight.mul_(2)  # in-place change moves the version counter: transforms are rebuilt
        assert rel(wc(x), conv(x)) < 1e-5


def test_winograd_conv3d():
    conv = nn.Conv3d(12, 20, 3, padding=1)
    x = torch.randn(2, 12, 5, 16, 12)
    with torch.no_grad():
        assert rel(WinogradConv3d(conv)(x), conv(x)) < 1e-5


@pytest.mark.parametrize("scale", [2, 4])
def test_conv_of_nearest_upsampling_by_phases(scale):
    conv = nn.Conv2d(16, 24, 3, padding=1)
    x = torch.randn(2, 16, 9, 7)
    uc = UpsampledConv2d(lambda: conv.weight, lambda: conv.bias, lambda: (conv.weight, conv.bias), scale)
    with torch.no_grad():
        assert rel(uc(x), conv(F.interpolate(x, scale_factor=scale))) < 1e-5


def test_conv3d_of_nearest_upsampling_by_phases():
    conv = nn.Conv3d(8, 6, 3, padding=1)
    x = torch.randn(1, 8, 4, 6, 5)
    with torch.no_grad():
        assert rel(UpsampledConv3d(conv)(x), conv(F.interpolate(x, scale_factor=(1, 2, 2)))) < 1e-5


@pytest.mark.parametrize("shape", [(4, 16, 16), (3, 21, 13)])
def test_fft_conv3d(shape):
    conv = nn.Conv3d(6, 5, 7, padding=3)
    x = torch.randn(2, 6, *shape)
    with torch.no_grad():
        assert rel(FFTConv3d(conv, n=16)(x), conv(x)) < 1e-5


def test_gather_grid_sample_matches_torch():
    from liveportrait.speed.onnx_backend import grid_sample_3d

    x = torch.randn(2, 3, 4, 5, 6)
    grid = torch.rand(2, 3, 5, 7, 3) * 2.4 - 1.2  # some points outside the volume
    ref = F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    assert rel(grid_sample_3d(x, grid), ref) < 1e-6


def test_fold_bn_and_occlusion_product():
    from liveportrait.speed.fastnets import FastWarping, fold_bn

    conv, bn = nn.Conv3d(4, 6, 3, padding=1), nn.BatchNorm3d(6).eval()
    bn.running_mean.uniform_(-1, 1)
    bn.running_var.uniform_(0.5, 2)
    bn.weight.data.uniform_(0.5, 1.5)
    x = torch.randn(1, 4, 3, 8, 8)
    w, b = fold_bn(conv.weight, conv.bias, bn)
    with torch.no_grad():
        assert rel(F.conv3d(x, w.float(), b.float(), padding=1), bn(conv(x))) < 1e-5
        occ = nn.Conv2d(4 * 3, 1, 7, padding=3)
        pred = torch.randn(2, 4, 3, 10, 9)
        weight = occ.weight[0].permute(1, 2, 0).reshape(49, -1)
        ours = FastWarping._occlusion(pred, weight, occ.bias, 7)
        assert rel(ours, occ(pred.reshape(2, 12, 10, 9))) < 1e-5


def test_upsampled_conv3d_on_small_and_large_maps():
    from liveportrait.speed.fastnets import _UpConv3d

    conv = nn.Conv3d(6, 4, 3, padding=1)
    with torch.no_grad():
        up = _UpConv3d(conv.weight, conv.bias)
        for size in (4, 8):  # plain below 8x8, phases from 8x8
            x = torch.randn(1, 6, 3, size, size)
            assert rel(up(x), conv(F.interpolate(x, scale_factor=(1, 2, 2)))) < 1e-5
