"""Speed: faster backends for the networks (exact rewrites, bfloat16, compiled, ONNX runtimes).

``accelerate(networks, backend)`` returns an object that the ``Animator`` (and so the ``Pipeline``)
accepts in place of ``LivePortraitNetworks``: same attribute names and call signatures, with W, G
and M replaced by a faster implementation of the same function.

Backends (each has a fidelity bound against float32 eager, enforced in tests/speed):

=============  ===========================================================================  ===========
backend        what runs W, G, M                                                            bound
=============  ===========================================================================  ===========
eager          the plain PyTorch modules                                                    (reference)
fast           exact rewrites in PyTorch: Winograd F(4,3), per-phase convolutions on        rel. L2 1e-4
               upsampled maps, fused SPADE convolutions, folded norms, FFT mask head
compile        ``torch.compile`` of the eager modules (GPU; slow to compile on a small CPU)  rel. L2 1e-4
onnxruntime    exported ONNX graphs (opset 20, W's 5-D GridSample included) in ONNX Runtime  rel. L2 1e-4
openvino       the same ONNX graphs compiled by OpenVINO (telemetry off)                    rel. L2 1e-4
fast + bf16    the default on CPUs with native bfloat16 (avx512_bf16, amx_bf16): G's        frames 40 dB
               convolutions in bfloat16 (its first one, the norms and the residual stream    PSNR
               float32, ``bf16.py``), W the exact rewrite, M, F and S float32
=============  ===========================================================================  ===========
"""

from __future__ import annotations

from .._lazy import lazy_exports
from ..config import BACKENDS  # torch-free

# names served lazily, so that importing liveportrait.speed.allocator (which the CLI does before
# any work) does not import torch
_EXPORTS = {
    "backends": ("AcceleratedNetworks", "FIDELITY_PSNR_DB", "FIDELITY_REL_L2", "accelerate", "pick_backend",
                 "set_threads"),
}
__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)
__all__ += ["BACKENDS"]

