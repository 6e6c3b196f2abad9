"""Training checkpoints (to resume exactly) and released-format exports (to animate with).

A training checkpoint is one ``torch.save`` file of plain containers and tensors (so it loads with
``weights_only=True``): step, stage, config, every module's state dict (the networks, the
discriminators), every optimiser's and loss scaler's state.  Sampling and in-step randomness are
functions of (seed, step), so no RNG state is needed to continue bit for bit.

Layout under OUT_DIR::

    checkpoints/step_00001000.pt ... latest.txt     (training state; the newest ``keep`` are kept)
    weights/base_models/*.pth, weights/retargeting_models/stitching_retargeting_module.pth
                                                   (released layout: `liveportrait animate --weights OUT_DIR/weights`)
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch

from ..errors import InputError
from ..networks import LivePortraitNetworks
from ..networks.checkpoint import CONFIG_FILE, is_refused_pickle, model_config_json, refused_pickle_error, save_released

FORMAT = "liveportrait-train/1"
CHECKPOINTS, WEIGHTS, LATEST = "checkpoints", "weights", "latest.txt"
_NAME = re.compile(r"^step_(\d+)\.pt$")


def checkpoint_path(out_dir: str | Path, step: int) -> Path:
    return Path(out_dir) / CHECKPOINTS / f"step_{step:08d}.pt"


def save_checkpoint(out_dir: str | Path, step: int, state: dict, keep: int = 3) -> Path:
    """Write atomically, point latest.txt at it, drop all but the newest ``keep``."""
    path = checkpoint_path(out_dir, step)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    torch.save({"format": FORMAT, "step": int(step), **state}, tmp)
    os.replace(tmp, path)
    latest = path.parent / LATEST
    tmp_latest = latest.with_name(LATEST + ".partial")
    tmp_latest.write_text(path.name + "\n", encoding="utf-8")
    os.replace(tmp_latest, latest)
    if keep > 0:
        for old in list_checkpoints(out_dir)[:-keep]:
            old.unlink(missing_ok=True)
    return path


def list_checkpoints(out_dir: str | Path) -> list[Path]:
    folder = Path(out_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return [p for _, p in sorted(found)]


def latest_checkpoint(out_dir: str | Path) -> Path | None:
    folder = Path(out_dir) / CHECKPOINTS
    pointer = folder / LATEST
    if pointer.is_file():
        p = folder / pointer.read_text(encoding="utf-8").strip()
        if p.is_file():
            return p
    found = list_checkpoints(out_dir)
    return found[-1] if found else None


def load_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # unpickling refused, truncated file...
        if is_refused_pickle(exc):
            raise refused_pickle_error(path, exc, "training checkpoint") from None
        raise InputError(f"{path}: not a readable training checkpoint "
                         f"({type(exc).__name__}: {str(exc)[:200]})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise InputError(f"{path}: not a liveportrait training checkpoint (expected format {FORMAT})")
    return state


def resolve_resume(out_dir: str | Path, resume: str | None) -> Path | None:
    """``None``/"none": start fresh; "auto": the newest checkpoint in OUT_DIR if any; else a path."""
    if resume in (None, "", "none"):
        return None
    if resume == "auto":
        return latest_checkpoint(out_dir)
    return Path(resume)


def export_weights(networks: LivePortraitNetworks, folder: str | Path, info: dict | None = None) -> Path:
    """Write the five networks in the released layout with the ``config.json`` that names their architecture
    (a trained tiny or custom model loads as itself, not as the preset its widths suggest), plus
    ``training.json`` describing the run."""
    folder = Path(folder)
    layout = save_released(networks, folder)
    tmp = layout.config_file.with_name(CONFIG_FILE + ".partial")
    tmp.write_text(model_config_json(networks.config, networks.model_name), encoding="utf-8")
    os.replace(tmp, layout.config_file)
    if info is not None:
        tmp = folder / "training.json.partial"
        tmp.write_text(json.dumps(info, indent=2, default=str) + "\n", encoding="utf-8")
        os.replace(tmp, folder / "training.json")
    return folder
