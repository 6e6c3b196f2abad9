"""Pieces of the app that need no server: upload checks, keyframe lists, video retargeting math, the command."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from liveportrait.app.backend import edit_from_values, parse_keyframes
from liveportrait.errors import InputError
from liveportrait.motion.compose import LIP_ARRAY, Motion
from liveportrait.motion.editing import Edit, Keyframe
from liveportrait.motion.keypoints import rotation_matrix, transform_keypoints
from liveportrait.motion.video import SourceVideoMotion, retarget_keypoints
from liveportrait.uploads import UploadLimits, check_upload


def test_upload_checks(tmp_path, examples_dir):
    with pytest.raises(InputError, match="upload a photo first"):
        check_upload(None, ("image",), "a photo")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        check_upload(empty, ("image",), "a photo")
    with pytest.raises(InputError, match="s13.mp4 is not a photo"):
        check_upload(examples_dir / "source/s13.mp4", ("image",), "a photo")
    with pytest.raises(InputError, match="at most 0.01 MB"):
        check_upload(examples_dir / "source/s1.jpg", ("image",), "a photo", UploadLimits(image_mb=0.01))
    with pytest.raises(InputError, match="at most 2 s"):
        check_upload(examples_dir / "source/s13.mp4", ("video",), "a video", UploadLimits(video_seconds=2))
    assert check_upload(examples_dir / "driving/wink.pkl", ("video", "template"), "a driving")[1] == "template"


def test_one_size_for_every_kind_leaves_no_kind_larger():
    """serve's --max-upload-mb: the speech limit (added after the others) once stayed at 200 MB."""
    limits = UploadLimits.every_kind_at_most(1, video_seconds=5)
    assert [limits.mb(kind) for kind in ("image", "video", "template", "audio")] == [1, 1, 1, 1]
    assert limits.largest_mb == 1 and limits.video_seconds == 5 and limits.max_pixels == UploadLimits().max_pixels


def test_keyframe_lists():
    keys = parse_keyframes('[{"time": 1.5, "smile": 0.8}, {"time": 0}]')
    assert keys == [Keyframe(1.5, Edit(smile=0.8)), Keyframe(0.0, Edit())]
    for bad, msg in (("[{", "not valid JSON"), ('{"time": 0}', "JSON list"), ('[{"smile": 1}]', "has no time"),
                     ('[{"time": 0, "grimace": 1}]', "unknown control")):
        with pytest.raises(InputError, match=msg):
            parse_keyframes(bad)


def test_slider_values_to_edit():
    assert edit_from_values({"smile": 0.5, "eye_ratio": None, "mov_z": 1.0}) == Edit(smile=0.5)


class FakeS:
    """Stitching is the identity; the eye / lip deltas are the target ratio on every coordinate."""

    def stitch_delta(self, x_s, x_d):
        return torch.zeros(x_d.shape[0], 65)

    def lip_delta(self, x_s, ratio):
        return ratio[:, -1:, None].expand(-1, 21, 3) * 1.0

    def eye_delta(self, x_s, ratio):
        return ratio[:, -1:, None].expand(-1, 21, 3) * 10.0


def video_record(n=4):
    g = torch.Generator().manual_seed(1)
    kp = torch.randn(n, 21, 3, generator=g) * 0.3
    a = torch.zeros(n)
    R = rotation_matrix(a, a + 5, a)
    exp = torch.randn(n, 21, 3, generator=g) * 0.02
    scale, t = torch.full((n, 1), 1.5), torch.tensor([[0.1, 0.0, 0.3]]).repeat(n, 1)
    eye = np.full((n, 2), 0.3, np.float32)
    lip = np.full((n, 1), 0.05, np.float32)
    lip[1] = np.nan  # a frame without landmarks
    return SourceVideoMotion(m_o2c=[None] * n, kp=kp, x_s=transform_keypoints(kp, R, exp, scale, t),
                             angles=torch.zeros(n, 3), motion=Motion(R, exp, t, scale), eye=eye, lip=lip)


