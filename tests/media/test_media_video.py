"""Video probing, streaming decode, atomic H.264 writing with audio, GIF and PNG sequences."""

from __future__ import annotations

from fractions import Fraction

import av
import numpy as np
import pytest
from PIL import Image

from liveportrait.errors import InputError
from liveportrait.media import video as vid
from liveportrait.provenance import Stamp
from tests.conftest import requires

LABEL_ONLY = Stamp(watermark=False)  # these tests look at the codec's fidelity, not at the watermark


def _streams(path):
    """{type: (frames, duration s, stream)} read back with PyAV directly (not through our reader)."""
    out = {}
    with av.open(str(path)) as c:
        for s in c.streams:
            dur = float(s.duration * s.time_base) if s.duration else None
            out[s.type] = (s.frames, dur, s.codec_context.name)
        meta = dict(c.metadata)
        rate = c.streams.video[0].average_rate if c.streams.video else None
    return out, meta, rate


def _decoded_audio(path):
    """Mono float samples and rate of a file's first audio stream."""
    with av.open(str(path)) as c:
        frames = list(c.decode(audio=0))
        rate = frames[0].sample_rate
        return np.concatenate([f.to_ndarray()[0] for f in frames]), rate


# ---------------------------------------------------------------------------- reading


def test_probe_examples(examples_dir):
    drv = examples_dir / "driving"
    d0 = vid.probe(drv / "d0.mp4")
    assert (d0.fps, d0.frame_count, d0.width, d0.height, d0.has_audio) == (25, 78, 512, 512, False)
    assert isinstance(d0.fps, Fraction) and d0.duration == pytest.approx(3.12)
    d9 = vid.probe(drv / "d9.mp4")
    assert (d9.fps, d9.frame_count, d9.width, d9.height, d9.has_audio) == (30, 587, 512, 480, True)
    d12 = vid.probe(drv / "d12.mp4")
    assert d12.has_audio and d12.audio_codec == "aac" and d12.frame_count == 183
    s13 = vid.probe(examples_dir / "source" / "s13.mp4")
    assert (s13.width, s13.height, s13.frame_count, s13.has_audio) == (720, 1080, 103, True)


def test_iter_frames_streams_every_frame(examples_dir):
    frames = 0
    for rgb in vid.iter_frames(examples_dir / "driving" / "d0.mp4"):
        assert rgb.shape == (512, 512, 3) and rgb.dtype == np.uint8
        frames += 1
    assert frames == 78
    assert len(vid.read_frames(examples_dir / "driving" / "d12.mp4", limit=5)) == 5


def test_reader_is_single_pass_and_timed(examples_dir):
    with vid.VideoReader(examples_dir / "driving" / "d0.mp4") as r:
        times = [t for t, _ in r.iter_timed()]
        assert r.frames_read == 78
        with pytest.raises(RuntimeError):
            next(iter(r))
    assert times[0] == 0 and times[1] == pytest.approx(0.04) and times[-1] == pytest.approx(77 * 0.04)


@requires(hasattr(av.video.stream.VideoStream, "set_display_rotation"), "PyAV too old to write rotation")
def test_rotation_metadata_applied(tmp_path):
    path = tmp_path / "rot.mp4"
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 64, 32, "yuv420p"
        s.set_display_rotation(90)  # display: rotate 90 degrees counter-clockwise
        for i in range(3):
            a = np.zeros((32, 64, 3), np.uint8)
            a[:, 48:] = 255  # white band on the stored right side
            f = av.VideoFrame.from_ndarray(a, format="rgb24")
            f.pts = i
            for p in s.encode(f):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    info = vid.probe(path)
    assert (info.width, info.height, info.rotation) == (32, 64, 90)
    frames = vid.read_frames(path)
    assert len(frames) == 3 and frames[0].shape == (64, 32, 3)
    assert frames[0][:16].mean() > 200 and frames[0][32:].mean() < 30  # the right side went to the top
    raw = next(iter(vid.VideoReader(path, apply_rotation=False)))
    assert raw.shape == (32, 64, 3)


