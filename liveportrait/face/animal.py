"""Cat and dog faces found with models that ship inside installed wheels: nothing is downloaded.

The reference finds animal faces with X-Pose (a CUDA-only, non-commercial keypoint model). Here two
models that are already installed share the work (measured with ``benchmarks/bench_animal_finder.py``;
see the README, "Animals"):

1. OpenCV's two cat-face cascades (``cv2.data.haarcascades``) propose boxes. Alone they are not
   enough: the extended cascade misses the ragdoll cat of s39, and both fire on human faces.
   Both cascades run on the plain and the histogram-equalised picture with the loosest grouping,
   so that at least one proposal lands on the face; most proposals are wrong.
2. MediaPipe's short-range face detector confirms a proposal: run on windows of 1.5, 2 and 3 times
   the box, it fires on frontal cat and dog faces too (0.73 on s25, 0.63 on s39), but not on every
   one: light-furred cats on busy backgrounds go unseen where both cascades still agree on the face.
   So the decision weighs the evidence in cascade votes (``AnimalFace.votes``): the agreement of the
   two cascades (the smaller of their neighbour counts on boxes that overlap and fit the eyes), and
   ``LOOK_VOTES`` for each detector window that confirms it; a face needs ``FACE_VOTES``. Two looks
   reach it alone (the rule before), and so does a strong agreement alone; a human face draws an
   agreement as strong, which is why the human check below stays.
3. MediaPipe's face mesh, run on the confirmed proposal's box, places the eyes, nose and lips (its face
   logit is low on animals, so it cannot confirm, only place): on the tests' copies of s25 and s39 its
   median eye error is 0.06 eye spacings against the detector's 0.13, and on scikit-image's tabby
   "chelsea" 0.28 against 0.87.

Pets tilt their heads and close-ups cut them off, and both models want an upright, whole face: the
picture is also searched turned by ``ROTATIONS`` and on a canvas widened by ``PADS`` (edges repeated).
A proposal that lands on a human face (found by the human face finder) is dropped, so a human photo in
animal mode says so instead of cropping the wrong thing.

Framing is the reference's animal crop (spec 6: its 9-point rule with the source's scale 2.3, vy -0.125
and rotation), on nine mesh points standing for X-Pose's: the four eye corners, the nose tip, the lip
corners and the upper and lower lip.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import NoFaceError
from . import geometry, mesh
from .backend import Face, MediaPipeBackend, landmarks_box

CASCADES = ("haarcascade_frontalcatface.xml", "haarcascade_frontalcatface_extended.xml")
DETECT_SIDE = 640  # the cascades run on the picture shrunk to this longer side
MIN_FACE = 0.1  # smallest proposal, as a fraction of the picture's shorter side
WINDOWS = (1.5, 2.0, 3.0)  # confirmation windows, in proposal sides
WINDOW_PIXELS = 256  # side the confirmation windows are resampled to
MIN_SCORE = 0.45  # MediaPipe short-range score that confirms an animal face
AGREE_IOU = 0.5  # a box from each cat cascade, overlapping this much (intersection over union): both see one face
# the weakest agreement that makes a face candidate of its own (the detector did not fire on it): both cascades
# still give the box at minNeighbors 3
MIN_AGREEMENT = 3
# The decision (a face or not) weighs the evidence in cascade votes: the agreement (the smaller of the two
# cascades' neighbour counts on the face) and LOOK_VOTES for each detector window that confirms it; a face
# needs FACE_VOTES, so two looks are enough alone, as before. Measured with benchmarks/bench_animal_finder.py
# (README, "Animals"): the human examples and the pictures without an animal reach 6 at most (s1: an agreement
# of 6 beside the human face), the weakest faces framed right 10 (chelsea: two looks) and 13 (a light-furred
# chelsea, 15 % of a noisy background: agreement alone); at 8 and 10 the figures are the same, and 10 keeps
# the rule before. The face mesh's logit does not count: on the cats it is -9 to 12, on the pictures without
# an animal -10 to 32 (a human face the cascades agree on).
LOOK_VOTES = 5
FACE_VOTES = 10
# where the eyes sit in a cat cascade's box, as fractions of its side (measured on s25), for a face only the
# cascades see: the detector's eyes are missing, and the mesh needs a first guess
BOX_EYES = np.array([[0.28, 0.40], [0.75, 0.40], [0.5, 0.6], [0.5, 0.72]])
SAME_FACE = 0.35  # confirmations whose eye midpoints are this close (in inter-eye distances) are one face
# the picture is also searched turned by these (degrees): on tilted and scaled copies of s25 and s39 this took
# the faces framed right from 7 of 12 to 11 of 12
ROTATIONS = (0.0, -20.0, 20.0)
# and on a canvas this much wider on every side (fractions of its longer side): close-ups cut from s25 and s39
# framed right went from 11 to 12 of 12, and chelsea was found
PADS = (0.0, 0.3)
# the mesh points standing for X-Pose's nine animal points, in its order: the right eye's corners, the left
# eye's, the nose tip, the lip corners, the upper and lower lip
NINE = (mesh.RIGHT_EYE[0], mesh.RIGHT_EYE[2], mesh.LEFT_EYE[2], mesh.LEFT_EYE[0], mesh.NOSE_TIP,
        *mesh.MOUTH_CORNERS, *mesh.OUTER_LIP)

ANIMAL_HINT = "give its position with --crop-box x0,y0,x1,y1"


@dataclass
class AnimalFace:
    """One animal face: the proposal ``box`` (x0, y0, x1, y1) and ``keypoints`` (4, 2): right eye, left eye,
    nose tip and mouth (the animal's right is the picture's left), in pixels; ``nine``, the framing points
    placed by the mesh (None until then). The evidence for it: ``looks``, the detector windows that confirm it,
    ``agreement``, the neighbours both cat cascades give it (0: they do not agree), and ``mesh_logit``, the face
    mesh's face logit (None until placed, and not counted: see FACE_VOTES); ``votes`` weighs them."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float
    support: float  # the summed scores of the confirmations merged into it (one look: its score)
    nine: np.ndarray | None = None
    looks: int = 1
    agreement: int = 0
    mesh_logit: float | None = None

    @property
    def votes(self) -> int:
        """The evidence that this is a face, in cascade votes: a face when at least FACE_VOTES."""
        return self.agreement + LOOK_VOTES * self.looks

    def framing_points(self) -> np.ndarray:
        """The nine points with the nose and lips swung about the eyes' anchor until the eye-to-mouth
        axis is square to the eye line: the roll comes from the eyes alone, since the mesh (a human model)
        puts a pet's small mouth off to one side (s39's crop turned 7 degrees too far otherwise)."""
        pts = np.array(self.nine, np.float64)
        eye, mouth = geometry.anchor_points(pts)
        across = (pts[2] + pts[3]) / 2 - (pts[0] + pts[1]) / 2
        turn = math.atan2(across[0], -across[1]) - math.atan2(*(mouth - eye)[::-1])
        c, s = math.cos(turn), math.sin(turn)
        pts[4:] = (pts[4:] - eye) @ np.array([[c, s], [-s, c]]) + eye
        return pts


