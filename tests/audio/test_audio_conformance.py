"""Speech -> motion -> driving keypoints reproduce the JoyVASA reference with the kit's synthetic weights:
every output of fixture_espeak.npz from its inputs alone, within the kit's tolerances (README: relative L2
1e-4 for arrays, 1e-3 for the rendered frame)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.networks.test_conformance import rel_l2

INPUT_PREFIXES = ("audio_16k", "noise_", "source_rgb_256", "src_")
FRAME_KEYS = {"pipe_default_out"}


@pytest.fixture(scope="session")
def audio_fixture(audio_kit):
    return dict(np.load(audio_kit / "fixture_espeak.npz"))


def _is_input(key: str) -> bool:
    return key.startswith(INPUT_PREFIXES)


@pytest.fixture(scope="session")
def audio_outputs(audio_fixture, audio_weights, synthetic_weights):
    from liveportrait.conformance import run_audio_fixture

    inputs = {k: v for k, v in audio_fixture.items() if _is_input(k)}
    return run_audio_fixture(inputs, audio_weights, synthetic_weights)


def _output_keys(kit_fixture) -> list[str]:
    return [k for k in kit_fixture if not _is_input(k) and k != "meta_json"]


def test_fixture_sizes_are_read_from_the_checkpoint(audio_fixture, audio_model):
    meta = json.loads(str(audio_fixture["meta_json"]))
    g = audio_model.generator
    assert (g.n_motions, g.n_prev_motions, g.motion_feat_dim, g.n_diff_steps, g.feature_dim) == (
        meta["n_motions"], meta["n_prev_motions"], meta["motion_feat_dim"], meta["n_diff_steps"], meta["feature_dim"])


@pytest.mark.slow
def test_every_output_key_is_returned(audio_outputs, audio_fixture):
    assert sorted(set(_output_keys(audio_fixture)) - set(audio_outputs)) == []


WINDOW_KEYS = ("win_audio", "win_audio_padded", "win_cnn_features", "win_hubert_hidden", "win_hubert_hidden_25fps",
               "win_audio_feat", "win_prev_motion_in", "win_prev_audio_in", "win_indicator", "win_xt",
               "win_denoiser_out_tT", "win_denoiser_out_t1", "win_motion_feat", "folder_hubert_hidden")
MOTION = ("exp", "scale", "t", "pitch", "yaw", "roll", "R")
SEQUENCE_KEYS = ("motion_coef", *(f"motion_{k}" for k in MOTION), *(f"smooth_{k}" for k in MOTION),
                 "cfg2p0_motion_coef", "legacy_pe_motion_coef")
VARIANTS = ("default", "no_smooth", "stitching", "relative", "relative_stitching", "relative_pose_friendly",
            "multiplier_1", "region_exp", "region_pose", "region_lip", "region_eyes")
KEYPOINT_KEYS = tuple(f"pipe_{v}_kp_driving" for v in VARIANTS)
ALL_KEYS = (*WINDOW_KEYS, *SEQUENCE_KEYS, *KEYPOINT_KEYS, "pipe_default_out")


def test_the_kit_holds_the_keys_checked_here(audio_fixture):
    assert sorted(_output_keys(audio_fixture)) == sorted(ALL_KEYS)


@pytest.mark.slow
@pytest.mark.parametrize("key", ALL_KEYS)
def test_output_matches_reference(key, audio_outputs, audio_fixture):
    assert key in audio_outputs, f"run_audio_fixture did not return {key}"
    tol = 1e-3 if key in FRAME_KEYS else 1e-4
    err = rel_l2(audio_outputs[key], audio_fixture[key])
    assert err <= tol, f"{key}: relative L2 error {err:.2e} > {tol:g}"


@pytest.mark.slow
def test_variants_differ_from_each_other(audio_outputs):
    """The tolerance is tight enough to tell the variants apart (README: region_lip vs region_eyes 1.4e-3)."""
    lip, eyes = audio_outputs["pipe_region_lip_kp_driving"], audio_outputs["pipe_region_eyes_kp_driving"]
    assert rel_l2(lip, eyes) > 1e-3
