"""The network side of animation: prepare a source once, then turn driving motion into frames.

Knows nothing about files, faces or video. Inputs are 256x256 RGB crops (uint8 arrays or float
tensors in [0, 1]) and motion; outputs are 512x512 float images. The orchestration in
``liveportrait.pipeline`` feeds it crops and writes what it returns.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .motion import keypoints as kpm
from .motion.compose import (
    LIP_ARRAY,
    Motion,
    MotionOptions,
    compose_animal,
    compose_image_source,
    expression_friendly,
    finish_keypoints,
    motion_multiplier,
    retarget_delta,
)
from .networks import LivePortraitNetworks

PRECISIONS = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def to_input(images: np.ndarray | torch.Tensor, device: torch.device | str = "cpu") -> torch.Tensor:
    """uint8 (H, W, 3) or (B, H, W, 3) RGB -> (B, 3, H, W) float32 in [0, 1], as the reference divides."""
    if isinstance(images, torch.Tensor) and images.is_floating_point():
        x = images if images.ndim == 4 else images[None]
        return x.to(device)
    arr = torch.as_tensor(np.ascontiguousarray(images))
    if arr.ndim == 3:
        arr = arr[None]
    x = arr.to(device).float() / 255.0
    return x.clamp(0, 1).permute(0, 3, 1, 2).contiguous()


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(B, 3, H, W) float -> (B, H, W, 3) uint8: clip, x255, truncate (the reference's conversion)."""
    x = images.detach().float().clamp(0, 1).mul(255).clamp(0, 255).to(torch.uint8)
    return x.permute(0, 2, 3, 1).cpu().numpy()


@dataclass
class MotionInfo:
    """What the motion extractor says about a batch of frames."""

    motion: Motion
    kp: torch.Tensor  # canonical keypoints (B, K, 3)
    x: torch.Tensor  # the frames' own transformed keypoints (B, K, 3)
    angles: torch.Tensor | None = None  # head pose (B, 3): pitch, yaw, roll in degrees


@dataclass
class PreparedSource:
    """One source face, computed once: appearance volume, canonical keypoints, its own motion."""

    f_s: torch.Tensor
    kp_c: torch.Tensor
    motion: Motion
    x_s: torch.Tensor
    eye_ratio: torch.Tensor | None = None  # (1, 2) left, right
    lip_ratio: torch.Tensor | None = None  # (1, 1)
    pre_lip_delta: torch.Tensor | None = None
    pre_eye_delta: torch.Tensor | None = None


