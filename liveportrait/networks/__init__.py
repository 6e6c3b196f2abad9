"""The five LivePortrait networks, their configs (registered by name) and checkpoint handling."""

from .appearance import AppearanceFeatureExtractor
from .config import ModelConfig, list_models, register_model
from .generator import SPADEDecoder
from .models import LivePortraitNetworks, create_model
from .motion import MotionExtractor
from .outputs import MotionOutput, WarpingOutput
from .stitching import StitchingRetargeting
from .warping import WarpingNetwork

__all__ = [
    "AppearanceFeatureExtractor",
    "LivePortraitNetworks",
    "ModelConfig",
    "MotionExtractor",
    "MotionOutput",
    "SPADEDecoder",
    "StitchingRetargeting",
    "WarpingNetwork",
    "WarpingOutput",
    "create_model",
    "list_models",
    "register_model",
]
