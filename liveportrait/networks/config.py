"""Typed configurations of the five networks.

``ModelConfig.released()`` mirrors the released checkpoints (models.yaml of the reference);
``ModelConfig.tiny()`` keeps every layer of the same architecture with small channel counts so that
pipeline tests and benchmarks of the orchestration run in milliseconds per frame.
The animal release uses the released architecture. The presets are registered by name (``list_models``)
so that a weights folder's ``config.json`` and the command line can name one.
"""

from __future__ import annotations

import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass


@dataclass(frozen=True)
class AppearanceConfig:
    """F: 2-D encoder, reshape to a 3-D volume, 3-D residual blocks."""

    image_channel: int = 3
    block_expansion: int = 64
    num_down_blocks: int = 2
    max_features: int = 512
    reshape_channel: int = 32
    reshape_depth: int = 16
    num_resblocks: int = 6


@dataclass(frozen=True)
class MotionConfig:
    """M: ConvNeXt-V2 backbone with linear heads."""

    num_kp: int = 21
    num_bins: int = 66
    in_chans: int = 3
    depths: tuple[int, ...] = (3, 3, 9, 3)
    dims: tuple[int, ...] = (96, 192, 384, 768)


@dataclass(frozen=True)
class DenseMotionConfig:
    block_expansion: int = 32
    max_features: int = 1024
    num_blocks: int = 5
    reshape_depth: int = 16
    compress: int = 4
    # kernel of the 3-D mask convolution (7 in the release); tiny configs may shrink it
    mask_kernel_size: int = 7


@dataclass(frozen=True)
class WarpingConfig:
    """W: dense motion (3-D hourglass), feature warp, 2-D projection."""

    num_kp: int = 21
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    reshape_channel: int = 32
    estimate_occlusion_map: bool = True
    dense_motion: DenseMotionConfig = field(default_factory=DenseMotionConfig)

    @property
    def out_channels(self) -> int:
        return self.block_expansion * 2**self.num_down_blocks


@dataclass(frozen=True)
class GeneratorConfig:
    """G: SPADE residual decoder with a pixel-shuffle head."""

    upscale: int = 2
    block_expansion: int = 64
    max_features: int = 512
    num_down_blocks: int = 2
    out_channels: int = 64
    spade_hidden: int = 128

    @property
    def input_channels(self) -> int:
        return min(self.max_features, self.block_expansion * 2**self.num_down_blocks)


@dataclass(frozen=True)
class MLPConfig:
    input_size: int
    hidden_sizes: tuple[int, ...]
    output_size: int


@dataclass(frozen=True)
class StitchingConfig:
    """S: the stitching, lip and eye MLPs (input sizes follow from 21 keypoints)."""

    stitching: MLPConfig = MLPConfig(126, (128, 128, 64), 65)
    lip: MLPConfig = MLPConfig(65, (128, 128, 64), 63)
    eye: MLPConfig = MLPConfig(66, (256, 256, 128, 128, 64), 63)


@dataclass(frozen=True)
class ModelConfig:
    appearance: AppearanceConfig = field(default_factory=AppearanceConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    warping: WarpingConfig = field(default_factory=WarpingConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    stitching: StitchingConfig = field(default_factory=StitchingConfig)

    def __post_init__(self) -> None:
        a, w, g = self.appearance, self.warping, self.generator
        if a.max_features != a.reshape_channel * a.reshape_depth:
            raise ValueError("appearance: max_features must equal reshape_channel * reshape_depth")
        if (w.reshape_channel, w.dense_motion.reshape_depth) != (a.reshape_channel, a.reshape_depth):
            raise ValueError("warping must take the appearance volume (reshape_channel, reshape_depth)")
        if w.max_features != a.max_features:
            raise ValueError("warping.max_features must equal the flattened volume channels")
        if w.out_channels != g.input_channels:
            raise ValueError("generator input channels must equal the warping output channels")
        if w.num_kp != self.motion.num_kp:
            raise ValueError("warping and motion must agree on the number of keypoints")

    @classmethod
    def released(cls) -> "ModelConfig":
        return cls()

    @classmethod
    def tiny(cls) -> "ModelConfig":
        """Same layers, tiny widths: for tests and pipeline benchmarks, not for pictures."""
        return cls(
            appearance=AppearanceConfig(block_expansion=8, max_features=16, reshape_channel=8,
                                        reshape_depth=2, num_resblocks=1),
            motion=MotionConfig(depths=(1, 1, 1, 1), dims=(8, 16, 16, 32)),
            warping=WarpingConfig(
                block_expansion=4, max_features=16, reshape_channel=8,
                dense_motion=DenseMotionConfig(block_expansion=4, max_features=16, num_blocks=5,
                                               reshape_depth=2, compress=1, mask_kernel_size=3),
            ),
            generator=GeneratorConfig(block_expansion=4, max_features=512, out_channels=8, spade_hidden=8),
            stitching=StitchingConfig(
                stitching=MLPConfig(126, (16,), 65), lip=MLPConfig(65, (16,), 63), eye=MLPConfig(66, (16,), 63)
            ),
        )

    @classmethod
    def animal(cls) -> "ModelConfig":
        """The animal release (liveportrait_animals): the released architecture, other weights."""
        return cls.released()

    @classmethod
    def named(cls, name: str) -> "ModelConfig":
        if name not in MODEL_CONFIGS:
            raise ValueError(f"unknown model config {name!r}; choose one of {list_models()}")
        return MODEL_CONFIGS[name]()

    def preset_name(self) -> str | None:
        """The first registered name whose configuration this is (released before animal), else None."""
        return next((name for name, make in MODEL_CONFIGS.items() if make() == self), None)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        """The inverse of ``to_dict`` (JSON lists become tuples); absent fields take their defaults, unknown
        fields are a ValueError, so that a config.json from another project is not half understood."""
        return _from_dict(cls, data, "config")


def _from_dict(cls, data, where: str):
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected an object, got {type(data).__name__}")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {', '.join(unknown)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        kind = hints[name]
        if is_dataclass(kind):
            value = _from_dict(kind, value, f"{where}.{name}")
        elif isinstance(value, list):
            value = tuple(value)
        kwargs[name] = value
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None


# name -> factory; the order is the one ``preset_name`` prefers for equal configurations
MODEL_CONFIGS: dict[str, Callable[[], ModelConfig]] = {
    "released": ModelConfig.released,
    "animal": ModelConfig.animal,
    "tiny": ModelConfig.tiny,
}


def register_model(name: str, factory: Callable[[], ModelConfig]) -> None:
    """Add a named configuration (e.g. a fine-tune with other widths) for ``create_model`` and config.json."""
    if name in MODEL_CONFIGS:
        raise ValueError(f"model config {name!r} is already registered")
    MODEL_CONFIGS[name] = factory


def list_models() -> list[str]:
    """The registered configuration names, in registration order."""
    return list(MODEL_CONFIGS)
