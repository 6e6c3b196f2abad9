"""``liveportrait animate`` end to end, with tiny networks in the released format and real media."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liveportrait.cli import main
from liveportrait.errors import InputError, NoFaceError, UnsafeFileError
from liveportrait.media import VideoReader, probe, read_image


@pytest.fixture
def animate(tiny_weights, capsys):
    def run(*args) -> tuple[int, str]:
        code = main(["animate", *map(str, args), "--weights", str(tiny_weights), "--model-config", "tiny", "-q"])
        return code, capsys.readouterr().err
    return run


def count_frames(path: Path) -> int:
    with VideoReader(path) as r:
        return sum(1 for _ in r)


@pytest.fixture(scope="module")
def clips(examples_dir, tmp_path_factory) -> dict[str, Path]:
    """The first 12 frames of the example drivings, sound kept: what the whole clips showed, in a tenth of the
    frames (each frame costs the same; the behaviour is the same)."""
    from tests.test_api import short_clip

    d = tmp_path_factory.mktemp("clips")
    return {name: short_clip(examples_dir / "driving" / f"{name}.mp4", d / f"{name}.mp4", 12) for name in ("d0", "d12")}


def test_video_driving_keeps_frames_fps_and_sound(animate, examples_dir, clips, tmp_path):
    out = tmp_path / "with_sound.mp4"
    code, err = animate("-s", examples_dir / "source/s1.jpg", "-d", clips["d12"], "-o", out)
    assert code == 0, err
    info = probe(out)
    assert info.fps == 25 and info.has_audio
    assert count_frames(out) == 12
    # the pasted-back result has the photo's size, odd sides padded to even for H.264 (s1.jpg: 1145 x 1145)
    from PIL import Image, ImageOps

    with Image.open(examples_dir / "source/s1.jpg") as im:
        w, h = ImageOps.exif_transpose(im).size
    assert (w, h) == (1145, 1145)  # the photo this test relies on: odd, so the padding is checked
    assert (info.width, info.height) == (w + w % 2, h + h % 2)
    # the driving motion was saved as a safe template beside the output
    assert (tmp_path / "with_sound.lpt.npz").is_file()


def test_driving_without_audio_gives_silent_video(animate, examples_dir, clips, tmp_path):
    out = tmp_path / "silent.mp4"
    code, err = animate("-s", examples_dir / "source/s0.jpg", "-d", clips["d0"], "-o", out, "--no-template")
    assert code == 0, err
    info = probe(out)
    assert not info.has_audio and info.fps == 25
    assert count_frames(out) == 12
    assert not list(tmp_path.glob("*.npz"))


@pytest.mark.parametrize("name", ["d1.pkl", "d5.pkl", "talking.pkl", "wink.pkl"])
def test_every_reference_template_animates(animate, examples_dir, tmp_path, name):
    """Each template loads whole and drives; the short one (d1) to its end, the long ones for 10 frames."""
    from liveportrait.media import load_template

    tpl = load_template(examples_dir / "driving" / name)
    out = tmp_path / "t.mp4"
    code, err = animate("-s", examples_dir / "source/s9.jpg", "-d", examples_dir / "driving" / name, "-o", out,
                        *(() if name == "d1.pkl" else ("--max-frames", "10")))
    assert code == 0, err
    assert count_frames(out) == (tpl.n_frames if name == "d1.pkl" else min(10, tpl.n_frames))
    assert probe(out).fps == tpl.fps


def test_image_driving_gives_an_image(animate, examples_dir, tmp_path):
    out = tmp_path / "still.png"
    code, err = animate("-s", examples_dir / "source/s5.jpg", "-d", examples_dir / "driving/d30.jpg", "-o", out,
                        "--comparison", "--no-watermark")
    assert code == 0, err
    source = read_image(examples_dir / "source/s5.jpg")
    result = read_image(out)
    assert result.shape == source.shape
    # pasted back: far from the face the picture is untouched, on the face it changed
    assert np.abs(result[:20, :20].astype(int) - source[:20, :20]).max() <= 2
    assert np.abs(result.astype(int) - source).mean() > 1
    assert read_image(tmp_path / "still_concat.png").shape[0] == 512


def test_fast_backend_gives_the_eager_picture(animate, examples_dir, tmp_path, winograd_calls):
    """`--backend auto --precision fp32` (the exact fast path on the CPU) renders what the float32 eager path
    renders, within its bound (bfloat16, the default on some CPUs, has its own: tests/speed/test_bf16.py).
    ``winograd_calls`` lowers the Winograd thresholds so that the tiny networks take that path too."""
    from liveportrait.speed import FIDELITY_PSNR_DB

    outs = {}
    for backend in ("eager", "auto"):
        out = tmp_path / f"{backend}.png"
        code, err = animate("-s", examples_dir / "source/s5.jpg", "-d", examples_dir / "driving/d30.jpg", "-o", out,
                            "--no-watermark", "--backend", backend, "--precision", "fp32")
        assert code == 0, err
        outs[backend] = read_image(out).astype(np.float64)
        assert bool(winograd_calls) == (backend == "auto"), backend  # the fast backend ran Winograd convolutions
    mse = np.mean((outs["auto"] - outs["eager"]) ** 2)
    assert mse == 0 or 10 * np.log10(255.0**2 / mse) >= FIDELITY_PSNR_DB["fast"]


def test_video_source_follows_source_length_and_sound(animate, examples_dir, clips, tmp_path):
    """s13.mp4 (103 frames, with sound) driven by d0's first 12 frames (silent): 12 frames, the source's sound."""
    out = tmp_path / "v2v.mp4"
    code, err = animate("-s", examples_dir / "source/s13.mp4", "-d", clips["d0"], "-o", out)
    assert code == 0, err
    info = probe(out)
    assert info.has_audio and info.fps == 25
    assert count_frames(out) == 12


def test_comparison_of_a_video_source_shows_its_frame_beside_the_result(animate, examples_dir, tmp_path):
    """A source video driven by a template: the comparison is [source frame | result] at each time (it was the
    result alone, no source panel); --max-frames keeps the preview to 3 frames."""
    from liveportrait.media import iter_frames, read_frames
    from liveportrait.pipeline import resize_to_limit, side_by_side

    out = tmp_path / "v.mp4"
    code, err = animate("-s", examples_dir / "source/s13.mp4", "-d", examples_dir / "driving/d5.pkl", "-o", out,
                        "--comparison", "--max-frames", "3")
    assert code == 0, err
    panels, results = read_frames(tmp_path / "v_concat.mp4"), read_frames(out)
    sources = [resize_to_limit(f, 1280) for f in iter_frames(examples_dir / "source/s13.mp4", limit=3)]
    assert len(panels) == len(results) == 3
    for panel, source, result in zip(panels, sources, results):
        expected = side_by_side([source, result])
        assert panel.shape == expected.shape  # two panels, not one
        error = np.abs(panel.astype(np.float32) - expected.astype(np.float32)).mean()
        assert error < 6, error  # H.264 twice; a missing or wrong panel is off by tens


def test_no_crop_outputs_the_crop(animate, examples_dir, tmp_path):
    out = tmp_path / "crop.mp4"
    code, err = animate("-s", examples_dir / "source/s1.jpg", "-d", examples_dir / "driving/d1.pkl", "-o", out,
                        "--no-crop")
    assert code == 0, err
    assert (probe(out).width, probe(out).height) == (512, 512)


class Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_template_is_refused(animate, examples_dir, tmp_path):
    marker = tmp_path / "pwned"
    bad = tmp_path / "evil.pkl"
    bad.write_bytes(pickle.dumps({"n_frames": 1, "motion": [Evil(marker)]}))
    out = tmp_path / "never.mp4"
    code, err = animate("-s", examples_dir / "source/s0.jpg", "-d", bad, "-o", out)
    assert code == UnsafeFileError.exit_code
    assert "Traceback" not in err and err.count("\n") == 1
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("case", ["missing", "corrupt_video", "empty_video", "unknown", "text_as_image"])
def test_bad_input_is_one_clear_line(animate, examples_dir, tmp_path, case):
    d = tmp_path / "d"
    d.mkdir()
    driving = examples_dir / "driving/d0.mp4"
    source = examples_dir / "source/s0.jpg"
    if case == "missing":
        driving = d / "nope.mp4"
    elif case == "corrupt_video":
        driving = d / "broken.mp4"
        driving.write_bytes((examples_dir / "driving/d0.mp4").read_bytes()[:5000])
    elif case == "empty_video":
        driving = d / "empty.mp4"
        driving.write_bytes(b"")
    elif case == "unknown":
        driving = d / "notes.xyz"
        driving.write_text("hello")
    else:
        source = d / "fake.jpg"
        source.write_text("not a picture")
    out = tmp_path / "out" / "o.mp4"
    code, err = animate("-s", source, "-d", driving, "-o", out)
    assert code == InputError.exit_code, err
    assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err
    assert not out.exists() and not (out.parent.exists() and any(out.parent.iterdir()))


def test_no_face_suggests_crop_box(animate, examples_dir, tmp_path):
    out = tmp_path / "dog.mp4"
    code, err = animate("-s", examples_dir / "source/s25.jpg", "-d", examples_dir / "driving/d1.pkl", "-o", out)
    assert code == NoFaceError.exit_code
    assert "--crop-box" in err and not out.exists()
    # with a box, the dog animates
    code, err = animate("-s", examples_dir / "source/s25.jpg", "-d", examples_dir / "driving/d1.pkl", "-o", out,
                        "--crop-box", "100,60,420,380")
    assert code == 0, err
    assert count_frames(out) == 16


def test_every_face_of_a_group_picture(animate, examples_dir, tmp_path):
    """Two example photos side by side: --face all animates both and pastes both back."""
    import cv2

    from liveportrait.media import write_image
    from liveportrait.provenance import NOT_GENERATED

    a = read_image(examples_dir / "source/s1.jpg")
    b = read_image(examples_dir / "source/s9.jpg")
    h = 600
    a = cv2.resize(a, (a.shape[1] * h // a.shape[0], h), interpolation=cv2.INTER_AREA)
    b = cv2.resize(b, (b.shape[1] * h // b.shape[0], h), interpolation=cv2.INTER_AREA)
    group = np.concatenate([a, b], axis=1)
    src = tmp_path / "group.png"
    write_image(src, group, stamp=NOT_GENERATED)  # a collage of real photos: the pixels as they are
    out = tmp_path / "group_out.png"
    code, err = animate("-s", src, "-d", examples_dir / "driving/d30.jpg", "-o", out, "--face", "all",
                        "--no-watermark")
    assert code == 0, err
    result = read_image(out).astype(int)
    changed = np.abs(result - group).sum(axis=2) > 10
    left, right = changed[:, : a.shape[1]], changed[:, a.shape[1]:]
    assert left.mean() > 0.02 and right.mean() > 0.02, "both faces must be animated"
    # with the default, only the largest face moves
    out1 = tmp_path / "one.png"
    code, err = animate("-s", src, "-d", examples_dir / "driving/d30.jpg", "-o", out1, "--no-watermark")
    assert code == 0, err
    changed1 = np.abs(read_image(out1).astype(int) - group).sum(axis=2) > 10
    assert min(changed1[:, : a.shape[1]].mean(), changed1[:, a.shape[1]:].mean()) < 0.001


def test_every_face_of_a_group_video(animate, examples_dir, tmp_path):
    """s13 beside a mirrored s13: --face all follows and animates both faces of the source video."""
    from liveportrait.media import VideoWriter

    frames = []
    with VideoReader(examples_dir / "source/s13.mp4") as r:
        for i, f in enumerate(r):
            if i == 8:
                break
            half = f[::2, ::2]
            frames.append(np.concatenate([half, half[:, ::-1]], axis=1))
    src = tmp_path / "pair.mp4"
    with VideoWriter(src, 25, crf=10) as w:
        for f in frames:
            w.write(f)
    out = tmp_path / "pair_out.mp4"
    code, err = animate("-s", src, "-d", examples_dir / "driving/d30.jpg", "-o", out, "--face", "all",
                        "--no-watermark")
    assert code == 0, err
    with VideoReader(src) as a, VideoReader(out) as b:
        pairs = list(zip(a, b))
    assert len(pairs) == len(frames)
    width = frames[0].shape[1] // 2
    for before, after in pairs[:3]:
        changed = np.abs(after.astype(int) - before).sum(axis=2) > 30
        assert changed[:, :width].mean() > 0.01 and changed[:, width:].mean() > 0.01, "both faces must move"
    # one driving per face, or one for all: anything else is a clear error
    d = examples_dir / "driving/d30.jpg"
    code, err = animate("-s", src, "-d", d, "-d", d, "-d", d, "-o", tmp_path / "x.mp4", "--face", "all")
    assert code == InputError.exit_code and "one per face" in err
    assert not (tmp_path / "x.mp4").exists()


def test_a_run_says_what_it_loads_at_once_and_its_wall_time_at_the_end(tiny_weights, examples_dir, tmp_path, capsys):
    """The first line names the weights being loaded (nothing was printed for the seconds of a load before); the
    last gives the whole run's wall time and its parts (it gave only the writing's seconds)."""
    code = main(["animate", "-s", str(examples_dir / "source/s9.jpg"), "-d", str(examples_dir / "driving/d30.jpg"),
                 "-o", str(tmp_path / "out.png"), "--weights", str(tiny_weights)])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert captured.err.splitlines()[0] == f"loading networks from {tiny_weights} ..."
    last = captured.out.strip().splitlines()[0]
    match = re.search(r"; ([\d.]+) s in all: ([\d.]+) s checking and loading, ([\d.]+) s animating and writing;", last)
    assert match, last
    total, loading, working = map(float, match.groups())
    assert abs(total - loading - working) <= 0.11  # the parts add up (each rounded to 0.1 s)


def test_face_finding_writes_nothing_to_stderr(examples_dir):
    """MediaPipe's C++ side logs to the process's stderr (an inference_feedback_manager.cc warning once reached a
    user's terminal mid-run): finding and following faces on every example photo and a driving clip, in a fresh
    process, leaves stderr empty."""
    code = ("import glob, sys\n"
            "from liveportrait.face.cropper import Cropper, VideoFaceTracker\n"
            "from liveportrait.media import iter_frames, read_image\n"
            "c = Cropper()\n"
            "for f in sorted(glob.glob(sys.argv[1] + '/source/*.jpg')):\n"
            "    try: c.crop_image(read_image(f))\n"
            "    except Exception: pass\n"
            "t = VideoFaceTracker(c, preset='driving', fps=25.0)\n"
            "for frame in iter_frames(sys.argv[1] + '/driving/d0.mp4', limit=12): t.update(frame)\n")
    run = subprocess.run([sys.executable, "-c", code, str(examples_dir)], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stderr == "", run.stderr
