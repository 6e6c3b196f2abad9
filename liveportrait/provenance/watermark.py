"""Invisible, keyed watermark in the luma of every output frame.

How it works
------------
The mark is a periodic tile of ``TILE`` x ``TILE`` pixels, defined directly in the Fourier domain:
every frequency bin of the tile inside a mid band (``BAND``, in cycles per pixel) gets unit magnitude
and a pseudo-random phase drawn from a secret key.  A third of those bins form a *sync* pattern whose
phases are fixed; each of the others belongs to one bit of a convolutionally coded payload and has its
sign flipped by that bit.  The inverse FFT of this spectrum is a seamless tile of band-limited noise;
it is repeated over the frame, multiplied by a perceptual mask (stronger on texture, weaker on flat
skin) scaled so that the root-mean-square change per pixel is ``strength`` grey levels, and added
equally to R, G and B (so only luma changes).

Detection never needs the original.  The frame's luma is high-passed and locally normalised, then
*folded*: all tiles are summed into one (period ``P``), which adds the mark coherently while the
picture averages out.  Because the mark is periodic, a crop merely shifts the folded tile; the shift
is found with one FFT cross-correlation against the sync bins (phase-only, so every bin weighs the
same).  A resize by a factor ``s`` turns the period into ``s * TILE``; folding with that period
reads the same bins, so half size costs one more fold of 64 x 64.  Frames of a video are folded into
the same accumulator, so evidence adds up coherently over frames.

False alarms: with phase-only correlation the sync score at any one shift is a sum of ``n`` cosines of
independent, uniformly random angles (the key's phases are random with respect to any picture that was
not marked with it), so after dividing by ``sqrt(n / 2)`` it is a standard normal.  The detector takes
the maximum over all shifts of all tried periods and reports the union bound ``tests * Q(z)`` as the
false-alarm probability.  The payload carries a CRC-16 and a tool id; a payload that decodes with a
valid CRC at a moderately significant peak is a second, independent line of evidence.
"""

from __future__ import annotations

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
    """CRC-16/CCITT-FALSE of a bit sequence (MSB first)."""
    crc = 0xFFFF
    for b in bits:
        top = (crc >> 15) & 1
        crc = (crc << 1) & 0xFFFF
        if top ^ int(b):
            crc ^= 0x1021
    return crc


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

    @property
    def n_sync(self) -> int:
        return int(len(self.sync))


def _make_key(key: bytes) -> _Key:
    seed = int.from_bytes(__import__("hashlib").sha256(key).digest()[:8], "big")
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
    return cv2.cvtColor(frame[..., :3].astype(np.float32), cv2.COLOR_RGB2GRAY)


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
        self.run_id = _parse_run_id(payload)
        self.strength = float(strength)
        self.key_bytes = key
        self.scales = tuple(scales)
        self._key = _get_key(key)
        coded = _conv_encode(_message_bits(TOOL_ID, self.run_id))
        self._tile = _tile(self._key, coded)
        self._tiled: dict[tuple[int, int], np.ndarray] = {}

    @property
    def payload(self) -> bytes:
        return self.run_id.to_bytes(4, "big")

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
        """Per-pixel amplitude: local texture energy, floored, normalised to RMS ``strength``."""
        import cv2

        h, w = luma.shape
        small = cv2.resize(luma, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_AREA)
        hp = small - cv2.blur(small, (3, 3))
        act = np.sqrt(np.maximum(cv2.blur(hp * hp, (5, 5)), 0.0))
        act = cv2.resize(act, (w, h), interpolation=cv2.INTER_LINEAR)
        a = np.sqrt(act + np.float32(1.5))
        # keep away from black and white where clipping would eat the mark
        a *= np.clip(np.minimum(luma, 255.0 - luma) / 24.0, 0.25, 1.0)
        a *= np.float32(self.strength / max(1e-6, float(np.sqrt(np.mean(a * a)))))
        return a

    def embed(self, frame: np.ndarray) -> np.ndarray:
        """Return a marked copy of an RGB (or RGBA, or grey) uint8 frame."""
        import cv2

        _check_frame(frame)
        if self.strength <= 0:
            return frame.copy()
        h, w = frame.shape[:2]
        luma = _luma(frame)
        delta = self.mask(luma) * self._pattern(h, w)
        if frame.ndim == 2:
            return cv2.add(frame, delta, dtype=cv2.CV_8U)
        out = frame.copy()
        d3 = cv2.merge([delta, delta, delta])
        out[..., :3] = cv2.add(frame[..., :3], d3, dtype=cv2.CV_8U)
        return out

    def detect(self, frame: np.ndarray) -> Detection:
        return detect(frame, key=self.key_bytes, scales=self.scales)

    def detect_frames(self, frames: Iterable[np.ndarray]) -> Detection:
        return detect_frames(frames, key=self.key_bytes, scales=self.scales)


