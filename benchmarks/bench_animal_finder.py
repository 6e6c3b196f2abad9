"""Measure the animal face finder: what it frames right, what it takes for an animal, and its cost.

    python benchmarks/bench_animal_finder.py [--examples ../shared/examples]

The two animals of the examples (s25, a shiba dog; s39, a ragdoll cat) are each searched as given,
turned 20 degrees either way, shrunk to a quarter on a grey canvas, mirrored, and mirrored and turned
(7 pictures each), and cut to six close-ups whose head runs off the picture. A face is framed right when
both eyes land within 0.3 of their spacing of where they are (marked by hand; the error is printed in
eye spacings). Then the pictures that hold no animal (the human examples and scikit-image's
coffee, rocket, horse, camera and a microscope slide) must give none, and scikit-image's tabby close-up
("chelsea", never used to tune the finder) is reported as found or not. Prints seconds per picture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from liveportrait.face.animal import AnimalFaceFinder
from liveportrait.face.cropper import Cropper

REPO = Path(__file__).resolve().parents[1]
EYES = {"s25": [[172.0, 232.0], [303.0, 229.0]], "s39": [[414.0, 480.0], [630.0, 414.0]]}  # picture's left first
CHELSEA_EYES = [[170.0, 115.0], [318.0, 135.0]]
HUMANS = ["s0", "s1", "s5", "s6", "s7", "s9", "s11"]
NO_ANIMAL = ["coffee", "rocket", "horse", "camera", "immunohistochemistry"]


def moved(image: np.ndarray, eyes: np.ndarray, degrees: float = 0.0, scale: float = 1.0, mirror: bool = False):
    """The picture mirrored (optionally), turned and scaled about its centre on a canvas of the same size
    (grey where nothing is), and where its eyes went, the picture's left eye first."""
    h, w = image.shape[:2]
    if mirror:
        image, eyes = image[:, ::-1], np.stack([w - 1 - eyes[:, 0], eyes[:, 1]], 1)[::-1]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    out = cv2.warpAffine(np.ascontiguousarray(image), m, (w, h), borderMode=cv2.BORDER_CONSTANT,
                         borderValue=(120, 120, 120))
    return out, eyes @ m[:, :2].T + m[:, 2]


VARIANTS = {"as given": {}, "turned left": {"degrees": 20.0}, "turned right": {"degrees": -20.0},
            "a quarter the size": {"scale": 0.5}, "mirrored": {"mirror": True},
            "mirrored, turned left": {"mirror": True, "degrees": 20.0},
            "mirrored, turned right": {"mirror": True, "degrees": -20.0}}


def close_up(image: np.ndarray, eyes: np.ndarray, side: float, aspect: float):
    """A close-up cut from the picture: ``side`` eye spacings tall (the ears cut off below about 2.6),
    ``aspect`` times as wide, centred a little below the eyes; and where the eyes are in it."""
    spacing = float(np.linalg.norm(eyes[1] - eyes[0]))
    cx, cy = eyes.mean(0) + [0, 0.35 * spacing]
    h, w = side * spacing, side * spacing * aspect
    x0, y0 = int(max(cx - w / 2, 0)), int(max(cy - h / 2, 0))
    x1, y1 = int(min(cx + w / 2, image.shape[1])), int(min(cy + h / 2, image.shape[0]))
    return np.ascontiguousarray(image[y0:y1, x0:x1]), eyes - [x0, y0]


CLOSE_UPS = {f"close-up {side:g} x {aspect:g}": (side, aspect) for side in (1.8, 2.2, 2.6) for aspect in (1.0, 1.5)}


def rgb(path: Path) -> np.ndarray:
    return np.ascontiguousarray(cv2.imread(str(path))[:, :, ::-1])


def as_picture(array: np.ndarray) -> np.ndarray:
    array = np.stack([array] * 3, -1) if array.ndim == 2 else array[..., :3]
    return np.ascontiguousarray((array * 255 if array.max() <= 1 else array).astype(np.uint8))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=Path, default=REPO.parent / "shared" / "examples")
    args = ap.parse_args()
    finder = AnimalFaceFinder(human=Cropper())
    seconds: list[float] = []

    def find(picture):
        t = time.perf_counter()
        faces, humans = finder.find(picture)
        seconds.append(time.perf_counter() - t)
        return faces, humans

    for kind, variants in (("moved", VARIANTS), ("close-ups", CLOSE_UPS)):
        right = total = 0
        for name, eyes in EYES.items():
            image = rgb(args.examples / "source" / f"{name}.jpg")
            for variant, how in variants.items():
                picture, where = (moved(image, np.array(eyes), **how) if kind == "moved"
                                  else close_up(image, np.array(eyes), *how))
                faces, _ = find(picture)
                spacing = float(np.linalg.norm(where[1] - where[0]))
                error = float(np.abs(faces[0].keypoints[:2] - where).max()) / spacing if faces else None
                ok = error is not None and error < 0.3
                right, total = right + ok, total + 1
                said = "missed" if error is None else f"{'framed right' if ok else 'framed WRONG'} ({error:.2f})"
                print(f"{name} {variant:24s} {said}")
        print(f"animals {kind} framed right: {right} of {total}")

    wrong = []
    for name in HUMANS:
        faces, humans = find(rgb(args.examples / "source" / f"{name}.jpg"))
        if faces:
            wrong.append(name)
    try:
        import skimage.data as pictures
    except ImportError:
        pictures = None
        print("scikit-image is missing (the dev extra): its pictures are skipped")
    if pictures is not None:
        for name in NO_ANIMAL:
            if find(as_picture(getattr(pictures, name)()))[0]:
                wrong.append(name)
        chelsea = find(as_picture(pictures.chelsea()))[0]
        where = np.array(CHELSEA_EYES)
        error = np.abs(chelsea[0].keypoints[:2] - where).max() / np.linalg.norm(where[1] - where[0]) if chelsea else 0
        print("scikit-image's chelsea (a tabby close-up, ears cut): "
              + (f"found, eyes off by {error:.2f} of their spacing" if chelsea else "not found"))
    print(f"pictures without an animal taken for one: {len(wrong)} ({', '.join(wrong) or 'none'})")
    print(f"seconds a picture: median {np.median(seconds):.2f}, most {max(seconds):.2f} "
          f"({len(seconds)} pictures)")


if __name__ == "__main__":
    main()
