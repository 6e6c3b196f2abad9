"""Every command that writes media marks what it wrote: ``liveportrait verify`` on the command's own output.

Tiny networks (seeded random weights), real example media. Each output is checked with the real
``verify`` command for both marks: the metadata label and the watermark, carrying the same run id.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from liveportrait.cli import main
from liveportrait.provenance import NOT_GENERATED
from tests.provenance.conftest import STATEMENT, assert_fully_marked, verify_json  # noqa: F401


@pytest.fixture(scope="module")
def driving(examples_dir, tmp_path_factory) -> Path:
    """The first 12 frames of d12.mp4 with its sound (a cut of a real video: not marked)."""
    from liveportrait.media import VideoReader, VideoWriter

    src = examples_dir / "driving" / "d12.mp4"
    out = tmp_path_factory.mktemp("driving") / "d12-12.mp4"
    with VideoReader(src) as reader, VideoWriter(out, reader.info.fps, audio_from=src, stamp=NOT_GENERATED) as w:
        for _, frame in zip(range(12), reader):
            w.write(frame)
    return out


@pytest.fixture
def animate(tiny_weights, examples_dir, capsys):
    def run(driving, output, *extra) -> None:
        code = main(["animate", "-s", str(examples_dir / "source/s1.jpg"), "-d", str(driving), "-o", str(output),
                     "--max-dim", "512", "--no-template", *map(str, extra),
                     "--weights", str(tiny_weights), "--model-config", "tiny", "-q"])
        assert code == 0, capsys.readouterr().err
    return run


@pytest.mark.parametrize("name", ["out.mp4", "out.gif"])
def test_animate_video_outputs_are_marked(animate, driving, tmp_path, capsys, name):
    animate(driving, tmp_path / name)
    assert_fully_marked(tmp_path / name, capsys)


def test_animate_png_frames_folder_is_marked(animate, driving, tmp_path, capsys):
    animate(driving, tmp_path / "frames", "--format", "png")
    frames = sorted((tmp_path / "frames").glob("*.png"))
    assert len(frames) == 12
    assert len({assert_fully_marked(f, capsys) for f in (frames[0], frames[-1])}) == 1  # one run, one id


def test_animate_comparison_video_is_marked_with_the_run_id(animate, driving, tmp_path, capsys):
    animate(driving, tmp_path / "cmp.mp4", "--comparison")
    run = assert_fully_marked(tmp_path / "cmp.mp4", capsys)
    assert assert_fully_marked(tmp_path / "cmp_concat.mp4", capsys) == run


@pytest.mark.parametrize("name", ["still.png", "still.jpg"])
def test_animate_still_and_its_comparison_are_marked(animate, examples_dir, tmp_path, capsys, name):
    animate(examples_dir / "driving/d30.jpg", tmp_path / name, "--comparison")
    run = assert_fully_marked(tmp_path / name, capsys)
    stem, suffix = name.split(".")
    assert assert_fully_marked(tmp_path / f"{stem}_concat.{suffix}", capsys) == run


def test_animate_no_watermark_keeps_the_label(animate, driving, tmp_path, capsys):
    animate(driving, tmp_path / "plain.mp4", "--no-watermark")
    code, report = verify_json(tmp_path / "plain.mp4", capsys)
    assert code == 0 and report["metadata"]["statement"] == STATEMENT and not report["watermark"]["found"]


def test_live_output_is_marked(tiny_weights, examples_dir, driving, tmp_path, capsys):
    out = tmp_path / "live.mp4"
    code = main(["live", "--source", str(examples_dir / "source/s1.jpg"), "--driving", str(driving), "--no-crop",
                 "--weights", str(tiny_weights), "--model-config", "tiny", "-o", str(out), "-q"])
    assert code == 0, capsys.readouterr().err
    assert_fully_marked(out, capsys)


def test_live_no_watermark_keeps_the_label(tiny_weights, examples_dir, driving, tmp_path, capsys):
    out = tmp_path / "live.mp4"
    code = main(["live", "--source", str(examples_dir / "source/s1.jpg"), "--driving", str(driving), "--no-crop",
                 "--weights", str(tiny_weights), "--model-config", "tiny", "-o", str(out), "-q", "--no-watermark"])
    assert code == 0, capsys.readouterr().err
    code, report = verify_json(out, capsys)
    assert code == 0 and report["metadata"]["statement"] == STATEMENT and not report["watermark"]["found"]


# ---------------------------------------------------------------------------- the app's outputs (no browser)


@pytest.fixture(scope="module")
def backend(tiny_weights, tmp_path_factory):
    from liveportrait.app.backend import AppBackend
    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    nets = LivePortraitNetworks.from_pretrained(tiny_weights, ModelConfig.tiny(), locate=False)
    return AppBackend(nets, workdir=tmp_path_factory.mktemp("app"))


def test_app_edit_picture_is_marked(backend, examples_dir, capsys):
    out = backend.edit(str(examples_dir / "source/s1.jpg"), 2.3, {"smile": 0.8})
    assert_fully_marked(out, capsys)


def test_app_keyframe_video_is_marked(backend, examples_dir, capsys):
    keys = json.dumps([{"time": 0}, {"time": 0.2, "smile": 1.0}])
    out = backend.render_keyframes(str(examples_dir / "source/s1.jpg"), 2.3, keys, fps=10)
    assert_fully_marked(out, capsys)


def test_app_animate_result_is_marked(backend, examples_dir, driving, capsys):
    out, is_video = backend.animate(str(examples_dir / "source/s1.jpg"), str(driving))
    assert is_video
    assert_fully_marked(out, capsys)


def test_app_retarget_video_is_marked(backend, driving, capsys):
    out = backend.retarget(str(driving), eye_ratio=0.2, lip_ratio=None)
    assert_fully_marked(out, capsys)


def test_verify_refuses_empty_truncated_and_oversized_files_from_the_header(examples_dir, tmp_path, capsys):
    """One line each, from the header: no OS error number, no path said twice, no Pillow warning, and a
    144 MP picture refused at once instead of decoded for half a minute."""
    from PIL import Image

    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    truncated = tmp_path / "cut.mp4"
    truncated.write_bytes((examples_dir / "driving/d0.mp4").read_bytes()[:3000])
    huge = tmp_path / "huge.png"
    Image.new("L", (12000, 12000)).save(huge, compress_level=1)
    for path, message in [(empty, "video file is empty (0 bytes)"), (truncated, "unreadable or corrupt video"),
                          (huge, "image too large (12000x12000 = 144 MP; the limit is 100 MP)")]:
        assert main(["verify", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.splitlines() == [f"error: {path}: {message}" + err.split(message, 1)[1].rstrip("\n")], err
        assert "Errno" not in err and "Warning" not in err and err.count(str(path)) == 1
