"""Where and how the networks run: the device, the precision and the backend, decided in one place
for the command line, the web app and the Python API alike."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import InputError


@dataclass(frozen=True)
class Compute:
    device: str  # cpu, cuda, mps
    precision: str  # fp32, fp16, bf16
    backend: str  # one of liveportrait.config.BACKENDS


def pick_device(name: str = "auto") -> str:
    """auto: CUDA, then Apple's Metal, then the CPU; a named device that is not there is an InputError."""
    import torch

    if name == "auto":
        if torch.cuda.is_available():
            return "cuda"
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return "mps"
        return "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda: no CUDA device is available to this PyTorch build")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise InputError("--device mps: Apple's Metal backend is not available")
    return name


# what --precision auto picks, in words (the command line's help and the README say it from here)
AUTO_PRECISION = ("auto: fp16 on CUDA; bf16 on a CPU with native bfloat16 (avx512_bf16 or amx_bf16: G in bfloat16, "
                  "the rest float32); fp32, the exact path, elsewhere")

# /proc/cpuinfo flags of CPUs with bfloat16 arithmetic (Intel from Cooper Lake and Sapphire Rapids, AMD Zen 4 on)
BF16_CPU_FLAGS = frozenset({"amx_bf16", "avx512_bf16"})
# whether the CPU bfloat16 path (speed/bf16.py) meets its fidelity bound, FIDELITY_PSNR_DB["bf16"]: what
# tests/speed/test_bf16.py enforces on the example photos and the conformance inputs. False: auto stays fp32.
BF16_MEETS_BOUND = True


def cpu_info(cpuinfo: str | os.PathLike | None = None) -> tuple[str | None, frozenset[str]]:
    """(model name, flags) of the first CPU in ``/proc/cpuinfo``; ``cpuinfo``: another file of that format, or
    its text. (None, no flags) where there is no such file (macOS, Windows) or no such lines."""
    if isinstance(cpuinfo, str) and "\n" in cpuinfo:
        text = cpuinfo
    else:
        try:
            with open(cpuinfo or "/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                text = fh.read()
        except OSError:
            return None, frozenset()
    model, flags = None, None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name" and model is None:
            model = value.strip()
        elif key.strip() == "flags" and flags is None:
            flags = frozenset(value.split())
    return model, flags or frozenset()


def cpu_has_native_bf16(cpuinfo: str | os.PathLike | None = None) -> bool:
    """Whether the CPU computes bfloat16 natively: ``amx_bf16`` or ``avx512_bf16`` among the flags in
    ``/proc/cpuinfo`` (flags, not a timing: a timing changes with the load); False without them or the file."""
    return bool(BF16_CPU_FLAGS & cpu_info(cpuinfo)[1])


def resolve_precision(precision: str, device: str = "cpu", cpuinfo: str | os.PathLike | None = None) -> str:
    """auto: fp16 on CUDA (the Animator falls back to fp32 on NaN/Inf); bf16 on a CPU that computes it
    natively when that path meets its bound (W float32, G in bfloat16; M, F, S and the keypoints float32);
    else fp32, the exact path. Anything else is returned as given."""
    if precision != "auto":
        return precision
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return "fp16"
    if (kind == "cpu" and BF16_MEETS_BOUND and torch.backends.mkldnn.is_available()
            and cpu_has_native_bf16(cpuinfo)):
        return "bf16"
    return "fp32"


def resolve_compute(device: str = "auto", precision: str = "auto", backend: str = "auto") -> Compute:
    """The concrete device, precision and backend for the given choices ("auto" for any of them)."""
    from ..config import check_compute

    check_compute(device, precision, backend)
    device = pick_device(device)
    precision = resolve_precision(precision, device)
    return Compute(device, precision, pick_backend(backend, device, precision))


def pick_backend(name: str, device: str, precision: str = "fp32") -> str:
    """auto: the fast rewrites on the CPU in float32 or bfloat16 (``accelerate(..., precision="bf16")``);
    eager kernels on a GPU, or on the CPU in fp16. ``precision`` "auto" is resolved first."""
    if name != "auto":
        return name
    import torch

    precision = resolve_precision(precision, device)
    return "fast" if torch.device(device).type == "cpu" and precision in ("fp32", "bf16") else "eager"
