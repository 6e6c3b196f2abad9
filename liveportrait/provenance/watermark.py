"""Invisible, keyed watermark in the luma of every output frame.

Embedding
---------
The mark is a periodic tile of ``TILE`` x ``TILE`` pixels defined in the Fourier domain: every
frequency bin of the tile inside a mid band (``BAND``, cycles per pixel) gets unit magnitude and a
pseudo-random phase derived from a key.  About a third of those bins form a *sync* pattern whose
phases are fixed; each of the others belongs to one bit of the payload (tool id, 32-bit run id,
CRC-16; rate-1/2 convolutional code) and has its sign flipped by that bit.  The inverse FFT of this
spectrum is a seamless tile of band-limited noise.  It is repeated over the frame, multiplied by a
mask (a little stronger on texture, weaker near black and white where clipping would eat it)
scaled so that the root-mean-square change is ``strength`` grey levels (PSNR about 41 dB), and
added equally to R, G and B, so only luma changes.  The tiled pattern is cached per frame size;
embedding costs a few milliseconds per 512 x 512 frame.

Detection
---------
No original is needed.  The luma is high-passed and locally normalised, then *folded*: all tiles
are summed into one, which adds the mark coherently while the picture averages out.  Because the
mark is periodic, a crop merely shifts the folded tile; the shift is found with one FFT
cross-correlation against the sync bins (phase-only, so every bin weighs the same) and refined to a
sixteenth of a pixel.  A resize by a factor ``s`` turns the period into ``s * TILE``; folding with
that period reads the same bins, so half size costs one more fold of 64 x 64.  When the expected
scales (``DEFAULT_SCALES``) find nothing, the period is read off the autocorrelation of the
residual (the tiling makes it peak at the period) and the frames are resampled and folded there,
which covers other resize factors.  Frames of a video go into the same folds, so the evidence of
several frames adds up.

False alarms
------------
With phase-only correlation the sync score at one shift is a sum of ``n`` cosines of independent,
uniformly distributed angles (the key's phases are random with respect to any picture not marked
with it), so divided by ``sqrt(n / 2)`` it is close to a standard normal, with lighter tails.  The
detector takes the maximum over every shift of every fold it tried and reports the union bound
``tests * Q(z)`` as the false-alarm probability.  The mark counts as found below ``P_FOUND``, or
below ``P_FOUND_WITH_PAYLOAD`` when the payload also decodes with a valid CRC and a known tool id
(a further 2**-24).  The scale search is a second stage with its own bound over all tests of both.

The default key is public (anyone can verify); a deployment that wants a private mark passes its
own ``key``.  Knowing the key also makes the mark easier to remove or forge: it labels honest
outputs, it does not stop a determined forger.
"""

from __future__ import annotations

import binascii
import hashlib
import math
import secrets
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

TILE = 128
BAND = (0.05, 0.2)  # cycles per pixel at the embedding scale
SYNC_FRACTION = 0.34
DEFAULT_KEY = b"liveportrait/provenance/v1"
TOOL_ID = 0x4C  # 'L': liveportrait
TOOL_NAMES = {TOOL_ID: "liveportrait"}
DEFAULT_STRENGTH = 2.2  # RMS luma change in 8-bit grey levels (PSNR about 41 dB)
DEFAULT_SCALES = (1.0, 0.5)

# decision thresholds on the false-alarm probability (already corrected for the number of tests)
P_FOUND = 1e-9  # sync alone
P_FOUND_WITH_PAYLOAD = 1e-3  # sync plus a payload with a valid CRC and a known tool id (2**-24 more)

_MSG_BITS = 8 + 32 + 16
_K = 7  # constraint length of the convolutional code
_GENERATORS = (0o171, 0o133)
_CODED_BITS = (_MSG_BITS + _K - 1) * len(_GENERATORS)


# --------------------------------------------------------------------------------------------
# payload coding


