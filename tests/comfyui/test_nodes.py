"""Each node of the ComfyUI pack called exactly as ComfyUI calls it (``getattr(Node(), Node.FUNCTION)(**inputs)``),
with ComfyUI-shaped tensors, on the tiny networks; ComfyUI itself is replaced by the stand-ins of conftest.py
(no real ComfyUI server ran these tests)."""

from __future__ import annotations

import math
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch

from tests.comfyui.conftest import PACK, REPO, call, to_image, to_u8
from tests.conftest import require_module

KNOWN_TYPES = {"IMAGE", "MASK", "AUDIO", "FLOAT", "INT", "STRING", "BOOLEAN", "LIVEPORTRAIT_PIPE", "LP_SOURCE",
               "LP_MOTION"}
OUR_TYPES = {"LIVEPORTRAIT_PIPE", "LP_SOURCE", "LP_MOTION"}


def test_importing_the_pack_loads_neither_torch_nor_comfyui():
    code = ("import importlib.util, sys\n"
            f"spec = importlib.util.spec_from_file_location('pack', {str(PACK / '__init__.py')!r}, "
            f"submodule_search_locations=[{str(PACK)!r}])\n"
            "m = importlib.util.module_from_spec(spec); sys.modules['pack'] = m; spec.loader.exec_module(m)\n"
            "print(len(m.NODE_CLASS_MAPPINGS), sorted(k for k in ('torch', 'cv2', 'av', 'folder_paths', 'comfy') "
            "if k in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["10", "[]"], out.stdout


def test_input_types_follow_the_classic_node_api(pack):
    assert set(pack.NODE_CLASS_MAPPINGS) == set(pack.NODE_DISPLAY_NAME_MAPPINGS)
    produced = set()
    for name, cls in pack.NODE_CLASS_MAPPINGS.items():
        spec = cls.INPUT_TYPES()
        assert set(spec) <= {"required", "optional", "hidden"} and spec["required"], name
        assert callable(getattr(cls, cls.FUNCTION)), name
        assert cls.CATEGORY == "LivePortrait" and len(cls.DESCRIPTION) > 40, name
        assert len(cls.RETURN_TYPES) == len(cls.RETURN_NAMES), name
        assert set(cls.RETURN_TYPES) <= KNOWN_TYPES, name
        produced |= set(cls.RETURN_TYPES)
        for group in ("required", "optional"):
            for input_name, declared in spec.get(group, {}).items():
                kind = declared[0]
                opts = declared[1] if len(declared) > 1 else {}
                if isinstance(kind, list):
                    assert kind and all(isinstance(c, str) for c in kind), (name, input_name)
                    if "default" in opts:
                        assert opts["default"] in kind, (name, input_name)
                    continue
                assert kind in KNOWN_TYPES, (name, input_name, kind)
                if kind in ("INT", "FLOAT"):
                    assert opts["min"] <= opts["default"] <= opts["max"], (name, input_name, opts)
                    assert isinstance(opts["default"], int if kind == "INT" else (int, float)), (name, input_name)
                if kind == "BOOLEAN":
                    assert isinstance(opts["default"], bool), (name, input_name)
                if kind == "STRING":
                    assert isinstance(opts["default"], str), (name, input_name)
        # the function takes every input by name and needs no more than the required ones
        import inspect

        params = inspect.signature(getattr(cls, cls.FUNCTION)).parameters
        takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
        for group in ("required", "optional"):
            for input_name in spec.get(group, {}):
                assert takes_any or input_name in params, (name, input_name)
    assert OUR_TYPES <= produced  # every custom type has a node that makes it
    animate = pack.NODE_CLASS_MAPPINGS["LivePortraitAnimate"]
    assert animate.RETURN_TYPES == ("IMAGE", "IMAGE", "AUDIO", "FLOAT")
    assert "liveportrait verify" in animate.DESCRIPTION and "label" in animate.DESCRIPTION


def test_the_editor_offers_every_library_control(pack):
    from liveportrait.motion.editing import CONTROLS

    spec = pack.NODE_CLASS_MAPPINGS["LivePortraitExpressionEditor"].INPUT_TYPES()["required"]
    for c in CONTROLS:
        assert c.name in spec, c.name
        opts = spec[c.name][1]
        assert opts["max"] == c.maximum
        if not math.isnan(c.neutral):
            assert (opts["min"], opts["default"]) == (c.minimum, c.neutral)


def test_the_model_folder_is_registered_and_offered(comfy, tiny_weights):
    import shutil

    from tests.comfyui.conftest import load_pack

    pack = load_pack()
    assert comfy.folders["liveportrait"] == [str(comfy.models / "liveportrait")]
    shutil.copytree(tiny_weights, comfy.models / "liveportrait" / "tiny")
    choices = pack.NODE_CLASS_MAPPINGS["LivePortraitLoad"].INPUT_TYPES()["required"]["weights"][0]
    assert choices == ["auto", "tiny"]


def test_load_caches_by_inputs_and_uses_comfy_device(nodes, tiny_weights, comfy):
    kw = dict(weights="auto", variant="human", precision="fp32", device="auto", weights_dir=str(tiny_weights))
    a = call(nodes, "LivePortraitLoad", **kw)[0]
    b = call(nodes, "LivePortraitLoad", **kw)[0]  # another node instance, another run: the same pipeline
    assert a is b
    assert a.compute.device == "cpu"  # the stand-in's get_torch_device()
    c = call(nodes, "LivePortraitLoad", **dict(kw, precision="auto"))[0]
    assert c is not a


def test_prepare_source_gives_the_library_crop(nodes, pipe, photo):
    source, crops = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                         face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    assert crops.dtype == torch.float32 and tuple(crops.shape) == (1, 512, 512, 3)
    assert 0.0 <= float(crops.min()) and float(crops.max()) <= 1.0
    expected = pipe.cropper.crop_image(photo, "largest", 2.3, 0.0, -0.125)[0].crop_512
    assert np.array_equal(to_u8(crops[0]), expected)
    assert not source.is_video


def test_motion_from_frames_advances_the_progress_bar_per_frame(nodes, pipe, driving_frames, comfy):
    (motion,) = call(nodes, "LivePortraitMotionFromFrames", pipe=pipe, images=to_image(driving_frames), fps=30.0)
    assert motion.template.n_frames == len(driving_frames)
    assert float(motion.template.fps) == 30.0
    bar = comfy.bars[-1]
    assert bar.total == len(driving_frames) and bar.calls == [("update", 1)] * len(driving_frames)
    from liveportrait import VideoFrames

    expected = pipe.motion(VideoFrames(list(driving_frames), 30))
    assert expected.fps == 30
    np.testing.assert_allclose(motion.template.exp, expected.exp, rtol=0, atol=1e-6)


def test_animate_photo_with_driving_frames(nodes, pipe, photo, driving_frames, comfy):
    import torch

    (source, _) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                       face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    audio = {"waveform": torch.linspace(-0.5, 0.5, 2 * 44100).reshape(1, 2, 44100), "sample_rate": 44100}
    (motion,) = call(nodes, "LivePortraitMotionFromFrames", pipe=pipe, images=to_image(driving_frames), fps=25.0,
                     audio=audio)
    frames, crops, out_audio, fps = call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, motion))
    n = len(driving_frames)
    assert frames.dtype == torch.float32 and tuple(frames.shape) == (n, *photo.shape)
    assert tuple(crops.shape) == (n, 512, 512, 3)
    assert fps == 25.0
    assert out_audio["sample_rate"] == 44100 and tuple(out_audio["waveform"].shape) == (1, 2, round(n / 25 * 44100))
    assert torch.equal(out_audio["waveform"], audio["waveform"][..., :round(n / 25 * 44100)])
    assert comfy.bars[-1].total == n and comfy.bars[-1].current == n
    # the library's frames for the same inputs (its own decode of the same driving frames)
    pipe.set_progress_bar_config(disable=True)
    ours = to_u8(frames)
    from liveportrait.provenance import detect

    assert detect(ours[0]).found  # the frames carry the watermark
    frames_plain = call(nodes, "LivePortraitAnimate", **dict(animate_inputs(pipe, source, motion), watermark=False))[0]
    from liveportrait import VideoFrames

    library = np.stack(list(pipe(photo, VideoFrames(list(driving_frames), 25))))
    assert np.array_equal(to_u8(frames_plain), library)
    # the crops are the faces of the frames, framed as the source was
    crop = pipe.cropper.crop_image(photo, "largest", 2.3, 0.0, -0.125)[0]
    from liveportrait.face.geometry import warp

    assert np.array_equal(to_u8(crops[1]), warp(ours[1], crop.M_o2c, 512))


