"""Finding, reading, checking and converting the released checkpoints.

Released layout (the Hugging Face repository KwaiVGI/LivePortrait)::

    liveportrait/base_models/{appearance_feature_extractor,motion_extractor,warping_module,spade_generator}.pth
    liveportrait/retargeting_models/stitching_retargeting_module.pth   (sub-dicts retarget_shoulder,
                                                                        retarget_mouth, retarget_eye; keys
                                                                        prefixed 'module.')
    liveportrait_animals/base_models_v1.1/*.pth                         (animal F, M, W, G; S is the human one)
    liveportrait_animals/base_models/*.pth                              (the first animal release, read when
                                                                        v1.1 is absent)

Every file is read without executing pickled code (``weights_only=True``) or from safetensors, which
``convert_to_safetensors`` and ``LivePortraitNetworks.save_pretrained`` write in the same layout (``.safetensors``
instead of ``.pth``), with a ``config.json`` beside the base models naming the architecture, so that loading
need not guess it from tensor widths.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import sys
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import platformdirs
import torch
from torch import nn

from ..errors import UnsafeFileError, WeightsError
from .config import ModelConfig, list_models

HUB_REPO_ID = "KwaiVGI/LivePortrait"
ENV_WEIGHTS = "LIVEPORTRAIT_WEIGHTS"
ENV_CACHE = "LIVEPORTRAIT_CACHE"

BASE_MODULES = ("appearance_feature_extractor", "motion_extractor", "warping_module", "spade_generator")
STITCHING_MODULE = "stitching_retargeting_module"
MODULES = (*BASE_MODULES, STITCHING_MODULE)
# released sub-dict name -> attribute of StitchingRetargeting
S_SUBDICTS = {"retarget_shoulder": "stitching", "retarget_mouth": "lip", "retarget_eye": "eye"}
EXTENSIONS = (".safetensors", ".pth")
ANIMAL_VERSION = "_v1.1"
ANIMAL_V1_0 = "base_models"  # the first animal release (2024), before _v1.1
CONFIG_FILE = "config.json"  # beside the base models: {"format": CONFIG_FORMAT, "name": ..., "config": {...}}
CONFIG_FORMAT = "liveportrait"


@dataclass(frozen=True)
class WeightsLayout:
    """Where each module's file lies (without extension) for one weights folder."""

    base_dir: Path
    retargeting_dir: Path
    animal: bool = False

    @property
    def config_file(self) -> Path:
        """Where a self-describing folder names its architecture (the released folders have none)."""
        return self.base_dir / CONFIG_FILE

    def stem(self, module: str) -> Path:
        folder = self.retargeting_dir if module == STITCHING_MODULE else self.base_dir
        return folder / module

    def file(self, module: str) -> Path | None:
        """The existing file for ``module``, safetensors preferred; None when absent."""
        for ext in EXTENSIONS:
            p = self.stem(module).with_suffix(ext)
            if p.is_file():
                return p
        return None

    def missing(self) -> list[Path]:
        return [self.stem(m).with_suffix(".pth") for m in MODULES if self.file(m) is None]


def resolve_layout(root: str | os.PathLike, animal: bool = False) -> WeightsLayout:
    """Accepts the hub root (``pretrained_weights/``), its ``liveportrait/`` folder, or a folder that
    directly holds ``base_models/``. For animals, F/M/W/G come from ``base_models_v1.1`` (the release since
    2025-01-01), else from the first animal release's ``base_models`` (same architecture); S is the human one."""
    root = Path(root).expanduser()
    human_candidates = [root, root / "liveportrait", root.parent / "liveportrait"]
    human = next((c for c in human_candidates if (c / "retargeting_models").is_dir() or (c / "base_models").is_dir()),
                 root / "liveportrait" if (root / "liveportrait").exists() else root)
    if not animal:
        return WeightsLayout(human / "base_models", human / "retargeting_models")
    return WeightsLayout(_animal_base_dir(root), human / "retargeting_models", animal=True)


