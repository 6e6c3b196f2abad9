"""Portrait editing on real pictures: prepare a source once, then render edits with W and G only.

    editor = Editor(animator)                     # or Editor.from_pipeline(pipeline)
    src = editor.prepare(photo)                   # crop, F, M: once per picture
    img = editor.render(src, Edit(smile=0.8))     # W and G (and the small S MLPs): per slider move
    editor.animate(src, [Keyframe(0, Edit()), Keyframe(1, Edit(yaw=20))], "turn.mp4")

Also here: expression transfer from a driving photo (:meth:`Editor.drive`) and video retargeting
(:func:`retarget_video`, spec 5.3).
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..animator import Animator, PreparedSource, to_uint8
from ..config import CRF, SOURCE_VX, SOURCE_VY
from ..errors import InputError, NoFaceError
from ..motion.compose import Motion, MotionOptions
from ..motion.editing import (
    Edit,
    Keyframe,
    apply_edit,
    driven_motion,
    frame_times,
    interpolate,
    rotation_angles,
)
from ..motion.video import retarget_keypoints
from .stage import Progress, no_progress

EDIT_CROP_SCALE = 2.5  # the reference editor's crop scale (its sliders go 1.8 to 3.2)
EDIT_MAX_DIM = 1280  # the reference editor limits pictures to 1280 pixels


@dataclass
class EditSource:
    """A prepared portrait: everything an edit needs, computed once.

    ``base`` is the motion edits start from: the source's own, or the one a driving photo gave it
    (:meth:`Editor.drive`). ``eye_ratio`` (mean of both eyes) and ``lip_ratio`` are the source's
    open ratios rounded to 2 decimals, the values the ratio sliders start at.
    """

    image: np.ndarray
    prepared: PreparedSource
    base: Motion
    angles: torch.Tensor
    crop: object | None = None  # FaceCrop
    paste: object | None = None  # PasteBack
    eye_ratio: float | None = None
    lip_ratio: float | None = None
    driven: bool = False

    @property
    def crop_512(self) -> np.ndarray:
        return self.crop.crop_512 if self.crop is not None else self.image

    def ratio_edit(self) -> Edit:
        """An edit holding only the source's own ratios (the neutral values of the ratio sliders)."""
        return Edit(eye_ratio=self.eye_ratio, lip_ratio=self.lip_ratio)

    def effective(self, edit: Edit) -> Edit:
        """The reference's rule: a ratio slider left at the source's value does not retarget."""
        changes = {}
        for name in ("eye_ratio", "lip_ratio"):
            v, own = getattr(edit, name), getattr(self, name)
            if v is not None and (own is None or abs(v - own) < 1e-9):
                changes[name] = None
        return replace(edit, **changes) if changes else edit


