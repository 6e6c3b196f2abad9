"""Face detection and landmarks behind one small interface.

The rest of ``liveportrait.face`` only needs two things from a backend: boxes for every face in a
picture, and a dense landmark set for one face.  ``FaceBackend`` is that contract; the shipped
implementation, ``MediaPipeBackend``, uses the models that the mediapipe 0.10.21 wheel carries
(BlazeFace short- and full-range detectors, the 478-point attention face mesh), so nothing is
downloaded at run time.

Coordinates are pixels with OpenCV's convention (the centre of the top-left pixel is (0, 0)).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.machinery
import importlib.util
import math
import os
import sys
import types
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol, runtime_checkable

import cv2
import numpy as np

from ..errors import InputError, LivePortraitError

MEDIAPIPE_VERSION = "0.10.21"
INSTALL_HINT = (
    f'pip install --no-deps mediapipe=={MEDIAPIPE_VERSION} "protobuf>=4.25.3,<5"'
)

# mesh points the mediapipe graphs use to orient a face ROI (outer eye corners)
_ROI_EYE_RIGHT, _ROI_EYE_LEFT = 33, 263
# the landmark model's input covers 1.5x the face box, as in mediapipe's own graphs
ROI_SCALE = 1.5
# pictures are shrunk to this longer side before detection (the detectors look at 128/192 pixels)
DETECT_MAX_SIDE = 640


@dataclass
class Face:
    """One face in one picture.

    ``box`` is (x0, y0, x1, y1) in pixels.  ``keypoints`` are the detector's six points (eyes, nose
    tip, mouth centre, ear tragions) when a detector produced the face; ``landmarks`` the dense
    (N, 3) mesh once computed.  ``presence`` is the landmark model's face logit (> 0: a face).
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray | None = None
    landmarks: np.ndarray | None = None
    presence: float | None = None
    source: str = ""

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, 0.0) * max(y1 - y0, 0.0))

    @property
    def center(self) -> np.ndarray:
        return np.array([(self.box[0] + self.box[2]) / 2, (self.box[1] + self.box[3]) / 2])


@runtime_checkable
class FaceBackend(Protocol):
    """What the cropper needs from a detector + landmark model."""

    #: number of points ``landmarks`` returns; the cropper picks its anchor points by this
    num_landmarks: int

    def detect(self, image_rgb: np.ndarray, thorough: bool = False) -> list[Face]:
        """Every human face in the picture, best first, without landmarks.

        ``thorough`` asks for small faces too (group photos), at a higher cost.
        """
        ...

    def landmarks(self, image_rgb: np.ndarray, face: Face) -> np.ndarray | None:
        """Dense landmarks (N, 2 or 3) for ``face``, or None when the model sees no face there.

        The region is taken from ``face.landmarks`` when present (tracking from the previous
        frame), else from the detector keypoints, else from the box.
        """
        ...


# --------------------------------------------------------------------------------------------
# pure helpers (also used by other backends and the tracker)


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


def landmarks_box(pts: np.ndarray) -> np.ndarray:
    """Axis-aligned (x0, y0, x1, y1) box around landmarks."""
    p = np.asarray(pts)[:, :2]
    return np.concatenate([p.min(0), p.max(0)]).astype(np.float64)


@dataclass(frozen=True)
class Roi:
    """A rotated square region in pixels: the landmark model's field of view."""

    center: tuple[float, float]
    size: float
    rotation: float  # radians, clockwise in image coordinates (y down)


def roi_from_points(box: np.ndarray, eye_a: np.ndarray, eye_b: np.ndarray,
                    scale: float = ROI_SCALE) -> Roi:
    """Square ROI around ``box``, turned so that the eye line ``eye_a -> eye_b`` is horizontal.

    Mirrors mediapipe's DetectionsToRects + RectTransformation(scale 1.5, square_long), which the
    mesh model was trained with.
    """
    x0, y0, x1, y1 = (float(v) for v in box)
    d = np.asarray(eye_b, np.float64) - np.asarray(eye_a, np.float64)
    rotation = math.atan2(d[1], d[0])
    size = max(x1 - x0, y1 - y0) * scale
    return Roi(((x0 + x1) / 2, (y0 + y1) / 2), size, rotation)


