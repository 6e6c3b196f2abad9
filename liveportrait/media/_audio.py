"""The audio track of an output video, taken from another file and fed in step with the frames.

Packets are copied untouched when the output container can hold the codec (AAC, MP3, ...), and
decoded and re-encoded to AAC otherwise. Muxing follows the video clock, so the file comes out
interleaved and nothing accumulates in memory however long the video is.

Trimming: while the video grows only packets that end before the current video time are written;
when the video is finished, a copied track keeps the packet that straddles the end (at most one
AAC frame, about 23 ms, as ffmpeg's ``-shortest`` does), a transcoded one is cut to the sample.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from pathlib import Path
from typing import Iterator

import av
import numpy as np

from ..errors import InputError

log = logging.getLogger(__name__)

# codecs each output container takes by stream copy; anything else is transcoded to AAC
_COPYABLE = {
    "mp4": {"aac", "mp3", "alac", "ac3", "eac3", "opus"},
    "mov": {"aac", "mp3", "alac", "ac3", "eac3", "pcm_s16le", "pcm_s24le", "pcm_f32le"},
    "matroska": {"aac", "mp3", "alac", "ac3", "eac3", "opus", "vorbis", "flac", "pcm_s16le", "pcm_s24le"},
}
_AAC_RATES = (96000, 88200, 64000, 48000, 44100, 32000, 24000, 22050, 16000, 12000, 11025, 8000, 7350)


class AudioTrack:
    """Audio from ``src`` starting ``start`` seconds in, at most ``limit`` seconds long."""

    def __init__(self, src: Path, container_format: str, *, start: float = 0.0, limit: float | None = None):
        self.src = src
        self.start = max(0.0, float(start))
        self.limit = None if limit is None else max(0.0, float(limit))
        self._in = _open_audio_input(src)
        try:
            self._in_stream = self._in.streams.audio[0]
            codec = self._in_stream.codec_context.name
            self.copy = codec in _COPYABLE.get(container_format, set())
            self._out_stream = None
            self._pending: tuple[float, float, object] | None = None
            self._items: Iterator[tuple[float, float, object]] | None = None
            self._fed_samples = 0
            self.packets = 0  # audio packets muxed into the output so far
            if self.start > 0:
                self._seek(self.start)
        except BaseException:
            self._in.close()
            raise

    # -- setup ---------------------------------------------------------------------------------

    def attach(self, out: av.container.OutputContainer) -> None:
        """Add the output audio stream (after the video stream, so that video stays stream 0)."""
        self._out = out
        if self.copy:
            self._out_stream = out.add_stream_from_template(self._in_stream)
            self._items = self._packets()
        else:
            self._out_stream = _add_aac_stream(out, self._in_stream)
            self._items = self._frames()

    def _seek(self, seconds: float) -> None:
        tb = self._in_stream.time_base
        try:
            self._in.seek(int(seconds / tb), stream=self._in_stream, backward=True)
        except av.FFmpegError:
            log.debug("%s: audio seek failed, reading from the start instead", self.src)

    # -- feeding -------------------------------------------------------------------------------

    def pump(self, until: float) -> None:
        """Write everything that ends by ``until`` seconds (the current video time)."""
        if self.limit is not None:
            until = min(until, self.limit)
        while True:
            item = self._peek()
            if item is None or item[1] > until:
                return
            self._emit(item, None)
            self._pending = None

    def finish(self, video_duration: float) -> None:
        """Write the rest up to the end of the video (or the limit), then flush the encoder."""
        end = video_duration if self.limit is None else min(video_duration, self.limit)
        while True:
            item = self._peek()
            if item is None or item[0] >= end:
                break
            self._emit(item, end)
            self._pending = None
        if not self.copy:
            for packet in self._out_stream.encode(None):
                self._mux(packet)

    def close(self) -> None:
        self._in.close()

    def _peek(self) -> tuple[float, float, object] | None:
        if self._pending is None:
            self._pending = next(self._items, None)
        return self._pending

    def _emit(self, item: tuple[float, float, object], end: float | None) -> None:
        start, stop, obj = item
        if self.copy:
            obj.stream = self._out_stream
            self._mux(obj)
            return
        frame = obj if end is None or stop <= end else _cut(obj, 0, _samples(end - start, obj.sample_rate))
        if frame is None:
            return
        if self._fed_samples == 0:  # keep a late-starting track late, as stream copy does
            self._fed_samples = _samples(start, frame.sample_rate)
        frame.pts = self._fed_samples
        frame.time_base = _sample_tb(frame.sample_rate)
        self._fed_samples += frame.samples
        for packet in self._out_stream.encode(frame):
            self._mux(packet)

    def _mux(self, packet) -> None:
        self._out.mux(packet)
        self.packets += 1

    # -- sources of items: (start s, end s, packet or frame), times relative to ``start`` ------

    def _packets(self) -> Iterator[tuple[float, float, av.Packet]]:
        shift = None
        for packet in self._demux():
            tb = packet.time_base
            pts = packet.pts if packet.pts is not None else packet.dts
            t0 = float(pts * tb)
            dur = float((packet.duration or 0) * tb)
            if self.start > 0:
                if t0 + dur <= self.start:
                    continue
                if shift is None:
                    shift = pts  # the first kept packet starts the track
                packet.pts = pts - shift
                packet.dts = packet.dts - shift
                t0 = float((pts - shift) * tb)
            yield t0, t0 + dur, packet

    def _frames(self) -> Iterator[tuple[float, float, av.AudioFrame]]:
        t = None  # samples are laid end to end from the first frame's time; gaps are not kept
        for frame in self._decode():
            rate = frame.sample_rate
            if t is None:
                t = float(frame.time) if frame.time is not None else 0.0
            t0, t = t, t + frame.samples / rate
            rel0, rel1 = t0 - self.start, t - self.start
            if rel1 <= 0:
                continue
            if rel0 < 0:
                frame = _cut(frame, _samples(-rel0, rate), frame.samples)
                rel0 = 0.0
            if frame is not None:
                yield rel0, rel1, frame

    def _demux(self) -> Iterator[av.Packet]:
        try:
            for packet in self._in.demux(self._in_stream):
                if packet.dts is not None and packet.size:
                    yield packet
        except av.FFmpegError as exc:
            log.warning("%s: audio ends early at a damaged packet (%s)", self.src, exc)

    def _decode(self) -> Iterator[av.AudioFrame]:
        for packet in self._demux():
            try:
                frames = packet.decode()
            except av.FFmpegError as exc:
                log.warning("%s: skipping an undecodable audio packet (%s)", self.src, exc)
                continue
            yield from frames


def open_audio_track(
    src: str | Path, container_format: str, *, start: float = 0.0, limit: float | None = None
) -> AudioTrack | None:
    """An AudioTrack for ``src``, or None when that file has no audio stream."""
    path = Path(src)
    with _open_audio_input(path) as probe:
        if not probe.streams.audio:
            return None
    return AudioTrack(path, container_format, start=start, limit=limit)


def _open_audio_input(path: Path) -> av.container.InputContainer:
    if not path.is_file():
        raise InputError(f"{path}: audio source not found")
    try:
        return av.open(str(path))
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot read audio source ({exc})") from exc


def _add_aac_stream(out: av.container.OutputContainer, src: av.audio.stream.AudioStream):
    rate = src.codec_context.sample_rate or 48000
    rate = rate if rate in _AAC_RATES else 48000
    channels = len(src.codec_context.layout.channels) or 2
    layout = "mono" if channels == 1 else "stereo"
    stream = out.add_stream("aac", rate=rate)
    stream.codec_context.layout = layout
    stream.codec_context.format = "fltp"
    stream.codec_context.bit_rate = 96_000 if layout == "mono" else 192_000
    return stream


def _samples(seconds: float, rate: int) -> int:
    return max(0, int(round(seconds * rate)))


def _sample_tb(rate: int) -> Fraction:
    return Fraction(1, rate)


def _cut(frame: av.AudioFrame, a: int, b: int) -> av.AudioFrame | None:
    """Samples [a, b) of a decoded frame as a new frame (None when empty)."""
    b = min(b, frame.samples)
    if b <= a:
        return None
    arr = frame.to_ndarray()
    if frame.format.is_planar:
        part = arr[:, a:b]
    else:
        ch = len(frame.layout.channels)
        part = arr[:, a * ch : b * ch]
    out = av.AudioFrame.from_ndarray(np.ascontiguousarray(part), format=frame.format.name, layout=frame.layout.name)
    out.sample_rate = frame.sample_rate
    return out
