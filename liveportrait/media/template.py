"""Motion templates: the per-frame motion of a driving video, reusable without the video.

Two on-disk forms:

* **Our format, ``.npz``** (suggested name ``<name>.lpt.npz``; any ``.npz`` works): a plain NumPy
  zip of float32 arrays read with ``allow_pickle=False``, so loading can never run code. It holds a
  ``format`` marker (``liveportrait-motion-template``) and a ``version`` (1); fps is stored as an
  exact numerator/denominator pair.
* **The reference's ``.pkl``**: a pickled dict (spec 4.6). It is read by a restricted unpickler
  that resolves only what NumPy arrays and plain containers need; any other global, such as
  ``os.system``, raises UnsafeFileError before it is ever called.

``R`` is stored as in the reference: the transposed rotation matrix of spec 2.3 (row vectors).
"""

from __future__ import annotations

import builtins
import importlib
import io
import json
import pickle
import zipfile
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ..errors import InputError, UnsafeFileError
from ..files import PathLike, as_fps, atomic_output, check_input_file, read_head

FORMAT_MARKER = "liveportrait-motion-template"
FORMAT_VERSION = 1
TEMPLATE_SUFFIX = ".lpt.npz"
DEFAULT_TEMPLATE_FPS = Fraction(25)  # the reference's output_fps fallback
MAX_TEMPLATE_BYTES = 256 * 1024 * 1024  # a 10 000-frame template is about 8 MB
NUM_KP = 21

# per-frame shape of each array (the leading T is implicit)
_SHAPES: dict[str, tuple[int, ...]] = {
    "R": (3, 3),
    "exp": (NUM_KP, 3),
    "t": (3,),
    "scale": (1,),
    "kp": (NUM_KP, 3),
    "x_s": (NUM_KP, 3),
    "eye_ratio": (2,),
    "lip_ratio": (1,),
}
_REQUIRED = ("R", "exp", "t", "scale")
_OPTIONAL = ("kp", "x_s", "eye_ratio", "lip_ratio")
_RATIOS = ("eye_ratio", "lip_ratio")  # NaN while a streaming extractor sees no face (see TemplateBuilder)


