"""GPU-side paths, exercised on the CPU: half-precision fallback, torch.compile plumbing, batching."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch import nn

from liveportrait.animator import Animator
from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.speed import AcceleratedNetworks, accelerate


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    return LivePortraitNetworks(ModelConfig.tiny()).eval()


class StubW(nn.Module):
    """A cheap W (the fallback logic is under test, not the network)."""

    def forward(self, feature_3d, kp_driving, kp_source):
        n = kp_driving.shape[0]
        from liveportrait.networks.outputs import WarpingOutput

        out = feature_3d.flatten(1, 2)[:, :3].expand(n, -1, -1, -1) + kp_driving.mean()
        return WarpingOutput(out=out, occlusion_map=None, deformation=None)


class NaNUnderAutocast(nn.Module):
    """A G that breaks in half precision, as some GPUs do: NaN whenever autocast is on."""

    def __init__(self):
        super().__init__()
        self.calls = []

    def forward(self, x):
        on = torch.is_autocast_enabled("cpu") or torch.is_autocast_enabled("cuda")
        self.calls.append(on)
        out = torch.sigmoid(torch.nn.functional.interpolate(x[:, :3], size=(512, 512)))
        return out * float("nan") if on else out


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_half_precision_nan_falls_back_to_fp32(tiny_nets, precision):
    from liveportrait.motion.compose import MotionOptions

    broken = NaNUnderAutocast()
    nets = AcceleratedNetworks(tiny_nets, "mock", W=StubW(), G=broken)
    anim = Animator(nets, "cpu", precision)
    img = np.random.default_rng(0).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    src = anim.prepare_source(img)
    info = anim.extract_motion(img)
    x_d = anim.driving_keypoints(src, info.motion, info.motion, MotionOptions())
    with pytest.warns(RuntimeWarning, match="falling back to fp32"):
        out = anim.render(src, x_d)
    assert torch.isfinite(out).all()
    assert anim.precision == "fp32"
    assert broken.calls == [True, False]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.isfinite(anim.render(src, x_d)).all()  # later frames stay in fp32, no warning


def test_compile_backend_plumbing(tiny_nets):
    """torch.compile wraps W, G and M (the 'eager' compile backend keeps this test fast)."""
    comp = accelerate(tiny_nets, "compile", compile_backend="eager")
    assert comp.backend == "compile" and comp.W is not tiny_nets.W
    x = torch.randn(2, tiny_nets.config.generator.input_channels, 64, 64)
    with torch.inference_mode():
        assert torch.allclose(comp.G(x), tiny_nets.G(x), atol=1e-6)


def test_accelerated_networks_moves_and_exposes_released_names(tiny_nets):
    fast = accelerate(tiny_nets, "fast")
    assert fast.to("cpu") is fast
    assert fast.spade_generator is fast.G and fast.warping_module is fast.W
    assert fast.stitching_retargeting_module is tiny_nets.S
    assert fast.config is tiny_nets.config
    with pytest.raises(ValueError, match="unknown backend"):
        accelerate(tiny_nets, "tensorrt")


@pytest.mark.ci_may_skip  # the one skip CI allows: no installation gives a machine a GPU
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_fp16_fast_and_batched(tiny_nets):  # pragma: no cover - GPU machines only
    from liveportrait.speed.onnx_backend import example_inputs

    nets = accelerate(tiny_nets, "fast", device="cuda")
    feat, _, kp = (t.cuda() for t in example_inputs(tiny_nets, 2)["W"])
    with torch.inference_mode(), torch.autocast("cuda", torch.float16):
        out = nets.G(nets.W(feat, kp + 0.01, kp).out)
    assert torch.isfinite(out).all()
