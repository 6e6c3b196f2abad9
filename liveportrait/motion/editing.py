"""Portrait editing controls over the implicit keypoints (reference spec 5.2), and keyframes.

An :class:`Edit` holds slider values. :func:`apply_edit` turns a source's motion and an edit into
driving keypoints ``x_d``; rendering them needs only the warping and generator networks, so a
source is prepared once (F, M) and every slider move afterwards is cheap.

How an edit is applied (the reference app's order, 5.2):

1. pitch, yaw and roll are added to the source's angles: ``R_new = (R_d @ R_s^T) @ R_s``;
2. the expression offsets go into a copy of the source expression ``exp``, in this order:
   eyeball direction (only when x or y is not 0), smile, wink, eyebrow, pouting, pursing, grin,
   lip open, x movement, y movement; then our mouth shapes 'aaa', 'eee', 'woo';
3. ``x_d = mov_z * scale * (kp_c @ R_new + exp) + t``;
4. plus the eye and lip retargeting deltas when a target ratio is set;
5. stitching, when a stitching function is given.

Each expression control is a short list of ``(keypoint, axis, coefficient)`` terms: moving the
slider by ``v`` adds ``v * coefficient`` to ``exp[keypoint, axis]`` and touches nothing else. The
tables below are the reference's hand-tuned values, except 'aaa', 'eee' and 'woo'.

'aaa', 'eee' and 'woo' are not in the official app (the names come from a ComfyUI node set). Ours
are mouth shapes built from the official lip controls and the mouth half of smile, so they move only
the mouth keypoints 3, 7, 14, 17, 19 and 20; at 1.0 each is a clearly formed vowel:

* ``aaa``: jaw dropped open: lip open x100, pursing x-4 (lips relax outwards);
* ``eee``: lips spread over the teeth: grin x12, the mouth part of smile x0.25, lip open x12;
* ``woo``: lips rounded and pushed forward: pursing x15, lip open x25, mouth part of smile x-0.15.

Differences from the official app, on purpose:

* The official app adds the source's z translation to ``x_d`` (but not to ``x_s``), so even a
  neutral edit moves every keypoint in depth. Here t_z is left out, as everywhere else, and a
  neutral edit gives back ``x_s`` exactly; ``reference=True`` restores the official arithmetic.
* With no rotation the official app still multiplies ``R_d @ R_s^T @ R_s`` (a rounding-level
  change); here the source rotation is kept as it is unless ``reference=True``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from typing import Callable, Iterable, Sequence

import numpy as np
import torch

from ..errors import InputError
from .compose import Motion, MotionOptions, compose_image_motion
from .keypoints import apply_stitching, rotation_matrix, transform_keypoints

X, Y, Z = 0, 1, 2
MOUTH_KEYPOINTS = (3, 7, 14, 17, 19, 20)

Term = tuple[int, int, float]  # (keypoint, axis, coefficient)

# -- the reference's expression controls (spec 5.2) -------------------------------------------------

SMILE: tuple[Term, ...] = (
    (20, Y, -0.01), (14, Y, -0.02), (17, Y, 0.0065), (17, Z, 0.003),
    (13, Y, -0.00275), (16, Y, -0.00275), (3, Y, -0.0035), (7, Y, -0.0035),
)
WINK: tuple[Term, ...] = ((11, Y, 0.001), (13, Y, -0.0003), (17, X, 0.0003), (17, Y, 0.0003), (3, Y, -0.0003))
EYEBROW_UP: tuple[Term, ...] = ((1, Y, 0.001), (2, Y, -0.001))
EYEBROW_DOWN: tuple[Term, ...] = ((1, X, -0.001), (2, X, 0.001), (1, Y, 0.0003), (2, Y, -0.0003))
POUT: tuple[Term, ...] = ((19, X, 1.0),)  # lip_variation_zero
PURSE: tuple[Term, ...] = ((14, Y, 0.001), (3, Y, -0.0005), (7, Y, -0.0005), (17, Z, -0.0005))  # lip_variation_one
GRIN: tuple[Term, ...] = ((20, Z, -0.001), (20, Y, -0.001), (14, Y, -0.001))  # lip_variation_two
LIP_OPEN: tuple[Term, ...] = ((19, Y, 0.001), (19, Z, 0.0001), (17, Y, -0.0001))  # lip_variation_three
GAZE_RIGHT: tuple[Term, ...] = ((11, X, 0.0007), (15, X, 0.001))  # x > 0
GAZE_LEFT: tuple[Term, ...] = ((11, X, 0.001), (15, X, 0.0007))  # x <= 0
GAZE_UP: tuple[Term, ...] = ((11, Y, -0.001), (15, Y, -0.001))
# with b = -y / 2: the lids follow the eyeballs
GAZE_LIDS: tuple[Term, ...] = ((11, Y, -0.001), (13, Y, 0.0003), (15, Y, -0.001), (16, Y, 0.0003))
MOVE_X: tuple[Term, ...] = ((5, X, -1.0),)  # the reference flips the sign
MOVE_Y: tuple[Term, ...] = ((5, Y, 1.0),)


def _scaled(terms: Iterable[Term], c: float) -> tuple[Term, ...]:
    return tuple((k, a, coef * c) for k, a, coef in terms)


SMILE_MOUTH = tuple(t for t in SMILE if t[0] in MOUTH_KEYPOINTS)

# -- ours: vowel mouth shapes from the official lip controls ----------------------------------------

AAA: tuple[Term, ...] = _scaled(LIP_OPEN, 100.0) + _scaled(PURSE, -4.0)
EEE: tuple[Term, ...] = _scaled(GRIN, 12.0) + _scaled(SMILE_MOUTH, 0.25) + _scaled(LIP_OPEN, 12.0)
WOO: tuple[Term, ...] = _scaled(PURSE, 15.0) + _scaled(LIP_OPEN, 25.0) + _scaled(SMILE_MOUTH, -0.15)


@dataclass(frozen=True)
class Control:
    """One slider: its field in :class:`Edit`, label, range, step and neutral value."""

    name: str
    label: str
    minimum: float
    maximum: float
    step: float
    neutral: float = 0.0
    group: str = "expression"
    ours: bool = False


CONTROLS: tuple[Control, ...] = (
    Control("eye_ratio", "target eyes-open ratio", 0.0, 0.8, 0.01, math.nan, "retargeting"),
    Control("lip_ratio", "target lip-open ratio", 0.0, 0.8, 0.01, math.nan, "retargeting"),
    Control("pitch", "relative pitch", -15, 15, 1, 0.0, "pose"),
    Control("yaw", "relative yaw", -25, 25, 1, 0.0, "pose"),
    Control("roll", "relative roll", -15, 15, 1, 0.0, "pose"),
    Control("mov_x", "x-axis movement", -0.19, 0.19, 0.01, 0.0, "pose"),
    Control("mov_y", "y-axis movement", -0.19, 0.19, 0.01, 0.0, "pose"),
    Control("mov_z", "z-axis movement (scale)", 0.9, 1.2, 0.01, 1.0, "pose"),
    Control("smile", "smile", -0.3, 1.3, 0.01),
    Control("wink", "wink", 0, 39, 0.01),
    Control("eyebrow", "eyebrow", -30, 30, 0.01),
    Control("eyeball_x", "eye gaze horizontal", -30, 30, 0.01),
    Control("eyeball_y", "eye gaze vertical", -63, 63, 0.01),
    Control("pout", "pouting", -0.09, 0.09, 0.01, group="lips"),
    Control("purse", "pursing", -20, 15, 0.01, group="lips"),
    Control("grin", "grin", 0, 15, 0.01, group="lips"),
    Control("lip_open", "lip close <-> open", -90, 120, 1, group="lips"),
    Control("aaa", "'aaa' (open)", -0.3, 1.2, 0.01, group="lips", ours=True),
    Control("eee", "'eee' (spread)", -0.5, 1.2, 0.01, group="lips", ours=True),
    Control("woo", "'woo' (round)", -0.5, 1.2, 0.01, group="lips", ours=True),
)
CONTROL = {c.name: c for c in CONTROLS}


@dataclass(frozen=True)
class Edit:
    """Slider values; the defaults leave the portrait as it is.

    ``eye_ratio`` and ``lip_ratio`` are target open ratios (None: leave the eyes / lips alone);
    ``pitch``/``yaw``/``roll`` are degrees added to the head's angles; ``mov_x``/``mov_y`` shift
    the face (on keypoint 5, as the reference does) and ``mov_z`` multiplies its scale (nearer or
    farther). The expression controls use the reference's units (see :data:`CONTROLS`).
    """

    eye_ratio: float | None = None
    lip_ratio: float | None = None
    pitch: float = 0.0
    yaw: float = 0.0
    roll: float = 0.0
    mov_x: float = 0.0
    mov_y: float = 0.0
    mov_z: float = 1.0
    smile: float = 0.0
    wink: float = 0.0
    eyebrow: float = 0.0
    eyeball_x: float = 0.0
    eyeball_y: float = 0.0
    pout: float = 0.0
    purse: float = 0.0
    grin: float = 0.0
    lip_open: float = 0.0
    aaa: float = 0.0
    eee: float = 0.0
    woo: float = 0.0

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if v is None and f.name in ("eye_ratio", "lip_ratio"):
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float, np.floating, np.integer)):
                raise InputError(f"edit: {f.name} must be a number, got {v!r}")
            if not math.isfinite(float(v)):
                raise InputError(f"edit: {f.name} must be finite, got {v!r}")
            object.__setattr__(self, f.name, float(v))
        if self.mov_z <= 0:
            raise InputError(f"edit: mov_z is a scale factor and must be positive, got {self.mov_z}")
        for name in ("eye_ratio", "lip_ratio"):
            v = getattr(self, name)
            if v is not None and not 0.0 <= v <= 1.0:
                raise InputError(f"edit: {name} is an open ratio between 0 and 1, got {v}")

    def but(self, **changes) -> "Edit":
        return replace(self, **changes)

    def clamped(self) -> "Edit":
        """The same edit with every slider inside its UI range."""
        out = {}
        for c in CONTROLS:
            v = getattr(self, c.name)
            out[c.name] = None if v is None else min(max(v, c.minimum), c.maximum)
        return Edit(**out)

    def in_range(self) -> "Edit":
        """This edit, or an InputError naming the first control outside its range (the sliders' range: past
        it the keypoints leave what the networks were trained on and the face tears)."""
        for c in CONTROLS:
            v = getattr(self, c.name)
            if v is not None and not c.minimum <= v <= c.maximum:
                raise InputError(f"edit: {c.name} must be between {c.minimum:g} and {c.maximum:g}, got {v:g}")
        return self

    def as_dict(self) -> dict[str, float | None]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "Edit":
        names = [f.name for f in fields(cls)]
        unknown = set(values) - set(names)
        if unknown:
            raise InputError(f"edit: unknown control{'s' if len(unknown) > 1 else ''} {', '.join(sorted(unknown))}; "
                             f"the controls are {', '.join(names)}")
        return cls(**values)

    @property
    def moves_pose(self) -> bool:
        return (self.pitch, self.yaw, self.roll) != (0.0, 0.0, 0.0)


EDIT_FIELDS = tuple(f.name for f in fields(Edit))


def expression_terms(edit: Edit) -> list[Term]:
    """Every (keypoint, axis, amount) the edit adds to the expression, in the reference's order."""
    out: list[Term] = []

    def add(terms: Iterable[Term], v: float) -> None:
        out.extend((k, a, v * c) for k, a, c in terms)

    x, y = edit.eyeball_x, edit.eyeball_y
    if x != 0 or y != 0:
        add(GAZE_RIGHT if x > 0 else GAZE_LEFT, x)
        add(GAZE_UP, y)
        add(GAZE_LIDS, -y / 2.0)
    add(SMILE, edit.smile)
    add(WINK, edit.wink)
    add(EYEBROW_UP if edit.eyebrow > 0 else EYEBROW_DOWN, edit.eyebrow)
    add(POUT, edit.pout)
    add(PURSE, edit.purse)
    add(GRIN, edit.grin)
    add(LIP_OPEN, edit.lip_open)
    add(MOVE_X, edit.mov_x)
    add(MOVE_Y, edit.mov_y)
    for terms, v in ((AAA, edit.aaa), (EEE, edit.eee), (WOO, edit.woo)):
        if v != 0:
            add(terms, v)
    return out


