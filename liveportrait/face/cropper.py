"""Find faces and frame them the way the networks were trained (spec 4.3, 4.4, 4.11).

``Cropper`` handles pictures: every face is detected, given dense landmarks and cropped with the
reference geometry.  ``VideoFaceTracker`` handles a stream of frames: it detects once, follows the
face with the landmark model, re-detects when the face is lost or the landmarks drift off it,
smooths the crop with a causal filter, and holds the last crop through frames without a face.

Face numbering: faces are numbered 0, 1, ... from left to right (by the centre of their landmarks),
which stays stable when two faces have about the same size; ``"largest"`` picks the biggest face,
as the reference does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Union

import numpy as np

from ..errors import InputError, NoFaceError
from . import geometry, mesh
from .backend import Face, FaceBackend, MediaPipeBackend, box_iou, landmarks_box
from .ratios import eye_ratio, lip_ratio
from .smoothing import OneEuroFilter, SteadyBox

FaceSelection = Union[str, int]

NO_FACE_HINT = "if there is one, give its position with --crop-box x0,y0,x1,y1"
ANIMAL_MODE_HINT = "for a cat or dog, add --animal"


@dataclass
class FaceCrop:
    """One framed face.

    ``M_o2c``/``M_c2o`` map original pixels to 512-crop pixels and back (3x3 float32).
    ``landmarks`` are in original-picture coordinates; ``box`` is the crop square (x0, y0, x1, y1)
    in the original before its roll ``angle`` (radians) is applied (for unrotated crops, exactly
    the region cropped, so it can be passed back as ``--crop-box``).  Ratios are None when no
    landmarks could be computed (a crop from a user box around a non-human face).
    """

    M_o2c: np.ndarray
    M_c2o: np.ndarray
    crop_512: np.ndarray
    crop_256: np.ndarray
    landmarks: np.ndarray | None
    eye_ratio: np.ndarray | None
    lip_ratio: np.ndarray | None
    box: np.ndarray
    angle: float = 0.0
    face_box: np.ndarray | None = None
    score: float = 0.0
    held: bool = False

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])

    @property
    def size(self) -> float:
        return float(self.box[2] - self.box[0])

    @property
    def landmarks_crop(self) -> np.ndarray | None:
        """Landmarks in 512-crop coordinates."""
        if self.landmarks is None:
            return None
        return geometry.transform_points(self.landmarks, self.M_o2c)


@dataclass(frozen=True)
class Framing:
    """How a face is framed: the reference values for sources and for driving videos."""

    scale: float = geometry.SOURCE_SCALE
    vx_ratio: float = 0.0
    vy_ratio: float = geometry.SOURCE_VY
    rotate: bool = True  # turn the crop so the face is upright
    area: bool = True  # INTER_AREA (sources) or bilinear (driving) for the 256 picture
    dsize: int = geometry.CROP_SIZE


SOURCE = Framing()
# the reference crops driving videos with an axis-aligned box, which keeps head roll as motion
DRIVING = Framing(geometry.DRIVING_SCALE, 0.0, geometry.DRIVING_VY, rotate=False, area=False)
PRESETS = {"source": SOURCE, "driving": DRIVING}


def as_rgb(image: np.ndarray) -> np.ndarray:
    """A contiguous HxWx3 uint8 picture from gray, RGB or RGBA input."""
    img = np.asarray(image)
    if img.dtype != np.uint8:
        raise InputError(f"expected an 8-bit picture, got {img.dtype}")
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    if img.ndim != 3 or img.shape[2] not in (3, 4) or min(img.shape[:2]) < 1:
        raise InputError(f"expected an RGB picture, got an array of shape {img.shape}")
    return np.ascontiguousarray(img[..., :3])


def _face_centre(f: Face) -> np.ndarray:
    return landmarks_box(f.landmarks).reshape(2, 2).mean(0) if f.landmarks is not None else f.center


def _face_area(f: Face) -> float:
    if f.landmarks is None:
        return f.area
    x0, y0, x1, y1 = landmarks_box(f.landmarks)
    return float((x1 - x0) * (y1 - y0))


def left_to_right(faces: list[Face]) -> list[Face]:
    return sorted(faces, key=lambda f: float(_face_centre(f)[0]))


def select_faces(faces: list[Face], face: FaceSelection) -> list[Face]:
    """Pick faces: ``"largest"``, ``"all"`` (left to right) or an index counted from the left."""
    ordered = left_to_right(faces)
    if isinstance(face, str) and face.lstrip("-").isdigit():
        face = int(face)
    if face == "all":
        return ordered
    if face == "largest":
        return [max(ordered, key=_face_area)] if ordered else []
    if isinstance(face, int) and not isinstance(face, bool):
        if not 0 <= face < len(ordered):
            raise NoFaceError(
                f"face {face} was asked for, but {len(ordered)} face(s) were found "
                f"(numbered 0 to {len(ordered) - 1} from left to right)")
        return [ordered[face]]
    raise InputError(f"face selection must be 'largest', 'all' or a face number, got {face!r}")


def dedupe(faces: list[Face], iou: float = 0.5) -> list[Face]:
    """Drop faces whose landmark boxes overlap a better-scoring one (two detectors, one face)."""
    kept: list[Face] = []
    for f in sorted(faces, key=lambda f: -f.score):
        b = landmarks_box(f.landmarks) if f.landmarks is not None else f.box
        if all(box_iou(b, landmarks_box(k.landmarks) if k.landmarks is not None else k.box) <= iou
               for k in kept):
            kept.append(f)
    return kept


def make_crop(image: np.ndarray, rect: geometry.FaceRect, framing: Framing,
              landmarks: np.ndarray | None, face: Face | None = None, held: bool = False) -> FaceCrop:
    """Cut the crop for a face rectangle and measure its ratios."""
    m_o2c = geometry.crop_matrix(rect.center, rect.size, rect.angle, framing.dsize, framing.rotate)
    crop = geometry.warp(image, m_o2c, framing.dsize)
    lm = None if landmarks is None else np.asarray(landmarks, np.float32)[:, :2]
    return FaceCrop(
        M_o2c=m_o2c,
        M_c2o=geometry.invert(m_o2c),
        crop_512=crop,
        crop_256=geometry.to_net_input(crop, area=framing.area),
        landmarks=lm,
        eye_ratio=None if lm is None else eye_ratio(lm),
        lip_ratio=None if lm is None else lip_ratio(lm),
        box=rect.box(),
        angle=rect.angle if framing.rotate else 0.0,
        face_box=None if face is None else np.asarray(face.box, np.float64),
        score=0.0 if face is None else float(face.score),
        held=held,
    )


class Cropper:
    """Detect, landmark and frame faces in still pictures."""

    def __init__(self, backend: FaceBackend | None = None):
        self.backend = backend if backend is not None else MediaPipeBackend()

    def faces(self, image_rgb: np.ndarray, thorough: bool = False) -> list[Face]:
        """Every face with landmarks, numbered left to right.

        ``thorough`` also looks for small faces (group photos); see ``MediaPipeBackend.detect``.
        """
        image = as_rgb(image_rgb)
        found = []
        for f in self.backend.detect(image, thorough=thorough):
            lm = self.backend.landmarks(image, f)
            if lm is not None:
                found.append(replace(f, landmarks=lm))
        return left_to_right(dedupe(found))

    def crop_face(self, image_rgb: np.ndarray, face: Face, framing: Framing = SOURCE) -> FaceCrop:
        rect = geometry.face_rect(face.landmarks, framing.scale, framing.vx_ratio, framing.vy_ratio)
        return make_crop(as_rgb(image_rgb), rect, framing, face.landmarks, face)

    def crop_image(self, image_rgb: np.ndarray, face: FaceSelection = "largest",
                   scale: float = geometry.SOURCE_SCALE, vx_ratio: float = 0.0,
                   vy_ratio: float = geometry.SOURCE_VY, dsize: int = geometry.CROP_SIZE,
                   rotate: bool = True, area: bool = True) -> list[FaceCrop]:
        """Crops of the selected faces (left to right); NoFaceError when there is no human face.

        ``"all"`` and face numbers look for small faces too (a slower, tiled detection), since
        every face must be found for them; ``"largest"`` needs one pass.
        """
        image = as_rgb(image_rgb)
        faces = self.faces(image, thorough=face != "largest")
        if not faces:
            raise NoFaceError(f"no human face was found in the picture; {NO_FACE_HINT}; {ANIMAL_MODE_HINT}")
        framing = Framing(scale, vx_ratio, vy_ratio, rotate, area, dsize)
        return [self.crop_face(image, f, framing) for f in select_faces(faces, face)]

    def crop_from_box(self, image_rgb: np.ndarray, box, dsize: int = geometry.CROP_SIZE,
                      area: bool = True, find_face: bool = True) -> FaceCrop:
        """Crop a given box (x0, y0, x1, y1), scaled so that its longer side fills the crop.

        For ``--crop-box`` and for the reference's one-box driving crop (see ``mean_box``).
        With ``find_face`` landmarks (and ratios) are looked for inside the box; they are None
        when there is no human face in it, the usual case for ``--crop-box`` (animals, drawings).
        """
        image = as_rgb(image_rgb)
        b = geometry.parse_box(box) if isinstance(box, str) else np.asarray(box, np.float64)
        if b.shape != (4,) or b[2] <= b[0] or b[3] <= b[1]:
            raise InputError(f"a crop box is x0,y0,x1,y1 with x1>x0 and y1>y0, got {box!r}")
        center = (b[:2] + b[2:]) / 2
        rect = geometry.FaceRect(center, float(max(b[2] - b[0], b[3] - b[1])), 0.0)
        framing = Framing(rotate=False, area=area, dsize=dsize)
        fc = make_crop(image, rect, framing, None)
        inner = self.faces(fc.crop_512) if find_face else []
        if inner:
            best = max(inner, key=_face_area)
            lm = geometry.transform_points(best.landmarks, fc.M_c2o)
            fc = replace(fc, landmarks=lm, eye_ratio=eye_ratio(lm), lip_ratio=lip_ratio(lm),
                         face_box=landmarks_box(lm), score=best.score)
        return fc

    def ratios(self, image_rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(eye (2,), lip (1,))`` of the largest face, for frames that are already framed."""
        faces = self.faces(image_rgb)
        if not faces:
            raise NoFaceError(f"no human face was found in the picture; {NO_FACE_HINT}")
        lm = select_faces(faces, "largest")[0].landmarks
        return eye_ratio(lm), lip_ratio(lm)


