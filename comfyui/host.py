"""What the node pack takes from ComfyUI, each piece only when ComfyUI is there.

Looked up at call time, never at import: importing the pack works without ComfyUI (and without
torch), and a test can put stand-in modules in place before it calls a node.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

MODEL_FOLDER = "liveportrait"  # ComfyUI's models/liveportrait


def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def folder_paths():
    return _module("folder_paths")


def register_model_folder() -> None:
    """models/liveportrait as a ComfyUI model folder (weights in the released hub layout or ours)."""
    fp = folder_paths()
    if fp is None or not hasattr(fp, "add_model_folder_path"):
        return
    models = getattr(fp, "models_dir", None)
    if models:
        fp.add_model_folder_path(MODEL_FOLDER, os.path.join(models, MODEL_FOLDER))


def model_folders() -> list[Path]:
    """The folders registered as models/liveportrait that exist (none without ComfyUI)."""
    fp = folder_paths()
    if fp is None:
        return []
    try:
        folders = fp.get_folder_paths(MODEL_FOLDER)
    except Exception:  # noqa: BLE001 - not registered in this ComfyUI
        return []
    return [Path(f) for f in folders if Path(f).is_dir()]


def input_directory() -> Path | None:
    fp = folder_paths()
    return Path(fp.get_input_directory()) if fp is not None and hasattr(fp, "get_input_directory") else None


def output_directory() -> Path:
    fp = folder_paths()
    if fp is not None and hasattr(fp, "get_output_directory"):
        return Path(fp.get_output_directory())
    return Path.cwd() / "output"


def torch_device() -> str:
    """The device ComfyUI runs models on, as the library names devices ("auto" without ComfyUI)."""
    mm = _module("comfy.model_management")
    if mm is None or not hasattr(mm, "get_torch_device"):
        return "auto"
    kind = getattr(mm.get_torch_device(), "type", str(mm.get_torch_device()))
    return kind if kind in ("cpu", "cuda", "mps") else "auto"


def check_interrupt() -> None:
    """ComfyUI's cancel button: raises its InterruptProcessingException when the user cancelled."""
    mm = _module("comfy.model_management")
    if mm is not None and hasattr(mm, "throw_exception_if_processing_interrupted"):
        mm.throw_exception_if_processing_interrupted()


class Progress:
    """ComfyUI's progress bar for ``total`` steps (nothing without ComfyUI); checks for a cancel at every step."""

    def __init__(self, total: int):
        utils = _module("comfy.utils")
        self.bar = utils.ProgressBar(max(int(total), 1)) if utils is not None and hasattr(utils, "ProgressBar") \
            else None

    def step(self) -> None:
        check_interrupt()
        if self.bar is not None:
            self.bar.update(1)
