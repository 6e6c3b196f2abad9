"""The compiled Winograd tile transforms and the allocator setting."""

from __future__ import annotations

import platform
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F

from liveportrait.speed import kernels
from liveportrait.speed.winograd import transform_kernel, transform_kernel3d, winograd_conv
from tests.conftest import requires

needs_numba = requires(kernels.AVAILABLE, "numba is not installed (a dependency of liveportrait: pip install numba)")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a - b).norm() / b.norm())


@needs_numba
@pytest.mark.parametrize("shape", [(2, 24, 16, 16), (1, 24, 21, 9), (1, 24, 4, 30)])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("strip", [1, 7, 256])
def test_compiled_transforms_match_the_convolution_2d(shape, bias, strip):
    torch.manual_seed(0)
    w = torch.randn(40, shape[1], 3, 3, dtype=torch.float64) / 10
    b = torch.randn(40, dtype=torch.float64) if bias else None
    x = torch.randn(*shape, dtype=torch.float64)
    ref = F.conv2d(x, w, b, padding=1)
    u = transform_kernel(w, 4).float()[None]
    with torch.inference_mode():
        fast = winograd_conv(x.float(), u, None if b is None else b.float(), 4, strip, compiled=True)
        plain = winograd_conv(x.float(), u, None if b is None else b.float(), 4, strip, compiled=False)
    assert fast.shape == ref.shape
    assert rel(fast.double(), ref) < 1e-5
    assert rel(fast, plain) < 1e-5


@needs_numba
def test_compiled_transforms_match_the_convolution_3d():
    torch.manual_seed(1)
    conv = torch.nn.Conv3d(12, 20, 3, padding=1).double()
    x = torch.randn(2, 12, 5, 17, 12, dtype=torch.float64)
    u = transform_kernel3d(conv.weight.detach(), 4).float()
    with torch.inference_mode():
        ref = conv(x)
        fast = winograd_conv(x.float(), u, conv.bias.float(), 4, 5, compiled=True)
    assert rel(fast.double(), ref) < 1e-5


@needs_numba
def test_compiled_transforms_are_the_default_for_float32_on_the_cpu(monkeypatch):
    calls = []
    real = kernels.run_split
    monkeypatch.setattr(kernels, "run_split", lambda *a: calls.append(a[0]) or real(*a))
    w = torch.randn(8, 8, 3, 3, dtype=torch.float64)
    x = torch.randn(1, 8, 16, 16, dtype=torch.float64)
    with torch.inference_mode():
        winograd_conv(x, transform_kernel(w, 4)[None], None)  # float64: the PyTorch transforms
        winograd_conv(x.float(), transform_kernel(w, 4).float()[None], None, compiled=False)
        assert not calls
        winograd_conv(x.float(), transform_kernel(w, 4).float()[None], None)
    assert calls == [kernels.input_transform, kernels.output_transform]


def test_split_covers_every_plane_once():
    seen = []
    kernels.run_split(lambda tag, start, stop: seen.append((tag, start, stop)), 37, "t")
    covered = sorted(i for _, a, b in seen for i in range(a, b))
    assert covered == list(range(37))


@pytest.mark.ci_may_skip
@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc",
                    reason="glibc malloc settings")
def test_tuned_allocator_keeps_freed_large_blocks():
    """After a 256 MB temporary is freed, the default returns its pages to the kernel (the next
    one faults them in again); the tuned allocator keeps them for the next frame."""
    script = textwrap.dedent("""
        import numpy as np
        from liveportrait.speed.allocator import tune_allocator

        def rss_mb():
            with open("/proc/self/statm") as fh:
                return int(fh.read().split()[1]) * 4096 / 2**20

        tuned = tune_allocator()
        before = rss_mb()
        block = np.ones(64 * 2**20, dtype=np.float32)
        del block
        print(tuned, round(rss_mb() - before))
    """)
    out = {}
    for setting in ("tuned", "default"):
        env = {"LIVEPORTRAIT_ALLOCATOR": setting, "PATH": "/usr/bin:/bin"}
        res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
        tuned, kept = res.stdout.split()
        out[setting] = (tuned == "True", int(kept))
    assert out["tuned"][0] and not out["default"][0]  # glibc (checked above): the setting must take
    assert out["default"][1] < 50
    assert out["tuned"][1] > 200


@needs_numba
def test_concurrent_convolutions_from_several_threads_agree():
    """The app renders for several users at once: the shared helper threads must not mix their work."""
    from concurrent.futures import ThreadPoolExecutor

    torch.manual_seed(2)
    w = torch.randn(48, 32, 3, 3, dtype=torch.float64) / 10
    u = transform_kernel(w, 4).float()[None]
    xs = [torch.randn(1, 32, 24, 20) for _ in range(6)]
    refs = [F.conv2d(x.double(), w, padding=1) for x in xs]

    def run(i):
        with torch.inference_mode():
            return winograd_conv(xs[i], u, None, 4, 3, compiled=True)

    with ThreadPoolExecutor(3) as pool:
        outs = list(pool.map(run, range(6)))
    assert all(rel(o.double(), r) < 1e-5 for o, r in zip(outs, refs))


@needs_numba
@pytest.mark.parametrize("scale", [2, 4])
@pytest.mark.parametrize("slope, with_beta", [(0.2, True), (1.0, False)])
def test_modulation_of_an_upsampled_map(scale, slope, with_beta):
    """SPADE's act(up(n) * (1 + gamma) + beta) in one pass equals the upsample-then-multiply form."""
    from liveportrait.speed.fastnets import _scale_upsampled

    torch.manual_seed(3)
    n = torch.randn(2, 6, 5, 7)
    gb = torch.randn(2, 12, 5 * scale, 7 * scale)
    up = F.interpolate(n, scale_factor=scale)
    want = up * gb[:, :6] + (gb[:, 6:] if with_beta else 0)
    want = F.leaky_relu(want, slope)
    with torch.inference_mode():
        got = _scale_upsampled(n, gb.clone(), scale, slope, with_beta)
    assert torch.allclose(got, want, atol=1e-6)


def test_the_fast_path_works_without_numba():
    """A broken or missing numba leaves the PyTorch transforms: same results, no import error."""
    script = textwrap.dedent("""
        import sys
        sys.modules["numba"] = None  # import numba -> ImportError
        import torch
        import torch.nn.functional as F
        from liveportrait.networks import LivePortraitNetworks, ModelConfig
        from liveportrait.speed import kernels
        from liveportrait.speed.fastnets import FastGenerator
        assert not kernels.AVAILABLE
        torch.manual_seed(0)
        nets = LivePortraitNetworks(ModelConfig.tiny()).eval()
        x = torch.randn(1, nets.G.config.input_channels, 16, 16)
        from liveportrait.speed.winograd import transform_kernel, winograd_conv
        w = torch.randn(64, 64, 3, 3) / 20
        y = torch.randn(1, 64, 20, 20)
        with torch.inference_mode():
            a, b = FastGenerator(nets.G)(x), nets.G(x)
            c, d = winograd_conv(y, transform_kernel(w.double(), 4).float()[None], None), F.conv2d(y, w, padding=1)
        print(float((a - b).norm() / b.norm()), float((c - d).norm() / d.norm()))
    """)
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    generator_error, conv_error = map(float, res.stdout.split()[-2:])
    assert generator_error < 1e-4 and conv_error < 1e-5
