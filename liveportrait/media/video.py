"""Video in and out, one frame at a time, with PyAV (FFmpeg libraries; no ffmpeg binary needed).

Reading: ``VideoReader`` / ``iter_frames`` decode lazily, keep the exact frame rate as a Fraction
(29.97 stays 30000/1001, where the reference truncates it to 29) and turn frames upright according
to the display-matrix rotation phones write.

Writing: ``VideoWriter`` encodes H.264 into a hidden temp file beside the target and renames it
into place on success; on an exception or ``abort()`` the temp file is deleted, so a half-written
output never exists. Audio from another file is copied or transcoded in step with the frames and
trimmed to the video. Every frame written is one frame out: no rate conversion, no dropping.

Provenance: every writer here (``VideoWriter``, ``GifWriter``, ``PngSequenceWriter`` and the
``write_*`` / ``open_writer`` helpers) puts the "AI-generated with liveportrait" label into the file
and the invisible watermark into every frame itself, from its ``stamp`` argument
(:class:`liveportrait.provenance.Stamp`, one per run). No stamp (the default) means a fresh one, so
a caller that forgets it still writes a marked file; ``Stamp(watermark=False)`` (``--no-watermark``)
keeps the label; ``provenance.NOT_GENERATED`` writes neither and is only for media no network made
(crops of a real video, test clips).

Odd sizes: yuv420p needs even width and height, so an odd frame is **padded** by repeating its
last row / column (no pixel is lost; the output is one pixel larger on that side).

Colour: RGB is converted with BT.709 coefficients, limited range, and the stream is tagged so;
players and our reader then invert it exactly (untagged BT.601 renders shifted in HD players).
"""

from __future__ import annotations

import logging
import re
import weakref
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Iterator

import av
import numpy as np

from ..errors import FrameError, InputError, LivePortraitError, OutputError
from ..files import (
    PathLike,
    as_fps,
    by_extension,
    check_folder_writable,
    check_input_file,
    commit,
    discard,
    make_folder,
    prepare_output,
    temp_path_beside,
)
from ..provenance import NotGenerated, Stamp, writer_stamp
from ..provenance.c2pa import sign_output
from ._audio import AudioTrack, open_audio_track

log = logging.getLogger(__name__)

DEFAULT_CRF = 18  # visually lossless for x264; what the reference passes to ffmpeg
DEFAULT_FPS = Fraction(25)  # when a file states no usable rate (the reference's fallback too)

# output extension -> FFmpeg muxer
_VIDEO_MUXERS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska"}
_CHROMA_420 = ("420", "nv12", "nv21")


@dataclass(frozen=True)
class VideoInfo:
    """What a video file says about itself; ``frame_count`` is the container's figure (an estimate)."""

    path: Path
    fps: Fraction
    frame_count: int | None
    width: int  # as displayed, i.e. after rotation
    height: int
    has_audio: bool
    duration: float | None  # seconds
    rotation: int = 0  # degrees counter-clockwise applied to decoded frames (0, 90, 180, 270)
    codec: str = ""
    audio_codec: str | None = None
    frame_count_exact: bool = False  # the container stores the count (mp4, mov), not estimated from the duration


# --------------------------------------------------------------------------------------------
# reading


