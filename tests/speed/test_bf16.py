"""The bfloat16 CPU path (``accelerate(..., "fast", precision="bf16")``) keeps to its fidelity bound.

Bounds, against float32 eager (the independent reference) or the reference kit:
- rendered uint8 frames at least ``FIDELITY_PSNR_DB["bf16"]`` (40 dB) PSNR: full-size networks with the
  conformance kit's synthetic weights, on the 9 example photos and on the conformance fixture's
  inputs (its W and G inputs, and a frame of its pipeline); one frame each (seconds per frame here);
- keypoints identical to float32: M, S and the keypoint math stay float32;
- the parts rewritten exactly (transposed convolutions of upsampled maps) agree with float32 to rounding.

bfloat16 runs on every CPU (emulated, slower, without AVX512-BF16 or AMX), so these run everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.speed import FIDELITY_PSNR_DB, FIDELITY_REL_L2, accelerate
from liveportrait.speed.backends import cpu_has_native_bf16, pick_backend, resolve_precision

BOUND = FIDELITY_PSNR_DB["bf16"]

CPUINFO = """processor\t: 0
vendor_id\t: {vendor}
model name\t: {model}
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 {extra}
bogomips\t: 4800.00

processor\t: 1
flags\t\t: fpu vme de pse tsc msr pae mce cx8 apic sse sse2 ssse3 fma sse4_1 sse4_2 avx avx2 {extra}
"""


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def psnr_u8(a, b) -> float:
    """PSNR of the uint8 frames (clip, x255, truncate: the pipeline's conversion) of two float images."""
    a = np.floor(np.clip(np.asarray(a, np.float64), 0, 1) * 255)
    b = np.floor(np.clip(np.asarray(b, np.float64), 0, 1) * 255)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


# -- precision "auto" -------------------------------------------------------------------------------------

@pytest.mark.parametrize("extra, expected", [
    ("avx512f avx512_bf16 avx512_vnni", "bf16"),  # AMD Zen 4/5, Intel Cooper Lake
    ("avx512f avx512_bf16 amx_bf16 amx_tile amx_int8", "bf16"),  # Intel Sapphire Rapids on
    ("amx_bf16", "bf16"),
    ("avx512f avx512_vnni avx_vnni", "fp32"),  # AVX-512 without bfloat16 (Ice Lake, Zen 3 has not even that)
    ("", "fp32"),
    ("avx512_bf16x", "fp32"),  # a flag is a whole word
])
def test_auto_precision_follows_the_cpu_flags(extra, expected, tmp_path, monkeypatch):
    text = CPUINFO.format(vendor="AuthenticAMD", model="AMD EPYC", extra=extra)
    assert cpu_has_native_bf16(text) is (expected == "bf16")
    path = tmp_path / "cpuinfo"
    path.write_text(text)
    assert cpu_has_native_bf16(path) is (expected == "bf16")
    assert cpu_has_native_bf16(str(path)) is (expected == "bf16")
    # with oneDNN (every official CPU build) auto follows the flags; a build without it gets fp32 whatever the
    # CPU: both asserted here, whichever build runs the test
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: True)
    assert resolve_precision("auto", "cpu", cpuinfo=text) == expected
    monkeypatch.setattr(torch.backends.mkldnn, "is_available", lambda: False)
    assert resolve_precision("auto", "cpu", cpuinfo=text) == "fp32"
    # explicit precisions are kept whatever the CPU has; CUDA defaults to fp16
    for explicit in ("fp32", "bf16", "fp16"):
        assert resolve_precision(explicit, "cpu", cpuinfo=text) == explicit
    assert resolve_precision("auto", "cuda", cpuinfo=text) == "fp16"


def test_the_benchmark_reports_the_features_the_precision_rule_reads():
    from liveportrait.bench import cpu_features

    text = CPUINFO.format(vendor="GenuineIntel", model="Intel Xeon Test", extra="avx512f amx_bf16")
    model, features = cpu_features(text)
    assert model == "Intel Xeon Test"
    assert features["avx512f"] and features["amx_bf16"] and not features["avx512_bf16"]
    assert cpu_features("no flags here\nat all\n")[1] == dict.fromkeys(features, False)


def test_auto_precision_without_cpuinfo_is_fp32(tmp_path):
    assert cpu_has_native_bf16(tmp_path / "missing") is False
    assert cpu_has_native_bf16("no flags here\nat all\n") is False
    assert resolve_precision("auto", "cpu", cpuinfo=tmp_path / "missing") == "fp32"