class Animator:
    """Runs F, M, W, G and S with a chosen device and precision."""

    def __init__(self, networks: LivePortraitNetworks, device: str | torch.device = "cpu", precision: str = "fp32"):
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}")
        own = networks.precision  # networks that compute reduced precision themselves
        if own != "fp32" and own != precision:
            raise ValueError(f"these networks were accelerated for {own} (accelerate(..., precision={own!r})); "
                             f"pass precision={own!r} to the Animator too")
        self.networks = networks.to(device).eval()
        self.device = torch.device(device)
        self.precision = precision
        self._checked_precision = precision == "fp32"
        self.lip_array = torch.from_numpy(LIP_ARRAY).float().to(self.device)

    # -- precision ---------------------------------------------------------------------------------

    def _autocast(self):
        """Autocast for reduced precision, except with networks that run it themselves (the CPU bfloat16
        path: there W and G choose their precision per operation and M, F and S stay float32)."""
        if self.precision == "fp32" or self.networks.precision == self.precision:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=PRECISIONS[self.precision])

    def _guard_precision(self, out: torch.Tensor, recompute) -> torch.Tensor:
        """Half precision gives black frames on some GPUs: check the first result, fall back to fp32."""
        if self._checked_precision:
            return out
        self._checked_precision = True
        if torch.isfinite(out).all():
            return out
        warnings.warn(f"{self.precision} produced NaN/Inf on {self.device}; falling back to fp32", RuntimeWarning,
                      stacklevel=3)
        self.precision = "fp32"
        if self.networks.precision != "fp32":
            self.networks = self.networks.exact()
        return recompute()

    # -- networks ------------------------------------------------------------------------------------

    @torch.inference_mode()
    def extract_motion(self, images) -> MotionInfo:
        x = to_input(images, self.device)
        with self._autocast():
            raw = self.networks.M(x)
        info = kpm.kp_info(raw.float(), self.networks.config.motion.num_kp)
        R = kpm.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
        motion = Motion(R=R, exp=info["exp"], t=info["t"], scale=info["scale"])
        x_own = kpm.transform_keypoints(info["kp"], R, info["exp"], info["scale"], info["t"])
        angles = torch.cat([info["pitch"], info["yaw"], info["roll"]], dim=1)
        return MotionInfo(motion=motion, kp=info["kp"], x=x_own, angles=angles)

    @torch.inference_mode()
    def appearance(self, images) -> torch.Tensor:
        x = to_input(images, self.device)
        with self._autocast():
            return self.networks.F(x).float()

    @torch.inference_mode()
    def prepare_source(self, image256, eye_ratio=None, lip_ratio=None, options: MotionOptions | None = None,
                       motion: MotionInfo | None = None) -> PreparedSource:
        """``eye_ratio`` (2,) and ``lip_ratio`` (1,) come from the source's landmarks when known."""
        options = options or MotionOptions()
        info = motion or self.extract_motion(image256)
        src = PreparedSource(f_s=self.appearance(image256), kp_c=info.kp, motion=info.motion, x_s=info.x)
        if eye_ratio is not None:
            src.eye_ratio = torch.as_tensor(np.asarray(eye_ratio, np.float32).reshape(1, 2), device=self.device)
        if lip_ratio is not None:
            src.lip_ratio = torch.as_tensor(np.asarray(lip_ratio, np.float32).reshape(1, 1), device=self.device)
        if options.normalize_lip and options.relative and src.lip_ratio is not None:
            if float(src.lip_ratio) >= options.lip_normalize_threshold:
                src.pre_lip_delta = self.lip_delta(src, 0.0)
        return src

    @property
    def stitcher(self):
        """S, for the keypoint math that stitches and retargets (``motion.video``, the editor, speech)."""
        return self.networks.S

    @torch.inference_mode()
    def eye_delta(self, src: PreparedSource, target: float | torch.Tensor) -> torch.Tensor:
        return retarget_delta(self.stitcher.eye_delta, src.x_s, src.eye_ratio, target)

    @torch.inference_mode()
    def lip_delta(self, src: PreparedSource, target: float | torch.Tensor) -> torch.Tensor:
        return retarget_delta(self.stitcher.lip_delta, src.x_s, src.lip_ratio, target)

    @torch.inference_mode()
    def driving_keypoints(self, src: PreparedSource, drv: Motion, ref: Motion | None, options: MotionOptions,
                          driving_is_video: bool = True, driving_eye: torch.Tensor | None = None,
                          driving_lip: torch.Tensor | None = None) -> torch.Tensor:
        """x_d for a batch of driving frames and a still source (4.8 to 4.10).

        ``ref`` is the neutral driving frame (None for a driving image); ``driving_eye`` (B, 2) and
        ``driving_lip`` (B, 1) are the driving frames' ratios, used by the retargeting options.
        """
        drv = drv.to(self.device)
        ref = ref.to(self.device) if ref is not None else None
        if options.animal_motion and ref is not None:
            x_d = compose_animal(src.kp_c, src.x_s, src.motion.scale, drv, ref)
            return finish_keypoints(src.x_s, x_d, options, self.stitcher.stitch_delta)
        x_d = compose_image_source(src.kp_c, src.motion, drv, ref, options, self.lip_array)
        if (options.relative and options.driving_option == "expression-friendly" and driving_is_video
                and ref is not None):
            x_d0 = compose_image_source(src.kp_c, src.motion, ref, ref, options, self.lip_array)
            x_d = expression_friendly(src.x_s, x_d, x_d0, motion_multiplier(src.x_s, x_d0))
        eye_d = lip_d = None
        if options.eye_retargeting and src.eye_ratio is not None and driving_eye is not None:
            # the reference feeds only the driving left-eye ratio
            eye_d = self.eye_delta(src, torch.as_tensor(driving_eye, device=self.device).reshape(-1, 2)[:, 0])
        if options.lip_retargeting and src.lip_ratio is not None and driving_lip is not None:
            lip_d = self.lip_delta(src, torch.as_tensor(driving_lip, device=self.device).reshape(-1))
        return finish_keypoints(src.x_s, x_d, options, self.stitcher.stitch_delta, eye_d, lip_d,
                                src.pre_lip_delta, src.pre_eye_delta)

    @torch.inference_mode()
    def render(self, src: PreparedSource, x_d: torch.Tensor) -> torch.Tensor:
        """(B, 3, 512, 512) float images, before clipping."""
        n = x_d.shape[0]

        def run():
            with self._autocast():
                f_s = src.f_s.expand(n, -1, -1, -1, -1)
                w = self.networks.W(f_s, kp_driving=x_d, kp_source=src.x_s.expand(n, -1, -1))
                return self.networks.G(w.out).float()

        return self._guard_precision(run(), run)
