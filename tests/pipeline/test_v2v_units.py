"""Video sources against the reference's own numbers (../shared/conformance/fixture_v2v_s13_d5.npz) and its
rules (../shared/spec/v2v-notes.md): Kalman smoothing of the rotations, the ratios of already-framed frames,
and the size limit of source frames. Small networks (or none): the full-size check is tests/networks."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
import torch

from liveportrait.config import AnimateConfig
from liveportrait.motion.compose import LIP_ARRAY, Motion, MotionOptions, compose_video_source
from tests.conftest import rel_l2


@pytest.fixture(scope="module")
def v2v(shared_dir):
    return np.load(shared_dir / "conformance" / "fixture_v2v_s13_d5.npz")


@pytest.fixture(scope="module")
def tiny_networks(tiny_weights):
    from liveportrait.networks import LivePortraitNetworks, ModelConfig

    return LivePortraitNetworks.from_pretrained(tiny_weights, ModelConfig.tiny(), locate=False)


def frames_input(frames):
    from liveportrait.plan import MediaInput

    frames = list(frames)
    return MediaInput(path=None, kind="video", frames=len(frames), fps=Fraction(25), sequence=frames)


def template_of(R, exp, t, scale):
    from liveportrait.media import MotionTemplate

    n = len(R)
    return MotionTemplate(fps=25, R=np.reshape(R, (n, 3, 3)), exp=np.reshape(exp, (n, 21, 3)),
                          t=np.reshape(t, (n, 3)), scale=np.reshape(scale, (n, 1)))


# -- Kalman smoothing: the raw matrix entries, not re-orthonormalised (v2v-notes 5) -----------------------


@pytest.mark.parametrize(("variant", "variance", "relative"), [
    ("default", 3e-7, True), ("smooth_strong", 1e-3, True), ("absolute", 3e-7, False)])
def test_video_source_smoothing_is_the_references(v2v, variant, variance, relative):
    """With the reference's source motion and driving, the composed keypoints (before stitching) are
    spec 6.5's formula evaluated on the reference's own smoothed sequences: x_d = s (x_c R~ + copy(δ_s <- E~))
    + (t_x, t_y, 0). Re-orthonormalising R~ is off by 1.5e-4 with strong smoothing."""
    n = len(v2v["v2v_R_s"])
    src = Motion(R=torch.from_numpy(v2v["v2v_R_s"]), exp=torch.from_numpy(v2v["v2v_exp"]),
                 t=torch.from_numpy(v2v["v2v_t"]), scale=torch.from_numpy(v2v["v2v_scale"]))
    drv = Motion(R=torch.from_numpy(v2v["template_motion_R"]).reshape(-1, 3, 3)[:n],
                 exp=torch.from_numpy(v2v["template_motion_exp"]).reshape(-1, 21, 3)[:n],
                 t=torch.from_numpy(v2v["template_motion_t"]).reshape(-1, 3)[:n],
                 scale=torch.from_numpy(v2v["template_motion_scale"]).reshape(-1, 1)[:n])
    kp = torch.from_numpy(v2v["v2v_kp"])
    ours = compose_video_source(kp, src, drv, drv[0], MotionOptions(relative=relative),
                                torch.from_numpy(LIP_ARRAY), variance)

    R = v2v[f"v2v_{variant}_R_smooth"].astype(np.float64)
    E = v2v[f"v2v_{variant}_exp_smooth"].astype(np.float64)
    exp = v2v["v2v_exp"].astype(np.float64).copy()
    for k in (1, 2, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20):  # the partial expression copy (6.5)
        exp[:, k] = E[:, k]
    for k, axes in ((3, [1]), (4, [1]), (5, [2]), (8, [2]), (9, [1, 2])):
        exp[:, k, axes] = E[:, k, axes]
    t = (v2v["template_motion_t"].reshape(-1, 3)[:n] if not relative else v2v["v2v_t"]).astype(np.float64) * [1, 1, 0]
    expected = v2v["v2v_scale"][:, :, None] * (v2v["v2v_kp"] @ R + exp) + t[:, None, :]
    assert rel_l2(ours, expected) <= 2e-6


# -- --crop none: the landmarks are still measured (v2v-notes 2) -------------------------------------------


def test_uncropped_source_video_measures_its_ratios(v2v, tiny_networks):
    """Already-framed frames (--crop none) still get eye and lip ratios from their landmarks, so that
    source-video eye retargeting and lip normalisation happen; they are the reference's."""
    from liveportrait.conformance import FixtureLandmarks
    from liveportrait.face.cropper import Cropper
    from liveportrait.pipeline import Pipeline

    frames = v2v["v2v_source_rgb_256"]
    cropper = Cropper(FixtureLandmarks(frames, v2v["v2v_source_lmk"]))
    pipe = Pipeline(tiny_networks, AnimateConfig(crop="none", paste_back=False), cropper)
    record = pipe.source.video_motions(frames_input(frames), None)[0]
    np.testing.assert_allclose(record.eye, v2v["v2v_c_s_eyes"], rtol=1e-6, atol=0)
    np.testing.assert_allclose(record.lip, v2v["v2v_c_s_lip"], rtol=1e-6, atol=0)

    # and they change the keypoints: eye retargeting adds a delta on every frame
    drv = template_of(v2v["template_motion_R"], v2v["template_motion_exp"], v2v["template_motion_t"],
                      v2v["template_motion_scale"])
    from liveportrait.pipeline import DrivingMotion

    driving = DrivingMotion(drv, is_video=True)
    plain = pipe.frames.video_keypoints(record, driving)
    retargeted = Pipeline(tiny_networks, pipe.config.but(motion=MotionOptions(source_video_eye_retargeting=True)),
                          cropper).frames.video_keypoints(record, driving)
    assert (retargeted - plain).abs().amax(dim=(1, 2)).min() > 0


