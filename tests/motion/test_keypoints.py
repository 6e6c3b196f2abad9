"""Keypoint math: head-pose bins, the rotation convention, the transform, stitching deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liveportrait.motion import keypoints as kpm
from liveportrait.networks import MotionOutput


def _rx(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


@pytest.mark.parametrize("pitch,yaw,roll", [(0, 0, 0), (10, -20, 5), (-45, 60, 30), (90, 0, -90)])
def test_rotation_is_transposed_zyx(pitch, yaw, roll):
    R = kpm.rotation_matrix(torch.tensor([pitch]), torch.tensor([yaw]), torch.tensor([roll]))[0].double().numpy()
    expected = (_rz(math.radians(roll)) @ _ry(math.radians(yaw)) @ _rx(math.radians(pitch))).T
    np.testing.assert_allclose(R, expected, atol=1e-6)
    np.testing.assert_allclose(R @ R.T, np.eye(3), atol=1e-6)


def test_rotation_is_batched():
    angles = torch.tensor([[0.0, 0, 0], [30, 0, 0], [0, 30, 0]])
    R = kpm.rotation_matrix(angles[:, 0], angles[:, 1], angles[:, 2])
    assert R.shape == (3, 3, 3)
    torch.testing.assert_close(R[0], torch.eye(3))
    assert not torch.allclose(R[1], R[2])


def test_headpose_bins_to_degrees():
    logits = torch.full((3, 66), -1e4)
    logits[0, 0] = 0.0  # all mass on bin 0
    logits[1, 65] = 0.0  # on the last bin
    logits[2, 32] = logits[2, 33] = 0.0  # split between two middle bins
    deg = kpm.headpose_to_degrees(logits)
    torch.testing.assert_close(deg, torch.tensor([-97.5, 97.5, 0.0]))
    # uniform logits give the mean bin index 32.5 -> 0 degrees
    assert abs(kpm.headpose_to_degrees(torch.zeros(1, 66)).item()) < 1e-4
    # already degrees: untouched
    assert kpm.headpose_to_degrees(torch.tensor([[12.0]])).item() == 12.0


def test_transform_keypoints_ignores_tz():
    g = torch.Generator().manual_seed(0)
    kp, exp = torch.randn(2, 21, 3, generator=g), torch.randn(2, 21, 3, generator=g)
    R = kpm.rotation_matrix(torch.tensor([10.0, -5]), torch.tensor([3.0, 40]), torch.tensor([0.0, 7]))
    scale, t = torch.tensor([[1.5], [0.7]]), torch.tensor([[0.1, -0.2, 5.0], [0.0, 0.3, -9.0]])
    x = kpm.transform_keypoints(kp, R, exp, scale, t)
    expected = scale[:, :, None] * (torch.einsum("bkc,bcd->bkd", kp, R) + exp)
    expected[..., 0] += t[:, None, 0]
    expected[..., 1] += t[:, None, 1]
    torch.testing.assert_close(x, expected)


def test_transform_info_follows_the_spec_formula():
    """Expected values written out from the spec in numpy, not from the module: degrees are the softmax
    expectation of the 66 bins x 3 - 97.5; R = (Rz(roll) Ry(yaw) Rx(pitch))^T; x = scale (kp R + exp) + (tx, ty, 0)."""
    g = torch.Generator().manual_seed(1)
    b = 2
    raw = {"pitch": torch.randn(b, 66, generator=g), "yaw": torch.randn(b, 66, generator=g) * 3,
           "roll": torch.randn(b, 66, generator=g), "t": torch.randn(b, 3, generator=g),
           "exp": torch.randn(b, 63, generator=g), "scale": torch.rand(b, 1, generator=g) + 0.5,
           "kp": torch.randn(b, 63, generator=g)}
    info = kpm.kp_info(MotionOutput(**raw))
    assert info["kp"].shape == (b, 21, 3) and info["pitch"].shape == (b, 1)
    n = {k: v.double().numpy() for k, v in raw.items()}

    def degrees(logits):
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        return (p * np.arange(66)).sum(axis=1) * 3 - 97.5

    angles = {k: degrees(n[k]) for k in ("pitch", "yaw", "roll")}
    for k, v in angles.items():
        np.testing.assert_allclose(info[k][:, 0].numpy(), v, atol=1e-4)
    got = kpm.transform_info(info).double().numpy()
    for i in range(b):
        pitch, yaw, roll = (math.radians(angles[k][i]) for k in ("pitch", "yaw", "roll"))
        R = (_rz(roll) @ _ry(yaw) @ _rx(pitch)).T
        x = n["scale"][i, 0] * (n["kp"][i].reshape(21, 3) @ R + n["exp"][i].reshape(21, 3))
        x[:, :2] += n["t"][i, :2]  # t_z is not added
        np.testing.assert_allclose(got[i], x, atol=1e-4)


def test_apply_stitching_adds_offsets_and_shared_shift():
    kp = torch.zeros(1, 21, 3)
    delta = torch.zeros(1, 65)
    delta[0, 3 * 4 + 2] = 1.0  # keypoint 4, z
    delta[0, 63], delta[0, 64] = 0.5, -0.25
    out = kpm.apply_stitching(kp, delta)
    assert out[0, 4, 2] == 1.0
    torch.testing.assert_close(out[0, :, 0], torch.full((21,), 0.5))
    torch.testing.assert_close(out[0, :, 1], torch.full((21,), -0.25))
    assert out[0, [i for i in range(21) if i != 4], 2].abs().max() == 0
