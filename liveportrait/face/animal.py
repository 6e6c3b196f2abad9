"""Cat and dog faces found with models that ship inside installed wheels: nothing is downloaded.

The reference finds animal faces with X-Pose (a CUDA-only, non-commercial keypoint model). Here two
models that are already installed share the work (measured on the examples: see the README, "Animals"):

1. OpenCV's two cat-face cascades (``cv2.data.haarcascades``) propose boxes. Alone they are not
   enough: the extended cascade misses the ragdoll cat of s39, and both fire on human faces.
   Both cascades run on the plain and the histogram-equalised picture with the loosest grouping,
   so that at least one proposal lands on the face; most proposals are wrong.
2. MediaPipe's short-range face detector confirms a proposal: run on windows of 1.5, 2 and 3 times
   the box, it fires on frontal cat and dog faces too (0.73 on s25, 0.63 on s39) and places the eyes,
   nose and mouth, which frame the crop. A face needs two windows that agree on its eyes.

A proposal that lands on a human face (found by the human face finder) is dropped, so a human photo in
animal mode says so instead of cropping the wrong thing.

Framing follows the reference's animal crop (spec 6: its 9-point rule with the source's scale 2.3,
vy -0.125 and rotation). The 9 points (the four eye corners, nose, lip corners, upper and lower lip) are
approximated from the detector's four: the outer eye corners lie ``EYE_CORNER`` inter-eye distances
beyond the eye centres and the lip corners ``LIP_CORNER`` either side of the mouth (both estimated by
eye on s25 and s39). The eye and mouth anchors are then the reference's, and so is the crop's side where the
eyes' span is the face's widest extent (it is for cats and dogs).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import NoFaceError
from . import geometry
from .backend import Face, MediaPipeBackend, landmarks_box

CASCADES = ("haarcascade_frontalcatface.xml", "haarcascade_frontalcatface_extended.xml")
DETECT_SIDE = 640  # the cascades run on the picture shrunk to this longer side
MIN_FACE = 0.1  # smallest proposal, as a fraction of the picture's shorter side
WINDOWS = (1.5, 2.0, 3.0)  # confirmation windows, in proposal sides
WINDOW_PIXELS = 256  # side the confirmation windows are resampled to
MIN_SCORE = 0.45  # MediaPipe short-range score that confirms an animal face
MIN_LOOKS = 2  # a face must be confirmed by this many windows that agree on its eyes (one look can be a fluke)
SAME_FACE = 0.35  # confirmations whose eye midpoints are this close (in inter-eye distances) are one face
EYE_CORNER = 0.17
LIP_CORNER = 0.15
# both models want upright faces and pets tilt their heads: the picture is also searched turned by these
# (degrees); on tilted and scaled copies of s25 and s39 this took the faces framed right from 7 of 12 to 11 of 12
ROTATIONS = (0.0, -20.0, 20.0)

ANIMAL_HINT = "give its position with --crop-box x0,y0,x1,y1"


@dataclass
class AnimalFace:
    """One confirmed animal face: the proposal ``box`` (x0, y0, x1, y1) and ``keypoints`` (4, 2):
    right eye, left eye, nose tip and mouth (the animal's right is the picture's left), in pixels."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float

    def points(self) -> np.ndarray:
        """The five-point set whose anchors and width are those of the reference's nine points:
        outer eye corners, nose, lip corners (geometry's five-point rule). The roll comes from the eyes
        alone: the nose and mouth are put on the eyes' perpendicular bisector at their distance along it,
        since the detector's mouth point sits off to one side on animals (by 0.1 of the eyes' spacing on s39)."""
        right, left, nose, mouth = np.asarray(self.keypoints, np.float64)
        across = left - right
        mid = (right + left) / 2
        down = np.array([-across[1], across[0]]) / max(float(np.linalg.norm(across)), 1e-6)
        nose, mouth = (mid + down * float(np.dot(p - mid, down)) for p in (nose, mouth))
        return np.stack([right - EYE_CORNER * across, left + EYE_CORNER * across, nose,
                         mouth - LIP_CORNER * across, mouth + LIP_CORNER * across])


def _inside(points: np.ndarray, box: np.ndarray) -> bool:
    return bool(np.all((points >= box[:2]) & (points <= box[2:])))


def _same_face(a: AnimalFace, b: AnimalFace) -> bool:
    """Whether two looks put the eyes' midpoint at about the same place."""
    spacing = max(float(np.linalg.norm(b.keypoints[1] - b.keypoints[0])), 1.0)
    return bool(np.linalg.norm(a.keypoints[:2].mean(0) - b.keypoints[:2].mean(0)) < SAME_FACE * spacing)


def _merge(same: list[AnimalFace]) -> AnimalFace:
    """One face from several looks at it: keypoints averaged, weighted by score; the best one's box and score."""
    weights = np.array([a.score for a in same])
    kp = np.tensordot(weights / weights.sum(), np.stack([a.keypoints for a in same]), axes=1)
    best = max(same, key=lambda a: a.score)
    return AnimalFace(best.box, kp, best.score)


