"""Pure pieces of the pipeline: reference-frame choice, smoothing, video-source composition, outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from liveportrait.errors import InputError
from liveportrait.media import MotionTemplate
from liveportrait.motion import keypoints as kpm
from liveportrait.motion.compose import (
    LIP_ARRAY,
    Motion,
    MotionOptions,
    compose_image_source,
    compose_video_source,
    orthonormalize,
    smooth_motion,
    smooth_sequence,
)
from liveportrait.pipeline import default_output, output_kind, pick_reference_frame, side_by_side


def random_motion(n: int, seed: int = 0) -> Motion:
    g = torch.Generator().manual_seed(seed)
    angles = torch.randn(n, 3, generator=g) * 10
    return Motion(R=kpm.rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2]),
                  exp=torch.randn(n, 21, 3, generator=g) * 0.02, t=torch.randn(n, 3, generator=g) * 0.05,
                  scale=1.5 + torch.rand(n, 1, generator=g) * 0.2)


def template(n=10, eyes=None, lips=None, exp=None) -> MotionTemplate:
    R = np.repeat(np.eye(3, dtype=np.float32)[None], n, 0)
    return MotionTemplate(fps=25, R=R, exp=np.zeros((n, 21, 3), np.float32) if exp is None else exp,
                          t=np.zeros((n, 3), np.float32), scale=np.ones((n, 1), np.float32),
                          eye_ratio=eyes, lip_ratio=lips)


def test_reference_frame_auto_prefers_open_eyes_and_closed_mouth():
    eyes = np.full((6, 2), 0.35, np.float32)
    lips = np.array([[0.30], [0.25], [0.02], [0.01], [0.20], [0.4]], np.float32)
    eyes[3] = 0.05  # blinking while the mouth is closed: not neutral
    assert pick_reference_frame(template(6, eyes, lips), "auto") == 2
    assert pick_reference_frame(template(6, eyes, lips), 4) == 4
    assert pick_reference_frame(template(6, eyes, lips), -1) == 5
    with pytest.raises(InputError, match="outside"):
        pick_reference_frame(template(6, eyes, lips), 6)


def test_reference_frame_auto_without_ratios_takes_smallest_expression():
    exp = np.random.default_rng(0).normal(0, 0.05, (8, 21, 3)).astype(np.float32)
    exp[5] *= 0.01
    assert pick_reference_frame(template(8, exp=exp), "auto") == 5


def test_smoothing_keeps_constants_and_reduces_noise():
    const = np.full((50, 4), 3.0, np.float32)
    np.testing.assert_allclose(smooth_sequence(const, 1e-6), const, rtol=1e-6)
    rng = np.random.default_rng(0)
    signal = np.sin(np.linspace(0, 3, 200))[:, None].astype(np.float32)
    noisy = signal + rng.normal(0, 0.05, signal.shape).astype(np.float32)
    smoothed = smooth_sequence(noisy, 1e-4)
    assert np.abs(smoothed - signal).mean() < 0.5 * np.abs(noisy - signal).mean()
    # a tiny observation variance trusts the observations
    np.testing.assert_allclose(smooth_sequence(noisy, 1e-12), noisy, atol=1e-5)


def test_smoothing_matches_a_matrix_kalman_smoother():
    """The scalar form equals the textbook matrix RTS smoother with identity models."""
    rng = np.random.default_rng(1)
    z = rng.normal(0, 1, (12, 3))
    q, r = 1e-2, 5e-2
    n, d = z.shape
    eye = np.eye(d)
    m_f, p_f, m_p, p_p = [], [], [], []
    for i in range(n):
        mp, pp = (z[0], eye) if i == 0 else (m_f[-1], p_f[-1] + q * eye)
        k = pp @ np.linalg.pinv(pp + r * eye)
        m_p.append(mp)
        p_p.append(pp)
        m_f.append(mp + k @ (z[i] - mp))
        p_f.append(pp - k @ pp)
    out = list(m_f)
    for i in range(n - 2, -1, -1):
        g = p_f[i] @ np.linalg.pinv(p_p[i + 1])
        out[i] = m_f[i] + g @ (out[i + 1] - m_p[i + 1])
    np.testing.assert_allclose(smooth_sequence(z.astype(np.float32), r, q), np.array(out), atol=1e-5)


def test_smoothed_rotations_stay_rotations():
    m = random_motion(30)
    sm = smooth_motion(m, 1e-4)
    R = sm.R.double()
    torch.testing.assert_close(R @ R.transpose(1, 2), torch.eye(3, dtype=torch.float64).expand(30, 3, 3),
                               atol=1e-5, rtol=0)
    assert (torch.linalg.det(R) > 0).all()
    noisy = m.R.numpy() + 0.01
    assert np.allclose(np.linalg.det(orthonormalize(noisy)), 1, atol=1e-5)


def spec_partial_copy(dst: np.ndarray, src: np.ndarray) -> np.ndarray:
    """Spec 4.8's "partial expression copy" from ``src`` into ``dst`` (both (n, 21, 3)), transcribed."""
    out = dst.copy()
    for k in (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20):  # idx_exp: all three components
        out[:, k] = src[:, k]
    for k, axes in ((3, [1]), (4, [1]), (5, [2]), (8, [2]), (9, [1, 2])):
        out[:, k, axes] = src[:, k, axes]
    return out


