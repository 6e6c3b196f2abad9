"""The Live tab in a real browser: Chromium's fake camera plays a clip made from ../shared's d0.mp4, the portrait
streams back over WebRTC (tiny networks), Stop, a second session, a closed tab; and the errors a user meets.

Chromium and Playwright as in test_browser.py (skip with the reason, fail under CI=true). Waits are on
conditions with a bound (Playwright's waits, or polling the server's state), never sleeps.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest

from tests.app import test_browser
from tests.app.test_browser import CHROMIUM_ARGS

browser_kit = test_browser.browser_kit  # the fixture: Chromium and Playwright, or the reason they are missing

WAIT_S = 90
POOLS = ("AnyIO worker", "asyncio_", "ThreadPoolExecutor")  # worker pools that keep their threads for reuse


@pytest.fixture(scope="module")
def fake_camera_clip(examples_dir, tmp_path_factory):
    """2 s of d0.mp4 at 256x256 as Y4M, the format Chromium's fake camera plays (in a loop)."""
    import av
    import cv2

    from liveportrait.media import VideoReader

    path = tmp_path_factory.mktemp("camera") / "clip.y4m"
    with av.open(str(path), "w", format="yuv4mpegpipe") as out, VideoReader(examples_dir / "driving/d0.mp4") as clip:
        stream = out.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for i, frame in enumerate(clip):
            if i >= 50:
                break
            small = cv2.resize(frame, (256, 256), interpolation=cv2.INTER_AREA)
            for packet in stream.encode(av.VideoFrame.from_ndarray(small, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return path


def camera_args(clip, grant: bool = True) -> list[str]:
    args = CHROMIUM_ARGS + ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={clip}"]
    return args + (["--use-fake-ui-for-media-stream"] if grant else [])


def own_threads() -> list[str]:
    """Threads other than the pools' reusable workers (a session must leave none of its own behind)."""
    return sorted(t.name for t in threading.enumerate() if not t.name.startswith(POOLS))


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmRSS:"))
    return int(line.split()[1]) / 1024


def wait_until(condition, what: str, timeout: float = WAIT_S):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout} s: {what}")


def open_live_tab(page, app_url):
    page.goto(app_url)
    page.get_by_role("tab", name="Live").click()
    page.locator("#live-examples img").first.click()  # the painted portrait
    page.locator("#live-photo img").wait_for(state="visible")


def test_the_camera_drives_the_portrait_stop_restart_and_a_closed_tab_ends_it(browser_kit, app_url, app_demo,
                                                                              fake_camera_clip, outside_traffic,
                                                                              tmp_path):
    browser_path, sync_api = browser_kit
    from PIL import Image

    from liveportrait.provenance import detect

    hub = app_demo.live.hub
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=browser_path, args=camera_args(fake_camera_clip), headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_S * 1000)
            open_live_tab(page, app_url)

            # start: the portrait's frames come back, with the statistics
            page.locator("#live-start").click()
            page.wait_for_function("window.lpLive && window.lpLive.frames >= 4")
            session = wait_until(lambda: next(iter(hub.sessions.values()), None), "a session on the server")
            wait_until(lambda: session.stats.rendered >= 3, "3 frames rendered from the camera")
            sync_api.expect(page.locator("#live-stats")).to_contain_text("fps")
            sync_api.expect(page.locator("#live-stats")).to_contain_text("W+G")
            shot = page.evaluate("window.lpLive.capture()")
            frame = np.asarray(Image.open(io.BytesIO(base64.b64decode(shot.split(",", 1)[1]))).convert("RGB"))
            assert frame.shape[:2] != (256, 256)  # not the camera's picture...
            assert detect(frame).found  # ...but the portrait's, watermarked
            page.screenshot(path=str(tmp_path / "live-tab.png"))

            # stop: the server's session and its threads end
            page.locator("#live-stop").click()
            sync_api.expect(page.locator("#live-message")).to_contain_text("Stopped.")
            wait_until(lambda: not hub.sessions, "the session ended after Stop", 30)
            assert not [t for t in own_threads() if t.startswith("liveportrait-live")]
            threads, memory = own_threads(), rss_mb()

            # a second session works as the first
            page.locator("#live-start").click()
            page.wait_for_function("window.lpLive.frames >= 3")
            session = wait_until(lambda: next(iter(hub.sessions.values()), None), "a second session")
            wait_until(lambda: session.stats.rendered >= 2, "the second session renders")

            # closing the tab ends it too
            page.close()
            wait_until(lambda: not hub.sessions, "the session ended with its tab", 30)
            left = own_threads()
            assert not [t for t in left if t.startswith("liveportrait-live")], left
            assert len(left) <= len(threads), f"threads after the second session: {left}, after the first: {threads}"
            assert rss_mb() - memory < 300, f"memory grew by {rss_mb() - memory:.0f} MB over one session"
        finally:
            browser.close()
    assert outside_traffic.seen == []  # no STUN or TURN server was asked


def test_a_photo_without_a_face_and_no_camera_permission_are_one_message_each(browser_kit, app_url, app_demo,
                                                                              fake_camera_clip, tmp_path):
    browser_path, sync_api = browser_kit
    from PIL import Image

    hub = app_demo.live.hub
    blank = tmp_path / "wall.png"
    Image.fromarray(np.full((300, 300, 3), 200, np.uint8)).save(blank)
    with sync_api.sync_playwright() as pw:
        # no --use-fake-ui-for-media-stream: the camera permission is refused
        browser = pw.chromium.launch(executable_path=browser_path, args=camera_args(fake_camera_clip, grant=False),
                                     headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.set_default_timeout(WAIT_S * 1000)
            page.goto(app_url)
            page.get_by_role("tab", name="Live").click()
            page.locator("#live-photo input[type=file]").set_input_files(str(blank))
            page.locator("#live-start").click()
            sync_api.expect(page.locator("#live-error")).to_contain_text("face")
            assert not hub.pending and not hub.sessions

            page.locator("#live-examples img").first.click()
            page.locator("#live-start").click()
            sync_api.expect(page.locator("#live-message")).to_contain_text("No camera permission")
            wait_until(lambda: not hub.pending and not hub.sessions, "the registered session dropped", 30)
        finally:
            browser.close()

    # the signalling endpoint answers a stale or forged request with one line, not a server error
    request = urllib.request.Request(app_url + "liveportrait/live/offer", method="POST",
                                     data=json.dumps({"token": "nope", "sdp": "v=0", "type": "offer"}).encode(),
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 400
    assert json.loads(refused.value.read())["error"].startswith("this live session is unknown")
