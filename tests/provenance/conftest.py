"""Fixtures for the provenance tests: example frames and small writers for marked files."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import av
import cv2
import numpy as np
import pytest
from PIL import Image

STATEMENT = "AI-generated with liveportrait"


def verify_json(path: Path, capsys) -> tuple[int, dict]:
    """``liveportrait verify --json PATH``: its exit code and report."""
    from liveportrait.cli import main

    capsys.readouterr()
    code = main(["verify", "--json", str(path)])
    return code, json.loads(capsys.readouterr().out)


def assert_fully_marked(path: Path, capsys) -> str:
    """``verify`` exits 0 and finds both the label and the watermark, with one run id; returns it."""
    code, report = verify_json(path, capsys)
    assert code == 0, report
    assert report["metadata"] is not None and report["metadata"]["statement"] == STATEMENT, f"{path.name}: no label"
    assert report["watermark"]["found"], f"{path.name}: no watermark"
    assert report["run_ids_agree"] is True, report
    return report["metadata"]["run_id"]


def square(rgb: np.ndarray, size: int = 512) -> np.ndarray:
    """Centre square crop resized to size x size (the shape of an animation frame)."""
    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(rgb[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)


def load_rgb(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def video_frames(path: Path, n: int, start: int = 0) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as c:
        for i, f in enumerate(c.decode(video=0)):
            if i >= start:
                out.append(f.to_ndarray(format="rgb24"))
            if len(out) >= n:
                break
    return out


def write_video(path: Path, frames, fps: int = 25, crf: int = 18, stamp=None, fmt: str = "mp4") -> Path:
    """Encode RGB frames with libx264 the way an output writer would: marked and labelled by ``stamp``."""
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    options = stamp.container_options(fmt) if stamp is not None else {}
    with av.open(str(path), "w", options=options) as c:
        if stamp is not None:
            stamp.tag(c)
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), "preset": "veryfast"}
        for fr in frames:
            if stamp is not None:
                fr = stamp.mark(fr)
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[:h, :w]), format="rgb24")
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def save_image(path: Path, rgb: np.ndarray, stamp=None) -> Path:
    """Save like an output writer: marked pixels, label in the format's metadata."""
    if stamp is not None:
        rgb = stamp.mark(rgb)
    kwargs = stamp.save_kwargs(path.suffix) if stamp is not None else {}
    Image.fromarray(rgb).save(path, **kwargs)
    return path


@pytest.fixture(scope="session")
def media():
    return SimpleNamespace(
        square=square, load_rgb=load_rgb, video_frames=video_frames, write_video=write_video, save_image=save_image
    )


@pytest.fixture(scope="session")
def photos(examples_dir: Path) -> dict[str, np.ndarray]:
    """Every example photo at full size."""
    files = sorted(examples_dir.glob("source/*.jpg")) + sorted(examples_dir.glob("driving/*.jpg"))
    assert files, "no example photos"
    return {p.name: load_rgb(p) for p in files}


@pytest.fixture(scope="session")
def clip(examples_dir: Path) -> list[np.ndarray]:
    """16 frames of a 512x512 talking-head video (stands in for an animation)."""
    return video_frames(examples_dir / "driving" / "d12.mp4", 16, start=40)
