"""The Animate tab's speech driving, animal mode and drawn crop box, through the real server and
gradio_client (tiny networks, tiny synthetic JoyVASA weights): the plumbing is real, the pictures are not."""

from __future__ import annotations

import importlib.util
import math
import re
import wave
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from liveportrait.media import VideoReader, probe

SPEECH_SECONDS = 1.3
MODEL_FPS = 25  # the tiny JoyVASA weights' fps (tests/audio/conftest.py TINY_ARGS)


@pytest.fixture(scope="module")
def animal_networks():
    """Tiny animal networks, seeded apart from the human ones (so the wrong set running would show)."""
    import torch

    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    torch.manual_seed(1)
    return LivePortraitNetworks(ModelConfig.tiny()).eval()


@pytest.fixture(scope="module")
def app_audio_weights(tmp_path_factory) -> Path:
    """tests/audio's tiny JoyVASA-layout weights; an empty folder where transformers is missing (the
    speech tests then skip through ``speech_ready``)."""
    folder = tmp_path_factory.mktemp("app-audio-weights")
    if importlib.util.find_spec("transformers") is None:
        return folder
    from tests.audio.conftest import write_tiny_audio_weights

    return write_tiny_audio_weights(folder)


@pytest.fixture(scope="module")
def app_backend_options(app_audio_weights, animal_networks) -> dict:
    """The served app of this module has the animal networks and the tiny audio weights."""
    return {"audio_weights": app_audio_weights, "animal": animal_networks}


@pytest.fixture(scope="module")
def speech_ready():
    from tests.conftest import require_module

    require_module("transformers", "pip install -e '.[audio]'")


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory) -> Path:
    """1.3 s of a voiced, syllable-like sound: stereo at 22.05 kHz (resampled and downmixed by the reader)."""
    rate = 22050
    t = np.arange(int(SPEECH_SECONDS * rate)) / rate
    voice = sum(np.sin(2 * math.pi * 140 * k * t) / k for k in range(1, 6))
    envelope = 0.5 + 0.5 * np.sin(2 * math.pi * 4 * t)
    left = 0.3 * voice * envelope
    samples = (np.stack([left, 0.8 * left], 1) * 32767).astype("<i2")
    path = tmp_path_factory.mktemp("speech") / "hello.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


@pytest.fixture(scope="module")
def client(gradio_client):
    return gradio_client


@pytest.fixture(scope="module")
def blank_photo(tmp_path_factory) -> Path:
    """A picture with neither a human nor an animal face: a soft gradient with a few blobs."""
    from PIL import Image

    y, x = np.mgrid[0:320, 0:360]
    img = np.stack([x * 0.5 + 60, y * 0.4 + 80, 0 * x + 150], -1)
    for cx, cy in ((90, 100), (250, 200)):
        img[(x - cx) ** 2 + (y - cy) ** 2 < 900] = (200, 120, 60)
    path = tmp_path_factory.mktemp("blank") / "no-face.png"
    Image.fromarray(img.astype(np.uint8)).save(path)
    return path


def upload(path):
    from gradio_client import handle_file

    return handle_file(str(path))


def video_path(value) -> str:
    return value["video"] if isinstance(value, dict) else value


def frames_of(path) -> int:
    with VideoReader(path) as reader:
        return sum(1 for _ in reader)


def app_error(client, *args, **kwargs) -> str:
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError) as info:
        client.predict(*args, **kwargs)
    return str(info.value)


