"""``--pose-from`` / ``pose_from=``: the head pose of a speech animation from a template, a video, or held still,
the expression from the speech (tiny audio networks; keypoints checked against the spec's 4.3 formula)."""

from __future__ import annotations

import math
import pickle
from fractions import Fraction
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from liveportrait.errors import InputError, UnsafeFileError
from tests.audio.test_audio_io import tone, write_wav
from tests.audio.test_audio_stream import speech_3s  # noqa: F401 - a fixture


def yaw(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]], np.float32)


YAWS = (0.0, 10.0, 20.0, 30.0, 20.0)  # a 5-frame turn of the head


def turning_template(scale_step: float = 0.0, t_step: tuple = (0.0, 0.0, 0.0)):
    from liveportrait.media import MotionTemplate

    n = len(YAWS)
    rng = np.random.default_rng(5)
    return MotionTemplate(fps=25, R=np.stack([yaw(d) for d in YAWS]),
                          exp=rng.normal(0, 0.05, (n, 21, 3)).astype(np.float32),  # must not be used
                          t=np.array([[f * c for c in t_step] for f in range(n)], np.float32),
                          scale=np.array([[1.5 + scale_step * f] for f in range(n)], np.float32))


# -- the pure parts ------------------------------------------------------------------------------------------


def test_pose_frames_hold_then_go_back_and_forth():
    from liveportrait.audio.compose import pose_indices

    assert pose_indices(0, 9, 25, 3, 25).tolist() == [0, 1, 2, 1, 0, 1, 2, 1, 0]
    assert pose_indices(7, 3, 25, 3, 25).tolist() == [1, 0, 1]  # a later window continues the same way
    assert pose_indices(0, 6, 25, 4, Fraction(25, 2)).tolist() == [0, 0, 1, 1, 2, 2]  # a slower track: held
    assert pose_indices(0, 4, 25, 4, 50).tolist() == [0, 2, 2, 0]  # a faster one: every other frame, bounced
    assert pose_indices(3, 4, 25, 1, None).tolist() == [0, 0, 0, 0]  # still


def test_with_pose_keeps_the_speech_expression():
    from liveportrait.audio.compose import PoseTrack, with_pose

    rng = np.random.default_rng(0)
    m = {"exp": rng.normal(size=(4, 21, 3)).astype(np.float32), "R": rng.normal(size=(4, 3, 3)),
         "t": rng.normal(size=(4, 3)), "scale": rng.normal(size=(4, 1)), "pitch": np.ones((4, 1)),
         "yaw": np.ones((4, 1)), "roll": np.ones((4, 1)), "coef": rng.normal(size=(4, 73))}
    pose = PoseTrack.from_template(turning_template(0.1, (1, 2, 3)))
    out = with_pose(m, pose, 3, 25)
    assert set(out) == {"exp", "R", "t", "scale", "coef"}
    np.testing.assert_array_equal(out["exp"], m["exp"])
    np.testing.assert_array_equal(out["coef"], m["coef"])
    frames = [3, 4, 3, 2]  # output frames 3..6 of a 5-frame track
    np.testing.assert_array_equal(out["R"], np.stack([yaw(YAWS[k]) for k in frames]))
    np.testing.assert_allclose(out["scale"][:, 0], [1.5 + 0.1 * k for k in frames], rtol=1e-6)
    np.testing.assert_allclose(out["t"][:, 2], [3.0 * k for k in frames])


# -- keypoints of a speech driving with another pose ------------------------------------------------------------


def fake_source(seed: int = 1):
    """A prepared face without networks: canonical keypoints and the source's motion (spec 4.2)."""
    from liveportrait.motion.compose import Motion

    g = torch.Generator().manual_seed(seed)
    kp = torch.randn(1, 21, 3, generator=g) * 0.3
    R = torch.from_numpy(yaw(-7.0) @ np.array([[1, 0, 0], [0, 0.96, -0.28], [0, 0.28, 0.96]], np.float32))[None]
    exp = torch.randn(1, 21, 3, generator=g) * 0.02
    scale, t = torch.tensor([[1.3]]), torch.tensor([[0.05, -0.03, 0.4]])
    x_s = scale * (kp @ R + exp) + torch.tensor([[[0.05, -0.03, 0.0]]])
    return SimpleNamespace(kp_c=kp, motion=Motion(R=R, exp=exp, t=t, scale=scale), x_s=x_s)