@dataclass
class MotionTemplate:
    """Motion of T frames: rotation ``R`` (T,3,3), expression ``exp`` (T,21,3), translation ``t``
    (T,3, t_z included), ``scale`` (T,1); optional canonical ``kp`` and transformed ``x_s``
    (T,21,3), eye-open ratios ``eye_ratio`` (T,2) [left, right] and lip-open ``lip_ratio`` (T,1).
    All float32. ``fps`` is kept exact as a Fraction. ``meta``: free-form strings (provenance).
    """

    fps: Fraction
    R: np.ndarray
    exp: np.ndarray
    t: np.ndarray
    scale: np.ndarray
    kp: np.ndarray | None = None
    x_s: np.ndarray | None = None
    eye_ratio: np.ndarray | None = None
    lip_ratio: np.ndarray | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.fps = as_fps(self.fps)
        n = None
        for name in _REQUIRED + _OPTIONAL:
            value = getattr(self, name)
            if value is None:
                if name in _REQUIRED:
                    raise ValueError(f"{name} is required")
                continue
            arr = _as_float32(name, value)
            expected = _SHAPES[name]
            if arr.ndim != len(expected) + 1 or arr.shape[1:] != expected:
                raise ValueError(f"{name} must have shape (T, {', '.join(map(str, expected))}), got {arr.shape}")
            if n is None:
                n = arr.shape[0]
            elif arr.shape[0] != n:
                raise ValueError(f"{name} has {arr.shape[0]} frames, R has {n}")
            setattr(self, name, arr)
        if not n:
            raise ValueError("a motion template needs at least one frame")
        self.meta = {str(k): str(v) for k, v in (self.meta or {}).items()}

    @property
    def n_frames(self) -> int:
        return int(self.R.shape[0])

    def __len__(self) -> int:
        return self.n_frames

    @property
    def has_ratios(self) -> bool:
        return self.eye_ratio is not None and self.lip_ratio is not None

    def frame(self, i: int) -> dict[str, np.ndarray]:
        """Frame ``i`` in the reference's per-frame layout: arrays with a leading batch axis of 1."""
        out = {"scale": self.scale[i][None], "R": self.R[i][None], "exp": self.exp[i][None], "t": self.t[i][None]}
        for name in ("kp", "x_s"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value[i][None]
        return out

    def slice(self, start: int, stop: int | None = None) -> MotionTemplate:
        """Frames [start, stop) as a new template (e.g. to trim to a source video's length)."""
        s = slice(start, stop)
        arrays = {n: (None if getattr(self, n) is None else getattr(self, n)[s]) for n in _REQUIRED + _OPTIONAL}
        return MotionTemplate(fps=self.fps, meta=dict(self.meta), **arrays)

    def to_reference_dict(self) -> dict[str, Any]:
        """The reference's pickle layout (spec 4.6, newer key names), for interoperability."""
        out: dict[str, Any] = {
            "n_frames": self.n_frames,
            "output_fps": float(self.fps) if self.fps.denominator != 1 else int(self.fps),
            "motion": [self.frame(i) for i in range(self.n_frames)],
        }
        if self.eye_ratio is not None:
            out["c_eyes_lst"] = [self.eye_ratio[i][None] for i in range(self.n_frames)]
        if self.lip_ratio is not None:
            out["c_lip_lst"] = [self.lip_ratio[i][None] for i in range(self.n_frames)]
        return out


class TemplateBuilder:
    """Collect motion one frame at a time (as a streaming extractor produces it), then ``build()``."""

    def __init__(self, fps: Fraction | float | int, meta: dict[str, str] | None = None):
        self.fps = as_fps(fps)
        self.meta = dict(meta or {})
        self._rows: dict[str, list[np.ndarray]] = {name: [] for name in _REQUIRED + _OPTIONAL}
        self._count = 0

    def append(self, *, R, exp, t, scale, kp=None, x_s=None, eye_ratio=None, lip_ratio=None) -> None:
        """Add one frame; arrays may carry a leading batch axis of 1 (they are reshaped).

        Ratios may be NaN for a frame where no face was found: ``build`` gives such a frame the
        ratios of the nearest frame that has them (and drops ratios no frame has)."""
        values = {"R": R, "exp": exp, "t": t, "scale": scale, "kp": kp, "x_s": x_s}
        values.update({"eye_ratio": eye_ratio, "lip_ratio": lip_ratio})
        for name, value in values.items():
            rows = self._rows[name]
            if value is None:
                if rows:
                    raise ValueError(f"frame {self._count}: {name} missing, earlier frames had it")
                continue
            if len(rows) != self._count:
                raise ValueError(f"frame {self._count}: {name} given, earlier frames lacked it")
            rows.append(_frame_array(name, value, allow_nan=name in _RATIOS))
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def build(self) -> MotionTemplate:
        arrays = {n: (np.stack(rows) if rows else None) for n, rows in self._rows.items()}
        for name in _RATIOS:
            if arrays[name] is not None:
                arrays[name] = fill_from_nearest(arrays[name])
        return MotionTemplate(fps=self.fps, meta=self.meta, **arrays)


def fill_from_nearest(values: np.ndarray) -> np.ndarray | None:
    """Rows with NaN take the nearest complete row (the earlier one on a tie); None if no row is complete."""
    ok = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
    if ok.all():
        return values
    if not ok.any():
        return None
    good = np.flatnonzero(ok)
    idx = np.arange(len(values))
    pos = np.clip(np.searchsorted(good, idx), 1, len(good) - 1) if len(good) > 1 else np.zeros_like(idx)
    if len(good) > 1:
        before, after = good[pos - 1], good[pos]
        nearest = np.where(idx - before <= after - idx, before, after)
        nearest = np.where(idx <= good[0], good[0], np.where(idx >= good[-1], good[-1], nearest))
    else:
        nearest = np.full_like(idx, good[0])
    return values[nearest]


# --------------------------------------------------------------------------------------------
# our .npz format


def save_template(path: PathLike, tpl: MotionTemplate) -> Path:
    """Write ``tpl`` as a pickle-free .npz, atomically (temp file + rename); the name must end in .npz."""
    if not str(path).lower().endswith(".npz"):
        raise InputError(f"{path}: motion templates are saved as .npz (suggested: <name>{TEMPLATE_SUFFIX})")
    arrays: dict[str, np.ndarray] = {
        "format": np.array(FORMAT_MARKER),
        "version": np.array(FORMAT_VERSION, np.int64),
        "fps": np.array([tpl.fps.numerator, tpl.fps.denominator], np.int64),
        "meta": np.array(json.dumps(tpl.meta)),
    }
    for name in _REQUIRED + _OPTIONAL:
        value = getattr(tpl, name)
        if value is not None:
            arrays[name] = value
    with atomic_output(path) as tmp:
        with open(tmp, "wb") as f:  # a file object, so numpy does not append ".npz" to the name
            np.savez(f, **arrays)
    return Path(path)


def load_template(
    path: PathLike, *, default_fps: Fraction | float | int = DEFAULT_TEMPLATE_FPS, max_bytes: int = MAX_TEMPLATE_BYTES
) -> MotionTemplate:
    """Load a motion template: our ``.npz`` or the reference's ``.pkl`` (restricted unpickling).

    The format is recognised from the content (zip or pickle header), falling back to the extension.
    ``default_fps`` applies to reference pickles without ``output_fps``.
    """
    p = check_input_file(path, "motion template")
    size = p.stat().st_size
    if size > max_bytes:
        raise InputError(f"{p}: motion template too large ({size / 2**20:.0f} MiB; limit {max_bytes / 2**20:.0f} MiB)")
    head = read_head(p, 4)
    if head[:4] == b"PK\x03\x04":
        return _load_npz(p, max_bytes)
    if head[:1] == b"\x80" or p.suffix.lower() in (".pkl", ".pickle"):
        return _load_pickle(p, default_fps)
    raise InputError(f"{p}: not a motion template (expected a .npz written by liveportrait or a reference .pkl)")


def _load_npz(p: Path, max_bytes: int) -> MotionTemplate:
    _check_zip_size(p, max_bytes * 4)
    try:
        with np.load(p, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Object arrays" in str(exc):
            raise UnsafeFileError(f"{p}: template contains pickled objects; refused") from exc
        raise InputError(f"{p}: unreadable or corrupt template ({exc})") from exc
    except (OSError, zipfile.BadZipFile, EOFError, KeyError) as exc:
        raise InputError(f"{p}: unreadable or corrupt template ({exc})") from exc
    marker = str(data.get("format", ""))
    if marker != FORMAT_MARKER:
        raise InputError(f"{p}: not a liveportrait motion template (format marker {marker or 'missing'})")
    version = int(data.get("version", -1))
    if version > FORMAT_VERSION or version < 1:
        raise InputError(f"{p}: template format version {version} is not supported "
                         f"(this build reads 1..{FORMAT_VERSION})")
    missing = [k for k in _REQUIRED + ("fps",) if k not in data]
    if missing:
        raise InputError(f"{p}: malformed template, missing {', '.join(missing)}")
    try:
        num, den = (int(x) for x in np.asarray(data["fps"]).reshape(2))
        meta = json.loads(str(data["meta"])) if "meta" in data else {}
        arrays = {n: data.get(n) for n in _REQUIRED + _OPTIONAL}
        return MotionTemplate(fps=Fraction(num, den), meta=meta, **arrays)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise InputError(f"{p}: malformed template ({exc})") from exc


def _check_zip_size(p: Path, limit: int) -> None:
    """Refuse zip bombs: the members' declared uncompressed sizes must stay under ``limit``."""
    try:
        with zipfile.ZipFile(p) as z:
            total = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError) as exc:
        raise InputError(f"{p}: unreadable or corrupt template ({exc})") from exc
    if total > limit:
        raise InputError(f"{p}: template unpacks to {total / 2**20:.0f} MiB; refused as too large")


# --------------------------------------------------------------------------------------------
# the reference's .pkl


def _load_pickle(p: Path, default_fps: Fraction | float | int) -> MotionTemplate:
    return template_from_reference(safe_pickle_load(p), source=p, default_fps=default_fps)


def template_from_reference(
    obj: Any, *, source: PathLike = "<template>", default_fps: Fraction | float | int = DEFAULT_TEMPLATE_FPS
) -> MotionTemplate:
    """Build a MotionTemplate from the reference's dict layout; InputError names what is wrong."""
    src = str(source)
    if not isinstance(obj, dict):
        raise InputError(f"{src}: not a motion template (top level is {type(obj).__name__}, expected dict)")
    motion = obj.get("motion")
    if not isinstance(motion, (list, tuple)) or not motion:
        raise InputError(f"{src}: malformed template, 'motion' must be a non-empty list of per-frame dicts")
    n = len(motion)
    declared = obj.get("n_frames")
    if declared is not None and _as_int(declared) != n:
        raise InputError(f"{src}: malformed template, n_frames is {declared} but motion has {n} entries")
    rows = {name: [] for name in ("R", "exp", "t", "scale", "kp", "x_s")}
    for i, entry in enumerate(motion):
        _collect_frame(src, i, entry, rows)
    arrays: dict[str, np.ndarray | None] = {k: np.stack(v) for k, v in rows.items() if len(v) == n}
    arrays.setdefault("kp", None)
    arrays.setdefault("x_s", None)
    arrays["eye_ratio"] = _ratio_list(src, obj, ("c_eyes_lst", "c_d_eyes_lst"), "eye_ratio", n)
    arrays["lip_ratio"] = _ratio_list(src, obj, ("c_lip_lst", "c_d_lip_lst"), "lip_ratio", n)
    fps = _template_fps(src, obj.get("output_fps"), default_fps)
    try:
        return MotionTemplate(fps=fps, meta={"source_format": "reference-pkl"}, **arrays)
    except ValueError as exc:
        raise InputError(f"{src}: malformed template ({exc})") from exc


def _collect_frame(src: str, i: int, entry: Any, rows: dict[str, list]) -> None:
    if not isinstance(entry, dict):
        raise InputError(f"{src}: malformed template, motion[{i}] is {type(entry).__name__}, expected dict")
    aliases = {"R": ("R", "R_d"), "exp": ("exp",), "t": ("t",), "scale": ("scale",), "kp": ("kp",), "x_s": ("x_s",)}
    for name, keys in aliases.items():
        value = next((entry[k] for k in keys if k in entry), None)
        if value is None:
            if name in _REQUIRED:
                raise InputError(f"{src}: malformed template, motion[{i}] has no '{keys[0]}'")
            continue
        try:
            rows[name].append(_frame_array(name, value))
        except ValueError as exc:
            raise InputError(f"{src}: malformed template, motion[{i}]: {exc}") from exc


def _ratio_list(src: str, obj: dict, keys: tuple[str, ...], name: str, n: int) -> np.ndarray | None:
    key = next((k for k in keys if k in obj), None)
    if key is None or obj[key] is None:
        return None
    values = obj[key]
    if not isinstance(values, (list, tuple)) or len(values) != n:
        count = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        raise InputError(f"{src}: malformed template, {key} has {count} entries but motion has {n}")
    try:
        return np.stack([_frame_array(name, v) for v in values])
    except ValueError as exc:
        raise InputError(f"{src}: malformed template, {key}: {exc}") from exc


def _template_fps(src: str, value: Any, default: Fraction | float | int) -> Fraction:
    if value is None:
        return as_fps(default)
    try:
        return as_fps(value.item() if isinstance(value, np.generic) else value)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{src}: malformed template, output_fps {value!r} is not a positive number") from exc


def _frame_array(name: str, value: Any, allow_nan: bool = False) -> np.ndarray:
    """One frame's value as float32 of the documented shape, dropping a leading batch axis of 1."""
    arr = _as_float32(name, value, allow_nan)
    expected = _SHAPES[name]
    if arr.size != int(np.prod(expected)):
        raise ValueError(f"{name} has shape {arr.shape}, expected {expected} (or with a leading 1)")
    return arr.reshape(expected)


def _as_float32(name: str, value: Any, allow_nan: bool = False) -> np.ndarray:
    arr = np.asarray(value)
    if arr.dtype.kind not in "fiub":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float32, copy=False)
    if not (np.isfinite(arr) | (allow_nan & np.isnan(arr))).all():
        raise ValueError(f"{name} contains NaN or infinity")
    return np.ascontiguousarray(arr)


