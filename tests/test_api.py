"""The Python API: the README's examples run as written, and a caller gets what the CLI gives."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from liveportrait.errors import InputError
from liveportrait.media import VideoReader, VideoWriter, probe
from liveportrait.provenance import NOT_GENERATED

REPO = Path(__file__).resolve().parents[1]


def readme_python() -> str:
    text = (REPO / "README.md").read_text()
    section = text.split("## Python API", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert blocks, "the README's Python API section has no example"
    return "\n".join(blocks)


def short_clip(src: Path, dst: Path, frames: int) -> Path:
    """The first ``frames`` of a clip, with its sound: a real video, small enough for full-size networks."""
    with VideoReader(src) as r, VideoWriter(dst, r.info.fps, audio_from=src, stamp=NOT_GENERATED) as w:
        for i, frame in enumerate(r):
            if i == frames:
                break
            w.write(frame)
    return dst


def media_folder(examples_dir: Path, tmp_path: Path, frames: int) -> Path:
    d = examples_dir
    (tmp_path / "photo.jpg").symlink_to(d / "source/s1.jpg")
    (tmp_path / "smile.jpg").symlink_to(d / "driving/d30.jpg")
    short_clip(d / "driving/d12.mp4", tmp_path / "driving.mp4", frames)
    short_clip(d / "source/s13.mp4", tmp_path / "clip.mp4", frames)
    return tmp_path


def run_readme(folder: Path, weights: Path) -> subprocess.CompletedProcess:
    env = {"LIVEPORTRAIT_WEIGHTS": str(weights), "PATH": "/usr/bin:/bin", "HOME": str(folder)}
    return subprocess.run([sys.executable, "-c", readme_python()], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)


def check_readme_outputs(folder: Path, driving_frames: int) -> None:
    from liveportrait.cli import main

    info = probe(folder / "animated.mp4")
    assert info.fps == 25 and info.has_audio and info.frame_count == driving_frames
    clip = probe(folder / "clip_animated.mp4")
    assert clip.fps == probe(folder / "clip.mp4").fps and clip.has_audio
    for name in ("animated.mp4", "clip_animated.mp4", "smiling.png"):
        assert main(["verify", str(folder / name)]) == 0, name
    assert (folder / "driving.lpt.npz").is_file()


def test_readme_examples_run_on_the_tiny_config(examples_dir, tiny_weights, tmp_path):
    """As written, on short real clips. (The full-size networks' numbers are the conformance tests': running the
    README at full size checked nothing more, for minutes of the suite.)"""
    folder = media_folder(examples_dir, tmp_path, frames=6)
    r = run_readme(folder, tiny_weights)
    assert r.returncode == 0, r.stderr[-3000:]
    assert r.stdout.split()[:3] == ["25", "6", "driving.mp4"]
    check_readme_outputs(folder, 6)


@pytest.fixture(scope="module")
def pipe(tiny_weights):
    from liveportrait import LivePortraitPipeline

    p = LivePortraitPipeline.from_pretrained(tiny_weights)
    p.set_progress_bar_config(disable=True)
    return p


def cli_animate(pipe, tiny_weights, tmp_path, *args) -> Path:
    out = tmp_path / "cli.mp4"
    r = subprocess.run([sys.executable, "-m", "liveportrait.cli", "animate", *map(str, args), "-o", str(out),
                        "--weights", str(tiny_weights), "--model-config", "tiny"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    c = pipe.compute  # the CLI chose the same device, precision and backend as the API
    assert f"; {c.device}, {c.precision}, {c.backend})" in r.stdout, r.stdout
    return out


@pytest.mark.parametrize("source, driving", [("source/s0.jpg", "driving/d0.mp4"), ("source/s13.mp4", "driving/d1.pkl")])
def test_the_api_and_the_cli_give_the_same_file(pipe, tiny_weights, examples_dir, tmp_path, source, driving):
    """Photo + video driving and video source + template: frame count, fps, sound and pixels agree."""
    s, d = examples_dir / source, examples_dir / driving
    # 12 frames say as much as all of them: each is rendered the same way
    cli = cli_animate(pipe, tiny_weights, tmp_path, "-s", s, "-d", d, "--no-watermark", "--max-frames", "12")
    api = pipe(s, d, max_frames=12).save(tmp_path / "api.mp4", watermark=False).output
    a, b = probe(api), probe(cli)
    assert (a.fps, a.frame_count, a.has_audio, a.width, a.height) == (b.fps, b.frame_count, b.has_audio, b.width,
                                                                      b.height)
    with VideoReader(api) as ra, VideoReader(cli) as rb:
        # the same pictures up to H.264 (whose output on noise-like tiny-network frames is not always
        # bit-identical from run to run)
        for fa, fb in zip(ra, rb):
            assert np.abs(fa.astype(int) - fb).mean() < 3
    assert pipe.compute.backend == ("fast" if pipe.compute.device == "cpu" else "eager")


def test_frames_stream_and_carry_what_the_file_would(pipe, examples_dir):
    out = pipe(examples_dir / "source/s0.jpg", examples_dir / "driving/d12.mp4", source_max_dim=256)
    assert (out.fps, out.frame_count, out.faces, out.is_still) == (25, 183, 1, False)
    assert out.audio == examples_dir / "driving/d12.mp4" and out.motion.n_frames == 183
    assert out.crops[0] is not None and len(out.crops[0].box) == 4
    seen = []
    for i, frame in enumerate(out):
        assert frame.dtype == np.uint8 and frame.ndim == 3
        seen.append(i)
        if i == 4:
            break  # stopping early is fine: nothing else is rendered
    assert seen == [0, 1, 2, 3, 4]
    with pytest.raises(RuntimeError, match="already read"):
        out.save("never.mp4")


def test_inputs_in_memory(pipe, examples_dir, tmp_path):
    from PIL import Image

    photo = Image.open(examples_dir / "source/s9.jpg")
    smile = np.asarray(Image.open(examples_dir / "driving/d30.jpg").convert("RGB"))
    still = pipe(photo, smile)
    assert still.is_still and still.image.shape == (1280, 720, 3)
    frames = [smile] * 4
    calls = []
    out = pipe(np.asarray(photo), frames, callback_on_frame=lambda i, f: calls.append((i, f.shape)))
    assert out.frame_count == 4 and out.fps == 25 and out.audio is None
    result = out.save(tmp_path / "frames.gif")
    assert result.frames == 4 and [c[0] for c in calls] == [0, 1, 2, 3]
    one_shot = pipe(photo, iter(frames))  # a driving read once is fine (a source video must be a list)
    assert len(list(one_shot)) == 4
    with pytest.raises(InputError, match="read twice"):
        pipe(iter(frames), smile)


def test_motion_templates_from_elsewhere_drive(pipe, examples_dir):
    """The hook for audio-driven tools: any MotionTemplate (here built from numbers) is a driving."""
    from liveportrait import MotionTemplate

    n = 6
    yaw = np.radians(np.linspace(0, 20, n))
    R = np.stack([[[np.cos(a), 0, -np.sin(a)], [0, 1, 0], [np.sin(a), 0, np.cos(a)]] for a in yaw])
    tpl = MotionTemplate(fps=30, R=R, exp=np.zeros((n, 21, 3)), t=np.zeros((n, 3)), scale=np.ones((n, 1)))
    out = pipe(examples_dir / "source/s9.jpg", tpl)
    assert out.fps == 30 and len(list(out)) == n
    motion = pipe.motion(examples_dir / "driving/d0.mp4")
    assert motion.n_frames == 78 and motion.fps == 25


def test_options_are_checked_before_any_network_runs(pipe, examples_dir, monkeypatch):
    def no_networks(*args, **kwargs):
        raise AssertionError("a network ran before the options were checked")

    monkeypatch.setattr(type(pipe.networks.M), "forward", no_networks)
    s, d = examples_dir / "source/s9.jpg", examples_dir / "driving/d0.mp4"
    for bad, message in [({"multiplier": -1}, "multiplier"), ({"bogus": 1}, "unknown option"),
                         ({"region": "nose"}, "animation region"), ({"reference_frame": 500}, "outside"),
                         ({"crf": 99}, "crf")]:
        with pytest.raises(InputError, match=message):
            pipe(s, d, **bad)
    with pytest.raises(InputError, match="no such file"):
        pipe("nope.jpg", d)


def test_import_and_help_load_no_torch():
    code = ("import sys, liveportrait; from liveportrait import LivePortraitPipeline, AnimateConfig; "
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip() == "False", r.stderr
    code = "import sys; from liveportrait.cli import main\ntry: main(['--help'])\nexcept SystemExit: pass\n" \
           "print('torch' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_a_photo_is_prepared_once_for_many_drivings(tiny_weights, examples_dir, monkeypatch):
    """The second call with the same photo and framing reuses its crop, F and M (what a server's worker
    gains on repeated sources); other framing or another photo is prepared anew; the frames are the same."""
    from liveportrait import LivePortraitPipeline
    from liveportrait.pipeline.source import SourceStage

    pipe = LivePortraitPipeline.from_pretrained(tiny_weights)
    pipe.set_progress_bar_config(disable=True)
    calls = []
    real = SourceStage.prepare_image
    monkeypatch.setattr(SourceStage, "prepare_image", lambda self, image, *a: calls.append(1) or real(self, image, *a))
    photo, driving = examples_dir / "source/s0.jpg", examples_dir / "driving/d12.jpg"
    first = pipe(photo, driving, source_max_dim=256).image
    again = pipe(photo, driving, source_max_dim=256, multiplier=1.0, crf=20).image  # output options do not count
    assert len(calls) == 1 and pipe.source_cache.hits == 1
    np.testing.assert_array_equal(first, again)
    pipe(photo, driving, source_max_dim=256, source_scale=2.0)  # another framing: prepared anew
    pipe(examples_dir / "source/s9.jpg", driving, source_max_dim=256)  # another photo
    assert len(calls) == 3


def test_a_crop_box_is_in_the_photos_own_pixels_when_it_is_shrunk(pipe, examples_dir):
    """A 3840 px photo is shrunk to 1920 px before framing; its --crop-box stays in the photo's own pixels
    (as `liveportrait crop` and image viewers give them)."""
    import cv2
    from PIL import Image

    dog = np.asarray(Image.open(examples_dir / "source/s25.jpg").convert("RGB"))
    big = np.full((2560, 3840, 3), 30, np.uint8)
    big[:, 1280:] = cv2.resize(dog, (2560, 2560), interpolation=cv2.INTER_CUBIC)
    smile = np.asarray(Image.open(examples_dir / "driving/d30.jpg").convert("RGB"))
    out = pipe(big, smile, crop="1280,0,3840,2560", paste_back=False)
    crop = out.crops[0].crop_256.astype(np.float32)
    expected = cv2.resize(dog, (256, 256), interpolation=cv2.INTER_AREA).astype(np.float32)
    assert np.abs(crop - expected).mean() < 8, np.abs(crop - expected).mean()


@pytest.mark.parametrize("choice, message", [({"backend": "banana"}, "backend must be one of"),
                                             ({"precision": "int8"}, "precision must be one of"),
                                             ({"device": "tpu"}, "device must be one of"),
                                             ({"model_config": "huge"}, "model_config must be")])
def test_from_pretrained_checks_its_choices_before_reading_a_file(choice, message):
    # a folder that does not exist: reaching the weights would be a WeightsError, not this InputError
    with pytest.raises(InputError, match=message):
        from liveportrait import LivePortraitPipeline

        LivePortraitPipeline.from_pretrained("/nonexistent/weights", **choice)


def test_empty_pictures_and_frames_are_one_input_error(pipe, examples_dir):
    d = examples_dir / "driving/d30.jpg"
    for source, message in [(np.zeros((0, 0, 3), np.uint8), "empty picture"), ([], "frames are empty"),
                            (np.zeros((0, 64, 64, 3), np.uint8), "frames are empty")]:
        with pytest.raises(InputError, match=message):  # was a ZeroDivisionError deep in the frames' code
            pipe(source, d)


def test_max_frames_previews_the_beginning(pipe, examples_dir):
    out = pipe(examples_dir / "source/s9.jpg", examples_dir / "driving/d0.mp4", max_frames=3)
    assert out.frame_count == 3 and len(list(out)) == 3
    with pytest.raises(InputError, match="max frames"):
        pipe(examples_dir / "source/s9.jpg", examples_dir / "driving/d0.mp4", max_frames=0)


def test_edit_controls_are_named_and_bounded(pipe, examples_dir):
    prepared = pipe.prepare(examples_dir / "source/s9.jpg")
    with pytest.raises(InputError, match="unknown control frown; the controls are .*smile"):
        pipe.edit(prepared, frown=1)
    with pytest.raises(InputError, match="smile must be between -0.3 and 1.3, got 1000"):
        pipe.edit(prepared, smile=1000)


def test_export_helpers_raise_the_documented_errors(tmp_path):
    from liveportrait import export_to_image, export_to_video
    from liveportrait.errors import LivePortraitError

    frame = np.zeros((64, 64, 3), np.uint8)
    for call in (lambda: export_to_video([], tmp_path / "a.mp4"), lambda: export_to_video([frame], tmp_path / "b.mp4",
                 fps=0), lambda: export_to_video([frame.astype(np.float32)], tmp_path / "c.mp4"),
                 lambda: export_to_image(frame.astype(np.float32), tmp_path / "d.png")):
        with pytest.raises(LivePortraitError):
            call()
    assert list(tmp_path.iterdir()) == []
