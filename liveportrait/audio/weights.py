"""Finding and reading the JoyVASA audio-driving files (audio-driving-spec section 2).

Layout of an audio weights folder (the released ``pretrained_weights/``)::

    JoyVASA/motion_generator/motion_generator_hubert_chinese.pt   {'args': Namespace, 'model': ..., 'iter': int}
    JoyVASA/motion_template/motion_template.pkl                   dict of 45 float32 arrays
    TencentGameMate:chinese-hubert-base/ (or chinese-hubert-base/) Hugging Face HubertModel folder

Nothing here unpickles freely: the checkpoint goes through the project's ``weights_only`` reader with exactly
``argparse.Namespace`` and ``pathlib.PosixPath`` admitted besides tensors, the template through the NumPy-only
``RestrictedUnpickler``.
"""

from __future__ import annotations

import argparse
import os
import pathlib
from dataclasses import dataclass
from pathlib import Path

import torch

from ..errors import WeightsError
from ..networks.checkpoint import _torch_load, default_cache_dir, first_complete, search_path

ENV_AUDIO_WEIGHTS = "LIVEPORTRAIT_AUDIO_WEIGHTS"
MOTION_GENERATOR_NAME = "motion_generator_hubert_chinese.pt"
HUBERT_FOLDERS = ("TencentGameMate:chinese-hubert-base", "chinese-hubert-base")
JOYVASA_REPO_ID = "jdh-algo/JoyVASA"
HUBERT_REPO_ID = "TencentGameMate/chinese-hubert-base"
JOYVASA_FILES = ("motion_generator/" + MOTION_GENERATOR_NAME, "motion_template/motion_template.pkl")
HUBERT_FILES = ("config.json", "preprocessor_config.json", "pytorch_model.bin")
HUB_NOTE = ("the JoyVASA files (jdh-algo/JoyVASA: motion_generator/ and motion_template/) and the HuBERT encoder "
            "(TencentGameMate/chinese-hubert-base)")


@dataclass(frozen=True)
class AudioWeightsLayout:
    """The three things an audio weights folder provides."""

    root: Path
    motion_generator: Path | None
    motion_template: Path | None
    hubert_dir: Path | None

    def missing(self) -> list[str]:
        named = {"JoyVASA/motion_generator/" + MOTION_GENERATOR_NAME: self.motion_generator,
                 "JoyVASA/motion_template/motion_template.pkl": self.motion_template,
                 HUBERT_FOLDERS[0] + "/config.json": self.hubert_dir}
        return [name for name, p in named.items() if p is None]


def _motion_generator_file(folder: Path) -> Path | None:
    """The released name, else the only .pt there (the README's tree calls it iter_0020000.pt)."""
    if (folder / MOTION_GENERATOR_NAME).is_file():
        return folder / MOTION_GENERATOR_NAME
    found = sorted(folder.glob("*.pt")) if folder.is_dir() else []
    return found[0] if len(found) == 1 else None


def resolve_audio_layout(root: str | os.PathLike) -> AudioWeightsLayout:
    """Accepts ``pretrained_weights/`` (holding ``JoyVASA/``) or the ``JoyVASA/`` folder itself."""
    root = Path(root).expanduser()
    base = root.parent if (root / "motion_generator").is_dir() and not (root / "JoyVASA").is_dir() else root
    joy = base / "JoyVASA"
    template = joy / "motion_template" / "motion_template.pkl"
    hubert = next((base / h for h in HUBERT_FOLDERS if (base / h / "config.json").is_file()), None)
    return AudioWeightsLayout(root=base, motion_generator=_motion_generator_file(joy / "motion_generator"),
                              motion_template=template if template.is_file() else None, hubert_dir=hubert)


def default_audio_cache_dir() -> Path:
    """Inside the LivePortrait weights' per-user cache folder (moved with it by $LIVEPORTRAIT_CACHE)."""
    return default_cache_dir() / "audio"


def audio_weights_search_path(explicit: str | os.PathLike | None = None) -> list[tuple[str, Path]]:
    """Where audio weights are looked for, in order: ``--audio-weights``, the environment, the user cache."""
    return search_path("--audio-weights", explicit, ENV_AUDIO_WEIGHTS, default_audio_cache_dir())


def missing_audio_weights_message(where: Path, missing: list[str]) -> str:
    return (f"audio weights not found in {where} (missing: {', '.join(missing)}). Run `liveportrait download "
            f"--audio` on a machine with internet access, or fetch {HUB_NOTE} into that folder, or pass "
            f"--audio-weights DIR / set {ENV_AUDIO_WEIGHTS}.")


def locate_audio_weights(explicit: str | os.PathLike | None = None) -> AudioWeightsLayout:
    """The first complete audio weights folder; an explicitly named incomplete one is an error, not skipped."""
    return first_complete(audio_weights_search_path(explicit), resolve_audio_layout, missing_audio_weights_message)


