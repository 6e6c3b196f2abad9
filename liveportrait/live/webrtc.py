"""The live loop over WebRTC (aiortc): a browser's camera in, the animated portrait out, on this computer.

A :class:`LiveHub` owns one asyncio loop on a thread of its own for every peer connection of a server, so
that neither Gradio's server loop nor a request thread ever waits on a network. A session is registered
with its engine first (:meth:`LiveHub.register`, which the app's Start does after the photo's face is found),
then the browser's offer is answered (:meth:`LiveHub.answer`, the signalling endpoint's work). Camera frames
go into a one-slot box (the newest wins); the engine's stages render on their threads; each rendered frame is
the output track's next frame. A data channel carries the statistics to the page and "neutral" back.

Everything ends with the peer: the page's Stop or a closed tab (the connection closes or fails), a camera
that sends nothing, or frames that stop coming. No ICE server is configured: host candidates are enough on
loopback and a LAN (see the README to add a STUN/TURN server for remote use).

aiortc and PyAV are imported when a hub starts, never by ``import liveportrait``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Callable

import numpy as np

from ..errors import InputError
from .engine import LiveEngine, LiveStats
from .sources import Arrival, FrameSource
from .stages import THREAD_PREFIX

VIDEO_CLOCK = 90_000  # RTP's video clock: a frame's pts counts 1/90000 s
# a portrait frame's pts is its camera frame's plus this (10 ms): the still, sent first, has pts 0 (the peer counts
# pts from its first frame, and a decoder may round them to milliseconds)
PTS_GAP = VIDEO_CLOCK // 100
ECHO_TICKS = VIDEO_CLOCK // 1000  # a frame's echo follows it by 1 ms (see the output track's recv)
HUB_THREAD = "liveportrait-webrtc"  # the hub's loop (one per server; a session's threads are THREAD_PREFIX-*)

NO_FRAMES = ("The camera sends no pictures: is another program using it? Close that program, then press Start "
             "again.")
NO_FACE = "No face in the camera's picture yet: look into the camera."
GONE = "The browser stopped sending (a closed tab or a lost connection): the session ended."


ICE_ENV = "LIVEPORTRAIT_ICE_SERVERS"


def ice_servers(text: str | None = None) -> list[dict]:
    """STUN/TURN servers for remote use, from ``$LIVEPORTRAIT_ICE_SERVERS`` (JSON, as a browser takes them:
    ``[{"urls": "turn:host:3478", "username": "u", "credential": "p"}]``); none by default."""
    import os

    text = os.environ.get(ICE_ENV, "") if text is None else text
    if not text.strip():
        return []
    try:
        servers = json.loads(text)
    except ValueError:
        servers = None
    keys = {"urls", "username", "credential"}
    if not (isinstance(servers, list) and all(isinstance(s, dict) and "urls" in s and set(s) <= keys
                                              for s in servers)):
        raise InputError(f'{ICE_ENV} must be a JSON list like [{{"urls": "stun:stun.example.org:3478"}}] (keys: '
                         f"urls, username, credential)")
    return servers


class PushedFrames(FrameSource):
    """A source fed from outside (the peer's track): no thread of its own."""

    def start(self) -> "PushedFrames":
        return self

    def stop(self) -> None:
        self.box.close()


@dataclass
class Pending:
    """A session registered by Start, waiting for the browser's offer."""

    engine: LiveEngine
    camera: object | None = None  # a VirtualCamera that also gets every frame
    still: np.ndarray | None = None  # shown (marked) until the first animated frame: the photo itself
    created: float = field(default_factory=time.monotonic)


class LiveSession:
    """One browser's stream: its peer connection, the engine on its threads, the watchdog."""

    def __init__(self, hub: "LiveHub", token: str, pending: Pending):
        from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

        self.hub, self.token = hub, token
        self.engine, self.camera, self.still = pending.engine, pending.camera, pending.still
        # no STUN/TURN unless configured: nothing outside is asked
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(**s) for s in hub.ice_servers]))
        self.source = PushedFrames()
        self.output = _portrait_track()
        self.channel = None
        self.stats = LiveStats()
        self.ended = threading.Event()
        self.reason = ""
        self.started = time.monotonic()
        self.last_arrival: float | None = None
        self.last_render = time.monotonic()
        self._shown: deque[float] = deque(maxlen=120)  # perf_counter of each frame handed to the track
        self._thread: threading.Thread | None = None
        self._tasks: list[asyncio.Task] = []
        self._closing: asyncio.Task | None = None

    # -- the loop's side -----------------------------------------------------------------------

    async def answer(self, sdp: str, kind: str) -> dict:
        from aiortc import RTCSessionDescription

        pc = self.pc

        @pc.on("track")
        def on_track(track):
            if track.kind != "video":
                return
            pc.addTrack(self.output)
            self._tasks.append(asyncio.ensure_future(self._receive(track)))

        @pc.on("datachannel")
        def on_channel(channel):
            self.channel = channel

            @channel.on("message")
            def on_message(message):
                if message == "neutral":
                    self.engine.retake_neutral()
                elif message == "stop":
                    self.close("stopped")

        @pc.on("connectionstatechange")
        async def on_state():
            if pc.connectionState in ("failed", "closed"):
                self.close(GONE if pc.connectionState == "failed" else "closed")

        await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type=kind))
        await pc.setLocalDescription(await pc.createAnswer())  # gathers host candidates (no trickle)
        if self.still is not None:
            self.output.first = _even(self.still)  # the page shows the portrait at once
        self._tasks.append(asyncio.ensure_future(self._watch()))
        self._thread = threading.Thread(target=self._render, daemon=True, name=f"{THREAD_PREFIX}-session")
        self._thread.start()
        return {"sdp": pc.localDescription.sdp, "type": pc.localDescription.type}

    async def _receive(self, track) -> None:
        """The peer's decoded frames into the one-slot box as they are (the stage that takes one converts it to
        RGB: a dropped frame costs nothing); a frame's index is its pts on the 90 kHz clock."""
        from aiortc.mediastreams import MediaStreamError

        while not self.ended.is_set():
            try:
                frame = await track.recv()
            except MediaStreamError:
                self.close(GONE)
                return
            pts = int(frame.pts * frame.time_base * VIDEO_CLOCK) if frame.pts is not None else 0
            self.last_arrival = time.monotonic()
            self.source.box.put(Arrival(pts, time.perf_counter(), frame))

    async def _watch(self) -> None:
        """Twice a second: the statistics to the page; a camera that sends nothing or stopped ends it."""
        hub = self.hub
        said = ""
        while not self.ended.is_set():
            await asyncio.sleep(hub.report_every)
            now = time.monotonic()
            if self.last_arrival is None:
                if now - self.started > hub.first_frame_timeout:
                    self._send({"message": NO_FRAMES, "ended": True})
                    self.close(NO_FRAMES)
                    return
                continue
            if now - self.last_arrival > hub.idle_timeout:
                self.close(GONE)
                return
            if now - self.last_render > hub.no_face_after and self.source.box.arrived > 0:
                if said != NO_FACE:
                    self._send({"message": NO_FACE})
                    said = NO_FACE
            elif said:
                self._send({"message": ""})
                said = ""
            self._send({"stats": self.snapshot()})

    def _send(self, message: dict) -> None:
        channel = self.channel
        if channel is not None and channel.readyState == "open":
            try:
                channel.send(json.dumps(message))
            except Exception:  # a channel closing under us: the session is ending anyway
                pass

    def _show(self, pts: int, frame: np.ndarray) -> None:
        self.output.offer(frame, pts)

    # -- the render thread's side -----------------------------------------------------------------

    def _render(self) -> None:
        loop = self.hub.loop

        def sink(index, frame):
            if self.camera is not None:
                self.camera.send(frame)
            frame = _even(frame)
            self._shown.append(time.perf_counter())
            self.last_render = time.monotonic()
            loop.call_soon_threadsafe(self._show, index + PTS_GAP, frame)

        def keep(stats):
            self.stats = stats

        try:
            self.stats = self.engine.run(self.source, sink, stop=self.ended.is_set, report=keep, report_every=0.25,
                                         warmup=False)
        except Exception as exc:  # never a traceback on the server: the page is told, the session ends
            self.reason = f"rendering failed: {exc}"
            loop.call_soon_threadsafe(self._send, {"message": f"The live animation stopped: {exc}", "ended": True})
            loop.call_soon_threadsafe(self.close, self.reason)

    def snapshot(self) -> dict:
        """fps over the last two seconds, latency (camera frame in to portrait frame out) of the last frames."""
        now = time.perf_counter()
        recent = [t for t in self._shown if now - t <= 2.0]
        fps = (len(recent) - 1) / (recent[-1] - recent[0]) if len(recent) > 1 and recent[-1] > recent[0] else 0.0
        s = self.stats
        latencies = s.latencies_ms[-15:]
        return {"fps": round(fps, 1), "latency_ms": round(float(np.median(latencies)), 1) if latencies else None,
                "rendered": s.rendered, "arrived": self.source.box.arrived,
                "dropped": max(0, self.source.box.arrived - s.rendered), "stages": s.stages_line()}

    # -- ending ---------------------------------------------------------------------------------

    def close(self, reason: str = "closed") -> None:
        """End the session (on the hub's loop; idempotent): engine threads joined, peer closed, hub told."""
        if self._closing is not None:
            return
        self.reason = self.reason or reason
        self.ended.set()
        self._closing = asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        self.source.stop()
        self.output.end()
        for task in self._tasks:
            if task is not asyncio.current_task():
                task.cancel()
        if self._thread is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._thread.join, 15)
        await self.pc.close()
        if self.camera is not None:
            self.camera.close()
        self.hub._ended(self)


