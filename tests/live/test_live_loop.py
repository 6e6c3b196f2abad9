"""The live loop without a browser: stages overlapped and newest-wins, the neutral face re-taken, the virtual
camera at its boundary (a recording stand-in for pyvirtualcam.Camera), its missing driver, and WebRTC
sessions (aiortc, tiny networks) that stream, end, and clean up when the client vanishes.

Every wait is on an event or a condition with a bound, never on the clock alone.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from liveportrait.live import Arrival, LatestFrame, LiveEngine
from liveportrait.live.stages import THREAD_PREFIX, Stage, StageLoop, Timings

REPO = Path(__file__).resolve().parents[2]
WAIT = 30  # seconds: the bound of every wait on an event (a loaded 2-core machine is slow, never this slow)


def live_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith(THREAD_PREFIX) and t.is_alive()]


def threads_but_pools() -> list[str]:
    """Every thread but the pools' reusable workers (the hub loop's executor grows on demand)."""
    return [t.name for t in threading.enumerate() if not t.name.startswith(("asyncio_", "ThreadPoolExecutor"))]


def test_stages_overlap_and_work_starts_only_on_the_newest_frame():
    """While the back stage renders frame 0, the front stage tracks frame 1 (overlap), then waits for the back
    stage to take it; frames 2 and 3, which arrive meanwhile, are dropped at the camera's box before any work
    is spent on them, and the front stage goes on with 4, the newest."""
    log: list[str] = []
    front_took = {i: threading.Event() for i in range(5)}
    back_busy, release = threading.Event(), threading.Event()

    def front(value, timings):
        with timings.time("tracking"):
            log.append(f"front {value}")
        front_took[value].set()
        return value

    def back(value, timings):
        with timings.time("render"):
            log.append(f"back {value} start")
            if value == 0:
                back_busy.set()
                assert release.wait(WAIT)
            log.append(f"back {value} end")
        return value

    inbox = LatestFrame()
    loop = StageLoop([Stage("front", front), Stage("back", back)]).start(inbox)
    inbox.put(Arrival(0, time.perf_counter(), 0))
    assert back_busy.wait(WAIT)
    inbox.put(Arrival(1, time.perf_counter(), 1))
    assert front_took[1].wait(WAIT)  # tracked while frame 0 renders
    for i in (2, 3, 4):  # the front stage waits (the back stage has not taken 1): these wait in the box
        inbox.put(Arrival(i, time.perf_counter(), i))
    release.set()
    out = [loop.output.take(timeout=WAIT)]  # the sink takes 0: the back stage goes on with 1, the front with 4
    assert front_took[4].wait(WAIT)
    while len(out) < 3 and (item := loop.output.take(timeout=WAIT)) is not None:
        out.append(item)
    inbox.close()
    assert loop.output.take(timeout=WAIT) is None  # ends once the source has ended
    loop.stop()

    assert log.index("front 1") < log.index("back 0 end")  # tracking of frame 1 overlapped rendering of 0
    assert [line for line in log if line.startswith("front")] == ["front 0", "front 1", "front 4"]
    assert [w.value for w in out] == [0, 1, 4] and inbox.overwritten == 2  # 2 and 3 dropped, untouched
    assert out[-1].where == {"tracking": "front", "render": "back"} and set(out[-1].timings) == {"tracking", "render"}
    assert live_threads() == []


def test_a_stage_error_reaches_the_caller_and_no_thread_is_left():
    def broken(value, timings):
        raise RuntimeError("out of memory")

    inbox = LatestFrame()
    loop = StageLoop([Stage("front", lambda v, t: v), Stage("back", broken)]).start(inbox)
    inbox.put(Arrival(0, time.perf_counter(), 0))
    assert loop.output.take(timeout=WAIT) is None  # the failed stage closed its output
    with pytest.raises(RuntimeError, match="out of memory"):
        loop.stop()
    assert live_threads() == []


class FakeAnimator:
    """M gives the frame's number as its motion; x_d is (motion, reference): what the engine composed."""

    def extract_motion(self, crop):
        return SimpleNamespace(motion=int(crop.flat[0]))

    def driving_keypoints(self, src, motion, reference, options, is_video, eye, lip):
        return motion, reference

    def render(self, src, x_d):
        import torch

        motion, reference = x_d
        return torch.full((1, 3, 8, 8), float(motion - reference) / 255)