# --------------------------------------------------------------------------------------------
# detection


def _residual(luma: np.ndarray) -> np.ndarray:
    """High-passed, locally normalised luma: flattens the picture's own spectrum and tames edges."""
    import cv2

    hp = luma - cv2.GaussianBlur(luma, (0, 0), 2.5)
    local = np.sqrt(cv2.GaussianBlur(hp * hp, (0, 0), 6.0)) + np.float32(1.0)
    r = hp / local
    np.clip(r, -3.0, 3.0, out=r)
    return r


def _fold(r: np.ndarray, period: int) -> np.ndarray:
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


class _Accumulator:
    """Folded residuals per candidate period, summed over frames."""

    def __init__(self, scales: Iterable[float]):
        self.periods = _periods(scales)
        self.folds = {p: np.zeros((p, p)) for p in self.periods}
        self.frames = 0

    def add(self, frame: np.ndarray) -> None:
        _check_frame(frame)
        r = _residual(_luma(frame))
        for p in self.periods:
            if min(r.shape) >= p // 2:
                self.folds[p] += _fold(r, p)
        self.frames += 1


def _q(z: float) -> float:
    """Upper tail of the standard normal."""
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def _bins_for(key: _Key, period: int) -> np.ndarray:
    """Which key bins are representable in a fold of this period (below its Nyquist)."""
    lim = period // 2
    return (np.abs(key.ky) < lim) & (key.kx < lim)


def _refine(vals: np.ndarray, ky: np.ndarray, kx: np.ndarray, period: int, y0: int, x0: int):
    """Sub-pixel shift around an integer peak, by direct evaluation on a fine grid."""
    best = (-np.inf, float(y0), float(x0))
    for step, span in ((0.25, 1.0), (0.0625, 0.25)):
        cy, cx = best[1], best[2]
        offs = np.arange(-span, span + 1e-9, step)
        dy, dx = np.meshgrid(cy + offs, cx + offs, indexing="ij")
        ph = np.exp(2j * np.pi * (np.outer(dy.ravel(), ky) + np.outer(dx.ravel(), kx)) / period)
        score = (ph * vals).real.sum(axis=1)
        i = int(np.argmax(score))
        if score[i] > best[0]:
            best = (float(score[i]), float(dy.ravel()[i]), float(dx.ravel()[i]))
    return best


