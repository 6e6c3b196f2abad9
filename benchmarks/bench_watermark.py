"""Watermark cost and invisibility (and, with --robustness, survival under the issue 8 attacks).

    python benchmarks/bench_watermark.py [--repeat 50] [--robustness]

Prints the embedding time per 512x512 frame (bound: 10 ms), the detection time, and the PSNR of
marked against unmarked frames (bound: 40 dB).  Uses the example photos in ../shared/examples
when present, otherwise synthetic textured frames.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from liveportrait.provenance import attacks  # noqa: E402
from liveportrait.provenance.watermark import Watermarker, detect, detect_frames  # noqa: E402


def _examples() -> Path | None:
    env = os.environ.get("LIVEPORTRAIT_SHARED")
    for c in ([Path(env)] if env else []) + [REPO.parent / "shared"]:
        if (c / "examples").is_dir():
            return c / "examples"
    return None


def _square(rgb: np.ndarray, size: int = 512) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return cv2.resize(rgb[y : y + s, x : x + s], (size, size), interpolation=cv2.INTER_AREA)


def _synthetic(n: int, size: int = 512) -> list[np.ndarray]:
    import cv2

    rng = np.random.default_rng(0)
    out = []
    for _ in range(n):
        noise = rng.normal(0, 1, (size, size, 3)).astype(np.float32)
        img = sum(cv2.GaussianBlur(noise, (0, 0), s) * (s * 30) for s in (1.0, 4.0, 16.0)) + 128
        out.append(np.clip(img, 0, 255).astype(np.uint8))
    return out


def load_frames() -> tuple[list[np.ndarray], list[np.ndarray], str]:
    ex = _examples()
    if ex is None:
        frames = _synthetic(6)
        return frames, frames, "synthetic frames (../shared/examples not found)"
    from PIL import Image

    full = []
    for p in sorted(ex.glob("source/*.jpg")) + sorted(ex.glob("driving/*.jpg")):
        with Image.open(p) as im:
            full.append(np.asarray(im.convert("RGB")))
    return [_square(f) for f in full], full, f"{len(full)} example photos from {ex}"


def _ms(fn, repeat: int) -> tuple[float, float]:
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return statistics.median(times), min(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--robustness", action="store_true", help="also run the attacks on example videos")
    args = ap.parse_args(argv)

    crops, full, source = load_frames()
    wm = Watermarker("1a2b3c4d")
    print(f"frames: {source}")

    embed = [_ms(lambda f=f: wm.embed(f), args.repeat) for f in crops]
    med = statistics.median(e[0] for e in embed)
    worst = max(e[0] for e in embed)
    best = min(e[1] for e in embed)
    print(f"embed 512x512:      median {med:5.2f} ms per frame (worst photo {worst:5.2f} ms, best run {best:5.2f} ms)"
          f"   bound 10 ms: {'OK' if med < 10 else 'OVER'}")
    big = max(full, key=lambda f: f.size)
    m_big, _ = _ms(lambda: wm.embed(big), max(5, args.repeat // 5))
    print(f"embed {big.shape[1]}x{big.shape[0]}:    median {m_big:5.2f} ms per frame")

    marked = [wm.embed(f) for f in crops]
    d512, _ = _ms(lambda: detect(marked[0]), max(5, args.repeat // 5))
    dbig, _ = _ms(lambda: detect(wm.embed(big)), 3)
    print(f"detect 512x512:     median {d512:5.1f} ms per frame; {big.shape[1]}x{big.shape[0]}: {dbig:5.1f} ms")

    p512 = [attacks.psnr(m, f) for m, f in zip(marked, crops)]
    pfull = [attacks.psnr(wm.embed(f), f) for f in full]
    lo = min(p512 + pfull)
    print(f"PSNR 512x512:       min {min(p512):5.2f} dB, mean {np.mean(p512):5.2f} dB")
    verdict = "OK" if lo >= 40 else "UNDER"
    print(f"PSNR full size:     min {min(pfull):5.2f} dB, mean {np.mean(pfull):5.2f} dB   bound 40 dB: {verdict}")

    if args.robustness:
        _robustness(wm)
    return 0


def _robustness(wm: Watermarker) -> None:
    ex = _examples()
    if ex is None:
        print("robustness: skipped (no example videos)")
        return
    import av

    A = attacks
    cases = {
        "h264 crf28": lambda m: A.h264(m),
        "h264 + half": lambda m: [A.half(f) for f in A.h264(m)],
        "h264 + crop10": lambda m: [A.crop(f) for f in A.h264(m)],
        "crop10 + h264": lambda m: A.h264([A.crop(f) for f in m]),
        "half + h264": lambda m: A.h264([A.half(f) for f in m]),
        "crop10 + half + h264": lambda m: A.h264([A.half(A.crop(f)) for f in m]),
        "x0.7": lambda m: [A.rescale(f, 0.7) for f in m],
        "x1.4 + h264": lambda m: A.h264([A.rescale(f, 1.4) for f in m]),
    }
    print("robustness: 16 frames per video; pooled / one frame: sync score z, then Y = found with the right")
    print("            run id, f = found without payload, - = not found; unmarked = same video unmarked")
    for video in sorted(ex.rglob("*.mp4")):
        with av.open(str(video)) as c:
            frames = [f.to_ndarray(format="rgb24") for _, f in zip(range(16), c.decode(video=0))]
        marked = [wm.embed(f) for f in frames]
        cells = []
        for name, attack in cases.items():
            out = attack(marked)
            d, d1 = detect_frames(out), detect(out[len(out) // 2])
            ok = lambda d: "Y" if (d.found and d.run_id == wm.payload.hex()) else ("f" if d.found else "-")  # noqa: E731
            cells.append(f"{name}: {d.score:4.1f}{ok(d)} /{d1.score:4.1f}{ok(d1)}")
        unmarked = detect_frames(A.h264(frames))
        print(f"  {video.name}: unmarked h264 {unmarked.score:4.1f}{' FALSE ALARM' if unmarked.found else ''}")
        for i in range(0, len(cells), 4):
            print("      " + " | ".join(cells[i : i + 4]))


if __name__ == "__main__":
    sys.exit(main())
