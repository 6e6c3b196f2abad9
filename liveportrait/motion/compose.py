"""Driving keypoints from source and driving motion (reference sections 4.8 to 4.10).

Everything here is a pure function of tensors, batched over frames where the reference's own
formulas allow it, so the same code serves the CLI, the web app, the live mode and the tests.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..config import DRIVING_OPTIONS, REGIONS, MotionOptions, Region  # noqa: F401 - re-exported
from .keypoints import apply_stitching, transform_keypoints

IDX_EXP = (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20)
IDX_LIP = (6, 12, 14, 17, 19, 20)
IDX_EYE = (11, 13, 15, 16, 18)

# The reference's neutral-lip expression (resources/lip_array.pkl, float64 (1, 21, 3)): the
# reference expression of a driving *image*, so that a closed mouth in the photo stays closed.
LIP_ARRAY = np.array([
    [-9.4524e-05, 0.00024222, -4.009739999999999e-05],
    [0.000208596, 0.000468054, 1.2746399999999999e-05],
    [-0.000124602, 0.00032497200000000003, 4.425e-06],
    [0.000119652, -0.000456624, 5.40852e-05],
    [-0.000265254, -7.459799999999999e-05, -1.5527999999999998e-05],
    [-3.3488399999999996e-05, -0.000183036, -3.4940399999999998e-06],
    [-4.7542799999999996e-07, -4.5246599999999997e-07, 1.59498e-06],
    [-0.000541296, 0.0026328000000000002, 7.2485999999999995e-06],
    [-1.1694e-05, 5.00502e-06, 9.9888e-06],
    [8.028599999999999e-07, 5.1913199999999995e-06, -0.00040934399999999996],
    [0.000166878, -1.9815000000000003e-05, -8.854799999999999e-05],
    [-1.51536e-05, 8.2506e-05, 5.94012e-06],
    [-2.61054e-07, 2.7591e-06, 2.21028e-06],
    [-6.6282e-05, -6.828599999999999e-05, -3.4531799999999997e-06],
    [-0.00083262, -0.00179592, -2.59176e-06],
    [6.9714e-06, 3.65514e-05, -1.8977999999999999e-06],
    [-4.808759999999999e-06, 7.1148e-06, -1.03236e-05],
    [-0.0006368400000000001, -0.0011661, 5.62314e-05],
    [0.00028329, -1.4565599999999998e-05, 1.09746e-05],
    [-4.16022e-06, -0.0150906, -0.0025494],
    [0.000222474, 0.00562788, 0.0027264599999999996],
], dtype=np.float64)[None]


@dataclass
class Motion:
    """Per-frame motion, batched: R (B, 3, 3) transposed rotation, exp (B, K, 3), t (B, 3), scale (B, 1)."""

    R: torch.Tensor
    exp: torch.Tensor
    t: torch.Tensor
    scale: torch.Tensor

    def __len__(self) -> int:
        return self.R.shape[0]

    def __getitem__(self, idx) -> "Motion":
        if isinstance(idx, int):
            idx = slice(idx, idx + 1)
        return Motion(self.R[idx], self.exp[idx], self.t[idx], self.scale[idx])

    def to(self, *args, **kwargs) -> "Motion":
        return Motion(*(x.to(*args, **kwargs) for x in (self.R, self.exp, self.t, self.scale)))


def _rows(dst: torch.Tensor, src: torch.Tensor, rows) -> torch.Tensor:
    out = dst.clone()
    out[:, list(rows), :] = src[:, list(rows), :]
    return out


def partial_expression_copy(exp_s: torch.Tensor, exp_d: torch.Tensor) -> torch.Tensor:
    """The reference's absolute-expression transfer: most keypoints whole, a few on one axis only."""
    out = _rows(exp_s, exp_d, IDX_EXP)
    out[:, 3:5, 1] = exp_d[:, 3:5, 1]
    out[:, 5, 2] = exp_d[:, 5, 2]
    out[:, 8, 2] = exp_d[:, 8, 2]
    out[:, 9, 1:] = exp_d[:, 9, 1:]
    return out


