"""Backends: ``accelerate``, ``pick_backend`` and the fidelity bounds (see ``liveportrait.speed``)."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..config import BACKENDS
from .compute import BF16_CPU_FLAGS, cpu_has_native_bf16, pick_backend, resolve_precision  # noqa: F401 - re-exported

# relative L2 error of W's and G's outputs against float32 eager that each backend is held to
FIDELITY_REL_L2 = {"eager": 0.0, "fast": 1e-4, "compile": 1e-4, "onnxruntime": 1e-4, "openvino": 1e-4,
                   "bf16": 2e-2}
# PSNR (dB) of rendered uint8 frames against float32 eager on the example photos; "bf16" is the fast
# backend with precision="bf16" (G in bfloat16, W exact float32: speed/bf16.py), also held on the conformance
# inputs
# "fp16": the GPU's float16 autocast, checked by benchmarks/gpu_check.sh on a lent GPU (not yet measured)
FIDELITY_PSNR_DB = {"fast": 60.0, "onnxruntime": 60.0, "openvino": 60.0, "compile": 60.0, "bf16": 40.0, "fp16": 40.0}


class AcceleratedNetworks(nn.Module):
    """Duck-types ``LivePortraitNetworks`` for the ``Animator``: F, M, W, G, S and ``config``."""

    def __init__(self, networks: nn.Module, backend: str, F=None, M=None, W=None, G=None, precision: str = "fp32"):
        super().__init__()
        self.base = networks
        self.backend = backend
        # the precision W and G compute in by themselves ("bf16": speed/bf16.py); the Animator then runs
        # no autocast, and M, F and S stay float32
        self.precision = precision
        self.config = networks.config
        self._F = networks.F if F is None else F
        self._M = networks.M if M is None else M
        self._W = networks.W if W is None else W
        self._G = networks.G if G is None else G

    @property
    def F(self):
        return self._F

    @property
    def M(self):
        return self._M

    @property
    def W(self):
        return self._W

    @property
    def G(self):
        return self._G

    @property
    def S(self):
        return self.base.S

    # the released attribute names, for code that uses them
    @property
    def appearance_feature_extractor(self):
        return self._F

    @property
    def motion_extractor(self):
        return self._M

    @property
    def warping_module(self):
        return self._W

    @property
    def spade_generator(self):
        return self._G

    @property
    def stitching_retargeting_module(self):
        return self.base.S

    def to(self, *args, **kwargs):
        self.base.to(*args, **kwargs)
        for part in (self._F, self._M, self._W, self._G):
            if isinstance(part, nn.Module) and part is not None:
                part.to(*args, **kwargs)
        return self

    def eval(self):
        self.base.eval()
        return super().eval()

    def exact(self) -> nn.Module:
        """The same networks on the exact float32 path of this backend (the reduced-precision fallback)."""
        if self.precision == "fp32":
            return self
        return accelerate(self.base, self.backend)


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (default: the CPUs this process may run on). Returns it."""
    if threads is None or threads <= 0:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - macOS, Windows
            threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def networks_precision(backend: str, device: str | torch.device, precision: str) -> str:
    """The precision ``accelerate`` builds W and G in themselves: bf16 for the fast backend on the CPU,
    else fp32 (the Animator's autocast applies any other reduced precision)."""
    precision = resolve_precision(precision, device)
    return "bf16" if backend == "fast" and precision == "bf16" and torch.device(device).type == "cpu" else "fp32"


def accelerate(networks: nn.Module, backend: str = "fast", device: str | torch.device = "cpu",
               cache_dir: str | os.PathLike | None = None, precision: str = "fp32", **options) -> nn.Module:
    """``networks`` with W, G and M running on ``backend`` (see the module docstring).

    ``precision="bf16"`` with the fast backend on the CPU: G in bfloat16 (``speed/bf16.py``), W the exact
    float32 rewrite, M, F and S float32; pass the same precision to the ``Animator``. Other precisions and backends give
    the float32 networks (the Animator's autocast applies reduced precision to eager and compile);
    "auto" is resolved with ``resolve_precision``."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    precision = resolve_precision(precision, device)
    networks = networks.to(device).eval()
    if backend == "eager":
        return networks
    if networks_precision(backend, device, precision) == "bf16":
        from .bf16 import W_FLOAT32, Bf16Generator, Bf16Warping
        from .fastnets import FastWarping

        # W: the exact fast rewrite unless bfloat16 parts are asked for (none meets the bound, bf16.W_FLOAT32)
        w_float32 = options.get("w_float32", W_FLOAT32)
        warping = FastWarping(networks.W) if set(w_float32) >= set(W_FLOAT32) else Bf16Warping(networks.W, w_float32)
        generator = Bf16Generator(networks.G, **({"float32": options["g_float32"]} if "g_float32" in options else {}))
        return AcceleratedNetworks(networks, backend, precision="bf16", W=warping, G=generator)
    if backend == "fast":
        from .fastnets import FastGenerator, FastWarping

        return AcceleratedNetworks(networks, backend,
                                   W=FastWarping(networks.W, **_pick(options, "winograd", "fft_mask")),
                                   G=FastGenerator(networks.G, **_pick(options, "winograd")))
    if backend == "compile":
        kwargs = _pick(options, "mode", "dynamic", "fullgraph")
        compile_backend = options.get("compile_backend", "inductor")
        comp = {name: torch.compile(getattr(networks, name), backend=compile_backend, **kwargs)
                for name in ("W", "G", "M")}
        return AcceleratedNetworks(networks, backend, **comp)
    from .onnx_backend import onnx_networks

    return AcceleratedNetworks(networks, backend, **onnx_networks(networks, backend, cache_dir=cache_dir, **options))


def _pick(options: dict, *names: str) -> dict:
    return {k: options[k] for k in names if k in options}


__all__ = ["BACKENDS", "BF16_CPU_FLAGS", "FIDELITY_PSNR_DB", "FIDELITY_REL_L2", "AcceleratedNetworks", "accelerate",
           "cpu_has_native_bf16", "networks_precision", "pick_backend", "resolve_precision", "set_threads"]
