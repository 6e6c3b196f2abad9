"""Fixtures for the face tests: example pictures and video frames, and one shared cropper."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.conftest import skip_or_fail


def read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert img is not None, f"cannot read {path}"
    return np.ascontiguousarray(img[:, :, ::-1])


def read_frames(path: Path, indices=None, step: int = 1) -> dict[int, np.ndarray]:
    """RGB frames of a video by index (all frames, every ``step``-th, or the given ones)."""
    wanted = None if indices is None else set(indices)
    cap = cv2.VideoCapture(str(path))
    frames, i = {}, 0
    try:
        while True:
            if wanted is not None and not wanted - frames.keys():
                break
            ok, f = cap.read()
            if not ok:
                break
            if (wanted is None and i % step == 0) or (wanted is not None and i in wanted):
                frames[i] = np.ascontiguousarray(f[:, :, ::-1])
            i += 1
    finally:
        cap.release()
    return frames


@pytest.fixture(scope="session")
def cropper():
    if importlib.util.find_spec("mediapipe") is None:
        skip_or_fail("mediapipe is not installed (pip install --no-deps mediapipe==0.10.21 'protobuf>=4.25.3,<5')")
    from liveportrait.face.cropper import Cropper

    c = Cropper()
    c.backend.warm_up()
    return c


@pytest.fixture(scope="session")
def source_dir(examples_dir: Path) -> Path:
    return examples_dir / "source"


@pytest.fixture(scope="session")
def driving_dir(examples_dir: Path) -> Path:
    return examples_dir / "driving"


@pytest.fixture(scope="session")
def load_rgb():
    return read_rgb


@pytest.fixture(scope="session")
def load_frames():
    return read_frames