def compose_image_motion(src: Motion, drv: Motion, ref: Motion | None, options: MotionOptions,
                         lip_array: torch.Tensor | None = None) -> Motion:
    """The source's motion moved by driving frames, for a still source (spec 4.8), one per driving frame.

    ``drv`` is a batch of driving frames; ``ref`` the neutral driving frame (the reference's frame 0),
    or None for a driving *image*, whose neutral expression is the constant lip array. Relative: the
    driving's change from ``ref`` is added to the source's; absolute: the driving's own values (a
    partial expression copy). ``options.region`` says which of pose, expression, lips, eyes move.
    """
    n = len(drv)
    is_image = ref is None
    ref = drv if is_image else ref
    region = options.region
    exp_s = src.exp.expand(n, -1, -1)
    if options.relative:
        R_new = (drv.R @ ref.R.transpose(1, 2)) @ src.R if region in ("all", "pose") else src.R.expand(n, -1, -1)
        base = lip_array.to(drv.exp) if is_image else ref.exp
        moved = exp_s + (drv.exp - base)
        if region in ("all", "exp"):
            exp_new = moved
        elif region == "lip":
            exp_new = _rows(exp_s, moved, IDX_LIP)
        elif region == "eyes":
            # the reference subtracts nothing for a driving image here (its quirk, kept)
            exp_new = _rows(exp_s, exp_s + drv.exp if is_image else moved, IDX_EYE)
        else:
            exp_new = exp_s
        scale_new = src.scale * (drv.scale / ref.scale) if region == "all" else src.scale.expand(n, -1)
        t_new = src.t + (drv.t - ref.t) if region in ("all", "pose") else src.t.expand(n, -1)
    else:
        R_new = drv.R if region in ("all", "pose") else src.R.expand(n, -1, -1)
        if region in ("all", "exp"):
            exp_new = partial_expression_copy(exp_s, drv.exp)
        elif region in ("lip", "eyes"):
            exp_new = _rows(exp_s, drv.exp, IDX_LIP if region == "lip" else IDX_EYE)
        else:
            exp_new = exp_s
        scale_new = src.scale.expand(n, -1)
        t_new = drv.t if region in ("all", "pose") else src.t.expand(n, -1)
    return Motion(R=R_new, exp=exp_new, t=t_new, scale=scale_new)


def compose_image_source(kp_c: torch.Tensor, src: Motion, drv: Motion, ref: Motion | None,
                         options: MotionOptions, lip_array: torch.Tensor | None = None) -> torch.Tensor:
    """Driving keypoints for a still source, before stitching (4.8): the composed motion applied to the
    canonical keypoints, t_z dropped as the reference does."""
    m = compose_image_motion(src, drv, ref, options, lip_array)
    return transform_keypoints(kp_c, m.R, m.exp, m.scale, m.t)


def hull_volume(points: np.ndarray) -> float:
    from scipy.spatial import ConvexHull, QhullError

    try:
        return float(ConvexHull(points).volume)
    except (QhullError, ValueError):  # coplanar keypoints: no volume to compare
        return 0.0


def motion_multiplier(x_s: torch.Tensor, x_d0: torch.Tensor) -> float:
    """sqrt(V(x_s)) / sqrt(V(x_d0)) with V the 3-D convex-hull volume (1 when degenerate)."""
    vs, vd = hull_volume(x_s[0].double().cpu().numpy()), hull_volume(x_d0[0].double().cpu().numpy())
    if vs <= 0 or vd <= 0:
        return 1.0
    return float(np.sqrt(vs) / np.sqrt(vd))


def expression_friendly(x_s: torch.Tensor, x_d: torch.Tensor, x_d0: torch.Tensor, multiplier: float) -> torch.Tensor:
    return (x_d - x_d0) * multiplier + x_s


def compose_animal(kp_c: torch.Tensor, x_s: torch.Tensor, scale_s: torch.Tensor, drv: Motion,
                   drv0: Motion) -> torch.Tensor:
    """Animal mode's driving keypoints before stitching (spec 6, steps 1 to 4): each driving frame's own
    rotation, expression and translation (t_z 0) on the source's canonical keypoints and scale, moved from
    the neutral driving frame ``drv0`` and scaled by sqrt(V(x_s)) / sqrt(V(x_d0)) (hull volumes)."""

    def absolute(m: Motion) -> torch.Tensor:
        return transform_keypoints(kp_c, m.R, m.exp, scale_s.expand(len(m), -1), m.t)  # t_z left out

    x_d0 = absolute(drv0)
    return x_s + (absolute(drv) - x_d0) * motion_multiplier(x_s, x_d0)


StitchFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
RetargetFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def finish_keypoints(x_s: torch.Tensor, x_d: torch.Tensor, options: MotionOptions, stitch_delta: StitchFn | None,
                     eye_delta: torch.Tensor | None = None, lip_delta: torch.Tensor | None = None,
                     pre_lip_delta: torch.Tensor | None = None,
                     pre_eye_delta: torch.Tensor | None = None) -> torch.Tensor:
    """Stitching, retargeting deltas and the driving multiplier (4.10).

    ``eye_delta``/``lip_delta`` are the per-frame retargeting deltas (only with the retargeting flags);
    ``pre_*`` the deltas fixed before animation (lip normalisation, source-video eye normalisation).
    """
    x_s_b = x_s.expand_as(x_d)
    stitch = options.stitching and stitch_delta is not None
    if not (options.eye_retargeting or options.lip_retargeting):
        if stitch:
            x_d = apply_stitching(x_d, stitch_delta(x_s_b, x_d))
        if options.normalize_lip and pre_lip_delta is not None:
            x_d = x_d + pre_lip_delta
        if options.source_video_eye_retargeting and pre_eye_delta is not None:
            x_d = x_d + pre_eye_delta
    else:
        extra = (eye_delta if eye_delta is not None else 0) + (lip_delta if lip_delta is not None else 0)
        x_d = x_s_b + extra if options.relative else x_d + extra
        if stitch:
            x_d = apply_stitching(x_d, stitch_delta(x_s_b, x_d))
    return x_s_b + (x_d - x_s_b) * options.multiplier


def retarget_delta(mlp: RetargetFn, x_s: torch.Tensor, source_ratios: torch.Tensor, target) -> torch.Tensor:
    """Offsets of the eye or lip retargeting MLP (spec 4.10) that move the keypoints ``x_s`` (B or 1, K, 3)
    from the source's open ratios ``source_ratios`` (B or 1, C) to ``target`` (a number, or one per frame).

    The MLP's input is [x_s, source ratios, target] per frame. Frames whose source ratios were not
    measured (NaN: no face was found there) get no offset."""
    target = torch.as_tensor(target, dtype=torch.float32, device=x_s.device).reshape(-1, 1)
    ratios = torch.as_tensor(source_ratios, dtype=torch.float32, device=x_s.device)
    ratios = ratios.reshape(-1, ratios.shape[-1])
    n = max(len(x_s), len(ratios), len(target))
    x_s, ratios, target = x_s.expand(n, -1, -1), ratios.expand(n, -1), target.expand(n, -1)
    ok = ~torch.isnan(ratios).any(dim=1)
    if bool(ok.all()):
        return mlp(x_s, torch.cat([ratios, target], dim=1))
    delta = torch.zeros_like(x_s)
    if ok.any():
        delta[ok] = mlp(x_s[ok], torch.cat([ratios[ok], target[ok]], dim=1))
    return delta


def stitching_only(x_s: torch.Tensor, x_d: torch.Tensor, stitch_delta: StitchFn) -> torch.Tensor:
    return apply_stitching(x_d, stitch_delta(x_s.expand_as(x_d), x_d))


