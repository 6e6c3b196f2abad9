"""The five networks together, built from one ``ModelConfig`` or a registered name (``create_model``), loaded
from and saved to weights folders (``from_pretrained`` / ``save_pretrained``)."""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..errors import WeightsError
from .appearance import AppearanceFeatureExtractor
from .checkpoint import (
    MODULES,
    WeightsLayout,
    infer_config,
    layout_config,
    load_module,
    locate_weights,
    read_model_config,
    resolve_layout,
    write_safetensors,
)
from .config import ModelConfig, list_models
from .generator import SPADEDecoder
from .motion import MotionExtractor
from .stitching import StitchingRetargeting
from .warping import WarpingNetwork


class LivePortraitNetworks(nn.Module):
    """F, M, W, G and S; attribute names match the released checkpoint file names."""

    # how these networks compute: the eager float32 modules; an accelerated stand-in (speed.accelerate) says its
    # own backend and the precision W and G compute in by themselves, and the Animator reads both from here
    backend: str = "eager"
    precision: str = "fp32"

    def __init__(self, config: ModelConfig | None = None, name: str | None = None):
        super().__init__()
        self.config = config or ModelConfig.released()
        # the registry name written to config.json; the first preset with this configuration when not given
        self.model_name = name or self.config.preset_name()
        self.appearance_feature_extractor = AppearanceFeatureExtractor(self.config.appearance)
        self.motion_extractor = MotionExtractor(self.config.motion)
        self.warping_module = WarpingNetwork(self.config.warping)
        self.spade_generator = SPADEDecoder(self.config.generator)
        self.stitching_retargeting_module = StitchingRetargeting(self.config.stitching)
        self.eval()

    # short aliases used by the pipeline
    @property
    def F(self) -> AppearanceFeatureExtractor:
        return self.appearance_feature_extractor

    @property
    def M(self) -> MotionExtractor:
        return self.motion_extractor

    @property
    def W(self) -> WarpingNetwork:
        return self.warping_module

    @property
    def G(self) -> SPADEDecoder:
        return self.spade_generator

    @property
    def S(self) -> StitchingRetargeting:
        return self.stitching_retargeting_module

    @classmethod
    def from_config(cls, config: ModelConfig | str) -> "LivePortraitNetworks":
        """Networks with fresh (random) weights for a configuration or a registered name (``list_models()``)."""
        if isinstance(config, str):
            return cls(ModelConfig.named(config), name=config)
        return cls(config)

    def save_pretrained(self, folder: str | os.PathLike, base_name: str = "base_models") -> list[Path]:
        """Write the weights as safetensors in the released layout (``base_name/`` and ``retargeting_models/``)
        with ``base_name/config.json``, so that ``from_pretrained(folder)`` rebuilds exactly this architecture.
        Returns the files written."""
        states = {name: (None, getattr(self, name).state_dict()) for name in MODULES}
        return write_safetensors(states, folder, base_name, self.config, self.model_name)

    def load_layout(self, layout: WeightsLayout, assign: bool = False) -> "LivePortraitNetworks":
        """Every module's weights from ``layout``; ``assign`` takes the loaded tensors as the parameters
        (for networks built on the meta device: nothing allocated twice, nothing initialised in vain)."""
        for name in MODULES:
            path = layout.file(name)
            if path is None:
                raise FileNotFoundError(layout.stem(name))
            load_module(getattr(self, name), path, name, assign=assign)
        return self.eval()

    @classmethod
    def from_pretrained(cls, weights: str | os.PathLike | None = None, config: ModelConfig | str | None = None,
                        animal: bool = False, locate: bool = True, download: bool = True,
                        quiet: bool = False, announce: bool = False) -> "LivePortraitNetworks":
        """The one loader: a weights folder (released layout, .pth or .safetensors) or the Hub's.

        ``weights``: a folder, the Hub repository id ``KwaiVGI/LivePortrait`` (downloaded into the user
        cache once), or None for the search path (``$LIVEPORTRAIT_WEIGHTS``, then the user cache,
        downloading there when nothing is found and ``download`` is on). With ``locate`` off,
        ``weights`` is taken as the folder as is. Offline, the error says what to copy where.
        ``config``: a ModelConfig or a registered name (``list_models()``); None reads the folder's config.json
        (written by ``save_pretrained`` and ``liveportrait convert``), or, for folders without one (the released
        .pth), picks the preset whose widths the files have.
        ``announce``: say on stderr which folder is being loaded, once it is found (the command line's first line).
        """
        import sys

        from .checkpoint import HUB_REPO_ID, download_weights

        if str(weights) == HUB_REPO_ID:
            weights = None
        if not locate:
            layout = resolve_layout(weights, animal)
        else:
            try:
                layout = locate_weights(weights, animal)
            except WeightsError:
                if weights or not download:
                    raise
                if not quiet:
                    print("LivePortrait weights not found: downloading them (once) ...", file=sys.stderr)
                layout = download_weights(animal=animal)
        if announce:
            print(f"loading networks from {layout.base_dir.parent} ...", file=sys.stderr, flush=True)
        described = None
        if isinstance(config, str):
            name, config = config, ModelConfig.named(config)
        elif config is None:
            described = read_model_config(layout)
            name, config = described or layout_config(layout)
        else:
            name = None
        if name is None and layout.animal and config == ModelConfig.named("animal"):
            name = "animal"
        # built on the meta device: no random initialisation, no spectral-norm SVDs and no allocation that the
        # checkpoint would overwrite; the loaded tensors become the parameters
        with torch.device("meta"):
            nets = cls(config, name=name)
        try:
            return nets.load_layout(layout, assign=True)
        except WeightsError as exc:
            if described is None:
                raise
            raise WeightsError(f"{layout.config_file} describes the {described[0] or 'unnamed'!r} architecture, "
                               f"which the weights do not have: {exc}") from None


def create_model(name: str | ModelConfig = "released") -> LivePortraitNetworks:
    """timm-style constructor: networks with fresh weights for a registered name or a configuration."""
    return LivePortraitNetworks.from_config(name)


__all__ = ["LivePortraitNetworks", "create_model", "infer_config", "list_models"]