def _crc16(bits: np.ndarray) -> int:
    """CRC-16/CCITT-FALSE (polynomial 0x1021, initial value 0xFFFF, unreflected, no final XOR) of a bit
    sequence read MSB first in whole bytes: ``binascii.crc_hqx`` with 0xFFFF as the start value."""
    if len(bits) % 8:
        raise ValueError(f"the CRC is taken over whole bytes, not {len(bits)} bits")
    return binascii.crc_hqx(np.packbits(np.asarray(bits, dtype=np.uint8)).tobytes(), 0xFFFF)


def _int_bits(value: int, n: int) -> np.ndarray:
    return np.array([(value >> (n - 1 - i)) & 1 for i in range(n)], dtype=np.uint8)


def _bits_int(bits: np.ndarray) -> int:
    v = 0
    for b in bits:
        v = (v << 1) | int(b)
    return v


def _message_bits(tool_id: int, run_id: int) -> np.ndarray:
    head = np.concatenate([_int_bits(tool_id, 8), _int_bits(run_id, 32)])
    return np.concatenate([head, _int_bits(_crc16(head), 16)])


def _parity_table() -> np.ndarray:
    """Expected output bits for every 7-bit encoder window (newest input bit in the LSB)."""
    w = np.arange(1 << _K)
    out = []
    for g in _GENERATORS:
        x = w & g
        p = np.zeros_like(x)
        for i in range(_K):
            p ^= (x >> i) & 1
        out.append(p)
    return np.stack(out, axis=1).astype(np.uint8)  # (128, 2)


_PARITY = _parity_table()


def _conv_encode(bits: np.ndarray) -> np.ndarray:
    window = 0
    out = []
    for b in np.concatenate([bits, np.zeros(_K - 1, np.uint8)]):
        window = ((window << 1) | int(b)) & ((1 << _K) - 1)
        out.extend(_PARITY[window])
    return np.array(out, dtype=np.uint8)


def _viterbi(soft: np.ndarray) -> np.ndarray:
    """Soft-decision Viterbi decoding; ``soft`` > 0 means coded bit 0.  Returns the message bits."""
    n_out = len(_GENERATORS)
    steps = len(soft) // n_out
    n_states = 1 << (_K - 1)
    signs = 1.0 - 2.0 * _PARITY.astype(np.float64)  # (128, 2): +1 for bit 0
    metric = np.full(n_states, -np.inf)
    metric[0] = 0.0
    nxt = np.arange(n_states)
    prev_a = nxt >> 1
    prev_b = prev_a | (n_states >> 1)
    choices = np.zeros((steps, n_states), dtype=bool)
    for t in range(steps):
        branch = signs @ soft[t * n_out : (t + 1) * n_out]  # (128,) metric of each window
        ma = metric[prev_a] + branch[nxt]
        mb = metric[prev_b] + branch[nxt | n_states]
        choices[t] = mb > ma
        metric = np.where(choices[t], mb, ma)
    state = 0  # the tail drives the encoder back to zero
    bits = np.zeros(steps, dtype=np.uint8)
    for t in range(steps - 1, -1, -1):
        bits[t] = state & 1
        state = (state >> 1) | ((n_states >> 1) if choices[t, state] else 0)
    return bits[: steps - (_K - 1)]


def _parse_run_id(payload: bytes | int | str) -> int:
    if isinstance(payload, (bytes, bytearray)):
        if len(payload) > 4:
            raise ValueError("the watermark payload holds at most 4 bytes")
        return int.from_bytes(bytes(payload), "big")
    if isinstance(payload, str):
        try:
            value = int(payload, 16)
        except ValueError:
            raise ValueError(f"run id {payload!r} is not hexadecimal") from None
    else:
        value = int(payload)
    if not 0 <= value < 1 << 32:
        raise ValueError("the watermark payload must fit in 32 bits")
    return value


def new_run_id() -> str:
    """A fresh random run id: 8 hex digits, the 32-bit payload of the watermark."""
    return secrets.token_hex(4)


# --------------------------------------------------------------------------------------------
# key: bins, phases and the spatial tile


