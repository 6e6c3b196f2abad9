"""Source preparation: a photo's faces cropped and prepared once (F and M), or pass 1 over a source video
(per frame: its crop matrix, motion and ratios, in a ``SourceVideoMotion``)."""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from ..animator import Animator, PreparedSource
from ..config import ANIMAL_PHOTO_ONLY
from ..errors import InputError
from ..motion.compose import Motion
from ..motion.video import SourceVideoMotion
from .frames import input_name, open_frames, resize_256, resize_to_limit, shrink_scale
from .stage import Stage, StageContext


@dataclass
class SourceFace:
    crop: "FaceCrop | None"  # noqa: F821 - liveportrait.face.cropper
    prepared: PreparedSource
    paste: Callable[[np.ndarray, np.ndarray], np.ndarray] | None


# the options a photo's preparation depends on (crop, F and M, the ratios, the paste-back mask)
PREPARE_FIELDS = ("crop", "face", "source_scale", "source_vx", "source_vy", "paste_back", "motion", "animal")


class SourceCache:
    """The last few prepared photos, by content and preparation options: a server or batch worker that
    animates one photo with many drivings crops it and runs F and M on it once."""

    def __init__(self, size: int = 4):
        self.size = size
        self._items: OrderedDict[tuple, list[SourceFace]] = OrderedDict()
        self.hits = 0

    @staticmethod
    def key(image: np.ndarray, config, box_scale=(1.0, 1.0)) -> tuple:
        digest = hashlib.sha256(np.ascontiguousarray(image).tobytes()).hexdigest()
        return (digest, image.shape, tuple(box_scale), *(repr(getattr(config, f)) for f in PREPARE_FIELDS))

    def get(self, key: tuple) -> list[SourceFace] | None:
        faces = self._items.get(key)
        if faces is not None:
            self._items.move_to_end(key)
            self.hits += 1
        return faces

    def put(self, key: tuple, faces: list[SourceFace]) -> None:
        self._items[key] = faces
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


