"""Procedural paste-back mask and the blend (spec 4.13, 4.15)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from liveportrait.face import geometry
from liveportrait.face.mask import PasteBack, mask_template, mask_template_u8, paste_back
from tests.conftest import skip_or_fail


def test_mask_matches_the_reference_template_within_one_grey_level(shared_dir):
    ref = cv2.imread(str(shared_dir / "reference-data" / "mask_template.png"), cv2.IMREAD_GRAYSCALE)
    if ref is None:
        skip_or_fail(f"reference mask_template.png not in {shared_dir / 'reference-data'}")
    ours = mask_template_u8(512).astype(int)
    diff = np.abs(ours - ref.astype(int))
    assert diff.max() <= 1
    assert (diff == 0).mean() > 0.999


def test_mask_shape_as_described():
    m = mask_template_u8(512)
    assert m[16:497, 16:497].min() == 255
    assert m[0].max() == 0 and m[:, 0].max() == 0  # first row and column are 0
    assert m[511, 256] == 15 and m[256, 511] == 15  # last ones are 15 (the reference's asymmetry)
    np.testing.assert_array_equal(m[256, :17], [0, 15, 31, 47, 63, 79, 95, 111, 127, 143, 159,
                                               175, 191, 207, 223, 239, 255])
    np.testing.assert_array_equal(m, m.T)
    assert m[0, 0] == 0 and m[3, 3] == 0  # rounded corners
    f = mask_template(512)
    assert f.dtype == np.float32 and f.min() == 0.0 and f.max() == 1.0


def naive_paste_back(original, crop, m_c2o):
    """The reference's full-frame formula, for comparison."""
    h, w = original.shape[:2]
    mask = cv2.warpAffine(np.repeat(mask_template_u8(512)[..., None], 3, 2), m_c2o[:2], (w, h),
                          flags=cv2.INTER_LINEAR).astype(np.float32) / 255.0
    result = cv2.warpAffine(crop, m_c2o[:2], (w, h), flags=cv2.INTER_LINEAR)
    return np.clip(mask * result + (1 - mask) * original, 0, 255).astype(np.uint8)


@pytest.fixture()
def scene():
    rng = np.random.default_rng(3)
    original = rng.integers(0, 256, (700, 900, 3), np.uint8)
    # picture-like (smooth) content: on pure noise a 1/32-pixel difference in where the warp
    # samples shows up as large value differences
    crop = cv2.GaussianBlur(rng.integers(0, 256, (512, 512, 3), np.uint8), (0, 0), 2)
    m_o2c = geometry.crop_matrix((500.0, 300.0), 380.0, 0.35, 512)
    return original, crop, geometry.invert(m_o2c)


def test_paste_back_equals_the_reference_full_frame_blend(scene):
    original, crop, m_c2o = scene
    ours = paste_back(original, crop, m_c2o)
    ref = naive_paste_back(original, crop, m_c2o)
    diff = np.abs(ours.astype(int) - ref.astype(int))
    # warping a sub-rectangle rounds OpenCV's fixed-point sample positions (1/32 pixel) a little
    # differently from warping the whole frame; nothing else differs
    assert diff.max() <= 2
    assert (diff == 0).mean() > 0.99


def test_paste_back_touches_only_the_face_region(scene):
    original, crop, m_c2o = scene
    pb = PasteBack(original.shape, m_c2o)
    out = pb(crop, original)
    x0, y0, x1, y1 = pb.roi
    outside = np.ones(original.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], original[outside])
    assert (x1 - x0) * (y1 - y0) < 0.6 * original.shape[0] * original.shape[1]
    assert not np.array_equal(out, original)
    # the crop's middle, where the mask is 1, is the warped crop itself
    centre = geometry.transform_points(np.array([[256.0, 256.0]]), m_c2o)[0].round().astype(int)
    warped = cv2.warpAffine(crop, m_c2o[:2], original.shape[1::-1])
    np.testing.assert_array_equal(out[centre[1], centre[0]], warped[centre[1], centre[0]])


def test_paste_back_of_a_crop_of_the_picture_gives_the_picture_back():
    rng = np.random.default_rng(5)
    original = cv2.GaussianBlur(rng.integers(0, 256, (600, 800, 3), np.uint8), (0, 0), 6)
    m_o2c = geometry.crop_matrix((400.0, 320.0), 300.0, -0.2, 512)
    crop = geometry.warp(original, m_o2c, 512)
    out = paste_back(original, crop, geometry.invert(m_o2c))
    assert np.abs(out.astype(int) - original.astype(int)).mean() < 1.0


def test_paste_back_reuse_and_partly_outside_faces():
    original = np.full((300, 400, 3), 100, np.uint8)
    crop = np.full((512, 512, 3), 200, np.uint8)
    m_c2o = geometry.invert(geometry.crop_matrix((10.0, 10.0), 200.0, 0.0, 512))  # mostly off-picture
    pb = PasteBack(original.shape, m_c2o)
    a = pb(crop, original)
    b = pb(crop, original)
    np.testing.assert_array_equal(a, b)
    assert a[5, 5, 0] > 150 and a[250, 350, 0] == 100
    off = PasteBack(original.shape, geometry.invert(geometry.crop_matrix((-900.0, -900.0), 100.0, 0.0, 512)))
    np.testing.assert_array_equal(off(crop, original), original)


def test_paste_back_on_a_big_frame_blends_only_the_face_region():
    """A 4K frame: the work is bounded to the face's region (what makes it fast; the time per frame is printed
    by benchmarks/bench_face.py), into a reused output buffer, and the result is the full-frame blend."""
    rng = np.random.default_rng(11)
    original = rng.integers(0, 256, (2160, 3840, 3), np.uint8)
    crop = cv2.GaussianBlur(rng.integers(0, 256, (512, 512, 3), np.uint8), (0, 0), 2)
    m_c2o = geometry.invert(geometry.crop_matrix((1900.0, 1000.0), 700.0, 0.1, 512))
    pb = PasteBack(original.shape, m_c2o)
    x0, y0, x1, y1 = pb.roi
    assert (x1 - x0) * (y1 - y0) < 0.1 * original.shape[0] * original.shape[1]
    out = np.full_like(original, 7)  # stale content from an earlier frame
    assert pb(crop, original, out=out) is out
    diff = np.abs(out.astype(np.int16) - naive_paste_back(original, crop, m_c2o))
    # as in test_paste_back_equals_the_reference_full_frame_blend; outside the region nothing is touched
    assert diff.max() <= 2 and (diff[y0:y1, x0:x1] == 0).mean() > 0.99
    outside = np.ones(original.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    np.testing.assert_array_equal(out[outside], original[outside])
    again = pb(crop, original, out=out.copy())
    np.testing.assert_array_equal(again, out)
    in_place = original.copy()
    np.testing.assert_array_equal(pb(crop, in_place, out=in_place), out)