@dataclass(frozen=True)
class _Key:
    ky: np.ndarray  # signed vertical frequency index of each used bin (half plane)
    kx: np.ndarray
    phase: np.ndarray  # unit phasors exp(i phi)
    role: np.ndarray  # -1 sync, else index of the coded bit
    sync: np.ndarray  # indices of sync bins


def _make_key(key: bytes) -> _Key:
    seed = int.from_bytes(hashlib.sha256(key).digest()[:8], "big")
    rng = np.random.default_rng(seed)
    half = TILE // 2
    ky, kx = np.meshgrid(np.arange(-half + 1, half), np.arange(0, half), indexing="ij")
    ky, kx = ky.ravel(), kx.ravel()
    radius = np.hypot(ky, kx) / TILE
    keep = (radius >= BAND[0]) & (radius <= BAND[1])
    keep &= (kx > 0) & (ky != 0)  # half plane, no axis bins (rows, columns, letterbox edges)
    keep &= ~((ky % 8 == 0) & (kx % 8 == 0))  # no harmonics of 8- and 16-pixel codec block grids
    ky, kx = ky[keep], kx[keep]
    n = len(ky)
    order = rng.permutation(n)
    ky, kx = ky[order], kx[order]
    phase = np.exp(1j * rng.uniform(0, 2 * np.pi, n))
    n_sync = int(round(n * SYNC_FRACTION))
    role = np.full(n, -1, dtype=np.int64)
    role[n_sync:] = np.arange(n - n_sync) % _CODED_BITS
    return _Key(ky=ky, kx=kx, phase=phase, role=role, sync=np.arange(n_sync))


def _tile(key: _Key, coded: np.ndarray) -> np.ndarray:
    """Unit-RMS spatial tile for the given coded bits (0/1)."""
    signs = np.ones(len(key.ky))
    bit_bins = key.role >= 0
    signs[bit_bins] = 1.0 - 2.0 * coded[key.role[bit_bins]]
    spec = np.zeros((TILE, TILE), dtype=np.complex128)
    spec[key.ky % TILE, key.kx % TILE] = signs * key.phase
    spec[(-key.ky) % TILE, (-key.kx) % TILE] = np.conj(signs * key.phase)
    tile = np.fft.ifft2(spec).real
    tile /= np.sqrt(np.mean(tile**2))
    return tile.astype(np.float32)


_KEYS: dict[bytes, _Key] = {}


def _get_key(key: bytes) -> _Key:
    if key not in _KEYS:
        _KEYS[key] = _make_key(key)
    return _KEYS[key]


# --------------------------------------------------------------------------------------------
# result


@dataclass
class Detection:
    """What the detector found.

    ``confidence`` is ``1 - p_false_alarm``: the probability that a frame without this mark would
    score lower.  ``payload`` is the 4-byte run id when it decoded with a valid CRC, else None.
    """

    found: bool
    confidence: float
    payload: bytes | None = None
    tool: str | None = None
    p_false_alarm: float = 1.0
    score: float = 0.0  # z-score of the sync peak
    scale: float | None = None  # resize factor at which the mark was seen
    shift: tuple[float, float] | None = None  # tile phase (y, x) in pixels of the examined frame
    frames: int = 0
    details: dict = field(default_factory=dict)

    @property
    def run_id(self) -> str | None:
        return self.payload.hex() if self.payload is not None else None

    def as_dict(self) -> dict:
        return {
            "found": self.found,
            "confidence": self.confidence,
            "p_false_alarm": self.p_false_alarm,
            "score": round(self.score, 3),
            "tool": self.tool,
            "run_id": self.run_id,
            "scale": self.scale,
            "shift": None if self.shift is None else [round(v, 2) for v in self.shift],
            "frames": self.frames,
        }


# --------------------------------------------------------------------------------------------
# embedding


def _luma(frame: np.ndarray) -> np.ndarray:
    import cv2

    if frame.ndim == 2:
        return frame.astype(np.float32)
    return cv2.cvtColor(np.ascontiguousarray(frame[..., :3]), cv2.COLOR_RGB2GRAY).astype(np.float32)


