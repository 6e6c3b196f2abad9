"""The pixel watermark: invisible, cheap, and readable after the attacks of issue 8."""

from __future__ import annotations

import numpy as np
import pytest

from liveportrait.provenance import Watermarker, attacks, detect, detect_frames, new_run_id
from liveportrait.provenance import watermark as W

RUN = "1a2b3c4d"


@pytest.fixture(scope="module")
def marker() -> Watermarker:
    return Watermarker(RUN)


def assert_marked(det, run=RUN):
    assert det.found, f"mark not found: score {det.score:.2f}, p {det.p_false_alarm:.2e}, {det.details}"
    assert det.run_id == run and det.tool == "liveportrait", det.as_dict()
    assert det.confidence > 1 - 1e-9


# ------------------------------------------------------------------------------------ coding


def test_payload_code_roundtrip_and_error_correction():
    rng = np.random.default_rng(0)
    for run in (0, 1, 0xFFFFFFFF, 0x1A2B3C4D):
        msg = W._message_bits(W.TOOL_ID, run)
        coded = W._conv_encode(msg)
        assert len(coded) == W._CODED_BITS
        soft = (1.0 - 2.0 * coded) + rng.normal(0, 0.7, coded.shape)  # about 8% raw bit errors
        assert np.array_equal(W._viterbi(soft), msg)
        assert W._bits_int(msg[40:]) == W._crc16(msg[:40])


def test_crc_is_ccitt_false_and_unchanged_for_marks_already_written():
    # the catalogue's check value of CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over the bytes "123456789"
    assert W._crc16(np.unpackbits(np.frombuffer(b"123456789", np.uint8))) == 0x29B1
    # the CRCs the bit-by-bit implementation wrote before binascii.crc_hqx took over: marks already in
    # published videos must still decode with a valid CRC
    for run, crc in ((0, 0x8B4F), (1, 0x9B6E), (0xFFFFFFFF, 0x1280), (0x1A2B3C4D, 0x57E5)):
        assert W._bits_int(W._message_bits(W.TOOL_ID, run)[40:]) == crc
    with pytest.raises(ValueError):
        W._crc16(np.zeros(12, np.uint8))


@pytest.mark.parametrize("payload", [b"\x00\x00\x00\x2a", 42, "0000002a"])
def test_payload_forms(payload):
    assert Watermarker(payload).payload == b"\x00\x00\x00\x2a"


@pytest.mark.parametrize("bad", [b"12345", -1, 1 << 32, "xyz"])
def test_payload_rejects_what_does_not_fit(bad):
    with pytest.raises(ValueError):
        Watermarker(bad)


def test_new_run_id_is_a_payload():
    rid = new_run_id()
    assert len(rid) == 8 and Watermarker(rid).payload.hex() == rid


# ------------------------------------------------------------------ invisible and cheap


def test_psnr_at_least_40_db_on_every_photo(photos, media, marker):
    for name, rgb in photos.items():
        for frame in (media.square(rgb), rgb):
            marked = marker.embed(frame)
            assert marked.shape == frame.shape and marked.dtype == np.uint8
            assert attacks.psnr(marked, frame) >= 40.0, name


def test_embed_builds_the_pattern_of_a_frame_size_once(photos, media, monkeypatch):
    """What keeps embedding cheap (the time per 512x512 frame, bound 10 ms, is printed by
    benchmarks/bench_watermark.py): the tiled pattern of a frame size is built once, then only the
    texture mask and one saturating add per frame, the same on R, G and B (only luma changes)."""
    frame = media.square(photos["s1.jpg"])
    wm = Watermarker(RUN)
    builds = []
    real_tile = np.tile
    monkeypatch.setattr(W.np, "tile", lambda *a, **k: builds.append(a[1]) or real_tile(*a, **k))
    first = wm.embed(frame)
    for _ in range(5):
        np.testing.assert_array_equal(wm.embed(frame), first)
    wm.embed(media.square(photos["s5.jpg"]))  # same size: same pattern
    assert len(builds) == 1
    wm.embed(frame[:256, :384])
    assert len(builds) == 2  # a new size builds its own
    monkeypatch.undo()
    delta = first.astype(np.int16) - frame
    unclipped = ((frame > 8) & (frame < 247)).all(axis=2)
    assert np.abs(delta).max() > 0
    spread = np.ptp(delta[unclipped], axis=1)  # R, G and B get one delta (up to rounding of frame + delta)
    assert spread.max() <= 1 and (spread == 0).mean() > 0.99
    assert_marked(detect(first))


def test_grey_and_rgba_frames(marker, photos, media):
    rgb = media.square(photos["s5.jpg"])
    grey = rgb[..., 1].copy()
    assert_marked(detect(marker.embed(grey)))
    rgba = np.dstack([rgb, np.full(rgb.shape[:2], 200, np.uint8)])
    out = marker.embed(rgba)
    assert np.array_equal(out[..., 3], rgba[..., 3])
    assert_marked(detect(out[..., :3]))


