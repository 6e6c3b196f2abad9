"""An in-process WebRTC client of a :class:`~.webrtc.LiveHub`: a video file as the camera, the portrait received.

For tests and ``benchmarks/bench_live.py``: the glass-to-glass latency of the browser path without a browser
(from the moment this client's track hands a camera frame to its encoder to the moment the portrait frame
made from it is decoded here), on the hub's own loop.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .webrtc import ECHO_TICKS, PTS_GAP, VIDEO_CLOCK, LiveHub


@dataclass
class LoopbackResult:
    sent: int = 0
    received: int = 0  # animated frames (the still shown first is not counted)
    latencies_ms: list[float] = field(default_factory=list)  # glass to glass, per animated frame
    seconds: float = 0.0
    last_frames: list[np.ndarray] = field(default_factory=list)  # the last few animated frames, rgb
    messages: list[dict] = field(default_factory=list)  # what the data channel brought

    @property
    def fps(self) -> float:
        return self.received / self.seconds if self.seconds > 0 else 0.0

    def latency(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0


def _nearest(sent: dict[int, float], pts: int, within: int = ECHO_TICKS // 2) -> float | None:
    """When the camera frame of ``pts`` was sent (pts may come back rounded to milliseconds; a frame's echo,
    ECHO_TICKS later, matches none)."""
    for p in (pts, *range(pts - within, pts + within + 1)):
        if p in sent:
            return sent[p]
    return None


def _camera_track(frames: list[np.ndarray], fps: float, sent: dict[int, float]):
    """The frames again and again at ``fps``, each one's hand-over time noted under its pts."""
    from aiortc import MediaStreamTrack

    class FileCamera(MediaStreamTrack):
        kind = "video"

        def __init__(self):
            super().__init__()
            self.count = 0
            self.t0: float | None = None

        async def recv(self):
            import av

            if not frames:  # a camera that sends nothing: this never returns
                await asyncio.Event().wait()
            if self.t0 is None:
                self.t0 = time.perf_counter()
            due = self.t0 + self.count / fps
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            pts = round(self.count * VIDEO_CLOCK / fps)
            frame = av.VideoFrame.from_ndarray(frames[self.count % len(frames)], format="rgb24")
            frame.pts, frame.time_base = pts, Fraction(1, VIDEO_CLOCK)
            sent[pts] = time.perf_counter()
            self.count += 1
            return frame

    return FileCamera()


async def run_client(hub: LiveHub, token: str, frames: list[np.ndarray], fps: float = 25.0,
                     seconds: float = 5.0, min_frames: int = 0, abrupt: bool = False,
                     neutral_at: int | None = None) -> LoopbackResult:
    """Stream ``frames`` (none: a camera that sends nothing) to the session ``token`` for ``seconds`` (or until
    ``min_frames`` portrait frames came back), then hang up: politely (Stop on the data channel, then close), or
    ``abrupt`` (close alone). ``neutral_at``: send "neutral" after that many portrait frames."""
    from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
    from aiortc.mediastreams import MediaStreamError

    result = LoopbackResult()
    sent: dict[int, float] = {}
    pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
    camera = _camera_track(frames, fps, sent)
    pc.addTrack(camera)
    channel = pc.createDataChannel("live")
    enough = asyncio.Event()
    tasks = []

    @channel.on("message")
    def on_message(message):
        import json

        result.messages.append(json.loads(message))

    async def receive(track):
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            now = time.perf_counter()
            shot = _nearest(sent, frame.pts - PTS_GAP)  # the camera frame this portrait frame was made from
            if shot is None:  # the still shown before the first animated frame, or an echo
                continue
            result.received += 1
            result.latencies_ms.append((now - shot) * 1e3)
            result.last_frames = (result.last_frames + [frame.to_ndarray(format="rgb24")])[-3:]
            if neutral_at is not None and result.received == neutral_at and channel.readyState == "open":
                channel.send("neutral")
            if min_frames and result.received >= min_frames:
                enough.set()

    @pc.on("track")
    def on_track(track):
        tasks.append(asyncio.ensure_future(receive(track)))

    await pc.setLocalDescription(await pc.createOffer())
    answer = await hub.answer_async(token, pc.localDescription.sdp, pc.localDescription.type)
    await pc.setRemoteDescription(RTCSessionDescription(**answer))
    t0 = time.perf_counter()
    try:
        await asyncio.wait_for(enough.wait(), seconds)
    except asyncio.TimeoutError:
        pass
    result.seconds = time.perf_counter() - t0
    result.sent = camera.count
    if not abrupt and channel.readyState == "open":
        channel.send("stop")
    await pc.close()
    for task in tasks:
        task.cancel()
    return result
