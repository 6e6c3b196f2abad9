"""``liveportrait crop`` held to ``animate``'s standard, through the real command line in a subprocess.

Every failure is one ``error:`` line on stderr with the right exit code (2 bad input, 3 no face,
6 output not writable), found before the face models load, and leaves no file or folder behind;
a video gets one progress bar and a short summary, not a line per frame.

"Before the face models load" is checked by putting a fake ``mediapipe`` first on PYTHONPATH whose
loading ends the process with exit 99 (``test_the_guard_sees_a_model_load`` shows it would).
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from tests.conftest import skip_or_fail

MODELS_LOADED = 99


def crop(*args, cwd: Path | None = None, guard: Path | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if guard is not None:
        env["PYTHONPATH"] = os.pathsep.join([str(guard), *filter(None, [env.get("PYTHONPATH")])])
    res = subprocess.run([sys.executable, "-m", "liveportrait.cli", "crop", *map(str, args)],
                         cwd=cwd, env=env, capture_output=True, timeout=300)
    # decoded by hand: text=True would turn a progress bar's carriage returns into newlines
    res.stdout, res.stderr = res.stdout.decode("utf-8", "replace"), res.stderr.decode("utf-8", "replace")
    return res


def assert_one_error(res: subprocess.CompletedProcess, code: int, *fragments: str) -> str:
    lines = res.stderr.splitlines()
    assert res.returncode == code, (res.returncode, res.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert "Traceback" not in res.stderr
    for fragment in fragments:
        assert fragment in lines[0]
    return lines[0]


@pytest.fixture
def no_models(tmp_path_factory) -> Path:
    """A folder for PYTHONPATH in which loading mediapipe's graphs exits the process with 99."""
    root = tmp_path_factory.mktemp("guard")
    pkg = root / "mediapipe" / "python"
    pkg.mkdir(parents=True)
    (root / "mediapipe" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "solution_base.py").write_text(
        f"import os, sys\nsys.stderr.write('the face models were loaded\\n')\nos._exit({MODELS_LOADED})\n")
    return root


@pytest.fixture(scope="session")
def needs_mediapipe() -> None:
    if importlib.util.find_spec("mediapipe") is None:
        skip_or_fail("mediapipe is not installed (pip install --no-deps mediapipe==0.10.21 'protobuf>=4.25.3,<5')")


@pytest.fixture
def read_only_dir(tmp_path) -> Path:
    """An empty folder in which nothing can be created, even by root: a read-only tmpfs mount, or an
    immutable folder where mounting is not allowed, or (not root) a folder without write permission."""
    d = tmp_path / "ro"
    d.mkdir()
    undo = None
    if shutil.which("mount") and subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(d)],
                                                capture_output=True).returncode == 0:
        undo = ["umount", str(d)]
    elif shutil.which("chattr") and subprocess.run(["chattr", "+i", str(d)], capture_output=True).returncode == 0:
        undo = ["chattr", "-i", str(d)]
    elif hasattr(os, "geteuid") and os.geteuid() != 0:  # permission bits stop everyone but root
        d.chmod(0o555)
        undo = ["chmod", "755", str(d)]
    if undo is None:
        skip_or_fail("cannot make a read-only folder here: neither `mount -t tmpfs -o ro` nor `chattr +i` is allowed")
    try:
        with contextlib.suppress(OSError):
            (d / "probe").touch()
        if (d / "probe").exists():
            skip_or_fail(f"{d} is still writable: this filesystem ignores the read-only setting")
        yield d
    finally:
        subprocess.run(undo, capture_output=True)


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# ------------------------------------------------------------------------------------------------
# the guard itself


def test_the_guard_sees_a_model_load(examples_dir, tmp_path, no_models):
    res = crop(examples_dir / "source" / "s1.jpg", "-o", tmp_path / "out", guard=no_models)
    assert res.returncode == MODELS_LOADED and "the face models were loaded" in res.stderr


# ------------------------------------------------------------------------------------------------
# the source: one reader, one set of messages, checked before the models


def test_a_picture_over_100_megapixels_is_refused(tmp_path, no_models):
    big = tmp_path / "big.png"
    Image.new("L", (12000, 9000)).save(big)  # 108 MP of zeros: about 100 kB on disk
    assert big.stat().st_size < 2_000_000
    res = crop(big, "-o", tmp_path / "out", guard=no_models)
    assert_one_error(res, 2, "big.png", "too large", "12000x9000", "100 MP")
    assert "DecompressionBomb" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_a_truncated_video_is_one_clear_line(examples_dir, tmp_path, no_models):
    data = (examples_dir / "driving" / "d0.mp4").read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    res = crop(cut, "-o", tmp_path / "out", guard=no_models)
    assert_one_error(res, 2, "cut.mp4", "corrupt video")
    assert "moov atom" not in res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("case, message", [
    ("missing", "missing.jpg: no such file"),
    ("folder", "a_folder: not an image or a video"),
    ("empty", "empty.jpg: image file is empty (0 bytes)"),
    ("junk", "junk.jpg: not a readable image (unknown or unsupported format)"),
    ("unknown", "notes.txt: not an image or a video"),
])
def test_bad_sources_get_animates_messages(tmp_path, no_models, case, message):
    path = {
        "missing": tmp_path / "missing.jpg",
        "folder": tmp_path / "a_folder",
        "empty": tmp_path / "empty.jpg",
        "junk": tmp_path / "junk.jpg",
        "unknown": tmp_path / "notes.txt",
    }[case]
    if case == "folder":
        path.mkdir()
    elif case == "empty":
        path.touch()
    elif case == "junk":
        path.write_bytes(b"not a picture, just some words")
    elif case == "unknown":
        path.write_text("a shopping list\n")
    res = crop(path, "-o", tmp_path / "out", guard=no_models)
    line = assert_one_error(res, 2)
    assert line == f"error: {tmp_path}/{message}"
    assert not (tmp_path / "out").exists()