def test_unreadable_videos(tmp_path, examples_dir):
    with pytest.raises(InputError, match="not found"):
        vid.probe(tmp_path / "missing.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        vid.probe(tmp_path / "empty.mp4")
    (tmp_path / "junk.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(InputError, match="corrupt"):
        vid.probe(tmp_path / "junk.mp4")
    data = (examples_dir / "driving" / "d0.mp4").read_bytes()  # index (moov) at the end
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt"):
        vid.probe(tmp_path / "cut.mp4")
    (tmp_path / "still.mp4").write_bytes((examples_dir / "driving" / "d12.jpg").read_bytes())
    info = vid.probe(tmp_path / "still.mp4")  # FFmpeg reads a JPEG as a one-frame video
    assert info.frame_count in (1, None)


def test_truncated_faststart_file_is_refused(tmp_path, gradient):
    path = tmp_path / "full.mp4"
    vid.write_video(path, (gradient(64, 64, i) for i in range(20)), 25)  # faststart: index first
    data = path.read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: int(len(data) * 0.7)])
    with pytest.raises(InputError, match="truncated"):
        vid.VideoReader(tmp_path / "cut.mp4")
    with vid.VideoReader(tmp_path / "cut.mp4", allow_truncated=True) as r:
        assert 0 < sum(1 for _ in r) < 20


def test_empty_video_has_no_frames(tmp_path):
    path = tmp_path / "zero.mp4"
    with av.open(str(path), "w") as c:  # a valid container whose video stream has no packets
        s = c.add_stream("libx264", rate=25)
        s.width, s.height, s.pix_fmt = 32, 32, "yuv420p"
        c.start_encoding()
    with pytest.raises(InputError, match="no frames"):
        vid.probe(path)


# ---------------------------------------------------------------------------- writing


def test_write_with_audio_from_d12(tmp_path, examples_dir, no_leftovers):
    src = examples_dir / "driving" / "d12.mp4"
    out = tmp_path / "with_audio.mp4"
    meta = {"comment": "made by liveportrait", "title": "t", "liveportrait_params": '{"crf": 18}'}
    with vid.VideoWriter(out, vid.probe(src).fps, audio_from=src, metadata=meta) as w:
        assert w.has_audio
        for rgb in vid.iter_frames(src, limit=30):
            w.write(rgb)
    streams, tags, rate = _streams(out)
    assert streams["video"][0] == 30 and rate == 25
    assert streams["video"][2] == "h264"
    assert streams["audio"][2] == "aac"  # copied, not re-encoded
    assert streams["audio"][1] == pytest.approx(1.2, abs=0.05)
    for k, v in meta.items():
        assert tags[k] == v
    info = vid.probe(out)
    assert (info.frame_count, info.fps, info.has_audio) == (30, 25, True)
    first = vid.read_frames(out, limit=1)[0]
    ref = vid.read_frames(src, limit=1)[0]
    assert np.abs(first.astype(int) - ref).mean() < 3  # crf 18: visually lossless
    no_leftovers(tmp_path)


def test_no_audio_source_gives_silent_video(tmp_path, examples_dir, gradient):
    out = tmp_path / "silent.mp4"
    with vid.VideoWriter(out, 25, audio_from=examples_dir / "driving" / "d0.mp4") as w:
        assert not w.has_audio
        for i in range(10):
            w.write(gradient(64, 64, i))
    streams, _, _ = _streams(out)
    assert "audio" not in streams and streams["video"][0] == 10


