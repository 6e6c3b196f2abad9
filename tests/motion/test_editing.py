"""Editing controls against the reference editor's table (spec 5.2), pure keypoint math, no networks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liveportrait.errors import InputError
from liveportrait.motion import editing as ed
from liveportrait.motion.compose import LIP_ARRAY, Motion, MotionOptions, compose_image_source
from liveportrait.motion.editing import Edit, Keyframe, apply_edit
from liveportrait.motion.keypoints import rotation_matrix, transform_keypoints

X, Y, Z = 0, 1, 2

# spec 5.2, transcribed independently of the implementation: slider value v -> {(k, axis): offset}
SPEC = {
    "mov_x": lambda v: {(5, X): -v},
    "mov_y": lambda v: {(5, Y): v},
    "pout": lambda v: {(19, X): v},
    "purse": lambda v: {(14, Y): 0.001 * v, (3, Y): -0.0005 * v, (7, Y): -0.0005 * v, (17, Z): -0.0005 * v},
    "grin": lambda v: {(20, Z): -0.001 * v, (20, Y): -0.001 * v, (14, Y): -0.001 * v},
    "lip_open": lambda v: {(19, Y): 0.001 * v, (19, Z): 0.0001 * v, (17, Y): -0.0001 * v},
    "smile": lambda v: {(20, Y): -0.01 * v, (14, Y): -0.02 * v, (17, Y): 0.0065 * v, (17, Z): 0.003 * v,
                        (13, Y): -0.00275 * v, (16, Y): -0.00275 * v, (3, Y): -0.0035 * v, (7, Y): -0.0035 * v},
    "wink": lambda v: {(11, Y): 0.001 * v, (13, Y): -0.0003 * v, (17, X): 0.0003 * v, (17, Y): 0.0003 * v,
                       (3, Y): -0.0003 * v},
    "eyebrow": lambda v: ({(1, Y): 0.001 * v, (2, Y): -0.001 * v} if v > 0 else
                          {(1, X): -0.001 * v, (2, X): 0.001 * v, (1, Y): 0.0003 * v, (2, Y): -0.0003 * v}),
}


def gaze(x: float, y: float) -> dict:
    out: dict = {}

    def add(key, v):
        out[key] = out.get(key, 0.0) + v

    if x > 0:
        add((11, X), 0.0007 * x)
        add((15, X), 0.001 * x)
    else:
        add((11, X), 0.001 * x)
        add((15, X), 0.0007 * x)
    add((11, Y), -0.001 * y)
    add((15, Y), -0.001 * y)
    b = -y / 2
    add((11, Y), -0.001 * b)
    add((13, Y), 0.0003 * b)
    add((15, Y), -0.001 * b)
    add((16, Y), 0.0003 * b)
    return out


@pytest.fixture
def source():
    g = torch.Generator().manual_seed(7)
    kp_c = torch.randn(1, 21, 3, generator=g) * 0.3
    angles = torch.tensor([[8.0, -12.0, 4.0]])
    R = rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    exp = torch.randn(1, 21, 3, generator=g) * 0.02
    scale = torch.tensor([[1.7]])
    t = torch.tensor([[0.05, -0.03, 0.4]])
    motion = Motion(R=R, exp=exp, t=t, scale=scale)
    x_s = transform_keypoints(kp_c, R, exp, scale, t)
    return motion, kp_c, x_s, angles


def exp_offsets(source, edit: Edit) -> torch.Tensor:
    """What the edit did to the expression, read back from the keypoints: (x_d - x_0) / scale."""
    motion, kp_c, x_s, angles = source
    x0 = apply_edit(motion, kp_c, x_s, Edit(), angles=angles)
    x1 = apply_edit(motion, kp_c, x_s, edit, angles=angles)
    return (x1 - x0)[0] / motion.scale[0, 0]


def check_moves(diff: torch.Tensor, expected: dict) -> None:
    want = torch.zeros(21, 3)
    for (k, a), v in expected.items():
        want[k, a] = v
    moved = {(int(k), int(a)) for k, a in torch.nonzero(diff)}
    assert moved == {key for key, v in expected.items() if v != 0}, "moved keypoints differ from spec 5.2"
    torch.testing.assert_close(diff, want, atol=2e-6, rtol=1e-3)


@pytest.mark.parametrize("name,value", [
    ("mov_x", 0.12), ("mov_y", -0.1), ("pout", 0.07), ("purse", -15.0), ("purse", 10.0), ("grin", 9.0),
    ("lip_open", 80.0), ("lip_open", -60.0), ("smile", 1.1), ("smile", -0.3), ("wink", 25.0),
    ("eyebrow", 20.0), ("eyebrow", -20.0),
])
def test_each_control_moves_exactly_its_spec_keypoints(source, name, value):
    check_moves(exp_offsets(source, Edit(**{name: value})), SPEC[name](value))


@pytest.mark.parametrize("x,y", [(20.0, 0.0), (-20.0, 0.0), (0.0, 40.0), (0.0, -40.0), (12.0, -30.0), (-7.0, 50.0)])
def test_eye_gaze_moves_eyeballs_and_lids_per_spec(source, x, y):
    check_moves(exp_offsets(source, Edit(eyeball_x=x, eyeball_y=y)), gaze(x, y))


def test_neutral_edit_gives_back_the_source_keypoints(source):
    motion, kp_c, x_s, angles = source
    assert torch.equal(apply_edit(motion, kp_c, x_s, Edit(), angles=angles), x_s)
    # without angles they are recovered from R, and a neutral edit still does not touch R
    assert torch.equal(apply_edit(motion, kp_c, x_s, Edit()), x_s)


def test_reference_mode_adds_tz_like_the_official_app(source):
    motion, kp_c, x_s, angles = source
    x_ref = apply_edit(motion, kp_c, x_s, Edit(), angles=angles, reference=True)
    torch.testing.assert_close(x_ref[..., 2] - x_s[..., 2], torch.full((1, 21), 0.4), atol=1e-5, rtol=0)
    torch.testing.assert_close(x_ref[..., :2], x_s[..., :2], atol=1e-5, rtol=0)


@pytest.mark.parametrize("d", [(5.0, 0.0, 0.0), (0.0, -20.0, 0.0), (0.0, 0.0, 12.0), (-10.0, 15.0, -5.0)])
def test_pose_sliders_add_degrees_to_the_head_angles(source, d):
    motion, kp_c, x_s, angles = source
    edit = Edit(pitch=d[0], yaw=d[1], roll=d[2])
    x_d = apply_edit(motion, kp_c, x_s, edit, angles=angles)
    a = angles + torch.tensor([d])
    R = rotation_matrix(a[:, 0], a[:, 1], a[:, 2])
    t0 = motion.t.clone()
    t0[..., 2] = 0
    want = transform_keypoints(kp_c, R, motion.exp, motion.scale, t0)
    torch.testing.assert_close(x_d, want, atol=1e-5, rtol=0)
    # the expression is untouched: undoing the rotation gives the source's expression back
    recovered = (x_d - t0[:, None]) / motion.scale[:, :, None] - kp_c @ R
    torch.testing.assert_close(recovered, motion.exp, atol=1e-5, rtol=0)


def test_mov_z_scales_the_head_about_its_translation(source):
    motion, kp_c, x_s, angles = source
    x_d = apply_edit(motion, kp_c, x_s, Edit(mov_z=1.15), angles=angles)
    t = torch.tensor([[[0.05, -0.03, 0.0]]])
    torch.testing.assert_close(x_d - t, 1.15 * (x_s - t), atol=1e-6, rtol=0)


def test_rotation_angles_invert_rotation_matrix():
    a = torch.tensor([[10.0, -30.0, 5.0], [-40.0, 60.0, -80.0], [0.0, 0.0, 0.0]])
    R = rotation_matrix(a[:, 0], a[:, 1], a[:, 2])
    torch.testing.assert_close(ed.rotation_angles(R), a, atol=1e-3, rtol=0)


@pytest.mark.parametrize("name", ["aaa", "eee", "woo"])
def test_mouth_shapes_move_only_mouth_keypoints(source, name):
    for v in (1.0, -0.3):
        diff = exp_offsets(source, Edit(**{name: v}))
        moved = {int(k) for k, _ in torch.nonzero(diff)}
        assert moved and moved <= set(ed.MOUTH_KEYPOINTS)


def test_mouth_shapes_are_the_documented_official_combinations(source):
    smile_mouth = lambda v: {k: x for k, x in SPEC["smile"](v).items() if k[0] in ed.MOUTH_KEYPOINTS}  # noqa: E731

    def total(*parts):
        out: dict = {}
        for p in parts:
            for k, v in p.items():
                out[k] = out.get(k, 0.0) + v
        return out

    check_moves(exp_offsets(source, Edit(aaa=0.8)), total(SPEC["lip_open"](80.0), SPEC["purse"](-3.2)))
    check_moves(exp_offsets(source, Edit(eee=0.5)),
                total(SPEC["grin"](6.0), smile_mouth(0.125), SPEC["lip_open"](6.0)))
    check_moves(exp_offsets(source, Edit(woo=1.0)),
                total(SPEC["purse"](15.0), SPEC["lip_open"](25.0), smile_mouth(-0.15)))


def test_controls_compose_by_adding_their_offsets(source):
    parts = [Edit(smile=0.6), Edit(wink=12.0), Edit(eyebrow=-10.0), Edit(eyeball_x=5.0, eyeball_y=-9.0),
             Edit(grin=4.0), Edit(lip_open=30.0), Edit(aaa=0.4), Edit(mov_x=0.05)]
    together = Edit(smile=0.6, wink=12.0, eyebrow=-10.0, eyeball_x=5.0, eyeball_y=-9.0, grin=4.0, lip_open=30.0,
                    aaa=0.4, mov_x=0.05)
    summed = sum(exp_offsets(source, p) for p in parts)
    torch.testing.assert_close(exp_offsets(source, together), summed, atol=2e-6, rtol=0)


def spec_gaze_terms(x: float, y: float) -> list:
    """Spec 5.2's eye gaze row, term by term in its order (``gaze`` above merges repeated keypoints)."""
    horizontal = [((11, X), 0.0007 * x), ((15, X), 0.001 * x)] if x > 0 else [((11, X), 0.001 * x),
                                                                              ((15, X), 0.0007 * x)]
    b = -y / 2
    return horizontal + [((11, Y), -0.001 * y), ((15, Y), -0.001 * y), ((11, Y), -0.001 * b),
                         ((13, Y), 0.0003 * b), ((15, Y), -0.001 * b), ((16, Y), 0.0003 * b)]