def animate_inputs(pipe, source, motion, **changes):
    base = dict(pipe=pipe, source=source, motion=motion, region="all", multiplier=1.0, relative=True,
                driving_option="expression-friendly", stitching="auto", eye_retargeting=False,
                lip_retargeting=False, normalize_lip=False, reference_frame=0, smooth=0.0, paste_back="auto")
    base.update(changes)
    return base


def test_interrupt_mid_batch_stops_animate_and_leaves_nothing(nodes, pipe, photo, driving_frames, comfy, tmp_path):
    (source, _) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                       face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    (motion,) = call(nodes, "LivePortraitMotionFromFrames", pipe=pipe, images=to_image(driving_frames), fps=25.0)
    import sys

    interrupt = sys.modules["comfy.model_management"].InterruptProcessingException
    threads = {t.ident for t in threading.enumerate()}
    comfy.checks, comfy.interrupt_after_checks = 0, 1  # the user cancels while frame 2 of 3 is being made
    with pytest.raises(interrupt):
        call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, motion))
    comfy.interrupt_after_checks = None
    assert comfy.bars[-1].current == 1  # one frame was done, then the cancel
    leftover = [t for t in threading.enumerate() if t.ident not in threads and t.is_alive()]
    assert not leftover, leftover  # the library's read-ahead thread stopped with it
    assert list(comfy.output.iterdir()) == []
    # and the next run works
    frames = call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, motion))[0]
    assert frames.shape[0] == len(driving_frames)