def _as_int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


# --------------------------------------------------------------------------------------------
# restricted unpickling

# dtype flags that mean "items are Python objects" or need the Python API; plain numbers have none.
# A pickle can set them on an innocent-looking float dtype through dtype.__setstate__.
_NUMERIC_KINDS = "biufc"
_MAX_PICKLE_DEPTH = 64


def _check_dtype(dtype: Any, where: str) -> np.dtype:
    """Admit plain numeric dtypes only: no objects, no structured/void types, no flags set."""
    if not isinstance(dtype, np.dtype) or dtype.kind not in _NUMERIC_KINDS or dtype.fields is not None:
        raise UnsafeFileError(f"{where}: pickle holds a non-numeric NumPy dtype ({dtype!r}); refused")
    if dtype.subdtype is not None or dtype.flags != 0:
        raise UnsafeFileError(f"{where}: pickle holds a NumPy dtype with object flags; refused")
    return dtype


def _numpy_core_function(module: str, name: str) -> Callable:
    """numpy._core in NumPy 2, numpy.core before; 1.26 has both."""
    try:
        mod = importlib.import_module(f"numpy._core.{module}")
    except ImportError:
        mod = importlib.import_module(f"numpy.core.{module}")
    return getattr(mod, name)


class _NdarrayToken:
    """Stands in for ``numpy.ndarray``: usable only as the class argument of ``_reconstruct``."""


