"""The five networks together, built from one ``ModelConfig``."""

from __future__ import annotations

import os

import torch
from torch import nn

from .appearance import AppearanceFeatureExtractor
from .checkpoint import MODULES, WeightsLayout, load_module, locate_weights, resolve_layout
from .config import ModelConfig
from .generator import SPADEDecoder
from .motion import MotionExtractor
from .stitching import StitchingRetargeting
from .warping import WarpingNetwork


class LivePortraitNetworks(nn.Module):
    """F, M, W, G and S; attribute names match the released checkpoint file names."""

    def __init__(self, config: ModelConfig | None = None):
        super().__init__()
        self.config = config or ModelConfig.released()
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
        ``config``: a ModelConfig or a preset's name; None picks the preset whose widths the files have.
        ``announce``: say on stderr which folder is being loaded, once it is found (the command line's first line).
        """
        import sys

        from ..errors import WeightsError
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
        if isinstance(config, str):
            config = ModelConfig.named(config)
        if config is None:
            config = infer_config(layout)
        # built on the meta device: no random initialisation, no spectral-norm SVDs and no allocation that the
        # checkpoint would overwrite; the loaded tensors become the parameters
        with torch.device("meta"):
            nets = cls(config)
        return nets.load_layout(layout, assign=True)


def infer_config(layout: WeightsLayout) -> ModelConfig:
    """The named preset whose appearance extractor's first layer has the width stored in ``layout``."""
    from .checkpoint import read_state_dict

    path = layout.file("appearance_feature_extractor")
    width = read_state_dict(path, "appearance_feature_extractor")["first.conv.weight"].shape[0]
    for name in ("released", "tiny"):
        config = ModelConfig.named(name)
        if config.appearance.block_expansion == width:
            return config
    return ModelConfig.released()  # loading then names the mismatching tensors
