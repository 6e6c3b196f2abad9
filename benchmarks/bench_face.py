"""Time the face stages on the example pictures: detect, landmarks, crop, paste-back.

    python benchmarks/bench_face.py [--repeat 20] [--examples ../shared/examples]

Prints the cost of pasting a crop back into a 3840x2160 frame (about 15 ms on 2 AVX2 cores; the
unit test checks only that the work is bounded to the face's region), the median milliseconds per
stage for every picture, then the per-frame cost of tracking a driving video (landmarks from the
previous frame + crop, with the periodic drift check).
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import cv2
import numpy as np

from liveportrait.face import geometry
from liveportrait.face.cropper import SOURCE, Cropper, VideoFaceTracker, make_crop
from liveportrait.face.mask import PasteBack

REPO = Path(__file__).resolve().parents[1]
PICTURES = ["s0", "s1", "s5", "s6", "s7", "s9", "s11"]


def timed(fn, repeat: int):
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), out


def bench_picture(backend, img: np.ndarray, repeat: int) -> tuple[float, ...]:
    """Median ms of detect, landmarks, crop, paste-back preparation and paste-back on one picture."""
    t_det, faces = timed(lambda: backend.detect(img), repeat)
    face = max(faces, key=lambda f: f.area)
    t_lmk, lm = timed(lambda: backend.landmarks(img, face), repeat)

    def crop():
        rect = geometry.face_rect(lm, SOURCE.scale, SOURCE.vx_ratio, SOURCE.vy_ratio)
        return make_crop(img, rect, SOURCE, lm)

    t_crop, fc = timed(crop, repeat)
    t_prep, paste = timed(lambda: PasteBack(img.shape, fc.M_c2o), repeat)
    out = np.empty_like(img)
    t_paste, _ = timed(lambda: paste(fc.crop_512, img, out=out), repeat)
    return t_det, t_lmk, t_crop, t_prep, t_paste


def bench_big_frame(repeat: int) -> float:
    """Median ms of pasting a 512 crop back into a 3840x2160 frame, into a reused output buffer."""
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (2160, 3840, 3), np.uint8)
    crop = rng.integers(0, 256, (512, 512, 3), np.uint8)
    paste = PasteBack(original.shape, geometry.invert(geometry.crop_matrix((1900.0, 1000.0), 700.0, 0.1, 512)))
    out = np.empty_like(original)
    paste(crop, original, out=out)  # first call: page faults of the new buffer
    return timed(lambda: paste(crop, original, out=out), repeat)[0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=20)
    ap.add_argument("--examples", type=Path, default=REPO.parent / "shared" / "examples")
    args = ap.parse_args()
    print(f"paste-back into a 3840x2160 frame: median {bench_big_frame(args.repeat):.1f} ms of {args.repeat}")
    cropper = Cropper()
    backend = cropper.backend
    backend.warm_up()

    print(f"{'picture':10s} {'size':>10s} {'detect':>8s} {'landmarks':>10s} {'crop':>7s} "
          f"{'total':>7s} {'pasteback':>10s} {'(prepare)':>10s}   ms, median of {args.repeat}")
    totals = []
    for name in PICTURES:
        path = args.examples / "source" / f"{name}.jpg"
        img = cv2.imread(str(path))
        if img is None:
            print(f"{name}: missing, skipped")
            continue
        img = np.ascontiguousarray(img[:, :, ::-1])
        t_det, t_lmk, t_crop, t_prep, t_paste = bench_picture(backend, img, args.repeat)
        total = t_det + t_lmk + t_crop
        totals.append(total)
        h, w = img.shape[:2]
        print(f"{name:10s} {f'{w}x{h}':>10s} {t_det:8.1f} {t_lmk:10.1f} {t_crop:7.1f} {total:7.1f} "
              f"{t_paste:10.1f} {t_prep:10.1f}")
    if totals:
        print(f"detect+landmarks+crop: median {statistics.median(totals):.1f} ms, max {max(totals):.1f} ms")

    video = args.examples / "driving" / "d9.mp4"
    cap = cv2.VideoCapture(str(video))
    frames = []
    while len(frames) < 300:
        ok, f = cap.read()
        if not ok:
            break
        frames.append(np.ascontiguousarray(f[:, :, ::-1]))
    cap.release()
    if frames:
        tracker = VideoFaceTracker(cropper, preset="driving")
        times = []
        for f in frames:
            t = time.perf_counter()
            tracker.update(f)
            times.append((time.perf_counter() - t) * 1000)
        print(f"tracking {video.name} ({len(frames)} frames, {frames[0].shape[1]}x{frames[0].shape[0]}): "
              f"median {statistics.median(times):.1f} ms/frame, mean {statistics.mean(times):.1f}, "
              f"{tracker.stats.detections} detections")


if __name__ == "__main__":
    main()
