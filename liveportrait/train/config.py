"""Typed training configuration: one dataclass per concern, read from TOML or JSON.

A config file holds the top-level keys of ``TrainConfig`` and one table per nested dataclass::

    stage = "stage1"
    model = "released"
    out_dir = "runs/stage1"
    steps = 200000
    batch_size = 4

    [data]
    root = "data/prepared"

    [perceptual]
    weights = "vgg19-dcbb9e9d.pth"

    [stage1]
    gan = 1.0

Unknown keys are errors (a typo must not silently fall back to a default).  ``default_toml`` writes
the full default configuration, which is the best documentation of every key.
"""

from __future__ import annotations

import json
import math
import typing
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from pathlib import Path

import tomli_w

from ..errors import InputError

STAGES = ("stage1", "stage2")
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass
class DataConfig:
    """Where the prepared clips are and how samples are drawn from them."""

    root: str = ""  # folder written by `liveportrait data prepare` (holds manifest.jsonl)
    input_size: int = 256  # side of the network input; targets are the generator's output size
    num_workers: int = 4  # DataLoader worker processes per rank
    max_frame_gap: int = 0  # source and driving frames at most this far apart in a clip (0: anywhere)
    min_identities: int = 2  # stage 2: cross-identity pairs need at least this many identities


@dataclass
class BackboneConfig:
    """A frozen network used by a loss (perceptual VGG-19, identity encoder).

    ``weights`` is a file the user provides; nothing is downloaded.  Without one, a randomly
    initialised network is used only when ``allow_random`` is set (tests, smoke runs).
    """

    arch: str = "vgg19"
    weights: str | None = None
    allow_random: bool = False


@dataclass
class DiscriminatorConfig:
    """Multi-scale patch discriminator, one per region of the cascade."""

    channels: int = 64
    max_channels: int = 512
    num_layers: int = 4
    num_scales: int = 2
    spectral_norm: bool = True


@dataclass
class Stage1Config:
    """Loss weights and options of stage 1 (F, M, W, G from scratch)."""

    # cascaded perceptual loss: whole image (image pyramid), then face, eye and lip regions
    perceptual: float = 1.0
    perceptual_face: float = 1.0
    perceptual_eye: float = 1.0
    perceptual_lip: float = 1.0
    perceptual_layer_weights: list[float] = field(default_factory=lambda: [10.0, 10.0, 10.0, 10.0, 10.0])
    perceptual_scales: list[float] = field(default_factory=lambda: [1.0, 0.5, 0.25, 0.125])
    # cascaded GAN loss (least squares) with feature matching, one discriminator per region
    gan: float = 1.0
    gan_regions: list[str] = field(default_factory=lambda: ["image", "face", "lip"])
    feature_matching: float = 10.0
    # keypoint losses
    equivariance: float = 20.0
    equivariance_sigma: float = 0.05  # spread of the random affine transform
    keypoint_prior: float = 10.0
    keypoint_prior_distance: float = 0.1  # D_t: squared distance below which keypoints repel
    keypoint_prior_depth: float = 0.33  # z_t: target mean depth
    head_pose: float = 20.0  # L1 in radians against the prepared pose targets
    deformation_prior: float = 5.0
    landmark: float = 0.1  # wing loss on a subset of keypoints against 2-D landmarks
    wing_width: float = 10.0
    wing_curvature: float = 2.0
    # (keypoint index, landmark index) pairs for the landmark-guided loss; landmarks are the
    # prepared 478-point mesh, normalised to [-1, 1] in the crop
    landmark_pairs: list[list[int]] = field(default_factory=lambda: [
        [11, 159], [13, 145], [15, 386], [16, 374],  # eye lids
        [6, 61], [12, 291], [14, 13], [17, 14], [19, 0], [20, 17],  # lips
    ])
    identity: float = 0.0  # optional: needs [identity] weights
    l1: float = 0.0  # plain L1 reconstruction (always logged as rec_l1)
    lr_discriminator: float = 2e-4


@dataclass
class Stage2Config:
    """Loss weights and options of stage 2 (stitching and retargeting, base frozen)."""

    stitching: float = 1.0  # L1 outside the (dilated) face region against the source
    stitching_delta: float = 0.01  # keeps the stitching offsets small
    stitching_target: str = "source"  # "source" image, or the base's own "reconstruction" of it
    eye: float = 1.0  # L1 of the eye region against the driving frame
    eye_delta: float = 0.01
    lip: float = 1.0
    lip_delta: float = 0.01
    region_perceptual: float = 0.0  # add a perceptual term on the eye/lip regions (needs [perceptual])
    face_mask_dilation: float = 0.1  # grow the face hull by this fraction of the crop side
    train_stitching: bool = True
    train_eye: bool = True
    train_lip: bool = True


