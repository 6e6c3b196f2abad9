"""Where live driving frames come from: a camera, or a file played in real time, each on its own clock.

A source's thread puts every frame into a ``LatestFrame`` box that keeps only the newest one, so a
renderer that falls behind skips frames instead of queueing them (latency stays bounded).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass
class Arrival:
    index: int  # position in the source's own frame count
    time: float  # perf_counter() when it arrived
    frame: np.ndarray  # RGB; from a WebRTC peer, its decoded picture (converted by the stage that takes it)
    decode_ms: float = 0.0  # what reading and converting it took on the source's thread (camera decode)


class LatestFrame:
    """A one-slot mailbox: a new frame replaces one not yet taken (which counts as dropped)."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item: Arrival | None = None
        self._closed = False
        self.arrived = 0
        self.overwritten = 0

    def put(self, item: Arrival) -> None:
        with self._cond:
            if self._item is not None:
                self.overwritten += 1
            self._item = item
            self.arrived += 1
            self._cond.notify_all()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def done(self) -> bool:
        """Closed and emptied: nothing will come out any more."""
        with self._cond:
            return self._closed and self._item is None

    def take(self, timeout: float | None = None) -> Arrival | None:
        """The newest frame, waiting for one; None once the source has ended and nothing is left."""
        with self._cond:
            end = None if timeout is None else time.monotonic() + timeout
            while self._item is None and not self._closed:
                remaining = None if end is None else end - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)
            item, self._item = self._item, None
            self._cond.notify_all()  # a producer waiting for the slot to empty (wait_empty)
            return item

    def wait_empty(self, timeout: float | None = None) -> bool:
        """Wait until the slot is empty (its last item taken) or closed; False on timeout. A stage that
        waits so before starting a new frame does no work on frames the next stage would drop."""
        with self._cond:
            return self._cond.wait_for(lambda: self._item is None or self._closed, timeout)


class FrameSource:
    """Produces frames into a ``LatestFrame`` from a thread."""

    def __init__(self):
        self.box = LatestFrame()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.fps = 25.0

    def start(self) -> "FrameSource":
        self._thread = threading.Thread(target=self._run_guarded, daemon=True, name="liveportrait-source")
        self._thread.start()
        return self

    def _run_guarded(self):
        try:
            self._run()
        finally:
            self.box.close()

    def _run(self):  # pragma: no cover - abstract
        raise NotImplementedError

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


class FileSource(FrameSource):
    """A video file played in real time at its own frame rate (``speed`` > 1 plays faster)."""

    def __init__(self, path, speed: float = 1.0, loop: bool = False):
        super().__init__()
        from ..media import probe

        self.path = Path(path)
        self.fps = float(probe(self.path).fps) or 25.0
        self.speed = speed
        self.loop = loop

    def _run(self):
        from ..media import VideoReader

        period = 1.0 / (self.fps * self.speed)
        t0 = time.perf_counter()
        i = 0
        while not self._stop.is_set():
            with VideoReader(self.path) as reader:
                for frame in reader:
                    if self._stop.is_set():
                        return
                    due = t0 + i * period
                    delay = due - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    self.box.put(Arrival(i, time.perf_counter(), frame))
                    i += 1
            if not self.loop:
                return


class CameraSource(FrameSource):
    """``cv2.VideoCapture(index)``; frames converted to RGB."""

    def __init__(self, index: int = 0):
        super().__init__()
        import cv2

        self.cap = cv2.VideoCapture(index)
        if not self.cap.isOpened():
            from ..errors import InputError

            raise InputError(f"camera {index} could not be opened")
        self.fps = float(self.cap.get(cv2.CAP_PROP_FPS) or 30.0) or 30.0

    def _run(self):
        import cv2

        i = 0
        try:
            while not self._stop.is_set():
                if not self.cap.grab():  # waits for the camera's next frame
                    return
                t0 = time.perf_counter()
                ok, bgr = self.cap.retrieve()  # decodes it
                if not ok:
                    return
                rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
                now = time.perf_counter()
                self.box.put(Arrival(i, now, rgb, (now - t0) * 1e3))
                i += 1
        finally:
            self.cap.release()
