"""Where and how the networks run: the device, the precision and the backend, decided in one place
for the command line, the web app and the Python API alike."""

from __future__ import annotations

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


def resolve_precision(precision: str, device: str) -> str:
    """auto: float16 on CUDA (with the NaN fallback), float32 elsewhere."""
    if precision != "auto":
        return precision
    return "fp16" if device == "cuda" else "fp32"


def resolve_compute(device: str = "auto", precision: str = "auto", backend: str = "auto") -> Compute:
    """The concrete device, precision and backend for the given choices ("auto" for any of them)."""
    from .backends import pick_backend

    device = pick_device(device)
    precision = resolve_precision(precision, device)
    return Compute(device, precision, pick_backend(backend, device, precision))
