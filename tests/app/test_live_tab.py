"""The Live tab's server side without a browser: Start on the app's pipeline, a stream through an in-process
WebRTC client, the virtual camera checkbox (a recording stand-in for pyvirtualcam.Camera), and its errors."""

from __future__ import annotations

import threading

import numpy as np
import pytest

WAIT = 60


@pytest.fixture
def live_tab(app_networks, tmp_path):
    from liveportrait.app.backend import AppBackend
    from liveportrait.app.live import LiveTab

    tab = LiveTab(AppBackend(app_networks, workdir=tmp_path / "work"))
    yield tab
    tab.close()


@pytest.fixture(scope="module")
def portrait_photo(tmp_path_factory):
    from liveportrait.app.examples import write_examples

    return write_examples(tmp_path_factory.mktemp("examples")).portrait  # a painted face the finder finds


def test_start_with_the_virtual_camera_streams_marked_frames_to_it_too(live_tab, portrait_photo, recording_camera):
    import pyvirtualcam

    from liveportrait.live.loopback import run_client
    from liveportrait.provenance import detect

    token = live_tab.start(str(portrait_photo), virtual_camera=True)
    hub = live_tab.hub
    # a square camera picture is taken as the framed face (crop "auto"): the tiny networks render every frame
    y, x = np.mgrid[0:128, 0:128]
    camera = [np.dstack([(x + 3 * i) % 256, y * 2, 0 * x + 90]).astype(np.uint8) for i in range(10)]
    result = hub.call(run_client(hub, token, camera, seconds=WAIT, min_frames=2), timeout=WAIT * 2)
    assert result.received >= 2 and hub.wait_ended(token, WAIT)
    (opened,) = recording_camera.opened
    assert (opened["width"], opened["height"], opened["fmt"], opened["closed"]) == (512, 512,
                                                                                   pyvirtualcam.PixelFormat.RGB, True)
    frames = recording_camera.frames
    assert len(frames) >= 2 and all(f.shape == (512, 512, 3) and f.dtype == np.uint8 for f in frames)
    assert detect(frames[-1]).found
    assert not [t for t in threading.enumerate() if t.name.startswith("liveportrait-live")]


def test_start_says_what_is_wrong_in_one_line(live_tab, portrait_photo, tmp_path):
    from liveportrait.errors import InputError, NoFaceError, VirtualCameraError
    from liveportrait.media import write_image
    from liveportrait.provenance import NOT_GENERATED

    wall = tmp_path / "wall.png"
    write_image(wall, np.full((200, 200, 3), 180, np.uint8), stamp=NOT_GENERATED)
    with pytest.raises(NoFaceError, match="face"):
        live_tab.start(str(wall))
    with pytest.raises(InputError, match="choose a portrait photo"):
        live_tab.start(None)
    with pytest.raises(VirtualCameraError, match="v4l2loopback|OBS"):  # no loopback device on this machine
        live_tab.start(str(portrait_photo), virtual_camera=True)
    assert live_tab.hub.pending == {} and live_tab.hub.sessions == {}