def keypoints(model, speech, pose, region="pose", seed=3, smooth=None, options=None):
    from liveportrait.audio.drive import AudioDriving, keypoint_batches
    from liveportrait.config import MotionOptions

    driving = AudioDriving.open(speech, model, seed=seed, smooth_alpha=smooth, pose=pose)
    options = options or MotionOptions(relative=False, stitching=False, multiplier=1.0, region=region)
    src = fake_source()
    return torch.cat([b[0] for b in keypoint_batches(driving, [src], options)]).numpy(), src


def test_the_head_turns_as_the_template_turns(tiny_audio_model, speech_3s):  # noqa: F811
    from liveportrait.audio.compose import PoseTrack

    tpl = turning_template(scale_step=0.05, t_step=(0.01, -0.02, 0.5))
    x, src = keypoints(tiny_audio_model, speech_3s, PoseTrack.from_template(tpl))
    assert x.shape == (75, 21, 3)
    kp, R_s = src.kp_c[0].double().numpy(), src.motion.R[0].double().numpy()
    exp_s, s_s = src.motion.exp[0].double().numpy(), 1.3
    R0 = yaw(YAWS[0]).astype(np.float64)
    for f in range(75):
        k = f % 8 if f % 8 < 5 else 8 - f % 8  # ping-pong over 5 frames
        R_new = yaw(YAWS[k]).astype(np.float64) @ R0.T @ R_s
        scale = s_s * (1.5 + 0.05 * k) / 1.5
        want = scale * (kp @ R_new + exp_s) + np.array([0.05 + 0.01 * k, -0.03 - 0.02 * k, 0.0])
        np.testing.assert_allclose(x[f], want, atol=2e-5, err_msg=f"frame {f}")
    np.testing.assert_allclose(x[0], src.x_s[0].numpy(), atol=1e-6)  # frame 0: the source's own pose


def test_still_keeps_the_source_pose_and_the_speech_moves_the_face(tiny_audio_model, speech_3s):  # noqa: F811
    from liveportrait.audio.compose import PoseTrack

    still = PoseTrack.still()
    pose_only, src = keypoints(tiny_audio_model, speech_3s, still, region="pose")
    np.testing.assert_allclose(pose_only, np.broadcast_to(src.x_s.numpy(), pose_only.shape), atol=1e-6)
    # every region: the pose is the source's, so 'all' is 'exp' (expression only), frame by frame
    everything, _ = keypoints(tiny_audio_model, speech_3s, still, region="all")
    expression, _ = keypoints(tiny_audio_model, speech_3s, still, region="exp")
    np.testing.assert_allclose(everything, expression, atol=1e-6)
    assert np.abs(everything - everything[0]).max() > 1e-3  # the lips still move with the speech
    # the model's own (unsmoothed) pose does move the head: the same comparison fails without --pose-from
    model_all, _ = keypoints(tiny_audio_model, speech_3s, None, region="all")
    model_exp, _ = keypoints(tiny_audio_model, speech_3s, None, region="exp")
    assert np.abs(model_all - model_exp).max() > 1e-3


def test_the_motion_keeps_the_sampled_expression(tiny_audio_model, speech_3s):  # noqa: F811
    from liveportrait.audio.compose import PoseTrack
    from liveportrait.audio.drive import AudioDriving

    def motion(pose):
        d = AudioDriving.open(speech_3s, tiny_audio_model, seed=8, pose=pose)
        return d.template()

    own, posed = motion(None), motion(PoseTrack.from_template(turning_template()))
    np.testing.assert_array_equal(posed.exp, own.exp)
    assert posed.n_frames == own.n_frames == 75 and posed.meta["pose_from"] == "template"
    np.testing.assert_array_equal(posed.R[:9], np.stack([yaw(YAWS[k]) for k in (0, 1, 2, 3, 4, 3, 2, 1, 0)]))
    assert not np.allclose(own.R[1:], own.R[0])


# -- what --pose-from accepts ----------------------------------------------------------------------------------


class Boom:
    def __reduce__(self):
        import os

        return (os.system, ("echo owned > /dev/null",))