def test_interrupt_stops_motion_extraction(nodes, pipe, driving_frames, comfy):
    import sys

    interrupt = sys.modules["comfy.model_management"].InterruptProcessingException
    comfy.interrupted = True
    with pytest.raises(interrupt):
        call(nodes, "LivePortraitMotionFromFrames", pipe=pipe, images=to_image(driving_frames), fps=25.0)


def test_templates_load_and_save(nodes, shared_dir, comfy):
    from liveportrait import load_template

    (comfy.input / "d1.pkl").symlink_to(shared_dir / "examples" / "driving" / "d1.pkl")
    spec = nodes["LivePortraitLoadMotion"].INPUT_TYPES()["required"]["template"][0]
    assert "d1.pkl" in spec
    (motion,) = call(nodes, "LivePortraitLoadMotion", template="d1.pkl", start_frame=1, frame_count=2)
    reference = load_template(shared_dir / "examples" / "driving" / "d1.pkl")
    assert motion.template.n_frames == 2
    np.testing.assert_array_equal(motion.template.exp, reference.exp[1:3])
    (path,) = call(nodes, "LivePortraitSaveMotion", motion=motion, filename_prefix="walk")
    assert path.endswith("walk_00001.lpt.npz") and path.startswith(str(comfy.output))
    again = load_template(path)
    np.testing.assert_array_equal(again.R, reference.R[1:3])


