"""Still images: reading (any common format, EXIF rotation, alpha kept apart), atomic writing, and
telling images, videos and motion templates apart.

Pillow does the decoding, so unlike OpenCV (which the reference uses) a truncated JPEG is an error
rather than a grey bottom half, EXIF orientation is honoured and the pixel count is checked from
the header before any pixels are decoded.
"""

from __future__ import annotations

import contextlib
import json
import threading
import warnings
from pathlib import Path
from typing import Iterator, Literal

import numpy as np
from PIL import Image, ImageOps, PngImagePlugin, UnidentifiedImageError

from ..errors import FrameError, InputError
from ..files import PathLike, atomic_output, by_extension, check_input_file, read_head
from ..provenance import NotGenerated, Stamp, writer_stamp
from ..provenance.c2pa import sign_output

# 100 megapixels is about 10000x10000; larger images are refused before decoding (decompression bombs)
DEFAULT_MAX_PIXELS = 100_000_000

IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".avif"})
VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".mov", ".m4v", ".avi", ".webm", ".mkv", ".mpg", ".mpeg", ".ts", ".flv", ".wmv", ".3gp", ".ogv"}
)
# .pkl: the reference's pickled templates (read restrictedly); .npz: our own format (template.py)
TEMPLATE_EXTENSIONS = frozenset({".pkl", ".pickle", ".npz"})

MediaKind = Literal["image", "video", "template"]