def fake_engine(**kw) -> LiveEngine:
    return LiveEngine(FakeAnimator(), None, crop_driving=lambda frame: (frame, None, None), **kw)


def frame(n: int) -> np.ndarray:
    return np.full((4, 4, 3), n, np.uint8)


def test_the_first_frame_is_the_neutral_face_and_neutral_now_retakes_it():
    engine = fake_engine()
    refs = [engine.front(frame(n), Timings()) for n in (10, 20)]
    engine.retake_neutral()
    refs += [engine.front(frame(n), Timings()) for n in (30, 40)]
    assert refs == [(10, 10), (20, 10), (30, 30), (40, 30)]


def test_the_overlapped_run_names_each_step_and_its_thread_and_marks_every_frame():
    """engine.run(overlap=True): tracking and M on the front thread, W+G and the watermark on the back one, the
    sink on the caller's thread; every frame given to the sink went through ``mark``."""
    from liveportrait.live import FileSource

    sunk_one = threading.Semaphore(0)

    class Frames(FileSource):
        """n frames, each once the one before it reached the sink (none dropped)."""

        def __init__(self, n):
            self.n = n
            super(FileSource, self).__init__()

        def _run(self):
            for i in range(self.n):
                self.box.put(Arrival(i, time.perf_counter(), frame(i + 1)))
                if not sunk_one.acquire(timeout=WAIT):
                    return

    threads = {}

    def mark(out):
        threads["mark"] = threading.current_thread().name
        return out + 1

    engine = fake_engine(mark=mark)
    sunk = []

    def sink(index, out):
        threads["sink"] = threading.current_thread().name
        sunk.append((index, int(out.flat[0])))
        sunk_one.release()

    stats = engine.run(Frames(5), sink, warmup=False, overlap=True)
    assert [i for i, _ in sunk] == [0, 1, 2, 3, 4] and stats.rendered == 5
    assert all(v == i + 1 for i, v in sunk)  # frame i+1 against the neutral frame 1 renders i; marked: +1
    assert threads == {"mark": f"{THREAD_PREFIX}-back", "sink": threading.current_thread().name}
    assert stats.where == {"face tracking": "front", "M": "front", "W+G": "back", "watermark": "back",
                           "encode": "sink"}
    assert "W+G" in stats.stages_line() and "[back]" in stats.stages_line()
    assert live_threads() == []

    # not overlapped (the CPU's default): every step on one render thread, never the caller's
    sunk.clear()
    threads.clear()
    assert not engine.overlaps()
    stats = engine.run(Frames(3), sink, warmup=False)
    assert [i for i, _ in sunk] == [0, 1, 2] and threads["mark"] == f"{THREAD_PREFIX}-render"
    assert set(stats.where.values()) == {"render", "sink"}
    assert live_threads() == []


def test_stages_overlap_by_default_where_w_and_g_run_on_a_gpu():
    engine = fake_engine()
    engine.anim.device = "cuda:0"
    assert engine.overlaps()


# -- the virtual camera ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    from fractions import Fraction

    from liveportrait.media import VideoWriter
    from liveportrait.provenance import NOT_GENERATED

    path = tmp_path_factory.mktemp("clip") / "driving.mp4"
    rng = np.random.default_rng(0)
    base = rng.integers(0, 255, (64, 64, 3), dtype=np.uint8)
    with VideoWriter(path, Fraction(25), crf=23, stamp=NOT_GENERATED) as w:
        for i in range(25):
            w.write(np.roll(base, i, axis=1))
    return path


@pytest.fixture(scope="module")
def photo(tmp_path_factory):
    from liveportrait.media import write_image
    from liveportrait.provenance import NOT_GENERATED

    path = tmp_path_factory.mktemp("photo") / "face.png"
    write_image(path, np.random.default_rng(1).integers(0, 255, (256, 256, 3), dtype=np.uint8), stamp=NOT_GENERATED)
    return path


