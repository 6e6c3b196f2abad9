"""Example inputs for the web app, drawn by code: a painted portrait and a short driving clip of it.

Nothing is downloaded or bundled: :func:`write_examples` paints the pictures with OpenCV into a
folder (the app's work folder) when the app starts, in well under a second. The face is simple but
MediaPipe's detector and mesh accept it, so the examples run through the real pipeline: the clip
opens and closes the mouth, blinks and turns the head a little, starting from a neutral frame (the
reference frame of relative motion).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

CLIP_FPS = 25
CLIP_FRAMES = 40  # 1.6 s
CLIP_SIZE = 256  # square: the app feeds a square driving video to the networks as it is


@dataclass(frozen=True)
class Examples:
    portrait: Path  # source photo (512 x 512 PNG)
    smile: Path  # driving photo: the same face with the mouth open
    clip: Path  # driving video (and a face video for the Retarget tab)


@dataclass(frozen=True)
class Example:
    """One example as the app shows it: a thumbnail with a label; picking it fills ``inputs``."""

    label: str
    thumbnail: Path
    inputs: tuple[Path, ...]


def _rgb(*c: float) -> tuple[int, int, int]:
    return tuple(int(round(v * 255)) for v in c)


SKIN, HAIR, EAR = _rgb(0.87, 0.68, 0.55), _rgb(0.25, 0.16, 0.10), _rgb(0.82, 0.62, 0.50)


def paint_face(size: int = 512, mouth: float = 0.0, eyes: float = 1.0, turn: float = 0.0,
               nod: float = 0.0, seed: int = 0) -> np.ndarray:
    """An RGB uint8 portrait: ``mouth`` 0 (closed) to 1 (open), ``eyes`` 0 (shut) to 1 (open),
    ``turn`` and ``nod`` -1 to 1 move the features sideways and up and down (a small head turn)."""
    s = size
    img = np.empty((s, s, 3), np.float32)
    ramp = np.linspace(0, 1, s, dtype=np.float32)[:, None]
    img[..., 0], img[..., 1], img[..., 2] = 0.55 + 0.2 * ramp, 0.6 + 0.1 * ramp, 0.7 - 0.1 * ramp
    img = (img * 255).astype(np.uint8)

    def pt(x: float, y: float) -> tuple[int, int]:
        return int(round(x * s)), int(round(y * s))

    def ell(x, y, ax, ay, color, angle=0.0):
        cv2.ellipse(img, pt(x, y), (max(1, int(round(ax * s))), max(1, int(round(ay * s)))), angle, 0, 360, color,
                    -1, cv2.LINE_AA)

    dx, dy = 0.05 * turn, 0.03 * nod  # features shift; the head outline shifts less
    ell(0.5, 1.05, 0.38, 0.22, _rgb(0.25, 0.30, 0.45))  # shoulders
    ell(0.5, 0.78, 0.09, 0.14, _rgb(0.80, 0.60, 0.48))  # neck
    ell(0.5 + dx / 3, 0.40 + dy / 3, 0.24, 0.28, HAIR)
    ell(0.31 + dx / 4, 0.48 + dy / 2, 0.025, 0.05, EAR)
    ell(0.69 + dx / 4, 0.48 + dy / 2, 0.025, 0.05, EAR)
    ell(0.5 + dx / 3, 0.47 + dy / 3, 0.19, 0.25, SKIN)
    # shading: the face darkens towards its edge
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32) / s
    d = ((xx - 0.5 - dx / 3) / 0.19) ** 2 + ((yy - 0.47 - dy / 3) / 0.25) ** 2
    shade = np.where(d < 1, np.clip(1 - 0.25 * d, 0.7, 1), 1)[..., None]
    img = (img * shade).astype(np.uint8)
    ell(0.5 + dx / 3, 0.26 + dy / 3, 0.2, 0.09, HAIR)  # fringe

    cx, cy = 0.5 + dx, dy
    for side in (-1, 1):
        ex = cx + side * 0.075
        open_ = max(0.0, min(1.0, eyes))
        ell(ex, cy + 0.435, 0.042, 0.002 + 0.016 * open_, _rgb(0.95, 0.95, 0.93))
        if open_ > 0.25:
            r = 0.016 * min(1.0, open_ * 1.2)
            ell(ex + 0.01 * turn, cy + 0.435, 0.016, r, _rgb(0.35, 0.22, 0.12))
            ell(ex + 0.01 * turn, cy + 0.435, 0.007, 0.007 * open_, _rgb(0.03, 0.03, 0.03))
        else:  # lid line
            cv2.line(img, pt(ex - 0.04, cy + 0.436), pt(ex + 0.04, cy + 0.436), _rgb(0.45, 0.3, 0.25),
                     max(1, s // 170), cv2.LINE_AA)
        brow = np.array([pt(ex - 0.045, cy + 0.400), pt(ex, cy + 0.388), pt(ex + 0.045, cy + 0.397)], np.int32)
        cv2.polylines(img, [brow], False, _rgb(0.22, 0.14, 0.09), max(1, s // 85), cv2.LINE_AA)
    ell(cx, cy + 0.52, 0.022, 0.012, _rgb(0.72, 0.52, 0.42))  # nose
    ell(cx - 0.015, cy + 0.525, 0.006, 0.004, _rgb(0.40, 0.25, 0.20))
    ell(cx + 0.015, cy + 0.525, 0.006, 0.004, _rgb(0.40, 0.25, 0.20))
    m = max(0.0, min(1.0, mouth))
    ell(cx, cy + 0.595 + 0.01 * m, 0.05, 0.012 + 0.03 * m, _rgb(0.70, 0.30, 0.30))
    if m > 0.1:
        ell(cx, cy + 0.597 + 0.01 * m, 0.035, 0.022 * m, _rgb(0.25, 0.08, 0.08))

    img = cv2.GaussianBlur(img, (0, 0), s / 400)
    noise = np.random.default_rng(seed).normal(0, 2.5, img.shape)
    return np.clip(img + noise, 0, 255).astype(np.uint8)


def clip_frame(i: int, frames: int = CLIP_FRAMES, size: int = CLIP_SIZE) -> np.ndarray:
    """Frame ``i`` of the driving clip: neutral at 0, the mouth opens and closes in the first half,
    a blink and a small head turn in the second."""
    t = i / max(1, frames - 1)
    mouth = math.sin(math.pi * min(1.0, t / 0.5)) if t < 0.5 else 0.0
    blink = max(0.0, 1 - abs(t - 0.75) / 0.08)
    turn = 0.8 * math.sin(2 * math.pi * max(0.0, t - 0.5) / 0.5) if t > 0.5 else 0.0
    return paint_face(size, mouth=mouth, eyes=1 - blink, turn=turn, seed=i)


def _thumbnail(path: Path, *pictures, height: int = 160) -> Path:
    """``pictures`` (arrays, or paths of pictures) side by side at ``height`` pixels with an arrow between
    them (the left one is driven by the right one); painted once."""
    from ..media import read_image, write_image
    from ..provenance import NOT_GENERATED

    if path.exists():
        return path
    parts = []
    for i, picture in enumerate(pictures):
        if i:
            gap = np.full((height, height // 4, 3), 245, np.uint8)
            y, x0, x1 = height // 2, height // 32, height // 4 - height // 32
            cv2.arrowedLine(gap, (x1, y), (x0, y), (90, 90, 90), max(2, height // 60), cv2.LINE_AA, tipLength=0.35)
            parts.append(gap)
        if not isinstance(picture, np.ndarray):
            picture = read_image(picture)
        parts.append(cv2.resize(picture, (height, height), interpolation=cv2.INTER_AREA))
    write_image(path, np.concatenate(parts, axis=1), stamp=NOT_GENERATED)  # painted, not generated
    return path


def example_sets(ex: Examples) -> dict[str, list[Example]]:
    """Each tab's examples with thumbnails (painted beside the examples, once): an Animate pair shows the
    source and, after an arrow, its driving; the talking clip is shown by a frame with the mouth open."""
    folder = ex.portrait.parent
    talking = clip_frame(CLIP_FRAMES // 4)  # the mouth at its widest
    return {
        "animate": [Example("Painted portrait, driven by the talking clip (video)",
                            _thumbnail(folder / "thumb-portrait-talk.png", ex.portrait, talking),
                            (ex.portrait, ex.clip)),
                    Example("Painted portrait, driven by an open-mouth photo",
                            _thumbnail(folder / "thumb-portrait-open-mouth.png", ex.portrait, ex.smile),
                            (ex.portrait, ex.smile))],
        "edit": [Example("Painted portrait", _thumbnail(folder / "thumb-portrait.png", ex.portrait), (ex.portrait,))],
        "retarget": [Example("Talking clip (1.6 s video)", _thumbnail(folder / "thumb-talk.png", talking), (ex.clip,))],
    }


def write_examples(folder: str | Path) -> Examples:
    """Paint the examples into ``folder`` (kept if they are already there) and return their paths."""
    from ..media import VideoWriter, write_image
    from ..provenance import NOT_GENERATED

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    ex = Examples(folder / "painted-portrait.png", folder / "painted-open-mouth.png", folder / "painted-talk.mp4")
    # painted by the code above, not by a network: no "AI-generated" label
    if not ex.portrait.exists():
        write_image(ex.portrait, paint_face(512), stamp=NOT_GENERATED)
    if not ex.smile.exists():
        write_image(ex.smile, paint_face(512, mouth=0.9, seed=1), stamp=NOT_GENERATED)
    if not ex.clip.exists():
        with VideoWriter(ex.clip, CLIP_FPS, stamp=NOT_GENERATED) as writer:
            for i in range(CLIP_FRAMES):
                writer.write(clip_frame(i))
    return ex
