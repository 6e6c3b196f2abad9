"""The editor on a real photo with tiny networks: what runs when, and what comes out."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
import torch

from liveportrait.errors import InputError, NoFaceError
from liveportrait.media import probe, read_image
from liveportrait.motion.compose import MotionOptions
from liveportrait.motion.editing import Edit, Keyframe


@pytest.fixture(scope="module")
def networks(tiny_weights):
    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    return LivePortraitNetworks.from_pretrained(tiny_weights, ModelConfig.tiny(), locate=False)


@pytest.fixture(scope="module")
def editor(networks):
    from liveportrait.pipeline.editor import Editor

    return Editor.from_networks(networks)


@pytest.fixture(scope="module")
def photo(examples_dir):
    return read_image(examples_dir / "source/s1.jpg")


@pytest.fixture(scope="module")
def calls(networks):
    """Forward calls per network, counted with hooks."""
    counter: Counter = Counter()
    mods = {"F": networks.F, "M": networks.M, "W": networks.W, "G": networks.G,
            "stitch": networks.S.stitching, "eye": networks.S.eye, "lip": networks.S.lip}
    handles = [m.register_forward_hook(lambda *_, name=name: counter.update([name])) for name, m in mods.items()]
    yield counter
    for h in handles:
        h.remove()


@pytest.fixture(scope="module")
def source(editor, photo, calls):
    calls.clear()
    src = editor.prepare(photo)
    assert calls["F"] == 1 and calls["M"] == 1 and calls["W"] == 0 and calls["G"] == 0
    return src


def test_slider_edit_runs_warping_and_generator_once_and_nothing_else(editor, source, photo, calls):
    calls.clear()
    out = editor.render(source, Edit(smile=0.8, yaw=10, aaa=0.5))
    assert dict(calls) == {"W": 1, "G": 1, "stitch": 1}  # F and M are not run again
    # the result is the whole photo with the face pasted back; far corners are untouched
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert np.array_equal(out[:40, :40], photo[:40, :40])
    calls.clear()
    editor.keypoints(source, Edit(eye_ratio=0.1, lip_ratio=0.4))
    assert dict(calls) == {"eye": 1, "lip": 1, "stitch": 1}


def test_source_ratios_are_the_slider_defaults(source):
    assert 0 < source.eye_ratio < 0.8 and 0 <= source.lip_ratio < 0.8
    assert source.eye_ratio == round(source.eye_ratio, 2)
    # a ratio slider left at the source's value does not retarget (the reference's rule)
    assert source.effective(Edit(eye_ratio=source.eye_ratio, lip_ratio=0.5)) == Edit(lip_ratio=0.5)


def test_edits_change_the_keypoints_they_should(editor, source):
    x0 = editor.keypoints(source, Edit(), stitching=False)
    torch.testing.assert_close(x0, source.prepared.x_s)
    x1 = editor.keypoints(source, Edit(wink=20), stitching=False)
    moved = {int(k) for k in torch.nonzero((x1 - x0).abs().sum(-1)[0])}
    assert moved == {3, 11, 13, 17}


def test_driving_photo_expression_matches_the_pipeline(editor, source, examples_dir, calls):
    drv = read_image(examples_dir / "driving/d30.jpg")
    calls.clear()
    driven = editor.drive(source, drv, region="exp")
    assert calls["M"] == 1 and calls["F"] == 0  # the driving face's motion only
    # a neutral edit on the driven source = the pipeline's image-driven keypoints for the same driving
    from liveportrait.face.cropper import DRIVING

    fc = editor.cropper.crop_image(drv, "largest", DRIVING.scale, DRIVING.vx_ratio, DRIVING.vy_ratio,
                                   rotate=False, area=False)[0]
    motion = editor.animator.extract_motion(fc.crop_256).motion
    want = editor.animator.driving_keypoints(source.prepared, motion, None, MotionOptions(region="exp"), False)
    torch.testing.assert_close(editor.keypoints(driven, Edit()), want, atol=1e-5, rtol=0)
    # and edits start from the driven face
    assert not torch.allclose(editor.keypoints(driven, Edit(smile=1)), want)


def test_no_face_and_bad_pictures_are_input_errors(editor):
    with pytest.raises(NoFaceError):
        editor.prepare(np.full((300, 300, 3), 128, np.uint8))
    with pytest.raises(InputError):
        editor.prepare(np.zeros((300, 300), np.uint8))


def test_keyframes_become_a_video(editor, source, tmp_path, calls):
    calls.clear()
    keys = [Keyframe(0.0, Edit()), Keyframe(0.2, Edit(yaw=15, smile=1.0))]
    out = editor.animate(source, keys, tmp_path / "keys.mp4", fps=5, batch_size=2)
    info = probe(out)
    assert info.frame_count == 2 and info.fps == 5 and (info.width, info.height) == (1146, 1146)
    assert calls["W"] == 1 and calls["G"] == 1 and calls["F"] == 0 and calls["M"] == 0