@pytest.mark.parametrize("x", [3.0, -3.0])
def test_edits_apply_in_the_reference_order(source, x):
    """Spec 5.2 step 5: eyeball direction, smile, wink, eyebrow, lip variations zero to three (pout, purse,
    grin, lip_open), mov_x, mov_y; then our mouth shapes (aaa = lip_open(100 v) + purse(-4 v)). Each control's
    terms in its table row's order, so that terms on the same coordinate are summed as the reference sums them."""
    v = {"smile": 0.7, "wink": 11.0, "eyebrow": -6.0, "pout": 0.04, "purse": 9.0, "grin": 5.0, "lip_open": 40.0,
         "mov_x": 0.1, "mov_y": -0.05}
    edit = Edit(eyeball_x=x, eyeball_y=-20.0, aaa=0.3, **v)
    expected = spec_gaze_terms(x, -20.0)
    for name in ("smile", "wink", "eyebrow", "pout", "purse", "grin", "lip_open", "mov_x", "mov_y"):
        expected += list(SPEC[name](v[name]).items())
    expected += list(SPEC["lip_open"](100 * 0.3).items()) + list(SPEC["purse"](-4 * 0.3).items())
    terms = ed.expression_terms(edit)
    assert [(k, a) for k, a, _ in terms] == [key for key, _ in expected]
    np.testing.assert_allclose([amount for _, _, amount in terms], [c for _, c in expected], rtol=1e-12, atol=0)
    # the expression: float32 additions one term at a time, in that order
    motion = source[0]
    want = motion.exp.numpy().copy()
    for (k, a), c in expected:
        want[0, k, a] += np.float32(c)
    np.testing.assert_array_equal(ed.edit_expression(motion.exp, edit).numpy(), want)