class VideoReader:
    """Iterate a video's frames as HxWx3 uint8 RGB arrays, decoding one at a time.

    Opening decodes the first frame, so a corrupt, truncated or empty file fails here with an
    InputError rather than halfway through a pipeline. Iterate once; close (or use ``with``).
    """

    def __init__(
        self, path: PathLike, *, apply_rotation: bool = True, threads: bool = True, allow_truncated: bool = False
    ):
        self.path = check_input_file(path, "video")
        self.frames_read = 0
        self._container = _open_input(self.path)
        self._iterated = False
        try:
            self._stream = _video_stream(self._container, self.path)
            _check_complete(self._container, self.path, allow_truncated)
            if threads:
                self._stream.thread_type = "AUTO"
            self._frames = self._decode()
            self._first = next(self._frames, None)
            if self._first is None:
                raise InputError(f"{self.path}: video has no frames (empty video)")
            self._k90 = _quarter_turns(self._first) if apply_rotation else 0
            self.info = self._make_info()
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[np.ndarray]:
        for _, rgb in self.iter_timed():
            yield rgb

    def iter_timed(self) -> Iterator[tuple[float, np.ndarray]]:
        """(presentation time in seconds, RGB frame) pairs, for callers that care about VFR timing."""
        if self._iterated:
            raise RuntimeError(f"{self.path}: a VideoReader can be iterated only once")
        self._iterated = True
        frame, self._first = self._first, None
        while frame is not None:
            index = self.frames_read
            self.frames_read += 1
            t = float(frame.time) if frame.time is not None else index / float(self.info.fps)
            yield t, self._to_rgb(frame)
            frame = next(self._frames, None)

    def close(self) -> None:
        self._first = None
        frames = getattr(self, "_frames", None)
        if frames is not None:
            frames.close()
        self._container.close()

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _decode(self) -> Iterator[av.VideoFrame]:
        try:
            yield from self._container.decode(self._stream)
        except av.FFmpegError as exc:
            raise InputError(f"{self.path}: corrupt video data after frame {self.frames_read} ({exc})") from exc

    def _to_rgb(self, frame: av.VideoFrame) -> np.ndarray:
        rgb = frame.to_ndarray(format="rgb24")
        if self._k90:
            rgb = np.ascontiguousarray(np.rot90(rgb, self._k90))
        return rgb

    def _make_info(self) -> VideoInfo:
        s, c = self._stream, self._container
        fps = _stream_fps(s)
        duration = _duration(s, c)
        count = s.frames or (round(duration * float(fps)) if duration else None)
        w, h = self._first.width, self._first.height
        if self._k90 % 2:
            w, h = h, w
        audio = c.streams.audio[0] if c.streams.audio else None
        return VideoInfo(
            path=self.path,
            fps=fps,
            frame_count=count or None,
            width=w,
            height=h,
            has_audio=audio is not None,
            duration=duration,
            rotation=90 * self._k90,
            codec=s.codec_context.name,
            audio_codec=audio.codec_context.name if audio is not None else None,
            frame_count_exact=bool(s.frames),
        )


def probe(path: PathLike) -> VideoInfo:
    """Frame rate, size, frame-count estimate, audio presence; verifies the first frame decodes."""
    with VideoReader(path) as reader:
        return reader.info


def iter_frames(path: PathLike, *, limit: int | None = None) -> Iterator[np.ndarray]:
    """Decode a video lazily as RGB uint8 frames (at most ``limit``); the file closes when done."""
    with VideoReader(path) as reader:
        for i, frame in enumerate(reader):
            if limit is not None and i >= limit:
                return
            yield frame


def read_frames(path: PathLike, *, limit: int | None = None) -> list[np.ndarray]:
    """All frames in memory: only for short clips (a 512x512 frame is 0.75 MiB)."""
    return list(iter_frames(path, limit=limit))


def _open_input(path: Path) -> av.container.InputContainer:
    try:
        return av.open(str(path), mode="r")
    except av.FFmpegError as exc:
        raise InputError(f"{path}: unreadable or corrupt video ({_short(exc)})") from exc
    except (OSError, ValueError) as exc:
        raise InputError(f"{path}: cannot open video ({exc})") from exc


def _video_stream(container: av.container.InputContainer, path: Path):
    if not container.streams.video:
        if container.streams.audio:
            raise InputError(f"{path}: holds only audio, no video stream")
        raise InputError(f"{path}: video has no frames (empty video: no stream holds any data)")
    return container.streams.video[0]