@pytest.mark.ci_may_skip
def test_auto_precision_reads_this_machine():
    path = Path("/proc/cpuinfo")
    if not path.is_file():
        pytest.skip("no /proc/cpuinfo (not Linux): auto is fp32 there")
    flags = next((ln.split(":", 1)[1].split() for ln in path.read_text().splitlines() if ln.startswith("flags")), [])
    assert cpu_has_native_bf16() is bool({"avx512_bf16", "amx_bf16"} & set(flags))


@pytest.mark.parametrize("device, precision, expected", [
    ("cpu", "fp32", "fast"), ("cpu", "bf16", "fast"), ("cpu", "fp16", "eager"), ("cuda", "fp16", "eager"),
    ("cuda", "auto", "eager"), ("cuda", "bf16", "eager"), ("cpu", "auto", "fast")])
def test_pick_backend_is_consistent_with_the_precision(device, precision, expected):
    assert pick_backend("auto", device, precision) == expected
    assert pick_backend("openvino", device, precision) == "openvino"


# -- exact pieces and the Animator's handling, on tiny networks ----------------------------------------------

@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    nets = LivePortraitNetworks(ModelConfig.tiny())
    with torch.no_grad():
        for m in nets.modules():
            if isinstance(m, (torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)
    return nets.eval()


@pytest.mark.parametrize("scale, three_d", [(2, False), (4, False), (2, True)])
def test_upsampled_convolution_as_transposed_convolution_is_exact(scale, three_d):
    from liveportrait.speed.bf16 import BUpConv

    torch.manual_seed(scale)
    shape = (2, 5, 3, 6, 7) if three_d else (2, 5, 6, 7)
    x = torch.randn(shape)
    w = torch.randn(4, 5, 3, 3, 3) if three_d else torch.randn(4, 5, 3, 3)
    b = torch.randn(4)
    factor = (1, scale, scale) if three_d else scale
    ref = (F.conv3d if three_d else F.conv2d)(F.interpolate(x, scale_factor=factor), w, b, padding=1)
    assert rel(BUpConv(w, b, scale, dtype=torch.float32)(x), ref) < 1e-6
    assert 1e-4 < rel(BUpConv(w, b, scale)(x).float(), ref) < 1e-2  # and in bfloat16, rounded


@pytest.mark.parametrize("scale, slope, with_beta, x_dtype", [
    (1, 0.2, True, torch.float32), (1, 0.2, True, torch.bfloat16), (2, 0.2, True, torch.float32),
    (4, 0.2, True, torch.bfloat16), (2, None, False, torch.float32)])
def test_spade_modulation_matches_float32(scale, slope, with_beta, x_dtype):
    """lrelu(up(instance_norm(x)) * g + b), computed in float32 from the same (bfloat16) inputs: the result
    is that, rounded once to bfloat16."""
    from liveportrait.speed import bf16

    torch.manual_seed(scale)
    x = bf16.channels_last((torch.randn(2, 24, 8, 10) * 3 + 1).to(x_dtype))
    gb = bf16.to_bf16(torch.randn(2, 53, 8 * scale, 10 * scale))
    n = F.interpolate(F.instance_norm(x.float()), scale_factor=scale)
    ref = n * gb[:, :24].float() + (gb[:, 24:48].float() if with_beta else 0)
    if slope is not None:
        ref = F.leaky_relu(ref, slope)
    for compiled in (True, False):
        bf16.COMPILED_MODULATION = compiled
        try:
            out = bf16.modulate(x, gb, scale, slope, with_beta)
        finally:
            bf16.COMPILED_MODULATION = True
        assert out.dtype == torch.bfloat16 and out.shape == ref.shape
        assert out.is_contiguous(memory_format=torch.channels_last)
        err = (out.float() - ref).abs()
        assert float((err / ref.abs().clamp_min(1e-3)).max()) <= 2 ** -8, compiled  # one rounding, to nearest
        assert rel(out.float(), ref) < 3e-3


def test_bf16_networks_keep_keypoints_float32_and_skip_autocast(tiny_nets):
    """M, F, S and the keypoint math run in float32 without autocast: keypoints equal float32's; W and G are
    the bfloat16 modules, and the frame is close to float32 eager, not equal to it."""
    from liveportrait.animator import Animator
    from liveportrait.motion.compose import MotionOptions
    from liveportrait.speed.bf16 import Bf16Generator
    from liveportrait.speed.fastnets import FastWarping

    nets = accelerate(tiny_nets, "fast", precision="bf16")
    # W stays the exact float32 rewrite: no part of it met the bound in bfloat16 at a gain
    assert isinstance(nets.W, FastWarping) and isinstance(nets.G, Bf16Generator) and nets.precision == "bf16"
    rng = np.random.default_rng(0)
    img, drv = (rng.integers(0, 255, (256, 256, 3), dtype=np.uint8) for _ in range(2))
    frames, kps = [], []
    for anim in (Animator(tiny_nets, "cpu", "fp32"), Animator(nets, "cpu", "bf16")):
        src = anim.prepare_source(img)
        info = anim.extract_motion(drv)
        x_d = anim.driving_keypoints(src, info.motion, info.motion, MotionOptions())
        kps.append((src.x_s, src.kp_c, x_d, info.x))
        assert src.f_s.dtype == torch.float32
        frames.append(anim.render(src, x_d).numpy())
    for a, b in zip(*kps):
        assert torch.equal(a, b)
    assert 0 < rel(frames[1], frames[0]) < 5e-2


def test_fp32_precision_gives_the_exact_path(tiny_nets):
    from liveportrait.speed.fastnets import FastGenerator, FastWarping

    for precision in ("fp32", "fp16"):
        nets = accelerate(tiny_nets, "fast", precision=precision)
        assert isinstance(nets.W, FastWarping) and isinstance(nets.G, FastGenerator) and nets.precision == "fp32"
    assert accelerate(tiny_nets, "eager", precision="bf16") is tiny_nets  # the Animator's autocast applies


def test_animator_refuses_a_precision_the_networks_do_not_run(tiny_nets):
    from liveportrait.animator import Animator

    with pytest.raises(ValueError, match="bf16"):
        Animator(accelerate(tiny_nets, "fast", precision="bf16"), "cpu", "fp32")


def test_bf16_nan_falls_back_to_the_exact_path(tiny_nets):
    """A non-finite first frame switches the networks to the exact float32 path, with a warning."""
    from liveportrait.animator import Animator
    from liveportrait.motion.compose import MotionOptions

    nets = accelerate(tiny_nets, "fast", precision="bf16")
    real = nets._G

    class Broken(torch.nn.Module):
        def forward(self, x):
            return real(x) * float("nan")
    nets._G = Broken()
    anim = Animator(nets, "cpu", "bf16")
    rng = np.random.default_rng(1)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    src = anim.prepare_source(img)
    x_d = anim.driving_keypoints(src, src.motion, src.motion, MotionOptions())
    with pytest.warns(RuntimeWarning, match="falling back"):
        out = anim.render(src, x_d)
    assert torch.isfinite(out).all() and anim.precision == "fp32"
    exact = Animator(accelerate(tiny_nets, "fast"), "cpu", "fp32")
    assert rel(out, exact.render(src, x_d)) < 1e-6


def test_bf16_batched_frames_equal_single(tiny_nets):
    """Each frame of a batch is computed as if alone: W (float32) to accumulation order, G (bfloat16) exactly
    on the same input. (Between runs of a bfloat16 network any input change, even of 1e-6, re-rounds
    everything downstream: frames then differ at the bfloat16 noise level, so G is compared on equal inputs.)"""
    from liveportrait.speed.onnx_backend import example_inputs

    nets = accelerate(tiny_nets, "fast", precision="bf16")
    torch.manual_seed(2)
    feat, _, kp_s = example_inputs(tiny_nets, 1)["W"]
    kp_d = kp_s + 0.05 * torch.randn(3, 21, 3)
    with torch.inference_mode():
        w_batched = nets.W(feat.expand(3, -1, -1, -1, -1), kp_d, kp_s.expand(3, -1, -1))
        g_batched = nets.G(w_batched.out)
        for i in range(3):
            w_single = nets.W(feat, kp_d[i:i + 1], kp_s)
            for key in ("out", "occlusion_map", "deformation"):
                assert rel(getattr(w_batched, key)[i:i + 1], getattr(w_single, key)) < 1e-5, key
            assert rel(g_batched[i:i + 1], nets.G(w_batched.out[i:i + 1])) < 1e-6
            assert rel(g_batched[i:i + 1], nets.G(w_single.out)) < FIDELITY_REL_L2["bf16"]


# -- full size: the conformance kit's weights, one frame per input -------------------------------------------

@pytest.fixture(scope="module")
def kit(shared_dir, synthetic_weights):
    fixture = np.load(shared_dir / "conformance" / "fixture_s0_d1.npz")
    nets = LivePortraitNetworks.from_pretrained(synthetic_weights, locate=False)
    return fixture, nets, accelerate(nets, "fast", precision="bf16")


@pytest.mark.slow
def test_bf16_conformance_inputs(kit):
    """W and G on the fixture's own inputs, against the reference's outputs (the kit): each network's error
    within FIDELITY_REL_L2["bf16"], the frame within the PSNR bound; and a pipeline frame of the fixture's
    source photo and template motion through the Animator, against the reference's frame."""
    from liveportrait.animator import Animator
    from liveportrait.conformance import template_motion
    from liveportrait.motion.compose import MotionOptions

    fixture, nets, b16 = kit
    with torch.inference_mode():
        w = b16.W(torch.from_numpy(fixture["F_out"]), torch.from_numpy(fixture["W_kp_driving"]),
                  torch.from_numpy(fixture["W_kp_source"]))
        for key in ("out", "occlusion_map", "deformation"):
            assert rel(getattr(w, key), fixture[f"W_{key}"]) <= FIDELITY_REL_L2["bf16"], key
        g = b16.G(torch.from_numpy(fixture["W_out"]))
        assert rel(g, fixture["G_out"]) <= FIDELITY_REL_L2["bf16"]
        assert psnr_u8(g, fixture["G_out"]) >= BOUND
        assert psnr_u8(b16.G(w.out), fixture["G_out"]) >= BOUND
    anim = Animator(b16, "cpu", "bf16")
    src = anim.prepare_source(fixture["source_rgb_256"])
    drv = template_motion({k: fixture[k] for k in fixture.files if k.startswith("template_motion_")})
    x_d = anim.driving_keypoints(src, drv[1:2], drv[0], MotionOptions())
    exact = Animator(nets, "cpu", "fp32")
    src32 = exact.prepare_source(fixture["source_rgb_256"])
    assert torch.equal(src.x_s, src32.x_s) and torch.equal(src.kp_c, src32.kp_c)
    assert torch.equal(x_d, exact.driving_keypoints(src32, drv[1:2], drv[0], MotionOptions()))
    frame = anim.render(src, x_d).numpy()[0]
    ref = fixture["pipe_default_out"][1]
    assert psnr_u8(frame, ref) >= BOUND
    assert rel(frame, ref) > 1e-5  # bfloat16 did run (the exact path is within 1e-6 of the kit)


# Where precision auto picks bf16 (a CPU that computes it natively) every example photo holds the bound: that is
# what users get by default. Elsewhere bf16 is emulated (several times slower) and only run when asked for, so a
# human, a dog and a cat stand for the rest: 19 s a photo on an AVX-512 Xeon without bfloat16.
ALL_PHOTOS = ("s0", "s1", "s5", "s6", "s7", "s9", "s11", "s25", "s39")
PHOTOS = ALL_PHOTOS if cpu_has_native_bf16() else ("s0", "s25", "s39")


@pytest.mark.slow
@pytest.mark.parametrize("photo", PHOTOS)
def test_bf16_frames_of_example_photos(kit, examples_dir, photo):
    """One frame of an example photo driven by the fixture's template motion: keypoints identical to float32
    eager's, the rendered frame within the PSNR bound of float32 eager's."""
    import cv2

    from liveportrait.animator import Animator
    from liveportrait.conformance import template_motion
    from liveportrait.media import read_image
    from liveportrait.motion.compose import MotionOptions

    fixture, nets, b16 = kit
    img = cv2.resize(read_image(examples_dir / "source" / f"{photo}.jpg"), (256, 256), interpolation=cv2.INTER_AREA)
    drv = template_motion({k: fixture[k] for k in fixture.files if k.startswith("template_motion_")})
    out = {}
    for name, anim in (("fp32", Animator(nets, "cpu", "fp32")), ("bf16", Animator(b16, "cpu", "bf16"))):
        src = anim.prepare_source(img)
        x_d = anim.driving_keypoints(src, drv[5:6], drv[0], MotionOptions())
        out[name] = (src.x_s, src.kp_c, x_d, anim.render(src, x_d).numpy()[0])
    for a, b in zip(out["fp32"][:3], out["bf16"][:3]):
        assert torch.equal(a, b)
    frame, ref = out["bf16"][3], out["fp32"][3]
    assert psnr_u8(frame, ref) >= BOUND, psnr_u8(frame, ref)
    assert rel(frame, ref) > 1e-5