def test_what_pose_from_refuses(tmp_path):
    from PIL import Image

    from liveportrait.audio.pose import check_pose_from

    photo = tmp_path / "face.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(photo)
    speech = tmp_path / "speech.wav"
    write_wav(speech, tone(0.5, 16000), 16000)
    (tmp_path / "notes.txt").write_text("hello")
    cases = {tmp_path / "nope.pkl": "no such file", photo: "a photo has one pose", speech: "an audio file",
             tmp_path / "notes.txt": "not a motion template or a video", 3: "got a int"}
    for value, words in cases.items():
        with pytest.raises(InputError) as err:
            check_pose_from(value)
        assert words in str(err.value) and "\n" not in str(err.value) and err.value.exit_code == 2
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps({"motion": [Boom()]}))
    with pytest.raises(UnsafeFileError):
        check_pose_from(hostile)


def test_pose_from_a_reference_pickle_and_still(tmp_path):
    from liveportrait.audio.compose import PoseTrack
    from liveportrait.audio.pose import check_pose_from

    path = tmp_path / "turn.pkl"
    path.write_bytes(pickle.dumps(turning_template().to_reference_dict(), protocol=4))
    track = check_pose_from(path)
    assert isinstance(track, PoseTrack) and len(track) == 5 and track.fps == 25
    np.testing.assert_allclose(track.R[3], yaw(30.0), atol=1e-6)
    still = check_pose_from("still")
    assert len(still) == 1 and still.fps is None


# -- the command line and the API -------------------------------------------------------------------------------


def test_cli_refuses_bad_pose_sources_before_loading(bad, examples_dir, tmp_path):
    speech = tmp_path / "speech.wav"
    write_wav(speech, tone(0.5, 16000), 16000)
    code, err = bad(speech, "--pose-from", str(tmp_path / "missing.lpt.npz"))
    assert code == 2 and "--pose-from" in err and "no such file" in err
    code, err = bad(speech, "--pose-from", str(examples_dir / "source" / "s1.jpg"))
    assert code == 2 and "a photo has one pose" in err
    hostile = tmp_path / "hostile.pkl"
    hostile.write_bytes(pickle.dumps({"motion": [Boom()]}))
    code, err = bad(speech, "--pose-from", str(hostile))
    assert code == 5
    code, err = bad(examples_dir / "driving" / "d0.mp4", "--pose-from", "still")
    assert code == 2 and "--pose-from is for speech driving" in err
    code, err = bad(speech, "--max-seconds", "-1")
    assert code == 2 and "--max-seconds" in err


def test_cli_speech_with_the_pose_of_a_template(cli, tiny_weights, tiny_audio_weights, examples_dir, speech_3s,  # noqa: F811
                                                tmp_path, capsys):
    from liveportrait.media import probe, read_frames

    tpl = tmp_path / "turn.pkl"
    tpl.write_bytes(pickle.dumps(turning_template().to_reference_dict(), protocol=4))
    out = tmp_path / "talk.mp4"
    code = cli(["animate", "-s", str(examples_dir / "source" / "s1.jpg"), "-d", str(speech_3s), "-o", str(out),
                "--weights", str(tiny_weights), "--model-config", "tiny", "--audio-weights", str(tiny_audio_weights),
                "--seed", "3", "--max-dim", "128", "--pose-from", str(tpl), "-q"])
    assert code == 0, capsys.readouterr().err
    assert probe(out).has_audio and abs(len(read_frames(out)) - 75) <= 1


def test_motion_command_with_a_still_pose(tiny_audio_weights, speech_3s, examples_dir, tmp_path):  # noqa: F811
    from liveportrait.cli import ArgumentParser
    from liveportrait.commands.speech import register
    from liveportrait.media import load_template

    parser = ArgumentParser(prog="liveportrait")
    register(parser.add_subparsers(dest="command", parser_class=ArgumentParser))

    def run(*argv):
        args = parser.parse_args(["motion", str(speech_3s), "--audio-weights", str(tiny_audio_weights), "-q",
                                  "--seed", "2", *argv])
        return args.func(args)

    assert run("-o", str(tmp_path / "still.lpt.npz"), "--pose-from", "still") == 0
    assert run("-o", str(tmp_path / "own.lpt.npz")) == 0
    still, own = load_template(tmp_path / "still.lpt.npz"), load_template(tmp_path / "own.lpt.npz")
    assert still.n_frames == own.n_frames == 75
    np.testing.assert_array_equal(still.R, np.broadcast_to(np.eye(3, dtype=np.float32), still.R.shape))
    np.testing.assert_array_equal(still.exp, own.exp)
    with pytest.raises(InputError, match="`motion` takes a motion template or still, not a video"):
        run("-o", str(tmp_path / "v.lpt.npz"), "--pose-from", str(examples_dir / "driving" / "d0.mp4"))
    assert not (tmp_path / "v.lpt.npz").exists()


