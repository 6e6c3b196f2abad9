"""Provenance: every output says it was generated, and anyone can check.

Two independent marks go into every image, gif and video that liveportrait writes:

* a readable label in the file's metadata (:mod:`.metadata`): tool, version, time, run id;
* an invisible watermark in the pixels (:mod:`.watermark`) carrying the tool id and the run id,
  which survives re-encoding, resizing to half size and cropping.

With a signing certificate (:mod:`.c2pa`), a third: a C2PA manifest (Content Credentials) signed into
every mp4, jpg, png, gif, webp and tiff, saying the file was created by a trained algorithm (liveportrait,
its version, backend and precision) from the source and driving (by hash); ``Stamp(c2pa=...)`` carries it
to the writers, which sign before the final rename.

``liveportrait verify FILE`` reports all three (:func:`liveportrait.provenance.verify.verify`).

The writers of :mod:`liveportrait.media` apply both themselves (``write_image``, ``VideoWriter``,
``GifWriter``, ``PngSequenceWriter``, ``open_writer``, ``write_video``, ...): a command only says which
:class:`Stamp` (one per run, so that every file of the run has the same run id) and never marks a
frame itself::

    stamp = Stamp(watermark=not args.no_watermark)     # one per run; --no-watermark keeps the label
    with VideoWriter(path, fps, stamp=stamp) as out:   # label in the container, watermark in each frame
        ...
    write_image(path, frame, stamp=stamp)

A writer given no stamp (``stamp=None``, the default) makes a fresh one: label and watermark with a
new run id, so forgetting the argument still gives a marked file.  ``stamp=NOT_GENERATED`` writes
neither; it is only for media that no network produced (crops of a real photo, test patterns).

For code that writes files without those writers, :class:`Stamp` also has the pieces::

    frame = stamp.mark(frame)                           # every RGB uint8 frame, before encoding
    image.save(path, **stamp.save_kwargs("png"))        # images: PNG, JPEG, GIF, WebP
    container = av.open(path, "w", options=stamp.container_options("mp4"))
    stamp.tag(container)                                # videos: container tags
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .metadata import container_options, label, read_metadata, save_kwargs, tag_container
from .watermark import Detection, Watermarker, detect, detect_frames, new_run_id

__all__ = [
    "NOT_GENERATED",
    "NotGenerated",
    "Detection",
    "Stamp",
    "Watermarker",
    "detect",
    "detect_frames",
    "label",
    "new_run_id",
    "read_metadata",
    "writer_stamp",
]


@dataclass
class Stamp:
    """Label and watermark of one run.  ``watermark=False`` keeps the label and skips the pixels; ``c2pa``
    (:class:`.c2pa.ContentCredentials`, from :func:`.c2pa.content_credentials`) also signs every file."""

    run_id: str = field(default_factory=new_run_id)
    watermark: bool = True
    strength: float | None = None
    # C2PA Content Credentials (a .c2pa.ContentCredentials): the writers sign every file with them; None signs nothing
    c2pa: object | None = None

    def __post_init__(self):
        self.label = label(self.run_id)
        self._marker = None

    def mark(self, frame):
        """The frame with the watermark (or the frame itself when the watermark is off)."""
        if not self.watermark:
            return frame
        if self._marker is None:
            kw = {} if self.strength is None else {"strength": self.strength}
            self._marker = Watermarker(self.run_id, **kw)
        return self._marker.embed(frame)

    def save_kwargs(self, fmt: str) -> dict:
        return save_kwargs(fmt, self.label)

    def container_options(self, fmt: str = "mp4") -> dict:
        return container_options(fmt)

    def tag(self, container) -> None:
        tag_container(container, self.label)


class NotGenerated:
    """The type of :data:`NOT_GENERATED`, a single marker (compare with ``is``)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NOT_GENERATED"

    def __reduce__(self):
        return "NOT_GENERATED"


NOT_GENERATED = NotGenerated()
"""Pass as a writer's ``stamp`` to write neither label nor watermark: only for media no network made."""


def writer_stamp(stamp: Stamp | NotGenerated | None) -> Stamp | None:
    """The stamp a writer applies: a fresh one (label and watermark, new run id) for ``None``,
    nothing (``None``) for :data:`NOT_GENERATED`, else the stamp given."""
    if stamp is None:
        return Stamp()
    if stamp is NOT_GENERATED:
        return None
    if not isinstance(stamp, Stamp):
        raise TypeError(f"stamp must be a provenance.Stamp, None (mark) or NOT_GENERATED, got {stamp!r}")
    return stamp
