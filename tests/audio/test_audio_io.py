"""Reading speech: 16 kHz mono float32 from any rate and channel count, and one clear line for bad files."""

from __future__ import annotations

import wave
from fractions import Fraction

import numpy as np
import pytest

from liveportrait.errors import InputError


def write_wav(path, samples: np.ndarray, rate: int) -> None:
    """int16 PCM; ``samples`` (n,) or (n, channels) in [-1, 1]."""
    data = np.asarray(samples, np.float64)
    data = data[:, None] if data.ndim == 1 else data
    pcm = np.clip(np.round(data * 32767), -32768, 32767).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(data.shape[1])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())


def tone(seconds: float, rate: int, hz: float = 440.0, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return amp * np.sin(2 * np.pi * hz * t)


def test_16k_mono_pcm_is_int16_over_32768_exactly(tmp_path):
    from liveportrait.audio import read_audio

    rng = np.random.default_rng(0)
    pcm = rng.integers(-32768, 32768, 4000).astype("<i2")
    path = tmp_path / "a.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    got = read_audio(path)
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, pcm.astype(np.float32) / 32768)


def test_the_kit_audio_decodes_to_the_fixture_samples(audio_kit):
    from liveportrait.audio import read_audio

    fixture = np.load(audio_kit / "fixture_espeak.npz")
    np.testing.assert_array_equal(read_audio(audio_kit / "espeak_16k.wav"), fixture["audio_16k"])


def test_stereo_is_the_channel_mean(tmp_path):
    from liveportrait.audio import read_audio

    left, right = tone(0.5, 16000, 300), tone(0.5, 16000, 500, 0.3)
    path = tmp_path / "stereo.wav"
    write_wav(path, np.stack([left, right], axis=1), 16000)
    pcm_l = np.round(left * 32767) / 32768
    pcm_r = np.round(right * 32767) / 32768
    np.testing.assert_allclose(read_audio(path), (pcm_l + pcm_r) / 2, atol=1e-6)


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_are_resampled_to_16k(tmp_path, rate):
    from liveportrait.audio import probe_audio, read_audio

    path = tmp_path / f"tone_{rate}.wav"
    write_wav(path, tone(1.0, rate, 440.0), rate)
    got = read_audio(path)
    assert abs(len(got) - 16000) <= 32  # 1 s, within the resampler's edge
    spectrum = np.abs(np.fft.rfft(got[800:-800] * np.hanning(len(got) - 1600)))
    peak_hz = np.argmax(spectrum) * 16000 / (len(got) - 1600)
    assert abs(peak_hz - 440) < 3
    assert 0.45 < np.abs(got).max() < 0.55
    info = probe_audio(path)
    assert info.sample_rate == rate and abs(info.seconds - 1.0) < 0.01


def test_chunks_stop_at_the_limit(tmp_path):
    from liveportrait.audio import read_audio

    path = tmp_path / "long.wav"
    write_wav(path, tone(3.0, 16000), 16000)
    assert len(read_audio(path, max_seconds=1.25)) == 20000


def test_a_video_with_audio_gives_its_track(tmp_path):
    import av

    from liveportrait.audio import read_audio

    path = tmp_path / "clip.mp4"
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=25)
        v.width = v.height = 64
        v.pix_fmt = "yuv420p"
        a = out.add_stream("aac", rate=48000)
        a.layout = "stereo"
        samples = tone(1.0, 48000).astype(np.float32)
        for i in range(25):
            frame = av.VideoFrame.from_ndarray(np.full((64, 64, 3), i * 8, np.uint8), format="rgb24")
            for p in v.encode(frame):
                out.mux(p)
        for i in range(0, 48000, 1024):
            block = samples[i:i + 1024]
            af = av.AudioFrame.from_ndarray(np.stack([block, block]), format="fltp", layout="stereo")
            af.sample_rate, af.pts, af.time_base = 48000, i, Fraction(1, 48000)
            for p in a.encode(af):
                out.mux(p)
        for p in (*v.encode(None), *a.encode(None)):
            out.mux(p)
    got = read_audio(path)
    assert abs(len(got) / 16000 - 1.0) < 0.1
    assert 0.4 < np.abs(got).max() < 0.6


def test_a_video_without_audio_is_one_clear_line(tmp_path):
    from liveportrait.audio import probe_audio
    from liveportrait.media import write_video

    path = tmp_path / "silent_video.mp4"
    write_video(path, [np.zeros((64, 64, 3), np.uint8)] * 5, 25)
    with pytest.raises(InputError, match="has no audio track") as err:
        probe_audio(path)
    assert "\n" not in str(err.value) and err.value.exit_code == 2


@pytest.mark.parametrize("content, message", [
    (b"", "empty"),
    (b"RIFF\x00\x01\x00\x00WAVEfmt garbage" + bytes(range(256)) * 4, "not a readable audio"),
    (bytes(np.random.default_rng(1).integers(0, 256, 5000, dtype=np.uint8)), "not a readable audio"),
])
def test_unreadable_files_are_one_clear_line(tmp_path, content, message):
    from liveportrait.audio import probe_audio

    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        probe_audio(path)
    assert "\n" not in str(err.value)


def test_zero_seconds_of_audio_is_refused(tmp_path):
    from liveportrait.audio import probe_audio

    path = tmp_path / "zero.wav"
    write_wav(path, np.zeros(0), 16000)
    with pytest.raises(InputError, match=r"empty \(0 seconds\)"):
        probe_audio(path)


def test_missing_file(tmp_path):
    from liveportrait.audio import probe_audio

    with pytest.raises(InputError, match="not found"):
        probe_audio(tmp_path / "nope.wav")


def test_silence_is_accepted_with_a_warning(tmp_path, caplog):
    from liveportrait.audio import probe_audio

    path = tmp_path / "silence.wav"
    write_wav(path, np.zeros(16000), 16000)
    with caplog.at_level("WARNING"):
        info = probe_audio(path)
    assert info.silent and info.seconds == 1.0
    assert any("silent" in r.getMessage() for r in caplog.records)


def test_audio_files_are_told_from_videos_and_images(tmp_path, audio_kit, examples_dir):
    from liveportrait.audio import is_audio_file

    assert is_audio_file(audio_kit / "espeak_16k.wav")
    renamed = tmp_path / "speech.bin"
    renamed.write_bytes((audio_kit / "espeak_16k.wav").read_bytes())
    assert is_audio_file(renamed)  # by content
    assert is_audio_file(tmp_path / "not_yet.mp3")  # by extension
    assert not is_audio_file(examples_dir / "source" / "s1.jpg")
    assert not is_audio_file(examples_dir / "driving" / "d12.mp4")