def _check_frame(frame: np.ndarray) -> None:
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise ValueError("frames must be uint8 numpy arrays")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (3, 4)):
        raise ValueError(f"frames must be HxW, HxWx3 or HxWx4, got shape {frame.shape}")


class Watermarker:
    """Embeds one payload (the run id) with one key; detects any payload made with that key."""

    def __init__(
        self,
        payload: bytes | int | str = 0,
        strength: float = DEFAULT_STRENGTH,
        key: bytes = DEFAULT_KEY,
        scales: tuple[float, ...] = DEFAULT_SCALES,
    ):
        self._run = _parse_run_id(payload)
        self.strength = float(strength)
        self.key_bytes = key
        self.scales = tuple(scales)
        self._key = _get_key(key)
        coded = _conv_encode(_message_bits(TOOL_ID, self._run))
        self._tile = _tile(self._key, coded)
        self._tiled: dict[tuple[int, int], np.ndarray] = {}

    @property
    def payload(self) -> bytes:
        """The 4-byte run id carried by the mark."""
        return self._run.to_bytes(4, "big")

    @property
    def run_id(self) -> str:
        """The run id as 8 hex digits (as in the metadata label and in ``Detection.run_id``)."""
        return self.payload.hex()

    def _pattern(self, h: int, w: int) -> np.ndarray:
        p = self._tiled.get((h, w))
        if p is None:
            reps = (-(-h // TILE), -(-w // TILE))
            p = np.ascontiguousarray(np.tile(self._tile, reps)[:h, :w])
            if len(self._tiled) > 8:
                self._tiled.clear()
            self._tiled[(h, w)] = p
        return p

    def mask(self, luma: np.ndarray) -> np.ndarray:
        """Per-pixel amplitude: grows (gently) with local texture, shrinks near black and white
        where clipping would eat the mark; scaled to a root-mean-square of ``strength``."""
        import cv2

        h, w = luma.shape
        small = cv2.resize(luma, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        hp = small - cv2.blur(small, (3, 3))
        act = np.sqrt(np.maximum(cv2.blur(hp * hp, (5, 5)), 0.0))
        a = np.sqrt(act + np.float32(1.5))
        a *= np.clip(np.minimum(small, 255.0 - small) * np.float32(1 / 24), 0.25, 1.0)
        a *= np.float32(self.strength / max(1e-6, float(np.sqrt(np.mean(a * a)))))
        return cv2.resize(a, (w, h), interpolation=cv2.INTER_LINEAR)

    def embed(self, frame: np.ndarray) -> np.ndarray:
        """Return a marked copy of an RGB (or RGBA, or grey) uint8 frame."""
        import cv2

        _check_frame(frame)
        if self.strength <= 0:
            return frame.copy()
        h, w = frame.shape[:2]
        delta = self.mask(_luma(frame))
        delta *= self._pattern(h, w)
        if frame.ndim == 2:
            return cv2.add(frame, delta, dtype=cv2.CV_8U)
        d3 = cv2.merge([delta, delta, delta])
        if frame.shape[2] == 3:
            return cv2.add(frame, d3, dtype=cv2.CV_8U)
        out = frame.copy()
        out[..., :3] = cv2.add(np.ascontiguousarray(frame[..., :3]), d3, dtype=cv2.CV_8U)
        return out

    def detect(self, frame: np.ndarray, search: bool = True) -> Detection:
        """Look for the mark of this key (any run id) in one frame."""
        return detect(frame, key=self.key_bytes, scales=self.scales, search=search)

    def detect_frames(self, frames: Iterable[np.ndarray], search: bool = True) -> Detection:
        """Look for the mark of this key (any run id) in the frames of one video, pooled."""
        return detect_frames(frames, key=self.key_bytes, scales=self.scales, search=search)


# --------------------------------------------------------------------------------------------
# detection


def _residual(luma: np.ndarray) -> np.ndarray:
    """High-passed, locally normalised luma: flattens the picture's own spectrum and tames edges."""
    import cv2

    hp = luma - cv2.GaussianBlur(luma, (0, 0), 2.5)
    local = np.sqrt(np.maximum(cv2.GaussianBlur(hp * hp, (0, 0), 6.0), 0.0)) + np.float32(1.0)
    r = hp / local
    np.clip(r, -3.0, 3.0, out=r)
    return r


def _fold(r: np.ndarray, period: int) -> np.ndarray:
    """Sum of all period x period tiles of ``r`` (zero-padded to whole tiles)."""
    h, w = r.shape
    ph, pw = -(-h // period) * period, -(-w // period) * period
    if (ph, pw) != (h, w):
        r = np.pad(r, ((0, ph - h), (0, pw - w)))
    return r.reshape(ph // period, period, pw // period, period).sum(axis=(0, 2), dtype=np.float64)


def _periods(scales: Iterable[float]) -> list[int]:
    out = []
    for s in scales:
        p = int(round(TILE * s))
        if p >= 16 and p not in out:
            out.append(p)
    return out


AUTO_FRAMES = 4  # frames kept for the search of an unexpected scale
AUTO_CANDIDATES = 3  # periods from the autocorrelation that are tried
AUTO_RANGE = (0.35, 2.5)  # scales the search looks at


class _Accumulator:
    """Folded residuals per candidate period, summed over frames (plus a few residuals kept
    whole for the search of other scales)."""

    def __init__(self, scales: Iterable[float], auto: bool = True):
        self.periods = _periods(scales)
        self.folds = {p: np.zeros((p, p)) for p in self.periods}
        self.used = {p: False for p in self.periods}
        self.kept: list[np.ndarray] = []
        self.auto = auto
        self.frames = 0
        self._searched: list[tuple[float, int, np.ndarray]] | None = None

    def add(self, frame: np.ndarray) -> None:
        _check_frame(frame)
        r = _residual(_luma(frame))
        for p in self.periods:
            if min(r.shape) >= p // 2:
                self.folds[p] += _fold(r, p)
                self.used[p] = True
        if self.auto and len(self.kept) < AUTO_FRAMES and (not self.kept or self.kept[0].shape == r.shape):
            self.kept.append(r)
            self._searched = None
        self.frames += 1

    def searched_folds(self) -> list[tuple[float, int, np.ndarray]]:
        """(period, integer period, fold) for the periods the autocorrelation suggests (cached:
        none of this depends on the key)."""
        if self._searched is None:
            self._searched = []
            if self.kept:
                skip = [p for p in self.periods if self.used[p]]
                for L in _autocorrelation_periods(self.kept, skip):
                    for adj in (1.0 - 0.003, 1.0, 1.0 + 0.003):
                        fold, target = _resampled_fold(self.kept, L * adj)
                        self._searched.append((L * adj, target, fold))
        return self._searched


def _q(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


@dataclass
class _Peak:
    z: float  # sync score at the best integer shift
    period: int  # fold period
    scale: float  # resize factor of the examined frames relative to the marked ones
    y: int
    x: int
    vals: np.ndarray  # per key bin: whitened spectrum times the conjugate key phase
    usable: np.ndarray  # key bins below the fold's Nyquist
    sync: np.ndarray  # usable sync bins


def _score(fold: np.ndarray, period: int, scale: float, key: _Key) -> _Peak | None:
    """Phase-only cross-correlation of a folded tile with the sync bins, over all shifts."""
    lim = period // 2
    usable = (np.abs(key.ky) < lim) & (key.kx < lim)
    sync = np.zeros(len(key.ky), dtype=bool)
    sync[key.sync] = True
    sync &= usable
    n_sync = int(sync.sum())
    if n_sync < 16 or not np.any(fold):
        return None
    spec = np.fft.fft2(fold)
    f = spec[key.ky % period, key.kx % period]
    vals = f / np.maximum(np.abs(f), 1e-12) * np.conj(key.phase)
    z_spec = np.zeros((period, period), dtype=np.complex128)
    z_spec[key.ky[sync] % period, key.kx[sync] % period] = vals[sync]
    surface = np.fft.ifft2(z_spec).real * (period * period)  # sum_k Re(vals_k exp(2 pi i k.d / period))
    y, x = divmod(int(np.argmax(surface)), period)
    z = float(surface[y, x]) / math.sqrt(n_sync / 2.0)
    return _Peak(z, period, scale, y, x, vals, usable, sync)


def _refine(peak: _Peak, key: _Key) -> tuple[float, float, float]:
    """Sub-pixel shift around the integer peak (two grid passes); returns (z, dy, dx)."""
    s = peak.sync
    vals, ky, kx = peak.vals[s], key.ky[s], key.kx[s]
    best = (peak.z, float(peak.y), float(peak.x))
    for step, span in ((0.25, 0.75), (0.0625, 0.1875)):
        offs = np.arange(-span, span + 1e-9, step)
        dy, dx = np.meshgrid(best[1] + offs, best[2] + offs, indexing="ij")
        dy, dx = dy.ravel(), dx.ravel()
        ph = np.exp(2j * np.pi * (np.outer(dy, ky) + np.outer(dx, kx)) / peak.period)
        score = (ph * vals).real.sum(axis=1) / math.sqrt(len(vals) / 2.0)
        i = int(np.argmax(score))
        if score[i] > best[0]:
            best = (float(score[i]), float(dy[i]), float(dx[i]))
    return best


def _decode(peak: _Peak, dy: float, dx: float, key: _Key):
    """Soft bits at the found shift -> Viterbi -> (tool id, run id, crc ok)."""
    aligned = (peak.vals * np.exp(2j * np.pi * (key.ky * dy + key.kx * dx) / peak.period)).real
    bins = (key.role >= 0) & peak.usable
    soft = np.bincount(key.role[bins], weights=aligned[bins], minlength=_CODED_BITS)
    msg = _viterbi(soft)
    tool_id, run_id, crc = _bits_int(msg[:8]), _bits_int(msg[8:40]), _bits_int(msg[40:])
    ok = crc == _crc16(msg[:40]) and tool_id in TOOL_NAMES
    return tool_id, run_id, ok


def _autocorrelation_periods(kept: list[np.ndarray], skip: list[int]) -> list[float]:
    """Periods (in pixels of the examined frames) at which the residual repeats itself.

    The tiled mark makes the autocorrelation peak at lags (P, 0) and (0, P); the strongest few
    peaks along both axes, away from the periods already tried, are the candidates.
    """
    h, w = kept[0].shape
    lo = int(TILE * AUTO_RANGE[0])
    hi = int(min(TILE * AUTO_RANGE[1], min(h, w) / 1.5))
    if hi <= lo + 4:
        return []
    H, W_ = h + hi + 1, w + hi + 1
    power = 0.0
    for r in kept:
        spec = np.fft.rfft2(r, s=(H, W_))
        power = power + (spec.real**2 + spec.imag**2)
    ac = np.fft.irfft2(power, s=(H, W_))
    lags = np.arange(hi + 1)
    prof = ac[lags, 0] / ((h - lags) * w) + ac[0, lags] / ((w - lags) * h)
    from scipy.ndimage import median_filter

    d = prof - median_filter(prof, 9, mode="nearest")
    ref = d[lo:]
    sd = 1.4826 * float(np.median(np.abs(ref - np.median(ref)))) + 1e-12
    z = d / sd
    peaks = [L for L in range(lo + 1, hi) if z[L] >= z[L - 1] and z[L] >= z[L + 1] and z[L] > 3.0]
    peaks.sort(key=lambda L: -z[L])
    out: list[float] = []
    for L in peaks:
        a, b, c = z[L - 1], z[L], z[L + 1]
        den = a - 2 * b + c
        Lf = L + (0.5 * (a - c) / den if den < 0 else 0.0)
        for cand in (Lf, Lf / 2):  # the first harmonic is often the stronger peak
            if cand < lo or any(abs(cand - q) < 0.01 * q for q in list(skip) + out):
                continue
            out.append(cand)
        if len(out) >= AUTO_CANDIDATES:
            break
    return out[:AUTO_CANDIDATES]


def _resampled_fold(kept: list[np.ndarray], period: float) -> tuple[np.ndarray, int]:
    """Resample the kept residuals so the mark's period becomes an integer, and fold them."""
    import cv2

    target = int(round(period))
    f = target / period
    h, w = kept[0].shape
    size = (int(w * f), int(h * f))
    m = np.float32([[f, 0, 0], [0, f, 0]])
    fold = np.zeros((target, target))
    for r in kept:
        rr = cv2.warpAffine(r, m, size, flags=cv2.INTER_LINEAR)
        fold += _fold(rr, target)
    return fold, target


def _decide(peaks: list[_Peak], key: _Key, frames: int, stage: str) -> Detection:
    """Best peak -> sub-pixel shift -> false-alarm probability -> payload -> decision."""
    if not peaks:
        return Detection(found=False, confidence=0.0, frames=frames)
    n_tests = sum(p.period**2 for p in peaks)
    peak = max(peaks, key=lambda p: p.z)
    z_ref, dy, dx = _refine(peak, key)
    # the union bound covers the integer shifts of every fold tried; the refined peak is a maximum
    # over a grid 16 times finer (4 x 4 sub-positions per pixel), so it pays for that
    p_sync = min(1.0, n_tests * _q(peak.z), 16 * n_tests * _q(z_ref))
    tool_id, run_id, crc_ok = _decode(peak, dy, dx, key) if p_sync < 0.5 else (0, 0, False)
    p_fa = p_sync * (2.0**-24 if crc_ok else 1.0)
    found = p_sync <= P_FOUND or (crc_ok and p_sync <= P_FOUND_WITH_PAYLOAD)
    return Detection(
        found=found,
        confidence=1.0 - p_fa,
        payload=run_id.to_bytes(4, "big") if (found and crc_ok) else None,
        tool=TOOL_NAMES.get(tool_id) if (found and crc_ok) else None,
        p_false_alarm=p_fa,
        score=z_ref,
        scale=round(peak.scale, 4),
        shift=(dy % peak.period, dx % peak.period),
        frames=frames,
        details={"z_int": peak.z, "crc_ok": bool(crc_ok), "period": peak.period, "tests": n_tests, "stage": stage},
    )


def _analyse(acc: _Accumulator, key: _Key) -> Detection:
    peaks = [_score(acc.folds[p], p, p / TILE, key) for p in acc.periods if acc.used[p]]
    peaks = [p for p in peaks if p is not None]
    det = _decide(peaks, key, acc.frames, "fixed")
    if det.found or not acc.kept:
        return det
    # not at the expected scales: read candidate periods off the autocorrelation and fold there.
    # The decision is taken again over every test of both stages, so each stage keeps its own
    # false-alarm bound (the overall one is at most their sum).
    more = []
    for period, target, fold in acc.searched_folds():
        pk = _score(fold, target, period / TILE, key)
        if pk is not None:
            more.append(pk)
    if not more:
        return det
    return _decide(peaks + more, key, acc.frames, "search")


def detect(frame: np.ndarray, key: bytes = DEFAULT_KEY, scales=DEFAULT_SCALES, search: bool = True) -> Detection:
    """Look for the mark in one RGB (or grey) uint8 frame."""
    return detect_frames([frame], key=key, scales=scales, search=search)


def detect_frames(
    frames: Iterable[np.ndarray], key: bytes = DEFAULT_KEY, scales=DEFAULT_SCALES, search: bool = True
) -> Detection:
    """Look for the mark in a sequence of frames of one video, pooling the evidence coherently.

    ``scales`` are the resize factors tried first (exactly); with ``search`` a few more periods,
    read off the autocorrelation of the frames, are tried when those find nothing.
    """
    acc = _Accumulator(scales, auto=search)
    for frame in frames:
        acc.add(frame)
    return _analyse(acc, _get_key(key))