def test_expression_editor_chains_and_drives_animate(nodes, pipe, photo):
    (source, _) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                       face="largest", scale=2.5, vx=0.0, vy=-0.125, fps=25.0)
    neutral = editor_inputs(nodes)
    image1, edit1 = call(nodes, "LivePortraitExpressionEditor", pipe=pipe, source=source,
                         **dict(neutral, smile=0.5, yaw=5.0), watermark=False)
    image2, edit2 = call(nodes, "LivePortraitExpressionEditor", pipe=pipe, source=source,
                         **dict(neutral, smile=0.3, mov_z=1.1), motion=edit1, watermark=False)
    assert tuple(image1.shape) == (1, *photo.shape)
    assert edit2.controls["smile"] == pytest.approx(0.8) and edit2.controls["yaw"] == 5.0
    assert edit2.controls["mov_z"] == pytest.approx(1.1) and edit2.controls["eye_ratio"] is None
    prepared = pipe.prepare(photo, scale=2.5, vx=0.0, vy=-0.125)
    expected = pipe.edit(prepared, smile=0.8, yaw=5.0, mov_z=1.1)
    assert np.array_equal(to_u8(image2[0]), expected)
    frames, crops, _, fps = call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, edit2, watermark=False))
    assert np.array_equal(to_u8(frames[0]), expected)
    assert tuple(crops.shape) == (1, 512, 512, 3)
    assert np.array_equal(to_u8(crops[0]), pipe.edit(prepared, smile=0.8, yaw=5.0, mov_z=1.1, paste_back=False))


def editor_inputs(nodes):
    spec = nodes["LivePortraitExpressionEditor"].INPUT_TYPES()["required"]
    return {k: v[1]["default"] for k, v in spec.items() if v[0] == "FLOAT"}


def test_source_video_animates_frame_by_frame(nodes, pipe, shared_dir, comfy):
    from liveportrait.media import VideoReader

    frames = []
    with VideoReader(shared_dir / "examples" / "source" / "s13.mp4") as reader:
        for f in reader:
            frames.append(f)
            if len(frames) == 2:
                break
    (source, _) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(np.stack(frames)),
                       crop="auto", face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=12.5)
    (comfy.input / "d1.pkl").symlink_to(shared_dir / "examples" / "driving" / "d1.pkl")
    (motion,) = call(nodes, "LivePortraitLoadMotion", template="d1.pkl", start_frame=0, frame_count=3)
    out, crops, audio, fps = call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, motion,
                                                                                 watermark=False))
    assert fps == 12.5 and out.shape[0] == 2  # the source video's length and rate
    assert crops is out
    from liveportrait import VideoFrames

    library = np.stack(list(pipe(VideoFrames(frames, 12.5), motion.template)))
    assert np.array_equal(to_u8(out), library)
    assert float(audio["waveform"].abs().max()) == 0.0  # no sound went in: silence of the clip's length


# -- bad inputs: one clear line each ------------------------------------------------------------------------


def one_line(excinfo) -> str:
    message = str(excinfo.value)
    assert message and "\n" not in message and "Traceback" not in message, message
    return message


