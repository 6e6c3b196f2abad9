"""The orchestration: read a source and a driving, animate, paste back, write with sound.

Two passes keep memory flat however long the videos are. Pass 1 turns the driving (and a source
video) into motion, a few hundred bytes a frame, which is what smoothing, the choice of the neutral
reference frame and the motion template need. Pass 2 decodes again and streams: one frame in, one
frame out, written to a temporary file that is renamed only when everything succeeded.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass, field, replace
from fractions import Fraction
from pathlib import Path
from typing import Callable, Iterator, Sequence, Union

import cv2
import numpy as np
import torch

from .animator import Animator, PreparedSource, to_uint8
from .config import (  # noqa: F401 - AnimateConfig re-exported
    SOURCE_DIVISION,
    SOURCE_VIDEO_EYE_FALLBACK_TARGET,
    AnimateConfig,
    FaceChoice,
)
from .errors import InputError
from .motion.compose import (
    Motion,
    compose_video_source,
    finish_keypoints,
    smooth_motion,
)
from .plan import STILL_FPS, JobPlan, MediaInput, default_output, output_kind, plan_job  # noqa: F401
from .provenance import Stamp

log = logging.getLogger(__name__)



@dataclass
class DrivingMotion:
    """Pass 1 of a driving input: its motion, and where it came from."""

    template: "MotionTemplate"  # noqa: F821 - liveportrait.media.template
    is_video: bool
    path: Path | None = None
    has_audio: bool = False
    source: MediaInput | None = None  # what it was extracted from (for the comparison's driving panel)

    @property
    def motion(self) -> Motion:
        t = self.template
        return Motion(R=torch.from_numpy(t.R), exp=torch.from_numpy(t.exp), t=torch.from_numpy(t.t),
                      scale=torch.from_numpy(t.scale))

    def __len__(self) -> int:
        return self.template.n_frames


@dataclass
class SourceFace:
    crop: "FaceCrop | None"  # noqa: F821 - liveportrait.face.cropper
    prepared: PreparedSource
    paste: Callable[[np.ndarray, np.ndarray], np.ndarray] | None


@dataclass
class AnimationResult:
    output: Path
    frames: int
    fps: Fraction
    faces: int
    has_audio: bool
    template: Path | None = None
    comparison: Path | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    still: bool = False  # one picture, not frames


# ---------------------------------------------------------------------------------------------------
# small pure helpers


def pick_reference_frame(template, choice: Union[int, str]) -> int:
    """Index of the driving frame taken as the neutral expression.

    ``auto``: eyes open and mouth closed — among the frames whose eyes are at least 85% as open as the
    most open ones (90th percentile), the one with the smallest lip ratio. Without ratios, the frame
    whose expression is smallest.
    """
    n = template.n_frames
    if choice != "auto":
        idx = int(choice)
        if not -n <= idx < n:
            raise InputError(f"--reference-frame {idx} is outside the driving's {n} frames")
        return idx % n
    if template.eye_ratio is not None and template.lip_ratio is not None:
        eyes = np.nan_to_num(template.eye_ratio.mean(axis=1), nan=0.0)
        lips = np.nan_to_num(template.lip_ratio[:, 0], nan=np.inf)
        open_enough = eyes >= 0.85 * np.percentile(eyes, 90)
        candidates = np.flatnonzero(open_enough) if open_enough.any() else np.arange(n)
        return int(candidates[np.argmin(lips[candidates])])
    return int(np.argmin(np.linalg.norm(template.exp.reshape(n, -1), axis=1)))


def limit_size(image: np.ndarray, max_dim: int) -> np.ndarray:
    h, w = image.shape[:2]
    if max_dim and max(h, w) > max_dim:
        s = max_dim / max(h, w)
        image = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return image


def resize_to_limit(image: np.ndarray, max_dim: int, division: int = SOURCE_DIVISION) -> np.ndarray:
    """A source-video frame limited as the reference does (spec 4.2 ``resize_to_limit``): a longer side over
    ``max_dim`` (0: no limit) shrunk to it with OpenCV's default bilinear resize, the other side truncated
    with int(); then the bottom and right edges cut to multiples of ``division`` (not if a side would be 0)."""
    h, w = image.shape[:2]
    if max_dim > 0 and max(h, w) > max_dim:
        size = (max(1, int(w * (max_dim / h))), max_dim) if h > w else (max_dim, max(1, int(h * (max_dim / w))))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    h, w = image.shape[:2]
    division = max(division, 1)
    new_h, new_w = h - h % division, w - w % division
    if new_h == 0 or new_w == 0 or (new_h, new_w) == (h, w):
        return image
    return np.ascontiguousarray(image[:new_h, :new_w])


def resize_256(image: np.ndarray) -> np.ndarray:
    return image if image.shape[:2] == (256, 256) else cv2.resize(image, (256, 256), interpolation=cv2.INTER_LINEAR)


def side_by_side(panels: Sequence[np.ndarray], height: int = 512) -> np.ndarray:
    """Panels scaled to one height (aspect kept), left to right; widths made even for H.264."""
    out = []
    for p in panels:
        w = max(2, int(round(p.shape[1] * height / p.shape[0])) // 2 * 2)
        interpolation = cv2.INTER_AREA if p.shape[0] > height else cv2.INTER_LINEAR
        out.append(cv2.resize(p, (w, height), interpolation=interpolation))
    return np.concatenate(out, axis=1)


@dataclass(frozen=True)
class FramesInfo:
    """What a frame stream says about itself: rate, frame count (estimate or None), display size."""

    fps: Fraction
    frame_count: int | None
    width: int
    height: int


def _name(video) -> str:
    return str(video.path or video.name) if isinstance(video, MediaInput) else str(video)


@contextlib.contextmanager
def open_frames(video) -> Iterator[tuple[FramesInfo, Iterator[np.ndarray]]]:
    """(info, frames) of a video: a file (decoded lazily) or a ``MediaInput`` with a path or frames in memory."""
    path = video.path if isinstance(video, MediaInput) else Path(video)
    if path is not None:
        from .media import VideoReader

        with VideoReader(path) as reader:
            i = reader.info
            yield FramesInfo(i.fps, i.frame_count, i.width, i.height), iter(reader)
        return
    frames = iter(video.sequence) if isinstance(video.sequence, (list, tuple)) else video.sequence
    first = next(frames, None)
    if first is None:
        raise InputError("the video frames are empty")
    h, w = first.shape[:2]
    yield FramesInfo(video.fps or STILL_FPS, video.frames, w, h), itertools.chain([first], frames)


# ---------------------------------------------------------------------------------------------------
# the pipeline


class Pipeline:
    """Prepare a source once, animate a stream of driving motion. Networks and face models load once."""

    def __init__(self, networks, config: AnimateConfig | None = None, cropper=None,
                 progress: Callable[[Iterator, int | None, str], Iterator] | None = None):
        self.config = config or AnimateConfig()
        if self.config.backend != "eager" and getattr(networks, "backend", None) != self.config.backend:
            from .speed import accelerate

            networks = accelerate(networks, self.config.backend, device=self.config.device)
        self.animator = Animator(networks, self.config.device, self.config.precision)
        self._cropper = cropper
        self._progress = progress or (lambda it, total, desc: it)

    @property
    def cropper(self):
        if self._cropper is None:
            from .face.cropper import Cropper

            self._cropper = Cropper()
        return self._cropper

    # -- driving: pass 1 ------------------------------------------------------------------------------

    def load_driving(self, driving) -> DrivingMotion:
        """Pass 1 of a driving (a path or a planned ``MediaInput``): its motion, extracted once."""
        from .plan import as_input

        d = driving if isinstance(driving, MediaInput) else as_input(driving, "driving")
        if d.kind == "template":
            return DrivingMotion(d.template, is_video=d.is_video, path=d.path, source=d)
        if d.kind == "video":
            return DrivingMotion(self.video_motion(d), is_video=True, path=d.path, has_audio=d.has_audio, source=d)
        if d.image is not None:
            image = d.image
        else:
            from .media import read_image

            image = read_image(d.path)
        return DrivingMotion(self.image_motion(image), is_video=False, path=d.path, source=d)

    def _driving_crop_256(self, frame: np.ndarray, tracker) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """The network input for a driving frame, and its eye and lip ratios when a face is found."""
        if tracker is None:
            try:
                eye, lip = self.cropper.ratios(frame)
            except InputError:
                eye = lip = None
            return resize_256(frame), eye, lip
        fc = tracker.update(frame)
        if fc is None:
            return resize_256(frame), None, None
        return fc.crop_256, fc.eye_ratio, fc.lip_ratio

    def _wants_driving_crop(self, width: int, height: int) -> bool:
        mode = self.config.crop_driving
        if mode not in ("auto", "always", "never"):
            raise InputError("--crop-driving must be auto, always or never")
        return mode == "always" or (mode == "auto" and width != height)

    def video_motion(self, video) -> "MotionTemplate":  # noqa: F821
        """Motion of every frame of a video (a path or a ``MediaInput``), streamed (``M`` in batches,
        frames dropped at once)."""
        from .face.cropper import VideoFaceTracker
        from .media import TemplateBuilder

        with open_frames(video) as (info, reader):
            tracker = (VideoFaceTracker(self.cropper, preset="driving", fps=float(info.fps))
                       if self._wants_driving_crop(info.width, info.height) else None)
            name = video.name if isinstance(video, MediaInput) else Path(video).name
            builder = TemplateBuilder(info.fps, meta={"source": name})
            batch: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
            for frame in self._progress(reader, info.frame_count, "driving motion"):
                batch.append(self._driving_crop_256(frame, tracker))
                if len(batch) == max(1, self.config.batch_size * 4):
                    self._append_motion(builder, batch)
                    batch = []
            if batch:
                self._append_motion(builder, batch)
        if len(builder) == 0:
            raise InputError(f"{name}: video has no frames")
        return builder.build()

    def image_motion(self, image: np.ndarray) -> "MotionTemplate":  # noqa: F821
        from .media import TemplateBuilder

        h, w = image.shape[:2]
        tracker = None
        if self._wants_driving_crop(w, h):
            from .face.cropper import DRIVING

            fc = self.cropper.crop_image(image, "largest", DRIVING.scale, DRIVING.vx_ratio, DRIVING.vy_ratio,
                                         rotate=False, area=False)[0]
            item = (fc.crop_256, fc.eye_ratio, fc.lip_ratio)
        else:
            item = self._driving_crop_256(image, tracker)
        builder = TemplateBuilder(25)
        self._append_motion(builder, [item])
        return builder.build()

    def _append_motion(self, builder, batch) -> None:
        info = self.animator.extract_motion(np.stack([b[0] for b in batch]))
        nan2 = np.full(2, np.nan, np.float32)
        for j, (_, eye, lip) in enumerate(batch):
            builder.append(R=info.motion.R[j].cpu().numpy(), exp=info.motion.exp[j].cpu().numpy(),
                           t=info.motion.t[j].cpu().numpy(), scale=info.motion.scale[j].cpu().numpy(),
                           kp=info.kp[j].cpu().numpy(), x_s=info.x[j].cpu().numpy(),
                           eye_ratio=nan2 if eye is None else np.asarray(eye, np.float32).reshape(2),
                           lip_ratio=np.float32([np.nan]) if lip is None else np.asarray(lip, np.float32).reshape(1))

    # -- source image ----------------------------------------------------------------------------------

    def source_crops(self, image: np.ndarray) -> list:
        """FaceCrops of the source picture (None for --crop none)."""
        cfg = self.config
        if cfg.crop == "none":
            return [None]
        if cfg.crop != "auto":
            return [self.cropper.crop_from_box(image, cfg.crop)]
        return self.cropper.crop_image(image, cfg.face, cfg.source_scale, cfg.source_vx, cfg.source_vy)

    def _ratios(self, image: np.ndarray) -> tuple[np.ndarray | None, np.ndarray | None]:
        """(eye (2,), lip (1,)) ratios of the largest face of an uncropped picture; (None, None) without a face."""
        try:
            return self.cropper.ratios(image)
        except InputError:
            return None, None

    def prepare_image(self, image: np.ndarray) -> list[SourceFace]:
        from .face.mask import PasteBack

        faces = []
        for fc in self.source_crops(image):
            if fc is None:
                eye, lip = self._ratios(image)
                prepared = self.animator.prepare_source(resize_256(image), eye, lip, self.config.motion)
                faces.append(SourceFace(None, prepared, None))
                continue
            prepared = self.animator.prepare_source(fc.crop_256, fc.eye_ratio, fc.lip_ratio, self.config.motion)
            paste = PasteBack(image.shape, fc.M_c2o) if self.config.paste_back else None
            faces.append(SourceFace(fc, prepared, paste))
        return faces

    def animate_image(self, image: np.ndarray, faces: list[SourceFace],
                      drivings: list[DrivingMotion]) -> Iterator[np.ndarray]:
        """Output frames for a still source: every face moved by its driving, pasted back."""
        cfg = self.config
        n = max(len(d) for d in drivings)
        per_face = [drivings[i if len(drivings) > 1 else 0] for i in range(len(faces))]
        states = []
        for face, drv in zip(faces, per_face):
            motion = smooth_motion(drv.motion, cfg.smooth) if drv.is_video else drv.motion
            ref = motion[pick_reference_frame(drv.template, cfg.reference_frame)] if drv.is_video else None
            states.append((face, drv, motion, ref))
        bs = max(1, cfg.batch_size)
        for start in range(0, n, bs):
            stop = min(n, start + bs)
            renders = []
            for face, drv, motion, ref in states:
                idx = torch.arange(start, stop).clamp(max=len(drv) - 1)  # a shorter driving holds its last frame
                t = drv.template
                eye = None if t.eye_ratio is None else torch.from_numpy(t.eye_ratio[idx.numpy()])
                lip = None if t.lip_ratio is None else torch.from_numpy(t.lip_ratio[idx.numpy()])
                x_d = self.animator.driving_keypoints(face.prepared, motion[idx] if drv.is_video else motion, ref,
                                                      cfg.motion, drv.is_video, eye, lip)
                x_d = x_d.expand(stop - start, -1, -1) if x_d.shape[0] == 1 else x_d
                renders.append(to_uint8(self.animator.render(face.prepared, x_d)))
            for j in range(stop - start):
                yield self._compose(image, faces, [r[j] for r in renders])

    @staticmethod
    def _compose(image: np.ndarray, faces: list[SourceFace], crops: list[np.ndarray]) -> np.ndarray:
        if all(f.paste is not None for f in faces):
            frame = image
            for f, crop in zip(faces, crops):
                frame = f.paste(crop, frame)
            return frame
        return crops[0] if len(crops) == 1 else np.concatenate(crops, axis=1)

    # -- source video ------------------------------------------------------------------------------------

    def source_video_motion(self, path: Path, limit: int | None) -> dict:
        """Pass 1 over a source video for one face: per frame, its crop matrix, motion and ratios."""
        if self.config.face == "all":
            raise InputError("this step follows one face of a source video; choose it with --face largest or "
                             "--face N")
        return self.source_video_motions(path, limit)[0]

    def source_video_motions(self, path, limit: int | None) -> list[dict]:
        """Pass 1 over a source video (a path or a ``MediaInput``): one record per followed face (every
        face of the first frame for ``--face all``), each with per-frame crop matrices, motion and
        ratios. One decode; the motion extractor runs every 16 frames, so memory does not grow."""
        cfg = self.config
        tracks: list[_SourceTrack] | None = None
        with open_frames(path) as (info, reader):
            total = min(limit, info.frame_count) if limit and info.frame_count else (limit or info.frame_count)
            for i, frame in enumerate(self._progress(reader, total, "source motion")):
                if limit is not None and i >= limit:
                    break
                frame = resize_to_limit(frame, cfg.source_video_max_dim)
                if tracks is None:
                    tracks = [_SourceTrack(t, self.animator) for t in self._source_trackers(frame, float(info.fps))]
                for track in tracks:
                    ratios = None
                    if cfg.crop == "none":
                        # already framed, but its landmarks are measured still, as the reference does (v2v-notes
                        # section 2), for source-video eye retargeting and lip normalisation
                        fc, ratios = None, self._ratios(frame)
                    elif cfg.crop != "auto":
                        fc = self.cropper.crop_from_box(frame, cfg.crop)
                    else:
                        fc = track.tracker.update(frame)
                    track.add(fc, frame, ratios)
        if tracks is None:
            raise InputError(f"{_name(path)}: video has no frames")
        if cfg.crop == "auto" and all(m is None for m in tracks[0].m_o2c):
            from .errors import NoFaceError

            raise NoFaceError(f"{_name(path)}: no human face was found in the source video; "
                              "give its position with --crop-box x0,y0,x1,y1")
        return [track.record(info) for track in tracks]

    def _source_trackers(self, first_frame: np.ndarray, fps: float) -> list:
        """The face trackers of a source video: one, or one per face of the first frame for ``all``."""
        from .face.cropper import SOURCE, VideoFaceTracker

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

    def video_keypoints(self, src: dict, drv: DrivingMotion) -> torch.Tensor:
        """x_d for every source-video frame (composition, smoothing, stitching, retargeting)."""
        cfg, anim = self.config, self.animator
        n = len(src["x_s"])
        motion = drv.motion
        ref = None
        if drv.is_video:
            ref = motion[pick_reference_frame(drv.template, cfg.reference_frame)]
            motion = motion[:n]
        x_d = compose_video_source(src["kp"], src["motion"], motion, ref, cfg.motion, anim.lip_array.cpu(),
                                   cfg.source_video_smooth)
        x_s = src["x_s"]
        pre_eye = pre_lip = eye_d = lip_d = None
        has_eye = not np.isnan(src["eye"]).any()
        has_lip = not np.isnan(src["lip"]).any()
        src_eye = torch.from_numpy(src["eye"])
        src_lip = torch.from_numpy(src["lip"])
        S = anim.networks.S
        if cfg.motion.source_video_eye_retargeting and has_eye:
            target = float(src["eye"][0].mean())
            target = SOURCE_VIDEO_EYE_FALLBACK_TARGET if target < cfg.motion.source_video_eye_threshold else target
            pre_eye = S.eye_delta(x_s, torch.cat([src_eye, torch.full((n, 1), target)], dim=1))
        if cfg.motion.normalize_lip and cfg.motion.relative and has_lip:
            delta = S.lip_delta(x_s, torch.cat([src_lip, torch.zeros(n, 1)], dim=1))
            pre_lip = delta * (src_lip >= cfg.motion.lip_normalize_threshold).float()[:, :, None]
        t = drv.template
        if cfg.motion.eye_retargeting and has_eye and t.eye_ratio is not None:
            d_eye = torch.from_numpy(t.eye_ratio[np.minimum(np.arange(n), len(drv) - 1), 0:1])
            eye_d = S.eye_delta(x_s, torch.cat([src_eye, d_eye], dim=1))
        if cfg.motion.lip_retargeting and has_lip and t.lip_ratio is not None:
            d_lip = torch.from_numpy(t.lip_ratio[np.minimum(np.arange(n), len(drv) - 1)])
            lip_d = S.lip_delta(x_s, torch.cat([src_lip, d_lip], dim=1))
        with torch.inference_mode():
            return finish_keypoints(x_s, x_d, cfg.motion, S.stitch_delta, eye_d, lip_d, pre_lip, pre_eye)

    def animate_video(self, path: Path, src: dict | list[dict], x_d: torch.Tensor | list[torch.Tensor],
                      raw: bool = False) -> Iterator[np.ndarray]:
        """Pass 2 over a source video: re-crop each frame with the stored matrices, render every
        followed face, paste them all back. ``raw``: yield instead each frame's renders, float
        (faces, 3, 512, 512) before clipping and paste-back (what the conformance check compares)."""
        from .face import geometry
        from .face.mask import PasteBack

        srcs, x_ds = ([src], [x_d]) if isinstance(src, dict) else (list(src), list(x_d))
        cfg, anim = self.config, self.animator
        n = min(len(x) for x in x_ds)
        with open_frames(path) as (_, reader):
            for i, frame in enumerate(reader):
                if i >= n:
                    break
                frame = resize_to_limit(frame, cfg.source_video_max_dim)
                result, crops = frame, []
                for one, xd in zip(srcs, x_ds):
                    m = one["m_o2c"][i]
                    if m is None and cfg.crop == "auto":
                        continue  # this face is not in view yet: its part of the frame passes through
                    crop256 = resize_256(frame) if m is None else geometry.to_net_input(geometry.warp(frame, m, 512))
                    prepared = PreparedSource(f_s=anim.appearance(crop256), kp_c=one["kp"][i:i + 1],
                                              motion=one["motion"][i], x_s=one["x_s"][i:i + 1])
                    rendered = anim.render(prepared, xd[i:i + 1].to(anim.device))
                    if raw:
                        crops.append(rendered)
                        continue
                    out = to_uint8(rendered)[0]
                    if m is not None and cfg.paste_back:
                        result = PasteBack(frame.shape, geometry.invert(m))(out, result)
                    else:
                        crops.append(out)
                if raw:
                    yield torch.cat(crops) if crops else torch.empty(0, 3, 512, 512)
                elif crops:
                    yield crops[0] if len(crops) == 1 else np.concatenate(crops, axis=1)
                else:
                    yield result


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

    def record(self, info) -> dict:
        self._flush()
        ms = self._motions
        return {
            "info": info,
            "m_o2c": self.m_o2c,
            "kp": torch.cat([m.kp for m in ms]),
            "x_s": torch.cat([m.x for m in ms]),
            "angles": torch.cat([m.angles for m in ms]),  # (T, 3) pitch, yaw, roll in degrees
            "motion": Motion(*(torch.cat([getattr(m.motion, k) for m in ms]) for k in ("R", "exp", "t", "scale"))),
            "eye": np.stack(self.eyes).astype(np.float32),
            "lip": np.stack(self.lips).astype(np.float32),
        }


# ---------------------------------------------------------------------------------------------------
# the whole job


def run(source, driving, output: str | os.PathLike | None, pipeline: Pipeline,
        plan: JobPlan | None = None) -> AnimationResult:
    """Animate ``source`` with ``driving`` (one, or one per face) and write the result atomically.

    The job is checked first (``plan_job``: inputs, options, output location) unless a checked
    ``plan`` is given; a run that fails leaves neither a partial file nor a folder it created."""
    plan = plan or plan_job(source, driving, output, pipeline.config)
    return write(render(plan, pipeline), plan, pipeline)


@dataclass
class Rendering:
    """A job's frames, produced lazily as they are iterated, and what writing them needs."""

    frames: Iterator  # frames, or (frame, comparison panel) pairs when ``comparison``
    fps: Fraction
    total: int  # frames that will come
    faces: int
    audio: Path | None  # the file whose sound goes with the frames
    still: bool  # one picture
    template: "MotionTemplate | None"  # noqa: F821 - the main driving's motion
    crops: list  # per face of a photo source: its FaceCrop (None where not cropped)
    comparison: bool = False
    notes: list[str] = field(default_factory=list)