class Editor:
    """Edits portraits with a loaded :class:`~liveportrait.animator.Animator`.

    ``prepare`` runs the face cropper, F and M once; ``keypoints`` is pure keypoint math (plus the
    eye, lip and stitching MLPs); ``render`` runs W and G once per call.
    """

    def __init__(self, animator: Animator, cropper=None, max_dim: int = EDIT_MAX_DIM):
        self.animator = animator
        self._cropper = cropper
        self.max_dim = max_dim

    @classmethod
    def from_pipeline(cls, pipeline, max_dim: int = EDIT_MAX_DIM) -> "Editor":
        return cls(pipeline.animator, pipeline._cropper, max_dim)

    @classmethod
    def from_networks(cls, networks, device: str = "cpu", precision: str = "fp32", cropper=None) -> "Editor":
        return cls(Animator(networks, device, precision), cropper)

    @property
    def cropper(self):
        if self._cropper is None:
            from ..face.cropper import Cropper

            self._cropper = Cropper()
        return self._cropper

    # -- preparing ------------------------------------------------------------------------------------

    def prepare(self, image: np.ndarray, scale: float = EDIT_CROP_SCALE, vx: float = SOURCE_VX, vy: float = SOURCE_VY,
                crop: bool = True) -> EditSource:
        """Frame the largest face of an RGB picture and run F and M on it (NoFaceError if none)."""
        from ..face.mask import PasteBack
        from .frames import limit_size, resize_256

        image = _check_rgb(image)
        image = limit_size(image, self.max_dim)
        if crop:
            try:
                fc = self.cropper.crop_image(image, "largest", float(scale), float(vx), float(vy))[0]
            except NoFaceError:
                raise NoFaceError("no human face was found in the photo; use one where a face is clearly "
                                  "visible (the largest face is edited)") from None
            crop256, eye, lip = fc.crop_256, fc.eye_ratio, fc.lip_ratio
            paste = PasteBack(image.shape, fc.M_c2o)
        else:
            fc, paste = None, None
            crop256 = resize_256(image)
            try:
                eye, lip = self.cropper.ratios(image)
            except NoFaceError:
                eye = lip = None
        prepared = self.animator.prepare_source(crop256, eye, lip, MotionOptions())
        return EditSource(
            image=image, prepared=prepared, base=prepared.motion, angles=rotation_angles(prepared.motion.R),
            crop=fc, paste=paste,
            eye_ratio=None if eye is None else round(float(np.mean(eye)), 2),
            lip_ratio=None if lip is None else round(float(np.ravel(lip)[0]), 2),
        )

    def drive(self, src: EditSource, driving_image: np.ndarray, region: str = "exp",
              relative: bool = True) -> EditSource:
        """The source with a driving photo's expression (image-driven image, spec 5.4); edits apply on top.

        Runs M on the driving face only; the source's F and keypoints are reused.
        """
        from ..face.cropper import DRIVING

        driving_image = _check_rgb(driving_image)
        try:
            fc = self.cropper.crop_image(driving_image, "largest", DRIVING.scale, DRIVING.vx_ratio,
                                         DRIVING.vy_ratio, rotate=False, area=False)[0]
        except NoFaceError:
            raise NoFaceError("no human face was found in the driving picture") from None
        drv = self.animator.extract_motion(fc.crop_256).motion
        with torch.inference_mode():
            base = driven_motion(src.prepared.motion, drv, self.animator.lip_array, region, relative)
        return replace(src, base=base, angles=rotation_angles(base.R), driven=True)

    # -- rendering --------------------------------------------------------------------------------------

    def keypoints(self, src: EditSource, edit: Edit, stitching: bool = True, reference: bool = False) -> torch.Tensor:
        """x_d (1, 21, 3) for one edit. Runs no network but the small S MLPs."""
        anim, p = self.animator, src.prepared
        eye_fn = (lambda target: anim.eye_delta(p, target)) if p.eye_ratio is not None else None
        lip_fn = (lambda target: anim.lip_delta(p, target)) if p.lip_ratio is not None else None
        if (edit.eye_ratio is not None and eye_fn is None) or (edit.lip_ratio is not None and lip_fn is None):
            raise InputError("eye and lip ratios can be set only on a picture with a detected face")
        with torch.inference_mode():
            return apply_edit(src.base, p.kp_c, p.x_s, edit, angles=src.angles, eye_delta=eye_fn, lip_delta=lip_fn,
                              stitch_delta=anim.stitcher.stitch_delta if stitching else None, reference=reference)

    def render_crops(self, src: EditSource, edits: Sequence[Edit], stitching: bool = True) -> np.ndarray:
        """(B, 512, 512, 3) uint8 generated crops: one W and one G call for the whole batch."""
        x_d = torch.cat([self.keypoints(src, e, stitching) for e in edits])
        return to_uint8(self.animator.render(src.prepared, x_d))

    def paste(self, src: EditSource, crop512: np.ndarray) -> np.ndarray:
        return src.paste(crop512, src.image) if src.paste is not None else crop512

    def render(self, src: EditSource, edit: Edit | None = None, stitching: bool = True,
               paste_back: bool = True) -> np.ndarray:
        """The edited picture (pasted back into the original), or the 512 crop."""
        crop = self.render_crops(src, [src.effective(edit or Edit())], stitching)[0]
        return self.paste(src, crop) if paste_back else crop

    # -- keyframes --------------------------------------------------------------------------------------

    def frames(self, src: EditSource, keyframes: Sequence[Keyframe], fps: float = 25, duration: float | None = None,
               method: str = "catmull-rom", stitching: bool = True, paste_back: bool = True,
               batch_size: int = 1) -> Iterator[np.ndarray]:
        """The frames of a keyframed edit, one edit per frame, interpolated per slider."""
        times = frame_times(keyframes, fps, duration)
        base = src.ratio_edit()
        edits = interpolate(keyframes, times, method, base)
        bs = max(1, int(batch_size))
        for start in range(0, len(edits), bs):
            for crop in self.render_crops(src, edits[start:start + bs], stitching):
                yield self.paste(src, crop) if paste_back else crop

    def animate(self, src: EditSource, keyframes: Sequence[Keyframe], output: str | os.PathLike, fps: float = 25,
                duration: float | None = None, method: str = "catmull-rom", stitching: bool = True,
                paste_back: bool = True, batch_size: int = 1, progress: Progress | None = None,
                watermark: bool = True, crf: int = CRF, c2pa=None) -> Path:
        """Write a keyframed edit as a video (any VideoWriter format: .mp4, .mov, .mkv); ``c2pa``: C2PA
        Content Credentials (``provenance.c2pa.ContentCredentials``) to sign it with."""
        from ..media import VideoWriter
        from ..provenance import Stamp

        progress = progress or no_progress
        total = len(frame_times(keyframes, fps, duration))
        stamp = Stamp(watermark=watermark, c2pa=c2pa)
        output = Path(output)
        output.parent.mkdir(parents=True, exist_ok=True)
        rate = Fraction(fps).limit_denominator(1001)
        with VideoWriter(output, rate, crf=crf, stamp=stamp) as writer:  # labels and watermarks every frame
            frames = self.frames(src, keyframes, fps, duration, method, stitching, paste_back, batch_size)
            for frame in progress(frames, total, "keyframes"):
                writer.write(frame)
        return output