def test_live_sends_marked_rgb_frames_of_its_size_to_the_virtual_camera(recording_camera, tiny_weights, clip, photo,
                                                                        capsys):
    import pyvirtualcam

    from liveportrait.cli import main
    from liveportrait.provenance import detect

    code = main(["live", "-s", str(photo), "--driving", str(clip), "--no-crop", "--virtual-camera", "--no-window",
                 "--max-frames", "3", "--weights", str(tiny_weights), "--model-config", "tiny", "--backend", "eager"])
    assert code == 0
    out, err = capsys.readouterr()
    rendered = int(out.split(" frames rendered")[0].split()[-1])
    assert "virtual camera /dev/video-test" in err and "no sound" in err
    assert recording_camera.opened == [{"width": 512, "height": 512, "fps": 25.0, "fmt": pyvirtualcam.PixelFormat.RGB,
                                        "closed": True}]
    frames = recording_camera.frames
    assert 1 <= len(frames) == rendered <= 3 and all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)
    assert detect(frames[-1]).found  # what a video call sees carries the watermark


def test_the_virtual_camera_resizes_a_frame_of_another_size(recording_camera):
    from liveportrait.live.virtualcam import VirtualCamera

    with VirtualCamera(320, 240, 30) as cam:
        cam.send(np.zeros((480, 640, 3), np.uint8))
    assert recording_camera.frames[0].shape == (240, 320, 3) and cam.sent == 1


