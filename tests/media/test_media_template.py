"""Motion templates: our pickle-free .npz, the reference's .pkl, and refusing hostile pickles."""

from __future__ import annotations

import io
import os
import pickle
import subprocess
from fractions import Fraction

import numpy as np
import pytest

from liveportrait.errors import InputError, UnsafeFileError
from liveportrait.media import template as tp

EXPECTED = {  # name: (frames, fps, has ratio lists)
    "d1": (16, 30, True),
    "d5": (148, 30, True),
    "talking": (100, 20, False),
    "wink": (57, 25, False),
}


def _random_template(n: int = 7, *, full: bool = True, fps=Fraction(30000, 1001)) -> tp.MotionTemplate:
    rng = np.random.default_rng(n)
    extra = {}
    if full:
        extra = {
            "kp": rng.normal(size=(n, 21, 3)),
            "x_s": rng.normal(size=(n, 21, 3)),
            "eye_ratio": rng.uniform(size=(n, 2)),
            "lip_ratio": rng.uniform(size=(n, 1)),
        }
    return tp.MotionTemplate(
        fps=fps,
        R=np.tile(np.eye(3), (n, 1, 1)),
        exp=rng.normal(scale=0.02, size=(n, 21, 3)),
        t=rng.normal(size=(n, 3)),
        scale=np.full((n, 1), 1.7),
        meta={"source": "unit test"},
        **extra,
    )