# ---------------------------------------------------------------------------------------------
# video


def mean_box(crops: list[FaceCrop | None]) -> np.ndarray:
    """The element-wise mean of the crop boxes: the reference's single box for a driving video.

    For the reference's two-pass driving crop, track with ``smoothing=None`` first, then crop
    every frame with ``Cropper.crop_from_box(frame, mean_box(crops), area=False, find_face=False)``.
    """
    boxes = [c.box for c in crops if c is not None and not c.held]
    if not boxes:
        raise NoFaceError("no human face was found in any frame")
    return np.mean(boxes, axis=0)


def drift(landmarks: np.ndarray, detection: Face) -> float:
    """How far the tracked mesh has slid off a fresh detection, in inter-ocular distances.

    Compares the mesh's eye centres and mouth centre with the detector's keypoints for them.
    """
    if detection.keypoints is None:
        return 0.0
    lm = np.asarray(landmarks)[:, :2]
    mine = np.stack([lm[list(mesh.RIGHT_EYE)].mean(0), lm[list(mesh.LEFT_EYE)].mean(0),
                     lm[list(mesh.INNER_LIP)].mean(0)])
    theirs = np.asarray(detection.keypoints)[[0, 1, 3], :2]
    iod = max(float(np.linalg.norm(mine[0] - mine[1])), 1e-3)
    return float(np.linalg.norm(mine - theirs, axis=1).mean() / iod)