def test_bad_images_are_one_line(nodes, pipe, photo):
    from liveportrait_comfy_pack.values import NodeError

    prep = dict(pipe=pipe, crop="auto", face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitPrepareSource", image=torch.zeros((0, 64, 64, 3)), **prep)
    assert "empty" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitPrepareSource", image=to_image(photo)[0], **prep)
    assert "rank 3" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitPrepareSource", image=torch.zeros((1, 3, 64, 64)), **prep)
    assert "channels" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitPrepareSource", image=torch.full((1, 256, 256, 3), 0.5), **prep)
    assert "face" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitMotionFromFrames", pipe=pipe, images=torch.zeros((0, 64, 64, 3)), fps=25.0)
    assert "empty" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitPrepareSource", image=to_image(photo), **dict(prep, crop="box"))
    assert "crop_box" in one_line(e)


def test_a_template_that_holds_code_is_refused(nodes, comfy, tmp_path):
    import pickle

    from liveportrait_comfy_pack.values import NodeError

    marker = tmp_path / "ran"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (comfy.input / "evil.pkl").write_bytes(pickle.dumps({"n_frames": 1, "motion": [Evil()]}))
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitLoadMotion", template="evil.pkl", start_frame=0, frame_count=0)
    one_line(e)
    assert not marker.exists()


def test_speech_without_audio_weights_is_one_line(nodes, tmp_path, monkeypatch):
    from liveportrait_comfy_pack.values import NodeError

    monkeypatch.setenv("LIVEPORTRAIT_AUDIO_WEIGHTS", str(tmp_path / "none"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    audio = {"waveform": torch.zeros((1, 1, 16000)), "sample_rate": 16000}
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitMotionFromSpeech", audio=audio, seed=0, audio_weights=str(tmp_path / "none"))
    message = one_line(e)
    assert "liveportrait download --audio" in message
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitMotionFromSpeech", audio={"waveform": torch.zeros(16000), "sample_rate": 16000},
             seed=0)
    assert "[B, C, T]" in one_line(e)


def test_speech_without_the_audio_extra_names_it(nodes, monkeypatch):
    import importlib.util

    from liveportrait_comfy_pack.values import NodeError

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transformers" else
                        real(name, *a))
    audio = {"waveform": torch.zeros((1, 1, 16000)), "sample_rate": 16000}
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitMotionFromSpeech", audio=audio, seed=0)
    assert "pip install 'liveportrait[audio]'" in one_line(e)


def test_mismatched_drivings_for_all_faces_is_one_line(nodes, pipe, photo, shared_dir, comfy):
    from liveportrait_comfy_pack.values import NodeError

    (comfy.input / "d1.pkl").symlink_to(shared_dir / "examples" / "driving" / "d1.pkl")
    (motion,) = call(nodes, "LivePortraitLoadMotion", template="d1.pkl", start_frame=0, frame_count=2)
    (source, crops) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                           face="all", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    assert crops.shape[0] == 1  # one face in this photo
    (three,) = call(nodes, "LivePortraitMotionsPerFace", motion_1=motion, motion_2=motion, motion_3=motion)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, three))
    assert "3 driving inputs were given for 1 face" in one_line(e)


def test_bad_options_and_wrong_values_are_one_line(nodes, pipe, photo):
    from liveportrait_comfy_pack.values import NodeError

    (source, _) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                       face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, "not a motion"))
    assert "motion" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="box", face="largest",
             scale=2.3, vx=0.0, vy=-0.125, fps=25.0, crop_box="1,2,3")
    assert "crop box" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitExpressionEditor", pipe=pipe, source=source,
             **dict(editor_inputs(nodes), mov_z=0.0))
    assert "mov_z" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitLoad", weights="auto", variant="human", precision="fp32", device="cpu",
             weights_dir="/no/such/folder")
    assert "does not exist" in one_line(e)


def test_bad_inputs_to_the_remaining_nodes_are_one_line(nodes, pipe, photo):
    from liveportrait_comfy_pack.values import LPMotion, NodeError

    edit = LPMotion("edit", controls={"smile": 0.5})
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitSaveMotion", motion=edit, filename_prefix="x")
    assert "only a motion template" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitMotionsPerFace", motion_1=edit, motion_2=edit)
    assert "motion_1 must be a motion template" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitSaveVideo", frames=torch.zeros((8, 8, 3)), fps=25.0, filename_prefix="x",
             format="mp4")
    assert "rank 3" in one_line(e)
    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitSaveVideo", frames=torch.zeros((1, 8, 8, 3)), fps=25.0, filename_prefix="../x",
             format="mp4")
    assert "plain file name" in one_line(e)