def _assert_same(a: tp.MotionTemplate, b: tp.MotionTemplate) -> None:
    assert a.fps == b.fps and a.n_frames == b.n_frames
    for name in ("R", "exp", "t", "scale", "kp", "x_s", "eye_ratio", "lip_ratio"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert x.dtype == np.float32 and np.array_equal(x, y), name


# ---------------------------------------------------------------------------- reference pickles


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reference_templates_load(examples_dir, name):
    n, fps, ratios = EXPECTED[name]
    tpl = tp.load_template(examples_dir / "driving" / f"{name}.pkl")
    assert tpl.n_frames == n and tpl.fps == fps and isinstance(tpl.fps, Fraction)
    assert tpl.R.shape == (n, 3, 3) and tpl.exp.shape == (n, 21, 3)
    assert tpl.t.shape == (n, 3) and tpl.scale.shape == (n, 1)
    assert all(a.dtype == np.float32 for a in (tpl.R, tpl.exp, tpl.t, tpl.scale))
    assert tpl.kp is None and tpl.x_s is None  # neither layout stores them
    assert tpl.has_ratios == ratios
    if ratios:
        assert tpl.eye_ratio.shape == (n, 2) and tpl.lip_ratio.shape == (n, 1)
    # real ranges (README): scale near 1.2..1.7, small expression deltas, R orthonormal
    assert 1.0 < float(tpl.scale.mean()) < 2.0 and float(np.abs(tpl.exp).max()) < 0.5
    eye = np.einsum("tij,tkj->tik", tpl.R, tpl.R)
    assert np.allclose(eye, np.eye(3), atol=1e-4)
    frame = tpl.frame(0)
    assert frame["R"].shape == (1, 3, 3) and frame["scale"].shape == (1, 1) and frame["t"].shape == (1, 3)


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_every_pickle_protocol(tmp_path, protocol):
    tpl = _random_template(5)
    path = tmp_path / "t.pkl"
    path.write_bytes(pickle.dumps(tpl.to_reference_dict(), protocol=protocol))
    back = tp.load_template(path)
    tpl.meta = back.meta = {}
    _assert_same(back, tpl)


def test_legacy_keys_and_fps_fallback(tmp_path):
    n = 3
    motion = [
        {"scale": np.ones((1, 1), np.float32), "R_d": np.eye(3, dtype=np.float32)[None], "exp": np.zeros((1, 21, 3)),
         "t": np.zeros((1, 3))}  # fmt: skip
        for _ in range(n)
    ]
    data = {"n_frames": n, "motion": motion, "c_d_eyes_lst": [np.full((1, 2), 0.3)] * n, "c_d_lip_lst": [0.1] * n}
    path = tmp_path / "legacy.pkl"
    path.write_bytes(pickle.dumps(data))
    tpl = tp.load_template(path)
    assert tpl.fps == 25 and tpl.has_ratios and tpl.lip_ratio.shape == (3, 1)
    assert tp.load_template(path, default_fps=30).fps == 30
    data["output_fps"] = np.float64(29.97)  # a NumPy scalar, pickled via numpy.core.multiarray.scalar
    path.write_bytes(pickle.dumps(data))
    assert tp.load_template(path).fps == Fraction(30000, 1001)


# ---------------------------------------------------------------------------- hostile pickles


class _Reduce:
    """Pickles as a call of ``func(*args)``; used to build hostile files without running them."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _hostile(tmp_path, payload, name="evil.pkl", protocol=pickle.DEFAULT_PROTOCOL):
    path = tmp_path / name
    path.write_bytes(pickle.dumps(payload, protocol=protocol))
    return path


def test_os_system_payload_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "PWNED"
    payload = _Reduce(os.system, f"echo pwned > {marker}")
    for protocol in (0, 2, 4):
        path = _hostile(tmp_path, payload, protocol=protocol)
        with pytest.raises(UnsafeFileError, match=r"refused to load global (posix|os|nt)\.system"):
            tp.load_template(path)
        with pytest.raises(UnsafeFileError):
            tp.safe_pickle_load(path)
    # hidden inside an otherwise valid template
    tpl = _random_template(2).to_reference_dict()
    tpl["motion"][1]["exp"] = payload
    with pytest.raises(UnsafeFileError):
        tp.load_template(_hostile(tmp_path, tpl, "nested.pkl"))
    assert not marker.exists()


@pytest.mark.parametrize(
    "func, args, refused",
    [
        (eval, ("1+1",), "builtins.eval"),
        (getattr, (1, "real"), "builtins.getattr"),
        (subprocess.Popen, (["true"],), "subprocess.Popen"),
        (np.load, ("x.npy",), "numpy.load"),  # numpy, but not an array constructor
        (np.frombuffer, (b"\x00" * 8,), "frombuffer"),
    ],
)
def test_other_globals_are_refused(tmp_path, func, args, refused):
    path = _hostile(tmp_path, {"motion": [_Reduce(func, *args)]})
    with pytest.raises(UnsafeFileError, match=refused):
        tp.load_template(path)


def test_memory_bomb_refused(tmp_path):
    path = _hostile(tmp_path, {"motion": [_Reduce(bytearray, 10**12)]}, protocol=2)
    with pytest.raises(UnsafeFileError, match="byte buffer"):
        tp.load_template(path)
    assert tp.safe_pickle_load(_hostile(tmp_path, {"b": bytearray(b"ok"), "s": {1, 2}}, "fine.pkl", 2)) == {
        "b": bytearray(b"ok"),
        "s": {1, 2},
    }


def test_hand_written_global_opcode_refused(tmp_path):
    # protocol 0 text: GLOBAL 'os system', then call it
    path = tmp_path / "p0.pkl"
    path.write_bytes(b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(UnsafeFileError, match="os.system"):
        tp.load_template(path)


def test_object_arrays_and_forged_dtypes_refused(tmp_path):
    obj = np.array([1, "x", None], dtype=object)
    with pytest.raises(UnsafeFileError, match="dtype"):
        tp.load_template(_hostile(tmp_path, {"motion": [{"exp": obj}]}, "obj.pkl"))
    # a float32 dtype whose pickled state sets the "holds objects" flag (raw bytes as pointers)
    good = pickle.dumps({"x": np.zeros(3, np.float32)}, protocol=2)
    forged = good.replace(b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t", b"J\xff\xff\xff\xffJ\xff\xff\xff\xffK\x01t")
    assert forged != good
    (tmp_path / "forged.pkl").write_bytes(forged)
    with pytest.raises(UnsafeFileError, match="flags"):
        tp.safe_pickle_load(tmp_path / "forged.pkl")
    assert np.array_equal(tp.safe_pickle_load(_hostile(tmp_path, {"x": np.arange(3.0)}, "ok.pkl"))["x"], [0, 1, 2])


def test_persistent_ids_refused(tmp_path):
    class P(pickle.Pickler):
        def persistent_id(self, obj):
            return "ext" if obj == "secret" else None

    buf = io.BytesIO()
    P(buf, protocol=2).dump({"motion": ["secret"]})
    (tmp_path / "pid.pkl").write_bytes(buf.getvalue())
    with pytest.raises(UnsafeFileError, match="persistent"):
        tp.load_template(tmp_path / "pid.pkl")


# ---------------------------------------------------------------------------- malformed content


def _motion(n=2, **override):
    frame = {"scale": np.ones((1, 1)), "R": np.eye(3)[None], "exp": np.zeros((1, 21, 3)), "t": np.zeros((1, 3))}
    frame.update(override)
    return [dict(frame) for _ in range(n)]


@pytest.mark.parametrize(
    "data, message",
    [
        ([1, 2, 3], "top level is list"),
        ({"n_frames": 2}, "'motion' must be a non-empty list"),
        ({"motion": []}, "'motion' must be a non-empty list"),
        ({"motion": _motion(exp=np.zeros((1, 20, 3)))}, r"exp has shape \(1, 20, 3\)"),
        ({"motion": [{"R": np.eye(3)}]}, "has no 'exp'"),
        ({"motion": _motion(), "c_eyes_lst": [np.zeros((1, 2))]}, "c_eyes_lst has 1 entries but motion has 2"),
        ({"motion": _motion(), "n_frames": 5}, "n_frames is 5 but motion has 2"),
        ({"motion": _motion(), "output_fps": -3}, "output_fps"),
        ({"motion": _motion(t=np.full((1, 3), np.nan))}, "NaN"),
        ({"motion": ["frame"]}, "motion\\[0\\] is str"),
    ],
)
def test_malformed_templates(tmp_path, data, message):
    path = tmp_path / "bad.pkl"
    path.write_bytes(pickle.dumps(data))
    with pytest.raises(InputError, match=message) as info:
        tp.load_template(path)
    assert not isinstance(info.value, UnsafeFileError)
    assert str(path) in str(info.value)


def test_corrupt_and_missing_files(tmp_path, examples_dir):
    data = (examples_dir / "driving" / "d1.pkl").read_bytes()
    (tmp_path / "cut.pkl").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt"):
        tp.load_template(tmp_path / "cut.pkl")
    (tmp_path / "junk.pkl").write_bytes(b"hello world")
    with pytest.raises(InputError):
        tp.load_template(tmp_path / "junk.pkl")
    (tmp_path / "junk.bin").write_bytes(b"hello world")
    with pytest.raises(InputError, match="not a motion template"):
        tp.load_template(tmp_path / "junk.bin")
    with pytest.raises(InputError, match="not found"):
        tp.load_template(tmp_path / "missing.pkl")
    with pytest.raises(InputError, match="too large"):
        tp.load_template(examples_dir / "driving" / "d5.pkl", max_bytes=1000)


# ---------------------------------------------------------------------------- our .npz format


def test_npz_roundtrip(tmp_path, examples_dir, no_leftovers):
    for tpl in (_random_template(9), _random_template(4, full=False, fps=24)):
        path = tp.save_template(tmp_path / "t.lpt.npz", tpl)
        assert path.exists() and not (tmp_path / "t.lpt.npz.npz").exists()
        back = tp.load_template(path)
        _assert_same(back, tpl)
        assert back.meta == tpl.meta
    with pytest.raises(InputError, match=".npz"):
        tp.save_template(tmp_path / "t.pkl", _random_template(2))
    ref = tp.load_template(examples_dir / "driving" / "d5.pkl")
    _assert_same(tp.load_template(tp.save_template(tmp_path / "d5.npz", ref)), ref)
    no_leftovers(tmp_path)


def test_npz_is_checked(tmp_path):
    tpl = _random_template(3)
    good = {"format": np.array(tp.FORMAT_MARKER), "version": np.array(1), "fps": np.array([25, 1]),
            "R": tpl.R, "exp": tpl.exp, "t": tpl.t, "scale": tpl.scale}  # fmt: skip

    def write(name, **changes):
        arrays = {**good, **changes}
        arrays = {k: v for k, v in arrays.items() if v is not None}
        with open(tmp_path / name, "wb") as f:
            np.savez(f, **arrays)
        return tmp_path / name

    assert tp.load_template(write("ok.npz")).fps == 25
    with pytest.raises(InputError, match="format marker"):
        tp.load_template(write("other.npz", format=np.array("something-else")))
    with pytest.raises(InputError, match="version 2"):
        tp.load_template(write("newer.npz", version=np.array(2)))
    with pytest.raises(InputError, match="missing exp"):
        tp.load_template(write("noexp.npz", exp=None))
    with pytest.raises(InputError, match="exp has 2 frames"):
        tp.load_template(write("short.npz", exp=tpl.exp[:2]))
    marker = tmp_path / "PWNED"
    evil = np.array([_Reduce(os.system, f"echo pwned > {marker}")], dtype=object)
    with pytest.raises(UnsafeFileError, match="pickled objects"):
        tp.load_template(write("obj.npz", exp=evil))
    assert not marker.exists()


def test_template_validation_and_helpers():
    tpl = _random_template(6)
    assert len(tpl) == 6 and tpl.slice(2, 4).n_frames == 2 and tpl.slice(2).fps == tpl.fps
    with pytest.raises(ValueError, match="shape"):
        tp.MotionTemplate(fps=25, R=np.zeros((2, 3)), exp=np.zeros((2, 21, 3)), t=np.zeros((2, 3)),
                          scale=np.ones((2, 1)))
    with pytest.raises(ValueError, match="frames"):
        tp.MotionTemplate(fps=25, R=np.zeros((2, 3, 3)), exp=np.zeros((3, 21, 3)), t=np.zeros((2, 3)),
                          scale=np.ones((2, 1)))
    with pytest.raises(ValueError, match="exp is required"):
        tp.MotionTemplate(fps=25, R=np.zeros((2, 3, 3)), exp=None, t=np.zeros((2, 3)), scale=np.ones((2, 1)))
    ref = tpl.to_reference_dict()
    assert ref["n_frames"] == 6 and ref["motion"][0]["exp"].shape == (1, 21, 3)
    assert ref["c_eyes_lst"][0].shape == (1, 2) and ref["c_lip_lst"][0].shape == (1, 1)


def test_builder_streams_frames():
    b = tp.TemplateBuilder(fps=25, meta={"driving": "d0.mp4"})
    for i in range(4):
        b.append(R=np.eye(3)[None], exp=np.full((1, 21, 3), i), t=np.zeros((1, 3)), scale=np.ones((1, 1)),
                 eye_ratio=np.array([[0.3, 0.31]]), lip_ratio=np.array([[0.05]]))  # fmt: skip
    tpl = b.build()
    assert tpl.n_frames == 4 and tpl.exp[3, 0, 0] == 3 and tpl.eye_ratio.shape == (4, 2) and tpl.kp is None
    with pytest.raises(ValueError, match="earlier frames had it"):
        b.append(R=np.eye(3), exp=np.zeros((21, 3)), t=np.zeros(3), scale=np.ones(1))
