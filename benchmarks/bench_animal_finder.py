"""Measure the animal face finder: what it frames right, what it takes for an animal, and its cost.

    python benchmarks/bench_animal_finder.py [--examples ../shared/examples] [--only full-body]

The two animals of the examples (s25, a shiba dog; s39, a ragdoll cat) are each searched as given,
turned 20 degrees either way, shrunk to a quarter on a grey canvas, mirrored, and mirrored and turned
(7 pictures each), and cut to six close-ups whose head runs off the picture. A face is framed right when
both eyes land within 0.3 of their spacing of where they are (marked by hand; the error is printed in
eye spacings). Then the pictures that hold no animal (the human examples and scikit-image's
coffee, rocket, horse, camera and a microscope slide) must give none, and scikit-image's tabby close-up
("chelsea", never used to tune the finder) is reported as found or not.

Full-body pictures: each pet (s25, s39 and chelsea), cut out with its body, lightened (white fur) or darkened,
is put small on a 1200 x 1200 busy background made here (coloured noise, a night street of lit rectangles,
lights and lines, a collage of the human examples and scikit-image's pictures); the backgrounds alone are
pictures without an animal. Every face the finder sees is kept with its evidence (``AnimalFace.votes``), so
that recall and false positives are printed for each decision threshold; the finder's own is FACE_VOTES.
Prints seconds per picture.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from liveportrait.face.animal import FACE_VOTES, LOOK_VOTES, AnimalFaceFinder
from liveportrait.face.cropper import Cropper

REPO = Path(__file__).resolve().parents[1]
EYES = {"s25": [[172.0, 232.0], [303.0, 229.0]], "s39": [[414.0, 480.0], [630.0, 414.0]]}  # picture's left first
CHELSEA_EYES = [[170.0, 115.0], [318.0, 135.0]]
HUMANS = ["s0", "s1", "s5", "s6", "s7", "s9", "s11"]
NO_ANIMAL = ["coffee", "rocket", "horse", "camera", "immunohistochemistry"]
# ellipses (centre, half axes, in the pet picture's pixels) that hold each pet's head and body
PET_SHAPES = {"s25": [((256, 256), (215, 200)), ((256, 470), (240, 90))],
              "s39": [((522, 432), (400, 350)), ((504, 1043), (440, 470))],
              "chelsea": [((245, 150), (200, 160))]}
CANVAS = 1200
THRESHOLDS = (LOOK_VOTES, 8, FACE_VOTES, 12, 15, 20)  # the decision thresholds the sweep reports (votes)
# the finder runs once with this threshold; a face's votes are those of its strongest view, so the faces at a
# higher threshold are those with as many votes (their keypoints may also average in weaker views, a little off)
SWEEP_FLOOR = LOOK_VOTES


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


def fur(picture: np.ndarray, how: str) -> np.ndarray:
    """A copy of the pet with white-grey fur (brighter, 0.6 the contrast, colours faded to 0.4) or with
    black-grey fur (0.6 as bright, colours faded alike)."""
    values = picture.astype(np.float32)
    values = 0.6 * values.mean(-1, keepdims=True) + 0.4 * values
    values = 255 - (255 - values) * 0.6 if how == "light" else values * 0.6
    return np.clip(values, 0, 255).astype(np.uint8)


def noise_background(rng: np.random.Generator, side: int = CANVAS) -> np.ndarray:
    """Coloured noise at four scales, from blotches to grain."""
    out = np.zeros((side, side, 3), np.float32)
    for cells, weight in ((4, 0.5), (16, 0.3), (64, 0.2), (256, 0.15)):
        out += weight * cv2.resize(rng.random((cells, cells, 3)).astype(np.float32), (side, side),
                                   interpolation=cv2.INTER_CUBIC)
    return ((out - out.min()) / (out.max() - out.min()) * 255).astype(np.uint8)


def street_background(rng: np.random.Generator, side: int = CANVAS) -> np.ndarray:
    """A night street, roughly: dim rectangles (walls, windows), bright dots (lights) and coloured lines."""
    out = np.full((side, side, 3), 20, np.uint8)
    colour = lambda low, high: tuple(int(v) for v in rng.integers(low, high, 3))  # noqa: E731
    for _ in range(60):
        x, y = rng.integers(0, side, 2)
        w, h = rng.integers(20, 300, 2)
        cv2.rectangle(out, (int(x), int(y)), (int(x + w), int(y + h)), colour(0, 120), -1)
    for _ in range(150):
        x, y = rng.integers(0, side, 2)
        cv2.circle(out, (int(x), int(y)), int(rng.integers(2, 14)), colour(150, 256), -1)
    for _ in range(40):
        x0, y0, x1, y1 = (int(v) for v in rng.integers(0, side, 4))
        cv2.line(out, (x0, y0), (x1, y1), colour(0, 256), int(rng.integers(1, 6)))
    return cv2.GaussianBlur(out, (0, 0), 1.5)


def collage_background(rng: np.random.Generator, photos: list[np.ndarray], side: int = CANVAS) -> np.ndarray:
    """Three by three tiles drawn from ``photos`` (faces of people among them)."""
    tile = side // 3
    out = np.zeros((side, side, 3), np.uint8)
    for i in range(3):
        for j in range(3):
            out[i * tile:(i + 1) * tile, j * tile:(j + 1) * tile] = cv2.resize(photos[rng.integers(len(photos))],
                                                                               (tile, tile))
    return out


def full_body(pet: np.ndarray, eyes: np.ndarray, shape, background: np.ndarray, face_width: float,
              where: tuple[float, float], how: str):
    """The pet cut out along ``shape`` (soft edges), its fur made ``how``, scaled so that its face (about 2.2
    eye spacings) is ``face_width`` of the background's width, and put at ``where`` (fractions of the room
    left); and where its eyes went."""
    mask = np.zeros(pet.shape[:2], np.float32)
    for centre, axes in shape:
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), max(pet.shape[:2]) * 0.015)
    ys, xs = np.nonzero(mask > 0.01)
    x0, y0 = xs.min(), ys.min()
    pet, mask = fur(pet[y0:ys.max() + 1, x0:xs.max() + 1], how), mask[y0:ys.max() + 1, x0:xs.max() + 1]
    side = background.shape[1]
    scale = face_width * side / (2.2 * float(np.linalg.norm(eyes[1] - eyes[0])))
    size = (max(int(pet.shape[1] * scale), 1), max(int(pet.shape[0] * scale), 1))
    pet, mask = cv2.resize(pet, size, interpolation=cv2.INTER_AREA), cv2.resize(mask, size)[..., None]
    px, py = int(where[0] * (background.shape[1] - size[0])), int(where[1] * (background.shape[0] - size[1]))
    out = background.copy()
    room = out[py:py + size[1], px:px + size[0]].astype(np.float32)
    out[py:py + size[1], px:px + size[0]] = (mask * pet + (1 - mask) * room).astype(np.uint8)
    return out, (eyes - [x0, y0]) * scale + [px, py]


def busy_backgrounds(examples: Path, pictures, seed: int = 0) -> dict[str, np.ndarray]:
    """The three busy backgrounds, the same on every run."""
    rng = np.random.default_rng(seed)
    photos = [rgb(examples / "source" / f"{name}.jpg") for name in HUMANS]
    if pictures is not None:
        photos += [as_picture(getattr(pictures, name)()) for name in NO_ANIMAL]
    return {"noise": noise_background(rng), "night street": street_background(rng),
            "collage": collage_background(rng, photos)}


def full_body_pictures(examples: Path, pictures):
    """(name, picture, eyes) of each pet on each busy background with light and dark fur, its face 15 % of the
    width low on the left or 30 % high on the right; then (name, background, None) for each background alone."""
    pets = {name: (rgb(examples / "source" / f"{name}.jpg"), np.array(eyes)) for name, eyes in EYES.items()}
    if pictures is not None:
        pets["chelsea"] = (as_picture(pictures.chelsea()), np.array(CHELSEA_EYES))
    backgrounds = busy_backgrounds(examples, pictures)
    out = []
    for where, background in backgrounds.items():
        for pet, (image, eyes) in pets.items():
            for how in ("light", "dark"):
                for width, place in ((0.15, (0.3, 0.85)), (0.3, (0.6, 0.2))):
                    picture, at = full_body(image, eyes, PET_SHAPES[pet], background, width, place, how)
                    out.append((f"{pet}, {how} fur, face {width:.0%} wide, on {where}", picture, at))
    return out + [(f"{where} alone", background, None) for where, background in backgrounds.items()]


def framed(faces, eyes: np.ndarray, threshold: float) -> float | None:
    """The eye error (in eye spacings) of the best face with at least ``threshold`` votes (None: none)."""
    kept = [a for a in faces if a.votes >= threshold]
    if not kept:
        return None
    return float(np.abs(kept[0].keypoints[:2] - eyes).max()) / float(np.linalg.norm(eyes[1] - eyes[0]))


def sweep(results: list[tuple[str, list, np.ndarray | None]], title: str) -> None:
    """Recall (framed right) and false positives (pictures without an animal given one) at each threshold."""
    animals = [(faces, eyes) for _, faces, eyes in results if eyes is not None]
    empty = [faces for _, faces, eyes in results if eyes is None]
    print(f"{title}: {len(animals)} animals, {len(empty)} pictures without one")
    for t in THRESHOLDS:
        right = sum((e := framed(faces, eyes, t)) is not None and e < 0.3 for faces, eyes in animals)
        wrong = sum(any(a.votes >= t for a in faces) for faces in empty)
        mark = "  <- the finder's threshold (FACE_VOTES)" if t == FACE_VOTES else ""
        print(f"  votes >= {t:4.1f}: framed right {right} of {len(animals)}, false positives {wrong} of "
              f"{len(empty)}{mark}")


def describe(faces, eyes) -> str:
    """What the finder said on one picture, at the finder's threshold, with the strongest face's evidence."""
    if not faces:
        return "nothing seen"
    best = faces[0]
    evidence = f"votes {best.votes:g} ({best.looks} looks, agreement {best.agreement})"
    if eyes is None:
        return f"faces seen, best {evidence}"
    error = framed(faces, eyes, FACE_VOTES)
    said = "missed" if error is None else f"{'framed right' if error < 0.3 else 'framed WRONG'} ({error:.2f})"
    return f"{said}; strongest {evidence}, off by {framed(faces, eyes, SWEEP_FLOOR):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--examples", type=Path, default=REPO.parent / "shared" / "examples")
    ap.add_argument("--only", choices=("examples", "full-body"), help="measure one half only")
    args = ap.parse_args()
    finder = AnimalFaceFinder(human=Cropper(), face_votes=SWEEP_FLOOR)
    seconds: list[float] = []
    try:
        import skimage.data as pictures
    except ImportError:
        pictures = None
        print("scikit-image is missing (the dev extra): its pictures are skipped")

    def find(picture):
        t = time.perf_counter()
        faces, _ = finder.find(picture)
        seconds.append(time.perf_counter() - t)
        return faces

    examples: list[tuple[str, list, np.ndarray | None]] = []
    if args.only != "full-body":
        for kind, variants in (("moved", VARIANTS), ("close-ups", CLOSE_UPS)):
            for name, eyes in EYES.items():
                image = rgb(args.examples / "source" / f"{name}.jpg")
                for variant, how in variants.items():
                    picture, where = (moved(image, np.array(eyes), **how) if kind == "moved"
                                      else close_up(image, np.array(eyes), *how))
                    examples.append((f"{name} {variant}", find(picture), where))
                    print(f"{name} {variant:24s} {describe(examples[-1][1], where)}")
        for name in HUMANS:
            examples.append((name, find(rgb(args.examples / "source" / f"{name}.jpg")), None))
        for name in NO_ANIMAL if pictures is not None else ():
            examples.append((name, find(as_picture(getattr(pictures, name)())), None))
        for name, faces, eyes in examples:
            if eyes is None and faces:
                print(f"{name:24s} {describe(faces, None)}")
        if pictures is not None:
            faces = find(as_picture(pictures.chelsea()))
            print(f"scikit-image's chelsea (a tabby close-up, ears cut): {describe(faces, np.array(CHELSEA_EYES))}")
        sweep(examples, "the examples (moved and close-ups), the human examples and scikit-image's pictures")
    if args.only != "examples":
        bodies = []
        for name, picture, eyes in full_body_pictures(args.examples, pictures):
            bodies.append((name, find(picture), eyes))
            print(f"{name:52s} {describe(bodies[-1][1], eyes)}")
        sweep(bodies, "full-body pets on busy backgrounds, and the backgrounds alone")
    print(f"seconds a picture: median {np.median(seconds):.2f}, most {max(seconds):.2f} "
          f"({len(seconds)} pictures; faces down to {SWEEP_FLOOR} votes are placed, more than the finder does)")


if __name__ == "__main__":
    main()
