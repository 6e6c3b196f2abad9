"""Finding and framing faces in the example pictures (needs mediapipe and ../shared)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liveportrait.errors import NoFaceError
from liveportrait.face import geometry, mesh

HUMANS = ["s0", "s1", "s5", "s6", "s7", "s9", "s11"]


def assert_framed(fc, rotate=True):
    """A source crop as the reference makes it: whole face inside, upright, centred, right size."""
    assert fc.crop_512.shape == (512, 512, 3) and fc.crop_512.dtype == np.uint8
    assert fc.crop_256.shape == (256, 256, 3)
    lm = fc.landmarks_crop
    assert lm.shape == (478, 2)
    assert lm.min() > 0 and lm.max() < 512  # the whole face is in the crop
    right, left = lm[list(mesh.RIGHT_EYE)].mean(0), lm[list(mesh.LEFT_EYE)].mean(0)
    if rotate:
        assert abs(right[1] - left[1]) < 0.1 * abs(left[0] - right[0])  # eyes level
    jaw = np.linalg.norm(lm[234] - lm[454])
    assert 0.3 * 512 < jaw < 0.5 * 512  # face width at scale 2.3
    mid_x = (lm[234, 0] + lm[454, 0]) / 2
    assert abs(mid_x - 256) < 0.08 * 512  # centred across
    eye_y = (right[1] + left[1]) / 2
    chin_y = lm[152, 1]
    # scale 2.3, vy -0.125 put the eyes near the middle and the chin at about 5/6 of the height
    assert 0.42 * 512 < eye_y < 0.56 * 512 and 0.75 * 512 < chin_y < 0.9 * 512
    np.testing.assert_allclose(fc.M_c2o @ fc.M_o2c, np.eye(3), atol=1e-3)  # float32 matrices
    assert fc.M_o2c.dtype == np.float32 and fc.M_c2o.dtype == np.float32


@pytest.mark.parametrize("name", HUMANS)
def test_every_example_portrait_is_found_and_framed(cropper, source_dir, load_rgb, name):
    img = load_rgb(source_dir / f"{name}.jpg")
    crops = cropper.crop_image(img)
    assert len(crops) == 1
    fc = crops[0]
    assert_framed(fc)
    assert fc.eye_ratio.shape == (2,) and fc.lip_ratio.shape == (1,)
    # the landmarks lie on the detected face
    x0, y0, x1, y1 = fc.face_box
    c = fc.landmarks[list(mesh.RIGHT_EYE) + list(mesh.LEFT_EYE)].mean(0)
    assert x0 < c[0] < x1 and y0 < c[1] < y1


def test_frames_of_the_source_video_are_found_and_framed(cropper, source_dir, load_frames):
    frames = load_frames(source_dir / "s13.mp4", indices=[0, 51, 102])
    assert len(frames) == 3
    for frame in frames.values():
        (fc,) = cropper.crop_image(frame)
        assert_framed(fc)


def test_two_faces_side_by_side_are_both_framed(cropper, source_dir, load_rgb):
    a, b = load_rgb(source_dir / "s5.jpg"), load_rgb(source_dir / "s9.jpg")
    b = cv2.resize(b, (a.shape[0] * b.shape[1] // b.shape[0], a.shape[0]), interpolation=cv2.INTER_AREA)
    both = np.ascontiguousarray(np.concatenate([a, b], axis=1))
    crops = cropper.crop_image(both, face="all")
    assert len(crops) == 2
    left, right = crops
    assert left.center[0] < a.shape[1] < right.center[0]  # numbered left to right
    for fc in crops:
        assert_framed(fc)
    # each is framed as it is alone (the right one shifted by the left picture's width)
    (alone,) = cropper.crop_image(a)
    np.testing.assert_allclose(left.center, alone.center, atol=0.03 * alone.size)
    assert left.size == pytest.approx(alone.size, rel=0.05)
    # selection by number and by size
    (second,) = cropper.crop_image(both, face=1)
    np.testing.assert_allclose(second.center, right.center, atol=1)
    (biggest,) = cropper.crop_image(both, face="largest")
    assert biggest.size == pytest.approx(max(left.size, right.size), rel=1e-6)
    with pytest.raises(NoFaceError, match="numbered 0 to 1"):
        cropper.crop_image(both, face=2)


@pytest.mark.parametrize("name", ["s25", "s39"])
def test_animals_give_a_clear_no_face_error(cropper, source_dir, load_rgb, name):
    with pytest.raises(NoFaceError, match="--crop-box x0,y0,x1,y1"):
        cropper.crop_image(load_rgb(source_dir / f"{name}.jpg"))


def test_blank_picture_gives_no_face_error(cropper):
    with pytest.raises(NoFaceError):
        cropper.crop_image(np.full((300, 400, 3), 127, np.uint8))


def test_crop_box_frames_a_given_region(cropper, source_dir, load_rgb):
    cat = load_rgb(source_dir / "s39.jpg")
    fc = cropper.crop_from_box(cat, (100, 200, 900, 1000))
    assert fc.landmarks is None and fc.eye_ratio is None
    np.testing.assert_allclose(fc.box, [100, 200, 900, 1000])
    np.testing.assert_array_equal(fc.crop_512, geometry.warp(cat, fc.M_o2c, 512))
    # around a human face the box crop still measures the face
    img = load_rgb(source_dir / "s1.jpg")
    (auto,) = cropper.crop_image(img)
    boxed = cropper.crop_from_box(img, auto.box)
    assert boxed.landmarks is not None
    np.testing.assert_allclose(boxed.eye_ratio, auto.eye_ratio, atol=0.05)


def test_landmarks_follow_a_rotated_off_centre_face(cropper, source_dir, load_rgb):
    """ROI conventions: rotating and padding the picture moves the landmarks with it."""
    img = load_rgb(source_dir / "s9.jpg")
    (f0,) = cropper.faces(img)
    h, w = img.shape[:2]
    rot = cv2.getRotationMatrix2D((w / 2, h / 2), 25, 1.0)
    rot[:, 2] += (300, 50)
    big = cv2.warpAffine(img, rot, (w + 600, h + 100))
    (f1,) = cropper.faces(big)
    expected = geometry.transform_points(f0.landmarks, np.vstack([rot, [0, 0, 1]]))
    iod = np.linalg.norm(f0.landmarks[33, :2] - f0.landmarks[263, :2])
    err = np.linalg.norm(f1.landmarks[:, :2] - expected, axis=1)
    assert np.median(err) < 0.05 * iod


def test_small_faces_of_a_group_photo_are_all_found(cropper, source_dir, load_rgb):
    names = ["s1", "s5", "s7", "s9"]
    cells = [cv2.resize(load_rgb(source_dir / f"{n}.jpg"), (260, 260), interpolation=cv2.INTER_AREA) for n in names]
    group = np.zeros((1400, 1600, 3), np.uint8)  # faces about 6% of the picture's width
    for i, cell in enumerate(cells):
        y, x = 200 + 600 * (i // 2), 150 + 900 * (i % 2)
        group[y:y + 260, x:x + 260] = cell
    crops = cropper.crop_image(group, face="all")
    assert len(crops) == 4
    xs = [fc.center[0] for fc in crops]
    assert max(xs[:2]) < 800 < min(xs[2:])  # numbered left to right
    for fc in crops:
        assert_framed(fc)


def test_a_hand_is_not_taken_for_a_second_face(cropper, source_dir, load_rgb):
    # the full-range detector scores the child's hand on the book in s5 at 0.6
    crops = cropper.crop_image(load_rgb(source_dir / "s5.jpg"), face="all")
    assert len(crops) == 1
