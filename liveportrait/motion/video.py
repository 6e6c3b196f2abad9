"""Source videos: the per-frame motion of pass 1 and the driving keypoints of every frame.

A source *video* is animated frame by frame: frame i of the source meets driving frame i (spec 4.7,
../shared/spec/v2v-notes.md). Pass 1 records each followed face's motion and open ratios per frame in a
:class:`SourceVideoMotion`; the functions here turn that record into driving keypoints, for animation
(:func:`source_video_keypoints`) and for the editor's video retargeting (:func:`retarget_keypoints`,
spec 5.3). Pure functions of tensors and the S module's MLPs, so they are tested without video files.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import torch

from ..config import SOURCE_VIDEO_EYE_FALLBACK_TARGET, SOURCE_VIDEO_SMOOTH, MotionOptions
from .compose import (
    IDX_EYE,
    Motion,
    RetargetFn,
    StitchFn,
    compose_video_source,
    finish_keypoints,
    retarget_delta,
    smooth_sequence,
    stitching_only,
)
from .keypoints import transform_keypoints


class StitchingModules(Protocol):
    """What of the S network the keypoint math calls (``networks.S``, or a stand-in in tests)."""

    stitch_delta: StitchFn
    eye_delta: RetargetFn
    lip_delta: RetargetFn


@dataclass
class SourceVideoMotion:
    """Pass 1 of a source video for one followed face: per frame (T frames) its crop, motion and ratios."""

    m_o2c: list  # per frame: the 3x3 original -> crop matrix, None where not cropped (no face, --crop none)
    kp: torch.Tensor  # (T, K, 3) canonical keypoints
    x_s: torch.Tensor  # (T, K, 3) the frame's own keypoints
    angles: torch.Tensor  # (T, 3) pitch, yaw, roll in degrees
    motion: Motion  # (T) R, exp, t, scale
    eye: np.ndarray  # (T, 2) eye open ratios, NaN where no face was measured
    lip: np.ndarray  # (T, 1) lip open ratio, NaN where no face was measured

    def __len__(self) -> int:
        return int(self.x_s.shape[0])

    @property
    def has_landmarks(self) -> bool:
        """Whether any frame's ratios were measured (retargeting has something to move)."""
        return bool(np.isfinite(self.eye).all(axis=1).any() or np.isfinite(self.lip).all(axis=1).any())


def eye_open_target(eye: np.ndarray, threshold: float) -> float | None:
    """The eye-open ratio a source video's eyes are normalised to before animation (spec 4.7 "Eye
    normalisation"): the mean of the first measured frame's two ratios, or the reference's fixed 0.39 when
    that mean is under ``threshold`` (eyes closed there); None when no frame was measured."""
    measured = np.flatnonzero(np.isfinite(eye).all(axis=1))
    if len(measured) == 0:
        return None
    target = float(eye[measured[0]].mean())
    return SOURCE_VIDEO_EYE_FALLBACK_TARGET if target < threshold else target


def _per_frame(ratios: np.ndarray, n: int, columns: slice) -> torch.Tensor:
    """Driving ratios for n source frames: a shorter driving holds its last frame."""
    return torch.from_numpy(np.ascontiguousarray(ratios[np.minimum(np.arange(n), len(ratios) - 1), columns]))


def source_video_keypoints(src: SourceVideoMotion, drv: Motion, ref: Motion | None, options: MotionOptions,
                           S: StitchingModules, lip_array: torch.Tensor,
                           smooth_variance: float = SOURCE_VIDEO_SMOOTH, driving_eye: np.ndarray | None = None,
                           driving_lip: np.ndarray | None = None) -> torch.Tensor:
    """x_d (T, K, 3) for every frame of a source video (spec 4.7, 4.10; v2v-notes sections 5 and 6).

    ``drv``: the driving's motion, at least T frames for a driving video (``ref`` its neutral frame), or
    one for a driving image (``ref`` None). In order: the composition with Kalman smoothing
    (``compose_video_source``); the deltas fixed before animation (eye normalisation to
    ``eye_open_target``, lip normalisation of frames whose mouth is open past the threshold); the
    per-frame retargeting towards the driving's ratios (``driving_eye`` (T_d, 2): the reference's combined
    ratio takes its first value; ``driving_lip`` (T_d, 1)); stitching and the multiplier. Frames whose
    source ratios were not measured get no retargeting offset.
    """
    n = len(src)
    x_s = src.x_s
    x_d = compose_video_source(src.kp, src.motion, drv[:n] if ref is not None else drv, ref, options, lip_array,
                               smooth_variance)
    pre_eye = pre_lip = eye_d = lip_d = None
    with torch.inference_mode():
        if options.source_video_eye_retargeting:
            target = eye_open_target(src.eye, options.source_video_eye_threshold)
            if target is not None:
                pre_eye = retarget_delta(S.eye_delta, x_s, src.eye, target)
        if options.normalize_lip and options.relative:
            open_mouth = torch.from_numpy(src.lip >= options.lip_normalize_threshold).float()[:, :, None]
            pre_lip = retarget_delta(S.lip_delta, x_s, src.lip, 0.0) * open_mouth
        if options.eye_retargeting and driving_eye is not None:
            eye_d = retarget_delta(S.eye_delta, x_s, src.eye, _per_frame(driving_eye, n, slice(0, 1)))
        if options.lip_retargeting and driving_lip is not None:
            lip_d = retarget_delta(S.lip_delta, x_s, src.lip, _per_frame(driving_lip, n, slice(0, 1)))
        return finish_keypoints(x_s, x_d, options, S.stitch_delta, eye_d, lip_d, pre_lip, pre_eye)


def retarget_keypoints(src: SourceVideoMotion, S: StitchingModules, lip_array: torch.Tensor,
                       eye_ratio: float | None = None, lip_ratio: float | None = None, smooth: float = 3e-6,
                       silent: bool = False, reference: bool = False) -> torch.Tensor:
    """x_d for every frame of a source video whose eyes and/or lips are set to target open ratios (spec 5.3).

    Normal mode: x_d = x_s + the retargeting deltas, each Kalman-smoothed over time with observation
    variance ``smooth``, then stitched. Silent mode: every keypoint but the eyes takes the neutral
    lip-array expression (a closed, still mouth); the eye target still applies. Frames without a
    measured face keep their keypoints. t_z is left out of the silent keypoints unless ``reference``
    (the official app adds it).
    """
    x_s = src.x_s.float()
    n = x_s.shape[0]
    eye = torch.from_numpy(np.asarray(src.eye, np.float32)).reshape(n, 2)
    lip = torch.from_numpy(np.asarray(src.lip, np.float32)).reshape(n, 1)

    def smoothed(delta: torch.Tensor) -> torch.Tensor:
        if smooth and smooth > 0 and n > 1:
            return torch.from_numpy(smooth_sequence(delta.cpu().numpy(), smooth)).to(delta)
        return delta

    with torch.inference_mode():
        if silent:
            m = src.motion
            exp = lip_array.to(x_s).expand(n, -1, -1).clone()
            exp[:, list(IDX_EYE)] = m.exp[:, list(IDX_EYE)]
            x_d = transform_keypoints(src.kp, m.R, exp, m.scale, m.t, keep_tz=reference)
        else:
            x_d = x_s.clone()
        if lip_ratio is not None and not silent:
            x_d = x_d + smoothed(retarget_delta(S.lip_delta, x_s, lip, lip_ratio))
        if eye_ratio is not None:
            x_d = x_d + smoothed(retarget_delta(S.eye_delta, x_s, eye, eye_ratio))
        return stitching_only(x_s, x_d, S.stitch_delta)