def render(plan: JobPlan, pipeline: Pipeline) -> Rendering:
    """Pass 1 (driving and source motion, source preparation) now; pass 2 (the frames) lazily."""
    cfg = pipeline.config
    src, source_is_video = plan.src, plan.src.kind == "video"
    drivings = [pipeline.load_driving(d) for d in plan.drivings]
    main = drivings[0]
    crops: list = []
    if source_is_video:
        video_drivings = [len(d) for d in drivings if d.is_video]
        limit = min(video_drivings) if video_drivings else None
        srcs = pipeline.source_video_motions(src, limit)
        _check_driving_count(len(drivings), len(srcs))
        x_ds = [pipeline.video_keypoints(s, drivings[i if len(drivings) > 1 else 0]) for i, s in enumerate(srcs)]
        frames = pipeline.animate_video(src, srcs, x_ds)
        total, n_faces = min(len(x) for x in x_ds), len(srcs)
        audio_candidates = [main.path if main.has_audio else None, src.path if src.has_audio else None]
    else:
        image = src.image
        if image is None:
            from .media import read_image

            image = read_image(src.path)
        image = limit_size(image, cfg.source_max_dim)
        faces = pipeline.prepare_image(image)
        _check_driving_count(len(drivings), len(faces))
        crops = [f.crop for f in faces]
        frames = pipeline.animate_image(image, faces, drivings)
        total, n_faces = max(len(d) for d in drivings), len(faces)
        audio_candidates = [main.path if main.has_audio else None, None]
    if cfg.audio_from == "source":
        audio_candidates.reverse()
    audio = next((a for a in audio_candidates if a is not None), None)
    if cfg.comparison:
        panel = None if source_is_video else _source_panel(faces, image)
        frames = _with_comparison(frames, main, panel)
    return Rendering(frames, plan.fps, 1 if plan.image_output else total, n_faces, audio, plan.image_output,
                     main.template if main.is_video else None, crops, cfg.comparison, list(plan.notes))