@dataclass
class TrainConfig:
    stage: str = "stage1"
    model: str = "released"  # network widths: "released" or "tiny" (tests)
    out_dir: str = "runs/liveportrait"
    init_weights: str | None = None  # released-layout folder to start from (fine-tuning)
    base_weights: str | None = None  # stage 2: the frozen F, M, W, G (and the S to start from)
    steps: int = 100000  # optimiser steps in all
    batch_size: int = 4  # samples per rank per micro-step
    grad_accum: int = 1  # micro-steps per optimiser step
    lr: float = 2e-4
    betas: list[float] = field(default_factory=lambda: [0.5, 0.999])
    weight_decay: float = 0.0
    warmup_steps: int = 0
    lr_milestones: list[int] = field(default_factory=list)  # multiply the rate by lr_gamma at each
    lr_gamma: float = 0.1
    grad_clip: float = 0.0  # max gradient norm (0: off)
    precision: str = "fp32"  # fp32, bf16 or fp16 (fp16 uses loss scaling)
    seed: int = 0
    deterministic: bool = False  # deterministic kernels (slower on GPUs)
    device: str = "auto"  # auto, cpu, cuda
    backend: str = "auto"  # process-group backend: auto (nccl on GPUs, gloo otherwise), nccl, gloo
    sync_batchnorm: bool = False
    log_every: int = 50
    image_every: int = 1000  # TensorBoard sample images (0: never)
    checkpoint_every: int = 5000
    export_every: int = 5000  # released-format weights under OUT_DIR/weights
    keep_checkpoints: int = 3
    tensorboard: bool = True
    threads: int = 0  # torch CPU threads per rank (0: torch's default)
    data: DataConfig = field(default_factory=DataConfig)
    perceptual: BackboneConfig = field(default_factory=BackboneConfig)
    identity: BackboneConfig = field(default_factory=lambda: BackboneConfig(arch="torchscript"))
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    stage1: Stage1Config = field(default_factory=Stage1Config)
    stage2: Stage2Config = field(default_factory=Stage2Config)

    def validate(self) -> "TrainConfig":
        def need(cond: bool, msg: str) -> None:
            if not cond:
                raise InputError(f"config: {msg}")

        need(self.stage in STAGES, f"stage must be one of {', '.join(STAGES)}, got {self.stage!r}")
        need(self.model in ("released", "tiny"), f"model must be 'released' or 'tiny', got {self.model!r}")
        need(self.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}")
        need(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda, got {self.device!r}")
        need(self.backend in ("auto", "nccl", "gloo"), f"backend must be auto, nccl or gloo, got {self.backend!r}")
        for name in ("steps", "batch_size", "grad_accum", "log_every", "checkpoint_every", "export_every"):
            need(getattr(self, name) >= 1, f"{name} must be at least 1")
        need(self.lr > 0 and math.isfinite(self.lr), "lr must be positive")
        need(len(self.betas) == 2, "betas takes two numbers")
        need(self.data.input_size >= 64 and self.data.input_size % 32 == 0,
             "data.input_size must be a multiple of 32, at least 64")
        need(self.data.num_workers >= 0, "data.num_workers must be >= 0")
        s1 = self.stage1
        need(all(len(p) == 2 for p in s1.landmark_pairs), "stage1.landmark_pairs holds [keypoint, landmark] pairs")
        need(set(s1.gan_regions) <= {"image", "face", "eye", "lip"},
             "stage1.gan_regions may hold image, face, eye and lip")
        need(len(s1.perceptual_scales) >= 1, "stage1.perceptual_scales must not be empty")
        need(self.stage2.stitching_target in ("source", "reconstruction"),
             "stage2.stitching_target must be 'source' or 'reconstruction'")
        if self.stage == "stage2":
            need(bool(self.base_weights), "stage 2 needs base_weights: the folder stage 1 exported "
                                          "(OUT_DIR/weights) or the released weights")
            need(self.stage2.train_stitching or self.stage2.train_eye or self.stage2.train_lip,
                 "stage 2 has nothing to train (train_stitching, train_eye and train_lip are all off)")
        need(bool(self.data.root), "data.root must name a folder written by `liveportrait data prepare`")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


# ---------------------------------------------------------------------------------------------
# reading


def _type_name(tp) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value, tp, where: str):
    """Check ``value`` against the annotation ``tp`` (a small subset of typing), converting ints to
    floats where floats are expected."""
    origin = typing.get_origin(tp)
    if origin is typing.Union or (origin is not None and str(origin) == "<class 'types.UnionType'>"):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, where)
            except InputError as exc:
                errors.append(str(exc))
        raise InputError(errors[0] if errors else f"config: {where}: bad value {value!r}")
    if origin is list:
        (inner,) = typing.get_args(tp) or (typing.Any,)
        if not isinstance(value, (list, tuple)):
            raise InputError(f"config: {where} must be a list, got {value!r}")
        return [_coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
    if tp is typing.Any:
        return value
    if is_dataclass(tp):
        if not isinstance(value, dict):
            raise InputError(f"config: [{where}] must be a table")
        return _from_dict(tp, value, where)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise InputError(f"config: {where} must be a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise InputError(f"config: {where} must be an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise InputError(f"config: {where} must be true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise InputError(f"config: {where} must be a string, got {value!r}")
        return value
    raise InputError(f"config: {where}: unsupported type {_type_name(tp)}")


def _from_dict(cls, data: dict, prefix: str = ""):
    hints = typing.get_type_hints(cls)
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        where = f" in [{prefix}]" if prefix else ""
        raise InputError(f"config: unknown key(s) {', '.join(unknown)}{where}; valid keys: {', '.join(sorted(names))}")
    kwargs = {}
    for name, value in data.items():
        kwargs[name] = _coerce(value, hints[name], f"{prefix}.{name}" if prefix else name)
    return cls(**kwargs)


def config_from_dict(data: dict) -> TrainConfig:
    return _from_dict(TrainConfig, data)


def read_config_file(path: str | Path) -> dict:
    """The raw dict of a .toml or .json file (.yaml too when PyYAML is installed)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"config file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    suffix = path.suffix.lower()
    try:
        if suffix == ".json":
            data = json.loads(text)
        elif suffix in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise InputError(f"{path}: YAML configs need PyYAML (pip install pyyaml); "
                                 "or write the config as TOML or JSON") from None
            data = yaml.safe_load(text) or {}
        else:
            data = _toml_loads(text)
    except InputError:
        raise
    except Exception as exc:  # the parsers raise their own error types
        raise InputError(f"{path}: not a valid {suffix.lstrip('.') or 'toml'} file ({exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: the config must be a table of keys")
    return data


def _toml_loads(text: str) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ModuleNotFoundError:
            raise InputError("TOML configs need Python 3.11+ (or `pip install tomli`); "
                             "or write the config as JSON") from None
    return tomllib.loads(text)


def parse_override(text: str) -> tuple[list[str], object]:
    """``a.b=value`` -> (["a", "b"], value); the value is read as TOML (so 1e-4, true, [1, 2],
    "text"), falling back to a bare string."""
    if "=" not in text:
        raise InputError(f"--set takes KEY=VALUE, got {text!r}")
    key, raw = text.split("=", 1)
    key = key.strip()
    if not key:
        raise InputError(f"--set takes KEY=VALUE, got {text!r}")
    try:
        value = _toml_loads(f"v = {raw.strip()}")["v"]
    except InputError:
        raise
    except Exception:
        value = raw.strip()
    return key.split("."), value


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    for text in overrides or []:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {text}: {part} is not a table")
        node[path[-1]] = value
    return data


def load_config(path: str | Path | None, overrides: list[str] | None = None,
                stage: str | None = None) -> TrainConfig:
    """Read a config file, apply ``--set`` overrides and the stage named on the command line.

    Relative paths in the file (data.root, out_dir, weights) are taken relative to the file's folder.
    """
    data = read_config_file(path) if path else {}
    data = apply_overrides(data, overrides or [])
    if stage is not None:
        if data.get("stage", stage) != stage:
            raise InputError(f"the config is for {data['stage']}, but `train {stage}` was run")
        data["stage"] = stage
    cfg = config_from_dict(data)
    if path:
        _resolve_paths(cfg, Path(path).resolve().parent)
    return cfg.validate()


def _resolve_paths(cfg: TrainConfig, base: Path) -> None:
    def fix(p: str | None) -> str | None:
        if not p:
            return p
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else base / q)

    cfg.out_dir = fix(cfg.out_dir)
    cfg.init_weights = fix(cfg.init_weights)
    cfg.base_weights = fix(cfg.base_weights)
    cfg.data.root = fix(cfg.data.root)
    cfg.perceptual.weights = fix(cfg.perceptual.weights)
    cfg.identity.weights = fix(cfg.identity.weights)


# ---------------------------------------------------------------------------------------------
# writing


def _toml_table(values: dict) -> str:
    """``key = value`` lines written by tomli-w, in order; a key whose value is None is written commented out."""
    return "".join(f'# {k} = "..."\n' if v is None else tomli_w.dumps({k: v}) for k, v in values.items())


def to_toml(cfg: TrainConfig) -> str:
    """The config as TOML (keys whose value is None are written commented out)."""
    top = {f.name: getattr(cfg, f.name) for f in fields(cfg)}
    tables = {k: asdict(v) for k, v in top.items() if is_dataclass(v)}
    text = _toml_table({k: v for k, v in top.items() if k not in tables})
    for name, table in tables.items():
        text += f"\n[{name}]\n" + _toml_table(table)
    return text


def default_toml(stage: str = "stage1") -> str:
    cfg = TrainConfig(stage=stage, out_dir=f"runs/{stage}")
    return to_toml(cfg)
