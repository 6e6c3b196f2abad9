"""The product side of audio driving on tiny networks: loading from the stored args, seeds, streaming, lengths."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from liveportrait.errors import UnsafeFileError, WeightsError
from tests.audio.conftest import TINY_ARGS, write_tiny_audio_weights
from tests.audio.test_audio_io import tone, write_wav


@pytest.fixture(scope="module")
def speech_3s(tmp_path_factory):
    """3 s of a warbling tone at 44.1 kHz stereo (not the model's rate or channel count)."""
    rate = 44100
    t = np.arange(3 * rate) / rate
    left = 0.4 * np.sin(2 * np.pi * (200 + 80 * np.sin(2 * np.pi * 3 * t)) * t)
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    write_wav(path, np.stack([left, 0.5 * left], axis=1), rate)
    return path


def test_sizes_come_from_the_stored_args(tiny_audio_model):
    g = tiny_audio_model.generator
    assert (g.n_motions, g.n_prev_motions, g.motion_feat_dim, g.feature_dim, g.n_diff_steps) == (
        TINY_ARGS["n_motions"], TINY_ARGS["n_prev_motions"], TINY_ARGS["motion_feat_dim"], TINY_ARGS["feature_dim"],
        TINY_ARGS["n_diff_steps"])
    assert tiny_audio_model.encoder.model.config.hidden_size == 32
    assert g.denoising_net.TE.pe.shape[1] == 501  # rebuilt; the stored 7-row table is not used


def test_the_checkpoint_encoder_overrides_the_folder(tiny_audio_weights, tiny_audio_model):
    folder = torch.load(tiny_audio_weights / "TencentGameMate:chinese-hubert-base" / "pytorch_model.bin",
                        weights_only=True)
    ckpt = torch.load(tiny_audio_weights / "JoyVASA" / "motion_generator" / "motion_generator_hubert_chinese.pt",
                      weights_only=False)["model"]
    ours = tiny_audio_model.encoder.model.state_dict()
    key = "encoder.layers.0.attention.q_proj.weight"
    assert torch.equal(ours[key], ckpt["audio_encoder." + key])
    assert not torch.equal(ours[key], folder[key])


def test_a_missing_tensor_is_refused(tmp_path):
    root = write_tiny_audio_weights(tmp_path, drop=("denoising_net.motion_dec.0.weight",))
    from liveportrait.audio import AudioMotionModel

    with pytest.raises(WeightsError, match="missing tensor 'denoising_net.motion_dec.0.weight'"):
        AudioMotionModel.from_pretrained(root)


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned > /dev/null",))


def test_a_checkpoint_with_code_is_refused(tmp_path):
    root = write_tiny_audio_weights(tmp_path, extra={"payload": Boom()})
    from liveportrait.audio import AudioMotionModel

    with pytest.raises(UnsafeFileError, match="refused to load"):
        AudioMotionModel.from_pretrained(root)


def test_a_template_with_code_is_refused(tmp_path):
    import pickle

    root = write_tiny_audio_weights(tmp_path)
    with open(root / "JoyVASA" / "motion_template" / "motion_template.pkl", "wb") as fh:
        pickle.dump({"mean_exp": Boom()}, fh)
    from liveportrait.audio import AudioMotionModel

    with pytest.raises(UnsafeFileError, match="posix.system|os.system"):
        AudioMotionModel.from_pretrained(root)


def _coefs(model, audio, seed):
    from liveportrait.audio import RandomNoise

    return np.concatenate(list(model.stream_coefficients([audio], RandomNoise(seed))))


def test_same_seed_same_motion_other_seed_other_motion(tiny_audio_model):
    audio = tone(2.0, 16000, 300)
    a, b, c = (_coefs(tiny_audio_model, audio, s) for s in (5, 5, 6))
    assert a.shape == (53, 73)  # (32000 + 1920) / 640, over 3 windows of 20 frames
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-3


def test_streamed_chunks_give_the_motion_of_the_whole(tiny_audio_model):
    audio = tone(2.0, 16000, 300)
    pieces = np.split(audio, [1000, 7777, 20000, 20001])
    from liveportrait.audio import RandomNoise

    split = np.concatenate(list(tiny_audio_model.stream_coefficients(pieces, RandomNoise(5))))
    np.testing.assert_array_equal(split, _coefs(tiny_audio_model, audio, 5))


def test_audio_changes_the_motion(tiny_audio_model):
    a, b = _coefs(tiny_audio_model, tone(2.0, 16000, 300), 5), _coefs(tiny_audio_model, np.zeros(32000), 5)
    assert np.abs(a - b).max() > 1e-3


def test_context_carries_over_windows(tiny_audio_model):
    """Window 1 is conditioned on window 0's last P frames: changing only the audio of window 0 changes it."""
    n = 20 * 640
    base = tone(2.0, 16000, 300)
    other = base.copy()
    other[: n - 1280] = 0.0  # window 0 only (it holds the 1280-sample lead-in)
    a, b = _coefs(tiny_audio_model, base, 5), _coefs(tiny_audio_model, other, 5)
    assert np.abs(a[20:40] - b[20:40]).max() > 1e-4


def test_driving_length_matches_the_audio_and_frames_repeat(tiny_audio_model, speech_3s, tmp_path):
    from liveportrait.audio.drive import AudioDriving

    d = AudioDriving.open(speech_3s, tiny_audio_model, seed=3)
    assert len(d) == 75  # 3 s at 25 fps
    assert AudioDriving.open(speech_3s, tiny_audio_model, seed=3, align=False).__len__() == 78  # the reference's
    frames = list(d.motions(batch_size=16))  # across windows of 20 frames (18 in the first: 2 skipped)
    assert [len(m) for m in frames] == [16, 16, 16, 16, 11]
    again = torch.cat([m.exp for m in d.motions()])
    torch.testing.assert_close(torch.cat([m.exp for m in frames]), again, rtol=0, atol=0)
    template = d.template()
    assert template.n_frames == 75 and template.fps == 25 and template.meta["seed"] == "3"
    from liveportrait.media import load_template, save_template

    save_template(tmp_path / "speech.lpt.npz", template)  # what `liveportrait motion speech.wav` would write
    back = load_template(tmp_path / "speech.lpt.npz")
    np.testing.assert_array_equal(back.exp, template.exp)
    assert back.meta["source"] == "audio"


def test_aligned_frames_are_the_reference_frames_shifted(tiny_audio_model, speech_3s):
    from liveportrait.audio.drive import AudioDriving

    aligned = np.concatenate([w["coef"] for w in AudioDriving.open(speech_3s, tiny_audio_model, 3).windows()])
    ref = np.concatenate([w["coef"] for w in AudioDriving.open(speech_3s, tiny_audio_model, 3,
                                                               align=False).windows()])
    np.testing.assert_array_equal(aligned, ref[2:77])


def test_keypoints_for_a_prepared_source(tiny_audio_model, speech_3s):
    from liveportrait.animator import PreparedSource
    from liveportrait.audio.drive import AudioDriving, keypoint_batches
    from liveportrait.config import MotionOptions
    from liveportrait.motion.compose import Motion
    from liveportrait.motion.keypoints import rotation_matrix, transform_keypoints

    g = torch.Generator().manual_seed(0)
    kp = torch.randn(1, 21, 3, generator=g) * 0.3
    R = rotation_matrix(torch.tensor([5.0]), torch.tensor([-3.0]), torch.tensor([1.0]))
    motion = Motion(R=R, exp=torch.randn(1, 21, 3, generator=g) * 0.01, t=torch.zeros(1, 3), scale=torch.ones(1, 1))
    x_s = transform_keypoints(kp, R, motion.exp, motion.scale, motion.t)
    src = PreparedSource(f_s=torch.zeros(1), kp_c=kp, motion=motion, x_s=x_s)
    d = AudioDriving.open(speech_3s, tiny_audio_model, seed=1)
    batches = list(keypoint_batches(d, [src, src], MotionOptions(stitching=False), batch_size=32))
    assert [b[0].shape for b in batches] == [(32, 21, 3), (32, 21, 3), (11, 21, 3)]
    torch.testing.assert_close(batches[0][0], batches[0][1])
    first = batches[0][0][0]
    # relative, expression-friendly: the first frame is the source's own keypoints
    torch.testing.assert_close(first, x_s[0], atol=1e-5, rtol=0)
    assert (batches[1][0] - x_s).abs().max() > 1e-4  # and later frames move