def test_uncropped_frame_without_a_face_has_no_ratios(tiny_networks):
    """A frame where no face is found gives NaN ratios (retargeting skipped), not an error."""
    from liveportrait.conformance import FixtureLandmarks
    from liveportrait.face.cropper import Cropper
    from liveportrait.pipeline import Pipeline

    frames = np.zeros((2, 256, 256, 3), np.uint8)
    pipe = Pipeline(tiny_networks, AnimateConfig(crop="none", paste_back=False),
                    Cropper(FixtureLandmarks([], [])))
    record = pipe.source.video_motions(frames_input(frames), None)[0]
    assert np.isnan(record.eye).all() and np.isnan(record.lip).all()


# -- the size limit of source-video frames: the reference's resize_to_limit (spec 4.2, v2v-notes 1) ---------


def reference_limit(image: np.ndarray, max_dim: int = 1280, division: int = 2) -> np.ndarray:
    """The reference's rule, transcribed from the spec: longer side to max_dim with OpenCV's default
    (bilinear) resize, the other side truncated with int(); then the bottom and right edges trimmed to
    multiples of ``division``."""
    h, w = image.shape[:2]
    if max(h, w) > max_dim:
        size = (int(w * (max_dim / h)), max_dim) if h > w else (max_dim, int(h * (max_dim / w)))
        image = cv2.resize(image, size, interpolation=cv2.INTER_LINEAR)
    h, w = image.shape[:2]
    return image[: h - h % division, : w - w % division]


@pytest.mark.parametrize("shape", [(1003, 2000), (2001, 1001), (301, 199), (1280, 720)])
def test_source_video_frames_are_limited_as_the_reference(shape):
    from liveportrait.config import SOURCE_VIDEO_MAX_DIM
    from liveportrait.pipeline import resize_to_limit

    assert SOURCE_VIDEO_MAX_DIM == 1280  # the reference's source_max_dim
    frame = np.random.default_rng(0).integers(0, 256, (*shape, 3), dtype=np.uint8)
    expected = reference_limit(frame)
    ours = resize_to_limit(frame, SOURCE_VIDEO_MAX_DIM)
    assert ours.shape == expected.shape
    np.testing.assert_array_equal(ours, expected)


def test_source_video_output_has_the_references_frame_size(tiny_networks):
    """A 2000x1003 source video with paste-back gives 1280x640 frames (1280x641 trimmed to even),
    as the reference's; and the frames the networks saw are those of the reference's resize."""
    from liveportrait.face.cropper import Cropper
    from liveportrait.pipeline import DrivingMotion, Pipeline

    class NoFace:
        num_landmarks = 203

        def detect(self, image_rgb, thorough=False):
            return []

        def landmarks(self, image_rgb, face):
            return None

    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (2, 1003, 2000, 3), dtype=np.uint8)
    pipe = Pipeline(tiny_networks, AnimateConfig(crop="100,100,700,700"), Cropper(NoFace()))
    record = pipe.source.video_motions(frames_input(frames), None)[0]
    n = 2
    eye = np.repeat(np.eye(3, dtype=np.float32)[None], n, 0)
    driving = DrivingMotion(template_of(eye, np.zeros((n, 21, 3)), np.zeros((n, 3)), np.ones((n, 1))), True)
    out = list(pipe.frames.animate_video(frames_input(frames), record, pipe.frames.video_keypoints(record, driving)))
    assert [o.shape for o in out] == [(640, 1280, 3)] * n
    # outside the pasted crop the output is the reference's resized frame itself
    np.testing.assert_array_equal(out[0][-40:, -40:], reference_limit(frames[0])[-40:, -40:])
