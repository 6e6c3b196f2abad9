"""Helpers for the media tests: small synthetic clips and sounds made on the fly."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest


def gradient_frame(h: int, w: int, i: int = 0) -> np.ndarray:
    """A smooth frame (compresses well, survives H.264 nearly intact) that changes with ``i``."""
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(w - 1, 1) + 7 * i) % 256
    g = y * 255 // max(h - 1, 1)
    b = np.full_like(r, (40 * i) % 256)
    return np.dstack([r, g, b]).astype(np.uint8)


def write_wav(path: Path, seconds_silent: float, seconds_loud: float, rate: int = 22050) -> Path:
    """Mono 16-bit WAV: silence, then a loud 440 Hz tone (so an audio offset can be seen)."""
    n0, n1 = int(rate * seconds_silent), int(rate * seconds_loud)
    t = np.arange(n1) / rate
    tone = (np.sin(2 * np.pi * 440 * t) * 20000).astype(np.int16)
    samples = np.concatenate([np.zeros(n0, np.int16), tone])
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture
def gradient():
    return gradient_frame


@pytest.fixture
def make_wav():
    return write_wav


@pytest.fixture
def no_leftovers():
    """Assert that a folder holds no hidden temp files (``.name.XXXX.part``) after a test."""

    def check(folder: Path) -> None:
        parts = [p.name for p in Path(folder).iterdir() if ".part" in p.name]
        assert parts == [], f"temp files left behind: {parts}"

    return check
