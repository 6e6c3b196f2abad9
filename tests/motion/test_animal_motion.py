"""Animal mode's motion rule (spec section 6) against a plain numpy transcription of its steps."""

from __future__ import annotations

import numpy as np
import torch
from scipy.spatial import ConvexHull

from liveportrait.config import AnimateConfig
from liveportrait.motion.compose import Motion, compose_animal
from liveportrait.motion.keypoints import rotation_matrix


def random_motion(n: int, seed: int) -> Motion:
    g = torch.Generator().manual_seed(seed)
    angles = [torch.randn(n, generator=g) * 10 for _ in range(3)]
    return Motion(R=rotation_matrix(*angles), exp=torch.randn(n, 21, 3, generator=g) * 0.03,
                  t=torch.randn(n, 3, generator=g) * 0.1, scale=1 + torch.rand(n, 1, generator=g))


def test_animal_rule_is_the_spec_steps():
    g = torch.Generator().manual_seed(0)
    kp_c = torch.randn(1, 21, 3, generator=g) * 0.3
    src = random_motion(1, 1)
    x_s = (kp_c @ src.R + src.exp) * src.scale[:, :, None] + torch.nn.functional.pad(src.t[:, None, :2], (0, 1))
    drv = random_motion(5, 2)
    got = compose_animal(kp_c, x_s, src.scale, drv, drv[0]).double().numpy()

    # spec 6: t_z := 0; x_d,i = s_s (x_c,s R_d,i + delta_d,i) + t; m = sqrt(V(x_s)) / sqrt(V(x_d,0));
    # x_d,i <- x_s + (x_d,i - x_d,0) m
    k, s = kp_c.double().numpy()[0], float(src.scale[0, 0])
    xs = x_s.double().numpy()[0]
    xd = []
    for i in range(5):
        t = drv.t[i].double().numpy().copy()
        t[2] = 0
        xd.append(s * (k @ drv.R[i].double().numpy() + drv.exp[i].double().numpy()) + t)
    m = np.sqrt(ConvexHull(xs).volume) / np.sqrt(ConvexHull(xd[0]).volume)
    want = np.stack([xs + (x - xd[0]) * m for x in xd])
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    assert abs(m - 1) > 1e-3  # the hull ratio is really at work here (it is ~1 in the human rule)
    np.testing.assert_allclose(got[0], xs, atol=1e-6)  # the neutral frame leaves the source as it is


def test_animal_config_uses_the_animal_rule_without_stitching():
    motion = AnimateConfig().as_animal().motion
    assert motion.animal_motion and not motion.stitching
    assert not AnimateConfig().motion.animal_motion
