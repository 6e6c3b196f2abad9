"""The distortions the watermark is specified to survive, for tests and benchmarks.

H.264 re-encoding at CRF 28 (libx264 through PyAV), downscaling to half size, cropping 10% off
each side, JPEG re-compression; and PSNR to check that the mark stays invisible.
"""

from __future__ import annotations

import io

import numpy as np


def h264(frames, crf: int = 28, fps: int = 25, preset: str | None = None) -> list[np.ndarray]:
    """Encode RGB uint8 frames with libx264 (yuv420p, in an in-memory mp4) and decode them again."""
    import av

    frames = list(frames)
    h, w = frames[0].shape[:2]
    h, w = h - h % 2, w - w % 2
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"crf": str(crf), **({"preset": preset} if preset else {})}
        for fr in frames:
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(fr[:h, :w, :3]), format="rgb24")
            for p in s.encode(vf):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    buf.seek(0)
    with av.open(buf) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def half(rgb: np.ndarray) -> np.ndarray:
    """Downscale to half size with area averaging."""
    import cv2

    return cv2.resize(rgb, (max(1, rgb.shape[1] // 2), max(1, rgb.shape[0] // 2)), interpolation=cv2.INTER_AREA)


def rescale(rgb: np.ndarray, factor: float) -> np.ndarray:
    import cv2

    size = (max(1, round(rgb.shape[1] * factor)), max(1, round(rgb.shape[0] * factor)))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_CUBIC
    return cv2.resize(rgb, size, interpolation=interp)


def crop(rgb: np.ndarray, fraction: float = 0.1) -> np.ndarray:
    """Cut ``fraction`` of the height and of the width off each side."""
    h, w = rgb.shape[:2]
    dy, dx = round(h * fraction), round(w * fraction)
    return rgb[dy : h - dy, dx : w - dx]


def jpeg(rgb: np.ndarray, quality: int = 75) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, "JPEG", quality=quality)
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))