def _live_cli(photo, clip, tmp_path, pythonpath: str | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "liveportrait.cli", "live", "-s", str(photo), "--driving", str(clip),
                           "--no-crop", "--virtual-camera", "--weights", str(tmp_path / "nonexistent")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_no_virtual_camera_driver_is_one_line_and_exit_code_10_before_any_network_loads(photo, clip, tmp_path):
    """Here pyvirtualcam finds no device (no v4l2loopback); the weights do not exist, so an exit code 10 and not 4
    proves the camera was checked first."""
    import pyvirtualcam

    try:
        pyvirtualcam.Camera(64, 64, 25).close()
        pytest.skip("this machine has a virtual camera device")  # pragma: no cover
    except RuntimeError:
        pass
    run = _live_cli(photo, clip, tmp_path)
    assert run.returncode == 10, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in run.stderr
    assert "no virtual camera" in lines[0] and "v4l2loopback" in lines[0]


def test_without_pyvirtualcam_the_message_names_the_extra(photo, clip, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "pyvirtualcam.py").write_text("raise ImportError('no pyvirtualcam here')\n")
    run = _live_cli(photo, clip, tmp_path, pythonpath=str(blocker))
    assert run.returncode == 10, run.stderr
    line = run.stderr.strip()
    assert "\n" not in line and "'live' extra" in line and "v4l2loopback" in line


# -- WebRTC sessions (aiortc), tiny networks -------------------------------------------------------------


@pytest.fixture(scope="module")
def portrait(tiny_weights):
    from liveportrait.api import LivePortraitPipeline
    from liveportrait.live.session import live_config, prepare_portrait
    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    nets = LivePortraitNetworks.from_pretrained(tiny_weights, ModelConfig.tiny(), locate=False)
    pipe = LivePortraitPipeline(nets, device="cpu", precision="fp32", backend="eager", tune_memory=False)
    image = np.random.default_rng(2).integers(0, 255, (256, 256, 3), dtype=np.uint8)
    return prepare_portrait(pipe, image, live_config(crop=False))


@pytest.fixture(scope="module")
def camera_frames():
    y, x = np.mgrid[0:128, 0:128]
    return [np.dstack([(x + 4 * i) % 256, y * 2, 0 * x + 90]).astype(np.uint8) for i in range(25)]


def start_session(hub, portrait, still=None):
    from liveportrait.live.session import make_engine
    from liveportrait.provenance import Stamp

    stamp = Stamp()
    return hub.register(make_engine(portrait, "never", mark=stamp.mark), still=still)


def test_a_stream_comes_back_marked_and_ends_with_the_client(portrait, camera_frames):
    from liveportrait.live.loopback import run_client
    from liveportrait.live.webrtc import LiveHub
    from liveportrait.provenance import detect

    hub = LiveHub(report_every=0.2)
    try:
        token = start_session(hub, portrait)
        result = hub.call(run_client(hub, token, camera_frames, fps=25, seconds=WAIT * 2, min_frames=3),
                          timeout=WAIT * 3)
        assert result.received >= 3 and len(result.latencies_ms) >= 1 and min(result.latencies_ms) > 0
        assert result.last_frames[-1].shape == (512, 512, 3)  # the portrait, not the 128x128 camera
        assert detect(result.last_frames[-1]).found
        assert any("stats" in m and m["stats"]["rendered"] >= 1 for m in result.messages)
        assert hub.wait_ended(token, WAIT) and hub.ended[-1] == (token, "stopped")
        assert live_threads() == []
    finally:
        hub.close()
    assert not any(t.name == "liveportrait-webrtc" for t in threading.enumerate())


def test_a_client_that_vanishes_mid_stream_ends_its_session(portrait, camera_frames):
    """The peer closes without a word (no Stop): the session ends (closed connection, or no frames for
    idle_timeout), its threads are joined, and a second session starts as before."""
    from liveportrait.live.loopback import run_client
    from liveportrait.live.webrtc import LiveHub

    hub = LiveHub(idle_timeout=1.5, report_every=0.2)
    try:
        token = start_session(hub, portrait)
        result = hub.call(run_client(hub, token, camera_frames, seconds=WAIT * 2, min_frames=1, abrupt=True),
                          timeout=WAIT * 3)
        assert result.received >= 1
        assert hub.wait_ended(token, WAIT), "the session outlived its client"
        assert live_threads() == [] and hub.sessions == {}
        threads_after_first = threads_but_pools()

        token = start_session(hub, portrait)
        again = hub.call(run_client(hub, token, camera_frames, seconds=WAIT * 2, min_frames=1, abrupt=True),
                         timeout=WAIT * 3)
        assert again.received >= 1 and hub.wait_ended(token, WAIT)
        assert live_threads() == [] and len(threads_but_pools()) <= len(threads_after_first)
    finally:
        hub.close()


def test_a_camera_that_sends_nothing_is_told_and_ends(portrait):
    from liveportrait.live.loopback import run_client
    from liveportrait.live.webrtc import NO_FRAMES, LiveHub

    hub = LiveHub(first_frame_timeout=1.0, report_every=0.1)
    try:
        token = start_session(hub, portrait)
        result = hub.call(run_client(hub, token, [], seconds=4), timeout=WAIT)
        assert {"message": NO_FRAMES, "ended": True} in result.messages
        assert hub.wait_ended(token, WAIT) and hub.ended[-1] == (token, NO_FRAMES)
        assert live_threads() == []
    finally:
        hub.close()


def test_an_offer_for_no_session_and_too_many_sessions_are_refused(portrait):
    from liveportrait.errors import InputError
    from liveportrait.live.webrtc import LiveHub

    hub = LiveHub(max_sessions=1)
    try:
        with pytest.raises(InputError, match="unknown or has ended"):
            hub.answer("no-such-token", "v=0\r\n")
        blank = np.zeros((8, 8, 3), np.uint8)  # (no first frame rendered: this session never streams)
        token = start_session(hub, portrait, blank)
        with pytest.raises(InputError, match="already running"):
            start_session(hub, portrait, blank)
        assert hub.stop(token) and hub.pending == {}
    finally:
        hub.close()


def test_stun_and_turn_servers_come_from_the_environment_and_a_bad_value_is_one_line(monkeypatch, tmp_path):
    from liveportrait.errors import InputError
    from liveportrait.live.webrtc import ICE_ENV, LiveHub, ice_servers

    monkeypatch.delenv(ICE_ENV, raising=False)
    assert ice_servers() == [] and LiveHub().ice_servers == []  # none by default: nothing outside is asked
    turn = '[{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]'
    monkeypatch.setenv(ICE_ENV, turn)
    assert LiveHub().ice_servers == [{"urls": "turn:turn.example.org:3478", "username": "u", "credential": "p"}]
    for bad in ('{"urls": "stun:x"}', "stun:x", '[{"url": "stun:x"}]'):
        with pytest.raises(InputError, match=ICE_ENV):
            ice_servers(bad)
    # the app refuses it before loading any network
    env = {**os.environ, ICE_ENV: "stun:x"}
    run = subprocess.run([sys.executable, "-m", "liveportrait.cli", "app", "--weights", str(tmp_path / "none"),
                          "--port", "0"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and ICE_ENV in run.stderr and "Traceback" not in run.stderr, run.stderr
