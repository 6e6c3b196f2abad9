"""A 2-hour speech file: decoded chunk by chunk (never whole), windows sampled as soon as the first is read,
and ``--max-seconds`` / ``max_seconds=`` to use only its beginning. The file is a real 16 kHz WAV of 2 hours
(230 MB as far as any reader can tell) written sparse: 10 s of tone, then silence the filesystem does not store.
"""

from __future__ import annotations

import struct
import tracemalloc

import numpy as np
import pytest

from tests.audio.test_audio_pose import tiny_api  # noqa: F401 - a fixture

RATE = 16000
HOURS2 = 7200.0


def write_long_wav(path, seconds: float, real_seconds: float = 10.0):
    """A 16-bit mono WAV of ``seconds``: a 220 Hz tone for ``real_seconds``, then zeros left as a hole."""
    n = int(seconds * RATE)
    data_bytes = n * 2
    header = (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt "
              + struct.pack("<IHHIIHH", 16, 1, 1, RATE, RATE * 2, 2, 16) + b"data" + struct.pack("<I", data_bytes))
    t = np.arange(int(real_seconds * RATE)) / RATE
    tone = (0.4 * np.sin(2 * np.pi * 220 * t) * 32767).astype("<i2")
    with open(path, "wb") as fh:
        fh.write(header)
        fh.write(tone.tobytes())
        fh.truncate(len(header) + data_bytes)
    return path


@pytest.fixture
def decoded(monkeypatch) -> list[int]:
    """``decoded[0]``: samples the audio reader decoded from files (every probe and read counted)."""
    from liveportrait.audio import io

    count = [0]
    frames = io._frames

    def counting(container, stream):
        for frame in frames(container, stream):
            count[0] += frame.samples
            yield frame

    monkeypatch.setattr(io, "_frames", counting)
    return count


@pytest.fixture(scope="module")
def two_hours(tmp_path_factory):
    path = write_long_wav(tmp_path_factory.mktemp("long") / "two_hours.wav", HOURS2)
    assert path.stat().st_size == 44 + int(HOURS2 * RATE) * 2
    return path


def test_two_hours_are_decoded_in_bounded_memory(two_hours):
    from liveportrait.audio.io import read_audio_chunks

    tracemalloc.start()
    try:
        got, first = 0, None
        for chunk in read_audio_chunks(two_hours):
            first = chunk if first is None else first
            got += len(chunk)
            if got >= 300 * RATE:  # five minutes in
                break
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert got >= 300 * RATE
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB held while reading"  # the whole 2 h would be 440 MiB
    assert 0.35 < np.abs(first).max() < 0.45  # the tone, as float in [-1, 1]


def test_probing_two_hours_stays_flat(two_hours):
    from liveportrait.audio.io import probe_audio

    tracemalloc.start()
    try:
        info = probe_audio(two_hours)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert info.seconds == HOURS2 and not info.silent
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MiB held while probing"


def test_the_first_window_comes_before_the_file_is_read(two_hours, tiny_audio_model):
    from liveportrait.audio import RandomNoise
    from liveportrait.audio.io import read_audio_chunks

    read = [0]

    def counted(chunks):
        for c in chunks:
            read[0] += len(c)
            yield c

    stream = tiny_audio_model.stream(counted(read_audio_chunks(two_hours)), RandomNoise(0))
    first, second = next(stream), next(stream)
    stream.close()
    window = tiny_audio_model.geometry.n_motions  # 20 frames: 0.8 s of audio
    assert len(first["exp"]) == len(second["exp"]) == window
    assert read[0] < 3 * RATE, f"{read[0] / RATE:.1f} s of audio read for two windows"


def test_max_seconds_uses_only_the_beginning(two_hours, tiny_audio_model, decoded):
    from liveportrait.audio.drive import AudioDriving

    driving = AudioDriving.open(two_hours, tiny_audio_model, seed=0, max_seconds=3)
    assert driving.info.seconds == 3.0 and len(driving) == 75
    frames = sum(len(m["exp"]) for m in driving.windows())
    assert frames == 75
    # the probe and the read each decode the 3 s (and at most one packet more), not the two hours
    assert 6 * RATE <= decoded[0] < 8 * RATE, f"{decoded[0] / RATE:.1f} s decoded"


def test_motion_command_on_two_hours_with_max_seconds(two_hours, tiny_audio_weights, tmp_path, capsys):
    from liveportrait.cli import main
    from liveportrait.media import load_template

    out = tmp_path / "start.lpt.npz"
    code = main(["motion", str(two_hours), "-o", str(out), "--audio-weights", str(tiny_audio_weights),
                 "--max-seconds", "2", "--seed", "1"])
    assert code == 0, capsys.readouterr().err
    assert load_template(out).n_frames == 50  # 2 s at 25 fps
    assert "50 frames" in capsys.readouterr().out


def test_max_seconds_must_be_positive(two_hours, tiny_audio_weights, tmp_path, capsys):
    from liveportrait.cli import main

    with pytest.raises(SystemExit) as exited:  # a usage error, as argparse reports one
        main(["motion", str(two_hours), "-o", str(tmp_path / "m.lpt.npz"), "--audio-weights",
              str(tiny_audio_weights), "--max-seconds", "0"])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and "--max-seconds: 0 must be greater than 0" in err and len(err.splitlines()) == 2
    assert err.splitlines()[1] == "run 'liveportrait motion --help' for the options"


def test_the_api_with_max_seconds_on_two_hours(two_hours, tiny_api, tiny_audio_weights, decoded):  # noqa: F811
    out = tiny_api(np.full((64, 64, 3), 128, np.uint8), audio=two_hours, audio_weights=tiny_audio_weights, seed=0,
                   max_seconds=2, crop="none", paste_back=False)
    assert out.frame_count == 50 and out.audio == two_hours
    assert decoded[0] < 10 * RATE, f"{decoded[0] / RATE:.1f} s decoded"  # the two hours were not probed