def _check_complete(container, path: Path, allow: bool) -> None:
    """Refuse a file cut short: its sample index (MP4/MOV/MKV cues) points past the end of the file.

    FFmpeg would quietly decode the frames that are there; a pipeline would then produce a shorter
    video without saying why.
    """
    size = path.stat().st_size
    end = 0
    for stream in container.streams:
        try:
            entries = stream.index_entries
            n = len(entries)
            end = max([end] + [entries[i].pos + entries[i].size for i in range(max(0, n - 256), n)])
        except (AttributeError, TypeError, ValueError):
            continue
    if end > size:
        msg = f"{path}: file is truncated ({size} bytes, its index expects at least {end}); re-export or re-download it"
        if not allow:
            raise InputError(msg)
        log.warning("%s", msg)


def _stream_fps(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate and rate > 0:
            return Fraction(rate)
    return DEFAULT_FPS


def _duration(stream, container) -> float | None:
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / av.time_base
    return None


def _quarter_turns(frame: av.VideoFrame) -> int:
    """Counter-clockwise quarter turns that make a frame upright (from its display matrix)."""
    try:
        angle = frame.rotation or 0
    except (AttributeError, ValueError):
        return 0
    return int(round(angle / 90.0)) % 4


def _short(exc: Exception) -> str:
    """FFmpeg's reason without the errno and the path: 'Invalid data found when processing input'."""
    text = getattr(exc, "strerror", None) or str(exc).split(": '")[0]
    return re.sub(r"^\[Errno -?\d+\]\s*", "", str(text))


# --------------------------------------------------------------------------------------------
# writing


class _AtomicSink:
    """Temp file beside the target: renamed into place by ``close``, deleted by ``abort``."""

    def __init__(self, path: PathLike, suffix: str = ""):
        self.path = prepare_output(path)
        self._tmp: Path | None = temp_path_beside(self.path, suffix)
        self._closed = False
        # a writer dropped without close() must not leave its temp file behind
        self._finalizer = weakref.finalize(self, discard, self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> Path:
        if self._closed:
            return self.path
        try:
            self._finish()
            sign_output(getattr(self, "stamp", None), self._tmp, self.path)  # C2PA, when the stamp has credentials
            commit(self._tmp, self.path)
        except BaseException:
            self.abort()
            raise
        self._closed = True
        self._finalizer.detach()
        return self.path

    def abort(self) -> None:
        """Stop writing and delete the partial output (the target, if it existed, is untouched)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._release()
        finally:
            discard(self._tmp)
            self._finalizer.detach()

    def _finish(self) -> None:  # complete the file at self._tmp
        raise NotImplementedError

    def _release(self) -> None:  # free resources without completing
        pass


def _close_quietly(container) -> None:
    """Close a half-written container on the way out of an error; its own error would hide the first."""
    if container is not None:
        try:
            container.close()
        except (av.FFmpegError, OSError, ValueError):
            pass


class VideoWriter(_AtomicSink):
    """Encode RGB frames to H.264 MP4 (or MOV / MKV by extension), optionally with another file's audio.

    ``audio_from``: a file whose first audio stream is copied (re-encoded to AAC if the container
    cannot hold its codec), starting ``audio_start`` seconds in and trimmed to the video duration
    (and to ``audio_limit`` seconds if given). A file without audio simply gives a silent video.
    ``metadata``: container tags; arbitrary keys survive in MP4/MOV (``use_metadata_tags``). They are
    written over the provenance label's tags of the same name (``comment``, ``description``, ...).
    ``stamp``: the label and watermark (see the module docstring; default: a fresh stamp).
    """

    def __init__(
        self,
        path: PathLike,
        fps: Fraction | float | int,
        *,
        crf: int = DEFAULT_CRF,
        preset: str = "medium",
        codec: str = "libx264",
        pix_fmt: str = "yuv420p",
        audio_from: PathLike | None = None,
        audio_start: float = 0.0,
        audio_limit: float | None = None,
        metadata: dict[str, object] | None = None,
        faststart: bool = True,
        stamp: Stamp | NotGenerated | None = None,
    ):
        self.fps = as_fps(fps)
        muxer = _video_muxer(path)
        _check_encoder(codec)
        self.stamp = writer_stamp(stamp)
        self.frames_written = 0
        self.size: tuple[int, int] | None = None  # (width, height) as encoded
        self._codec, self._pix_fmt = codec, pix_fmt
        self._codec_options = {"crf": str(crf), "preset": preset} if codec in ("libx264", "libx265") else {}
        self._input_shape: tuple[int, ...] | None = None
        self._vstream = None
        self._audio: AudioTrack | None = None
        self._audio_packets: int | None = None  # audio packets muxed, once the file is complete
        self._out = None
        super().__init__(path, Path(path).suffix)
        try:
            if audio_from is not None:
                self._audio = open_audio_track(audio_from, muxer, start=audio_start, limit=audio_limit)
            self._out = av.open(str(self._tmp), mode="w", format=muxer, options=_muxer_options(muxer, faststart))
            _set_metadata(self._out, _with_label(metadata, self.stamp))
        except BaseException:
            self.abort()
            raise

    @property
    def has_audio(self) -> bool:
        """Whether the output has sound: while writing, whether ``audio_from`` has an audio stream;
        after ``close()``, whether audio was muxed into the file (false after ``abort()``)."""
        if self._audio_packets is not None:
            return self._audio_packets > 0
        return self._audio is not None and not self._closed

    def abort(self) -> None:
        if not self._closed:
            self._audio_packets = 0  # nothing was written, so no sound either
        super().abort()

    def write(self, frame: np.ndarray) -> None:
        """Encode one HxWx3 uint8 RGB frame; every frame must have the first frame's size."""
        if self._closed:
            raise RuntimeError(f"{self.path}: write() after close()")
        rgb = self._check_frame(frame)
        if self.stamp is not None:
            rgb = self.stamp.mark(rgb)
        if self._vstream is None:
            self._start_streams(rgb.shape[1], rgb.shape[0])
        vf = av.VideoFrame.from_ndarray(_pad_even(rgb, self._pix_fmt), format="rgb24")
        vf = vf.reformat(format=self._pix_fmt, dst_colorspace="ITU709", dst_color_range="MPEG")
        vf.pts = self.frames_written
        self._mux(self._vstream.encode(vf))
        self.frames_written += 1
        if self._audio is not None:
            self._audio.pump(self.duration)

    def write_all(self, frames: Iterable[np.ndarray]) -> int:
        for frame in frames:
            self.write(frame)
        return self.frames_written

    @property
    def duration(self) -> float:
        return float(self.frames_written / self.fps)

    def _check_frame(self, frame: np.ndarray) -> np.ndarray:
        a = np.asarray(frame)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise FrameError(f"VideoWriter expects HxWx3 uint8 RGB frames, got {a.dtype} {a.shape}")
        if self._input_shape is not None and a.shape != self._input_shape:
            raise FrameError(f"frame {self.frames_written} is {a.shape}, earlier frames were {self._input_shape}")
        self._input_shape = a.shape
        return np.ascontiguousarray(a)

    def _start_streams(self, width: int, height: int) -> None:
        w, h = _even_size(width, height, self._pix_fmt)
        s = self._out.add_stream(self._codec, rate=self.fps)
        s.width, s.height, s.pix_fmt = w, h, self._pix_fmt
        s.codec_context.time_base = 1 / self.fps
        s.codec_context.colorspace = 1  # BT.709 (matches the conversion in write())
        s.codec_context.color_primaries = 1
        s.codec_context.color_trc = 1
        s.codec_context.color_range = 1  # limited ("tv")
        s.options = self._codec_options
        self._vstream, self.size = s, (w, h)
        if self._audio is not None:
            self._audio.attach(self._out)

    def _mux(self, packets) -> None:
        for packet in packets:
            self._out.mux(packet)

    def _finish(self) -> None:
        if self._vstream is None:
            raise FrameError(f"{self.path}: no frames were written")
        self._mux(self._vstream.encode(None))
        if self._audio is not None:
            self._audio.finish(self.duration)
        self._out.close()
        self._out = None
        packets = self._audio.packets if self._audio is not None else 0
        self._release()
        self._audio_packets = packets

    def _release(self) -> None:
        if self._audio is not None:
            self._audio.close()
            self._audio = None
        _close_quietly(self._out)
        self._out = None


def _video_muxer(path: PathLike) -> str:
    return by_extension(path, _VIDEO_MUXERS, "video")


def _check_encoder(codec: str) -> None:
    if codec not in av.codecs_available:
        raise LivePortraitError(f"video encoder {codec!r} is not available in this PyAV/FFmpeg build")


def _muxer_options(muxer: str, faststart: bool) -> dict[str, str]:
    if muxer not in ("mp4", "mov"):
        return {}
    flags = "use_metadata_tags" + ("+faststart" if faststart else "")
    return {"movflags": flags}


def _set_metadata(out, metadata: dict[str, object] | None) -> None:
    for key, value in (metadata or {}).items():
        out.metadata[str(key)] = value if isinstance(value, str) else str(value)


def _with_label(metadata: dict[str, object] | None, stamp: Stamp | None) -> dict[str, object]:
    """The provenance label's container tags, then the caller's tags (which win key by key)."""
    from ..provenance.metadata import container_tags

    tags: dict[str, object] = dict(container_tags(stamp.label)) if stamp is not None else {}
    tags.update(metadata or {})
    return tags


def _even_size(width: int, height: int, pix_fmt: str) -> tuple[int, int]:
    if any(tag in pix_fmt for tag in _CHROMA_420):
        return width + width % 2, height + height % 2
    if "422" in pix_fmt:
        return width + width % 2, height
    return width, height


def _pad_even(rgb: np.ndarray, pix_fmt: str) -> np.ndarray:
    """Repeat the last row / column so that chroma-subsampled formats get even sizes."""
    h, w = rgb.shape[:2]
    w2, h2 = _even_size(w, h, pix_fmt)
    if (w2, h2) == (w, h):
        return rgb
    return np.pad(rgb, ((0, h2 - h), (0, w2 - w), (0, 0)), mode="edge")


# --------------------------------------------------------------------------------------------
# GIF and PNG sequences


class GifWriter(_AtomicSink):
    """Animated GIF with an adaptive 256-colour palette per frame; memory does not grow with length.

    Each frame is quantised on its own by Pillow (``method="octree"``: fast; ``"mediancut"``:
    about 30 % smaller error, 6x slower), optionally Floyd-Steinberg dithered, and written with a
    local palette by FFmpeg's GIF encoder. Frame delays are rounded to GIF's 1/100 s without drift.
    ``stamp``: the label (a GIF comment extension, after ``metadata["comment"]`` if given) and the
    watermark (in every frame, before quantising); default: a fresh stamp.
    """

    def __init__(
        self,
        path: PathLike,
        fps: Fraction | float | int,
        *,
        loop: int = 0,
        method: str = "octree",
        dither: bool = False,
        metadata: dict[str, object] | None = None,
        stamp: Stamp | NotGenerated | None = None,
    ):
        from ..provenance.metadata import label_text

        self.fps = as_fps(fps)
        self.frames_written = 0
        if method not in _QUANTISERS:
            raise ValueError(f"GIF palette method must be one of {sorted(_QUANTISERS)}, got {method!r}")
        self._method, self._dither = method, dither
        self.stamp = writer_stamp(stamp)
        comments = [str((metadata or {}).get("comment", ""))]
        if self.stamp is not None:
            comments.append(label_text(self.stamp.label))
        self._comment = "\n".join(c for c in comments if c) or None
        self._stream = None
        self._out = None
        super().__init__(path, ".gif")
        try:
            self._out = av.open(str(self._tmp), mode="w", format="gif", options={"loop": str(loop)})
            _set_metadata(self._out, metadata)
        except BaseException:
            self.abort()
            raise

    def write(self, frame: np.ndarray) -> None:
        if self._closed:
            raise RuntimeError(f"{self.path}: write() after close()")
        a = np.asarray(frame)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3:
            raise FrameError(f"GifWriter expects HxWx3 uint8 RGB frames, got {a.dtype} {a.shape}")
        if self.stamp is not None:
            a = self.stamp.mark(a)
        if self._stream is None:
            self._stream = self._out.add_stream("gif", rate=self.fps)
            self._stream.width, self._stream.height, self._stream.pix_fmt = a.shape[1], a.shape[0], "pal8"
            self._stream.codec_context.time_base = 1 / self.fps
        elif (a.shape[1], a.shape[0]) != (self._stream.width, self._stream.height):
            raise FrameError(f"frame {self.frames_written} is {a.shape}, earlier frames were different")
        vf = av.VideoFrame.from_ndarray(_quantise(a, self._method, self._dither), format="pal8")
        vf.pts = self.frames_written
        for packet in self._stream.encode(vf):
            self._out.mux(packet)
        self.frames_written += 1

    def _finish(self) -> None:
        if self._stream is None:
            raise FrameError(f"{self.path}: no frames were written")
        for packet in self._stream.encode(None):
            self._out.mux(packet)
        self._out.close()
        self._out = None
        if self._comment:
            self._tmp.write_bytes(gif_with_comment(self._tmp.read_bytes(), self._comment))

    def _release(self) -> None:
        _close_quietly(self._out)
        self._out = None


def gif_with_comment(data: bytes, comment: str) -> bytes:
    """Insert a GIF comment extension after the global colour table (FFmpeg's muxer writes none)."""
    if data[:6] not in (b"GIF87a", b"GIF89a") or len(data) < 13:
        raise ValueError("not a GIF")
    packed = data[10]
    end = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    text = comment.encode("utf-8")
    blocks = b"".join(bytes([len(text[i:i + 255])]) + text[i:i + 255] for i in range(0, len(text), 255))
    return b"GIF89a" + data[6:end] + b"\x21\xfe" + blocks + b"\x00" + data[end:]


_QUANTISERS = {"octree": 2, "mediancut": 0}  # PIL.Image.Quantize values


def _quantise(rgb: np.ndarray, method: str, dither: bool) -> tuple[np.ndarray, np.ndarray]:
    """(HxW palette indices, 256x4 ARGB palette) for FFmpeg's pal8."""
    from PIL import Image

    im = Image.fromarray(rgb, "RGB")
    q = im.quantize(colors=256, method=Image.Quantize(_QUANTISERS[method]))
    if dither:  # Pillow dithers only when mapping onto a given palette: a second pass
        q = im.quantize(palette=q, dither=Image.Dither.FLOYDSTEINBERG)
    pal = np.asarray(q.getpalette() or [], np.uint8).reshape(-1, 3)[:256]
    argb = np.zeros((256, 4), np.uint8)
    argb[:, 0] = 255
    argb[: len(pal), 1:] = pal
    return np.ascontiguousarray(np.asarray(q, np.uint8)), argb


class PngSequenceWriter(_AtomicSink):
    """Numbered PNGs (``000000.png`` ...) in a folder that appears complete or not at all.

    Frames go into a hidden temp folder beside the target, renamed into place on close; an existing
    target folder is replaced as a whole. Each PNG carries the label and the watermark of ``stamp``
    (one run id for the whole sequence; default: a fresh stamp), see ``write_image``.
    """

    def __init__(self, folder: PathLike, *, start: int = 0, digits: int = 6, metadata: dict | None = None,
                 stamp: Stamp | NotGenerated | None = None):
        self.frames_written = 0
        self._start, self._digits, self._metadata = start, digits, metadata
        self.stamp = writer_stamp(stamp)
        final = Path(folder).expanduser().absolute()
        if final.exists() and not final.is_dir():
            raise OutputError(f"{final}: exists and is not a folder")
        check_folder_writable(final.parent)
        make_folder(final.parent)
        self.path = final
        self._tmp = temp_path_beside(final)
        self._tmp.unlink()
        self._tmp.mkdir()
        self._closed = False
        self._finalizer = weakref.finalize(self, discard, self._tmp)

    def write(self, frame: np.ndarray) -> None:
        from .image import write_image

        if self._closed:
            raise RuntimeError(f"{self.path}: write() after close()")
        name = f"{self._start + self.frames_written:0{self._digits}d}.png"
        write_image(self._tmp / name, np.asarray(frame), self._metadata, stamp=self._frame_stamp)
        self.frames_written += 1

    @property
    def _frame_stamp(self) -> Stamp | NotGenerated:
        from ..provenance import NOT_GENERATED

        return self.stamp if self.stamp is not None else NOT_GENERATED

    def close(self) -> Path:
        if self._closed:
            return self.path
        if self.frames_written == 0:
            self.abort()
            raise FrameError(f"{self.path}: no frames were written")
        old = None
        if self.path.exists():
            old = temp_path_beside(self.path)
            old.unlink()
            self.path.rename(old)
        self._tmp.rename(self.path)
        discard(old)
        self._closed = True
        self._finalizer.detach()
        return self.path


def write_video(path: PathLike, frames: Iterable[np.ndarray], fps: Fraction | float | int, **kwargs) -> int:
    """Encode an iterable of RGB frames with ``VideoWriter`` (``stamp`` and all options go to it); returns the
    number of frames."""
    with VideoWriter(path, fps, **kwargs) as writer:
        return writer.write_all(frames)


def write_gif(
    path: PathLike,
    frames: Iterable[np.ndarray],
    fps: Fraction | float | int,
    *,
    loop: int = 0,
    method: str = "octree",
    dither: bool = False,
    stamp: Stamp | NotGenerated | None = None,
) -> int:
    """Stream an iterable of RGB frames into an animated GIF (marked by ``stamp``); returns the number of frames."""
    with GifWriter(path, fps, loop=loop, method=method, dither=dither, stamp=stamp) as writer:
        for frame in frames:
            writer.write(frame)
        return writer.frames_written


def write_png_sequence(folder: PathLike, frames: Iterable[np.ndarray], *, start: int = 0, digits: int = 6,
                       stamp: Stamp | NotGenerated | None = None) -> int:
    """Write frames as numbered PNGs into ``folder`` (atomically, as a whole, marked by ``stamp``); returns the
    count."""
    with PngSequenceWriter(folder, start=start, digits=digits, stamp=stamp) as writer:
        for frame in frames:
            writer.write(frame)
        return writer.frames_written


def open_writer(path: PathLike, fps: Fraction | float | int, **kwargs):
    """The writer an output path asks for: ``.gif`` GIF, no extension a PNG folder, else a video.

    Options a writer does not take (``audio_from`` for a GIF, say) are dropped with a log line;
    ``stamp`` goes to every writer (default: a fresh stamp, so the output is marked).
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".gif":
        return GifWriter(p, fps, **_only(kwargs, ("loop", "method", "dither", "metadata", "stamp")))
    if ext == "" or p.is_dir():
        return PngSequenceWriter(p, **_only(kwargs, ("start", "digits", "metadata", "stamp")))
    return VideoWriter(p, fps, **kwargs)


def _only(kwargs: dict, allowed: tuple[str, ...]) -> dict:
    dropped = sorted(set(kwargs) - set(allowed))
    if dropped:
        log.info("options %s do not apply to this output type and are ignored", ", ".join(dropped))
    return {k: v for k, v in kwargs.items() if k in allowed}
