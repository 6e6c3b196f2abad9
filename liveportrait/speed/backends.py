"""Backends: ``accelerate``, ``pick_backend`` and the fidelity bounds (see ``liveportrait.speed``)."""

from __future__ import annotations

import os

import torch
from torch import nn

from ..config import BACKENDS

# relative L2 error of W's and G's outputs against float32 eager that each backend is held to
FIDELITY_REL_L2 = {"eager": 0.0, "fast": 1e-4, "compile": 1e-4, "onnxruntime": 1e-4, "openvino": 1e-4}
# PSNR (dB) of rendered uint8 frames against float32 eager on the example photos
FIDELITY_PSNR_DB = {"fast": 60.0, "onnxruntime": 60.0, "openvino": 60.0, "compile": 60.0}


class AcceleratedNetworks(nn.Module):
    """Duck-types ``LivePortraitNetworks`` for the ``Animator``: F, M, W, G, S and ``config``."""

    def __init__(self, networks: nn.Module, backend: str, F=None, M=None, W=None, G=None):
        super().__init__()
        self.base = networks
        self.backend = backend
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


def set_threads(threads: int | None = None) -> int:
    """Use ``threads`` intra-op threads (default: the CPUs this process may run on). Returns it."""
    if threads is None or threads <= 0:
        try:
            threads = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - macOS, Windows
            threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    return threads


def pick_backend(name: str, device: str, precision: str = "fp32") -> str:
    """auto: the float32 fast rewrites on the CPU; eager kernels on a GPU or for reduced precision."""
    if name != "auto":
        return name
    return "fast" if device == "cpu" and precision == "fp32" else "eager"


def accelerate(networks: nn.Module, backend: str = "fast", device: str | torch.device = "cpu",
               cache_dir: str | os.PathLike | None = None, **options) -> nn.Module:
    """``networks`` with W, G and M running on ``backend`` (see the module docstring)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    networks = networks.to(device).eval()
    if backend == "eager":
        return networks
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

    return onnx_networks(networks, backend, cache_dir=cache_dir, **options)


def _pick(options: dict, *names: str) -> dict:
    return {k: options[k] for k in names if k in options}


__all__ = ["BACKENDS", "FIDELITY_PSNR_DB", "FIDELITY_REL_L2", "AcceleratedNetworks", "accelerate", "pick_backend",
           "set_threads"]