def roi_for_face(face: Face) -> Roi:
    """The landmark ROI for a face: from its landmarks if tracked, else its detection."""
    if face.landmarks is not None and len(face.landmarks) > _ROI_EYE_LEFT:
        lm = face.landmarks
        return roi_from_points(landmarks_box(lm), lm[_ROI_EYE_RIGHT, :2], lm[_ROI_EYE_LEFT, :2])
    if face.keypoints is not None:
        return roi_from_points(face.box, face.keypoints[0], face.keypoints[1])
    return roi_from_points(face.box, (0.0, 0.0), (1.0, 0.0))


def box_overlap(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over the smaller box's area (1 when one box lies inside the other)."""
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    smaller = min((a[2] - a[0]) * (a[3] - a[1]), (b[2] - b[0]) * (b[3] - b[1]))
    return float(ix * iy / smaller) if smaller > 0 else 0.0


def merge_detections(faces: list[Face], iou_threshold: float = 0.3,
                     inside_threshold: float = 0.7) -> list[Face]:
    """Greedy suppression over faces from several detectors or tiles (earlier ones win).

    A face is dropped when it overlaps a kept one by IoU, or lies mostly inside it (a face cut by
    a tile border next to the whole face).
    """
    kept: list[Face] = []
    for f in faces:
        if all(box_iou(f.box, k.box) <= iou_threshold and box_overlap(f.box, k.box) <= inside_threshold
               for k in kept):
            kept.append(f)
    return kept


def detection_tiles(h: int, w: int, levels=(2, 4), min_side: int = 320) -> list[tuple[int, int, int, int]]:
    """Overlapping square tiles (x0, y0, x1, y1) for finding faces too small for one whole-picture pass.

    At level k the tile side is the longer side / k and tiles step by half a side, so every face
    smaller than half a tile lies wholly inside one of them.  Levels whose tiles would be smaller
    than ``min_side`` pixels are skipped.
    """
    out = []
    for k in levels:
        side = int(math.ceil(max(h, w) / k))
        if side < min_side or side >= max(h, w):
            continue
        step = side // 2
        ys = list(range(0, max(h - side, 0) + 1, step))
        xs = list(range(0, max(w - side, 0) + 1, step))
        if ys[-1] + side < h:
            ys.append(h - side)
        if xs[-1] + side < w:
            xs.append(w - side)
        out += [(x, y, min(x + side, w), min(y + side, h)) for y in ys for x in xs]
    return out


# --------------------------------------------------------------------------------------------
# mediapipe


@contextlib.contextmanager
def _quiet_stderr():
    """Silence the C++ start-up chatter (XNNPACK, absl) that mediapipe writes to fd 2.

    Used only around graph creation and each graph's first run; set LIVEPORTRAIT_FACE_VERBOSE=1
    to see it.
    """
    if os.environ.get("LIVEPORTRAIT_FACE_VERBOSE"):
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


_MEDIAPIPE: types.SimpleNamespace | None = None


def _import_mediapipe() -> types.SimpleNamespace:
    """Import the parts of mediapipe we use without running its package ``__init__``.

    ``import mediapipe`` imports every solution and the Tasks API, which pull matplotlib, jax,
    sounddevice and more.  The graphs we run need only the compiled framework and protobuf, so the
    three package modules on the way are registered as bare packages (unless mediapipe was already
    imported in full, which is then reused as is).
    """
    if not os.environ.get("LIVEPORTRAIT_FACE_VERBOSE"):
        # the C++ side logs warnings at any time, not only at set-up (inference_feedback_manager.cc once
        # reached a user's terminal mid-run); errors still show
        os.environ.setdefault("GLOG_minloglevel", "2")
    global _MEDIAPIPE
    if _MEDIAPIPE is not None:
        return _MEDIAPIPE
    loaded = sys.modules.get("mediapipe")
    if loaded is not None and getattr(loaded, "__path__", None):
        root = Path(list(loaded.__path__)[0])
    else:
        spec = importlib.util.find_spec("mediapipe")
        if spec is None or not spec.submodule_search_locations:
            raise LivePortraitError(
                f"face detection needs mediapipe {MEDIAPIPE_VERSION}, which is not installed: {INSTALL_HINT}"
            )
        root = Path(next(iter(spec.submodule_search_locations)))
    for name, sub in (("mediapipe", ""), ("mediapipe.python", "python"),
                      ("mediapipe.python.solutions", "python/solutions")):
        if name not in sys.modules:
            path = str(root / sub) if sub else str(root)
            mod = types.ModuleType(name)
            mod.__path__ = [path]
            mod.__spec__ = importlib.machinery.ModuleSpec(name, None, is_package=True)
            mod.__spec__.submodule_search_locations = [path]
            sys.modules[name] = mod
    try:
        solution_base = importlib.import_module("mediapipe.python.solution_base")
        # imported for their protobuf option extensions, which the graph configs below carry
        face_mesh = importlib.import_module("mediapipe.python.solutions.face_mesh")
        face_detection = importlib.import_module("mediapipe.python.solutions.face_detection")
        calculator_pb2 = importlib.import_module("mediapipe.framework.calculator_pb2")
        rect_pb2 = importlib.import_module("mediapipe.framework.formats.rect_pb2")
        vgc = importlib.import_module("mediapipe.python._framework_bindings.validated_graph_config")
    except ImportError as exc:  # protobuf missing or of the wrong major version, broken wheel
        raise LivePortraitError(
            f"mediapipe could not be loaded ({exc}); it needs protobuf<5 and numpy<2: {INSTALL_HINT}"
        ) from exc
    _MEDIAPIPE = types.SimpleNamespace(
        root=root, SolutionBase=solution_base.SolutionBase, face_mesh=face_mesh,
        face_detection=face_detection, calculator_pb2=calculator_pb2, rect_pb2=rect_pb2, vgc=vgc,
    )
    return _MEDIAPIPE


_LANDMARK_PREFIX = "facelandmarkcpu__"
_PRESENCE_STREAM = "facelandmarkcpu__face_presence_score"


def _landmark_graph(mp: types.SimpleNamespace):
    """The face-mesh model alone, fed with our own ROI, also returning its face-presence logit.

    The wheel only ships the combined detect+mesh graph; we expand it and keep the landmark
    subgraph's nodes, so the ROI (from a detection, or from the previous frame when tracking) is ours.
    """
    path = mp.root / "modules" / "face_landmark" / "face_landmark_front_cpu.binarypb"
    validated = mp.vgc.ValidatedGraphConfig()
    validated.initialize(binary_graph_path=str(path))
    full = mp.calculator_pb2.CalculatorGraphConfig()
    full.ParseFromString(validated.binary_config)
    rename = {"landmarks_loop_image": "image", "face_rect": "roi"}
    graph = mp.calculator_pb2.CalculatorGraphConfig()
    for node in full.node:
        if not node.name.startswith(_LANDMARK_PREFIX):
            continue
        new = graph.node.add()
        new.CopyFrom(node)
        for i, stream in enumerate(new.input_stream):
            tag, sep, name = stream.rpartition(":")
            if name in rename:
                new.input_stream[i] = f"{tag}{sep}{rename[name]}"
    produced = {s.rpartition(":")[2] for n in graph.node for s in n.output_stream}
    if "face_landmarks" not in produced or _PRESENCE_STREAM not in produced:
        raise LivePortraitError(
            f"unexpected mediapipe graph layout; this code was written for mediapipe {MEDIAPIPE_VERSION}"
        )
    graph.input_stream.extend(["image", "roi"])
    graph.input_side_packet.append("with_attention")
    graph.output_stream.extend(["face_landmarks", _PRESENCE_STREAM])
    return mp.SolutionBase(
        graph_config=graph,
        side_inputs={"with_attention": True},
        outputs=["face_landmarks", _PRESENCE_STREAM],
        # never gate: we read the presence logit ourselves
        calculator_params={f"{_LANDMARK_PREFIX}ThresholdingCalculator.threshold": -1e9},
    )


def _shrink(image: np.ndarray) -> np.ndarray:
    """A contiguous copy no longer than DETECT_MAX_SIDE: the detectors see 128 or 192 pixels."""
    h, w = image.shape[:2]
    if max(h, w) <= DETECT_MAX_SIDE:
        return np.ascontiguousarray(image)
    f = DETECT_MAX_SIDE / max(h, w)
    return cv2.resize(image, (max(round(w * f), 1), max(round(h * f), 1)), interpolation=cv2.INTER_AREA)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise InputError("expected an RGB picture as a HxWx3 uint8 array")
    return np.ascontiguousarray(image)


class MediaPipeBackend:
    """BlazeFace detectors + the 478-point attention mesh from the mediapipe 0.10.21 wheel.

    Detection runs both detectors and merges them: the full-range model finds small and distant
    faces, the short-range one is surer of close-ups.  A face is accepted when the full-range score
    reaches ``full_range_min`` or the short-range score reaches ``short_range_min``; the short-range
    bar is high because that model also fires on animal faces (a dog scores about 0.7), which the
    full-range model rejects.  The mesh then has to agree: its face logit must reach
    ``accept_presence`` (real faces in the examples score 15-36, a hand that the full-range model
    took for a face 9).  Models are loaded on first use and reused.
    """

    num_landmarks = 478

    def __init__(self, max_faces: int = 0, full_range_min: float = 0.5,
                 short_range_min: float = 0.85, presence_min: float = 0.0,
                 accept_presence: float = 12.0):
        self.max_faces = max_faces
        self.full_range_min = full_range_min
        self.short_range_min = short_range_min
        self.presence_min = presence_min  # mesh face logit to keep tracking
        self.accept_presence = accept_presence  # mesh face logit to accept a new detection
        self._mp = None
        self._detectors: dict[int, object] = {}
        self._mesh = None
        self._started: set[str] = set()

    # lazy model loading -----------------------------------------------------------------
    def _module(self):
        if self._mp is None:
            self._mp = _import_mediapipe()
        return self._mp

    def _detector(self, model: int):
        if model not in self._detectors:
            mp = self._module()
            floor = min(self.full_range_min, self.short_range_min)
            with _quiet_stderr():
                self._detectors[model] = mp.face_detection.FaceDetection(
                    min_detection_confidence=floor, model_selection=model)
        return self._detectors[model]

    def _landmarker(self):
        if self._mesh is None:
            with _quiet_stderr():
                self._mesh = _landmark_graph(self._module())
        return self._mesh

    def _process(self, key: str, graph, inputs):
        """Run a graph; its first run is quiet (that is when the C++ side logs its set-up)."""
        if key in self._started:
            return graph.process(inputs)
        with _quiet_stderr():
            out = graph.process(inputs)
        self._started.add(key)
        return out

    def warm_up(self) -> None:
        """Load every model now (the first call otherwise pays for it)."""
        blank = np.zeros((256, 256, 3), np.uint8)
        self._run_detector(blank, 0, 1.0)
        self._run_detector(blank, 1, 1.0)
        self.landmarks(blank, Face(np.array([64.0, 64.0, 192.0, 192.0]), 1.0))

    # detection --------------------------------------------------------------------------
    def _run_detector(self, image: np.ndarray, model: int, min_score: float,
                      frame: tuple[int, int, int, int] | None = None) -> list[Face]:
        """Faces from one detector.

        ``frame`` (x0, y0, w, h) is the region of the original that ``image`` shows (a tile,
        possibly shrunk); the faces are returned in the original's pixels.
        """
        x0, y0, w, h = frame if frame is not None else (0, 0, image.shape[1], image.shape[0])
        image = _shrink(image)
        result = self._process(f"detector{model}", self._detector(model), image)
        faces = []
        for det in result.detections or []:
            score = float(det.score[0])
            if score < min_score:
                continue
            bb = det.location_data.relative_bounding_box
            box = np.array([bb.xmin * w + x0, bb.ymin * h + y0, (bb.xmin + bb.width) * w + x0,
                            (bb.ymin + bb.height) * h + y0]) - 0.5
            kps = np.array([[k.x * w + x0, k.y * h + y0]
                            for k in det.location_data.relative_keypoints]) - 0.5
            faces.append(Face(box=box, score=score, keypoints=kps,
                              source="full" if model == 1 else "short"))
        return faces

    def detect(self, image_rgb: np.ndarray, thorough: bool = False) -> list[Face]:
        """Every accepted face, highest score first (full-range faces win overlaps).

        One pass of each detector over the whole picture finds faces down to about a tenth of
        its longer side.  ``thorough`` adds full-range passes over overlapping tiles (halves and,
        in big pictures, quarters of the longer side), which finds faces down to a few percent of
        it, for group photos; it costs about 10 ms per tile.
        """
        image = _as_rgb(image_rgb)
        small = _shrink(image)
        frame = (0, 0, image.shape[1], image.shape[0])
        faces = self._run_detector(small, 1, self.full_range_min, frame)
        faces += self._run_detector(small, 0, self.short_range_min, frame)
        faces.sort(key=lambda f: -f.score)
        if thorough:
            tiled = []
            for x0, y0, x1, y1 in detection_tiles(*image.shape[:2]):
                tiled += self._run_detector(image[y0:y1, x0:x1], 1, self.full_range_min,
                                            (x0, y0, x1 - x0, y1 - y0))
            faces += sorted(tiled, key=lambda f: -f.score)
        faces = merge_detections(faces)
        if self.max_faces:
            faces = faces[: self.max_faces]
        return faces

    # landmarks --------------------------------------------------------------------------
    def landmarks(self, image_rgb: np.ndarray, face: Face) -> np.ndarray | None:
        """(478, 3) pixel landmarks (z in pixels too, relative depth), or None if no face there.

        For a fresh detection (no ``face.landmarks``) the mesh runs twice, the second time on the
        region its first landmarks give: that is the region it sees when tracking, so pictures
        and video frames are measured alike (eye ratios move by up to 0.05 with the region
        otherwise).  A fresh face must also pass ``accept_presence``, which turns away hands and
        other face-like things that a detector let through.
        """
        out = self.landmarks_with_presence(image_rgb, face)
        return None if out is None else out[0]

    def landmarks_with_presence(self, image_rgb: np.ndarray, face: Face):
        """``(landmarks, presence logit)`` as ``landmarks`` describes, or None."""
        image = _as_rgb(image_rgb)
        if face.landmarks is not None:
            return self._mesh_once(image, face, self.presence_min)
        first = self._mesh_once(image, face, self.accept_presence)
        if first is None:
            return None
        return self._mesh_once(image, replace(face, landmarks=first[0]), self.accept_presence)

    def _mesh_once(self, image: np.ndarray, face: Face, min_presence: float):
        h, w = image.shape[:2]
        roi = roi_for_face(face)
        if not (roi.size > 2 and math.isfinite(roi.size)):
            return None
        mp = self._module()
        # hand the graph only the window the (possibly rotated) ROI can reach: the cost then does
        # not grow with the picture
        reach = roi.size * 0.75
        x0 = min(max(int(math.floor(roi.center[0] - reach)), 0), w)
        y0 = min(max(int(math.floor(roi.center[1] - reach)), 0), h)
        x1 = max(min(int(math.ceil(roi.center[0] + reach)) + 1, w), x0)
        y1 = max(min(int(math.ceil(roi.center[1] + reach)) + 1, h), y0)
        if x1 - x0 < 2 or y1 - y0 < 2:
            return None
        window = np.ascontiguousarray(image[y0:y1, x0:x1])
        ww, wh = x1 - x0, y1 - y0
        rect = mp.rect_pb2.NormalizedRect(
            x_center=(roi.center[0] - x0 + 0.5) / ww, y_center=(roi.center[1] - y0 + 0.5) / wh,
            width=roi.size / ww, height=roi.size / wh, rotation=roi.rotation)
        out = self._process("mesh", self._landmarker(), {"image": window, "roi": rect})
        presence = getattr(out, _PRESENCE_STREAM)
        if out.face_landmarks is None or presence is None or presence < min_presence:
            return None
        lm = np.array([(p.x, p.y, p.z) for p in out.face_landmarks.landmark], np.float32)
        lm *= np.float32(ww), np.float32(wh), np.float32(ww)
        lm[:, 0] += np.float32(x0 - 0.5)
        lm[:, 1] += np.float32(y0 - 0.5)
        return lm, float(presence)