def smooth_sequence(x: np.ndarray, observation_variance: float, process_variance: float = 1e-5) -> np.ndarray:
    """Kalman (RTS) smoothing of a (T, ...) sequence, as the reference's pykalman call.

    With scalar-times-identity matrices every dimension is an independent scalar smoother and the gains
    do not depend on the data, so this is O(T * D) instead of pykalman's O(T * D^3).
    """
    shape = x.shape
    z = x.reshape(shape[0], -1).astype(np.float64)
    n = z.shape[0]
    if n == 0:
        return x
    q, r = process_variance, observation_variance
    m = np.empty_like(z)
    p = np.empty(n)
    m_pred = np.empty_like(z)
    p_pred = np.empty(n)
    for i in range(n):
        if i == 0:
            m_pred[0], p_pred[0] = z[0], 1.0
        else:
            m_pred[i], p_pred[i] = m[i - 1], p[i - 1] + q
        k = p_pred[i] / (p_pred[i] + r)
        m[i] = m_pred[i] + k * (z[i] - m_pred[i])
        p[i] = p_pred[i] - k * p_pred[i]
    out = m.copy()
    for i in range(n - 2, -1, -1):
        g = p[i] / p_pred[i + 1]
        out[i] = m[i] + g * (out[i + 1] - m_pred[i + 1])
    return out.reshape(shape).astype(np.float32)


def orthonormalize(R: np.ndarray) -> np.ndarray:
    """Nearest rotation to each (3, 3) matrix (polar decomposition); smoothing matrix entries leaves them
    slightly non-orthogonal, which would scale the face."""
    u, _, vt = np.linalg.svd(R.astype(np.float64))
    d = np.sign(np.linalg.det(u @ vt))
    u[..., :, -1] *= d[..., None]
    return (u @ vt).astype(np.float32)


def smooth_motion(m: Motion, observation_variance: float) -> Motion:
    """Offline Kalman smoothing of every motion component; rotations are re-orthonormalised."""
    if observation_variance <= 0 or len(m) < 2:
        return m

    def sm(x: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(smooth_sequence(x.detach().cpu().numpy(), observation_variance)).to(x)

    R = torch.from_numpy(orthonormalize(sm(m.R).cpu().numpy())).to(m.R)
    return Motion(R=R, exp=sm(m.exp), t=sm(m.t), scale=sm(m.scale))


def compose_video_source(kp_c: torch.Tensor, src: Motion, drv: Motion, ref: Motion | None, options: MotionOptions,
                         lip_array: torch.Tensor, smooth_variance: float = 3e-7) -> torch.Tensor:
    """Driving keypoints for a source *video* (frame i of the source meets driving frame i), before stitching.

    ``drv`` has as many frames as ``src``, or one for a driving image (``ref`` None). Expression and
    rotation sequences are smoothed over time as the reference does (v2v-notes section 5): the rotations'
    matrix entries are smoothed and used as they come out, **not** re-orthonormalised, as in the reference
    (re-orthonormalising moves strongly smoothed keypoints by 1.5e-4, which its conformance check detects).
    """
    n = len(src)
    region = options.region
    is_image = ref is None
    d0 = drv[0] if is_image else ref
    if options.relative:
        if is_image:
            exp_seq = src.exp + (d0.exp.double() - lip_array.double()).float()
        else:
            exp_seq = torch.from_numpy(smooth_sequence(((src.exp + drv.exp) - d0.exp).cpu().numpy(), smooth_variance))
        if is_image:
            rot_seq = src.R
        else:
            rot = (drv.R @ d0.R.transpose(1, 2)) @ src.R
            rot_seq = torch.from_numpy(smooth_sequence(rot.cpu().numpy(), smooth_variance))
        t_drv = src.t
    else:
        if is_image:
            exp_seq, rot_seq, t_drv = d0.exp.expand(n, -1, -1), d0.R.expand(n, -1, -1), d0.t.expand(n, -1)
        else:
            exp_seq = torch.from_numpy(smooth_sequence(drv.exp.cpu().numpy(), smooth_variance))
            rot_seq = torch.from_numpy(smooth_sequence(drv.R.cpu().numpy(), smooth_variance))
            t_drv = drv.t
    exp_seq, rot_seq = exp_seq.to(src.exp), rot_seq.to(src.R)
    R_new = rot_seq if region in ("all", "pose") else src.R
    if region in ("all", "exp"):
        exp_new = partial_expression_copy(src.exp, exp_seq)
    elif region in ("lip", "eyes"):
        exp_new = _rows(src.exp, exp_seq, IDX_LIP if region == "lip" else IDX_EYE)
    else:
        exp_new = src.exp
    t_new = t_drv if (not options.relative and region in ("all", "pose")) else src.t
    return transform_keypoints(kp_c, R_new, exp_new, src.scale, t_new)