def write(rendering: Rendering, plan: JobPlan, pipeline: Pipeline) -> AnimationResult:
    """Stream a rendering into ``plan``'s output (and comparison, and motion template) atomically;
    a failure leaves no partial file and no folder this made."""
    from .media._files import remove_new_folders_on_error

    if plan.output is None:
        raise ValueError("the plan has no output: plan_job(..., decide_output=True) or plan.with_output(path)")
    t0 = time.perf_counter()
    with remove_new_folders_on_error(*plan.paths_written):
        result = _write_outputs(rendering, plan, pipeline)
    result.seconds = time.perf_counter() - t0
    return result


def _write_outputs(r: Rendering, plan: JobPlan, pipeline: Pipeline) -> AnimationResult:
    from .media import save_template

    cfg = pipeline.config
    out_path, comparison_path = plan.output, plan.comparison if r.comparison else None
    stamp = Stamp(watermark=cfg.watermark)
    if r.still:
        from .media import write_image

        frame = next(iter(r.frames))
        if r.comparison:
            frame, concat = frame
            if comparison_path is not None:
                write_image(comparison_path, concat, stamp=stamp)  # the writers put the label and the watermark
        write_image(out_path, frame, stamp=stamp)
        result = AnimationResult(out_path, 1, r.fps, r.faces, False, None, comparison_path)
    else:
        written, has_audio = _write_video(out_path, plan.output_kind, r.frames, r.fps, r.total, r.audio, pipeline,
                                          stamp, comparison_path, paired=r.comparison)
        result = AnimationResult(out_path, written, r.fps, r.faces, has_audio, None, comparison_path)
    if plan.template is not None and r.template is not None:
        # the driving's motion, reusable without its faces (written only once the output exists)
        result.template = plan.template
        save_template(result.template, r.template)
    result.notes = list(r.notes)
    result.still = r.still
    return result


