"""Streaming helpers: decode and encode overlapped with compute, and the causal live engine.

* ``prefetch(iterable, depth)``: runs an iterator (a video decoder) in a thread, ``depth`` items ahead.
* ``BackgroundWriter``: paste-back and encoding in a thread, so the networks never wait on them.
* ``animate_stream``: the one-pass loop used by the benchmark's end-to-end figure.
* ``LiveEngine`` with ``LatestFrame`` sources: frames arrive on their own clock (a camera, or a file
  played at its frame rate); the renderer always takes the newest one and the frames it had no time
  for are dropped, never queued, so latency stays bounded.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import numpy as np
import torch

_END = object()


def prefetch(iterable: Iterable, depth: int = 4) -> Iterator:
    """Iterate ``iterable`` in a background thread; exceptions are re-raised in the consumer."""
    q: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def work():
        try:
            for item in iterable:
                if stop.is_set():
                    break
                q.put(item)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            q.put(exc)
        finally:
            q.put(_END)

    t = threading.Thread(target=work, daemon=True, name="liveportrait-prefetch")
    t.start()
    try:
        while True:
            item = q.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while t.is_alive():  # unblock a producer waiting on a full queue
            try:
                q.get_nowait()
            except queue.Empty:
                t.join(0.01)


class BackgroundWriter:
    """Consumes items in a thread with ``fn(item)``; ``close()`` waits and re-raises its error."""

    def __init__(self, fn: Callable, depth: int = 4):
        self._fn = fn
        self._q: queue.Queue = queue.Queue(maxsize=max(1, depth))
        self._error: BaseException | None = None
        self._t = threading.Thread(target=self._work, daemon=True, name="liveportrait-writer")
        self._t.start()

    def _work(self):
        while True:
            item = self._q.get()
            if item is _END:
                return
            if self._error is None:
                try:
                    self._fn(item)
                except BaseException as exc:  # noqa: BLE001
                    self._error = exc

    def put(self, item) -> None:
        if self._error is not None:
            raise self._error
        self._q.put(item)

    def close(self) -> None:
        self._q.put(_END)
        self._t.join()
        if self._error is not None:
            raise self._error


def animate_stream(anim, src, driving: Path, output: Path, paste=None, canvas=None, limit: int | None = None,
                   threaded: bool = True, options=None, stamp=None) -> int:
    """Decode ``driving`` (already framed), animate ``src`` with it, paste, encode. Returns frames.

    The output is labelled and watermarked by the writer (``stamp``; default: a fresh one), as every
    output of ``animate`` is, so the benchmark's end-to-end figure includes the mark."""
    from ..animator import to_uint8
    from ..media import VideoReader, VideoWriter
    from ..motion.compose import MotionOptions
    from ..pipeline import resize_256

    options = options or MotionOptions()
    reader = VideoReader(driving)
    writer = VideoWriter(output, reader.info.fps, crf=18, stamp=stamp)

    def finish(out512):
        frame = paste(out512, canvas) if paste is not None else out512
        writer.write(frame)

    sink = BackgroundWriter(finish) if threaded else None
    frames = (f for _, f in zip(range(limit if limit else 1 << 62), reader))
    frames = prefetch(frames) if threaded else frames
    ref = None
    n = 0
    try:
        for frame in frames:
            motion = anim.extract_motion(resize_256(frame)).motion
            ref = motion if ref is None else ref
            x_d = anim.driving_keypoints(src, motion, ref, options)
            out = to_uint8(anim.render(src, x_d))[0]
            if sink is not None:
                sink.put(out)
            else:
                finish(out)
            n += 1
        if sink is not None:
            sink.close()
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        reader.close()
    return n


# ---------------------------------------------------------------------------------------------------
# live


@dataclass
class Arrival:
    index: int  # position in the source's own frame count
    time: float  # perf_counter() when it arrived
    frame: np.ndarray


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
            return item


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
                ok, bgr = self.cap.read()
                if not ok:
                    return
                self.box.put(Arrival(i, time.perf_counter(), cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)))
                i += 1
        finally:
            self.cap.release()


class MotionSmoother:
    """Causal exponential smoothing of the driving motion (``alpha`` = weight of the new frame).

    Rotations are blended as matrices and re-orthonormalised (SVD), which is exact for alpha 1.
    """

    def __init__(self, alpha: float = 1.0):
        if not 0 < alpha <= 1:
            raise ValueError("smoothing alpha must be in (0, 1]")
        self.alpha = alpha
        self.state = None

    def __call__(self, motion):
        from ..motion.compose import Motion

        if self.alpha >= 1 or self.state is None:
            self.state = motion
            return motion
        a = self.alpha
        s = self.state
        r = a * motion.R + (1 - a) * s.R
        u, _, vh = torch.linalg.svd(r)
        r = u @ vh
        self.state = Motion(R=r, exp=a * motion.exp + (1 - a) * s.exp, t=a * motion.t + (1 - a) * s.t,
                            scale=a * motion.scale + (1 - a) * s.scale)
        return self.state


