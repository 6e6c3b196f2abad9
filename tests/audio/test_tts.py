"""``animate --text``: the words spoken offline by espeak-ng (scripts/install-tts.sh), then animated."""

from __future__ import annotations

import shutil

import pytest

from tests.conftest import skip_or_fail


@pytest.fixture(scope="module")
def espeak():
    if shutil.which("espeak-ng") is None:
        skip_or_fail("espeak-ng is not installed (bash scripts/install-tts.sh)")


def test_speak_writes_speech_that_lasts_as_long_as_the_words(espeak, tmp_path):
    from liveportrait.audio.io import probe_audio
    from liveportrait.audio.tts import speak

    short = probe_audio(speak("Hello.", tmp_path / "short.wav"))
    long = probe_audio(speak("Hello. This sentence is a good deal longer than the first one was.",
                             tmp_path / "long.wav"))
    assert 0.2 < short.seconds < long.seconds < 10


@pytest.mark.parametrize("text, message", [("   ", "--text is empty"), ("a" * 20_001, "more than 20000")])
def test_bad_text_is_one_line_before_any_work(text, message, tmp_path, capsys):
    from liveportrait.cli import main

    code = main(["animate", "-s", "nope.jpg", "--text", text, "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "x.mp4").exists()


def test_text_and_a_driving_together_are_refused(tmp_path, capsys):
    from liveportrait.cli import main

    code = main(["animate", "-s", "a.jpg", "-d", "b.wav", "--text", "hi", "-o", str(tmp_path / "x.mp4")])
    assert code == 2 and "--text or -d, not both" in capsys.readouterr().err


def test_no_driving_and_no_text_is_a_usage_error(capsys):
    from liveportrait.cli import main

    assert main(["animate", "-s", "a.jpg"]) == 2
    assert "-d/--driving (or --text)" in capsys.readouterr().err


def test_without_espeak_the_message_says_how_to_install_it(monkeypatch, tmp_path, capsys):
    from liveportrait.cli import main

    monkeypatch.setenv("LIVEPORTRAIT_ESPEAK", "no-such-tts-program")
    code = main(["animate", "-s", "a.jpg", "--text", "hi", "-o", str(tmp_path / "x.mp4")])
    err = capsys.readouterr().err
    assert code != 0 and "install-tts.sh" in err and "Traceback" not in err


def test_text_animates_a_photo_with_its_sound(espeak, tiny_weights, tiny_audio_weights, examples_dir, tmp_path,
                                              capsys):
    from liveportrait.audio.io import probe_audio
    from liveportrait.audio.tts import speak
    from liveportrait.cli import main
    from liveportrait.media import probe, read_frames
    from liveportrait.provenance.verify import verify

    words = "Good morning. The weather is fine today."
    out = tmp_path / "talk.mp4"
    code = main(["animate", "-s", str(examples_dir / "source" / "s1.jpg"), "--text", words, "-o", str(out),
                 "--weights", str(tiny_weights), "--model-config", "tiny", "--audio-weights",
                 str(tiny_audio_weights), "--seed", "1", "--max-dim", "256", "-q"])
    assert code == 0, capsys.readouterr().err
    seconds = probe_audio(speak(words, tmp_path / "same.wav")).seconds  # espeak-ng is deterministic
    info = probe(out)
    assert info.has_audio and info.fps == 25
    assert abs(len(read_frames(out)) - seconds * 25) <= 2
    assert verify(out).marked
