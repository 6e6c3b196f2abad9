"""Streaming helpers: decode and encode overlapped with compute.

* ``prefetch(iterable, depth)``: runs an iterator (a video decoder) in a thread, ``depth`` items ahead.
* ``BackgroundWriter``: paste-back and encoding in a thread, so the networks never wait on them.
* ``animate_stream``: the one-pass loop used by the benchmark's end-to-end figure.

The live engine is in ``liveportrait.live``.
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path
from typing import Callable, Iterable, Iterator

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
