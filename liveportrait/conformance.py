"""Conformance entry point: compute, from a fixture's inputs alone, every output the reference produced.

``run_fixture`` never sees expected outputs. Tests compare its result with the kit in
``../shared/conformance`` (synthetic weights in the released format), which proves that a user's
downloaded weights give the reference pictures.
"""

from __future__ import annotations

import functools
import os

import numpy as np
import torch

from .animator import Animator
from .motion import keypoints as kpm
from .motion.compose import Motion, MotionOptions
from .networks import LivePortraitNetworks
from .speed import accelerate, pick_backend


@functools.lru_cache(maxsize=2)
def _networks(weights_dir: str, backend: str):
    nets = LivePortraitNetworks.from_pretrained(weights_dir, locate=False)
    return accelerate(nets, pick_backend(backend, "cpu", "fp32"))


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().float().cpu().numpy()


def image_to_tensor(rgb: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 RGB -> (1, 3, H, W) float32 in [0, 1], divided as the reference does."""
    x = torch.from_numpy(np.ascontiguousarray(rgb)).float() / 255.0
    return x.clamp(0, 1).permute(2, 0, 1)[None]


@torch.inference_mode()
def module_outputs(nets, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
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


# fixture variant -> options of the real pipeline (all others at the reference CLI defaults)
PIPELINE_VARIANTS: dict[str, dict] = {
    "default": {},
    "pose_friendly": {"driving_option": "pose-friendly"},
    "no_stitching": {"stitching": False},
    "absolute": {"relative": False},
    "absolute_no_stitching": {"relative": False, "stitching": False},
    "region_exp": {"region": "exp"},
    "region_pose": {"region": "pose"},
    "region_lip": {"region": "lip"},
    "region_eyes": {"region": "eyes"},
    "multiplier_1p5": {"multiplier": 1.5},
    "pose_friendly_multiplier_0p5": {"driving_option": "pose-friendly", "multiplier": 0.5},
}
IMAGE_DRIVING_VARIANTS = {"image_driving": {}, "image_driving_absolute": {"relative": False}}
RENDERED = {"default": 3, "image_driving": 1, "image_driving_absolute": 1}


def template_motion(inputs: dict[str, np.ndarray]) -> Motion:
    n = inputs["template_motion_R"].shape[0]
    return Motion(
        R=torch.from_numpy(inputs["template_motion_R"]).float().reshape(n, 3, 3),
        exp=torch.from_numpy(inputs["template_motion_exp"]).float().reshape(n, -1, 3),
        t=torch.from_numpy(inputs["template_motion_t"]).float().reshape(n, 3),
        scale=torch.from_numpy(inputs["template_motion_scale"]).float().reshape(n, 1),
    )


def pipeline_outputs(animator: Animator, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Driving keypoints of every variant, and rendered frames, through the pipeline's own code."""
    out: dict[str, np.ndarray] = {}
    src = animator.prepare_source(inputs["source_rgb_256"])
    drv = template_motion(inputs)
    cases = [(name, opts, drv, drv[0], True) for name, opts in PIPELINE_VARIANTS.items()]
    cases += [(name, opts, drv[0], None, False) for name, opts in IMAGE_DRIVING_VARIANTS.items()]
    for name, opts, frames, ref, is_video in cases:
        x_d = animator.driving_keypoints(src, frames, ref, MotionOptions(**opts), driving_is_video=is_video)
        out[f"pipe_{name}_kp_driving"] = _np(x_d)
        if name in RENDERED:
            out[f"pipe_{name}_out"] = _np(animator.render(src, x_d[: RENDERED[name]]))
    return out


def run_fixture(inputs: dict[str, np.ndarray], weights_dir: str | os.PathLike,
                backend: str = "auto") -> dict[str, np.ndarray]:
    """Every module-level and pipeline-level output key of a conformance fixture.

    ``backend="auto"`` computes as ``liveportrait animate`` does on a CPU in float32 (the fast exact
    rewrites); ``"eager"`` runs the plain modules, as on a GPU.
    """
    nets = _networks(str(weights_dir), backend)
    out = module_outputs(nets, inputs)
    if "template_motion_R" in inputs:
        out.update(pipeline_outputs(Animator(nets, "cpu", "fp32"), inputs))
    return out