def test_exception_inside_with_leaves_nothing(tmp_path, examples_dir, gradient, no_leftovers):
    out = tmp_path / "broken.mp4"
    with pytest.raises(RuntimeError, match="boom"):
        with vid.VideoWriter(out, 25, audio_from=examples_dir / "driving" / "d12.mp4") as w:
            for i in range(5):
                w.write(gradient(64, 64, i))
            raise RuntimeError("boom")
    assert not out.exists()
    no_leftovers(tmp_path)
    # an existing output survives an aborted rewrite untouched
    vid.write_video(out, [gradient(32, 32)] * 3, 25)
    before = out.read_bytes()
    w = vid.VideoWriter(out, 25)
    w.write(gradient(32, 32, 1))
    w.abort()
    assert out.read_bytes() == before
    no_leftovers(tmp_path)
    with pytest.raises(ValueError, match="no frames"):
        with vid.VideoWriter(tmp_path / "none.mp4", 25):
            pass
    assert not (tmp_path / "none.mp4").exists()
    with pytest.raises(ValueError):
        with vid.VideoWriter(tmp_path / "mixed.mp4", 25) as w:
            w.write(gradient(32, 32))
            w.write(gradient(32, 48))
    assert not (tmp_path / "mixed.mp4").exists()
    no_leftovers(tmp_path)


def test_ntsc_rate_and_odd_size(tmp_path, gradient):
    out = tmp_path / "ntsc.mp4"
    frames = [gradient(33, 47, i) for i in range(45)]
    with vid.VideoWriter(out, 29.97, stamp=LABEL_ONLY) as w:  # a float 29.97 is snapped to 30000/1001
        w.write_all(frames)
        assert w.fps == Fraction(30000, 1001) and w.size == (48, 34)
    info = vid.probe(out)
    assert info.fps == Fraction(30000, 1001) and (info.width, info.height) == (48, 34)
    back = vid.read_frames(out)
    assert len(back) == 45
    # padded by repeating the last row / column; the original pixels come back
    assert np.abs(back[7][:33, :47].astype(int) - frames[7]).mean() < 3
    assert np.abs(back[7][33].astype(int) - back[7][32]).mean() < 4


def test_transcoded_audio_with_offset(tmp_path, gradient, make_wav):
    wav = make_wav(tmp_path / "tone.wav", seconds_silent=1.0, seconds_loud=2.0)
    frames = [gradient(32, 32, i) for i in range(15)]  # 1.5 s at 10 fps
    vid.write_video(tmp_path / "a0.mp4", frames, 10, audio_from=wav)
    vid.write_video(tmp_path / "a1.mp4", frames, 10, audio_from=wav, audio_start=1.0)
    vid.write_video(tmp_path / "a2.mp4", frames, 10, audio_from=wav, audio_limit=0.5)
    for name, expected in (("a0", 1.5), ("a1", 1.5), ("a2", 0.5)):
        streams, _, _ = _streams(tmp_path / f"{name}.mp4")
        assert streams["audio"][2] == "aac"  # PCM cannot go into MP4 as is
        assert streams["audio"][1] == pytest.approx(expected, abs=0.03), name
    s0, rate = _decoded_audio(tmp_path / "a0.mp4")
    s1, _ = _decoded_audio(tmp_path / "a1.mp4")
    head = slice(int(0.1 * rate), int(0.5 * rate))
    assert np.abs(s0[head]).max() < 0.02  # starts in the silent part
    assert np.abs(s1[head]).max() > 0.3  # starts one second in, in the tone


def test_audio_longer_than_video_is_trimmed_and_shorter_is_kept(tmp_path, gradient, make_wav):
    wav = make_wav(tmp_path / "short.wav", seconds_silent=0.0, seconds_loud=0.5)
    vid.write_video(tmp_path / "long_video.mp4", [gradient(32, 32)] * 20, 10, audio_from=wav)
    streams, _, _ = _streams(tmp_path / "long_video.mp4")
    assert streams["video"][0] == 20  # the video is never cut to the audio (unlike -shortest)
    assert streams["audio"][1] == pytest.approx(0.5, abs=0.03)