def test_save_video_writes_the_label_and_a_cancel_leaves_no_file(nodes, comfy, photo):
    import sys

    from liveportrait.provenance import Stamp
    from liveportrait.provenance.verify import verify

    stamp = Stamp()
    frames = to_image(np.stack([stamp.mark(photo[:256, :256])] * 4))
    (path,) = call(nodes, "LivePortraitSaveVideo", frames=frames, fps=25.0, filename_prefix="clip", format="mp4")
    report = verify(path)
    assert report.metadata["run_id"] == stamp.run_id and report.watermark.found and report.run_ids_agree
    assert comfy.bars[-1].current == 4
    interrupt = sys.modules["comfy.model_management"].InterruptProcessingException
    comfy.checks, comfy.interrupt_after_checks = 0, 2
    with pytest.raises(interrupt):
        call(nodes, "LivePortraitSaveVideo", frames=frames, fps=25.0, filename_prefix="clip", format="mp4")
    comfy.interrupt_after_checks = None
    assert sorted(p.name for p in comfy.output.iterdir()) == ["clip_00001.mp4"]


def test_switches_on_off_and_auto(nodes, pipe, photo, shared_dir, comfy):
    (comfy.input / "d1.pkl").symlink_to(shared_dir / "examples" / "driving" / "d1.pkl")
    (motion,) = call(nodes, "LivePortraitLoadMotion", template="d1.pkl", start_frame=0, frame_count=2)
    (source, _) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(photo), crop="auto",
                       face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    frames, crops, _, fps = call(nodes, "LivePortraitAnimate", **animate_inputs(
        pipe, source, motion, paste_back="off", stitching="off", watermark=False))
    assert tuple(frames.shape) == (2, 512, 512, 3) and crops is frames and fps == float(motion.template.fps)
    library = np.stack(list(pipe(photo, motion.template, paste_back=False, stitching=False)))
    assert np.array_equal(to_u8(frames), library)
    from liveportrait_comfy_pack.values import NodeError

    with pytest.raises(NodeError) as e:
        call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, motion, paste_back=True))
    assert "paste_back must be one of auto, on, off" in one_line(e)


def test_animal_weights_take_the_animal_defaults(nodes, animal_weights, shared_dir, comfy):
    skimage_data = require_module("skimage.data", "scikit-image (the dev extra) has the cat photo")
    from tests.comfyui.conftest import needs_mediapipe

    needs_mediapipe()
    cat = skimage_data.chelsea()
    (pipe,) = call(nodes, "LivePortraitLoad", weights="auto", variant="animal", precision="fp32", device="cpu",
                   weights_dir=str(animal_weights))
    assert pipe.variant == "animal"
    (comfy.input / "d1.pkl").symlink_to(shared_dir / "examples" / "driving" / "d1.pkl")
    (motion,) = call(nodes, "LivePortraitLoadMotion", template="d1.pkl", start_frame=0, frame_count=2)
    (source, crops) = call(nodes, "LivePortraitPrepareSource", pipe=pipe, image=to_image(cat), crop="auto",
                           face="largest", scale=2.3, vx=0.0, vy=-0.125, fps=25.0)
    assert tuple(crops.shape) == (1, 512, 512, 3)
    frames, _, _, _ = call(nodes, "LivePortraitAnimate", **animate_inputs(pipe, source, motion, watermark=False))
    assert tuple(frames.shape) == (2, 512, 512, 3)  # the reference's animal default: no paste-back
    assert np.array_equal(to_u8(frames), np.stack(list(pipe(cat, motion.template))))


def test_the_library_takes_frames_with_their_rate(pipe, driving_frames):
    """``VideoFrames`` (added to the library for the nodes): in-memory frames carry their rate into the plan,
    the motion template and the output, where plain frames are taken at 25 fps."""
    from liveportrait import InputError, VideoFrames
    from liveportrait.plan import as_input

    media = as_input(VideoFrames(list(driving_frames), 30000 / 1001), "driving")
    assert media.kind == "video" and media.frames == len(driving_frames) and float(media.fps) == 30000 / 1001
    assert as_input(list(driving_frames), "driving").fps is None  # plain frames: no rate
    out = pipe(driving_frames[0], VideoFrames(iter(driving_frames), 12.5))
    assert float(out.fps) == 12.5
    with pytest.raises(InputError, match="frames per second"):
        VideoFrames(list(driving_frames), 0)
    with pytest.raises(InputError, match="must be a list"):
        as_input(VideoFrames(driving_frames[0], 25), "driving")