class SourceStage(Stage):
    """Prepares the source: the faces of a photo, or the motion of every frame of a video."""

    def __init__(self, context: StageContext, cache: SourceCache | None = None):
        super().__init__(context)
        self.cache = cache  # photos prepared by earlier jobs of the same pipeline, or None

    def crops(self, image: np.ndarray, box_scale=(1.0, 1.0)) -> list:
        """FaceCrops of the source picture (None for --crop none). ``box_scale``: from the original picture's
        pixels, in which a crop box is given, to ``image``'s (``frames.shrink_scale``)."""
        cfg = self.config
        if cfg.crop == "none":
            return [None]
        if cfg.crop != "auto":
            box = scaled_box(cfg.crop, box_scale)
            return [self.cropper.crop_from_box(image, box, find_face=not cfg.animal)]
        if cfg.animal:
            from ..face.animal import crop_animal

            return [crop_animal(image, self.context.faces.animal_finder, cfg.source_scale, cfg.source_vx,
                                cfg.source_vy)]
        return self.cropper.crop_image(image, cfg.face, cfg.source_scale, cfg.source_vx, cfg.source_vy)

    def _ratios(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(eye (2,), lip (1,)) ratios of the largest face of an uncropped picture; (None, None) without a face."""
        try:
            return self.cropper.ratios(image)
        except InputError:
            return None, None

    def prepared(self, image: np.ndarray, box_scale=(1.0, 1.0)) -> list[SourceFace]:
        """``prepare_image(image, box_scale)``, from the cache when this stage has one and holds it."""
        if self.cache is None:
            return self.prepare_image(image, box_scale)
        key = SourceCache.key(image, self.config, box_scale)
        faces = self.cache.get(key)
        if faces is None:
            faces = self.prepare_image(image, box_scale)
            self.cache.put(key, faces)
        return faces

    def prepare_image(self, image: np.ndarray, box_scale=(1.0, 1.0)) -> list[SourceFace]:
        """Each face of a photo cropped (``crops``), F and M run on it, its ratios and paste-back mask."""
        from ..face.mask import PasteBack

        faces = []
        for fc in self.crops(image, box_scale):
            if fc is None:
                eye, lip = (None, None) if self.config.animal else self._ratios(image)  # no human mesh on a pet
                prepared = self.animator.prepare_source(resize_256(image), eye, lip, self.config.motion)
                faces.append(SourceFace(None, prepared, None))
                continue
            prepared = self.animator.prepare_source(fc.crop_256, fc.eye_ratio, fc.lip_ratio, self.config.motion)
            paste = PasteBack(image.shape, fc.M_c2o) if self.config.paste_back else None
            faces.append(SourceFace(fc, prepared, paste))
        return faces

    def video_motion(self, path, limit: int | None) -> SourceVideoMotion:
        """Pass 1 over a source video for one face: per frame, its crop matrix, motion and ratios."""
        if self.config.face == "all":
            raise InputError("this step follows one face of a source video; choose it with --face largest or "
                             "--face N")
        return self.video_motions(path, limit)[0]

    def video_motions(self, path, limit: int | None) -> list[SourceVideoMotion]:
        """Pass 1 over a source video (a path or a ``MediaInput``): one record per followed face (every
        face of the first frame for ``--face all``), each with per-frame crop matrices, motion and
        ratios. One decode; the motion extractor runs every 16 frames, so memory does not grow."""
        cfg = self.config
        if cfg.animal:
            raise InputError(ANIMAL_PHOTO_ONLY)
        tracks: list[_SourceTrack] | None = None
        with open_frames(path) as (info, reader):
            total = min(limit, info.frame_count) if limit and info.frame_count else (limit or info.frame_count)
            for i, frame in enumerate(self.progress(reader, total, "source motion")):
                if limit is not None and i >= limit:
                    break
                original_shape, frame = frame.shape, resize_to_limit(frame, cfg.source_video_max_dim)
                if tracks is None:
                    tracks = [_SourceTrack(t, self.animator) for t in self._source_trackers(frame, float(info.fps))]
                for track in tracks:
                    ratios = None
                    if cfg.crop == "none":
                        # already framed, but its landmarks are measured still, as the reference does (v2v-notes
                        # section 2), for source-video eye retargeting and lip normalisation
                        fc, ratios = None, self._ratios(frame)
                    elif cfg.crop != "auto":
                        fc = self.cropper.crop_from_box(frame, scaled_box(cfg.crop, shrink_scale(original_shape,
                                                                                                  frame)))
                    else:
                        fc = track.tracker.update(frame)
                    track.add(fc, frame, ratios)
        if tracks is None:
            raise InputError(f"{input_name(path)}: video has no frames")
        if cfg.crop == "auto" and all(m is None for m in tracks[0].m_o2c):
            from ..errors import NoFaceError

            raise NoFaceError(f"{input_name(path)}: no human face was found in the source video; "
                              "give its position with --crop-box x0,y0,x1,y1")
        return [track.record() for track in tracks]

    def _source_trackers(self, first_frame: np.ndarray, fps: float) -> list:
        """The face trackers of a source video: one, or one per face of the first frame for ``all``."""
        from ..face.cropper import SOURCE, VideoFaceTracker

        cfg = self.config
        if cfg.crop != "auto":
            return [None]
        framing = replace(SOURCE, scale=cfg.source_scale, vx_ratio=cfg.source_vx, vy_ratio=cfg.source_vy)
        if cfg.face != "all":
            return [VideoFaceTracker(self.cropper, preset=framing, face=cfg.face, fps=fps)]
        faces = self.cropper.faces(first_frame, thorough=True)
        if not faces:  # none yet: follow the first face that shows up
            return [VideoFaceTracker(self.cropper, preset=framing, face="largest", fps=fps)]
        trackers = []
        for i, face in enumerate(faces):
            tracker = VideoFaceTracker(self.cropper, preset=framing, face=i, fps=fps)
            tracker.start_from(face)  # each follows its own face from where it was found
            trackers.append(tracker)
        return trackers


class _SourceTrack:
    """One followed face of a source video in pass 1: crop matrices and ratios per frame, motion
    extracted 16 crops at a time."""

    BATCH = 16

    def __init__(self, tracker, animator: Animator):
        self.tracker, self.animator = tracker, animator
        self.m_o2c: list = []
        self.eyes: list[np.ndarray] = []
        self.lips: list[np.ndarray] = []
        self._pending: list[np.ndarray] = []
        self._motions: list = []

    def add(self, fc, frame: np.ndarray, ratios: tuple | None = None) -> None:
        """``ratios``: (eye, lip) measured on an uncropped frame (``fc`` None), either None where no face was found."""
        self.m_o2c.append(None if fc is None else fc.M_o2c)
        self._pending.append(resize_256(frame) if fc is None else fc.crop_256)
        eye, lip = ratios if ratios is not None else (None, None) if fc is None else (fc.eye_ratio, fc.lip_ratio)
        self.eyes.append(np.full(2, np.nan, np.float32) if eye is None else np.asarray(eye, np.float32).reshape(2))
        self.lips.append(np.float32([np.nan]) if lip is None else np.asarray(lip, np.float32).reshape(1))
        if len(self._pending) == self.BATCH:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._motions.append(self.animator.extract_motion(np.stack(self._pending)))
            self._pending = []

    def record(self) -> SourceVideoMotion:
        self._flush()
        ms = self._motions
        return SourceVideoMotion(
            m_o2c=self.m_o2c, kp=torch.cat([m.kp for m in ms]), x_s=torch.cat([m.x for m in ms]),
            angles=torch.cat([m.angles for m in ms]),
            motion=Motion(*(torch.cat([getattr(m.motion, k) for m in ms]) for k in ("R", "exp", "t", "scale"))),
            eye=np.stack(self.eyes).astype(np.float32), lip=np.stack(self.lips).astype(np.float32))


def scaled_box(box: str, scale) -> np.ndarray:
    """A crop box ("x0,y0,x1,y1" in the original picture's pixels) in those of a copy scaled by ``scale`` (x, y)."""
    from ..face.geometry import parse_box

    sx, sy = scale
    return parse_box(box) * np.array([sx, sy, sx, sy])
