"""Keypoint math: head-pose bins, the rotation convention, the transform, stitching deltas."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liveportrait.motion import keypoints as kpm


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


def test_transform_info_matches_components():
    raw = {"pitch": torch.randn(1, 66), "yaw": torch.randn(1, 66), "roll": torch.randn(1, 66),
           "t": torch.randn(1, 3), "exp": torch.randn(1, 63), "scale": torch.rand(1, 1) + 0.5,
           "kp": torch.randn(1, 63)}
    info = kpm.kp_info(raw)
    assert info["kp"].shape == (1, 21, 3) and info["pitch"].shape == (1, 1)
    R = kpm.rotation_matrix(info["pitch"], info["yaw"], info["roll"])
    torch.testing.assert_close(kpm.transform_info(info),
                               kpm.transform_keypoints(info["kp"], R, info["exp"], info["scale"], info["t"]))


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