def test_retargeting_and_stitching_callables(source):
    motion, kp_c, x_s, angles = source
    calls = []
    eye = torch.full((1, 21, 3), 0.01)
    lip = torch.full((1, 21, 3), -0.02)

    def eye_fn(target):
        calls.append(("eye", target))
        return eye

    def lip_fn(target):
        calls.append(("lip", target))
        return lip

    def stitch(xs, xd):
        calls.append(("stitch", None))
        assert torch.equal(xs, x_s)
        return torch.zeros(1, 65)

    x_d = apply_edit(motion, kp_c, x_s, Edit(), angles=angles, eye_delta=eye_fn, lip_delta=lip_fn)
    assert calls == [] and torch.equal(x_d, x_s)
    x_d = apply_edit(motion, kp_c, x_s, Edit(eye_ratio=0.4, lip_ratio=0.1), angles=angles, eye_delta=eye_fn,
                     lip_delta=lip_fn, stitch_delta=stitch)
    assert calls == [("eye", 0.4), ("lip", 0.1), ("stitch", None)]
    torch.testing.assert_close(x_d, x_s + eye + lip)


@pytest.mark.parametrize("relative", [True, False])
@pytest.mark.parametrize("region", ["exp", "all", "pose", "lip", "eyes"])
def test_driven_motion_matches_the_pipelines_driving_image_composition(source, relative, region):
    motion, kp_c, x_s, angles = source
    g = torch.Generator().manual_seed(3)
    a = torch.tensor([[-5.0, 20.0, 2.0]])
    drv = Motion(R=rotation_matrix(a[:, 0], a[:, 1], a[:, 2]), exp=torch.randn(1, 21, 3, generator=g) * 0.02,
                 t=torch.tensor([[0.1, 0.0, 0.3]]), scale=torch.tensor([[1.5]]))
    lip_array = torch.from_numpy(LIP_ARRAY).float()
    want = compose_image_source(kp_c, motion, drv, None, MotionOptions(relative=relative, region=region), lip_array)
    got = apply_edit(ed.driven_motion(motion, drv, lip_array, region, relative), kp_c, x_s, Edit())
    torch.testing.assert_close(got, want, atol=1e-6, rtol=0)


