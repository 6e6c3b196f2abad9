"""``liveportrait animate -s photo -d speech.wav`` through the real command line, whose speech branch
is liveportrait.commands.speech (its options added to animate's, its run taken for an audio driving)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.audio.test_audio_io import tone, write_wav
from tests.audio.test_audio_stream import speech_3s  # noqa: F401 - a fixture


def test_photo_and_speech_give_an_mp4_with_the_sound(cli, tiny_weights, tiny_audio_weights, examples_dir,
                                                     speech_3s, tmp_path, capsys):  # noqa: F811
    from liveportrait.media import probe, read_frames

    out = tmp_path / "talk.mp4"
    code = cli(["animate", "-s", str(examples_dir / "source" / "s1.jpg"), "-d", str(speech_3s), "-o", str(out),
                "--weights", str(tiny_weights), "--model-config", "tiny", "--audio-weights", str(tiny_audio_weights),
                "--seed", "3", "--max-dim", "256", "-q"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    info = probe(out)
    assert info.has_audio and info.fps == 25
    frames = read_frames(out)
    assert abs(len(frames) - 75) <= 1  # 3 s x 25 fps
    assert max(frames[0].shape[:2]) == 256  # the whole photo (--max-dim), the face pasted back
    from liveportrait.provenance.verify import verify

    assert verify(out).marked  # labelled and watermarked like every output


def test_a_corrupt_file(bad, tmp_path):
    path = tmp_path / "corrupt.wav"
    path.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(range(200)))
    code, err = bad(path)
    assert code == 2 and "not a readable audio" in err


def test_zero_seconds(bad, tmp_path):
    path = tmp_path / "zero.wav"
    write_wav(path, np.zeros(0), 16000)
    code, err = bad(path)
    assert code == 2 and "0 seconds" in err


def test_a_video_source_is_refused(bad, examples_dir, tmp_path):
    path = tmp_path / "speech.wav"
    write_wav(path, tone(0.5, 16000), 16000)
    code, err = bad(path, source=examples_dir / "driving" / "d0.mp4")
    assert code == 2 and "give an image as the source" in err


def test_missing_audio_weights(cli, examples_dir, tmp_path, capsys):
    path = tmp_path / "speech.wav"
    write_wav(path, tone(0.5, 16000), 16000)
    code = cli(["animate", "-s", str(examples_dir / "source" / "s1.jpg"), "-d", str(path),
                "-o", str(tmp_path / "out.mp4"), "--audio-weights", str(tmp_path / "empty")])
    err = capsys.readouterr().err.strip()
    assert code == 4 and "audio weights not found" in err and len(err.splitlines()) == 1


def test_a_bad_smoothing_factor(bad, tmp_path):
    path = tmp_path / "speech.wav"
    write_wav(path, tone(0.5, 16000), 16000)
    code, err = bad(path, "--audio-smooth", "0")
    assert code == 2 and "--audio-smooth" in err


def test_a_video_without_sound_as_speech(bad, examples_dir, tmp_path):
    from liveportrait.media import write_video

    path = tmp_path / "mute.mp4"
    write_video(path, [np.zeros((64, 64, 3), np.uint8)] * 5, 25)
    code, err = bad(path, "--speech-from-video")
    assert code == 2 and "has no audio track" in err


def test_a_video_with_sound_as_speech(cli, tiny_weights, tiny_audio_weights, examples_dir, tmp_path, capsys):
    from liveportrait.media import probe

    out = tmp_path / "from_video.mp4"
    driving = examples_dir / "driving" / "d12.mp4"  # has sound
    code = cli(["animate", "-s", str(examples_dir / "source" / "s1.jpg"), "-d", str(driving), "-o", str(out),
                "--speech-from-video", "--weights", str(tiny_weights), "--model-config", "tiny",
                "--audio-weights", str(tiny_audio_weights), "--seed", "1", "--max-dim", "256", "-q"])
    assert code == 0, capsys.readouterr().err
    info, src = probe(out), probe(driving)
    assert info.has_audio and info.fps == 25
    assert abs(info.frame_count / 25 - src.duration) < 0.1  # as long as the driving's sound


@pytest.fixture
def motion_cli():
    """The `motion` command as proposed for liveportrait/cli.py's SUBCOMMANDS (registered by commands.speech)."""
    from liveportrait.cli import ArgumentParser
    from liveportrait.commands.speech import register

    parser = ArgumentParser(prog="liveportrait")
    register(parser.add_subparsers(dest="command", parser_class=ArgumentParser))

    def run(argv):
        args = parser.parse_args(argv)
        return args.func(args)

    return run


def test_motion_saves_a_template_that_drives_a_photo(motion_cli, tiny_audio_weights, speech_3s, tmp_path):  # noqa: F811
    from liveportrait.media import load_template

    out = tmp_path / "speech.lpt.npz"
    assert motion_cli(["motion", str(speech_3s), "-o", str(out), "--audio-weights", str(tiny_audio_weights),
                       "--seed", "5", "-q"]) == 0
    t = load_template(out)
    assert t.n_frames == 75 and t.fps == 25 and t.meta["seed"] == "5"
    again = tmp_path / "again.lpt.npz"
    motion_cli(["motion", str(speech_3s), "-o", str(again), "--audio-weights", str(tiny_audio_weights),
                "--seed", "5", "-q"])
    np.testing.assert_array_equal(load_template(again).exp, t.exp)


def test_motion_refuses_a_video_without_sound(motion_cli, tiny_audio_weights, tmp_path):
    from liveportrait.errors import InputError
    from liveportrait.media import write_video

    path = tmp_path / "mute.mp4"
    write_video(path, [np.zeros((64, 64, 3), np.uint8)] * 5, 25)
    with pytest.raises(InputError, match="has no audio track"):
        motion_cli(["motion", str(path), "-o", str(tmp_path / "m.lpt.npz"), "--audio-weights",
                    str(tiny_audio_weights)])