class LiveHub:
    """Every live session of one server, on one asyncio loop thread (started with the first session)."""

    def __init__(self, max_sessions: int = 2, first_frame_timeout: float = 10.0, idle_timeout: float = 10.0,
                 no_face_after: float = 3.0, report_every: float = 0.5, pending_timeout: float = 120.0,
                 ice: list[dict] | None = None):
        self.max_sessions = max_sessions
        self.ice_servers = ice_servers() if ice is None else ice
        self.first_frame_timeout, self.idle_timeout = first_frame_timeout, idle_timeout
        self.no_face_after, self.report_every, self.pending_timeout = no_face_after, report_every, pending_timeout
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self.pending: dict[str, Pending] = {}
        self.sessions: dict[str, LiveSession] = {}
        self.ended: list[tuple[str, str]] = []  # (token, why) of sessions that ended, newest last
        self.on_end: Callable[[LiveSession], None] | None = None

    def _start_loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self.loop is None:
                ready = threading.Event()

                def run():
                    self.loop = asyncio.new_event_loop()
                    ready.set()
                    self.loop.run_forever()

                self._thread = threading.Thread(target=run, daemon=True, name=HUB_THREAD)
                self._thread.start()
                ready.wait(10)
            return self.loop

    def call(self, coro, timeout: float = 30.0):
        """Run a coroutine on the hub's loop and wait for its result (from any other thread)."""
        return asyncio.run_coroutine_threadsafe(coro, self._start_loop()).result(timeout)

    def register(self, engine: LiveEngine, camera=None, still: np.ndarray | None = None) -> str:
        """A session for the next offer carrying the returned token (Start, before the browser connects).

        ``still``: the first frame sent, before any camera frame is rendered; by default the photo rendered
        with its own motion (W+G once: the networks are warm when the camera starts)."""
        from .stages import Timings

        if still is None:
            still = engine.back(engine.src.x_s, Timings())
        now = time.monotonic()
        with self._lock:
            for token, p in list(self.pending.items()):
                if now - p.created > self.pending_timeout:
                    self._drop_pending(token)
            if len(self.sessions) + len(self.pending) >= self.max_sessions:
                busy = len(self.sessions) + len(self.pending)
                raise InputError(f"{busy} live session{'s' if busy > 1 else ''} already running here (at most "
                                 f"{self.max_sessions}): stop one first")
            token = uuid.uuid4().hex
            self.pending[token] = Pending(engine, camera, still)
        return token

    def _drop_pending(self, token: str) -> None:
        p = self.pending.pop(token, None)
        if p is not None and p.camera is not None:
            p.camera.close()

    def answer(self, token: str, sdp: str, kind: str = "offer") -> dict:
        """The answer to a browser's offer for a registered session (the signalling endpoint's work)."""
        return self.call(self.answer_async(token, sdp, kind))

    async def answer_async(self, token: str, sdp: str, kind: str = "offer") -> dict:
        """:meth:`answer` on the hub's loop (an in-process client already runs there)."""
        if kind != "offer" or not isinstance(sdp, str) or not sdp.strip():
            raise InputError("the request carries no WebRTC offer")
        with self._lock:
            pending = self.pending.pop(token, None) if isinstance(token, str) else None
        if pending is None:
            raise InputError("this live session is unknown or has ended: press Start again")
        session = LiveSession(self, token, pending)
        self.sessions[token] = session
        try:
            return await session.answer(sdp, kind)
        except Exception as exc:
            session.close("the offer could not be answered")
            raise InputError(f"the browser's offer could not be answered ({exc})") from None

    def stop(self, token: str) -> bool:
        """End a session or a pending registration (Stop, a closed tab's last message). False: none such."""
        with self._lock:
            if token in self.pending:
                self._drop_pending(token)
                return True
        session = self.sessions.get(token)
        if session is None or self.loop is None:
            return False
        done = threading.Event()

        async def close():
            session.close("stopped")
            if session._closing is not None:
                await session._closing
            done.set()

        asyncio.run_coroutine_threadsafe(close(), self.loop)
        return done.wait(30)

    def _ended(self, session: LiveSession) -> None:
        self.sessions.pop(session.token, None)
        self.ended.append((session.token, session.reason))
        del self.ended[:-50]
        if self.on_end is not None:
            self.on_end(session)

    def wait_ended(self, token: str, timeout: float) -> bool:
        """Whether the session ``token`` ended within ``timeout`` seconds (polls; tests and benchmarks)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if token not in self.sessions and token not in self.pending:
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        """End every session and the loop's thread (the server stops)."""
        for token in list(self.pending):
            self.stop(token)
        for token in list(self.sessions):
            self.stop(token)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            if self._thread is not None:
                self._thread.join(10)
            self.loop = None


