"""The web app driven through gradio_client, as a script would: every tab, the upload checks, and
that nothing leaves the machine. Tiny networks; the pictures are meaningless, the plumbing is not."""

from __future__ import annotations

import json

import numpy as np
import pytest

from liveportrait.media import probe, read_image


@pytest.fixture(scope="module")
def client(gradio_client):
    return gradio_client


def upload(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def app_error(client, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(*args, **kwargs)
    return str(info.value)


def test_edit_prepares_once_then_each_edit_runs_only_w_and_g(client, examples_dir, net_calls):
    from liveportrait.provenance import read_metadata

    photo = examples_dir / "source/s1.jpg"
    net_calls.clear()
    crop, eye, lip, status = client.predict(upload(photo), 2.5, api_name="/prepare")
    assert dict(net_calls) == {"F": 1, "M": 1}
    assert read_image(crop).shape == (512, 512, 3)
    assert 0 < eye < 0.8 and 0 <= lip < 0.8 and "Ready" in status
    for smile in (0.8, -0.2):
        net_calls.clear()
        out = client.predict(photo=upload(photo), smile=smile, yaw=12, api_name="/edit")
        assert dict(net_calls) == {"W": 1, "G": 1}, "a slider edit must not run F or M again"
        edited, original = read_image(out), read_image(photo)
        assert edited.shape == original.shape  # pasted back into the whole photo
        # far from the face only the invisible watermark touches the photo
        assert np.abs(edited[:60, :60].astype(int) - original[:60, :60]).mean() < 2
    assert "AI-generated" in json.dumps(read_metadata(out))
    # expression from a driving photo: M runs on the driving face once, the source is not prepared again
    net_calls.clear()
    out = client.predict(photo=upload(photo), driving_photo=upload(examples_dir / "driving/d30.jpg"), smile=0.3,
                         api_name="/edit")
    assert dict(net_calls) == {"M": 1, "W": 1, "G": 1}
    assert read_image(out).shape == original.shape


def test_uploads_are_checked_with_clear_messages(client, tmp_path):
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a picture at all")
    assert "holiday.jpg is not a photo" in app_error(client, upload(fake), 2.5, api_name="/prepare")

    blank = tmp_path / "wall.png"
    from PIL import Image

    Image.fromarray(np.full((320, 320, 3), 200, np.uint8)).save(blank)
    assert "no human face" in app_error(client, upload(blank), 2.5, api_name="/prepare")

    big = tmp_path / "huge.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (1200, 1200, 3), np.uint8)).save(big)
    assert big.stat().st_size > 2 * 1024 * 1024
    assert "at most 2 MB" in app_error(client, upload(big), 2.5, api_name="/prepare")

    assert "upload a driving" in app_error(client, upload(blank), None, api_name="/animate")


def test_animate_with_a_driving_photo_gives_a_picture(client, examples_dir):
    video, picture = client.predict(upload(examples_dir / "source/s1.jpg"), upload(examples_dir / "driving/d30.jpg"),
                                    api_name="/animate")
    assert video is None
    assert read_image(picture).shape == read_image(examples_dir / "source/s1.jpg").shape


def test_animate_with_a_driving_video_keeps_its_sound(client, examples_dir, short_clip):
    driving = short_clip(examples_dir / "driving/d12.mp4", 2)
    video, picture = client.predict(upload(examples_dir / "source/s1.jpg"), upload(driving), api_name="/animate")
    assert picture is None
    info = probe(video["video"] if isinstance(video, dict) else video)
    assert info.frame_count == 2 and info.has_audio and info.fps == 25


def test_retarget_video_sets_the_lip_opening_and_keeps_sound(client, examples_dir, short_clip):
    clip = short_clip(examples_dir / "source/s13.mp4", 2)
    out = client.predict(upload(clip), False, 0.35, True, 0.4, False, 3e-6, 2.3, api_name="/retarget")
    info = probe(out["video"] if isinstance(out, dict) else out)
    src = probe(clip)
    assert info.frame_count == 2 and info.has_audio and (info.width, info.height) == (src.width, src.height)
    assert "give a target" in app_error(client, upload(clip), False, 0.35, False, 0.4, False, 3e-6, 2.3,
                                        api_name="/retarget")


def test_keyframes_are_added_and_rendered(client, examples_dir):
    photo = upload(examples_dir / "source/s1.jpg")
    text = client.predict("[]", 0.0, photo, api_name="/add_keyframe")
    text = client.predict(text, 0.2, photo, smile=1.0, yaw=-10, api_name="/add_keyframe")
    keys = json.loads(text)
    assert keys == [{"time": 0.0}, {"time": 0.2, "yaw": -10.0, "smile": 1.0}]
    out = client.predict(photo, 2.5, text, 5, "smoothstep", api_name="/keyframes")
    info = probe(out["video"] if isinstance(out, dict) else out)
    assert info.frame_count == 2 and info.fps == 5
    assert "not valid JSON" in app_error(client, photo, 2.5, "[{", 5, "linear", api_name="/keyframes")


def test_the_app_made_no_outside_request(client, outside_traffic):
    # every connection and name lookup of this process since before the app started (runs last here)
    assert outside_traffic.seen == []
