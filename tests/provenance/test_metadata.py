"""The readable label: written into PNG, JPEG, GIF, WebP and MP4, and read back."""

from __future__ import annotations

from datetime import datetime, timezone

import av
import numpy as np
import pytest
from PIL import Image

from liveportrait import __version__
from liveportrait.errors import InputError
from liveportrait.provenance import Stamp
from liveportrait.provenance import metadata as M


def test_label_fields():
    when = datetime(2025, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    lab = M.label("cafe0123", created=when)
    assert lab == {
        "statement": "AI-generated with liveportrait",
        "tool": "liveportrait",
        "version": __version__,
        "created": "2025-03-04T05:06:07Z",
        "run_id": "cafe0123",
    }
    assert M.parse_label_text(M.label_text(lab)) == lab
    assert M.parse_xmp(M.xmp_packet(lab)) == lab
    assert M.parse_label_text("a photo of my cat") is None
    assert M.parse_xmp(b"<x:xmpmeta/>") is None


def test_xmp_escapes_and_declares_ai_source():
    lab = M.label('a"<&>b')
    xmp = M.xmp_packet(lab).decode()
    assert M.DIGITAL_SOURCE_TYPE in xmp and "a&quot;&lt;&amp;&gt;b" in xmp
    assert M.parse_xmp(xmp)["run_id"] == 'a"<&>b'


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".webp"])
def test_image_formats_roundtrip(tmp_path, suffix):
    lab = M.label("0123abcd")
    rgb = np.random.default_rng(1).integers(0, 255, (64, 80, 3), dtype=np.uint8)
    path = tmp_path / f"out{suffix}"
    M.save_image(rgb, path, lab)
    got = M.read_metadata(path)
    assert got is not None and got["where"]
    assert {k: got[k] for k in M.FIELDS} == lab


def test_png_chunks_and_jpeg_segments_are_standard(tmp_path):
    lab = M.label("0123abcd")
    rgb = np.zeros((16, 16, 3), np.uint8)
    M.save_image(rgb, tmp_path / "a.png", lab)
    with Image.open(tmp_path / "a.png") as im:
        assert im.text["Software"] == f"liveportrait {__version__}"
        assert "AI-generated with liveportrait" in im.text["Description"]
        assert "XML:com.adobe.xmp" in im.text
    M.save_image(rgb, tmp_path / "a.jpg", lab)
    with Image.open(tmp_path / "a.jpg") as im:
        assert b"AI-generated with liveportrait" in im.info["comment"]
        assert b"trainedAlgorithmicMedia" in im.info["xmp"]
        assert im.getexif()[0x0131] == f"liveportrait {__version__}"


@pytest.mark.parametrize("use_tags", [True, False])
def test_mp4_container_tags(tmp_path, use_tags):
    stamp = Stamp(run_id="feedbeef")
    path = tmp_path / "out.mp4"
    frames = [np.full((64, 64, 3), 100 + i, np.uint8) for i in range(3)]
    options = stamp.container_options("mp4") if use_tags else {}
    with av.open(str(path), "w", options=options) as c:
        stamp.tag(c)
        s = c.add_stream("libx264", rate=25)
        s.width = s.height = 64
        s.pix_fmt = "yuv420p"
        for f in frames:
            for p in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    with av.open(str(path)) as c:
        tags = dict(c.metadata)
    assert "AI-generated with liveportrait" in tags["comment"]
    assert ("software" in tags) == use_tags  # custom keys need movflags=+use_metadata_tags
    got = M.read_metadata(path)
    assert got["run_id"] == "feedbeef" and got["tool"] == "liveportrait" and got["version"] == __version__


def test_examples_carry_no_label(examples_dir):
    files = [p for p in sorted(examples_dir.rglob("*")) if p.suffix in (".jpg", ".mp4")]
    assert len(files) >= 15
    for p in files:
        assert M.read_metadata(p) is None, p


def test_unreadable_files_raise_input_error(tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(InputError):
        M.read_metadata(bad)
    with pytest.raises(InputError):
        M.read_metadata(tmp_path / "missing.mp4")
