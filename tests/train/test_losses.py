"""Losses, geometry helpers, the discriminator and the spectral-norm power iteration."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from liveportrait.motion import keypoints as kpm
from liveportrait.networks.blocks import SpectralNormConv2d
from liveportrait.train import landmarks as lmk
from liveportrait.train import losses as L
from liveportrait.train.backbones import build_perceptual
from liveportrait.train.config import BackboneConfig, DiscriminatorConfig
from liveportrait.train.discriminator import CascadedDiscriminator
from liveportrait.train.spectral import power_iteration_


def test_wing_loss_is_log_then_linear_and_continuous():
    t = torch.zeros(1, 1, 2)
    small = L.wing_loss(torch.tensor([[[0.01, 0.0]]]), t)  # 0.5 "pixels"
    assert small.item() == pytest.approx(10 * math.log1p(0.5 / 2), rel=1e-5)
    w = 10.0 / 50  # exactly at the width: both branches agree
    below = L.wing_loss(torch.tensor([[[w - 1e-6, 0.0]]]), t)
    above = L.wing_loss(torch.tensor([[[w + 1e-6, 0.0]]]), t)
    assert below.item() == pytest.approx(above.item(), abs=1e-3)
    masked = L.wing_loss(torch.ones(2, 3, 2), torch.zeros(2, 3, 2), weight=torch.tensor([0.0, 0.0]))
    assert masked.item() == 0.0


def test_affine_warp_and_equivariance_share_one_convention():
    """A dot at q in the image shows up at p in the warped one with A p + b = q, and keypoints
    mapped that way give a zero equivariance loss."""
    size = 64
    img = torch.zeros(1, 1, size, size)
    qy, qx = 20, 41
    img[0, 0, qy - 1:qy + 2, qx - 1:qx + 2] = 1.0
    theta = torch.tensor([[[0.9, 0.1, 0.05], [-0.08, 1.05, -0.1]]])
    warped = L.warp_affine(img, theta)
    ys, xs = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    w = warped[0, 0].clamp(min=0)
    p = torch.tensor([(w * xs).sum() / w.sum(), (w * ys).sum() / w.sum()])
    p_norm = (2 * p + 1) / size - 1
    q_norm = (2 * torch.tensor([qx, qy], dtype=torch.float32) + 1) / size - 1
    assert torch.allclose(theta[0, :, :2] @ p_norm + theta[0, :, 2], q_norm, atol=0.03)

    kp = torch.rand(2, 21, 3) * 2 - 1
    th = L.random_affine(2, 0.1, torch.Generator().manual_seed(0))
    a, b = th[:, :, :2], th[:, :, 2]
    kp_w = kp.clone()
    kp_w[..., :2] = torch.linalg.solve(a, (kp[..., :2] - b[:, None]).transpose(1, 2)).transpose(1, 2)
    assert L.equivariance_loss(kp, kp_w, th).item() < 1e-6
    assert L.equivariance_loss(kp, kp_w + 0.1, th).item() > 0.05


def test_keypoint_prior_spread_and_depth():
    far = torch.zeros(1, 4, 3)
    far[0, :, 0] = torch.tensor([-0.9, -0.3, 0.3, 0.9])
    far[0, :, 2] = 0.33
    assert L.keypoint_prior_loss(far).item() == pytest.approx(0.0, abs=1e-6)
    close = far.clone()
    close[0, 1, 0] = -0.85  # 0.05 from its neighbour: squared distance 0.0025 < 0.1
    assert L.keypoint_prior_loss(close).item() == pytest.approx(2 * (0.1 - 0.05**2), rel=1e-4)


def test_head_pose_loss_in_radians_and_masked():
    pred = torch.tensor([[10.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
    target = torch.zeros(2, 3)
    assert L.head_pose_loss(pred, target, torch.tensor([True, False])).item() == pytest.approx(math.radians(10) / 3)


def test_pose_from_landmarks_inverts_the_keypoint_rotation():
    rng = np.random.default_rng(0)
    face = np.zeros((lmk.NUM_LANDMARKS, 3))
    face[:, :2] = rng.normal(0, 0.3, (lmk.NUM_LANDMARKS, 2))
    face[263] = (0.5, -0.2, 0)
    face[33] = (-0.5, -0.2, 0)
    face[lmk.FOREHEAD] = (0, -0.9, 0)
    face[lmk.CHIN] = (0, 0.9, 0)
    for angles in ([10.0, -20.0, 5.0], [-15.0, 30.0, -12.0], [0.0, 0.0, 0.0]):
        R = kpm.rotation_matrix(*(torch.tensor([a]) for a in angles))[0].numpy()
        moved = face @ R * 100 + np.array([250, 240, 0])
        assert lmk.pose_from_landmarks(moved) == pytest.approx(angles, abs=1e-3)
    assert lmk.pose_from_landmarks(np.zeros((10, 3))) is None


def test_region_patches_follow_the_landmarks():
    lm = torch.zeros(1, lmk.NUM_LANDMARKS, 2)
    lm[0, lmk.LIP_POINTS, 0] = torch.linspace(0.2, 0.6, len(lmk.LIP_POINTS))
    lm[0, lmk.LIP_POINTS, 1] = 0.5
    boxes = lmk.region_boxes(lm, torch.tensor([True]))
    cx, cy, w, h = boxes["lip"][0].tolist()
    assert (cx, cy) == pytest.approx((0.4, 0.5)) and w == pytest.approx(2 * h)
    img = torch.zeros(1, 3, 64, 64)
    img[:, :, 40:56, 36:60] = 1.0  # around x in [0.125, 0.875], y in [0.25, 0.75]
    patch = lmk.crop_patches(img, boxes["lip"], (8, 16))
    assert patch.shape == (1, 3, 8, 16) and patch[:, :, 3:5, 6:10].mean() > 0.9
    # samples without landmarks fall back to fixed boxes
    fallback = lmk.region_boxes(lm, torch.tensor([False]))
    assert not torch.allclose(fallback["lip"], boxes["lip"])


def test_face_mask_covers_the_hull_and_grows():
    pts = np.array([[20, 20], [40, 20], [40, 40], [20, 40]] * 120, np.float32)[: lmk.NUM_LANDMARKS]
    tight = lmk.face_mask(pts, 64, 0.0)
    grown = lmk.face_mask(pts, 64, 0.1)
    assert tight[30, 30] == 1 and tight[5, 5] == 0 and grown.sum() > tight.sum()


def test_power_iteration_finds_the_spectral_norm():
    torch.manual_seed(0)
    conv = SpectralNormConv2d(6, 5, 3, padding=1)
    with torch.no_grad():
        conv.weight_orig.normal_()
        conv.weight_u.normal_()
        conv.weight_u /= conv.weight_u.norm()
    mat = conv.weight_orig.reshape(5, -1)
    for _ in range(30):
        assert power_iteration_(conv) == 1
    sigma = torch.dot(conv.weight_u, mat @ conv.weight_v)
    assert sigma.item() == pytest.approx(torch.linalg.matrix_norm(mat, ord=2).item(), rel=1e-4)


def test_perceptual_loss_and_discriminator_shapes():
    net = build_perceptual(BackboneConfig(arch="tiny"))
    loss = L.PerceptualLoss(net, [1, 1, 1, 1, 1], [1.0, 0.5])
    a, b = torch.rand(2, 3, 64, 64), torch.rand(2, 3, 64, 64)
    assert loss(a, a).item() == 0.0 and loss(a, b).item() > 0
    assert not any(p.requires_grad for p in net.parameters())
    with pytest.raises(Exception, match="needs VGG-19 weights"):
        build_perceptual(BackboneConfig(arch="vgg19"))
    d = CascadedDiscriminator(DiscriminatorConfig(channels=4, max_channels=8, num_layers=3, num_scales=2),
                              ["image", "lip"])
    out = d({"image": torch.rand(2, 3, 64, 64), "lip": torch.rand(2, 3, 16, 32)})
    assert set(out) == {"image", "lip"} and len(out["image"]) == 2
    feats, logits = out["lip"][0]
    assert len(feats) == 3 and logits.shape[:2] == (2, 1)
    assert L.lsgan_discriminator_loss(out["image"], out["image"]).item() > 0
