"""Frozen networks that losses look through: VGG-19 for the perceptual loss, a face-identity encoder.

Nothing is downloaded.  The user gives the files:

- perceptual ``vgg19``: a VGG-19 state dict with torchvision's key names (``features.0.weight``...,
  e.g. torchvision's ``vgg19-dcbb9e9d.pth``), as .pth (read with ``weights_only=True``) or
  .safetensors.  Only the convolutions up to relu5_1 are used.
- identity ``torchscript``: any face-recognition network saved with ``torch.jit.save`` that maps
  (B, 3, 112, 112) RGB in [-1, 1] to (B, D) embeddings (an ArcFace model, for instance).

``tiny`` builds a small random network of the same interface, for tests; a random ``vgg19`` is
used only when the config allows it (``allow_random``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import InputError
from ..networks.checkpoint import is_refused_pickle, refused_pickle_error
from .config import BackboneConfig

VGG19_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512]
# relu1_1, relu2_1, relu3_1, relu4_1, relu5_1 in torchvision's features indices
VGG19_TAPS = (1, 6, 11, 20, 29)
TINY_LAYOUT = [8, "M", 16, "M", 16, "M", 32, "M", 32]
TINY_TAPS = (1, 4, 7, 10, 13)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def _vgg_features(layout) -> nn.Sequential:
    layers: list[nn.Module] = []
    cin = 3
    for v in layout:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
        else:
            layers += [nn.Conv2d(cin, v, 3, padding=1), nn.ReLU(inplace=False)]
            cin = v
    return nn.Sequential(*layers)


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise InputError(f"backbone weights {path} do not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, corrupt file
        if is_refused_pickle(exc):
            raise refused_pickle_error(path, exc, "state dict") from None
        raise InputError(f"{path}: not a readable state dict ({type(exc).__name__}: {str(exc)[:200]})") from None
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a state dict")
    return obj


class VGGFeatures(nn.Module):
    """Activations at five depths of a VGG-style network; input RGB in [0, 1]."""

    def __init__(self, arch: str = "vgg19"):
        super().__init__()
        if arch == "vgg19":
            layout, self.taps = VGG19_LAYOUT, VGG19_TAPS
        elif arch == "tiny":
            layout, self.taps = TINY_LAYOUT, TINY_TAPS
        else:
            raise InputError(f"perceptual.arch must be vgg19 or tiny, got {arch!r}")
        self.features = _vgg_features(layout)[: self.taps[-1] + 1]
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def load_torchvision(self, path: Path) -> None:
        state = _read_state(path)
        mine = self.features.state_dict()
        wanted = {}
        for k in mine:
            src = f"features.{k}"
            if src not in state:
                raise InputError(f"{path}: no tensor '{src}': expected a torchvision VGG-19 state dict")
            if tuple(state[src].shape) != tuple(mine[k].shape):
                raise InputError(f"{path}: '{src}' has shape {tuple(state[src].shape)}, "
                                 f"expected {tuple(mine[k].shape)}")
            wanted[k] = state[src]
        self.features.load_state_dict(wanted)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)
        out = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in self.taps:
                out.append(x)
        return out


class TinyIdentityEncoder(nn.Module):
    """A random stand-in for a face-recognition network: (B, 3, 112, 112) in [-1, 1] -> (B, 32)."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1), nn.ReLU(), nn.Conv2d(8, 16, 3, 2, 1), nn.ReLU(),
                                 nn.Conv2d(16, dim, 3, 2, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def _freeze(m: nn.Module) -> nn.Module:
    m.eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m


def build_perceptual(cfg: BackboneConfig, seed: int = 0) -> VGGFeatures:
    net = VGGFeatures(cfg.arch)
    if cfg.weights:
        net.load_torchvision(Path(cfg.weights))
    elif cfg.arch == "vgg19" and not cfg.allow_random:
        raise InputError("the perceptual loss needs VGG-19 weights: set [perceptual] weights = FILE (torchvision's "
                         "vgg19-dcbb9e9d.pth or the same keys as safetensors), or turn the perceptual losses off")
    else:
        if cfg.arch == "vgg19":
            warnings.warn("perceptual loss with a randomly initialised VGG-19 (no weights given)", RuntimeWarning,
                          stacklevel=2)
        g = torch.Generator().manual_seed(seed + 7919)
        with torch.no_grad():
            for p in net.parameters():
                p.copy_(torch.randn(p.shape, generator=g) * (2.0 / max(1, p[0].numel())) ** 0.5 if p.ndim > 1
                        else torch.zeros_like(p))
    return _freeze(net)


class IdentityEncoder(nn.Module):
    """Wraps the user's network: crops come in [0, 1], are resized to 112 and scaled to [-1, 1]."""

    def __init__(self, net: nn.Module, size: int = 112):
        super().__init__()
        self.net = net
        self.size = size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        return F.normalize(self.net(x * 2 - 1).float().flatten(1), dim=1)


def build_identity(cfg: BackboneConfig, seed: int = 0) -> IdentityEncoder:
    if cfg.arch == "tiny":
        torch.manual_seed(seed + 104729)
        return _freeze(IdentityEncoder(TinyIdentityEncoder()))
    if cfg.arch != "torchscript":
        raise InputError(f"identity.arch must be torchscript or tiny, got {cfg.arch!r}")
    if not cfg.weights:
        raise InputError("the identity loss needs a face-recognition network: set [identity] weights = FILE "
                         "(saved with torch.jit.save), or set stage1.identity = 0")
    path = Path(cfg.weights)
    if not path.is_file():
        raise InputError(f"identity network {path} does not exist")
    try:
        net = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and friends for non-TorchScript files
        raise InputError(f"{path}: not a TorchScript file ({str(exc).splitlines()[0][:200]})") from None
    return _freeze(IdentityEncoder(net))