def hubert_folder_name() -> str:
    """The HuBERT folder's name on this system: the reference's, whose ':' Windows does not allow there."""
    return HUBERT_FOLDERS[1] if os.name == "nt" else HUBERT_FOLDERS[0]


def audio_hub_downloads(dest: Path) -> list[tuple[str, list[str], Path]]:
    """(repository, files, local folder) of each fetch: the JoyVASA repository's files go under ``JoyVASA/``
    and HuBERT's into its own folder, which is the layout ``resolve_audio_layout`` reads."""
    return [(JOYVASA_REPO_ID, list(JOYVASA_FILES), dest / "JoyVASA"),
            (HUBERT_REPO_ID, list(HUBERT_FILES), dest / hubert_folder_name())]


def download_audio_weights(dest: str | os.PathLike | None = None) -> AudioWeightsLayout:
    """Fetch the JoyVASA motion generator and template and the HuBERT encoder into ``dest`` (the audio cache
    by default), with progress bars; files already there are not fetched again."""
    dest = Path(dest).expanduser() if dest else default_audio_cache_dir()
    try:
        from huggingface_hub import snapshot_download
    except ImportError:  # pragma: no cover - a declared dependency
        raise WeightsError("huggingface_hub is not installed: pip install huggingface_hub") from None
    from ..files import remove_new_folders_on_error

    with remove_new_folders_on_error(dest, contents=True):  # a failed first download leaves no folder
        dest.mkdir(parents=True, exist_ok=True)
        for repo, files, folder in audio_hub_downloads(dest):
            try:
                snapshot_download(repo_id=repo, allow_patterns=files, local_dir=str(folder))
            except Exception as exc:  # the hub raises many types (offline, HTTP, DNS); all mean "could not fetch"
                missing = resolve_audio_layout(dest).missing() or [str(dest)]
                raise WeightsError(f"could not download {repo} from the Hugging Face Hub ({type(exc).__name__}). "
                                   + missing_audio_weights_message(dest, missing)) from None
    layout = resolve_audio_layout(dest)
    if layout.missing():
        raise WeightsError(missing_audio_weights_message(dest, layout.missing()))
    return layout


# ---------------------------------------------------------------------------------------------------
# reading


class StoredArgs:
    """train.py's Namespace as stored: a missing field reads as None, as the reference's wrapper does."""

    def __init__(self, fields: dict):
        self.fields = dict(fields)

    def __getattr__(self, name: str):
        if name == "fields":
            raise AttributeError(name)
        return self.fields.get(name)


def _checkpoint_globals() -> list:
    # PurePosixPath stands in for PosixPath so that a file written on Linux also loads on Windows
    return [argparse.Namespace, (pathlib.PurePosixPath, "pathlib.PosixPath")]


def read_motion_generator(path: str | os.PathLike) -> tuple[StoredArgs, dict[str, torch.Tensor]]:
    """(args, state dict) of a JoyVASA motion-generator checkpoint, read without unpickling code."""
    path = Path(path)
    if not hasattr(torch.serialization, "safe_globals"):
        raise WeightsError(f"{path}: reading JoyVASA checkpoints needs torch >= 2.6 (found {torch.__version__})")
    with torch.serialization.safe_globals(_checkpoint_globals()):
        obj = _torch_load(path)
    if not isinstance(obj, dict) or not isinstance(obj.get("model"), dict):
        raise WeightsError(f"{path}: not a JoyVASA motion generator (expected a dict with 'args' and 'model')")
    args = obj.get("args")
    fields = vars(args) if isinstance(args, argparse.Namespace) else args if isinstance(args, dict) else None
    if fields is None:
        raise WeightsError(f"{path}: the checkpoint stores no training arguments ('args'), so its sizes are unknown")
    state = obj["model"]
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"{path}: 'model' is not a mapping of names to tensors")
    return StoredArgs(fields), dict(state)


def read_motion_template(path: str | os.PathLike) -> dict:
    """The normalisation statistics (``mean_exp``, ``min_scale`` ...), as float32 arrays."""
    import numpy as np

    from ..media.template import safe_pickle_load

    obj = safe_pickle_load(path)
    if not isinstance(obj, dict):
        raise WeightsError(f"{path}: not a JoyVASA motion template (expected a dict of arrays)")
    ranged = ("scale", "t", "pitch", "yaw", "roll")
    need = ["mean_exp", "std_exp"] + [f"{s}_{q}" for q in ranged for s in ("min", "max")]
    missing = [k for k in need if k not in obj]
    if missing:
        raise WeightsError(f"{path}: motion template lacks {', '.join(missing)}")
    return {k: np.asarray(v, np.float32) for k, v in obj.items()}
