"""Conformance entry point: compute, from a fixture's inputs alone, every output the reference produced.

``run_fixture`` never sees expected outputs. Tests compare its result with the kit in
``../shared/conformance`` (synthetic weights in the released format), which proves that a user's
downloaded weights give the reference pictures.
"""

from __future__ import annotations

import os

import numpy as np
import torch

from .motion import keypoints as kpm
from .networks import LivePortraitNetworks

_MODULE_CACHE: dict[str, LivePortraitNetworks] = {}


def _networks(weights_dir: str | os.PathLike) -> LivePortraitNetworks:
    key = str(weights_dir)
    if key not in _MODULE_CACHE:
        _MODULE_CACHE.clear()
        _MODULE_CACHE[key] = LivePortraitNetworks.from_pretrained(weights_dir, locate=False)
    return _MODULE_CACHE[key]


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1], divided as the reference does."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float() / 255.0
    return x.clamp(0, 1).permute(2, 0, 1)[None]


@torch.inference_mode()
def module_outputs(nets: LivePortraitNetworks, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    src = image_to_tensor(inputs["source_rgb_256"])

    out["F_out"] = _np(nets.F(src))

    raw = nets.M(src)
    for k, v in raw.items():
        out[f"M_raw_{k}"] = _np(v)
    info = kpm.kp_info(raw)
    for k, v in info.items():
        out[f"info_{k}"] = _np(v)
    R_s = kpm.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    out["R_s"] = _np(R_s)
    x_s = kpm.transform_keypoints(info["kp"], R_s, info["exp"], info["scale"], info["t"])
    out["x_s"] = _np(x_s)

    angles = torch.from_numpy(inputs["rot_probe_angles_deg"]).float()
    out["rot_probe_R"] = _np(kpm.rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]))
    out["headpose_probe_deg"] = _np(kpm.headpose_to_degrees(torch.from_numpy(inputs["headpose_probe_bins"])))

    kp_s = torch.from_numpy(inputs["W_kp_source"]).float()
    kp_d = torch.from_numpy(inputs["W_kp_driving"]).float()
    f_s = torch.from_numpy(out["F_out"])
    w = nets.W(f_s, kp_driving=kp_d, kp_source=kp_s)
    out["W_out"] = _np(w["out"])
    out["W_occlusion_map"] = _np(w["occlusion_map"])
    out["W_deformation"] = _np(w["deformation"])
    out["G_out"] = _np(nets.G(w["out"]))

    delta = nets.S.stitch_delta(kp_s, kp_d)
    out["S_stitch_delta"] = _np(delta)
    out["S_stitching_kp"] = _np(kpm.apply_stitching(kp_d, delta))
    out["S_eye_delta"] = _np(nets.S.eye_delta(x_s, torch.from_numpy(inputs["S_eye_ratio"]).float()))
    out["S_lip_delta"] = _np(nets.S.lip_delta(x_s, torch.from_numpy(inputs["S_lip_ratio"]).float()))
    return out


def run_fixture(inputs: dict[str, np.ndarray], weights_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Every module-level (and pipeline-level, where implemented) output key of a conformance fixture."""
    nets = _networks(weights_dir)
    out = module_outputs(nets, inputs)
    try:
        from .pipeline_conformance import pipeline_outputs
    except ImportError:
        return out
    out.update(pipeline_outputs(nets, inputs))
    return out
