"""A running web app (tiny networks) for the client and browser tests, and a guard on outside traffic.

The app runs in this process on 127.0.0.1 with a free port, once per test module. While it runs, every
socket connection and name lookup of the process is recorded; the tests assert that none left the
machine.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import require_module


def require(module: str, how: str):
    """Import a test dependency: skip with the reason when it is missing, but fail in CI."""
    return require_module(module, how)


def _loopback(host) -> bool:
    if not isinstance(host, str):
        return True  # AF_UNIX paths and the like
    if host in ("localhost", "") or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host.split("%")[0]).is_loopback
    except ValueError:
        return False


class OutsideTraffic:
    """Records connections and name lookups that would leave this machine."""

    def __init__(self):
        self.seen: list[str] = []
        self._saved = None

    def start(self) -> None:
        real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
        real_getaddrinfo = socket.getaddrinfo
        seen = self.seen

        def check(address):
            if isinstance(address, tuple) and not _loopback(address[0]):
                seen.append(f"connect {address[0]}:{address[1]}")

        def connect(sock, address):
            check(address)
            return real_connect(sock, address)

        def connect_ex(sock, address):
            check(address)
            return real_connect_ex(sock, address)

        def getaddrinfo(host, *args, **kwargs):
            h = host.decode() if isinstance(host, bytes) else host
            if h is not None and not _loopback(h):
                seen.append(f"lookup {h}")
            return real_getaddrinfo(host, *args, **kwargs)

        self._saved = (real_connect, real_connect_ex, real_getaddrinfo)
        socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo

    def stop(self) -> None:
        if self._saved:
            socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = self._saved
            self._saved = None


@pytest.fixture(scope="session")
def app_networks(tiny_weights):
    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    return LivePortraitNetworks.from_pretrained(tiny_weights, ModelConfig.tiny(), locate=False)


@pytest.fixture(scope="module")
def net_calls(app_networks):
    """Forward calls per network of the running app, counted with hooks (clear() before counting)."""
    counter: Counter = Counter()
    n = app_networks
    mods = {"F": n.F, "M": n.M, "W": n.W, "G": n.G}
    handles = [m.register_forward_hook(lambda *_, name=name: counter.update([name])) for name, m in mods.items()]
    yield counter
    for h in handles:
        h.remove()


@pytest.fixture(scope="module")
def outside_traffic():
    guard = OutsideTraffic()
    guard.start()
    yield guard
    guard.stop()


@pytest.fixture(scope="module")
def app_url(app_server):
    """URL of the app, served from this process on 127.0.0.1 (photos limited to 2 MB to test the check)."""
    return app_server[1]


@pytest.fixture(scope="module")
def app_demo(app_server):
    """The running app's gr.Blocks (to look at its events and components)."""
    return app_server[0]


@pytest.fixture(scope="module")
def app_backend(app_server):
    """The running app's AppBackend (its work folder holds the results and the painted examples)."""
    return app_server[2]


@pytest.fixture(scope="module")
def app_backend_options(tmp_path_factory) -> dict:
    """More arguments of the served app's AppBackend (a test module overrides this fixture to give it
    animal networks or audio weights). By default no animal mode, and an empty audio weights folder, so
    that the app's speech driving says what is missing whatever this machine's cache holds."""
    return {"audio_weights": tmp_path_factory.mktemp("no-audio-weights")}


@pytest.fixture(scope="module")
def app_server(app_networks, net_calls, outside_traffic, tmp_path_factory, app_backend_options):
    """(demo, URL, backend) of the app served from this process (see ``app_url``)."""
    require("gradio", "pip install -e '.[app]'")
    from liveportrait.app.backend import AppBackend
    from liveportrait.app.ui import build_app, launch
    from liveportrait.uploads import UploadLimits

    backend = AppBackend(app_networks, limits=UploadLimits(image_mb=2, video_mb=20),
                         workdir=tmp_path_factory.mktemp("app-out"), **app_backend_options)
    demo = build_app(backend)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launch(demo, "127.0.0.1", port, allowed_paths=[str(backend.workdir)], max_file_mb=20, block=False, quiet=True)
    yield demo, f"http://127.0.0.1:{port}/", backend
    demo.close()


@pytest.fixture(scope="session")
def need():
    """``need(module, how)``: import a test dependency (skip when missing; fail when CI=true)."""
    return require


@pytest.fixture(scope="session")
def short_clip(tmp_path_factory):
    """``short_clip(video, frames)``: the first frames of a video with its sound, trimmed to match."""
    from liveportrait.media import VideoReader, VideoWriter
    from liveportrait.provenance import NOT_GENERATED

    folder = tmp_path_factory.mktemp("clips")

    def make(src: Path, frames: int) -> Path:
        out = folder / f"{src.stem}-{frames}.mp4"
        if not out.exists():
            # a cut of a real video: not marked (the app's outputs made from it are)
            with VideoReader(src) as reader, VideoWriter(out, reader.info.fps, audio_from=src,
                                                         stamp=NOT_GENERATED) as writer:
                for i, frame in enumerate(reader):
                    if i >= frames:
                        break
                    writer.write(frame)
        return out

    return make


@pytest.fixture(scope="module")
def gradio_client(app_url):
    """A gradio_client.Client of the app that itself stays off the network.

    Building a Client asks the Hugging Face Hub for a list of coding agents (to label its user agent)
    unless the Hub is offline, and sends telemetry unless analytics are off: both are turned off here
    so that the outside-traffic guard sees the app alone.
    """
    require("gradio_client", "pip install -e '.[app]'")
    from gradio_client import Client
    from huggingface_hub import constants

    saved = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True  # only while the Client is built: its agent lookup is cached after
    try:
        return Client(app_url, verbose=False, analytics_enabled=False)
    finally:
        constants.HF_HUB_OFFLINE = saved