def edit_expression(exp: torch.Tensor, edit: Edit) -> torch.Tensor:
    """A copy of ``exp`` (B, 21, 3) with the edit's offsets added (one scalar add per term)."""
    out = exp.clone()
    for k, a, amount in expression_terms(edit):
        out[:, k, a] += amount
    return out


def rotation_angles(R: torch.Tensor) -> torch.Tensor:
    """(B, 3) pitch, yaw, roll in degrees of transposed rotations (the inverse of ``rotation_matrix``)."""
    r = R.double()
    yaw = torch.asin((-r[:, 0, 2]).clamp(-1.0, 1.0))
    pitch = torch.atan2(r[:, 1, 2], r[:, 2, 2])
    roll = torch.atan2(r[:, 0, 1], r[:, 0, 0])
    return (torch.stack([pitch, yaw, roll], dim=1) * (180.0 / math.pi)).float()


RetargetFn = Callable[[float], torch.Tensor]
StitchDeltaFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def apply_edit(motion: Motion, kp_c: torch.Tensor, x_s: torch.Tensor, edit: Edit, *,
               angles: torch.Tensor | None = None, eye_delta: RetargetFn | None = None,
               lip_delta: RetargetFn | None = None, stitch_delta: StitchDeltaFn | None = None,
               reference: bool = False) -> torch.Tensor:
    """Driving keypoints (1, 21, 3) for one edit of one source.

    ``motion`` is the motion the edit starts from (the source's own, or a driving expression's);
    ``x_s`` the source's keypoints (for stitching). ``angles`` (1, 3) are the motion's pitch, yaw
    and roll in degrees (recovered from ``motion.R`` when not given). ``eye_delta(target)`` and
    ``lip_delta(target)`` return the retargeting offsets (1, 21, 3) for a target ratio; they are
    called only when the edit sets that ratio. ``stitch_delta(x_s, x_d)`` is the stitching MLP.
    """
    R_s = motion.R
    if edit.moves_pose or reference:
        if angles is None:
            angles = rotation_angles(R_s)
        angles = angles.reshape(-1, 3).to(R_s)
        d = torch.tensor([edit.pitch, edit.yaw, edit.roll], dtype=R_s.dtype, device=R_s.device)
        new = angles + d
        if reference:
            R_s = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
        R_d = rotation_matrix(new[:, 0], new[:, 1], new[:, 2])
        R_new = (R_d @ R_s.transpose(1, 2)) @ R_s
    else:
        R_new = R_s
    exp = edit_expression(motion.exp, edit)
    scale = motion.scale if edit.mov_z == 1.0 else edit.mov_z * motion.scale
    x_d = transform_keypoints(kp_c, R_new, exp, scale, motion.t, keep_tz=reference)
    if edit.eye_ratio is not None and eye_delta is not None:
        x_d = x_d + eye_delta(edit.eye_ratio)
    if edit.lip_ratio is not None and lip_delta is not None:
        x_d = x_d + lip_delta(edit.lip_ratio)
    if stitch_delta is not None:
        x_d = apply_stitching(x_d, stitch_delta(x_s.expand_as(x_d), x_d))
    return x_d


