"""``liveportrait verify``: end to end on marked and unmarked files, and its exit codes."""

from __future__ import annotations

import json
import shutil

import pytest
from PIL import Image

from liveportrait.cli import main
from liveportrait.provenance import Stamp, attacks
from liveportrait.provenance.verify import verify

RUN = "c0ffee42"


@pytest.fixture(scope="module")
def marked_mp4(tmp_path_factory, clip, media):
    path = tmp_path_factory.mktemp("v") / "animation.mp4"
    return media.write_video(path, clip, stamp=Stamp(run_id=RUN))


def test_marked_video_verifies(marked_mp4):
    rep = verify(marked_mp4)
    assert rep.marked and rep.kind == "video"
    assert rep.metadata["run_id"] == RUN
    assert rep.watermark.found and rep.watermark.run_id == RUN
    assert rep.run_ids_agree is True


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".gif", ".webp"])
def test_marked_images_verify(tmp_path, photos, media, suffix):
    path = media.save_image(tmp_path / f"out{suffix}", media.square(photos["s1.jpg"]), Stamp(run_id=RUN))
    rep = verify(path)
    assert rep.marked and rep.kind == "image"
    assert rep.metadata["run_id"] == RUN and rep.watermark.run_id == RUN


def test_animated_gif_verifies(tmp_path, clip):
    stamp = Stamp(run_id=RUN)
    frames = [Image.fromarray(stamp.mark(f)) for f in clip[:8]]
    path = tmp_path / "anim.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=40, loop=0, **stamp.save_kwargs("gif"))
    rep = verify(path)
    assert rep.metadata["run_id"] == RUN and rep.watermark.run_id == RUN and rep.watermark.frames == 8


def test_watermark_outlives_stripped_metadata(tmp_path, clip):
    """Re-encoded at CRF 28, halved and cropped, with every tag gone: the pixels still tell."""
    stamp = Stamp(run_id=RUN)
    marked = [stamp.mark(f) for f in clip]
    frames = [attacks.crop(attacks.half(f)) for f in attacks.h264(marked, crf=28)]
    path = tmp_path / "reupload.png"
    Image.fromarray(frames[5]).save(path)
    rep = verify(path)
    assert rep.metadata is None and rep.watermark.found and rep.watermark.run_id == RUN and rep.marked


def test_no_watermark_keeps_the_label(tmp_path, clip, media):
    stamp = Stamp(run_id=RUN, watermark=False)
    assert stamp.mark(clip[0]) is clip[0]
    path = media.write_video(tmp_path / "plain.mp4", clip[:6], stamp=stamp)
    rep = verify(path)
    assert rep.metadata["run_id"] == RUN
    assert not rep.watermark.found
    assert rep.marked
    assert main(["verify", str(path)]) == 0


def test_every_unmarked_example_verifies_unmarked(examples_dir):
    files = [p for p in sorted(examples_dir.rglob("*")) if p.suffix in (".jpg", ".mp4")]
    assert len(files) >= 15
    for p in files:
        rep = verify(p)
        assert not rep.marked, (p.name, rep.as_dict())
        assert not rep.watermark.found and rep.watermark.payload is None
        assert rep.watermark.p_false_alarm > 1e-4, (p.name, rep.watermark.as_dict())


def test_cli_exit_codes_and_report(marked_mp4, examples_dir, tmp_path, capsys):
    assert main(["verify", str(marked_mp4)]) == 0
    out = capsys.readouterr().out
    assert "MARKED" in out and RUN in out and "metadata:  found" in out and "watermark: found" in out

    assert main(["verify", str(examples_dir / "source" / "s1.jpg")]) == 1
    out = capsys.readouterr().out
    assert "NOT MARKED" in out and "metadata:  not found" in out

    assert main(["verify", str(tmp_path / "missing.mp4")]) == 2
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"\x00" * 1000)
    assert main(["verify", str(garbage)]) == 2
    pickle = examples_dir / "driving" / "d1.pkl"
    if pickle.exists():
        assert main(["verify", str(pickle)]) == 2
    capsys.readouterr()


def test_cli_json(marked_mp4, capsys):
    assert main(["verify", "--json", str(marked_mp4)]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["marked"] is True and data["watermark"]["run_id"] == RUN and data["metadata"]["run_id"] == RUN
    assert data["watermark"]["p_false_alarm"] < 1e-9


def test_file_without_extension(tmp_path, marked_mp4):
    path = tmp_path / "download"
    shutil.copy(marked_mp4, path)
    rep = verify(path)
    assert rep.kind == "video" and rep.watermark.run_id == RUN
