"""The ``fast`` backend computes what the eager networks compute.

Bounds (float32, against float32 eager or the reference kit):
- tiny networks, random weights: relative L2 <= 1e-4 for every output of W and G;
- full size, the conformance kit (synthetic weights in the released format, the example photo s0):
  W and G outputs within relative L2 1e-4 of the reference, like the eager code; a rendered frame
  within relative L2 1e-3 and at least 60 dB PSNR (8-bit) of the reference frame.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.speed import FIDELITY_PSNR_DB, FIDELITY_REL_L2, accelerate


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def psnr_u8(a: np.ndarray, b: np.ndarray) -> float:
    a = np.clip(np.asarray(a, np.float64), 0, 1) * 255
    b = np.clip(np.asarray(b, np.float64), 0, 1) * 255
    mse = np.mean((np.floor(a) - np.floor(b)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    nets = LivePortraitNetworks(ModelConfig.tiny())
    with torch.no_grad():  # non-trivial norms
        for m in nets.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return nets.eval()


def test_fast_backend_tiny_matches_eager(tiny_nets, winograd_calls):
    from liveportrait.speed.onnx_backend import example_inputs

    fast = accelerate(tiny_nets, "fast")
    torch.manual_seed(1)
    feat, _, kp_s = example_inputs(tiny_nets, 2)["W"]
    kp_d = kp_s + 0.05 * torch.randn(2, 21, 3)
    with torch.inference_mode():
        ref = tiny_nets.W(feat, kp_d, kp_s)
        ours = fast.W(feat, kp_d, kp_s)
        for key in ("out", "occlusion_map", "deformation"):
            assert rel(getattr(ours, key), getattr(ref, key)) <= FIDELITY_REL_L2["fast"], key
        n_w = len(winograd_calls)
        assert rel(fast.G(ref.out), tiny_nets.G(ref.out)) <= FIDELITY_REL_L2["fast"]
    assert any(len(shape) == 5 for shape in winograd_calls[:n_w]), "W never ran a Winograd convolution"
    assert any(len(shape) == 4 for shape in winograd_calls[n_w:]), "G never ran a Winograd convolution"


def test_fast_backend_batched_frames_equal_single(tiny_nets, winograd_calls):
    from liveportrait.speed.onnx_backend import example_inputs

    fast = accelerate(tiny_nets, "fast")
    torch.manual_seed(2)
    feat, _, kp_s = example_inputs(tiny_nets, 1)["W"]
    kp_d = kp_s + 0.05 * torch.randn(3, 21, 3)
    with torch.inference_mode():
        batched = fast.G(fast.W(feat.expand(3, -1, -1, -1, -1), kp_d, kp_s.expand(3, -1, -1)).out)
        for i in range(3):
            single = fast.G(fast.W(feat, kp_d[i:i + 1], kp_s).out)
            assert rel(batched[i:i + 1], single) < 1e-5
    assert any(shape[0] == 3 for shape in winograd_calls) and any(shape[0] == 1 for shape in winograd_calls)


def test_animator_accepts_accelerated_networks(tiny_nets, winograd_calls):
    from liveportrait.animator import Animator
    from liveportrait.motion.compose import MotionOptions

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    outs = []
    for backend in ("eager", "fast"):
        anim = Animator(accelerate(tiny_nets, backend), "cpu", "fp32")
        src = anim.prepare_source(img)
        info = anim.extract_motion(img)
        x_d = anim.driving_keypoints(src, info.motion, info.motion, MotionOptions())
        outs.append(anim.render(src, x_d).numpy())
        assert bool(winograd_calls) == (backend == "fast"), backend  # the eager networks never take it
    assert rel(outs[1], outs[0]) <= FIDELITY_REL_L2["fast"]


@pytest.fixture(scope="module")
def kit(shared_dir, synthetic_weights):
    fixture = np.load(shared_dir / "conformance" / "fixture_s0_d1.npz")
    nets = LivePortraitNetworks.from_pretrained(synthetic_weights, locate=False)
    return fixture, nets


@pytest.mark.slow
def test_fast_backend_full_size_matches_reference_kit(kit):
    from liveportrait.animator import Animator
    from liveportrait.conformance import template_motion
    from liveportrait.motion.compose import MotionOptions

    fixture, nets = kit
    fast = accelerate(nets, "fast")
    with torch.inference_mode():
        w = fast.W(torch.from_numpy(fixture["F_out"]), torch.from_numpy(fixture["W_kp_driving"]),
                   torch.from_numpy(fixture["W_kp_source"]))
        for key in ("out", "occlusion_map", "deformation"):
            assert rel(getattr(w, key), fixture[f"W_{key}"]) <= 1e-4, key
        g32 = fast.G(w.out)
        assert rel(g32, fixture["G_out"]) <= 1e-4
        # under autocast (--precision bf16 --backend fast) the rewrites keep to float32 instead of failing
        with torch.autocast("cpu", dtype=torch.bfloat16):
            assert torch.equal(fast.G(w.out), g32)
    # a rendered frame of the example photo, through the Animator
    anim = Animator(fast, "cpu", "fp32")
    src = anim.prepare_source(fixture["source_rgb_256"])
    drv = template_motion({k: fixture[k] for k in fixture.files if k.startswith("template_motion_")})
    x_d = anim.driving_keypoints(src, drv[1:2], drv[0], MotionOptions())
    frame = anim.render(src, x_d).numpy()[0]
    ref = fixture["pipe_default_out"][1]
    assert rel(frame, ref) <= 1e-3
    assert psnr_u8(frame, ref) >= FIDELITY_PSNR_DB["fast"]


@pytest.mark.parametrize("device, backend, precision, expected", [
    ("cpu", "auto", "auto", "fast"), ("cuda", "auto", "auto", "eager"), ("cpu", "auto", "bf16", "fast"),
    ("cpu", "openvino", "auto", "openvino")])
def test_animate_backend_choice(device, backend, precision, expected):
    """`animate --backend auto` takes the fast rewrites on the CPU (float32, or bfloat16 where G computes it
    itself), eager kernels on a GPU."""
    from liveportrait.cli import build_parser
    from liveportrait.commands.animate import config_from_args

    args = build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4", "--backend", backend,
                                      "--precision", precision])
    assert config_from_args(args, device).backend == expected


def test_pipeline_runs_the_chosen_backend(tiny_nets):
    from liveportrait.pipeline import AnimateConfig, Pipeline
    from liveportrait.speed import AcceleratedNetworks

    assert isinstance(Pipeline(tiny_nets, AnimateConfig(backend="fast")).animator.networks, AcceleratedNetworks)
    assert Pipeline(tiny_nets, AnimateConfig()).animator.networks is tiny_nets


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_fast_modules_rebuild_when_the_weights_change(tiny_nets, winograd_calls, precision):
    """Loading other weights into the wrapped networks is seen on the next call (no stale plan), on the
    exact path and on the bfloat16 one (G's bfloat16 weights are cast and laid out once, then rebuilt)."""
    import copy

    from liveportrait.speed.onnx_backend import example_inputs

    bound = FIDELITY_REL_L2["fast" if precision == "fp32" else "bf16"]
    changed = {"fp32": 1e-3, "bf16": 1e-2}[precision]  # how far 10% larger weights move the picture at least
    nets = copy.deepcopy(tiny_nets)
    fast = accelerate(nets, "fast", precision=precision)
    feat, kp_d, kp_s = example_inputs(nets, 1)["W"]
    with torch.inference_mode():
        before = fast.G(fast.W(feat, kp_d, kp_s).out)
    with torch.no_grad():
        for p in list(nets.W.parameters()) + list(nets.G.parameters()):
            p.mul_(1.1)
    with torch.inference_mode():
        ref = nets.W(feat, kp_d, kp_s)
        ours = fast.W(feat, kp_d, kp_s)
        assert rel(ours.out, ref.out) <= bound
        after = fast.G(ref.out)
        assert rel(after, nets.G(ref.out)) <= bound
    assert rel(after, before) > changed  # the new weights, not the old plan
    assert winograd_calls, "the fast networks never ran a Winograd convolution"