def _analyse(acc: _Accumulator, key: _Key) -> Detection:
    n_tests = sum(p * p for p in acc.periods if np.any(acc.folds[p]))
    best = None
    for p in acc.periods:
        fold = acc.folds[p]
        if not np.any(fold):
            continue
        spec = np.fft.fft2(fold)
        usable = _bins_for(key, p)
        sync = np.zeros(len(key.ky), dtype=bool)
        sync[key.sync] = True
        sync &= usable
        n_sync = int(sync.sum())
        if n_sync < 16:
            continue
        f = spec[key.ky % p, key.kx % p]
        fw = f / np.maximum(np.abs(f), 1e-12)
        vals = fw * np.conj(key.phase)  # per-bin, phase-aligned at zero shift
        z_spec = np.zeros((p, p), dtype=np.complex128)
        z_spec[key.ky[sync] % p, key.kx[sync] % p] = vals[sync]
        surface = np.fft.ifft2(z_spec).real * (p * p)  # = sum_k Re(vals_k exp(+2pi i k.d / p))
        i = int(np.argmax(surface))
        y0, x0 = divmod(i, p)
        sd = math.sqrt(float(np.sum(np.abs(vals[sync]) ** 2)) / 2.0)
        z = float(surface[y0, x0]) / sd
        if best is None or z > best[0]:
            best = (z, p, y0, x0, vals, usable, sync, n_sync, sd)
    if best is None:
        return Detection(found=False, confidence=0.0, frames=acc.frames)
    z, p, y0, x0, vals, usable, sync, n_sync, sd = best
    _, dy, dx = _refine(vals[sync], key.ky[sync], key.kx[sync], p, y0, x0)
    z_ref = float(
        (vals[sync] * np.exp(2j * np.pi * (key.ky[sync] * dy + key.kx[sync] * dx) / p)).real.sum()
    ) / math.sqrt(n_sync / 2.0)
    # the union bound covers the integer shifts; the refined peak is a maximum over a grid 16 times
    # finer (4x4 sub-positions per pixel), so it pays for that
    z_ref = max(z, z_ref)
    p_sync = min(1.0, n_tests * _q(z), 16 * n_tests * _q(z_ref))

    # payload: soft value per coded bit from its bins at the found shift
    aligned = (vals * np.exp(2j * np.pi * (key.ky * dy + key.kx * dx) / p)).real
    bit_bins = (key.role >= 0) & usable
    soft = np.bincount(key.role[bit_bins], weights=aligned[bit_bins], minlength=_CODED_BITS)
    msg = _viterbi(soft)
    tool_id, run_id, crc = _bits_int(msg[:8]), _bits_int(msg[8:40]), _bits_int(msg[40:])
    crc_ok = crc == _crc16(msg[:40]) and tool_id in TOOL_NAMES
    # agreement between the received soft bits and the re-encoded decision: a check on the payload
    recoded = 1.0 - 2.0 * _conv_encode(msg)
    n_bit_bins = int(bit_bins.sum())
    z_payload = float(np.dot(recoded, soft)) / math.sqrt(max(1e-12, float(np.sum(np.abs(vals[bit_bins]) ** 2)) / 2.0))

    p_fa = p_sync * (2.0**-24 if crc_ok else 1.0)
    found = p_sync <= P_FOUND or (crc_ok and p_sync <= P_FOUND_WITH_PAYLOAD)
    return Detection(
        found=found,
        confidence=1.0 - p_fa if found else max(0.0, 1.0 - p_sync),
        payload=run_id.to_bytes(4, "big") if (found and crc_ok) else None,
        tool=TOOL_NAMES.get(tool_id) if (found and crc_ok) else None,
        p_false_alarm=p_fa,
        score=z_ref,
        scale=p / TILE,
        shift=(dy % p, dx % p),
        frames=acc.frames,
        details={"z_int": z, "crc_ok": bool(crc_ok), "z_payload": z_payload, "period": p, "tests": n_tests},
    )


def detect(frame: np.ndarray, key: bytes = DEFAULT_KEY, scales=DEFAULT_SCALES) -> Detection:
    """Look for the mark in one RGB (or grey) uint8 frame."""
    return detect_frames([frame], key=key, scales=scales)


def detect_frames(frames: Iterable[np.ndarray], key: bytes = DEFAULT_KEY, scales=DEFAULT_SCALES) -> Detection:
    """Look for the mark in a sequence of frames of one video, pooling the evidence coherently."""
    acc = _Accumulator(scales)
    for frame in frames:
        acc.add(frame)
    return _analyse(acc, _get_key(key))
