"""A bad job fails at once, in one line, before any network loads, and a stopped or failed run leaves
nothing behind: the real CLI in a subprocess, as a user runs it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from liveportrait.config import AnimateConfig, MotionOptions
from liveportrait.errors import InputError, OutputError
from liveportrait.plan import plan_job

CLI = [sys.executable, "-m", "liveportrait.cli"]
NO_WEIGHTS = "/nonexistent/weights"  # a run that reached the weights would fail with exit 4 instead


def cli(*args, cwd: Path, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                          env=None if env is None else {**os.environ, **env})


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def assert_left_nothing(folder: Path) -> None:
    assert sorted(p.name for p in folder.iterdir()) == [], list(folder.iterdir())


# -- inputs and options: checked before torch is even imported -----------------------------------------


@pytest.mark.parametrize("change, message", [
    (lambda s, d: ["-s", "nope.jpg", "-d", d], "nope.jpg: no such file"),
    (lambda s, d: ["-s", s, "-d", "nope.mp4"], "nope.mp4: no such file"),
    (lambda s, d: ["-s", s, "-d", d, "-o", "out.xyz"], "unknown output format 'xyz'"),
    (lambda s, d: ["-s", s, "-d", d, "-o", "out.jpg"], "cannot be written as .jpg"),
    (lambda s, d: ["-s", s, "-d", d, "-o", "out.webp"], "cannot be written as .webp"),
    (lambda s, d: ["-s", s, "-d", d, "--reference-frame", "99"], "--reference-frame 99 is outside"),
    # a box beside the 1145 px photo framed nothing, silently
    (lambda s, d: ["-s", s, "-d", d, "--crop-box", "5000,5000,6000,6000"], "lies outside the source picture"),
    # a still result (photo driven by a photo) was refused as .mp4 only after rendering
    (lambda s, d: ["-s", s, "-d", str(Path(d).parents[0] / "d30.jpg"), "-o", "still.mp4"], "is one picture"),
])
def test_bad_jobs_fail_before_the_weights_are_looked_for(examples_dir, tmp_path_factory, tmp_path, change, message):
    source, driving = examples_dir / "source/s1.jpg", examples_dir / "driving/d0.mp4"
    # a torch that cannot be imported comes first on the path: the job is refused without importing torch
    # (let alone loading a network), so a bad job costs no start-up time
    fake = tmp_path_factory.mktemp("no_torch")
    (fake / "torch").mkdir()
    (fake / "torch" / "__init__.py").write_text("raise ImportError('torch was imported before the job was checked')\n")
    r = cli("animate", *change(str(source), str(driving)), "--weights", NO_WEIGHTS, cwd=tmp_path,
            env={"PYTHONPATH": str(fake)})
    assert r.returncode == 2, r.stderr
    assert message in one_line(r.stderr)
    assert_left_nothing(tmp_path)  # no animations/ folder either


def test_a_reference_frame_past_the_end_names_the_file_and_its_exact_count(examples_dir, tmp_path):
    r = cli("animate", "-s", examples_dir / "source/s1.jpg", "-d", examples_dir / "driving/d12.mp4",
            "--reference-frame", "500", "--weights", NO_WEIGHTS, cwd=tmp_path)
    line = one_line(r.stderr)
    assert r.returncode == 2
    # mp4 stores its frame count: it is exact, not "about"; the driving is named by its file
    assert "outside the driving d12.mp4, which has 183 frames (0 to 182)" in line, line


def test_an_output_that_would_overwrite_an_input_is_refused_before_loading(examples_dir, tmp_path):
    photo = tmp_path / "v.jpg"
    photo.write_bytes((examples_dir / "source/s1.jpg").read_bytes())
    before = photo.read_bytes()
    for output in ("v.jpg", str(photo), "./sub/../v.jpg"):
        r = cli("animate", "-s", "v.jpg", "-d", examples_dir / "driving/d30.jpg", "-o", output,
                "--weights", NO_WEIGHTS, cwd=tmp_path)
        assert r.returncode == 6, r.stderr  # OutputError, not 4: the weights were never looked for
        assert "would overwrite the input" in one_line(r.stderr)
        assert photo.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.jpg"]


def test_a_photo_without_a_face_fails_before_the_networks_load(tmp_path):
    from PIL import Image

    Image.fromarray(np.full((300, 400, 3), 128, np.uint8)).save(tmp_path / "wall.png")
    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(tmp_path / "d.png")
    r = cli("animate", "-s", "wall.png", "-d", "d.png", "--weights", NO_WEIGHTS, cwd=tmp_path)
    assert r.returncode == 3, r.stderr  # NoFaceError; a run that reached the weights would exit 4
    assert one_line(r.stderr).startswith("error: wall.png: no human face was found")


def test_input_errors_do_not_import_torch(examples_dir, tmp_path):
    code = ("import sys; from liveportrait.cli import main; "
            f"rc = main(['animate', '-s', 'nope.jpg', '-d', {str(examples_dir / 'driving/d0.mp4')!r}]); "
            "print(rc, 'torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.stdout.split() == ["2", "False"], r.stdout + r.stderr


@pytest.mark.parametrize("value", ["-1", "-0.5"])
def test_a_negative_driving_multiplier_is_refused(examples_dir, tmp_path, value):
    r = cli("animate", "-s", examples_dir / "source/s1.jpg", "-d", examples_dir / "driving/d0.mp4",
            "--driving-multiplier", value, cwd=tmp_path)
    assert r.returncode == 2
    assert "--driving-multiplier" in r.stderr and "at least 0" in r.stderr
    with pytest.raises(InputError, match="multiplier"):
        MotionOptions(multiplier=float(value))


# -- the output location --------------------------------------------------------------------------------


@contextlib.contextmanager
def unwritable_folder(base: Path):
    """A folder nothing can be created in, even by root: a read-only tmpfs, else an immutable folder."""
    folder = base / "locked"
    folder.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=1m", "tmpfs", str(folder)],
                      capture_output=True).returncode == 0:
        try:
            yield folder
        finally:
            subprocess.run(["umount", str(folder)], check=True)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode == 0:
        try:
            yield folder
        finally:
            subprocess.run(["chattr", "-i", str(folder)], check=True)
        return
    if os.geteuid() != 0:
        os.chmod(folder, 0o555)
        try:
            yield folder
        finally:
            os.chmod(folder, 0o755)
        return
    pytest.fail("cannot make an unwritable folder here (no mount, no chattr, running as root)")


@pytest.mark.parametrize("where", ["inside", "below", "default"])
def test_an_unwritable_output_is_one_line_and_exit_6_before_any_work(examples_dir, tmp_path, where):
    source, driving = examples_dir / "source/s1.jpg", examples_dir / "driving/d0.mp4"
    with unwritable_folder(tmp_path) as locked:
        out = {"inside": ["-o", locked / "out.mp4"], "below": ["-o", locked / "new/deeper/out.mp4"],
               "default": []}[where]
        r = cli("animate", "-s", source, "-d", driving, *out, "--weights", NO_WEIGHTS,
                cwd=locked if where == "default" else tmp_path)
        assert r.returncode == 6, r.stderr
        assert "cannot write to" in one_line(r.stderr)
        assert sorted(locked.iterdir()) == []


def test_a_file_in_the_way_of_the_output_folder(examples_dir, tmp_path):
    (tmp_path / "photo.jpg").write_bytes(b"not a folder")
    r = cli("animate", "-s", examples_dir / "source/s1.jpg", "-d", examples_dir / "driving/d0.mp4",
            "-o", tmp_path / "photo.jpg/out.mp4", "--weights", NO_WEIGHTS, cwd=tmp_path)
    assert r.returncode == 6
    assert "is a file, not a folder" in one_line(r.stderr)


def test_plan_checks_every_file_it_will_write(examples_dir, tmp_path):
    """The comparison and the motion template beside the output are checked too."""
    (tmp_path / "out_concat.mp4").mkdir()  # a folder where the comparison video would go
    with pytest.raises(OutputError, match="existing folder"):
        plan_job(examples_dir / "source/s1.jpg", examples_dir / "driving/d0.mp4", tmp_path / "out.mp4",
                 AnimateConfig(comparison=True))
    plan = plan_job(examples_dir / "source/s1.jpg", examples_dir / "driving/d0.mp4", tmp_path / "out.mp4",
                    AnimateConfig())
    assert plan.output == tmp_path / "out.mp4" and plan.template == tmp_path / "out.lpt.npz"
    assert plan.fps == 25 and not plan.image_output and plan.output_kind == "mp4"


def test_drivings_of_different_rates_say_which_rate_is_used(examples_dir, tmp_path):
    d = examples_dir / "driving"
    plan = plan_job(examples_dir / "source/s1.jpg", [d / "d0.mp4", d / "d3.mp4", d / "talking.pkl"],
                    tmp_path / "out.mp4", AnimateConfig(face="all"))
    assert plan.fps == Fraction(25)  # d0's rate: the first driving's
    assert len(plan.notes) == 1 and "25 fps" in plan.notes[0] and "20, 30" in plan.notes[0]
    same = plan_job(examples_dir / "source/s1.jpg", [d / "d0.mp4", d / "d12.mp4"], tmp_path / "out.mp4",
                    AnimateConfig(face="all"))
    assert same.notes == []


# -- runs that stop or fail -------------------------------------------------------------------------------


def _part_files(folder: Path) -> list[Path]:
    return list(folder.glob(".*.part*")) if folder.exists() else []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_run_leaves_no_partial_file_and_no_new_folder(examples_dir, tiny_weights, tmp_path, sig):
    out_dir = tmp_path / "new" / "out"
    proc = subprocess.Popen([*CLI, "animate", "-s", str(examples_dir / "source/s1.jpg"),
                             "-d", str(examples_dir / "driving/d12.mp4"), "-o", str(out_dir / "o.mp4"),
                             "--weights", str(tiny_weights), "--model-config", "tiny", "-q"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not _part_files(out_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _part_files(out_dir), "the run never started writing"
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + sig, err
    assert "Traceback" not in err
    assert not (tmp_path / "new").exists()  # neither the partial file nor the folders made for it


def test_timeout_leaves_nothing(examples_dir, tiny_weights, tmp_path):
    """Under ``timeout`` the run gets SIGTERM as its whole process group does; it exits cleanly, leaving
    nothing. The TERM is given to ``timeout`` (which passes it on exactly as when its time runs out) once the
    run is writing, so a fast or slow machine makes no difference; ``--preserve-status`` reports the run's own
    exit code: 143 from its handler, where a run killed by the signal would make ``timeout`` die of it (-15)."""
    out_dir = tmp_path / "anim"
    proc = subprocess.Popen(["timeout", "--preserve-status", "600", *CLI, "animate",
                             "-s", str(examples_dir / "source/s1.jpg"), "-d", str(examples_dir / "driving/d12.mp4"),
                             "-o", "anim/o.mp4", "--weights", str(tiny_weights), "--model-config", "tiny", "-q"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while not _part_files(out_dir) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _part_files(out_dir), f"the run never started writing: {proc.poll()} {proc.communicate()[1]}"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "Traceback" not in err
    assert not out_dir.exists()


def test_a_run_that_fails_late_removes_the_folders_it_made(tiny_weights, tmp_path):
    """A photo without a face fails after the job was checked: no empty animations/ stays."""
    from PIL import Image

    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (256, 256, 3), dtype=np.uint8)).save(tmp_path / "noise.png")
    Image.fromarray(np.full((256, 256, 3), 128, np.uint8)).save(tmp_path / "grey.png")
    r = cli("animate", "-s", "noise.png", "-d", "grey.png", "--weights", tiny_weights, "--model-config", "tiny",
            cwd=tmp_path)
    assert r.returncode == 3, r.stderr
    one_line(r.stderr)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grey.png", "noise.png"]


# -- what a run reports -------------------------------------------------------------------------------------


def test_a_still_result_is_reported_as_a_still(examples_dir, tiny_weights, tmp_path):
    r = cli("animate", "-s", examples_dir / "source/s1.jpg", "-d", examples_dir / "driving/d12.jpg",
            "-o", "still.webp", "--weights", tiny_weights, "--model-config", "tiny", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "still image, 1 face" in r.stdout and "fps" not in r.stdout and "frame" not in r.stdout
    head = (tmp_path / "still.webp").read_bytes()[:12]
    assert head[:4] == b"RIFF" and head[8:12] == b"WEBP"  # .webp gives a real WebP picture


def test_driving_frames_without_a_face_take_the_nearest_frames_ratios():
    """A driving frame where no face is found (NaN ratios while streaming) must not end the run."""
    from liveportrait.media import TemplateBuilder

    b = TemplateBuilder(25)
    eyes = [np.nan, 0.3, np.nan, np.nan, 0.6, np.nan]
    for e in eyes:
        b.append(R=np.eye(3), exp=np.zeros((21, 3)), t=np.zeros(3), scale=np.ones(1),
                 eye_ratio=np.full(2, e), lip_ratio=np.full(1, np.nan))
    tpl = b.build()
    assert tpl.eye_ratio[:, 0].tolist() == pytest.approx([0.3, 0.3, 0.3, 0.6, 0.6, 0.6])
    assert tpl.lip_ratio is None  # no frame had a face: no ratios rather than made-up ones
