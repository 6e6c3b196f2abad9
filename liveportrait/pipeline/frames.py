"""Frames in and out of the pipeline: a video's frames as a stream, and the resizing rules of sources."""

from __future__ import annotations

import contextlib
import itertools
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import cv2
import numpy as np

from ..config import SOURCE_DIVISION
from ..errors import InputError
from ..media.image import limit_size  # noqa: F401 - re-exported (the plan checks a photo's face with it too)
from ..plan import STILL_FPS, MediaInput


def shrink_scale(original_shape, limited: np.ndarray) -> tuple[float, float]:
    """(x, y) factors from the original picture's pixels to those of its limited copy: a ``--crop-box`` is
    given in the original's pixels (as ``liveportrait crop`` and image viewers show them) and applied to the
    copy. Per axis, since the shorter side is truncated to whole pixels."""
    h, w = original_shape[:2]
    return limited.shape[1] / w, limited.shape[0] / h


def resize_to_limit(image: np.ndarray, max_dim: int, division: int = SOURCE_DIVISION) -> np.ndarray:
    """A source-video frame limited as the reference does (spec 4.2 ``resize_to_limit``): a longer side over
    ``max_dim`` (0: no limit) shrunk to it with OpenCV's default bilinear resize, the other side truncated
    with int(); then the bottom and right edges cut to multiples of ``division`` (not if a side would be 0)."""
    h, w = image.shape[:2]
    if max_dim > 0 and max(h, w) > max_dim:
        size = (max(1, int(w * (max_dim / h))), max_dim) if h > w else (max_dim, max(1, int(h * (max_dim / w))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    h, w = image.shape[:2]
    division = max(division, 1)
    new_h, new_w = h - h % division, w - w % division
    if new_h == 0 or new_w == 0 or (new_h, new_w) == (h, w):
        return image
    return np.ascontiguousarray(image[:new_h, :new_w])


def resize_256(image: np.ndarray) -> np.ndarray:
    return image if image.shape[:2] == (256, 256) else cv2.resize(image, (256, 256), interpolation=cv2.INTER_LINEAR)


def side_by_side(panels: Sequence[np.ndarray], height: int = 512) -> np.ndarray:
    """Panels scaled to one height (aspect kept), left to right; widths made even for H.264."""
    out = []
    for p in panels:
        w = max(2, int(round(p.shape[1] * height / p.shape[0])) // 2 * 2)
        interpolation = cv2.INTER_AREA if p.shape[0] > height else cv2.INTER_LINEAR
        out.append(cv2.resize(p, (w, height), interpolation=interpolation))
    return np.concatenate(out, axis=1)


@dataclass(frozen=True)
class FramesInfo:
    """What a frame stream says about itself: rate, frame count (estimate or None), display size."""

    fps: Fraction
    frame_count: int | None
    width: int
    height: int


def input_name(video) -> str:
    return str(video.path or video.name) if isinstance(video, MediaInput) else str(video)


@contextlib.contextmanager
def open_frames(video) -> Iterator[tuple[FramesInfo, Iterator[np.ndarray]]]:
    """(info, frames) of a video: a file (decoded lazily) or a ``MediaInput`` with a path or frames in memory."""
    path = video.path if isinstance(video, MediaInput) else Path(video)
    limit = video.limit if isinstance(video, MediaInput) else None  # a preview reads only the first frames
    if path is not None:
        from ..media import VideoReader

        with VideoReader(path) as reader:
            i = reader.info
            count = min(i.frame_count, limit) if i.frame_count and limit else (i.frame_count or limit)
            yield FramesInfo(i.fps, count, i.width, i.height), itertools.islice(reader, limit)
        return
    frames = iter(video.sequence) if isinstance(video.sequence, (list, tuple)) else video.sequence
    first = next(frames, None)
    if first is None:
        raise InputError("the video frames are empty")
    h, w = first.shape[:2]
    yield FramesInfo(video.fps or STILL_FPS, video.frames, w, h), itertools.islice(itertools.chain([first], frames),
                                                                                 limit)
