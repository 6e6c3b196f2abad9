"""One precision rule (speed/compute.py) for the command line, the Python API and ``accelerate``; and the
CPU-testable parts of benchmarks/gpu_check.sh."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.speed import compute

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    return LivePortraitNetworks(ModelConfig.tiny()).eval()


@pytest.fixture
def native_bf16(monkeypatch):
    """Pretend the CPU's flags say (or do not say) native bfloat16."""
    def set_flags(native: bool):
        monkeypatch.setattr(compute, "cpu_has_native_bf16", lambda cpuinfo=None: native)
    return set_flags


def test_one_resolve_precision():
    from liveportrait.speed import backends

    assert backends.resolve_precision is compute.resolve_precision
    assert backends.cpu_has_native_bf16 is compute.cpu_has_native_bf16


@pytest.mark.parametrize("native, meets, asked, expected", [
    (True, True, "auto", "bf16"), (False, True, "auto", "fp32"), (True, False, "auto", "fp32"),
    (True, True, "fp32", "fp32"), (False, True, "bf16", "bf16")])
def test_api_gets_the_precision_rule(tiny_nets, native_bf16, monkeypatch, native, meets, asked, expected):
    """``LivePortraitPipeline(precision="auto")``: bf16 only with native flags and a path that meets its
    bound; fp32 always exact; the networks are built for the precision the Animator will be given."""
    from liveportrait.api import LivePortraitPipeline
    from liveportrait.speed.bf16 import Bf16Generator
    from liveportrait.speed.fastnets import FastGenerator, FastWarping

    native_bf16(native)
    monkeypatch.setattr(compute, "BF16_MEETS_BOUND", meets)
    pipe = LivePortraitPipeline(tiny_nets, device="cpu", precision=asked, tune_memory=False)
    assert (pipe.compute.device, pipe.compute.precision, pipe.compute.backend) == ("cpu", expected, "fast")
    assert pipe.networks.precision == expected
    assert isinstance(pipe.networks.G, Bf16Generator if expected == "bf16" else FastGenerator)
    assert isinstance(pipe.networks.W, FastWarping)  # W stays exact float32 in both


def test_api_reaccelerates_networks_built_for_another_precision(tiny_nets, native_bf16):
    from liveportrait.api import LivePortraitPipeline
    from liveportrait.speed import accelerate

    native_bf16(True)
    fp32_nets = accelerate(tiny_nets, "fast")
    pipe = LivePortraitPipeline(fp32_nets, device="cpu", precision="auto", tune_memory=False)
    assert pipe.networks is not fp32_nets and pipe.networks.precision == "bf16"
    assert LivePortraitPipeline(fp32_nets, device="cpu", precision="fp32", tune_memory=False).networks is fp32_nets


@pytest.mark.parametrize("native, expected", [(True, "bf16"), (False, "fp32")])
def test_animate_resolves_auto_by_the_same_rule(native_bf16, native, expected):
    from liveportrait.cli import build_parser
    from liveportrait.commands.animate import config_from_args

    native_bf16(native)
    args = build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4"])
    config = config_from_args(args, "cpu")
    assert (config.precision, config.backend) == (expected, "fast")
    args = build_parser().parse_args(["animate", "-s", "a.jpg", "-d", "b.mp4", "--precision", "fp32"])
    assert config_from_args(args, "cpu").precision == "fp32"


def _gpu_check(**env):
    run_env = {**os.environ, "GPU_CHECK_DEVICE": "cpu", "GPU_CHECK_CONFIG": "tiny", "GPU_CHECK_SKIP_INSTALL": "1",
               "GPU_CHECK_COMPILE": "0", "GPU_CHECK_PATHS": "eager fp32", "GPU_CHECK_FRAMES": "1",
               "VIRTUAL_ENV": str(Path(sys.executable).parent.parent), **env}
    run_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{run_env.get('PATH', '')}"
    return subprocess.run(["bash", str(REPO / "benchmarks" / "gpu_check.sh")], cwd=REPO, env=run_env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_gpu_check_script_on_the_cpu():
    """The script's checks and tables on a CPU with tiny networks: the fp16 bound passes at its real value,
    fails (exit 1, named) at an impossible one, and the timing table has M, W and G at batch 1 and 8."""
    ok = _gpu_check()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "PASS fp16 bound" in ok.stdout and "PASS fp16 without fallback" in ok.stdout
    rows = [ln for ln in ok.stdout.splitlines() if ln.startswith("| eager fp32 |")]
    assert [r.split("|")[2].strip() for r in rows] == ["1", "8"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert all(float(c) > 0 for c in cells[2:]), row
    bad = _gpu_check(GPU_CHECK_FP16_DB="200")
    assert bad.returncode == 1 and "FAIL fp16 bound" in bad.stdout and "FAILED: fp16 bound" in bad.stdout