def test_edit_validation():
    with pytest.raises(InputError):
        Edit(smile=math.nan)
    with pytest.raises(InputError):
        Edit(mov_z=0)
    with pytest.raises(InputError):
        Edit(eye_ratio=1.5)
    with pytest.raises(InputError):
        Edit.from_dict({"smiley": 1})
    assert Edit.from_dict(Edit(smile=0.5).as_dict()) == Edit(smile=0.5)
    assert Edit(smile=9, yaw=-99).clamped() == Edit(smile=1.3, yaw=-25)


# -- keyframes ---------------------------------------------------------------------------------------

KEYS = [Keyframe(0.0, Edit()), Keyframe(1.0, Edit(smile=1.0, yaw=10)), Keyframe(3.0, Edit(smile=0.2, yaw=-20))]


@pytest.mark.parametrize("method", ed.INTERPOLATIONS)
def test_interpolation_passes_through_keyframes_and_holds_outside(method):
    out = ed.interpolate(KEYS, [-1.0, 0.0, 1.0, 3.0, 5.0], method)
    assert [e.smile for e in out] == pytest.approx([0.0, 0.0, 1.0, 0.2, 0.2])
    assert [e.yaw for e in out] == pytest.approx([0.0, 0.0, 10.0, -20.0, -20.0])
    assert all(e.mov_z == 1.0 and e.eye_ratio is None for e in out)


def test_smoothstep_eases_at_each_keyframe_and_catmull_rom_keeps_moving():
    def slope(method, t, h=1e-4):
        a, b = ed.interpolate(KEYS, [t - h, t + h], method)
        return (b.yaw - a.yaw) / (2 * h)

    assert abs(slope("smoothstep", 1.0 - 1e-3)) < 0.2 and abs(slope("smoothstep", 1.0 + 1e-3)) < 0.2
    # Catmull-Rom: the slope at keyframe 1 is that of the chord between its neighbours, from both sides
    chord = (-20 - 0) / 3.0
    assert slope("catmull-rom", 1.0 - 1e-3) == pytest.approx(chord, rel=0.02)
    assert slope("catmull-rom", 1.0 + 1e-3) == pytest.approx(chord, rel=0.02)
    mid = ed.interpolate(KEYS, [0.5], "linear")[0]
    assert mid.yaw == pytest.approx(5.0) and mid.smile == pytest.approx(0.5)


def test_ratio_keyframes_ease_in_from_the_source_ratio():
    keys = [Keyframe(0.0, Edit()), Keyframe(2.0, Edit(eye_ratio=0.1))]
    out = ed.interpolate(keys, [0.0, 1.0, 2.0], "linear", base=Edit(eye_ratio=0.3, lip_ratio=0.05))
    assert [e.eye_ratio for e in out] == pytest.approx([0.3, 0.2, 0.1])
    assert all(e.lip_ratio is None for e in out)  # no keyframe touched the lips


def test_keyframe_errors_and_frame_times():
    with pytest.raises(InputError):
        ed.interpolate([], [0.0])
    with pytest.raises(InputError):
        ed.interpolate([Keyframe(1.0, Edit()), Keyframe(1.0, Edit(smile=1))], [0.0])
    with pytest.raises(InputError):
        Keyframe(-1.0, Edit())
    with pytest.raises(InputError):
        ed.interpolate(KEYS, [0.0], "cubic-ish")
    np.testing.assert_allclose(ed.frame_times(KEYS, 2), [0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0])
    assert len(ed.frame_times([Keyframe(0.0, Edit())], 25)) == 1
