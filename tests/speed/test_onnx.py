"""ONNX export of every network (W's 5-D GridSample included), checked in ONNX Runtime and OpenVINO."""

from __future__ import annotations

import dataclasses
import importlib.util
import subprocess
import sys

import numpy as np
import pytest
import torch

from liveportrait.networks import LivePortraitNetworks, ModelConfig, MotionOutput, WarpingOutput
from liveportrait.speed import FIDELITY_REL_L2, accelerate
from tests.conftest import require_module, requires

ONNX_HOW = "pip install -e '.[onnx]'"
pytestmark = requires(all(importlib.util.find_spec(m) for m in ("onnx", "onnxruntime")),
                      f"onnx and onnxruntime are not installed ({ONNX_HOW})")


def rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-30))


@pytest.fixture(scope="module")
def tiny_nets():
    torch.manual_seed(0)
    return LivePortraitNetworks(ModelConfig.tiny()).eval()


@pytest.fixture(scope="module")
def exported(tiny_nets, tmp_path_factory):
    from liveportrait.speed.onnx_backend import export_onnx

    return export_onnx(tiny_nets, tmp_path_factory.mktemp("onnx"))


def test_every_network_exports_and_matches_pytorch(tiny_nets, exported):
    import onnx
    import onnxruntime as ort

    from liveportrait.speed.onnx_backend import GRAPHS, _module, example_inputs

    assert set(exported) == set(GRAPHS)
    w_graph = onnx.load(str(exported["W"]))
    assert w_graph.opset_import[0].version >= 20
    assert sum(n.op_type == "GridSample" for n in w_graph.graph.node) == 2  # both 5-D samplings
    # the graphs' outputs keep the released names, which are the typed outputs' fields
    assert [o.name for o in w_graph.graph.output] == ["out", "occlusion_map", "deformation"]
    assert [o.name for o in w_graph.graph.output] == [f.name for f in dataclasses.fields(WarpingOutput)]
    m_outputs = [o.name for o in onnx.load(str(exported["M"])).graph.output]
    assert m_outputs == ["pitch", "yaw", "roll", "t", "exp", "scale", "kp"]
    assert m_outputs == [f.name for f in dataclasses.fields(MotionOutput)]
    for batch in (1, 2):  # the batch axis is dynamic
        inputs = example_inputs(tiny_nets, batch)
        for name, path in exported.items():
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            feed = {i.name: t.numpy() for i, t in zip(sess.get_inputs(), inputs[name])}
            ours = sess.run(None, feed)
            with torch.inference_mode():
                ref = _module(tiny_nets, name).eval()(*inputs[name])
            ref = ref if isinstance(ref, tuple) else (ref,)
            for a, b in zip(ours, ref):
                assert rel(a, b.numpy()) <= FIDELITY_REL_L2["onnxruntime"], (name, batch)
    assert not tiny_nets.training and not any(m.training for m in tiny_nets.modules())


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_runtime_backend_renders_like_eager(tiny_nets, runtime, tmp_path):
    if runtime == "openvino":
        require_module("openvino", "pip install -e '.[openvino]'")
    from liveportrait.animator import Animator
    from liveportrait.motion.compose import MotionOptions

    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)
    outs = []
    for backend in ("eager", runtime):
        anim = Animator(accelerate(tiny_nets, backend, cache_dir=tmp_path), "cpu", "fp32")
        src = anim.prepare_source(img)
        info = anim.extract_motion(img)
        x_d = anim.driving_keypoints(src, info.motion, info.motion, MotionOptions())
        outs.append(anim.render(src, x_d.expand(2, -1, -1)).numpy())
        with torch.inference_mode():  # the runtime's wrappers return the modules' typed outputs
            assert isinstance(anim.networks.M(torch.rand(1, 3, 256, 256)), MotionOutput)
            assert isinstance(anim.networks.W(src.f_s, x_d, src.x_s), WarpingOutput)
    assert rel(outs[1], outs[0]) <= FIDELITY_REL_L2[runtime]
    # the second build finds the cached graphs
    before = sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.onnx"))
    accelerate(tiny_nets, runtime, cache_dir=tmp_path)
    assert sorted(p.stat().st_mtime_ns for p in tmp_path.rglob("*.onnx")) == before


SIGNAL_AFTER_OPENVINO = r"""
import faulthandler, gc, os, signal, sys
import torch
from liveportrait.speed.onnx_backend import _Session
faulthandler.enable()  # like pytest: an alternate signal stack is installed
path = sys.argv[1]
torch.onnx.export(torch.nn.Conv2d(3, 4, 3), (torch.randn(1, 3, 8, 8),), path, dynamo=False)
# sessions made and freed out of order, as a run that builds backends more than once does
a, b = _Session(path, "openvino"), _Session(path, "openvino")
del a
gc.collect()
c = _Session(path, "openvino")
del b
gc.collect()
del c
gc.collect()
hits = []
signal.signal(signal.SIGUSR1, lambda *a: hits.append(1))
os.kill(os.getpid(), signal.SIGUSR1)
print("handled", len(hits))
"""


def test_openvino_leaves_the_signal_stack_usable(tmp_path):
    """OpenVINO sessions made and freed out of order, then a Python signal: the process must survive (it crashed
    with SIGSEGV on a dangling alternate signal stack before `keep_signal_stack`)."""
    require_module("openvino", "pip install -e '.[openvino]'")
    proc = subprocess.run([sys.executable, "-c", SIGNAL_AFTER_OPENVINO, str(tmp_path / "conv.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert "handled 1" in proc.stdout