@pytest.fixture(scope="module")
def tiny_api(tiny_weights):
    from liveportrait.api import LivePortraitPipeline
    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    nets = LivePortraitNetworks.from_pretrained(tiny_weights, config=ModelConfig.tiny(), locate=False)
    pipe = LivePortraitPipeline(nets, device="cpu", precision="fp32", backend="eager", tune_memory=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _photo() -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 255, (64, 64, 3)).astype(np.uint8)


def test_api_pose_from(tiny_api, tiny_audio_weights, speech_3s, examples_dir, tmp_path):  # noqa: F811
    from liveportrait.audio.compose import PoseTrack
    from liveportrait.audio.pose import check_pose_from, resolve_pose
    from liveportrait.media import write_video

    with pytest.raises(InputError, match="pose_from= is for speech driving"):
        tiny_api(_photo(), examples_dir / "driving" / "d0.mp4", pose_from="still")
    with pytest.raises(InputError, match="pose_from .*no such file"):  # before the (missing) audio weights
        tiny_api(_photo(), audio=speech_3s, audio_weights=tmp_path / "none", pose_from=tmp_path / "x.pkl")
    out = tiny_api(_photo(), audio=speech_3s, audio_weights=tiny_audio_weights, seed=1, pose_from="still",
                   crop="none", paste_back=False)
    assert out.frame_count == 75 and out.fps == 25
    first = next(iter(out))
    assert first.ndim == 3 and first.shape[2] == 3 and first.dtype == np.uint8  # the animated crop
    # a driving video's pose: its motion extracted by the LivePortrait networks
    video = tmp_path / "turn.mp4"
    rng = np.random.default_rng(1)
    write_video(video, [rng.integers(0, 255, (64, 64, 3)).astype(np.uint8) for _ in range(6)], 25)
    engine = tiny_api.engine(tiny_api._config(None, crop="none"))
    track = resolve_pose(check_pose_from(video), engine)
    assert isinstance(track, PoseTrack) and len(track) == 6 and track.fps == 25 and track.name == "turn.mp4"
    np.testing.assert_array_equal(track.R, engine.driving.load(video).template.R)


def test_api_takes_the_command_lines_guidance_and_smoothing(tiny_api, tiny_audio_weights, speech_3s):  # noqa: F811
    """cfg_scale= and audio_smooth= (the CLI's --cfg-scale and --audio-smooth) reach the sampler: another
    guidance gives other frames, the same seed and options the same; bad values fail before any model loads."""
    def frame(**options):
        out = tiny_api(_photo(), audio=speech_3s, audio_weights=tiny_audio_weights, seed=3, crop="none",
                       paste_back=False, max_seconds=0.5, **options)
        assert out.seed == 3
        return np.stack(list(out)).astype(np.int16)  # (the first frame is the neutral one whatever the options)

    base = frame(cfg_scale=2.8, audio_smooth=1)
    assert np.array_equal(base, frame(cfg_scale=2.8, audio_smooth=1))
    assert not np.array_equal(base, frame(cfg_scale=0.5, audio_smooth=1))
    for bad, message in [({"audio_smooth": 0}, "audio_smooth must be greater than 0"),
                         ({"cfg_scale": -1}, "cfg_scale must be at least 0"), ({"seed": 1.5}, "seed must be a whole")]:
        with pytest.raises(InputError, match=message):
            tiny_api(_photo(), audio=speech_3s, audio_weights="/nonexistent", **bad)
    with pytest.raises(InputError, match="cfg_scale= is for speech driving"):
        tiny_api(_photo(), np.zeros((64, 64, 3), np.uint8), cfg_scale=2.0)