@dataclass
class TrackerStats:
    frames: int = 0
    frames_without_face: int = 0
    detections: int = 0  # full detections run (first frame, lost track, drift checks)
    reacquired: int = 0  # times the face was found again by detection after being lost or drifting


class VideoFaceTracker:
    """Frame one face through a video, one frame at a time.

    ``update(frame)`` returns the frame's ``FaceCrop``; while the face is missing the last crop
    box is held (``held=True``, landmarks and ratios of the last frame that had them) and
    ``stats.frames_without_face`` counts it; before the face is first seen it returns None.

    Tracking: the landmark model's region comes from the previous frame's landmarks; every
    ``redetect_every`` frames a detection checks that the mesh has not drifted off the face
    (``drift`` above ``max_drift``), and a detection runs at once whenever the mesh loses the face.
    ``face`` picks the face on the first detection ("largest" or an index from the left);
    afterwards the tracker stays with the face nearest to where it was.

    Smoothing (``smoothing``): ``"follow"`` runs a One-Euro filter on crop centre, side and roll, so
    the crop follows the head without shaking (source videos: the reference crops every frame);
    ``"steady"`` holds the box still while the head moves inside it (``SteadyBox``), which keeps
    head translation as motion like the reference's single driving box; ``"auto"`` picks
    ``"steady"`` for unrotated (driving) framings and ``"follow"`` for rotated (source) ones;
    None: raw boxes.  Either filter starts afresh when the face jumps (a cut, another face).
    """

    def __init__(self, cropper: Cropper | None = None, preset: str | Framing = "driving",
                 face: FaceSelection = "largest", fps: float = 25.0, smoothing: str | None = "auto",
                 redetect_every: int = 30, max_drift: float = 0.35,
                 min_cutoff: float = 0.3, beta: float = 3.0):
        self.cropper = cropper if cropper is not None else Cropper()
        if isinstance(preset, Framing):
            self.framing = preset
        elif preset in PRESETS:
            self.framing = PRESETS[preset]
        else:
            raise InputError(f"framing preset must be one of {sorted(PRESETS)}, got {preset!r}")
        self.face = face
        self.dt = 1.0 / float(fps if fps and fps > 0 else 25.0)
        if smoothing == "auto":
            smoothing = "follow" if self.framing.rotate else "steady"
        if smoothing not in ("follow", "steady", None):
            raise InputError(f"smoothing must be 'auto', 'follow', 'steady' or None, got {smoothing!r}")
        self.smoothing = smoothing
        self.redetect_every = redetect_every
        self.max_drift = max_drift
        self.filter = OneEuroFilter(min_cutoff=min_cutoff, beta=beta, d_cutoff=1.0)
        self.steady = SteadyBox()
        self.stats = TrackerStats()
        self._landmarks: np.ndarray | None = None
        self._last: FaceCrop | None = None
        self._rect: geometry.FaceRect | None = None
        self._since_detect = 0

    @property
    def backend(self) -> FaceBackend:
        return self.cropper.backend

    @property
    def frames_without_face(self) -> int:
        return self.stats.frames_without_face

    def start_from(self, face: Face) -> None:
        """Begin tracking a face found elsewhere (e.g. one of several in the first frame)."""
        self._landmarks = None if face.landmarks is None else np.asarray(face.landmarks)
        self._since_detect = 0

    def _pick(self, faces: list[Face]) -> Face | None:
        if not faces:
            return None
        if self._rect is None:
            return select_faces(faces, self.face)[0]
        # stay with the face nearest to the last crop, if it is plausibly the same one
        def dist(f: Face) -> float:
            return float(np.linalg.norm(_face_centre(f) - self._rect.center))

        near = min(faces, key=dist)
        if dist(near) > 0.5 * self._rect.size and self.face == "largest":
            return select_faces(faces, "largest")[0]
        return near

    def _track(self, frame: np.ndarray) -> np.ndarray | None:
        if self._landmarks is None:
            return None
        guess = Face(box=landmarks_box(self._landmarks), score=1.0, landmarks=self._landmarks)
        return self.backend.landmarks(frame, guess)

    def _detect(self, frame: np.ndarray) -> Face | None:
        self.stats.detections += 1
        self._since_detect = 0
        # numbering faces needs all of them; later detections look for the one we follow
        thorough = self._rect is None and self.face != "largest"
        return self._pick(self.cropper.faces(frame, thorough=thorough))

    def update(self, frame_rgb: np.ndarray) -> FaceCrop | None:
        frame = as_rgb(frame_rgb)
        self.stats.frames += 1
        self._since_detect += 1
        lm = self._track(frame)
        if lm is not None and self.redetect_every and self._since_detect >= self.redetect_every:
            found = self._detect(frame)
            if found is not None and drift(lm, found) > self.max_drift:
                lm = found.landmarks
                self.stats.reacquired += 1
        if lm is None:
            found = self._detect(frame)
            if found is not None:
                lm = found.landmarks
                if self._rect is not None:
                    self.stats.reacquired += 1
        if lm is None:
            self.stats.frames_without_face += 1
            self._landmarks = None
            if self._last is None:
                return None
            held = make_crop(frame, self._rect, self.framing, None, held=True)
            return replace(held, landmarks=self._last.landmarks, eye_ratio=self._last.eye_ratio,
                           lip_ratio=self._last.lip_ratio)
        self._landmarks = np.asarray(lm)
        rect = self._smooth(geometry.face_rect(lm, self.framing.scale, self.framing.vx_ratio,
                                               self.framing.vy_ratio))
        self._rect = rect
        box = landmarks_box(lm)
        self._last = make_crop(frame, rect, self.framing, lm, Face(box=box, score=1.0))
        return self._last

    def _smooth(self, rect: geometry.FaceRect) -> geometry.FaceRect:
        x = np.array([rect.center[0], rect.center[1], rect.size, rect.angle])
        if self.smoothing == "steady":
            held = self.steady.value
            if held is not None and (np.linalg.norm(x[:2] - held[:2]) > 0.5 * held[2]
                                     or abs(np.log(x[2] / held[2])) > 0.5):
                self.steady.reset()
            y = self.steady(x, self.dt)
        elif self.smoothing == "follow":
            prev = self.filter.value
            if prev is not None and (np.linalg.norm(x[:2] - prev[:2]) > 0.25 * prev[2]
                                     or abs(np.log(x[2] / prev[2])) > 0.3):
                self.filter.reset()  # a jump (another face, a cut): start afresh rather than glide
            s = max(float(prev[2]) if prev is not None else rect.size, 1.0)
            y = self.filter(x, self.dt, scale=np.array([s, s, s, 1.0]))
        else:
            return rect
        return geometry.FaceRect(y[:2], float(y[2]), float(y[3]))