def _inside(points: np.ndarray, box: np.ndarray) -> bool:
    return bool(np.all((points >= box[:2]) & (points <= box[2:])))


def _fits(keypoints: np.ndarray, box: np.ndarray) -> bool:
    """Whether the eyes lie inside the box at a spacing that a face of its size has."""
    side = float(box[2] - box[0])
    return _inside(keypoints[:2], box) and 0.15 * side < float(np.linalg.norm(keypoints[1] - keypoints[0])) < 0.8 * side


def _same_face(a: AnimalFace, b: AnimalFace) -> bool:
    """Whether two looks put the eyes' midpoint at about the same place."""
    spacing = max(float(np.linalg.norm(b.keypoints[1] - b.keypoints[0])), 1.0)
    return bool(np.linalg.norm(a.keypoints[:2].mean(0) - b.keypoints[:2].mean(0)) < SAME_FACE * spacing)


def _merge(same: list[AnimalFace], looks: int, agreement: int) -> AnimalFace:
    """One face from several looks at it: keypoints averaged, weighted by score (the cascades' guess only
    where no detector look is among them); the best one's box and score."""
    weights = np.array([a.score for a in same])
    if not weights.sum():
        weights = np.ones(len(same))
    kp = np.tensordot(weights / weights.sum(), np.stack([a.keypoints for a in same]), axes=1)
    best = max(same, key=lambda a: a.score)
    return AnimalFace(best.box, kp, best.score, sum(a.support for a in same), looks=looks, agreement=agreement)