def _checked_array_class(where: str) -> type:
    class _CheckedArray(np.ndarray):
        """Receives the array state of a pickle and checks its dtype before NumPy applies it."""

        def __setstate__(self, state):
            if not isinstance(state, tuple) or len(state) not in (4, 5):
                raise UnsafeFileError(f"{where}: pickle holds a malformed array state; refused")
            _check_dtype(state[-3], where)
            if not isinstance(state[-1], (bytes, bytearray)):
                raise UnsafeFileError(f"{where}: pickle holds array data that is not raw bytes; refused")
            super().__setstate__(state)

    return _CheckedArray


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickle NumPy numeric arrays and plain containers only.

    ``find_class`` is the single door through which a pickle reaches code. It admits the NumPy
    array reconstruction functions, wrapped so that object or structured dtypes (which would smuggle
    arbitrary objects or raw pointers) are refused, and inert builtin types. Anything else raises
    UnsafeFileError naming the refused global, before it is called. ``load()`` returns plain
    ``numpy.ndarray`` objects.
    """

    _BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "int", "float", "complex", "str", "bytes",
                           "bytearray", "bool"})  # fmt: skip

    def __init__(self, file, *, source: PathLike = "<pickle>"):
        super().__init__(file)
        self.source = str(source)
        self._array_cls = _checked_array_class(self.source)
        self._allowed = self._build_allowlist()

    def find_class(self, module: str, name: str):
        key = (module, name)
        if key in self._allowed:
            return self._allowed[key]
        if module in ("builtins", "__builtin__") and name in self._BUILTINS:
            if name in ("bytes", "bytearray"):
                return self._sized(getattr(builtins, name))
            return getattr(builtins, name)
        raise UnsafeFileError(f"{self.source}: refused to load global {module}.{name} from a pickle "
                              "(not a plain array)")

    def _sized(self, make: type) -> Callable:
        """bytes(n) / bytearray(n) with a huge n would allocate gigabytes from a few pickle bytes."""

        def build(*args):
            if args and isinstance(args[0], int) and args[0] > MAX_TEMPLATE_BYTES:
                raise UnsafeFileError(f"{self.source}: pickle asks for a {args[0]}-byte buffer; refused")
            return make(*args)

        return build

    def persistent_load(self, pid):
        raise UnsafeFileError(f"{self.source}: pickle uses persistent ids; refused")

    def load(self) -> Any:
        return _plain(super().load(), 0, self.source)

    def _build_allowlist(self) -> dict[tuple[str, str], Any]:
        where, array_cls = self.source, self._array_cls
        reconstruct = _numpy_core_function("multiarray", "_reconstruct")
        scalar = _numpy_core_function("multiarray", "scalar")
        frombuffer = _numpy_core_function("numeric", "_frombuffer")

        def safe_reconstruct(subtype, shape, dtype_code):
            if subtype is not _NdarrayToken:
                raise UnsafeFileError(f"{where}: pickle reconstructs an array of a non-ndarray class; refused")
            return reconstruct(array_cls, shape, dtype_code)

        def safe_dtype(spec, align=False, copy=False):
            if not isinstance(spec, str):
                raise UnsafeFileError(f"{where}: pickle builds a NumPy dtype from {type(spec).__name__}; refused")
            return _check_dtype(np.dtype(spec, align, copy), where)

        def safe_scalar(dtype, data=None):
            _check_dtype(dtype, where)
            if not isinstance(data, (bytes, bytearray)):
                raise UnsafeFileError(f"{where}: pickle holds a NumPy scalar without raw bytes; refused")
            return scalar(dtype, data)

        def safe_frombuffer(buf, dtype, shape, order):
            if not isinstance(buf, (bytes, bytearray, pickle.PickleBuffer)):
                raise UnsafeFileError(f"{where}: pickle holds array data that is not raw bytes; refused")
            return frombuffer(buf, _check_dtype(dtype, where), shape, order)

        def safe_codecs_encode(text, encoding="utf-8"):
            if encoding != "latin1" or not isinstance(text, str):
                raise UnsafeFileError(f"{where}: pickle calls _codecs.encode unusually; refused")
            return text.encode("latin1")

        table: dict[tuple[str, str], Any] = {("_codecs", "encode"): safe_codecs_encode}
        for pkg in ("numpy.core", "numpy._core"):
            table[(f"{pkg}.multiarray", "_reconstruct")] = safe_reconstruct
            table[(f"{pkg}.multiarray", "scalar")] = safe_scalar
            table[(f"{pkg}.numeric", "_frombuffer")] = safe_frombuffer
        table[("numpy", "ndarray")] = _NdarrayToken
        table[("numpy", "dtype")] = safe_dtype
        return table


def _plain(obj: Any, depth: int, where: str) -> Any:
    """Replace checked-array views by plain ndarrays throughout dicts, lists and tuples."""
    if depth > _MAX_PICKLE_DEPTH:
        raise InputError(f"{where}: pickle nests deeper than {_MAX_PICKLE_DEPTH} levels")
    if isinstance(obj, np.ndarray):
        return np.array(obj.view(np.ndarray))
    if isinstance(obj, dict):
        return {k: _plain(v, depth + 1, where) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v, depth + 1, where) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_plain(v, depth + 1, where) for v in obj)
    if isinstance(obj, _NdarrayToken) or (isinstance(obj, type) and issubclass(obj, _NdarrayToken)):
        raise UnsafeFileError(f"{where}: pickle uses numpy.ndarray outside an array; refused")
    return obj


def safe_pickle_load(path: PathLike) -> Any:
    """Unpickle a file with ``RestrictedUnpickler`` (numeric arrays and containers only)."""
    p = check_input_file(path, "pickle")
    try:
        return RestrictedUnpickler(io.BytesIO(p.read_bytes()), source=p).load()
    except InputError:  # UnsafeFileError included
        raise
    except RecursionError as exc:
        raise InputError(f"{p}: pickle nests too deeply") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError, AttributeError,
            MemoryError, OverflowError) as exc:  # fmt: skip
        raise InputError(f"{p}: unreadable or corrupt pickle ({type(exc).__name__}: {exc})") from exc