def _even(frame: np.ndarray) -> np.ndarray:
    """VP8 and H.264 take even sizes: an odd last row or column is left out."""
    h, w = frame.shape[:2]
    return frame[: h - h % 2, : w - w % 2]


def _portrait_track():
    """The outgoing video track: the newest rendered frame each time the encoder asks (none is queued)."""
    from aiortc import MediaStreamTrack
    from aiortc.mediastreams import MediaStreamError

    class PortraitTrack(MediaStreamTrack):
        kind = "video"

        def __init__(self):
            super().__init__()
            self._latest: tuple[np.ndarray, int] | None = None
            self.first: np.ndarray | None = None  # sent before any rendered frame, with pts 0
            self._echo: tuple[np.ndarray, int] | None = None
            self._new = asyncio.Event()
            self._ended = False

        def offer(self, frame: np.ndarray, pts: int) -> None:
            self._latest = (frame, pts)  # an older one not yet sent is replaced: dropped, not queued
            self._new.set()

        def end(self) -> None:
            self._ended = True
            self._new.set()
            self.stop()

        async def recv(self):
            """The newest frame; right after each, the same picture again (1 ms later) once: a receiver that
            hands a frame over only when the next one begins (aiortc's does) then does not wait a whole frame
            interval for it. Browsers do not wait; for them the echo is an unchanged picture, cheap to code."""
            if self.first is not None and not self._ended:
                frame, self.first = self.first, None
                return self._sent(frame, 0)
            if self._echo is not None and self._latest is None and not self._ended:
                (frame, pts), self._echo = self._echo, None
                return self._video_frame(frame, pts)
            while self._latest is None and not self._ended:
                self._new.clear()
                await self._new.wait()
            if self._ended:
                raise MediaStreamError
            frame, pts = self._latest
            self._latest = None
            return self._sent(frame, pts)

        def _sent(self, frame: np.ndarray, pts: int):
            self._echo = (frame, pts + ECHO_TICKS)
            return self._video_frame(frame, pts)

        @staticmethod
        def _video_frame(frame: np.ndarray, pts: int):
            import av

            out = av.VideoFrame.from_ndarray(frame, format="rgb24")
            out.pts, out.time_base = pts, Fraction(1, VIDEO_CLOCK)
            return out

    return PortraitTrack()
