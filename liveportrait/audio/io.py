"""Speech in: any file PyAV reads (a WAV, an MP3, a video's audio track) as 16 kHz mono float32, in chunks.

Channels are averaged (as librosa's mono=True does) and other rates resampled by FFmpeg's resampler; a 16-bit
16 kHz file gives int16 / 32768 exactly. ``probe_audio`` checks a file before any model is loaded and says
what is wrong with it in one line.
"""

from __future__ import annotations

import itertools
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from ..errors import InputError
from ..files import check_input_file
from .defaults import SAMPLE_RATE

log = logging.getLogger(__name__)
SILENCE_PEAK = 1e-4  # below this the whole file is taken as silence (-80 dBFS)


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    sample_rate: int
    channels: int
    codec: str
    seconds: float  # decoded length
    peak: float  # largest absolute sample, 0..1

    @property
    def silent(self) -> bool:
        return self.peak < SILENCE_PEAK


AUDIO_EXTENSIONS = (".wav", ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wma", ".aif", ".aiff")


def is_audio_file(path: str | os.PathLike) -> bool:
    """Whether a path holds sound only (a driving speech, not a video): sniffed from the header of an existing
    file (WAV, MP3, FLAC, AIFF, M4A), else judged by the extension."""
    from ..files import read_head

    p = Path(path)
    head = read_head(p, 12) if p.is_file() else b""
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE" or head[:3] == b"ID3" or head[:4] == b"fLaC":
        return True
    if head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC") or head[4:12] in (b"ftypM4A ", b"ftypM4B "):
        return True
    if len(head) >= 2 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0 and head[1] & 0x06:  # an MPEG audio frame
        return True
    return p.suffix.lower() in AUDIO_EXTENSIONS


def _open(path: Path):
    import av

    try:
        container = av.open(str(path))
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a readable audio or video file ({_short(exc)})") from None
    if not container.streams.audio:
        container.close()
        raise InputError(f"{path}: has no audio track")
    return container


def _short(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    return text[:160]


def read_audio_chunks(path: str | os.PathLike, max_seconds: float | None = None) -> Iterator[np.ndarray]:
    """16 kHz mono float32 chunks of the first audio track, decoded as they are consumed (flat memory)."""
    import av

    path = check_input_file(path, "audio")
    container = _open(path)
    try:
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.codec_context.layout, rate=SAMPLE_RATE)
        limit = None if max_seconds is None else int(round(max_seconds * SAMPLE_RATE))
        given = 0
        try:
            for frame in itertools.chain(_frames(container, stream), [None]):  # None: flush the resampler
                for out in resampler.resample(frame):
                    chunk = _mono(out)
                    if limit is not None:
                        chunk = chunk[: max(0, limit - given)]
                    given += len(chunk)
                    if len(chunk):
                        yield chunk
                    if limit is not None and given >= limit:
                        return
        except av.FFmpegError as exc:
            raise InputError(f"{path}: audio is corrupt ({_short(exc)})") from None
    finally:
        container.close()


def _frames(container, stream):
    for packet in container.demux(stream):
        yield from packet.decode()


def _mono(frame) -> np.ndarray:
    planes = frame.to_ndarray().astype(np.float32, copy=False)  # (channels, samples) for planar float
    return planes[0].copy() if planes.shape[0] == 1 else planes.mean(axis=0, dtype=np.float32)


def read_audio(path: str | os.PathLike, max_seconds: float | None = None) -> np.ndarray:
    """The whole first audio track as one 16 kHz mono float32 array."""
    chunks = list(read_audio_chunks(path, max_seconds))
    return np.concatenate(chunks) if chunks else np.zeros(0, np.float32)


def probe_audio(path: str | os.PathLike, min_seconds: float = 0.04, max_seconds: float | None = None) -> AudioInfo:
    """Decode once (chunk by chunk, so memory stays flat however long the file) to check it: readable, has
    audio, not empty. Silence is allowed (the face barely moves) but logged as a warning line. ``max_seconds``:
    only the file's beginning counts (and is decoded); ``seconds`` is then at most that."""
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and max_seconds > 0):
        raise InputError(f"the audio's length limit must be a positive number of seconds, got {max_seconds!r}")
    path = check_input_file(path, "audio")
    container = _open(path)
    try:
        cc = container.streams.audio[0].codec_context
        rate, channels, codec = int(cc.sample_rate or 0), len(cc.layout.channels), cc.name
    finally:
        container.close()
    n, peak = 0, 0.0
    for chunk in read_audio_chunks(path, max_seconds):
        n += len(chunk)
        peak = max(peak, float(np.abs(chunk).max(initial=0.0)))
    if n == 0:
        raise InputError(f"{path}: the audio track is empty (0 seconds)")
    seconds = n / SAMPLE_RATE
    if seconds < min_seconds:
        raise InputError(f"{path}: the audio is {seconds * 1000:.0f} ms long, too short to animate "
                         f"(at least {min_seconds * 1000:.0f} ms)")
    info = AudioInfo(path=path, sample_rate=rate, channels=channels, codec=codec, seconds=seconds, peak=peak)
    if info.silent:
        log.warning("%s: the audio is silent (peak %.1e): the mouth will barely move", path, peak)
    return info