def _animal_base_dir(root: Path) -> Path:
    """The newest complete animal release under ``root`` (the hub root or its ``liveportrait_animals/``);
    where none is complete, the newest one's folder, so that the message names what to fetch."""
    folders = [root / "liveportrait_animals"] + ([root] if root.name == "liveportrait_animals" else [])
    folders += [root] if (root / f"base_models{ANIMAL_VERSION}").is_dir() else []
    releases = [f / name for f in folders for name in (f"base_models{ANIMAL_VERSION}", ANIMAL_V1_0)]
    complete = [d for d in releases if all(WeightsLayout(d, d).file(m) is not None for m in BASE_MODULES)]
    return complete[0] if complete else folders[-1] / f"base_models{ANIMAL_VERSION}"


def user_cache_root() -> Path:
    """liveportrait's per-user cache folder, from platformdirs: on Linux ``$XDG_CACHE_HOME/liveportrait`` or
    ``~/.cache/liveportrait``. On macOS and Windows a folder already at that Linux place is kept (weights
    downloaded there before do not move); otherwise the system's own cache folder."""
    native = Path(platformdirs.user_cache_dir("liveportrait", appauthor=False)).expanduser()
    if sys.platform.startswith("linux"):
        return native
    xdg = os.environ.get("XDG_CACHE_HOME", "").strip()
    legacy = (Path(xdg).expanduser() if xdg else Path.home() / ".cache") / "liveportrait"
    return legacy if legacy.is_dir() else native


def default_cache_dir() -> Path:
    """The released weights' folder: ``$LIVEPORTRAIT_CACHE`` itself, else inside the user cache folder."""
    if os.environ.get(ENV_CACHE):
        return Path(os.environ[ENV_CACHE]).expanduser()
    return user_cache_root() / HUB_REPO_ID.replace("/", "--")


def search_path(flag: str, explicit: str | os.PathLike | None, variable: str, cache: Path) -> list[tuple[str, Path]]:
    """Where a kind of weights is looked for, in order: the command line's ``flag``, the environment's
    ``variable``, the user cache; each as (where it came from, folder)."""
    given = [(flag, explicit), (f"${variable}", os.environ.get(variable))]
    return [(origin, Path(p).expanduser()) for origin, p in given if p] + [("cache", cache)]


def first_complete(path: list[tuple[str, Path]], resolve, message):
    """The layout (``resolve(folder)``, with ``missing()``) of the first complete folder along ``path``, or a
    WeightsError with ``message(folder, missing)``. A folder the user named (flag or environment) must be
    complete: falling through to the cache would hide the user's mistake."""
    for origin, root in path:
        layout = resolve(root)
        missing = layout.missing()
        if not missing:
            return layout
        if origin != "cache":
            raise WeightsError(message(root, missing))
    cache = path[-1][1]
    raise WeightsError(message(cache, resolve(cache).missing()))