def _box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two boxes."""
    inter = np.clip(np.minimum(a[2:], b[2:]) - np.maximum(a[:2], b[:2]), 0, None).prod()
    union = (a[2:] - a[:2]).prod() + (b[2:] - b[:2]).prod() - inter
    return float(inter / union) if union > 0 else 0.0


def _guessed_from_box(box: np.ndarray, agreement: int) -> AnimalFace:
    """A face only the cascades see, its keypoints where they sit in a cascade box (BOX_EYES)."""
    kp = box[:2] + BOX_EYES * (box[2:] - box[:2])
    return AnimalFace(box, kp, 0.0, 0.0, looks=0, agreement=agreement)


class AnimalFaceFinder:
    """Cat and dog faces in a still picture (``find``), best first; see the module's notes."""

    def __init__(self, human=None, face_votes: float = FACE_VOTES):
        """``human``: a human ``Cropper`` whose faces are excluded (None: no human check); ``face_votes``:
        the evidence a face needs (see FACE_VOTES; lower it to see the weaker candidates, as the benchmark does)."""
        self.human = human
        self.face_votes = face_votes
        # the full-range model is never accepted (score > 1): it rejects animals by design; the mesh places
        # points on any face-like thing it is given (its face logit is low on animals: weak evidence at most)
        self.detector = MediaPipeBackend(full_range_min=1.01, short_range_min=MIN_SCORE, accept_presence=-np.inf)
        self._cascades = None

    def _cascade_boxes(self, image_rgb: np.ndarray) -> list[list[tuple[np.ndarray, int]]]:
        """(box, neighbours) of each cascade on the plain and on the equalised picture (four lists)."""
        if self._cascades is None:
            self._cascades = [cv2.CascadeClassifier(cv2.data.haarcascades + name) for name in CASCADES]
        gray = cv2.cvtColor(image_rgb, cv2.COLOR_RGB2GRAY)
        h, w = gray.shape
        f = min(1.0, DETECT_SIDE / max(h, w))
        small = cv2.resize(gray, (max(round(w * f), 1), max(round(h * f), 1)), interpolation=cv2.INTER_AREA)
        least = max(24, int(MIN_FACE * min(small.shape)))
        found = []
        for picture in (small, cv2.equalizeHist(small)):
            for cascade in self._cascades:
                boxes, neighbours = cascade.detectMultiScale2(picture, 1.05, 1, minSize=(least, least))
                found.append([(np.array([x, y, x + bw, y + bh], np.float64) / f, int(n))
                              for (x, y, bw, bh), n in zip(boxes, np.ravel(neighbours))])
        return found

    def proposals(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        """Every box either cat cascade gives on the plain or equalised picture (mostly wrong)."""
        return [box for boxes in self._cascade_boxes(image_rgb) for box, _ in boxes]

    @staticmethod
    def _agreements(cascade_boxes) -> list[tuple[np.ndarray, int]]:
        """(the two boxes' mean, the smaller neighbour count) where the two cascades overlap on one picture."""
        agreed = []
        for first, second in (cascade_boxes[0:2], cascade_boxes[2:4]):
            for a, votes_a in first:
                agreed += [((a + b) / 2, min(votes_a, votes_b)) for b, votes_b in second
                           if _box_overlap(a, b) >= AGREE_IOU]
        return sorted(agreed, key=lambda pair: -pair[1])

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
            found += [AnimalFace(box, kp, score, score) for kp, score in self._detect(image_rgb, center, k * side)
                      if _fits(kp, box)]
        return found

    def _human_boxes(self, image_rgb: np.ndarray) -> list[np.ndarray]:
        if self.human is None:
            return []
        return [landmarks_box(f.landmarks) for f in self.human.faces(image_rgb)]

    def _faces_upright(self, image_rgb: np.ndarray) -> list[AnimalFace]:
        """The faces of one orientation with their evidence (detector looks that agree on the eyes, the
        cascades' agreement on a box that fits the eyes) where it reaches ``face_votes``, best first."""
        cascade_boxes = self._cascade_boxes(image_rgb)
        boxes = [box for found in cascade_boxes for box, _ in found]
        agreed = self._agreements(cascade_boxes)
        looks = [a for box in boxes for a in self.confirm(image_rgb, box)]
        looks += [_guessed_from_box(box, votes) for box, votes in agreed if votes >= MIN_AGREEMENT]
        faces = [a for a in _group(looks, agreed) if a.votes >= self.face_votes]
        return sorted(faces, key=lambda a: (-a.support, -a.votes))

    def find(self, image_rgb: np.ndarray) -> tuple[list[AnimalFace], int]:
        """(animal faces best first, number of human faces seen). The picture is searched as it is and
        on a canvas widened by each of PADS, upright and turned by each of ROTATIONS; the faces found are
        mapped back, those seen in several looks merged (keypoints averaged, weighted by score; the
        evidence of the strongest view), the best supported first (faces only the cascades see last), and each
        placed by the mesh (dropped where it cannot be)."""
        humans = self._human_boxes(image_rgb)
        found = [a for pad in PADS for a in self._orientations(image_rgb, pad)
                 if not any(_inside(a.keypoints[:2], h) for h in humans)]
        placed = (self._placed(image_rgb, a) for a in _merge_views(found))
        return [a for a in placed if a is not None], len(humans)

    def _orientations(self, image_rgb: np.ndarray, pad: float) -> list[AnimalFace]:
        """The faces of each orientation of the picture (on a canvas widened by ``pad``), in its pixels."""
        picture, unpad = _pad(image_rgb, pad) if pad else (image_rgb, _IDENTITY)
        found = []
        for angle in ROTATIONS:
            turned, back = _turn(picture, angle)
            back = _then(back, unpad)
            for a in self._faces_upright(turned):
                corners = np.array([a.box[[0, 1]], a.box[[2, 1]], a.box[[0, 3]], a.box[[2, 3]]])
                corners = corners @ back[:, :2].T + back[:, 2]
                found.append(AnimalFace(np.concatenate([corners.min(0), corners.max(0)]),
                                        a.keypoints @ back[:, :2].T + back[:, 2], a.score, a.support,
                                        looks=a.looks, agreement=a.agreement))
        return found

    def _placed(self, image_rgb: np.ndarray, face: AnimalFace) -> AnimalFace | None:
        """The face with its keypoints and nine framing points from the mesh, and the mesh's face logit; None
        where the mesh puts the eyes outside the proposal's box (the two models disagree on where the face is).

        The mesh runs on the proposal's box, once upright and once turned by the detector's eyes, and
        the look with the higher face logit is kept: the upright one places close-ups whose detector
        eyes are far off (chelsea), the turned one tilted heads whose box is loose."""
        looks = [self.detector.landmarks_with_presence(image_rgb, Face(box=face.box, score=face.score,
                                                                       keypoints=kp))
                 for kp in (None, face.keypoints)]
        placed = []
        for points, logit in (look for look in looks if look is not None):
            nine = np.asarray(points, np.float64)[list(NINE), :2]
            eyes = np.stack([nine[0:2].mean(0), nine[2:4].mean(0)])
            if _inside(eyes, face.box):
                placed.append((logit, nine, np.asarray(points, np.float64)[:, :2]))
        if not placed:
            return None
        logit, nine, pts = max(placed, key=lambda p: p[0])
        keypoints = np.stack([nine[0:2].mean(0), nine[2:4].mean(0), nine[4], pts[list(mesh.INNER_LIP)].mean(0)])
        return AnimalFace(face.box, keypoints, face.score, face.support, nine, face.looks, face.agreement, logit)


def _pad(image_rgb: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The picture on a canvas ``fraction`` of its longer side wider on every side, edges repeated, and the
    2x3 affine that maps the canvas's points back."""
    p = int(fraction * max(image_rgb.shape[:2]))
    canvas = cv2.copyMakeBorder(image_rgb, p, p, p, p, cv2.BORDER_REPLICATE)
    return canvas, np.array([[1.0, 0, -p], [0, 1, -p]])


_IDENTITY = np.array([[1.0, 0, 0], [0, 1, 0]])


def _then(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """The 2x3 affine that applies ``first`` and then ``second``."""
    out = second[:, :2] @ first
    out[:, 2] += second[:, 2]
    return out


def _turn(image_rgb: np.ndarray, degrees: float) -> tuple[np.ndarray, np.ndarray]:
    """The picture turned by ``degrees`` (counter-clockwise) on a canvas that holds all of it, edges
    repeated, and the 2x3 affine that maps the turned picture's points back to the original's."""
    if not degrees:
        return image_rgb, _IDENTITY
    h, w = image_rgb.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    size = (int(h * sin + w * cos), int(h * cos + w * sin))
    m[:, 2] += (size[0] - w) / 2, (size[1] - h) / 2
    turned = cv2.warpAffine(image_rgb, m, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return turned, cv2.invertAffineTransform(m)


def _group(looks: list[AnimalFace], agreed: list[tuple[np.ndarray, int]]) -> list[AnimalFace]:
    """Looks of one orientation at the same face merged into one: its evidence is how many detector looks it
    has and the strongest agreement of the cascades that it takes (see ``_lend_agreement``)."""
    looks = sorted(looks, key=lambda a: -a.score)
    faces = []
    while looks:
        same = [a for a in looks if _same_face(a, looks[0])]
        faces.append(_merge(same, sum(a.looks for a in same), 0))
        looks = [a for a in looks if not any(a is s for s in same)]
    _lend_agreement(faces, agreed)
    return faces


def _lend_agreement(faces: list[AnimalFace], agreed: list[tuple[np.ndarray, int]]) -> None:
    """Each box the cascades agree on lends its votes to one face: of those whose eyes fit it and are about
    level (the cascades find upright faces only), the one whose eyes are nearest where the box puts them
    (BOX_EYES). A box around a whole small head otherwise lent them to eyes placed on an ear too (s39, dark
    fur, 15 % of the width: framed 1.2 eye spacings off)."""
    for box, votes in agreed:
        guess = (box[:2] + BOX_EYES[:2].mean(0) * (box[2:] - box[:2]))
        takers = [a for a in faces if _fits(a.keypoints, box) and _level(a.keypoints)]
        if takers:
            taker = min(takers, key=lambda a: float(np.linalg.norm(a.keypoints[:2].mean(0) - guess)))
            taker.agreement = max(taker.agreement, votes)


def _level(keypoints: np.ndarray) -> bool:
    """Whether the eye line is within 30 degrees of level."""
    dx, dy = keypoints[1] - keypoints[0]
    return abs(dy) < math.tan(math.radians(30)) * abs(dx)


def _merge_views(found: list[AnimalFace]) -> list[AnimalFace]:
    """Faces seen in several orientations merged into one, with the evidence of its best view (views are
    not independent looks: the same picture turned)."""
    found = sorted(found, key=lambda a: -a.score)
    faces = []
    while found:
        same = [a for a in found if _same_face(a, found[0])]
        best = max(same, key=lambda a: a.votes)
        faces.append(_merge(same, best.looks, best.agreement))
        found = [a for a in found if not any(a is s for s in same)]
    # ranked as before by the detector's summed scores over all views (a surer guide to the face than one
    # view's votes: ranked by votes, s39 with dark fur on the night street was framed 0.67 off), then by votes
    return sorted(faces, key=lambda a: (-a.support, -a.votes))


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
    rect = geometry.face_rect(best.framing_points(), scale, vx_ratio, vy_ratio)
    return make_crop(image, rect, SOURCE, None, Face(box=best.box, score=best.score, keypoints=best.keypoints))
