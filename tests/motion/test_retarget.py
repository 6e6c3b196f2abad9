"""The one retargeting rule: the MLP sees [x_s, source ratios, target] per frame; unmeasured frames stay put."""

from __future__ import annotations

import math

import torch

from liveportrait.motion.compose import retarget_delta


def recording_mlp(calls):
    def mlp(x, ratios):
        calls.append((x.clone(), ratios.clone()))
        return x * 0 + ratios.sum(dim=1)[:, None, None]  # a delta that shows what it was fed
    return mlp


def test_one_source_many_targets_broadcasts():
    calls = []
    x_s = torch.randn(1, 21, 3)
    delta = retarget_delta(recording_mlp(calls), x_s, torch.tensor([[0.3, 0.4]]), torch.tensor([0.1, 0.2, 0.5]))
    x, ratios = calls[0]
    assert x.shape == (3, 21, 3) and torch.equal(x[2], x_s[0])
    assert torch.allclose(ratios, torch.tensor([[0.3, 0.4, 0.1], [0.3, 0.4, 0.2], [0.3, 0.4, 0.5]]))
    assert [round(float(d[0, 0]), 6) for d in delta] == [0.8, 0.9, 1.2]


def test_frames_without_measured_ratios_get_no_offset():
    calls = []
    x_s = torch.randn(4, 21, 3)
    ratios = torch.tensor([[0.2], [math.nan], [0.4], [math.nan]])
    delta = retarget_delta(recording_mlp(calls), x_s, ratios, 0.5)
    assert calls[0][0].shape[0] == 2  # only the two measured frames reach the network
    assert torch.equal(delta[1], torch.zeros(21, 3)) and torch.equal(delta[3], torch.zeros(21, 3))
    assert abs(float(delta[0, 0, 0]) - 0.7) < 1e-6 and abs(float(delta[2, 0, 0]) - 0.9) < 1e-6