def spec_video_source_relative_all(kp_c, src: Motion, drv: Motion, d0: Motion) -> np.ndarray:
    """Spec 4.8, source VIDEO, relative, region all, driving video, no smoothing, in float64 numpy:
    E_i = d_s,i + d_d,i - d_d0; R~_i = (R_d,i R_d0^T) R_s,i; x_d = s_s,i (x_c R~_i + copy(d_s,i <- E_i)) + t_s,i
    with t_z set to 0."""
    kp, (Rs, es, ts, ss), (Rd, ed_, _, _), (R0, e0, _, _) = (
        kp_c.double().numpy(), *((m.R.double().numpy(), m.exp.double().numpy(), m.t.double().numpy(),
                                    m.scale.double().numpy()) for m in (src, drv, d0)))
    E = es + ed_ - e0
    R = np.einsum("nij,nkj,nkl->nil", Rd, R0, Rs)  # (R_d,i @ R_d0^T) @ R_s,i
    t = ts.copy()
    t[:, 2] = 0
    return ss[:, :, None] * (np.einsum("nkj,nji->nki", kp, R) + spec_partial_copy(es, E)) + t[:, None, :]


@pytest.mark.parametrize("driving", ["still", "moving"])
def test_video_source_with_still_driving_frames_keeps_source(driving):
    """Relative motion with a driving that does not move leaves every source frame where it is (t_z dropped);
    a moving one moves it as spec 4.8 says (smoothing off: observation variance 0)."""
    src = random_motion(8, 1)
    kp_c = torch.randn(8, 21, 3) * 0.1
    d0 = random_motion(1, 2)
    if driving == "still":
        drv = Motion(d0.R.expand(8, 3, 3), d0.exp.expand(8, 21, 3), d0.t.expand(8, 3), d0.scale.expand(8, 1))
    else:
        drv = random_motion(8, 3)
        d0 = drv[0]
    x_d = compose_video_source(kp_c, src, drv, d0, MotionOptions(), torch.from_numpy(LIP_ARRAY).float(), 0.0)
    if driving == "still":  # the source frames themselves: s (x_c R + exp) + (t_x, t_y, 0)
        expected = src.scale[:, :, None].numpy() * (kp_c.numpy() @ src.R.numpy() + src.exp.numpy()) \
            + (src.t.numpy() * [1, 1, 0])[:, None, :]
    else:
        expected = spec_video_source_relative_all(kp_c, src, drv, d0)
    np.testing.assert_allclose(x_d.numpy(), expected, rtol=0, atol=2e-5)


@pytest.mark.parametrize("region,moves", [("all", True), ("pose", True), ("exp", False), ("lip", False)])
def test_image_source_regions_move_what_they_should(region, moves):
    src = random_motion(1, 3)
    kp_c = torch.randn(1, 21, 3) * 0.1
    moving = random_motion(5, 4)
    # only the head turns: expression, translation and scale stay those of frame 0
    drv = Motion(moving.R, moving.exp[:1].expand(5, -1, -1), moving.t[:1].expand(5, -1), moving.scale[:1].expand(5, -1))
    x_d = compose_image_source(kp_c, src, drv, drv[0], MotionOptions(region=region))
    turned = not torch.allclose(x_d[1:], x_d[:1].expand(4, -1, -1), atol=1e-4)
    assert turned == moves


def test_output_naming(tmp_path):
    s, d = Path("a/photo.jpg"), Path("b/talk.mp4")
    assert default_output(s, d, None, False, None) == Path("animations/photo--talk.mp4")
    assert default_output(s, d, tmp_path, False, "gif") == tmp_path / "photo--talk.gif"
    assert default_output(s, Path("x.lpt.npz"), tmp_path / "o.mp4", False, None) == tmp_path / "o.mp4"
    assert output_kind(Path("o.mp4"), None, False) == "mp4"
    assert output_kind(Path("o.jpeg"), None, True) == "jpg"
    with pytest.raises(InputError):
        output_kind(Path("o.jpg"), None, False)
    with pytest.raises(InputError, match="unknown output format"):
        output_kind(Path("o.xyz"), None, False)


def test_side_by_side_scales_to_one_height():
    out = side_by_side([np.zeros((256, 256, 3), np.uint8), np.zeros((100, 300, 3), np.uint8)], 128)
    assert out.shape == (128, 128 + 384, 3)