def test_strength_zero_leaves_pixels_alone(photos, media):
    rgb = media.square(photos["s7.jpg"])
    assert np.array_equal(Watermarker(RUN, strength=0).embed(rgb), rgb)


# ---------------------------------------------------------------------------- attacks

STILL_ATTACKS = {
    "none": lambda x: x,
    "half": attacks.half,
    "crop10": attacks.crop,
    "crop10+half": lambda x: attacks.half(attacks.crop(x)),
    "jpeg75": attacks.jpeg,
}


@pytest.mark.parametrize("attack", list(STILL_ATTACKS))
def test_512_crops_survive(attack, photos, media, marker):
    for name in ("s1.jpg", "s6.jpg", "s9.jpg", "s25.jpg", "d19.jpg"):
        marked = marker.embed(media.square(photos[name]))
        assert_marked(detect(STILL_ATTACKS[attack](marked)))


@pytest.mark.parametrize("attack", ["none", "half", "crop10", "crop10+half"])
def test_full_size_photos_survive(attack, photos, marker):
    for name in ("s9.jpg", "s39.jpg", "d30.jpg", "s0.jpg"):  # 720x1280, 1080x1439, 600x900, 600x704
        assert_marked(detect(STILL_ATTACKS[attack](marker.embed(photos[name]))))


def test_h264_crf28_and_combinations(clip, marker):
    marked = [marker.embed(f) for f in clip]
    assert min(attacks.psnr(m, f) for m, f in zip(marked, clip)) >= 40.0
    encoded = attacks.h264(marked, crf=28)
    assert len(encoded) == len(clip)
    assert_marked(detect_frames(encoded))
    assert_marked(detect_frames(attacks.half(f) for f in encoded))
    assert_marked(detect_frames(attacks.crop(f) for f in encoded))
    assert_marked(detect_frames(attacks.h264([attacks.crop(f) for f in marked])))
    # one decoded frame alone is usually enough too
    assert_marked(detect(encoded[len(encoded) // 2]))


def test_unmarked_video_after_h264_is_not_marked(clip):
    det = detect_frames(attacks.h264(clip, crf=28))
    assert not det.found and det.payload is None
    assert det.p_false_alarm > 1e-6


def test_different_runs_decode_differently(photos, media):
    rgb = media.square(photos["s11.jpg"])
    for run in ("00000000", "ffffffff", "8badf00d"):
        assert_marked(detect(attacks.crop(Watermarker(run).embed(rgb))), run)


def test_another_key_does_not_see_the_mark(photos, media, marker):
    marked = marker.embed(media.square(photos["s1.jpg"]))
    assert not detect(marked, key=b"some other key").found


def test_false_alarm_probability_is_calibrated(photos):
    """Many keys against unmarked pictures: the reported p-values must not be too small."""
    accs = []
    for name in ("s1.jpg", "s9.jpg", "s39.jpg", "d12.jpg"):
        acc = W._Accumulator(W.DEFAULT_SCALES)
        acc.add(photos[name])
        accs.append(acc)
    p = np.array([W._analyse(a, W._make_key(b"null %d" % k)).p_false_alarm for k in range(40) for a in accs])
    # under the null, P(p <= q) <= q; allow generous sampling slack for n = 160
    assert np.mean(p <= 0.05) <= 0.05 + 0.07
    assert np.mean(p <= 0.25) <= 0.25 + 0.12
    assert p.min() > 1e-6


@pytest.mark.parametrize("factor", [0.7, 1.4])
def test_other_scales_are_found_by_the_period_search(factor, photos, media, marker):
    for name in ("s5.jpg", "s9.jpg"):
        det = detect(attacks.rescale(marker.embed(media.square(photos[name])), factor))
        assert_marked(det)
        assert det.details["stage"] == "search" and abs(det.scale - factor) < 0.01


def test_upscaled_then_h264(clip, marker):
    marked = [attacks.rescale(marker.embed(f), 1.25) for f in clip[:10]]
    assert_marked(detect_frames(attacks.h264(marked, crf=28)))


@pytest.mark.parametrize("shape", [(1, 1, 3), (24, 24, 3), (40, 300, 3), (100, 90)])
def test_tiny_frames_are_handled(shape, marker):
    frame = np.random.default_rng(3).integers(0, 256, shape, dtype=np.uint8)
    out = marker.embed(frame)
    assert out.shape == frame.shape
    assert not detect(frame).found


def test_rejects_non_uint8(marker):
    with pytest.raises(ValueError):
        marker.embed(np.zeros((8, 8, 3), np.float32))
