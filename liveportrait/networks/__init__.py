"""The five LivePortrait networks, their configs and checkpoint handling."""

from .appearance import AppearanceFeatureExtractor
from .config import ModelConfig
from .generator import SPADEDecoder
from .models import LivePortraitNetworks
from .motion import MotionExtractor
from .stitching import StitchingRetargeting
from .warping import WarpingNetwork

__all__ = [
    "AppearanceFeatureExtractor",
    "LivePortraitNetworks",
    "ModelConfig",
    "MotionExtractor",
    "SPADEDecoder",
    "StitchingRetargeting",
    "WarpingNetwork",
]