# -- expression from a driving image ---------------------------------------------------------------


TRANSFER_REGIONS = ("exp", "all", "pose", "lip", "eyes")


def driven_motion(src: Motion, drv: Motion, neutral_exp: torch.Tensor, region: str = "exp",
                  relative: bool = True) -> Motion:
    """The source's motion after a driving *image* acted on it (spec 4.8, driving-image rows): the same
    composition as animating a photo with a photo (``compose_image_motion``); edits start from it."""
    if region not in TRANSFER_REGIONS:
        raise InputError(f"region must be one of {', '.join(TRANSFER_REGIONS)}, not {region!r}")
    return compose_image_motion(src, drv, None, MotionOptions(relative=relative, region=region), neutral_exp)


# -- keyframes -------------------------------------------------------------------------------------

INTERPOLATIONS = ("catmull-rom", "smoothstep", "linear")


@dataclass(frozen=True)
class Keyframe:
    time: float  # seconds
    edit: Edit

    def __post_init__(self) -> None:
        if not math.isfinite(float(self.time)) or self.time < 0:
            raise InputError(f"keyframe time must be a number of seconds >= 0, got {self.time!r}")
        if not isinstance(self.edit, Edit):
            raise InputError("a keyframe holds an Edit")


def sort_keyframes(keyframes: Sequence[Keyframe]) -> list[Keyframe]:
    if not keyframes:
        raise InputError("an animation needs at least one keyframe")
    frames = sorted(keyframes, key=lambda k: k.time)
    for a, b in zip(frames, frames[1:]):
        if b.time - a.time < 1e-9:
            raise InputError(f"two keyframes at {a.time:g} s; give each keyframe its own time")
    return frames


