"""The shipped workflows (comfyui/workflows/*.api.json) executed by the graph runner of conftest.py, on the tiny
networks, and compared with what the library gives for the same inputs; the UI-format files say the same as the
API ones. ComfyUI core nodes used by the workflows are stand-ins (conftest.CoreStandIns: LoadImage, LoadAudio,
LoadVideo, GetVideoComponents, SaveImage), reading at most 3 video frames and 0.5 s of speech. One test runs the
Animate node on the conformance fixture's inputs with synthetic full-size weights. No real ComfyUI server ran these.
"""

from __future__ import annotations

import json
import wave

import numpy as np
import pytest

from tests.comfyui.conftest import PACK, CoreStandIns, call, needs_mediapipe, run_workflow, to_image, to_u8
from tests.comfyui.workflow_ui import comparable, ui_to_api
from tests.conftest import rel_l2, require_module

WORKFLOWS = PACK / "workflows"
SPEECH_SECONDS = 0.5


def load(name: str) -> dict:
    return json.loads((WORKFLOWS / f"{name}.api.json").read_text())


@pytest.fixture
def graph(comfy, pack, tiny_weights, shared_dir):
    """The stand-in ComfyUI with the tiny weights as models/liveportrait and the examples in its input folder."""
    needs_mediapipe()
    (comfy.models / "liveportrait").symlink_to(tiny_weights, target_is_directory=True)
    ex = shared_dir / "examples"
    for name, path in {"s0.jpg": ex / "source" / "s0.jpg", "s5.jpg": ex / "source" / "s5.jpg",
                       "s13.mp4": ex / "source" / "s13.mp4", "d12.mp4": ex / "driving" / "d12.mp4",
                       "d5.pkl": ex / "driving" / "d5.pkl",
                       "speech.wav": shared_dir / "conformance-audio" / "espeak_16k.wav"}.items():
        (comfy.input / name).symlink_to(path)
    core = CoreStandIns(comfy, max_frames=3, max_seconds=SPEECH_SECONDS)
    return {**pack.NODE_CLASS_MAPPINGS, **core.classes()}


def marked_like(ours: np.ndarray, library_frames) -> np.ndarray:
    """The library's frames marked with the run id found in ours (the node marks each frame it returns)."""
    from liveportrait.provenance import Stamp, detect

    found = detect(ours[0])
    assert found.found and found.payload is not None
    stamp = Stamp(run_id=found.payload.hex())
    return np.stack([stamp.mark(f) for f in library_frames])


def check_saved_video(path: str, frames: int, sound: bool) -> None:
    from liveportrait.media import probe
    from liveportrait.provenance.verify import verify

    info = probe(path)
    assert info.frame_count == frames and info.has_audio == sound
    report = verify(path)
    assert report.metadata is not None and report.watermark.found and report.run_ids_agree


def test_every_workflow_has_both_formats_saying_the_same(graph):
    names = sorted(p.name[:-len(".api.json")] for p in WORKFLOWS.glob("*.api.json"))
    assert names == ["expression_editing", "photo_driving_video", "photo_speech", "video_to_video"]
    for name in names:
        ui = json.loads((WORKFLOWS / f"{name}.ui.json").read_text())
        assert comparable(ui_to_api(ui, graph), graph) == comparable(load(name), graph), name


def test_photo_driving_video(graph, comfy):
    results = run_workflow(load("photo_driving_video"), graph)
    pipe = results["1"][0]
    photo = to_u8(results["2"][0][0])
    driving = to_u8(results["5"][0])
    frames, crops, audio, fps = results["7"]
    assert fps == 25.0 and frames.shape[0] == 3 and crops.shape[1:] == (512, 512, 3)
    ours = to_u8(frames)
    from liveportrait import VideoFrames

    assert np.array_equal(ours, marked_like(ours, list(pipe(photo, VideoFrames(list(driving), results["5"][2])))))
    assert audio["waveform"].shape[-1] == round(3 / 25 * audio["sample_rate"])
    check_saved_video(results["8"][0], 3, sound=True)
    assert results["9"][0].endswith(".lpt.npz")
    assert [b.current for b in comfy.bars[:1]] == [3]  # motion: one step per driving frame


def test_video_to_video(graph):
    from liveportrait import load_template

    workflow = load("video_to_video")
    results = run_workflow(workflow, graph)
    pipe = results["1"][0]
    source = to_u8(results["3"][0])
    frames, _, _, fps = results["6"]
    assert fps == results["3"][2] and frames.shape[0] == len(source) == 3
    template = results["5"][0].template
    ours = to_u8(frames)
    from liveportrait import VideoFrames

    assert np.array_equal(ours, marked_like(ours, list(pipe(VideoFrames(list(source), results["3"][2]), template))))
    assert template.n_frames == load_template(_input(graph, "d5.pkl")).n_frames
    check_saved_video(results["7"][0], 3, sound=True)  # the source video's sound


def _input(graph, name):
    import folder_paths

    return f"{folder_paths.get_input_directory()}/{name}"


