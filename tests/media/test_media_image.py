"""Image reading/writing and media-kind detection."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from liveportrait.errors import InputError
from liveportrait.media import image as im
from liveportrait.provenance import Stamp, read_metadata

LABEL_ONLY = Stamp(watermark=False)  # the label in the metadata, the pixels untouched


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _bomb_png(path: Path, w: int, h: int) -> Path:
    """A tiny file whose header claims w x h pixels (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64))
    path.write_bytes(data + _png_chunk(b"IEND", b""))
    return path


@pytest.mark.parametrize("ext", [".png", ".bmp", ".webp", ".tiff"])
def test_lossless_roundtrip(tmp_path, gradient, no_leftovers, ext):
    rgb = gradient(37, 53, 3)
    kwargs = {"lossless": True} if ext == ".webp" else {}
    path = im.write_image(tmp_path / f"a{ext}", rgb, stamp=LABEL_ONLY, **kwargs)
    back = im.read_image(path)
    assert back.shape == rgb.shape and back.dtype == np.uint8
    assert np.array_equal(back, rgb)
    if ext != ".bmp":  # BMP has no place for text
        assert read_metadata(path)["run_id"] == LABEL_ONLY.run_id
    no_leftovers(tmp_path)


def test_jpeg_roundtrip_and_reference_images(tmp_path, examples_dir, gradient):
    back = im.read_image(im.write_image(tmp_path / "a.jpg", gradient(64, 64)))
    assert np.abs(back.astype(int) - gradient(64, 64)).mean() < 3
    s9 = im.read_image(examples_dir / "source" / "s9.jpg")
    assert s9.shape == (1280, 720, 3) and s9.dtype == np.uint8 and s9.flags.c_contiguous


@pytest.mark.parametrize("ext", [".png", ".jpg", ".webp", ".tif"])
def test_metadata_roundtrip(tmp_path, gradient, ext):
    meta = {"liveportrait": "0.1.0", "source": "s1.jpg", "params": {"a": 1}}
    path = im.write_image(tmp_path / f"m{ext}", gradient(16, 16), meta)
    back = im.read_image_metadata(path)
    assert back["liveportrait"] == "0.1.0" and back["source"] == "s1.jpg"
    assert back["params"] == '{"a": 1}'


def test_exif_orientation_applied(tmp_path):
    rgb = np.zeros((20, 40, 3), np.uint8)
    rgb[:, :10] = 255  # white band on the stored image's left
    pil = Image.fromarray(rgb)
    exif = Image.Exif()
    exif[0x0112] = 6  # display = stored rotated 90 degrees clockwise
    pil.save(tmp_path / "o.jpg", exif=exif, quality=100)
    back = im.read_image(tmp_path / "o.jpg")
    assert back.shape == (40, 20, 3)
    assert back[:10].mean() > 200 and back[20:].mean() < 50  # the band is now at the top


def test_alpha_kept_apart(tmp_path, gradient):
    rgba = np.dstack([gradient(12, 10), np.arange(120, dtype=np.uint8).reshape(12, 10)])
    path = im.write_image(tmp_path / "a.png", rgba, stamp=LABEL_ONLY)
    rgb, alpha = im.read_image_with_alpha(path)
    assert rgb.shape == (12, 10, 3) and np.array_equal(rgb, rgba[..., :3])
    assert np.array_equal(alpha, rgba[..., 3])
    assert im.read_image(path).shape == (12, 10, 3)
    assert np.array_equal(im.read_image_rgba(path), rgba)
    opaque = im.write_image(tmp_path / "b.png", rgba[..., :3])
    assert im.read_image_with_alpha(opaque)[1] is None
    assert (im.read_image_rgba(opaque)[..., 3] == 255).all()