def _check_rgb(image) -> np.ndarray:
    arr = np.asarray(image)
    if arr.dtype != np.uint8 or arr.ndim != 3 or arr.shape[2] != 3:
        raise InputError(f"expected an RGB uint8 picture (H, W, 3), got {arr.dtype} {arr.shape}")
    if min(arr.shape[:2]) < 16:
        raise InputError(f"the picture is too small ({arr.shape[1]}x{arr.shape[0]})")
    return arr


# ---------------------------------------------------------------------------------------------------
# video retargeting (spec 5.3)


@dataclass
class RetargetResult:
    output: Path
    frames: int
    fps: Fraction
    has_audio: bool
    seconds: float = 0.0


def retarget_video(pipeline, source: str | os.PathLike, output: str | os.PathLike, *,
                   eye_ratio: float | None = None, lip_ratio: float | None = None, smooth: float = 3e-6,
                   silent: bool = False, max_frames: int | None = None, crf: int = CRF,
                   progress: Progress | None = None) -> RetargetResult:
    """Set the eye and/or lip opening of every frame of a face video (the reference's video retargeting).

    Framing, paste-back and watermarking follow ``pipeline.config`` (its source crop scale, ...). The
    output keeps the source's frame rate and sound. Streams: two passes over the video, one frame in
    memory at a time.
    """
    from ..media import VideoWriter, is_video, probe
    from ..provenance import Stamp

    t0 = time.perf_counter()
    source, output = Path(source), Path(output)
    if not source.is_file():
        raise InputError(f"{source}: no such file")
    if not is_video(source):
        raise InputError(f"{source}: not a video")
    for name, v in (("eye_ratio", eye_ratio), ("lip_ratio", lip_ratio)):
        if v is not None and not (math.isfinite(v) and 0.0 <= v <= 1.0):
            raise InputError(f"{name} is an open ratio between 0 and 1, got {v}")
    if eye_ratio is None and lip_ratio is None and not silent:
        raise InputError("give a target eye ratio, a target lip ratio, or silent lips")
    info = probe(source)
    src = pipeline.source.video_motion(source, max_frames)
    if ((eye_ratio is not None and np.isnan(src.eye).all())
            or (lip_ratio is not None and np.isnan(src.lip).all())):
        raise NoFaceError(f"{source}: no face landmarks in the video, so its eyes and lips cannot be retargeted")
    anim = pipeline.animator
    x_d = retarget_keypoints(src, anim.stitcher, anim.lip_array.cpu(), eye_ratio, lip_ratio, smooth, silent)
    from ..provenance.c2pa import content_credentials

    cfg = pipeline.config  # C2PA Content Credentials when the pipeline signs, with the source video as ingredient
    stamp = Stamp(watermark=cfg.watermark, c2pa=content_credentials(cfg.c2pa, backend=cfg.backend,
                                                                     precision=cfg.precision, source=source))
    output.parent.mkdir(parents=True, exist_ok=True)
    frames = pipeline.frames.animate_video(source, src, x_d)
    with VideoWriter(output, info.fps, crf=crf, audio_from=source if info.has_audio else None,
                     stamp=stamp) as writer:  # labels and watermarks every frame
        for frame in (progress or no_progress)(frames, len(x_d), "retargeting"):
            writer.write(frame)
    return RetargetResult(output, writer.frames_written, info.fps, writer.has_audio, time.perf_counter() - t0)