def test_video_retargeting_adds_deltas_except_where_no_face_was_found():
    src = video_record()
    lip_array = torch.from_numpy(LIP_ARRAY).float()
    x_d = retarget_keypoints(src, FakeS(), lip_array, lip_ratio=0.4, smooth=0)
    diff = x_d - src.x_s
    assert torch.allclose(diff[[0, 2, 3]], torch.full((3, 21, 3), 0.4))
    assert torch.equal(diff[1], torch.zeros(21, 3))
    both = retarget_keypoints(src, FakeS(), lip_array, eye_ratio=0.2, lip_ratio=0.4, smooth=0)
    assert torch.allclose((both - src.x_s)[0], torch.full((21, 3), 2.4))
    smoothed = retarget_keypoints(src, FakeS(), lip_array, lip_ratio=0.4, smooth=1.0)
    assert (smoothed - src.x_s)[1].abs().max() > 0  # the gap is smoothed over


SPEC_IDX_EYE = [11, 13, 15, 16, 18]  # spec 4.8


@pytest.mark.parametrize("reference", [False, True])
def test_silent_lips_take_the_neutral_expression_but_keep_the_eyes(reference):
    """Spec 5.3 step 4, in plain numpy: delta = L on every keypoint but idx_eye (the source frame's), then
    x_d = s_s * (x_c,s @ R_s + delta) + t_s; t_z is kept only in reference mode (ours drops it by default)."""
    src = video_record()
    # any neutral expression L: a random one shows each keypoint's source (the real one is tiny)
    L = np.random.default_rng(5).normal(0, 0.05, (1, 21, 3))
    x_d = retarget_keypoints(src, FakeS(), torch.from_numpy(L).float(), silent=True, smooth=0, reference=reference)
    m = src.motion
    kp, R, exp_s = (v.double().numpy() for v in (src.kp, m.R, m.exp))
    s, t = m.scale.double().numpy(), m.t.double().numpy().copy()
    delta = np.repeat(L, 4, axis=0)
    delta[:, SPEC_IDX_EYE] = exp_s[:, SPEC_IDX_EYE]
    if not reference:
        t[:, 2] = 0
    expected = s[:, :, None] * (np.einsum("nkj,nji->nki", kp, R) + delta) + t[:, None, :]
    np.testing.assert_allclose(x_d.double().numpy(), expected, rtol=0, atol=1e-6)


def test_app_command_defaults_to_a_private_local_server(tiny_weights, monkeypatch, capsys, need):
    need("gradio", "pip install -e '.[app]'")
    from liveportrait.cli import build_parser, main

    args = build_parser().parse_args(["app"])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert "--model-config" not in build_parser()._subparsers._group_actions[0].choices["app"].format_help()

    from huggingface_hub import constants

    import liveportrait.app.ui as ui

    # run() turns the Hub off for the server's lifetime: keep that from leaking into other tests
    for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.setattr(constants, name, getattr(constants, name, None), raising=False)
    seen = {}
    monkeypatch.setattr(ui, "launch", lambda demo, host, port, share, **kw: seen.update(host=host, port=port,
                                                                                         share=share, demo=demo))
    import liveportrait.speed as speed

    chosen = []
    real_accelerate = speed.accelerate
    monkeypatch.setattr(speed, "accelerate", lambda nets, backend, **kw: chosen.append(backend) or
                        real_accelerate(nets, backend, **kw))
    base = ["app", "--weights", str(tiny_weights), "--model-config", "tiny", "-q", "--device", "cpu"]
    assert main(base) == 0
    assert chosen == ["fast"]  # --backend auto: the exact fast rewrites on the CPU
    assert seen["host"] == "127.0.0.1" and seen["share"] is False and seen["port"] == 7860
    assert seen["demo"].analytics_enabled is False and constants.HF_HUB_OFFLINE is True
    assert "--share" not in capsys.readouterr().err
    assert main(base + ["--share", "--port", "7999"]) == 0
    assert seen["share"] is True and seen["port"] == 7999
    assert "public link" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:  # a usage error, found while parsing
        main(base + ["--port", "70000"])
    assert exc.value.code == 2