def _fill_ratios(frames: list[Keyframe], base: Edit | None) -> list[dict]:
    """Slider values per keyframe; a ratio left None takes the base's (the source's) when others set it."""
    rows = [k.edit.as_dict() for k in frames]
    for name in ("eye_ratio", "lip_ratio"):
        if all(r[name] is None for r in rows):
            continue
        fallback = None if base is None else getattr(base, name)
        if fallback is None:
            fallback = next(r[name] for r in rows if r[name] is not None)
        for r in rows:
            if r[name] is None:
                r[name] = fallback
    return rows


def _hermite(p0: float, p1: float, m0: float, m1: float, u: float, dt: float) -> float:
    u2, u3 = u * u, u * u * u
    return ((2 * u3 - 3 * u2 + 1) * p0 + (u3 - 2 * u2 + u) * dt * m0 + (-2 * u3 + 3 * u2) * p1
            + (u3 - u2) * dt * m1)


def interpolate_values(times: Sequence[float], values: Sequence[float], t: float, method: str) -> float:
    """One slider at time ``t``: held before the first and after the last keyframe.

    catmull-rom: a cubic through every keyframe whose slope at a keyframe is that of the line
    between its neighbours (non-uniform spacing allowed; the ends get the one-sided slope), so the
    motion does not stop at each keyframe; smoothstep: eases out of and into every keyframe;
    linear: straight lines.
    """
    n = len(times)
    if n == 1 or t <= times[0]:
        return float(values[0])
    if t >= times[-1]:
        return float(values[-1])
    i = int(np.searchsorted(times, t, side="right")) - 1
    t0, t1 = times[i], times[i + 1]
    p0, p1 = values[i], values[i + 1]
    dt = t1 - t0
    u = (t - t0) / dt
    if method == "linear":
        return float(p0 + (p1 - p0) * u)
    if method == "smoothstep":
        return float(p0 + (p1 - p0) * (u * u * (3 - 2 * u)))

    def slope(j: int) -> float:
        if j == 0:
            return (values[1] - values[0]) / (times[1] - times[0])
        if j == n - 1:
            return (values[-1] - values[-2]) / (times[-1] - times[-2])
        return (values[j + 1] - values[j - 1]) / (times[j + 1] - times[j - 1])

    return float(_hermite(p0, p1, slope(i), slope(i + 1), u, dt))


