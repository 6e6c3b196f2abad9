"""A speech file as a driving: motion sampled window by window while frames are rendered.

    driving = AudioDriving.open("speech.wav", model, seed=0)           # checks the file, no sampling yet
    len(driving)                                                          # frames at driving.fps (exact)
    for x_d in keypoint_batches(driving, [prepared], MotionOptions()):    # per batch, one tensor per face
        frames = animator.render(prepared, x_d[0])

Memory stays flat in the audio's length: one 4 s window of samples and motion is held at a time, and the
first frames come out as soon as the first window is sampled. ``template()`` gathers the whole motion
instead (``liveportrait motion speech.wav``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch

from ..config import MotionOptions
from ..motion.compose import Motion
from .compose import AudioKeypoints, PoseTrack, as_motion, with_pose
from .defaults import CFG_SCALE, SAMPLE_RATE, SMOOTH_ALPHA
from .io import AudioInfo, probe_audio, read_audio_chunks
from .model import AudioMotionModel
from .sampler import PAD_BACK, PAD_FRONT, RandomNoise


@dataclass
class AudioDriving:
    """Speech plus the sampling settings; iterating it samples anew (the same frames for the same seed)."""

    path: Path
    info: AudioInfo
    model: AudioMotionModel
    seed: int | None = None
    cfg_scale: float = CFG_SCALE
    smooth_alpha: float | None = SMOOTH_ALPHA
    align: bool = True  # drop the frames of the 80 ms lead-in and cap at the audio's length (see __len__)
    is_video: bool = True  # moves over time, like a driving video
    has_audio: bool = True
    pose: PoseTrack | None = None  # head pose from a template, a video or held still, instead of the model's

    @classmethod
    def open(cls, path: str | os.PathLike, model: AudioMotionModel, seed: int | None = None,
             cfg_scale: float = CFG_SCALE, smooth_alpha: float | None = SMOOTH_ALPHA,
             align: bool = True, info: AudioInfo | None = None, pose: PoseTrack | None = None,
             max_seconds: float | None = None) -> "AudioDriving":
        """Checks the file first (one clear line for no audio track, 0 s, corrupt); a seed is drawn when None,
        so that the frames of one driving are the same however often it is iterated. ``info``: the file's
        ``probe_audio``, when already checked. ``pose``: the head pose's track (``compose.PoseTrack``),
        None for the model's own. ``max_seconds``: use only the audio's beginning (the rest is not decoded)."""
        info = info or probe_audio(path, max_seconds=max_seconds)
        seed = int(torch.seed() % 2**31) if seed is None else int(seed)
        return cls(Path(path), info, model, seed, float(cfg_scale), smooth_alpha, align, pose=pose)

    @property
    def fps(self) -> Fraction:
        return Fraction(self.model.fps).limit_denominator(1001)

    def _lead_and_count(self) -> tuple[int, int]:
        """(frames skipped, frames kept). The model sees 80 ms of silence before the speech, so its motion
        frame f belongs to audio time f / fps - 80 ms: aligned, frame 0 starts with the speech and the video
        is as long as the audio (to the frame). Unaligned: the reference's frames, 120 ms longer."""
        g = self.model.geometry
        samples = int(round(self.info.seconds * SAMPLE_RATE))
        total = g.n_frames(PAD_FRONT + samples + PAD_BACK)
        if not self.align:
            return 0, total
        lead = round(PAD_FRONT / g.samples_per_frame)
        return lead, max(1, min(total - lead, round(samples / g.samples_per_frame)))

    def __len__(self) -> int:
        return self._lead_and_count()[1]

    def windows(self) -> Iterator[dict[str, np.ndarray]]:
        """Per window: exp, scale, t, pitch/yaw/roll, R, coef (see ``AudioMotionModel.stream``), cut to the
        frames ``__len__`` counts."""
        skip, left = self._lead_and_count()
        chunks = read_audio_chunks(self.path, max_seconds=self.info.seconds)
        done = 0
        for m in self.model.stream(chunks, RandomNoise(self.seed), self.cfg_scale, self.smooth_alpha):
            n = len(m["coef"])
            a, b = min(skip, n), min(n, skip + left)
            skip -= a
            if b > a:
                left -= b - a
                cut = {k: v[a:b] for k, v in m.items()}
                yield cut if self.pose is None else with_pose(cut, self.pose, done, self.fps)
                done += b - a
            if left <= 0:
                return

    def motions(self, batch_size: int = 0) -> Iterator[Motion]:
        """Batches of per-frame motion: a window at a time, or ``batch_size`` frames (across windows)."""
        held: list[Motion] = []
        count = 0
        for m in self.windows():
            held.append(as_motion(m))
            count += len(held[-1])
            while count >= max(batch_size, 1) and held:
                merged = _cat(held)
                step = batch_size or len(merged)
                yield merged[:step]
                rest = merged[step:]
                held, count = ([rest] if len(rest) else []), len(rest)
        if held:
            yield _cat(held)

    def template(self):
        """The whole motion as a MotionTemplate (kept in memory; for saving, not for streaming)."""
        from ..media import MotionTemplate

        parts = list(self.windows())
        cat = {k: np.concatenate([p[k] for p in parts]) for k in ("R", "exp", "t", "scale")}
        meta = {"source": "audio", "audio": self.path.name, "seed": str(self.seed), "cfg_scale": str(self.cfg_scale),
                "smooth_alpha": str(self.smooth_alpha), "generator": "JoyVASA"}
        if self.pose is not None:
            meta["pose_from"] = self.pose.name
        return MotionTemplate(fps=self.fps, R=cat["R"], exp=cat["exp"], t=cat["t"], scale=cat["scale"], meta=meta)


def _cat(parts: list[Motion]) -> Motion:
    if len(parts) == 1:
        return parts[0]
    return Motion(*(torch.cat([getattr(p, k) for p in parts]) for k in ("R", "exp", "t", "scale")))


def keypoint_batches(driving: AudioDriving, sources: Sequence, options: MotionOptions | None = None,
                     stitch_delta=None, batch_size: int = 0) -> Iterator[list[torch.Tensor]]:
    """Driving keypoints for each prepared source face (``PreparedSource``), batch by batch, from motion
    sampled once for all faces. ``options`` default to the project's (relative, stitching), the settings of
    JoyVASA's web app; ``AUDIO_MOTION_OPTIONS`` are its command line's."""
    options = options or MotionOptions()
    composers = [AudioKeypoints(s.kp_c, s.motion, s.x_s, options, stitch_delta) for s in sources]
    for motion in driving.motions(batch_size):
        yield [c(motion.to(s.x_s.device)) for c, s in zip(composers, sources)]
