"""Pass 2: the frames. A photo's faces moved by their drivings, or a source video re-cropped frame by
frame and rendered with its driving keypoints; pasted back. Lazily: a frame is made when it is asked for."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
import torch

from ..animator import PreparedSource, to_uint8
from ..errors import InputError
from ..motion.compose import smooth_motion
from ..motion.video import SourceVideoMotion, source_video_keypoints
from ..plan import JobPlan
from .driving import DrivingMotion, pick_reference_frame
from .frames import limit_size, open_frames, resize_256, resize_to_limit, shrink_scale, side_by_side
from .source import SourceFace
from .stage import Stage

if TYPE_CHECKING:
    from .core import Pipeline


class FrameStage(Stage):
    """Pass 2: renders the frames from prepared sources and driving motion, lazily."""

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
                yield compose_faces(image, faces, [r[j] for r in renders])

    def video_keypoints(self, src: SourceVideoMotion, drv: DrivingMotion) -> torch.Tensor:
        """x_d for every source-video frame (``motion.video.source_video_keypoints``), with the driving's
        neutral reference frame chosen as for a photo."""
        cfg, anim = self.config, self.animator
        ref = drv.motion[pick_reference_frame(drv.template, cfg.reference_frame)] if drv.is_video else None
        t = drv.template
        return source_video_keypoints(src, drv.motion, ref, cfg.motion, anim.stitcher, anim.lip_array.cpu(),
                                      cfg.source_video_smooth, t.eye_ratio, t.lip_ratio)

    def video_renders(self, path, src: SourceVideoMotion | list[SourceVideoMotion],
                      x_d: torch.Tensor | list[torch.Tensor]) -> Iterator[tuple[np.ndarray, list]]:
        """Pass 2 over a source video, the rendering: per frame, the frame (limited as the output is) and, for
        each followed face in view, (crop matrix or None, its float render (1, 3, 512, 512) before clipping).
        ``animate_video`` pastes them back; the conformance check compares the renders themselves."""
        from ..face import geometry

        srcs, x_ds = ([src], [x_d]) if isinstance(src, SourceVideoMotion) else (list(src), list(x_d))
        cfg, anim = self.config, self.animator
        n = min(len(x) for x in x_ds)
        with open_frames(path) as (_, reader):
            for i, frame in enumerate(reader):
                if i >= n:
                    break
                frame = resize_to_limit(frame, cfg.source_video_max_dim)
                renders = []
                for one, xd in zip(srcs, x_ds):
                    m = one.m_o2c[i]
                    if m is None and cfg.crop == "auto":
                        continue  # this face is not in view yet: its part of the frame passes through
                    crop256 = resize_256(frame) if m is None else geometry.to_net_input(geometry.warp(frame, m, 512))
                    prepared = PreparedSource(f_s=anim.appearance(crop256), kp_c=one.kp[i:i + 1], motion=one.motion[i],
                                              x_s=one.x_s[i:i + 1])
                    renders.append((m, anim.render(prepared, xd[i:i + 1].to(anim.device))))
                yield frame, renders

    def animate_video(self, path, src: SourceVideoMotion | list[SourceVideoMotion],
                      x_d: torch.Tensor | list[torch.Tensor]) -> Iterator[np.ndarray]:
        """Pass 2 over a source video: re-crop each frame with the stored matrices, render every
        followed face, paste them all back (or, without paste-back, the renders side by side)."""
        from ..face import geometry
        from ..face.mask import PasteBack

        for frame, renders in self.video_renders(path, src, x_d):
            result, crops = frame, []
            for m, rendered in renders:
                out = to_uint8(rendered)[0]
                if m is not None and self.config.paste_back:
                    result = PasteBack(frame.shape, geometry.invert(m))(out, result)
                else:
                    crops.append(out)
            if crops:
                yield crops[0] if len(crops) == 1 else np.concatenate(crops, axis=1)
            else:
                yield result


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



def compose_faces(image: np.ndarray, faces: list[SourceFace], crops: list[np.ndarray]) -> np.ndarray:
    """One output frame: each face's render pasted back into the picture, or the renders side by side when
    paste-back is off (any driving: a video's, a template's or speech's)."""
    if all(f.paste is not None for f in faces):
        frame = image
        for f, crop in zip(faces, crops):
            frame = f.paste(crop, frame)
        return frame
    return crops[0] if len(crops) == 1 else np.concatenate(crops, axis=1)


def render(plan: JobPlan, pipeline: Pipeline) -> Rendering:
    """Pass 1 (driving and source motion, source preparation) now; pass 2 (the frames) lazily."""
    cfg = pipeline.config
    src, source_is_video = plan.src, plan.src.kind == "video"
    drivings = [pipeline.driving.load(d) for d in plan.drivings]
    main = drivings[0]
    crops: list = []
    if source_is_video:
        video_drivings = [len(d) for d in drivings if d.is_video]
        limit = min(video_drivings) if video_drivings else None
        srcs = pipeline.source.video_motions(src, limit)
        _check_driving_count(len(drivings), len(srcs))
        x_ds = [pipeline.frames.video_keypoints(s, drivings[i if len(drivings) > 1 else 0]) for i, s in enumerate(srcs)]
        frames = pipeline.frames.animate_video(src, srcs, x_ds)
        total, n_faces = min(len(x) for x in x_ds), len(srcs)
        audio_candidates = [main.path if main.has_audio else None, src.path if src.has_audio else None]
    else:
        image = src.image
        if image is None:
            from ..media import read_image

            image = read_image(src.path)
        limited = limit_size(image, cfg.source_max_dim)
        faces = pipeline.source.prepared(limited, shrink_scale(image.shape, limited))
        image = limited
        _check_driving_count(len(drivings), len(faces))
        crops = [f.crop for f in faces]
        frames = pipeline.frames.animate_image(image, faces, drivings)
        total, n_faces = max(len(d) for d in drivings), len(faces)
        audio_candidates = [main.path if main.has_audio else None, None]
    if cfg.audio_from == "source":
        audio_candidates.reverse()
    audio = next((a for a in audio_candidates if a is not None), None)
    if cfg.comparison:
        panel = None if source_is_video else _source_panel(faces, image)
        frames = _with_comparison(frames, main, panel, src if source_is_video else None, cfg.source_video_max_dim)
    return Rendering(frames, plan.fps, 1 if plan.image_output else total, n_faces, audio, plan.image_output,
                     main.template if main.is_video else None, crops, cfg.comparison, list(plan.notes))


def _check_driving_count(drivings: int, faces: int) -> None:
    if drivings > 1 and drivings != faces:
        raise InputError(f"{drivings} driving inputs were given for {faces} face(s) of the source: give one "
                         "driving for all faces, or one per face")


def _source_panel(faces: list[SourceFace], image: np.ndarray) -> np.ndarray:
    crop = faces[0].crop
    return crop.crop_512 if crop is not None else image


def _with_comparison(frames: Iterator[np.ndarray], driving: DrivingMotion, source_panel: np.ndarray | None,
                     source_video=None, max_dim: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Pair each result with a side-by-side [driving | source | result] panel (no driving panel for a
    template, or for driving frames that could be read only once). A source video's panel is its frame at
    the same time (read by a second decoder), as the result shows it."""
    d = driving.source
    with contextlib.ExitStack() as stack:
        src_iter = None
        if source_video is not None and (source_video.path is not None
                                         or isinstance(source_video.sequence, (list, tuple))):
            _, src_iter = stack.enter_context(open_frames(source_video))
        drv_iter, last = None, None
        if d is not None and d.kind == "video" and (d.path is not None or isinstance(d.sequence, (list, tuple))):
            _, drv_iter = stack.enter_context(open_frames(d))
        elif d is not None and d.kind == "image":
            from ..media import read_image

            last = d.image if d.image is not None else read_image(d.path)
        for frame in frames:
            if drv_iter is not None:
                last = next(drv_iter, last)
            if src_iter is not None:
                source_frame = next(src_iter, None)
                source_panel = source_panel if source_frame is None else resize_to_limit(source_frame, max_dim)
            panels = [p for p in (last, source_panel) if p is not None] + [frame]
            yield frame, side_by_side(panels)