def interpolate(keyframes: Sequence[Keyframe], times: Iterable[float], method: str = "catmull-rom",
                base: Edit | None = None) -> list[Edit]:
    """The edit at each time, every slider interpolated on its own.

    ``base`` supplies the eye and lip ratios of keyframes that leave them None (normally the
    source's own ratios), so that a ratio set in one keyframe eases in from the source's value.
    Values are kept inside the sliders' ranges (a Catmull-Rom curve can overshoot).
    """
    if method not in INTERPOLATIONS:
        raise InputError(f"interpolation must be one of {', '.join(INTERPOLATIONS)}, not {method!r}")
    frames = sort_keyframes(keyframes)
    rows = _fill_ratios(frames, base)
    kt = [k.time for k in frames]
    out = []
    for t in times:
        values = {}
        for name in EDIT_FIELDS:
            seq = [r[name] for r in rows]
            if seq[0] is None:
                values[name] = None
                continue
            v = interpolate_values(kt, seq, float(t), method)
            c = CONTROL[name]
            lo, hi = min(c.minimum, *seq), max(c.maximum, *seq)  # never clip what a keyframe asked for
            values[name] = min(max(v, lo), hi)
        out.append(Edit(**values))
    return out


def frame_times(keyframes: Sequence[Keyframe], fps: float, duration: float | None = None) -> np.ndarray:
    """Times of the frames of an animation from 0 to ``duration`` (default: the last keyframe)."""
    if not fps or fps <= 0 or not math.isfinite(fps):
        raise InputError(f"fps must be positive, got {fps!r}")
    end = sort_keyframes(keyframes)[-1].time if duration is None else float(duration)
    if end < 0 or not math.isfinite(end):
        raise InputError(f"duration must be >= 0 seconds, got {duration!r}")
    n = int(math.floor(end * fps + 1e-9)) + 1
    return np.arange(n, dtype=np.float64) / fps
