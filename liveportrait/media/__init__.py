"""Media input and output: images, videos (streamed), GIF / PNG sequences and motion templates.

Names are imported lazily so that ``import liveportrait.media`` (and the CLI's ``--help``) does not
load PyAV or Pillow until they are used.

    from liveportrait.media import VideoReader, VideoWriter, read_image, load_template

    with VideoReader("driving.mp4") as frames, VideoWriter("out.mp4", frames.info.fps,
                                                           audio_from="driving.mp4") as out:
        for rgb in frames:
            out.write(animate(rgb))
"""

from __future__ import annotations

from .._lazy import lazy_exports

_EXPORTS = {
    "image": (
        "DEFAULT_MAX_PIXELS",
        "is_image",
        "is_template",
        "is_video",
        "media_kind",
        "read_image",
        "read_image_metadata",
        "read_image_rgba",
        "read_image_with_alpha",
        "sniff_kind",
        "write_image",
    ),
    "video": (
        "DEFAULT_CRF",
        "GifWriter",
        "PngSequenceWriter",
        "VideoInfo",
        "VideoReader",
        "VideoWriter",
        "iter_frames",
        "open_writer",
        "probe",
        "read_frames",
        "write_gif",
        "write_png_sequence",
        "write_video",
    ),
    "template": (
        "MotionTemplate",
        "RestrictedUnpickler",
        "TEMPLATE_SUFFIX",
        "TemplateBuilder",
        "load_template",
        "safe_pickle_load",
        "save_template",
        "template_from_reference",
    ),
    "streams": ("BackgroundWriter", "prefetch"),
    ".files": ("as_fps",),  # liveportrait.files
}

__getattr__, __dir__, __all__ = lazy_exports(__name__, globals(), _EXPORTS)