def weights_search_path(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where weights are looked for, in order: ``--weights``, the environment, the user cache."""
    return search_path("--weights", explicit, ENV_WEIGHTS, default_cache_dir())


def missing_weights_message(where: Path, missing: list[Path], animal: bool = False) -> str:
    rel = [str(p.relative_to(where)) if p.is_relative_to(where) else str(p) for p in missing]
    files = ", ".join(rel)
    return (
        f"LivePortrait weights not found in {where} (missing: {files}). "
        f"Run `liveportrait download{' --animal' if animal else ''}` on a machine with internet access, or fetch "
        f"the folder 'liveportrait/'{' and liveportrait_animals/' if animal else ''} of the Hugging Face repository "
        f"{HUB_REPO_ID} (https://huggingface.co/{HUB_REPO_ID}) and put it in {where}, "
        f"or pass --weights DIR / set {ENV_WEIGHTS}."
    )


def locate_weights(explicit: str | os.PathLike | None = None, animal: bool = False) -> WeightsLayout:
    """The first complete weights folder of the search path; a ``WeightsError`` that says what to fetch otherwise."""
    return first_complete(weights_search_path(explicit), lambda root: resolve_layout(root, animal),
                          lambda root, missing: missing_weights_message(root, missing, animal))


# ---------------------------------------------------------------------------------------------------
# reading


_PICKLED_GLOBAL = re.compile(r"GLOBAL ([A-Za-z_][\w.]*)")


def is_refused_pickle(exc: BaseException) -> bool:
    """Whether ``exc`` is ``torch.load(weights_only=True)`` refusing a pickle that holds more than tensors."""
    return isinstance(exc, pickle.UnpicklingError) or "weights_only" in str(exc)


def refused_pickle_error(path: str | os.PathLike, exc: BaseException, what: str = "checkpoint") -> UnsafeFileError:
    """One line for a pickle that ``weights_only=True`` refused: the file and what it holds.

    Torch's own message advises re-running with the unsafe setting; it is never shown. The refused
    global (e.g. ``posix.system``) is named when torch's message gives it.
    """
    found = _PICKLED_GLOBAL.search(str(exc))
    holds = (f"a pickled reference to the Python global {found.group(1)}" if found
             else "pickled Python objects other than tensors")
    return UnsafeFileError(
        f"{path}: refused to load this {what}: it holds {holds}, which could run code when loaded; "
        f"only plain tensors are read (use the released weights from `liveportrait download`, or safetensors)"
    )


def _torch_load(path: Path):
    try:
        with warnings.catch_warnings():  # legacy pickles: torch warns about their protocol before refusing them
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            try:
                return torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            except RuntimeError as exc:  # legacy (non-zip) serialisation cannot be memory-mapped
                if "mmap" not in str(exc) or is_refused_pickle(exc):
                    raise
                return torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as exc:
        if is_refused_pickle(exc):
            raise refused_pickle_error(path, exc) from None
        raise WeightsError(f"{path}: not a readable checkpoint ({type(exc).__name__}: {str(exc)[:200]})") from None


def _safetensors_load(path: Path) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise WeightsError(f"{path}: not a readable safetensors file ({exc})") from None


def _as_tensor_dict(obj, path: Path, what: str) -> dict[str, torch.Tensor]:
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise WeightsError(f"{path}: expected {what} to be a mapping of names to tensors")
    return dict(obj)


def read_state_dict(path: str | os.PathLike, module: str) -> dict[str, torch.Tensor]:
    """One module's state dict in this project's key names.

    For the stitching file, the three released sub-dicts are flattened to ``stitching.*``, ``lip.*`` and
    ``eye.*`` and every ``module.`` (from DataParallel) is removed, as the reference does.
    """
    path = Path(path)
    if path.suffix == ".safetensors":
        return _safetensors_load(path)
    obj = _torch_load(path)
    if module != STITCHING_MODULE:
        return _as_tensor_dict(obj, path, "the checkpoint")
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: expected a dict with {', '.join(S_SUBDICTS)}")
    out = {}
    for released, ours in S_SUBDICTS.items():
        if released not in obj:
            raise WeightsError(f"{path}: missing sub-dict '{released}' (the {ours} network)")
        for k, v in _as_tensor_dict(obj[released], path, f"'{released}'").items():
            out[f"{ours}.{k.replace('module.', '')}"] = v
    return out


def check_state_dict(module: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict comparison of names and shapes, naming every offending tensor."""
    expected = module.state_dict()
    problems = []
    for k, v in expected.items():
        if k not in state:
            problems.append(f"missing tensor '{k}' {tuple(v.shape)}")
        elif tuple(state[k].shape) != tuple(v.shape):
            problems.append(f"tensor '{k}' has shape {tuple(state[k].shape)}, expected {tuple(v.shape)}")
    problems += [f"unexpected tensor '{k}'" for k in state if k not in expected]
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise WeightsError(f"{source}: does not match the network: {shown}")


def load_module(module: nn.Module, path: str | os.PathLike, name: str, assign: bool = False) -> nn.Module:
    """Load one module's file into ``module`` (names and shapes checked first). With ``assign`` the file's
    tensors (in the module's dtypes) become the module's parameters and buffers instead of being copied in."""
    state = read_state_dict(path, name)
    check_state_dict(module, state, str(path))
    if assign:
        expected = module.state_dict()
        state = {k: v.to(expected[k].dtype) for k, v in state.items()}
    module.load_state_dict(state, strict=True, assign=assign)
    return module


# ---------------------------------------------------------------------------------------------------
# the architecture of a folder


def read_model_config(layout: WeightsLayout) -> tuple[str | None, ModelConfig] | None:
    """The registry name and configuration that ``layout``'s config.json gives; None when it has none.

    The stored configuration is authoritative; a name alone (no "config") picks the registered preset."""
    path = layout.config_file
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WeightsError(f"{path}: not a readable config.json ({exc})") from None
    if not isinstance(data, dict) or data.get("format") != CONFIG_FORMAT:
        raise WeightsError(f'{path}: not a liveportrait model config (expected "format": "{CONFIG_FORMAT}")')
    name = data.get("name")
    try:
        if "config" in data:
            config = ModelConfig.from_dict(data["config"])
        elif isinstance(name, str):
            config = ModelConfig.named(name)
        else:
            raise ValueError('it has neither a "config" nor a registered "name"')
    except ValueError as exc:
        raise WeightsError(f"{path}: {exc}") from None
    return (name if isinstance(name, str) else None), config


def model_config_json(config: ModelConfig, name: str | None) -> str:
    """The text of a config.json: the whole configuration, and the registry name it was made from."""
    return json.dumps({"format": CONFIG_FORMAT, "name": name, "config": config.to_dict()}, indent=2) + "\n"


def infer_config(layout: WeightsLayout) -> ModelConfig:
    """For folders without config.json (the released .pth): the registered preset whose appearance extractor's
    first layer has the width stored in ``layout``."""
    path = layout.file("appearance_feature_extractor")
    width = read_state_dict(path, "appearance_feature_extractor")["first.conv.weight"].shape[0]
    for name in list_models():
        config = ModelConfig.named(name)
        if config.appearance.block_expansion == width:
            return config
    return ModelConfig.released()  # loading then names the mismatching tensors


def layout_config(layout: WeightsLayout) -> tuple[str | None, ModelConfig]:
    """The name and configuration of ``layout``: its config.json, else inferred from the tensors."""
    found = read_model_config(layout)
    if found is not None:
        return found
    config = infer_config(layout)
    name = "animal" if layout.animal and config == ModelConfig.named("animal") else config.preset_name()
    return name, config


# ---------------------------------------------------------------------------------------------------
# writing and conversion


def released_state(module: str, state: dict[str, torch.Tensor]) -> dict:
    """Our key names -> what the released file holds (S: three sub-dicts with 'module.' prefixes)."""
    if module != STITCHING_MODULE:
        return state
    out: dict[str, dict] = {}
    for released, ours in S_SUBDICTS.items():
        prefix = f"{ours}."
        out[released] = {f"module.{k[len(prefix):]}": v for k, v in state.items() if k.startswith(prefix)}
    return out


def save_released(networks: nn.Module, out_root: str | os.PathLike, base_name: str = "base_models") -> WeightsLayout:
    """Write ``networks`` (anything with the five module attributes) as released-format ``.pth`` files,
    so that checkpoints trained here load anywhere the released ones do."""
    out_root = Path(out_root)
    layout = WeightsLayout(out_root / base_name, out_root / "retargeting_models")
    for module in MODULES:
        state = {k: v.detach().cpu().clone() for k, v in getattr(networks, module).state_dict().items()}
        dst = layout.stem(module).with_suffix(".pth")
        dst.parent.mkdir(parents=True, exist_ok=True)
        tmp = dst.with_name(dst.name + ".partial")
        torch.save(released_state(module, state), tmp)
        os.replace(tmp, dst)
    return layout


def convert_to_safetensors(layout: WeightsLayout, out_root: str | os.PathLike) -> list[Path]:
    """Write every module of ``layout`` as safetensors under ``out_root`` in the same folder layout, and the
    config.json that names its architecture (the source's own, else the preset its tensor widths match).

    All modules are read (and refused, if one would run code) before anything is written; a failure
    while writing removes what this call wrote, so the output is all five modules and config.json or nothing new."""
    states = {}
    for module in MODULES:
        src = layout.file(module)
        if src is None:
            raise WeightsError(f"cannot convert: {layout.stem(module)}.pth is missing")
        states[module] = (src.name, read_state_dict(src, module))
    name, config = layout_config(layout)
    return write_safetensors(states, out_root, layout.base_dir.name, config, name)


def write_safetensors(states: dict[str, tuple[str | None, dict[str, torch.Tensor]]], out_root: str | os.PathLike,
                      base_name: str, config: ModelConfig, name: str | None) -> list[Path]:
    """``states`` (module -> (source file name or None, state dict in our key names)) as safetensors in the
    released folder layout under ``out_root``, then ``base_name/config.json``; all of it or nothing new."""
    from safetensors.torch import save_file

    from ..files import check_folder_writable, discard, make_folder, remove_new_folders_on_error

    out_root = Path(out_root)
    files = []
    for module in MODULES:
        source, state = states[module]
        state = {k: v.detach().cpu().contiguous().clone() for k, v in state.items()}
        metadata = {"format": "pt"} | ({"source": source} if source else {})
        sub = "retargeting_models" if module == STITCHING_MODULE else base_name
        files.append((out_root / sub / f"{module}.safetensors", lambda tmp, s=state, m=metadata: save_file(
            s, str(tmp), metadata=m)))
    text = model_config_json(config, name)
    files.append((out_root / base_name / CONFIG_FILE, lambda tmp: tmp.write_text(text, encoding="utf-8")))
    check_folder_writable(out_root)
    written: list[Path] = []
    with remove_new_folders_on_error(*(dst for dst, _ in files)):
        try:
            for dst, write in files:
                make_folder(dst.parent)
                tmp = dst.with_name(f".{dst.name}.part")
                try:
                    write(tmp)
                    os.replace(tmp, dst)
                finally:
                    discard(tmp)
                written.append(dst)
        except BaseException:
            for dst in written:
                discard(dst)
            raise
    return written


# ---------------------------------------------------------------------------------------------------
# download


def hub_patterns(animal: bool = False) -> list[str]:
    pats = [f"liveportrait/base_models/{m}.pth" for m in BASE_MODULES]
    pats.append(f"liveportrait/retargeting_models/{STITCHING_MODULE}.pth")
    if animal:
        pats += [f"liveportrait_animals/base_models{ANIMAL_VERSION}/{m}.pth" for m in BASE_MODULES]
    return pats


def download_weights(dest: str | os.PathLike | None = None, animal: bool = False) -> WeightsLayout:
    """Fetch the released checkpoints into ``dest`` (the user cache by default) with progress bars."""
    from ..files import remove_new_folders_on_error

    dest = Path(dest).expanduser() if dest else default_cache_dir()
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise WeightsError("huggingface_hub is not installed: pip install huggingface_hub") from None
    try:
        with remove_new_folders_on_error(dest, contents=True):  # a failed first download leaves no folder
            dest.mkdir(parents=True, exist_ok=True)
            snapshot_download(repo_id=HUB_REPO_ID, allow_patterns=hub_patterns(animal), local_dir=str(dest))
    except Exception as exc:  # the hub raises many types (offline, HTTP, DNS); all mean "could not fetch"
        layout = resolve_layout(dest, animal)
        raise WeightsError(
            f"could not download from the Hugging Face Hub ({type(exc).__name__}). "
            + missing_weights_message(dest, layout.missing() or [dest], animal)
        ) from None
    layout = resolve_layout(dest, animal)
    if layout.missing():
        raise WeightsError(missing_weights_message(dest, layout.missing(), animal))
    return layout