def test_expression_editing(graph, comfy):
    results = run_workflow(load("expression_editing"), graph)
    pipe = results["1"][0]
    edit = dict(smile=0.6, eyebrow=8.0, yaw=10.0, eyeball_x=8.0, aaa=0.4)
    photo = to_u8(results["2"][0][0])
    image = to_u8(results["5"][0])
    assert np.array_equal(image, marked_like(image, [pipe.edit(pipe.prepare(photo, scale=2.5), **edit)]))
    other = to_u8(results["7"][0][0])
    animated = to_u8(results["9"][0])
    assert np.array_equal(animated, marked_like(animated, [pipe.edit(pipe.prepare(other, scale=2.5), **edit)]))
    saved = sorted(p.name for p in comfy.output.iterdir())
    assert saved == ["liveportrait_edit_00000_.png", "liveportrait_edit_other_00000_.png"]


@pytest.fixture(scope="session")
def tiny_audio(tmp_path_factory):
    require_module("transformers", "pip install 'liveportrait[audio]'")
    from tests.audio.conftest import write_tiny_audio_weights

    return write_tiny_audio_weights(tmp_path_factory.mktemp("comfy_tiny_audio"))


def test_photo_speech(graph, tiny_audio, monkeypatch, tmp_path, shared_dir):
    monkeypatch.setenv("LIVEPORTRAIT_AUDIO_WEIGHTS", str(tiny_audio))
    results = run_workflow(load("photo_speech"), graph)
    pipe = results["1"][0]
    photo = to_u8(results["2"][0][0])
    frames, _, audio, fps = results["6"]
    # the library on the same sound: the first 0.5 s of the file, as 16-bit samples written here
    with wave.open(str(shared_dir / "conformance-audio" / "espeak_16k.wav")) as w:
        rate, width, channels = w.getframerate(), w.getsampwidth(), w.getnchannels()
        samples = w.readframes(int(round(SPEECH_SECONDS * rate)))
    assert width == 2
    cut = tmp_path / "cut.wav"
    with wave.open(str(cut), "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples)
    library = list(pipe(photo, audio=str(cut), seed=0))
    ours = to_u8(frames)
    assert len(library) == len(ours) > 5 and fps == 25.0
    assert np.array_equal(ours, marked_like(ours, library))
    assert audio["sample_rate"] == rate
    check_saved_video(results["7"][0], len(ours), sound=True)


@pytest.mark.slow
def test_animate_matches_the_library_on_the_conformance_fixture(comfy, pack, synthetic_weights, shared_dir):
    """The Animate node's frames for the conformance fixture's inputs (its 256 source crop, d1.pkl's first two
    frames, no crop, no paste-back) equal the library's for the same inputs, and are the reference's pictures."""
    from liveportrait import LivePortraitPipeline, load_template

    nodes = pack.NODE_CLASS_MAPPINGS
    fixture = np.load(shared_dir / "conformance" / "fixture_s0_d1.npz")
    (comfy.input / "d1.pkl").symlink_to(shared_dir / "examples" / "driving" / "d1.pkl")
    (pipe,) = call(nodes, "LivePortraitLoad", weights="auto", variant="human", precision="fp32", device="cpu",
                   weights_dir=str(synthetic_weights))
    source, _ = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(fixture["source_rgb_256"]),
                     crop="none", face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    (motion,) = call(nodes, "LivePortraitLoadMotion", template="d1.pkl", start_frame=0, frame_count=2)
    frames, crops, _, _ = call(nodes, "LivePortraitAnimate", pipe=pipe, source=source, motion=motion, region="all",
                               multiplier=1.0, relative=True, driving_option="expression-friendly", stitching="auto",
                               eye_retargeting=False, lip_retargeting=False, normalize_lip=False, reference_frame=0,
                               smooth=0.0, paste_back="auto", watermark=False)
    library = LivePortraitPipeline.from_pretrained(synthetic_weights, device="cpu", precision="fp32")
    library.set_progress_bar_config(disable=True)
    template = load_template(shared_dir / "examples" / "driving" / "d1.pkl").slice(0, 2)
    expected = np.stack(list(library(fixture["source_rgb_256"], template, crop="none")))
    ours = to_u8(frames)
    assert ours.shape == (2, 512, 512, 3)
    assert np.array_equal(ours, expected)
    # and the reference's frames (float, before clipping), to the rounding of 8-bit pixels
    reference = np.clip(fixture["pipe_default_out"][:2], 0, 1).transpose(0, 2, 3, 1)
    assert rel_l2(ours / 255.0, reference) < 5e-3


def test_a_cancel_during_speech_leaves_no_temporary_sound(graph, tiny_audio, comfy, monkeypatch, tmp_path):
    import sys
    import tempfile

    monkeypatch.setenv("LIVEPORTRAIT_AUDIO_WEIGHTS", str(tiny_audio))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    written = []
    nodes_module = sys.modules["liveportrait_comfy_pack.nodes"]
    real = nodes_module.write_wav
    monkeypatch.setattr(nodes_module, "write_wav", lambda *a: written.append(real(*a)) or written[-1])
    workflow = load("photo_speech")
    del workflow["7"]  # stop at Animate
    comfy.checks, comfy.interrupt_after_checks = 0, 2
    with pytest.raises(sys.modules["comfy.model_management"].InterruptProcessingException):
        run_workflow(workflow, graph)
    comfy.interrupt_after_checks = None
    assert comfy.bars[-1].current == 2
    assert len(written) == 1 and written[0].parent == scratch and not written[0].exists()
    assert list(scratch.iterdir()) == []  # the speech written for the library is gone
    assert list(comfy.output.iterdir()) == []