class AnimalFaceFinder:
    """Cat and dog faces in a still picture (``find``), best first; see the module's notes."""

    def __init__(self, human=None, detector: MediaPipeBackend | None = None):
        """``human``: a human ``Cropper`` whose faces are excluded (None: no human check)."""
        self.human = human
        # the full-range model is never accepted (score > 1): it rejects animals by design
        self.detector = detector or MediaPipeBackend(full_range_min=1.01, short_range_min=MIN_SCORE)
        self._cascades = None

    def proposals(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """Every box either cat cascade gives on the plain or equalised picture (mostly wrong)."""
        if self._cascades is None:
            self._cascades = [cv2.CascadeClassifier(cv2.data.haarcascades + name) for name in CASCADES]
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        f = min(1.0, DETECT_SIDE / max(h, w))
        small = cv2.resize(gray, (max(round(w * f), 1), max(round(h * f), 1)), interpolation=cv2.INTER_AREA)
        least = max(24, int(MIN_FACE * min(small.shape)))
        boxes = []
        for cascade in self._cascades:
            for picture in (small, cv2.equalizeHist(small)):
                for x, y, bw, bh in cascade.detectMultiScale(picture, 1.05, 1, minSize=(least, least)):
                    boxes.append(np.array([x, y, x + bw, y + bh], np.float64) / f)
        return boxes

    def _detect(self, image_rgb: np.ndarray, center, side: float) -> list[tuple[np.ndarray, float]]:
        """(keypoints in the picture, score) of MediaPipe's faces in the square window ``center``/``side``."""
        m = geometry.crop_matrix(center, side, 0.0, WINDOW_PIXELS, rotate=False)
        back = geometry.invert(m)
        return [(geometry.transform_points(det.keypoints[:4], back).astype(np.float64), float(det.score))
                for det in self.detector.detect(geometry.warp(image_rgb, m, WINDOW_PIXELS))]

    def confirm(self, image_rgb: np.ndarray, box: np.ndarray) -> list[AnimalFace]:
        """MediaPipe's detections around one proposal whose eyes lie inside it, at a plausible spacing."""
        center, side = (box[:2] + box[2:]) / 2, float(box[2] - box[0])
        found = []
        for k in WINDOWS:
            for kp, score in self._detect(image_rgb, center, k * side):
                spacing = float(np.linalg.norm(kp[1] - kp[0]))
                if _inside(kp[:2], box) and 0.15 * side < spacing < 0.8 * side:
                    found.append(AnimalFace(box, kp, score))
        return found

    def _human_boxes(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        if self.human is None:
            return []
        return [landmarks_box(f.landmarks) for f in self.human.faces(image_rgb)]

    def _faces_upright(self, image_rgb: np.ndarray) -> list[AnimalFace]:
        """Faces seen by at least MIN_LOOKS confirmations that agree, best first (one orientation)."""
        hits = [a for box in self.proposals(image_rgb) for a in self.confirm(image_rgb, box)]
        return _group(hits, MIN_LOOKS)

    def find(self, image_rgb: np.ndarray) -> tuple[list[AnimalFace], int]:
        """(animal faces best first, number of human faces seen). The picture is searched upright and
        turned by each of ROTATIONS; the faces found are mapped back and those seen in several
        orientations merged (their keypoints averaged, weighted by score)."""
        humans = self._human_boxes(image_rgb)
        found = []
        for angle in ROTATIONS:
            turned, back = _turn(image_rgb, angle)
            for a in self._faces_upright(turned):
                corners = np.array([a.box[[0, 1]], a.box[[2, 1]], a.box[[0, 3]], a.box[[2, 3]]]) @ back[:, :2].T
                corners += back[:, 2]
                box = np.concatenate([corners.min(0), corners.max(0)])
                found.append(AnimalFace(box, a.keypoints @ back[:, :2].T + back[:, 2], a.score))
        found = [a for a in found if not any(_inside(a.keypoints[:2], h) for h in humans)]
        return _group(found, 1), len(humans)


def _turn(image_rgb: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The picture turned by ``degrees`` (counter-clockwise) on a canvas that holds all of it, edges
    repeated, and the 2x3 affine that maps the turned picture's points back to the original's."""
    if not degrees:
        return image_rgb, np.array([[1.0, 0, 0], [0, 1, 0]])
    h, w = image_rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    size = (int(h * sin + w * cos), int(h * cos + w * sin))
    m[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    turned = cv2.warpAffine(image_rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(m)


def _group(looks: list[AnimalFace], min_looks: int) -> list[AnimalFace]:
    """Looks at the same face merged into one, best first; faces seen fewer than ``min_looks`` times dropped."""
    looks = sorted(looks, key=lambda a: -a.score)
    faces = []
    while looks:
        same = [a for a in looks if _same_face(a, looks[0])]
        if len(same) >= min_looks:
            faces.append(_merge(same))
        looks = [a for a in looks if not any(a is s for s in same)]
    return faces


def crop_animal(image_rgb: np.ndarray, finder: AnimalFaceFinder, scale: float = geometry.SOURCE_SCALE,
                vx_ratio: float = 0.0, vy_ratio: float = geometry.SOURCE_VY):
    """The FaceCrop of the best animal face (no landmarks, so no ratios: as the reference, spec 6);
    NoFaceError with a hint when there is none, saying so when the face found is a human's."""
    from .cropper import SOURCE, as_rgb, make_crop

    image = as_rgb(image_rgb)
    faces, humans = finder.find(image)
    if not faces:
        if humans:
            raise NoFaceError("no cat or dog face was found, only a human face: animate it without --animal, or "
                              f"{ANIMAL_HINT}")
        raise NoFaceError(f"no cat or dog face was found in the picture; if there is one, {ANIMAL_HINT}")
    best = faces[0]
    rect = geometry.face_rect(best.points(), scale, vx_ratio, vy_ratio)
    return make_crop(image, rect, SOURCE, None, Face(box=best.box, score=best.score, keypoints=best.keypoints))
