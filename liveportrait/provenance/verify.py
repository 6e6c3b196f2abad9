"""Check one file: is it labelled, is it watermarked, with which run id, and its C2PA manifest (if any)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from .metadata import IMAGE_SUFFIXES, VIDEO_SUFFIXES, read_metadata
from .watermark import DEFAULT_KEY, DEFAULT_SCALES, Detection, detect_frames

MAX_FRAMES = 48  # frames of a video (or an animated image) that the watermark check looks at
MAX_DECODE = 1500  # frames decoded at most while sampling a long video


@dataclass
class VerifyReport:
    path: str
    kind: str  # "image" or "video"
    metadata: dict | None
    watermark: Detection
    c2pa: dict | None = None  # the C2PA manifest (provenance.c2pa.read_manifest); None when not looked at

    @property
    def marked(self) -> bool:
        """Marked when the label, the pixel watermark or a C2PA manifest made by liveportrait is present."""
        m = self.c2pa or {}
        signed = bool(m.get("present")) and "liveportrait" in (m.get("claim_generator") or [])
        return self.metadata is not None or self.watermark.found or signed

    @property
    def run_ids_agree(self) -> bool | None:
        """Whether the label's run id equals the watermark's (None when either is missing)."""
        a = (self.metadata or {}).get("run_id") or None
        b = self.watermark.run_id
        if a is None or b is None:
            return None
        return a.lower() == b.lower()

    def as_dict(self) -> dict:
        return {
            "path": self.path,
            "kind": self.kind,
            "marked": self.marked,
            "metadata": self.metadata,
            "watermark": self.watermark.as_dict(),
            "run_ids_agree": self.run_ids_agree,
            "c2pa": self.c2pa,
            "summary": self.c2pa_summary,
        }

    @property
    def c2pa_summary(self) -> str:
        """One line on the manifest and the marks together (what ``verify`` prints as its ``c2pa:`` line)."""
        m = self.c2pa or {}
        wm = "the invisible watermark is still there" if self.watermark.found else "no watermark was found either"
        if not m.get("checked"):
            return m.get("note") or "C2PA not checked"
        if not m.get("present"):
            if not m.get("signable", True):
                return f"no C2PA manifest: {Path(self.path).suffix} files cannot carry one; {wm}"
            if self.watermark.found or self.metadata is not None:
                return ("no C2PA manifest: this file was not signed, or another tool re-encoded it or stripped its "
                        f"metadata after signing (which removes the manifest); {wm}")
            return "no C2PA manifest"
        if m.get("changed_after_signing"):
            return "C2PA manifest INVALID: the file changed after it was signed"
        state = m.get("validation_state")
        if state in ("Valid", "Trusted"):
            trust = "signer on a trust list" if state == "Trusted" else "signer not on a trust list"
            return f"C2PA manifest valid ({trust}): the file is unchanged since it was signed"
        return f"C2PA manifest {state or 'unknown'}: {', '.join(m.get('status') or []) or 'no reason given'}"


def _rgb(im) -> np.ndarray:
    if im.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(im, dtype=np.float64)
        top = 65535.0 if arr.max() > 255 else 255.0
        g = np.clip(arr * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.stack([g, g, g], axis=-1)
    if im.mode != "RGB":
        im = im.convert("RGB")
    return np.asarray(im, dtype=np.uint8)


def _image_frames(path: Path, max_frames: int) -> Iterator[np.ndarray]:
    from PIL import Image, ImageSequence

    with Image.open(path) as im:
        n = getattr(im, "n_frames", 1)
        step = max(1, -(-n // max_frames))
        for i, frame in enumerate(ImageSequence.Iterator(im)):
            if i % step == 0:
                yield _rgb(frame)


def _video_frames(path: Path, max_frames: int) -> Iterator[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        if not container.streams.video:
            raise InputError(f"{path}: no video stream")
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        n = stream.frames or 0
        step = max(1, -(-n // max_frames)) if n else 1
        taken = 0
        for i, frame in enumerate(container.decode(stream)):
            if i >= MAX_DECODE or taken >= max_frames:
                break
            if i % step == 0:
                taken += 1
                yield frame.to_ndarray(format="rgb24")


def _is_image(path: Path) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if path.suffix.lower() in VIDEO_SUFFIXES:
        return False
    try:
        from PIL import Image

        with Image.open(path):
            return True
    except Exception:
        return False


def verify(
    path: str | Path,
    max_frames: int = MAX_FRAMES,
    key: bytes = DEFAULT_KEY,
    scales=DEFAULT_SCALES,
) -> VerifyReport:
    """Read the label and look for the watermark in an image or a video.

    Videos are checked on up to ``max_frames`` frames spread over the file, pooled into one
    decision.  Raises ``InputError`` for a missing, unreadable or empty file.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if not path.is_file():
        raise InputError(f"{path}: not a file")
    metadata = read_metadata(path)
    kind = "image" if _is_image(path) else "video"
    count = 0

    def counted(frames):
        nonlocal count
        for f in frames:
            count += 1
            yield f

    try:
        if kind == "image":
            det = detect_frames(counted(_image_frames(path, max_frames)), key=key, scales=scales)
        else:
            det = detect_frames(counted(_video_frames(path, max_frames)), key=key, scales=scales)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{path}: cannot decode ({exc})") from None
    if count == 0:
        raise InputError(f"{path}: no frames to examine")
    from .c2pa import read_manifest

    return VerifyReport(path=str(path), kind=kind, metadata=metadata, watermark=det, c2pa=read_manifest(path))