def test_bad_output_paths(tmp_path, gradient):
    with pytest.raises(InputError, match="cannot write video"):
        vid.VideoWriter(tmp_path / "x.avi", 25)
    with pytest.raises(InputError, match="not found"):
        vid.VideoWriter(tmp_path / "x.mp4", 25, audio_from=tmp_path / "nope.mp4")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError):
        vid.VideoWriter(tmp_path / "x.mp4", 0)


# ---------------------------------------------------------------------------- GIF and PNG


def test_gif(tmp_path, gradient, no_leftovers):
    frames = [gradient(40, 48, i) for i in range(12)]
    n = vid.write_gif(tmp_path / "a.gif", iter(frames), 25, stamp=LABEL_ONLY)
    assert n == 12
    with Image.open(tmp_path / "a.gif") as g:
        assert g.n_frames == 12 and g.size == (48, 40) and g.info.get("loop") == 0
        durations = []
        for i in range(g.n_frames):
            g.seek(i)
            durations.append(g.info["duration"])
            back = np.asarray(g.convert("RGB")).astype(int)
            assert np.abs(back - frames[i]).mean() < 4
    assert durations == [40] * 12
    with pytest.raises(RuntimeError):
        with vid.GifWriter(tmp_path / "b.gif", 10) as w:
            w.write(frames[0])
            raise RuntimeError("stop")
    assert not (tmp_path / "b.gif").exists()
    no_leftovers(tmp_path)


def test_png_sequence(tmp_path, gradient, no_leftovers):
    frames = [gradient(10, 12, i) for i in range(4)]
    assert vid.write_png_sequence(tmp_path / "seq", frames, stamp=LABEL_ONLY) == 4
    names = sorted(p.name for p in (tmp_path / "seq").iterdir())
    assert names == ["000000.png", "000001.png", "000002.png", "000003.png"]
    assert np.array_equal(np.asarray(Image.open(tmp_path / "seq" / "000002.png")), frames[2])
    vid.write_png_sequence(tmp_path / "seq", frames[:2])  # replaced as a whole
    assert len(list((tmp_path / "seq").iterdir())) == 2
    with pytest.raises(RuntimeError):
        with vid.PngSequenceWriter(tmp_path / "seq") as w:
            w.write(frames[0])
            raise RuntimeError("stop")
    assert len(list((tmp_path / "seq").iterdir())) == 2  # the old folder is untouched
    no_leftovers(tmp_path)


def test_open_writer_dispatch(tmp_path):
    for name, cls in (("a.mp4", vid.VideoWriter), ("a.gif", vid.GifWriter), ("frames", vid.PngSequenceWriter)):
        w = vid.open_writer(tmp_path / name, 25, crf=20)
        assert isinstance(w, cls)
        w.abort()
    assert list(tmp_path.iterdir()) == []


def test_has_audio_still_answers_after_close(tmp_path, examples_dir, gradient):
    """``has_audio`` says whether the finished file has sound (it used to turn false on close)."""
    drv = examples_dir / "driving"
    cases = {"sound": (drv / "d12.mp4", 0.0), "silent source": (drv / "d0.mp4", 0.0),
             "audio starts after its end": (drv / "d12.mp4", 100.0)}
    result = {}
    for name, (src, start) in cases.items():
        out = tmp_path / f"{name}.mp4"
        with vid.VideoWriter(out, 25, audio_from=src, audio_start=start) as w:
            for i in range(10):
                w.write(gradient(64, 64, i))
        result[name] = (w.has_audio, "audio" in _streams(out)[0])
    assert result == {"sound": (True, True), "silent source": (False, False),
                      "audio starts after its end": (False, False)}
    w = vid.VideoWriter(tmp_path / "aborted.mp4", 25, audio_from=drv / "d12.mp4")
    w.write(gradient(64, 64))
    w.abort()
    assert not w.has_audio and not (tmp_path / "aborted.mp4").exists()
