"""Checks on files that come in through the web app and the job server, with messages a user can act on.

Each check raises :class:`~liveportrait.errors.InputError`; the app shows its message as is.
Faces are checked where they are needed (the cropper raises ``NoFaceError``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from .errors import InputError

KINDS = {"image": "a photo", "video": "a video", "template": "a motion template (.pkl or .lpt.npz)",
         "audio": "a sound file"}


@dataclass(frozen=True)
class UploadLimits:
    image_mb: float = 30
    video_mb: float = 500
    template_mb: float = 50
    audio_mb: float = 200
    max_pixels: int = 40_000_000  # 40 megapixels: larger photos are refused before decoding
    video_seconds: float = 600
    audio_seconds: float = 600

    def mb(self, kind: str) -> float:
        return {"image": self.image_mb, "video": self.video_mb, "template": self.template_mb,
                "audio": self.audio_mb}[kind]

    @classmethod
    def every_kind_at_most(cls, mb: float, **other) -> "UploadLimits":
        """Limits with every kind's size at ``mb`` (a kind added later is covered too, so the largest
        upload stays ``mb``), the other fields from ``other`` or the defaults."""
        return cls(**{f.name: mb for f in fields(cls) if f.name.endswith("_mb")}, **other)

    @property
    def largest_mb(self) -> float:
        return max(self.image_mb, self.video_mb, self.template_mb, self.audio_mb)


def _describe(kinds) -> str:
    names = [KINDS[k] for k in kinds]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " or " + names[-1]


def _arrived(path, what: str) -> tuple[Path, int]:
    """The uploaded file and its size: given, there and not empty, else one line that says which."""
    if path is None or str(path) == "":
        raise InputError(f"Please upload {what} first.")
    p = Path(path)
    if not p.is_file():
        raise InputError(f"The {what} upload did not arrive ({p.name}); please upload it again.")
    size = p.stat().st_size
    if size == 0:
        raise InputError(f"{p.name} is empty.")
    return p, size


def check_upload(path: str | os.PathLike | None, kinds: tuple[str, ...], what: str,
                 limits: UploadLimits = UploadLimits()) -> tuple[Path, str]:
    """The uploaded file and its kind, after checking presence, kind (from its content) and size."""
    from .media import media_kind, sniff_kind

    p, size = _arrived(path, what)
    kind = sniff_kind(p)
    if kind is None:
        # content says nothing definite: trust the name only for formats without a magic number
        # (zipped .npz templates, old pickles, some video containers), never for pictures
        kind = media_kind(p)
        if kind == "image":
            kind = None
    if kind not in kinds:
        raise InputError(f"{p.name} is not {_describe(kinds)}; please upload {what}.")
    limit = limits.mb(kind)
    if size > limit * 1024 * 1024:
        raise InputError(f"{p.name} is {size / 1024 / 1024:.0f} MB; {KINDS[kind]} may be at most {limit:g} MB here.")
    if kind == "video":
        from .media import probe

        info = probe(p)
        if info.duration and info.duration > limits.video_seconds:
            raise InputError(f"{p.name} lasts {info.duration:.0f} s; videos may be at most "
                             f"{limits.video_seconds:g} s here. Trim it first.")
    return p, kind


def load_photo(path: str | os.PathLike | None, what: str = "a portrait photo",
               limits: UploadLimits = UploadLimits()) -> np.ndarray:
    """A checked upload decoded as RGB uint8 (the pixel count is checked before decoding)."""
    from .media import read_image

    p, _ = check_upload(path, ("image",), what, limits)
    try:
        return read_image(p, max_pixels=limits.max_pixels)
    except InputError as exc:
        raise InputError(str(exc).replace(str(p), p.name)) from None


def check_audio(path: str | os.PathLike | None, what: str = "a speech recording",
                limits: UploadLimits = UploadLimits()) -> Path:
    """An uploaded sound (any file PyAV reads: wav, mp3, flac, m4a, ogg, a recording, or a video's sound),
    checked for presence, size, a readable audio track and its length (decoded once, up to the limit)."""
    from .audio.io import is_audio_file, probe_audio
    from .media import sniff_kind

    p, size = _arrived(path, what)
    kind = sniff_kind(p)
    if kind in ("image", "template") or (kind is None and not is_audio_file(p)):
        raise InputError(f"{p.name} is not {KINDS['audio']}; please upload {what}.")
    kind = "audio" if kind is None else kind  # a video's (or a browser recording's) sound is taken too
    limit = limits.mb(kind)
    if size > limit * 1024 * 1024:
        raise InputError(f"{p.name} is {size / 1024 / 1024:.0f} MB; {KINDS[kind]} may be at most {limit:g} MB here.")
    try:
        info = probe_audio(p, max_seconds=limits.audio_seconds + 1)  # decodes no further than the limit
    except InputError as exc:
        raise InputError(str(exc).replace(str(p), p.name)) from None
    if info.seconds > limits.audio_seconds:
        raise InputError(f"{p.name} lasts more than {limits.audio_seconds:g} s, the longest speech taken here. "
                         "Trim it first.")
    return p
