"""Decode and encode overlapped with compute: a video stream's neighbours run in threads.

* ``prefetch(iterable, depth)``: runs an iterator (a decoder, or the networks' frame generator) in a
  thread, ``depth`` items ahead, so the consumer (paste-back, encoding) never waits on it.
* ``BackgroundWriter``: paste-back and encoding in a thread, so the networks never wait on them (live).
"""

from __future__ import annotations

import queue
import threading
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
