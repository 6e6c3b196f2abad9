"""``liveportrait app`` as a user meets it: without the app extra, its start-up line, errors that stay
beside the inputs, and example inputs that work without ../shared."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import sysconfig
import threading
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

from liveportrait.media import probe, read_image

REPO = Path(__file__).resolve().parents[2]


def _site_without_gradio(folder: Path) -> Path:
    """A copy (by links) of this venv's site-packages in which gradio was never installed."""
    folder.mkdir()
    site = Path(sysconfig.get_paths()["purelib"])
    for entry in site.iterdir():
        if not entry.name.lower().startswith(("gradio", "hf_gradio")):
            (folder / entry.name).symlink_to(entry)
    return folder


def _python_on(site: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    # -S: not this venv's site-packages, only the copy above (with its .pth files: the editable install)
    boot = f"import site, sys; site.addsitedir({str(site)!r})\n" + code
    return subprocess.run([sys.executable, "-S", "-c", boot, *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": ""})


def test_app_without_the_app_extra_says_how_to_install_it_before_loading_anything(tmp_path):
    site = _site_without_gradio(tmp_path / "site")
    absent = _python_on(site, "import gradio")
    assert "No module named 'gradio'" in absent.stderr  # the simulation is real: gradio cannot be imported
    empty = tmp_path / "weights"  # no checkpoints: loading the networks first would fail with exit 4
    empty.mkdir()
    run = _python_on(site, "from liveportrait.cli import main\ncode = main(sys.argv[1:])\n"
                           "print('loaded:', sorted(m for m in ('torch', 'cv2', 'mediapipe') if m in sys.modules))\n"
                           "sys.exit(code)", "app", "--weights", str(empty))
    assert run.returncode == 7, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: the web app needs the 'app' extra"), run.stderr
    assert "bash scripts/install.sh app" in lines[0] and "pip install -e '.[app]'" in lines[0]
    assert "loaded: []" in run.stdout  # said before torch (and the networks) were loaded


def test_install_script_takes_app_as_an_extra_and_refuses_unknown_ones():
    text = (REPO / "scripts/install.sh").read_text()
    known = re.search(r'KNOWN_EXTRAS="([^"]*)"', text).group(1).split()
    assert {"app", "train", "onnx", "openvino", "dev"} <= set(known)
    # torch comes first, then the package with the extras asked for
    assert text.index('pip_q "$torch_spec"') < text.index('pip_q -e ".[$extras]"')
    run = subprocess.run(["bash", str(REPO / "scripts/install.sh"), "gui"], capture_output=True, text=True,
                         timeout=60, env={**os.environ, "VIRTUAL_ENV": "/nonexistent"})
    assert run.returncode == 2 and "unknown extra 'gui'" in run.stderr


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_app_on_a_busy_port_is_one_line_and_exit_9_before_loading(tiny_weights, need):
    """Was an 18-line Gradio traceback after the networks had loaded."""
    need("gradio", "pip install -e '.[app]'")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run([sys.executable, "-m", "liveportrait.cli", "app", "--weights", str(tiny_weights),
                              "--port", str(port)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert run.returncode == 9, run.stderr
    assert run.stderr.splitlines() == [f"error: 127.0.0.1:{port} is already in use (another server?): stop it or "
                                       "choose another --port"]


def test_app_names_its_own_options_not_gradios_launch_arguments(tiny_weights, need):
    need("gradio", "pip install -e '.[app]'")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "liveportrait.cli", "app", "--weights", str(tiny_weights),
                             "--model-config", "tiny", "--device", "cpu", "--backend", "eager", "--port", str(port)],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("LivePortrait app:"):
                ready.set()
        ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(240) and proc.poll() is None, "".join(lines)
        banner = next(line for line in lines if line.startswith("LivePortrait app:"))
        assert f"http://127.0.0.1:{port}/" in banner and "--host 0.0.0.0" in banner, banner
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=30) as r:  # the line's URL works
            assert r.status == 200
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    reader.join(30)  # the process has exited: its output ends, and the reader with it
    assert not reader.is_alive()
    out = "".join(lines)
    assert "share=True" not in out and "launch()" not in out, out
    # SIGTERM stops it like any other command (the server closed on the way out), not as a success
    assert proc.returncode == 128 + signal.SIGTERM, out


def test_serving_message_for_other_hosts_and_share(need):
    need("gradio", "pip install -e '.[app]'")
    from liveportrait.app.ui import serving_message

    assert "http://THIS-COMPUTER:7860/ from other machines (--host 0.0.0.0)" in serving_message("0.0.0.0", 7860)
    assert "http://192.168.1.5:7861/" in serving_message("192.168.1.5", 7861)
    assert "public link (--share): https://x.gradio.live" in serving_message("127.0.0.1", 7860, "https://x.gradio.live")


# -- errors beside the inputs ---------------------------------------------------------------------

def _by_elem_id(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _board(demo):
    from liveportrait.app.ui import ErrorBoard

    boards = {fn.fn.__self__ for fn in demo.fns.values() if isinstance(getattr(fn.fn, "__self__", None), ErrorBoard)}
    assert len(boards) == 1
    return boards.pop()


EXPECTED_STATUS = {"animate": "animate-error", "prepare": "edit-error", "edit": "edit-error",
                   "add_keyframe": "keyframes-error", "keyframes": "keyframes-error", "retarget": "retarget-error"}


def test_every_action_shows_its_error_in_its_tab(app_demo):
    fns = list(app_demo.fns.values())
    for api_name, elem_id in EXPECTED_STATUS.items():
        event = next(f for f in fns if f.api_name == api_name)
        box = _by_elem_id(app_demo, elem_id)
        after = [f for f in fns if f.trigger_after == event._id]
        on_failure = [f for f in after if f.trigger_only_on_failure]
        on_success = [f for f in after if f.trigger_only_on_success]
        # the first output is the tab's status line (the Animate tab's follow-ups also open the crop box
        # when the message asks for one, and show the seed of a speech)
        assert [f.outputs[:1] for f in on_failure] == [[box]], api_name
        assert [f.outputs[:1] for f in on_success] == [[box]], api_name  # cleared once it works again
    # and every event that runs a user action (sliders, checkboxes, uploads) has its follow-up too
    actions = [f for f in fns if getattr(f.fn, "user_errors", False)]
    assert len(actions) > len(EXPECTED_STATUS)
    for f in actions:
        assert any(g.trigger_after == f._id and g.trigger_only_on_failure for g in fns), f.name


def test_a_failed_upload_leaves_its_message_for_the_tab(app_demo, gradio_client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a picture at all")
    with pytest.raises(AppError, match="holiday.jpg is not a photo"):
        gradio_client.predict(handle_file(str(fake)), 2.5, api_name="/prepare")
    board = _board(app_demo)
    session = SimpleNamespace(session_hash=gradio_client.session_hash)
    shown = board.show(session)  # what the .failure follow-up puts in #edit-error
    assert shown.startswith("**Error:**") and "holiday.jpg is not a photo" in shown.replace("\\", "")
    assert board.show(session) == ""  # taken once: a later success or error replaces it


def test_error_markdown_escapes_what_markdown_would_eat(need):
    need("gradio", "pip install -e '.[app]'")
    from liveportrait.app.ui import error_markdown

    assert error_markdown("") == ""
    assert error_markdown("my_photo_2*.jpg [1]") == r"**Error:** my\_photo\_2\*.jpg \[1\]"


# -- examples ------------------------------------------------------------------------------------

def test_examples_are_painted_and_every_face_in_them_is_found(tmp_path):
    from liveportrait.app.examples import CLIP_FPS, CLIP_FRAMES, CLIP_SIZE, write_examples
    from liveportrait.face.cropper import Cropper
    from liveportrait.media import VideoReader
    from liveportrait.provenance import read_metadata

    ex = write_examples(tmp_path / "ex")
    for path in (ex.portrait, ex.smile, ex.clip):
        assert path.is_file() and path.stat().st_size > 1000
        assert "AI-generated" not in str(read_metadata(path))  # painted by code, not by the networks
    info = probe(ex.clip)
    assert (info.width, info.height, info.fps, info.frame_count) == (CLIP_SIZE, CLIP_SIZE, CLIP_FPS, CLIP_FRAMES)
    cropper = Cropper()
    for path in (ex.portrait, ex.smile):
        assert len(cropper.faces(read_image(path))) == 1, path.name
    with VideoReader(ex.clip) as frames:
        found = [len(cropper.faces(frame)) for frame in frames]
    assert found == [1] * CLIP_FRAMES  # MediaPipe takes the painted face in every frame
    # the clip moves: the mouth opens (frame 10) and the eyes close (frame 30) relative to frame 0
    eyes, lips = zip(*(cropper.ratios(read_frame(ex.clip, i)) for i in (0, 10, 30)))
    assert float(lips[1][0]) > float(lips[0][0]) + 0.1
    assert float(eyes[2][0]) < float(eyes[0][0]) - 0.1
    # kept when already there (the app paints them once per work folder)
    before = ex.clip.stat().st_mtime_ns
    assert write_examples(tmp_path / "ex").clip.stat().st_mtime_ns == before


def read_frame(path, index):
    from liveportrait.media import VideoReader

    with VideoReader(path) as frames:
        for i, frame in enumerate(frames):
            if i == index:
                return frame
    raise IndexError(index)


def test_the_apps_examples_are_its_painted_files_and_they_animate(app_demo, app_backend, gradio_client):
    from gradio_client import handle_file

    # each tab's examples are thumbnails with a label; picking one puts the painted files in the inputs
    picked = set()
    for name, count in (("animate-examples", 2), ("edit-examples", 1), ("retarget-examples", 1)):
        gallery = _by_elem_id(app_demo, name)
        assert len(gallery.value) == count
        assert all(Path(item["image"]["path"]).suffix == ".png" and len(item["caption"]) > 10
                   for item in gallery.value), gallery.value
        select = next(f for f in app_demo.fns.values() if (gallery._id, "select") in f.targets)
        for index in range(count):
            files = select.fn(SimpleNamespace(index=index))
            picked.update(Path(f).name for f in ([files] if isinstance(files, str) else files))
    assert picked == {"painted-portrait.png", "painted-talk.mp4", "painted-open-mouth.png"}
    folder = app_backend.workdir / "examples"  # painted when the app was built
    video, picture = gradio_client.predict(handle_file(str(folder / "painted-portrait.png")),
                                           handle_file(str(folder / "painted-talk.mp4")), api_name="/animate")
    assert picture is None
    info = probe(video["video"] if isinstance(video, dict) else video)
    assert info.frame_count == 40 and info.fps == 25
    video, picture = gradio_client.predict(handle_file(str(folder / "painted-portrait.png")),
                                           handle_file(str(folder / "painted-open-mouth.png")), api_name="/animate")
    assert video is None and read_image(picture).shape == (512, 512, 3)