@dataclass
class LiveStats:
    arrived: int = 0
    rendered: int = 0
    dropped: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def fps(self) -> float:
        return self.rendered / self.seconds if self.seconds > 0 else 0.0

    def latency(self, q: float = 50) -> float:
        return float(np.percentile(self.latencies_ms, q)) if self.latencies_ms else 0.0

    def summary(self) -> str:
        return (f"{self.rendered} frames rendered of {self.arrived} arrived ({self.dropped} dropped), "
                f"{self.fps:.2f} fps, latency median {self.latency(50):.0f} ms, p95 {self.latency(95):.0f} ms")


class LiveEngine:
    """Causal animation: each driving frame's motion relative to the first frame's, as it arrives.

    ``crop_driving(frame) -> (crop256, eye, lip) | None`` frames the driving face (None skips the
    frame); ``compose(out512) -> frame`` pastes the result back; ``sink(index, frame)`` shows or
    writes it. ``delay_s`` slows the renderer down artificially (tests, demonstrations).
    """

    def __init__(self, anim, src, options=None, crop_driving: Callable | None = None,
                 compose: Callable | None = None, smoothing: float = 1.0, delay_s: float = 0.0):
        from ..motion.compose import MotionOptions

        self.anim, self.src = anim, src
        self.options = options or MotionOptions()
        self.crop_driving = crop_driving or _resize_256
        self.compose = compose or (lambda out: out)
        self.smoother = MotionSmoother(smoothing)
        self.delay_s = delay_s
        self.reference = None

    def render(self, frame: np.ndarray) -> np.ndarray | None:
        from ..animator import to_uint8

        framed = self.crop_driving(frame)
        if framed is None:
            return None
        crop256, eye, lip = framed
        info = self.anim.extract_motion(crop256)
        motion = self.smoother(info.motion)
        if self.reference is None:
            self.reference = motion
        eye_t = None if eye is None else torch.as_tensor(np.asarray(eye, np.float32).reshape(1, 2))
        lip_t = None if lip is None else torch.as_tensor(np.asarray(lip, np.float32).reshape(1, 1))
        x_d = self.anim.driving_keypoints(self.src, motion, self.reference, self.options, True, eye_t, lip_t)
        out = to_uint8(self.anim.render(self.src, x_d))[0]
        if self.delay_s:
            time.sleep(self.delay_s)
        return self.compose(out)

    def warmup(self) -> None:
        """Run every network once (first calls allocate, build fast plans, load kernels)."""
        self.anim.extract_motion(np.zeros((256, 256, 3), np.uint8))
        self.anim.render(self.src, self.src.x_s)

    def run(self, source: FrameSource, sink: Callable[[int, np.ndarray], None], max_frames: int | None = None,
            stop: Callable[[], bool] | None = None, report: Callable[[LiveStats], None] | None = None,
            report_every: float = 2.0, warmup: bool = True) -> LiveStats:
        if warmup:
            self.warmup()
        stats = LiveStats()
        t0 = time.perf_counter()
        last_report = t0
        source.start()
        try:
            while max_frames is None or stats.rendered < max_frames:
                item = source.box.take(timeout=0.5)
                if item is None:
                    if source.box._closed and source.box._item is None:
                        break
                    continue
                out = self.render(item.frame)
                if out is None:
                    continue
                stats.rendered += 1
                stats.latencies_ms.append((time.perf_counter() - item.time) * 1e3)
                sink(item.index, out)
                if stop is not None and stop():
                    break
                now = time.perf_counter()
                if report is not None and now - last_report >= report_every:
                    stats.seconds = now - t0
                    stats.arrived = source.box.arrived
                    stats.dropped = stats.arrived - stats.rendered
                    report(stats)
                    last_report = now
        finally:
            source.stop()
        stats.seconds = time.perf_counter() - t0
        stats.arrived = source.box.arrived
        stats.dropped = max(0, stats.arrived - stats.rendered)
        return stats


def _resize_256(frame: np.ndarray):
    """A driving frame that is already framed: the network input as the pipeline makes it, no ratios."""
    from ..pipeline import resize_256

    return resize_256(frame), None, None