def _check_driving_count(drivings: int, faces: int) -> None:
    if drivings > 1 and drivings != faces:
        raise InputError(f"{drivings} driving inputs were given for {faces} face(s) of the source: give one "
                         "driving for all faces, or one per face")


def _source_panel(faces: list[SourceFace], image: np.ndarray) -> np.ndarray:
    crop = faces[0].crop
    return crop.crop_512 if crop is not None else image


def _with_comparison(frames: Iterator[np.ndarray], driving: DrivingMotion,
                     source_panel: np.ndarray | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pair each result with a side-by-side [driving | source | result] panel (no driving panel for a
    template, or for driving frames that could be read only once)."""
    d = driving.source
    with contextlib.ExitStack() as stack:
        drv_iter, last = None, None
        if d is not None and d.kind == "video" and (d.path is not None or isinstance(d.sequence, (list, tuple))):
            _, drv_iter = stack.enter_context(open_frames(d))
        elif d is not None and d.kind == "image":
            from .media import read_image

            last = d.image if d.image is not None else read_image(d.path)
        for frame in frames:
            if drv_iter is not None:
                last = next(drv_iter, last)
            panels = [p for p in (last, source_panel) if p is not None] + [frame]
            yield frame, side_by_side(panels)


def _open_writer(path: Path, kind: str, fps: Fraction, audio: Path | None, cfg: AnimateConfig, stamp: Stamp):
    """The writer of one output; it marks every frame and labels the file with ``stamp`` itself."""
    from .media import GifWriter, PngSequenceWriter, VideoWriter

    if kind == "gif":
        return GifWriter(path, fps, stamp=stamp)
    if kind == "png":
        return PngSequenceWriter(path, stamp=stamp)
    return VideoWriter(path, fps, crf=cfg.crf, audio_from=audio, stamp=stamp)


def _write_video(path: Path, kind: str, frames: Iterator, fps: Fraction, total: int, audio: Path | None,
                 pipeline: Pipeline, stamp: Stamp, comparison: Path | None = None,
                 paired: bool = False) -> tuple[int, bool]:
    """Stream frames into the output (and the comparison video); both appear only if all succeeded.
    ``paired``: the frames come as (frame, comparison panel)."""
    cfg = pipeline.config
    writer = _open_writer(path, kind, fps, audio, cfg, stamp)
    side = None
    try:
        if comparison is not None:
            side = _open_writer(comparison, kind if kind != "png" else "mp4", fps, audio, cfg, stamp)
        from .speed.stream import prefetch

        # the networks run one frame ahead in a thread while this one pastes and encodes
        for item in pipeline._progress(prefetch(frames, depth=2), total, "animating"):
            if paired:
                item, concat = item
                if side is not None:
                    side.write(concat)
            writer.write(item)
        if side is not None:
            side.close()
        writer.close()
    except BaseException:
        writer.abort()
        if side is not None:
            side.abort()
        raise
    return writer.frames_written, bool(getattr(writer, "has_audio", False))