def test_crop_box_text_and_seed_are_checked():
    from liveportrait.app.backend import _seed, parse_box_text

    assert parse_box_text(" 10, 20 ,110.5,220") == "10,20,110.5,220"
    assert parse_box_text("") is None and parse_box_text(None) is None
    for bad in ("10,20,5,220", "1,2,3", "a,b,c,d"):
        with pytest.raises(InputError, match="crop box"):
            parse_box_text(bad)
    assert _seed(None) is None and _seed("") is None and _seed(-1) is None  # the tab's "a new one each time"
    assert _seed(7.0) == 7 and _seed("12") == 12 and _seed(0) == 0
    for bad in (-2, 2.5, "x"):
        with pytest.raises(InputError, match="seed must be a whole number"):
            _seed(bad)


def test_audio_uploads_are_checked(tmp_path, examples_dir):
    import wave

    from liveportrait.uploads import check_audio

    with pytest.raises(InputError, match="upload a speech recording first"):
        check_audio(None)
    with pytest.raises(InputError, match="s1.jpg is not a sound file"):
        check_audio(examples_dir / "source/s1.jpg")
    speech = tmp_path / "talk.wav"
    with wave.open(str(speech), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes((np.sin(np.arange(16000) * 0.05) * 8000).astype("<i2").tobytes())
    assert check_audio(speech) == speech
    with pytest.raises(InputError, match="talk.wav lasts more than 0.5 s"):
        check_audio(speech, limits=UploadLimits(audio_seconds=0.5))
    with pytest.raises(InputError, match="at most 0.01 MB"):
        check_audio(speech, limits=UploadLimits(audio_mb=0.01))
    # a video's sound is speech too (d12.mp4 has a sound track)
    assert check_audio(examples_dir / "driving/d12.mp4") == examples_dir / "driving/d12.mp4"


def test_command_line_hints_become_the_apps_controls(need):
    need("gradio", "pip install -e '.[app]'")
    from liveportrait.app.ui import user_message
    from liveportrait.errors import NoFaceError
    from liveportrait.face.animal import ANIMAL_HINT
    from liveportrait.face.cropper import ANIMAL_MODE_HINT, NO_FACE_HINT

    human = user_message(NoFaceError(f"no human face was found in the picture; {NO_FACE_HINT}; {ANIMAL_MODE_HINT}"))
    assert human == ('no human face was found in the picture; if there is one, draw a box around it: open "Crop box" '
                     'under the inputs and click two opposite corners of the face on the picture; for a cat or dog, '
                     'turn on "Animal (cat/dog)"')
    pet = user_message(NoFaceError(f"no cat or dog face was found, only a human face: animate it without --animal, "
                                   f"or {ANIMAL_HINT}"))
    assert pet.startswith('no cat or dog face was found, only a human face: animate it with "Animal (cat/dog)" off, '
                          'or draw a box around it') and "--" not in pet


def test_app_command_takes_the_audio_weights_folder(tiny_weights, tmp_path, monkeypatch, need):
    need("gradio", "pip install -e '.[app]'")
    from huggingface_hub import constants

    import liveportrait.app.ui as ui
    from liveportrait.cli import main

    for name in ("HF_HUB_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "GRADIO_ANALYTICS_ENABLED"):
        monkeypatch.setenv(name, os.environ.get(name, ""))
        monkeypatch.setattr(constants, name, getattr(constants, name, None), raising=False)
    seen, made = {}, []
    monkeypatch.setattr(ui, "launch", lambda demo, *a, **kw: seen.update(demo=demo))
    import liveportrait.app.backend as app_backend

    class Recorded(app_backend.AppBackend):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            made.append(self)

    monkeypatch.setattr(app_backend, "AppBackend", Recorded)
    empty = tmp_path / "joyvasa"
    empty.mkdir()
    assert main(["app", "--weights", str(tiny_weights), "--model-config", "tiny", "-q", "--device", "cpu",
                 "--backend", "eager", "--audio-weights", str(empty)]) == 0
    notes = [b.value for b in seen["demo"].blocks.values() if getattr(b, "elem_id", None) == "animate-audio-note"]
    assert len(notes) == 1 and "audio weights not found in" in notes[0] and "joyvasa" in notes[0]
    # the animal weights are looked for on the first animal job: this folder has none, and the app says so
    from liveportrait.errors import WeightsError

    backend = made[0]
    assert backend.audio_weights == str(empty)
    with pytest.raises(WeightsError, match="liveportrait download --animal"):
        backend.animal_pipe


# -- the Animate tab's layout pieces (no server) ---------------------------------------------------

def _ui_block(demo, elem_id):
    return next(b for b in demo.blocks.values() if getattr(b, "elem_id", None) == elem_id)


@pytest.mark.parametrize("problem", ["audio weights not found in /nowhere", None], ids=["no-speech", "speech"])
def test_speech_controls_are_live_only_where_speech_can_run(problem, tmp_path, need):
    """Without the audio extra or weights the speech upload and its seed are neither shown nor
    interactive, and the reason stands in their place; with them, they are there and live."""
    need("gradio", "pip install -e '.[app]'")
    from types import SimpleNamespace

    from liveportrait.app.ui import build_app

    backend = SimpleNamespace(workdir=tmp_path, limits=UploadLimits(), audio_problem=lambda: problem)
    demo = build_app(backend)  # only the work folder and the speech check are used while building
    audio, seed = _ui_block(demo, "animate-audio"), _ui_block(demo, "animate-seed")
    notes = [b for b in demo.blocks.values() if getattr(b, "elem_id", None) == "animate-audio-note"]
    if problem:
        assert (audio.visible, audio.interactive, seed.visible, seed.interactive) == (False,) * 4
        assert len(notes) == 1 and "/nowhere" in notes[0].value
    else:
        assert (audio.visible, audio.interactive, seed.visible, seed.interactive) == (True,) * 4
        assert notes == []
    # the examples are thumbnails with readable labels, not file names
    captions = [item["caption"] for item in _ui_block(demo, "animate-examples").value]
    assert captions and all(" " in c and not c.endswith((".png", ".mp4")) for c in captions), captions


def test_a_chosen_file_shows_as_a_picture_or_a_video(tmp_path, examples_dir, need):
    need("gradio", "pip install -e '.[app]'")
    from liveportrait.app.ui import preview_updates

    def shown(path, kinds=("image", "video", "template")):
        picture, video = preview_updates(path, kinds, "a driving")
        return picture["visible"], picture["value"], video["visible"], video["value"]

    photo, video = examples_dir / "source/s1.jpg", examples_dir / "source/s13.mp4"
    assert shown(photo) == (True, str(photo), False, None)
    assert shown(video) == (False, None, True, str(video))
    nothing = (False, None, False, None)
    assert shown(examples_dir / "driving/wink.pkl") == nothing  # a template has no picture: its file stays
    assert shown(None) == nothing  # cleared
    assert shown(video, ("image",)) == nothing  # not a kind this input takes
    fake = tmp_path / "holiday.jpg"
    fake.write_text("not a picture at all")
    assert shown(fake) == nothing


def test_example_thumbnails_show_each_pair_and_are_painted_once(tmp_path):
    from liveportrait.app.examples import example_sets, write_examples
    from liveportrait.media import read_image
    from liveportrait.provenance import read_metadata

    ex = write_examples(tmp_path / "ex")
    sets = example_sets(ex)
    assert [e.inputs for e in sets["animate"]] == [(ex.portrait, ex.clip), (ex.portrait, ex.smile)]
    assert [e.inputs for e in sets["edit"]] == [(ex.portrait,)] and [e.inputs for e in sets["retarget"]] == [(ex.clip,)]
    pair = read_image(sets["animate"][1].thumbnail)
    assert pair.shape == (160, 160 * 2 + 40, 3)  # source, arrow, driving
    portrait = read_image(ex.portrait)
    small = np.asarray(portrait[::3, ::3][:160, :160], np.float32)  # roughly the source at 160 px
    assert np.abs(pair[:, :160].astype(np.float32).mean((0, 1)) - small.mean((0, 1))).max() < 12
    assert read_image(sets["edit"][0].thumbnail).shape == (160, 160, 3)
    assert "AI-generated" not in str(read_metadata(sets["animate"][0].thumbnail))
    before = sets["animate"][0].thumbnail.stat().st_mtime_ns
    assert example_sets(ex)["animate"][0].thumbnail.stat().st_mtime_ns == before
