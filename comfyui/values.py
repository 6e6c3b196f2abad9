"""The values that travel between the pack's nodes, and the conversions to and from ComfyUI's tensors.

``IMAGE`` is float32 [B, H, W, C] in 0..1 and ``AUDIO`` is {"waveform": [B, C, T], "sample_rate": int};
the library takes HxWx3 uint8 RGB frames and audio files. Frames are converted one at a time as the
library reads them, so a batch is never copied whole on our side.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Iterator


class NodeError(Exception):
    """An error ComfyUI shows on the node: its message is one line."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()))


@dataclass
class LPSource:
    """LP_SOURCE: a photo (one frame) or a source video (several frames at ``fps``), and its framing."""

    frames: Any  # the IMAGE tensor as given (ComfyUI keeps it; read frame by frame)
    fps: float
    options: dict  # AnimateConfig fields: crop, face, source_scale, source_vx, source_vy

    @property
    def is_video(self) -> bool:
        return int(self.frames.shape[0]) > 1

    def photo(self):
        return frame_u8(self.frames, 0)

    def video_frames(self) -> list:
        """The library reads a source video twice, so it takes a list; uint8 is a quarter of the IMAGE."""
        return [frame_u8(self.frames, i) for i in range(int(self.frames.shape[0]))]


@dataclass
class LPMotion:
    """LP_MOTION: what drives an animation.

    ``kind``: "template" (a ``MotionTemplate``), "speech" (``audio`` + ``seed``, optional ``pose`` template),
    "edit" (``controls`` of the expression editor), or "per_face" (``parts``, one motion per face)."""

    kind: str
    template: Any = None
    audio: dict | None = None  # ComfyUI AUDIO that goes with the motion (the driving's or the speech)
    seed: int | None = None
    pose: Any = None
    audio_weights: str | None = None
    max_seconds: float | None = None
    controls: dict = field(default_factory=dict)
    parts: list = field(default_factory=list)

    @property
    def fps(self) -> float | None:
        return float(self.template.fps) if self.template is not None else None


def check_image(image, what: str = "image", min_frames: int = 1):
    """An IMAGE tensor of rank 4 with 3 (or 4) channels and at least one frame, else one clear NodeError."""
    shape = tuple(getattr(image, "shape", ()))
    if len(shape) != 4:
        raise NodeError(f"{what}: expected an IMAGE batch [B, H, W, C], got a tensor of rank {len(shape)} "
                        f"{list(shape)}")
    if shape[0] < min_frames:
        raise NodeError(f"{what}: the IMAGE batch is empty (0 frames)")
    if shape[3] not in (3, 4):
        raise NodeError(f"{what}: expected 3 colour channels last ([B, H, W, 3]), got {shape[3]} in {list(shape)}")
    if shape[1] < 2 or shape[2] < 2:
        raise NodeError(f"{what}: frames of {shape[2]}x{shape[1]} pixels are too small")
    return image


def frame_u8(image, i: int):
    """Frame ``i`` of an IMAGE as HxWx3 uint8 RGB (exact for values that are k/255)."""
    import torch

    f = image[i, :, :, :3]
    return torch.clamp(f * 255.0, 0, 255).round().to(torch.uint8).cpu().numpy()


def iter_frames_u8(image, progress=None) -> Iterator:
    for i in range(int(image.shape[0])):
        if progress is not None:
            progress.step()
        yield frame_u8(image, i)


class FrameBatch:
    """An IMAGE batch filled in place, frame by frame (no list of frames, no concatenation)."""

    def __init__(self, total: int):
        self.total = total
        self.tensor = None
        self.count = 0

    def add(self, frame_u8_rgb) -> None:
        import torch

        f = torch.from_numpy(frame_u8_rgb)
        if self.tensor is None:
            self.tensor = torch.empty((self.total, *f.shape), dtype=torch.float32)
        if self.count >= self.total:
            raise NodeError(f"more frames came than the {self.total} announced")
        if tuple(f.shape) != tuple(self.tensor.shape[1:]):
            raise NodeError(f"frame {self.count} is {tuple(f.shape)}, the others {tuple(self.tensor.shape[1:])}")
        self.tensor[self.count].copy_(f).div_(255.0)
        self.count += 1

    def result(self):
        if self.tensor is None:
            raise NodeError("the animation gave no frames")
        return self.tensor if self.count == self.total else self.tensor[:self.count]


def silence(seconds: float, sample_rate: int = 16000) -> dict:
    import torch

    return {"waveform": torch.zeros((1, 1, max(1, int(round(seconds * sample_rate))))), "sample_rate": sample_rate}


def check_audio(audio, what: str = "audio") -> dict:
    if not isinstance(audio, dict) or "waveform" not in audio or "sample_rate" not in audio:
        raise NodeError(f"{what}: expected ComfyUI AUDIO {{'waveform': [B, C, T], 'sample_rate': int}}")
    w = audio["waveform"]
    if len(getattr(w, "shape", ())) != 3:
        raise NodeError(f"{what}: the waveform must be [B, C, T], got shape {list(getattr(w, 'shape', ()))}")
    if w.shape[0] < 1 or w.shape[1] < 1 or w.shape[2] < 1:
        raise NodeError(f"{what}: the waveform is empty {list(w.shape)}")
    if int(audio["sample_rate"]) <= 0:
        raise NodeError(f"{what}: sample rate must be positive, got {audio['sample_rate']}")
    return audio


def write_wav(audio: dict, folder: str | os.PathLike | None = None) -> Path:
    """The first clip of an AUDIO as a 16-bit PCM WAV file (the caller removes it)."""
    import wave

    import numpy as np

    check_audio(audio)
    samples = audio["waveform"][0].detach().float().cpu().numpy()  # (C, T)
    # x * 32768, as 16-bit audio decodes to x = n / 32768: a sound that came from a 16-bit file is written back exactly
    pcm = np.clip(np.round(samples * 32768.0), -32768, 32767).astype("<i2").T.copy()  # (T, C) interleaved
    fd, name = tempfile.mkstemp(suffix=".wav", prefix="lp_comfy_", dir=folder)
    os.close(fd)
    with wave.open(name, "wb") as w:
        w.setnchannels(pcm.shape[1])
        w.setsampwidth(2)
        w.setframerate(int(audio["sample_rate"]))
        w.writeframes(pcm.tobytes())
    return Path(name)


def cut_audio(audio: dict, seconds: float) -> dict:
    """The AUDIO's first ``seconds`` (a view of the waveform, not a copy)."""
    n = max(1, int(round(seconds * int(audio["sample_rate"]))))
    return {"waveform": audio["waveform"][..., :n], "sample_rate": int(audio["sample_rate"])}


def fraction(fps: float) -> Fraction:
    return Fraction(fps).limit_denominator(1001)
