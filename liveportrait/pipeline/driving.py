"""Pass 1 of a driving: a video, a photo or a motion template turned into motion, a few hundred bytes a
frame, which is what smoothing, the choice of the neutral reference frame and the motion template need."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
import torch

from ..errors import InputError
from ..motion.compose import Motion
from ..plan import MediaInput
from .frames import open_frames, resize_256
from .stage import Stage


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


class DrivingStage(Stage):
    """Extracts a driving's motion: M on every frame (in batches), with its face tracked and measured."""

    def load(self, driving) -> DrivingMotion:
        """Pass 1 of a driving (a path or a planned ``MediaInput``): its motion, extracted once."""
        from ..plan import as_input

        d = driving if isinstance(driving, MediaInput) else as_input(driving, "driving")
        if d.kind == "template":
            return DrivingMotion(d.template, is_video=d.is_video, path=d.path, source=d)
        if d.kind == "video":
            return DrivingMotion(self.video_motion(d), is_video=True, path=d.path, has_audio=d.has_audio, source=d)
        if d.image is not None:
            image = d.image
        else:
            from ..media import read_image

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
        from ..face.cropper import VideoFaceTracker
        from ..media import TemplateBuilder

        with open_frames(video) as (info, reader):
            tracker = (VideoFaceTracker(self.cropper, preset="driving", fps=float(info.fps))
                       if self._wants_driving_crop(info.width, info.height) else None)
            name = video.name if isinstance(video, MediaInput) else Path(video).name
            builder = TemplateBuilder(info.fps, meta={"source": name})
            batch: list[tuple[np.ndarray, np.ndarray | None, np.ndarray | None]] = []
            for frame in self.progress(reader, info.frame_count, "driving motion"):
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
        from ..media import TemplateBuilder

        h, w = image.shape[:2]
        tracker = None
        if self._wants_driving_crop(w, h):
            from ..face.cropper import DRIVING

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