def _by_elem_id(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


def _follow_up(demo, on: str):
    """The fn of the animate event's follow-up (``on``: "success" or "failure")."""
    fns = list(demo.fns.values())
    event = next(f for f in fns if f.api_name == "animate")
    flag = "trigger_only_on_success" if on == "success" else "trigger_only_on_failure"
    return next(f for f in fns if f.trigger_after == event._id and getattr(f, flag)).fn


def _select_fn(demo):
    """The fn of the crop box picture's select event (two of them draw a box)."""
    image = _by_elem_id(demo, "animate-box-image")
    return next(f for f in demo.fns.values() if any(t[0] == image._id and t[1] == "select" for t in f.targets)).fn


def click(demo, source, corner, x, y):
    import gradio as gr

    return _select_fn(demo)(str(source), corner, gr.SelectData(None, {"index": [x, y], "value": None}))


# -- speech --------------------------------------------------------------------------------------------------


def test_speech_gives_a_video_as_long_as_the_speech_with_its_sound(speech_ready, client, app_demo, examples_dir,
                                                                    speech_wav):
    from liveportrait.provenance import read_metadata

    source = examples_dir / "source/s1.jpg"
    video, picture = client.predict(upload(source), None, audio=upload(speech_wav), seed=7, api_name="/animate")
    assert picture is None
    path = video_path(video)
    info = probe(path)
    assert info.fps == MODEL_FPS and info.has_audio
    assert abs(frames_of(path) - SPEECH_SECONDS * MODEL_FPS) <= 1
    assert abs(info.width - 1145) <= 1 and abs(info.height - 1145) <= 1  # pasted back (to even sides)
    assert "AI-generated" in str(read_metadata(path))
    # the tab's follow-up says which seed made it (the session's note, taken once)
    session = SimpleNamespace(session_hash=client.session_hash)
    status, note = _follow_up(app_demo, "success")(session)
    assert status == "" and re.search(r"\bseed (\d+)\b", note).group(1) == "7"
    # no seed: a fresh one is drawn and told
    client.predict(upload(source), None, audio=upload(speech_wav), api_name="/animate")
    _, note = _follow_up(app_demo, "success")(session)
    drawn = re.search(r"\bseed (\d+)\b", note)  # (the one drawn may start with a 7: compare the number)
    assert drawn and drawn.group(1) != "7"


def test_speech_input_checks(speech_ready, client, examples_dir, speech_wav, tmp_path):
    source = upload(examples_dir / "source/s1.jpg")
    both = app_error(client, source, upload(examples_dir / "driving/d30.jpg"), audio=upload(speech_wav),
                     api_name="/animate")
    assert "not both" in both
    fake = tmp_path / "speech.wav"
    fake.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" * 10)
    assert "speech.wav" in app_error(client, source, None, audio=upload(fake), api_name="/animate")
    # speech moves a photo, not a video
    assert "speech drives a photo" in app_error(client, upload(examples_dir / "source/s13.mp4"), None,
                                                audio=upload(speech_wav), api_name="/animate")


def test_missing_audio_weights_give_the_command_lines_message(speech_ready, client, app_demo, app_backend,
                                                              app_networks, examples_dir, speech_wav, tmp_path):
    from liveportrait.app.backend import AppBackend
    from liveportrait.app.ui import build_app, user_message
    from liveportrait.audio.weights import locate_audio_weights
    from liveportrait.errors import WeightsError

    empty = tmp_path / "nothing-here"
    empty.mkdir()
    with pytest.raises(WeightsError) as cli:
        locate_audio_weights(empty)  # what `animate -d speech.wav --audio-weights DIR` says
    expected = user_message(cli.value)
    assert "audio weights not found" in expected and "liveportrait download --audio" in expected
    saved = app_backend.audio_weights
    app_backend.audio_weights = empty
    try:
        message = app_error(client, upload(examples_dir / "source/s1.jpg"), None, audio=upload(speech_wav),
                            api_name="/animate")
    finally:
        app_backend.audio_weights = saved
    assert expected in message
    # and the tab says so from the start, above the speech input
    demo = build_app(AppBackend(app_networks, audio_weights=empty, workdir=tmp_path / "app"))
    note = _by_elem_id(demo, "animate-audio-note").value
    assert "Speech driving is not available here" in note and "audio weights not found" in note.replace("\\", "")
    # with the weights there, no such note
    assert not any(getattr(b, "elem_id", None) == "animate-audio-note" for b in app_demo.blocks.values())


# -- animals -------------------------------------------------------------------------------------------------


def test_animal_mode_animates_the_dog(client, examples_dir, short_clip, net_calls):
    driving = short_clip(examples_dir / "driving/d0.mp4", 3)
    net_calls.clear()
    video, picture = client.predict(upload(examples_dir / "source/s25.jpg"), upload(driving), stitching=False,
                                    paste_back=False, animal=True, api_name="/animate")
    assert picture is None
    path = video_path(video)
    info = probe(path)
    assert frames_of(path) == 3 and info.fps == 25
    assert (info.width, info.height) == (512, 512)  # the animal crop, not pasted back (the reference's default)
    assert net_calls["F"] == 0 and net_calls["G"] == 0, "animal mode must run the animal networks"


def test_speech_drives_the_dog_in_animal_mode(speech_ready, client, examples_dir, speech_wav, net_calls):
    net_calls.clear()
    video, _ = client.predict(upload(examples_dir / "source/s25.jpg"), None, stitching=False, paste_back=False,
                              animal=True, audio=upload(speech_wav), seed=3, api_name="/animate")
    path = video_path(video)
    info = probe(path)
    assert abs(frames_of(path) - SPEECH_SECONDS * MODEL_FPS) <= 1 and info.has_audio
    assert (info.width, info.height) == (512, 512)
    assert net_calls["F"] == 0 and net_calls["G"] == 0, "animal mode must run the animal networks"


def test_a_human_photo_in_animal_mode_says_so(client, app_demo, examples_dir, short_clip):
    driving = short_clip(examples_dir / "driving/d0.mp4", 3)
    message = app_error(client, upload(examples_dir / "source/s1.jpg"), upload(driving), animal=True,
                        api_name="/animate")
    assert 'only a human face: animate it with "Animal (cat/dog)" off' in message
    assert "draw a box around it" in message and "--" not in message  # the app's words, not the CLI's


def test_no_face_found_asks_for_a_drawn_box_and_the_drawn_box_animates(client, app_demo, examples_dir,
                                                                       short_clip, blank_photo, monkeypatch):
    driving = short_clip(examples_dir / "driving/d0.mp4", 3)
    message = app_error(client, upload(blank_photo), upload(driving), animal=True, api_name="/animate")
    assert "no cat or dog face was found" in message and "draw a box around it" in message
    # the tab's failure follow-up shows it and opens the crop box
    status, accordion = _follow_up(app_demo, "failure")(SimpleNamespace(session_hash=client.session_hash))
    assert "no cat or dog face" in status and accordion.get("open") is True

    # two clicks on the picture: a corner, then the box (drawn in red on the picture)
    picture, box, corner = click(app_demo, blank_photo, None, 200, 40)
    assert box == "" and corner == [200, 40]
    assert picture.shape == (320, 360, 3) and tuple(picture[40, 200]) == (255, 40, 40)
    picture, box, corner = click(app_demo, blank_photo, corner, 60, 230)
    assert box == "60,40,200,230" and corner is None
    red = np.all(picture == (255, 40, 40), axis=-1)
    assert red[40, 60:201].all() and red[40:231, 200].all() and not red[120, 120]

    seen = []
    from liveportrait.face.cropper import Cropper

    real = Cropper.crop_from_box
    monkeypatch.setattr(Cropper, "crop_from_box", lambda self, image, b, **kw: seen.append(b) or
                        real(self, image, b, **kw))
    video, _ = client.predict(upload(blank_photo), upload(driving), stitching=False, paste_back=False, animal=True,
                              crop_box=box, api_name="/animate")
    assert [list(b) for b in seen] == [[60, 40, 200, 230]]
    assert frames_of(video_path(video)) == 3


def test_corners_too_close_are_refused(app_demo, blank_photo):
    from liveportrait.errors import LivePortraitError

    _, _, corner = click(app_demo, blank_photo, None, 100, 100)
    with pytest.raises(Exception) as info:
        click(app_demo, blank_photo, corner, 102, 101)
    assert "too close" in str(info.value) and not isinstance(info.value, LivePortraitError)  # a gr.Error


def test_the_animal_toggle_sets_the_reference_animal_defaults(app_demo):
    """Ticking "Animal (cat/dog)" turns stitching and paste-back off (untrained for animals), unticking on."""
    toggle = _by_elem_id(app_demo, "animate-animal")
    flip = next(f for f in app_demo.fns.values() if (toggle._id, "input") in [tuple(t) for t in f.targets])
    assert [getattr(c, "label", None) for c in flip.outputs] == ["stitching", "paste back into the photo"]
    assert tuple(flip.fn(True)) == (False, False) and tuple(flip.fn(False)) == (True, True)