# ISO-BMFF brands that hold still images rather than movies
_IMAGE_BRANDS = (b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1", b"avif", b"avis")
_AUDIO_BRANDS = (b"M4A ", b"M4B ", b"M4P ")

_WRITE_FORMATS = {
    ".png": "PNG",
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".webp": "WEBP",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
}
_EXIF_DESCRIPTION = 0x010E  # ImageDescription: where metadata goes for WEBP and TIFF
_pillow_limit_lock = threading.Lock()


# --------------------------------------------------------------------------------------------
# kinds


def sniff_kind(path: PathLike) -> MediaKind | None:
    """Kind from the first bytes of an existing file, or None when they say nothing definite."""
    head = read_head(path, 32)
    if len(head) < 4:
        return None
    if head[:3] == b"\xff\xd8\xff" or head[:8] == b"\x89PNG\r\n\x1a\n" or head[:6] in (b"GIF87a", b"GIF89a"):
        return "image"
    if head[:2] == b"BM" or head[:4] in (b"II*\x00", b"MM\x00*"):
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image"
    if head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "video"
    if head[4:8] == b"ftyp":
        if head[8:12] in _AUDIO_BRANDS:
            return None
        return "image" if head[8:12] in _IMAGE_BRANDS else "video"
    if head[4:8] in (b"moov", b"mdat", b"wide", b"free", b"skip"):
        return "video"
    if head[:4] == b"\x1a\x45\xdf\xa3" or head[:3] == b"FLV" or head[:4] == b"OggS":
        return "video"
    if head[0] == 0x80 and 2 <= head[1] <= 5:  # pickle protocol 2..5 header
        return "template"
    return None


def media_kind(path: PathLike) -> MediaKind | None:
    """What a path holds: sniffed from its content when it exists, else judged by its extension.

    A zip (``.npz``) or an old-protocol pickle has no distinctive header, so those fall back to the
    extension too. Folders are not media (the reference calls them videos but cannot read them).
    """
    p = Path(path)
    if p.is_dir():
        return None
    if p.is_file():
        kind = sniff_kind(p)
        if kind is not None:
            return kind
    ext = p.suffix.lower()
    if ext in IMAGE_EXTENSIONS:
        return "image"
    if ext in VIDEO_EXTENSIONS:
        return "video"
    if ext in TEMPLATE_EXTENSIONS:
        return "template"
    return None


def is_image(path: PathLike) -> bool:
    return media_kind(path) == "image"


def is_video(path: PathLike) -> bool:
    return media_kind(path) == "video"


def is_template(path: PathLike) -> bool:
    return media_kind(path) == "template"


# --------------------------------------------------------------------------------------------
# reading


def limit_size(image: np.ndarray, max_dim: int) -> np.ndarray:
    """A source photo with its longest side shrunk to ``max_dim`` (0: no limit) by area interpolation."""
    h, w = image.shape[:2]
    if max_dim and max(h, w) > max_dim:
        import cv2

        s = max_dim / max(h, w)
        image = cv2.resize(image, (max(1, int(w * s)), max(1, int(h * s))), interpolation=cv2.INTER_AREA)
    return image


def read_image(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image as HxWx3 uint8 RGB, upright per EXIF; any alpha channel is dropped."""
    return read_image_with_alpha(path, max_pixels=max_pixels)[0]


def read_image_rgba(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """An image as HxWx4 uint8 RGBA (alpha 255 where the file has none)."""
    rgb, alpha = read_image_with_alpha(path, max_pixels=max_pixels)
    if alpha is None:
        alpha = np.full(rgb.shape[:2], 255, np.uint8)
    return np.dstack([rgb, alpha])


def read_image_with_alpha(
    path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, np.ndarray | None]:
    """(HxWx3 uint8 RGB, HxW uint8 alpha or None): the networks take RGB, the caller may re-attach alpha."""
    p = check_input_file(path, "image")
    try:
        with _pillow_pixel_limit(max_pixels), warnings.catch_warnings():
            # our own limit decides; Pillow's warning at 89 MP would only be noise
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(p)
        with im:
            _check_pixels(p, im.size, max_pixels)
            upright = _exif_upright(im)
            return _to_rgb_alpha(upright)
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"{p}: image too large to decode safely ({exc})") from exc
    except UnidentifiedImageError as exc:
        raise InputError(f"{p}: not a readable image (unknown or unsupported format)") from exc
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as exc:
        raise InputError(f"{p}: unreadable or corrupt image ({exc})") from exc


def image_size(path: PathLike, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[int, int]:
    """(width, height) from the header alone, with ``read_image``'s checks (missing, empty, unreadable,
    too many pixels) and none of its decoding: a tool that reads a picture its own way asks this first."""
    p = check_input_file(path, "image")
    try:
        with _pillow_pixel_limit(max_pixels), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                _check_pixels(p, im.size, max_pixels)
                return im.size
    except InputError:
        raise
    except Image.DecompressionBombError as exc:
        raise InputError(f"{p}: image too large to decode safely ({exc})") from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
        raise InputError(f"{p}: not a readable image ({type(exc).__name__})") from exc


def read_image_metadata(path: PathLike) -> dict[str, str]:
    """Metadata written by ``write_image``: PNG text chunks, the JPEG comment or EXIF description."""
    p = check_input_file(path, "image")
    try:
        with Image.open(p) as im:
            if im.format == "PNG":
                return {str(k): str(v) for k, v in getattr(im, "text", {}).items()}
            blob = im.info.get("comment") if im.format == "JPEG" else im.getexif().get(_EXIF_DESCRIPTION)
    except (OSError, ValueError, SyntaxError) as exc:
        raise InputError(f"{p}: unreadable or corrupt image ({exc})") from exc
    return _decode_metadata_blob(blob)


@contextlib.contextmanager
def _pillow_pixel_limit(max_pixels: int) -> Iterator[None]:
    """Let our own limit rule: Pillow refuses above 2x its global limit even when ours is higher.

    Only a cap above Pillow's hard limit (about 179 MP) touches Pillow's global, under a lock.
    """
    limit = Image.MAX_IMAGE_PIXELS
    if limit is None or max_pixels <= 2 * limit:
        yield
        return
    with _pillow_limit_lock:
        Image.MAX_IMAGE_PIXELS = max_pixels
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = limit


def _check_pixels(p: Path, size: tuple[int, int], max_pixels: int) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise InputError(f"{p}: image has no pixels ({w}x{h})")
    if w * h > max_pixels:
        raise InputError(
            f"{p}: image too large ({w}x{h} = {w * h / 1e6:.0f} MP; the limit is {max_pixels / 1e6:.0f} MP)"
        )


def _exif_upright(im: Image.Image) -> Image.Image:
    """Apply the EXIF orientation; a broken EXIF block is ignored rather than fatal."""
    try:
        return ImageOps.exif_transpose(im)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        return im


def _to_rgb_alpha(im: Image.Image) -> tuple[np.ndarray, np.ndarray | None]:
    mode = im.mode
    if mode.startswith("I") or mode == "F":
        return _deep_gray_to_rgb(im), None
    if _has_alpha(im):
        rgba = np.asarray(im.convert("RGBA"))
        return np.ascontiguousarray(rgba[..., :3]), np.ascontiguousarray(rgba[..., 3])
    return np.asarray(im.convert("RGB")).copy(), None


def _has_alpha(im: Image.Image) -> bool:
    return im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in im.info


def _deep_gray_to_rgb(im: Image.Image) -> np.ndarray:
    """16-bit ("I;16", "I") or float ("F") grayscale to 8-bit RGB by scaling, not truncating."""
    a = np.asarray(im)
    if a.dtype.kind == "f":
        a = np.nan_to_num(a.astype(np.float64))
        a = a * 255.0 if a.max(initial=0.0) <= 1.0 else a
        g = np.clip(np.rint(a), 0, 255).astype(np.uint8)
    else:
        a = np.clip(a.astype(np.int64), 0, 65535)
        g = ((a + 128) // 257).astype(np.uint8)
    return np.repeat(g[..., None], 3, axis=2)


# --------------------------------------------------------------------------------------------
# writing


def write_image(
    path: PathLike,
    image: np.ndarray,
    metadata: dict[str, object] | None = None,
    *,
    quality: int = 95,
    lossless: bool = False,
    save_kwargs: dict | None = None,
    stamp: Stamp | NotGenerated | None = None,
) -> Path:
    """Write HxWx3 RGB (or HxWx4 RGBA, or HxW gray) uint8 atomically; the format follows the extension.

    Provenance: the picture gets the watermark of ``stamp`` and its "AI-generated with liveportrait"
    label (PNG iTXt and XMP, JPEG/WEBP XMP, EXIF and comment, TIFF EXIF; BMP has room for no label,
    only the watermark). ``stamp=None`` (the default) marks with a fresh run id; a
    ``Stamp(watermark=False)`` writes the label only; ``provenance.NOT_GENERATED`` writes neither and is
    only for pictures no network produced (a crop of the real photo, say).

    Metadata goes into PNG text chunks, the JPEG comment (as JSON) or the WEBP/TIFF EXIF image
    description (as JSON, beside the label); BMP has nowhere to keep it, so it is dropped there.
    ``save_kwargs`` are extra Pillow ``save`` arguments that win over these. JPEG quality 95 is
    what OpenCV's imwrite (used by the reference) defaults to.
    """
    fmt = _write_format(path)
    pil = _to_pil(image)
    if pil.mode == "RGBA" and fmt in ("JPEG", "BMP"):
        raise InputError(f"{path}: {fmt} cannot store an alpha channel; write .png or .webp instead")
    stamp = writer_stamp(stamp)
    if stamp is not None and stamp.watermark:
        pil = _to_pil(stamp.mark(np.asarray(pil)))
    kwargs = _save_kwargs(fmt, metadata or {}, quality, stamp.label if stamp is not None else None)
    kwargs.update(save_kwargs or {})  # extra Pillow arguments of the caller win
    if lossless and fmt == "WEBP":
        kwargs["lossless"] = True
    with atomic_output(path) as tmp:
        pil.save(tmp, format=fmt, **kwargs)
        sign_output(stamp, tmp, Path(path))  # a C2PA manifest when the stamp has credentials, before the rename
    return Path(path)


def _write_format(path: PathLike) -> str:
    return by_extension(path, _WRITE_FORMATS, "an image")


def _to_pil(image: np.ndarray) -> Image.Image:
    a = np.asarray(image)
    if a.dtype != np.uint8:
        raise FrameError(f"write_image expects uint8 pixels, got {a.dtype}")
    if a.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(a), "L")
    if a.ndim == 3 and a.shape[2] in (3, 4):
        return Image.fromarray(np.ascontiguousarray(a), "RGB" if a.shape[2] == 3 else "RGBA")
    raise FrameError(f"write_image expects HxW, HxWx3 or HxWx4 pixels, got shape {a.shape}")


def _save_kwargs(fmt: str, metadata: dict[str, object], quality: int, label: dict[str, str] | None = None) -> dict:
    """Pillow ``save`` arguments: quality, the caller's metadata and the provenance label (if any).

    Where both want the same place the label keeps its own: PNG chunks of the label's names, and in
    the WEBP/TIFF EXIF description the label's text goes into the JSON beside the metadata.
    """
    from ..provenance.metadata import label_text, png_info
    from ..provenance.metadata import save_kwargs as label_kwargs

    kwargs: dict = {}
    if fmt in ("JPEG", "WEBP"):
        kwargs["quality"] = quality
    if label is not None:
        kwargs.update(label_kwargs(fmt, label))
    if not metadata:
        return kwargs
    if fmt == "PNG":
        info = png_info(label) if label is not None else PngImagePlugin.PngInfo()
        for k, v in metadata.items():
            if label is not None and str(k) in _LABEL_PNG_KEYS:
                continue
            info.add_itxt(str(k), v if isinstance(v, str) else json.dumps(v))
        kwargs["pnginfo"] = info
    elif fmt == "JPEG":
        kwargs["comment"] = _encode_metadata_blob(metadata)  # the label stays in the XMP and the EXIF
    elif fmt in ("WEBP", "TIFF"):
        exif = Image.Exif()
        if label is not None:
            exif.load(kwargs["exif"])
            metadata = {**metadata, "provenance": label_text(label)}
        exif[_EXIF_DESCRIPTION] = _encode_metadata_blob(metadata)
        kwargs["exif"] = exif
    return kwargs


_LABEL_PNG_KEYS = frozenset({"Description", "Software", "Creation Time", "XML:com.adobe.xmp"})


def _encode_metadata_blob(metadata: dict[str, object]) -> str:
    return json.dumps({str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()})


def _decode_metadata_blob(blob: object) -> dict[str, str]:
    if isinstance(blob, bytes):
        blob = blob.decode("utf-8", "replace")
    if not isinstance(blob, str):
        return {}
    try:
        data = json.loads(blob)
    except ValueError:
        return {"comment": blob}
    if not isinstance(data, dict):
        return {"comment": blob}
    return {str(k): str(v) for k, v in data.items()}
