"""The media writers mark what they write themselves: label and watermark, without being asked.

Each file here is written by a ``liveportrait.media`` writer called the way a new command would call
it, and checked with the real ``liveportrait verify`` command.
"""

from __future__ import annotations

import pytest

from liveportrait.media import image as im
from liveportrait.media import video as vid
from liveportrait.provenance import NOT_GENERATED, Stamp, read_metadata
from tests.provenance.conftest import STATEMENT, assert_fully_marked, verify_json  # noqa: F401


@pytest.fixture(scope="module")
def picture(photos, media):
    return media.square(photos["s1.jpg"], 384)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_write_image_without_arguments_marks(tmp_path, picture, capsys, suffix):
    first = assert_fully_marked(im.write_image(tmp_path / f"a{suffix}", picture), capsys)
    second = assert_fully_marked(im.write_image(tmp_path / f"b{suffix}", picture), capsys)
    assert first != second  # a fresh run id for each call without a stamp


def test_video_writers_without_arguments_mark(tmp_path, clip, capsys):
    frames = clip[:8]
    vid.write_video(tmp_path / "a.mp4", frames, 25)
    for suffix in (".mov", ".mkv"):
        with vid.VideoWriter(tmp_path / f"a{suffix}", 25) as w:
            w.write_all(frames)
    vid.write_gif(tmp_path / "a.gif", frames, 25)
    vid.write_png_sequence(tmp_path / "seq", frames[:3])
    for name in ("b.mp4", "b.gif", "frames"):
        with vid.open_writer(tmp_path / name, 25) as w:
            for f in frames[:3] if name == "frames" else frames:
                w.write(f)
    files = [tmp_path / n for n in ("a.mp4", "a.mov", "a.mkv", "a.gif", "b.mp4", "b.gif")]
    files += sorted((tmp_path / "seq").glob("*.png")) + sorted((tmp_path / "frames").glob("*.png"))
    assert len(files) == 12
    run_ids = {f.name if f.parent == tmp_path else f.parent.name: assert_fully_marked(f, capsys) for f in files}
    assert len(set(run_ids.values())) == 8  # one per writer; the frames of a sequence share one


def test_one_stamp_gives_its_run_id_to_every_file(tmp_path, clip, picture, capsys):
    stamp = Stamp(run_id="0badcafe")
    vid.write_video(tmp_path / "a.mp4", clip[:6], 25, stamp=stamp)
    im.write_image(tmp_path / "a.jpg", picture, stamp=stamp)
    with vid.GifWriter(tmp_path / "a.gif", 25, stamp=stamp) as w:
        for f in clip[:6]:
            w.write(f)
    for name in ("a.mp4", "a.jpg", "a.gif"):
        assert assert_fully_marked(tmp_path / name, capsys) == "0badcafe"


def test_no_watermark_keeps_the_label(tmp_path, clip, picture, capsys):
    stamp = Stamp(watermark=False)
    vid.write_video(tmp_path / "a.mp4", clip[:6], 25, stamp=stamp)
    for path in (tmp_path / "a.mp4", im.write_image(tmp_path / "a.png", picture, stamp=stamp)):
        code, report = verify_json(path, capsys)
        assert code == 0
        assert report["metadata"]["run_id"] == stamp.run_id and not report["watermark"]["found"]


def test_not_generated_writes_neither(tmp_path, clip, picture, capsys):
    vid.write_video(tmp_path / "a.mp4", clip[:6], 25, stamp=NOT_GENERATED)
    for path in (tmp_path / "a.mp4", im.write_image(tmp_path / "a.png", picture, stamp=NOT_GENERATED)):
        code, report = verify_json(path, capsys)
        assert code == 1 and report["metadata"] is None and not report["watermark"]["found"]
    with pytest.raises(TypeError):
        im.write_image(tmp_path / "b.png", picture, stamp=False)


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".webp", ".tif"])
def test_caller_metadata_and_the_label_both_stay(tmp_path, picture, suffix):
    meta = {"source": "s1.jpg", "params": {"a": 1}}
    path = im.write_image(tmp_path / f"m{suffix}", picture, meta)
    back = im.read_image_metadata(path)
    assert back["source"] == "s1.jpg" and back["params"] == '{"a": 1}'
    assert read_metadata(path)["statement"] == "AI-generated with liveportrait"


def test_caller_video_tags_and_the_label_both_stay(tmp_path, clip):
    import av

    meta = {"title": "t", "liveportrait_params": '{"crf": 18}'}
    vid.write_video(tmp_path / "t.mp4", clip[:4], 25, metadata=meta)
    with av.open(str(tmp_path / "t.mp4")) as c:
        tags = dict(c.metadata)
    assert tags["title"] == "t" and tags["liveportrait_params"] == '{"crf": 18}'
    assert read_metadata(tmp_path / "t.mp4")["statement"] == "AI-generated with liveportrait"