def test_options_that_make_no_sense_for_a_video_fail_first(examples_dir, tmp_path, no_models):
    video = examples_dir / "driving" / "d0.mp4"
    assert_one_error(crop(video, "--crop-box", "0,0,100,100", "-o", tmp_path / "o", guard=no_models), 2, "pictures")
    assert_one_error(crop(video, "--face", "all", "-o", tmp_path / "o", guard=no_models), 2, "--face all")
    assert not (tmp_path / "o").exists()


def test_kind_is_read_from_the_content_not_the_name(examples_dir, tmp_path, needs_mediapipe):
    photo = tmp_path / "photo.mp4"  # a JPEG with a video's name
    photo.write_bytes((examples_dir / "source" / "s1.jpg").read_bytes())
    res = crop(photo, "-o", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    assert "1 face(s)" in res.stdout
    img = cv2.imread(str(tmp_path / "out" / "photo_face0.png"))
    assert img is not None and img.shape == (512, 512, 3)
    assert _leftovers(tmp_path / "out") == ["photo_face0.png"]


# ------------------------------------------------------------------------------------------------
# a video: one progress bar and a summary


def test_a_video_gets_a_progress_bar_and_a_summary(examples_dir, tmp_path, needs_mediapipe):
    clip = tmp_path / "clip.jpg"  # a video with a picture's name: still read as a video
    clip.write_bytes((examples_dir / "driving" / "d0.mp4").read_bytes())
    res = crop(clip, "--driving", "-o", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) <= 4, res.stdout  # was one line per frame (78)
    assert "78 frames, 78 with a face" in res.stdout
    assert f"wrote {tmp_path / 'out' / 'clip_crop.mp4'} (78 frames, 25 fps)" in res.stdout
    assert "cropping" in res.stderr and "frame/s" in res.stderr  # tqdm's bar, on stderr
    assert res.stderr.count("\n") <= 1  # redrawn in place, not a line per frame
    cap = cv2.VideoCapture(str(tmp_path / "out" / "clip_crop.mp4"))
    try:
        assert int(cap.get(cv2.CAP_PROP_FRAME_COUNT)) == 78
        assert (cap.get(cv2.CAP_PROP_FRAME_WIDTH), cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == (512, 512)
    finally:
        cap.release()
    assert _leftovers(tmp_path / "out") == ["clip_crop.mp4"]

    quiet = crop(clip, "--driving", "-q", "-o", tmp_path / "quiet")
    assert quiet.returncode == 0 and quiet.stderr == ""
    assert "78 frames, 78 with a face" in quiet.stdout


# ------------------------------------------------------------------------------------------------
# the output location: checked before any detection, exit 6


def test_a_read_only_output_folder_is_exit_6(examples_dir, read_only_dir, no_models):
    photo = examples_dir / "source" / "s1.jpg"
    assert_one_error(crop(photo, "-o", read_only_dir / "crops", guard=no_models), 6, "cannot write", str(read_only_dir))
    video = examples_dir / "driving" / "d0.mp4"
    assert_one_error(crop(video, "-o", read_only_dir / "crops", guard=no_models), 6, "cannot write")
    assert _leftovers(read_only_dir) == []


def test_the_default_output_under_a_read_only_working_folder_is_exit_6(examples_dir, read_only_dir, no_models):
    res = crop(examples_dir / "source" / "s1.jpg", cwd=read_only_dir, guard=no_models)
    assert_one_error(res, 6, "cannot write", str(read_only_dir))
    assert _leftovers(read_only_dir) == []


def test_a_file_in_the_way_of_the_output_is_exit_6(examples_dir, tmp_path, no_models):
    in_the_way = tmp_path / "notes.txt"
    in_the_way.write_text("a file, not a folder\n")
    res = crop(examples_dir / "source" / "s1.jpg", "-o", in_the_way / "crops", guard=no_models)
    assert_one_error(res, 6, "notes.txt is a file, not a folder")
    res = crop(examples_dir / "source" / "s1.jpg", "-o", in_the_way, guard=no_models)
    assert_one_error(res, 6, "notes.txt is a file, not a folder")
    assert in_the_way.read_text() == "a file, not a folder\n"
    assert _leftovers(tmp_path) == ["notes.txt"]


# ------------------------------------------------------------------------------------------------
# no face: exit 3, nothing left behind


def test_a_picture_without_a_face_leaves_no_folder(tmp_path, needs_mediapipe):
    work = tmp_path / "work"
    work.mkdir()
    gray = np.full((480, 640, 3), 128, np.uint8)
    Image.fromarray(gray).save(work / "gray.png")
    res = crop("gray.png", cwd=work)  # the default output, outputs/crops, must not appear
    assert_one_error(res, 3, "gray.png", "no human face", "--crop-box")
    assert _leftovers(work) == ["gray.png"]


def test_a_video_without_a_face_leaves_no_folder(tmp_path, needs_mediapipe):
    import av

    clip = tmp_path / "gray.mp4"
    with av.open(str(clip), "w") as out:  # written with PyAV directly, not the project's writer
        stream = out.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuv420p"
        for _ in range(6):
            frame = av.VideoFrame.from_ndarray(np.full((120, 160, 3), 128, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    res = crop(clip, "-q", "-o", tmp_path / "a" / "b" / "crops")
    assert_one_error(res, 3, "gray.mp4", "no human face", "6 frames")
    assert _leftovers(tmp_path) == ["gray.mp4"]