def test_palette_with_transparency_gives_alpha(tmp_path):
    p = Image.new("P", (8, 8), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.save(tmp_path / "p.png", transparency=0)
    rgb, alpha = im.read_image_with_alpha(tmp_path / "p.png")
    assert (rgb[..., 0] == 255).all() and alpha is not None and (alpha == 255).all()


def test_gray_and_16bit(tmp_path):
    g = np.arange(256, dtype=np.uint8).reshape(16, 16)
    Image.fromarray(g, "L").save(tmp_path / "g.png")
    back = im.read_image(tmp_path / "g.png")
    assert back.shape == (16, 16, 3) and np.array_equal(back[..., 1], g) and np.array_equal(back[..., 2], g)
    deep = (g.astype(np.uint16) * 257).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "g16.png")  # mode I;16
    assert Image.open(tmp_path / "g16.png").mode.startswith("I")
    assert np.array_equal(im.read_image(tmp_path / "g16.png")[..., 0], g)


def test_user_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        im.read_image(tmp_path / "missing.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        im.read_image(tmp_path / "empty.png")
    (tmp_path / "junk.jpg").write_bytes(b"this is not an image at all" * 10)
    with pytest.raises(InputError, match="not a readable image"):
        im.read_image(tmp_path / "junk.jpg")
    with pytest.raises(InputError, match="folder"):
        im.read_image(tmp_path)


def test_truncated_jpeg_is_an_error(tmp_path, examples_dir):
    data = (examples_dir / "source" / "s5.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt"):
        im.read_image(tmp_path / "cut.jpg")


def test_decompression_bombs_refused(tmp_path, gradient):
    im.write_image(tmp_path / "big.png", gradient(100, 100))
    with pytest.raises(InputError, match="too large"):
        im.read_image(tmp_path / "big.png", max_pixels=5000)
    assert im.read_image(tmp_path / "big.png", max_pixels=10_000).shape == (100, 100, 3)
    _bomb_png(tmp_path / "bomb.png", 12_000, 12_000)  # 144 MP: over our default, under Pillow's error
    with pytest.raises(InputError, match="too large"):
        im.read_image(tmp_path / "bomb.png")
    _bomb_png(tmp_path / "bomb2.png", 40_000, 40_000)  # 1.6 GP: Pillow refuses too
    with pytest.raises(InputError, match="too large"):
        im.read_image(tmp_path / "bomb2.png")


def test_write_is_atomic(tmp_path, gradient, no_leftovers):
    target = im.write_image(tmp_path / "out.png", gradient(8, 8))
    before = target.read_bytes()
    with pytest.raises(InputError, match="alpha"):
        im.write_image(tmp_path / "out.jpg", np.zeros((8, 8, 4), np.uint8))
    assert not (tmp_path / "out.jpg").exists()
    with pytest.raises(ValueError):
        im.write_image(target, np.zeros((8, 8, 3), np.float32))
    assert target.read_bytes() == before
    im.write_image(target, gradient(8, 8, 5))  # overwrite in place
    assert target.read_bytes() != before
    with pytest.raises(InputError, match="cannot write an image as"):
        im.write_image(tmp_path / "x.xyz", gradient(8, 8))
    im.write_image(tmp_path / "new" / "dir" / "x.png", gradient(4, 4))  # parents are created
    no_leftovers(tmp_path)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # as open() would make it, not mkstemp's 0600


def test_kinds(tmp_path, examples_dir, gradient):
    drv = examples_dir / "driving"
    assert im.is_image(examples_dir / "source" / "s1.jpg")
    assert im.is_video(drv / "d0.mp4") and not im.is_image(drv / "d0.mp4")
    assert im.is_template(drv / "d1.pkl") and im.is_template(drv / "wink.pkl")
    assert im.is_image(drv / "d12.jpg")
    # by extension when the file does not exist
    assert im.is_video(tmp_path / "x.MOV") and im.is_image(tmp_path / "x.WebP") and im.is_template(tmp_path / "t.npz")
    assert im.media_kind(tmp_path / "x.txt") is None
    # content wins over a wrong extension
    im.write_image(tmp_path / "real.png", gradient(4, 4))
    (tmp_path / "fake.mp4").write_bytes((tmp_path / "real.png").read_bytes())
    assert im.is_image(tmp_path / "fake.mp4") and not im.is_video(tmp_path / "fake.mp4")
    (tmp_path / "clip.jpg").write_bytes((drv / "d0.mp4").read_bytes()[:64])
    assert im.is_video(tmp_path / "clip.jpg")
    assert im.media_kind(tmp_path) is None  # folders are not videos
