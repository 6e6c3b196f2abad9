"""Compiled kernels (numba) of the CPU fast path: Winograd F(4x4, 3x3) tile transforms, used by
``winograd.winograd_conv``, and SPADE's modulation of an upsampled map.

In PyTorch the transforms are a gather of overlapping 6x6 tiles (a copy), a dense 36x36 product
and a permuting copy back: about a third of the fast generator's time. Here each transform is one
pass over memory with the separable form (6 + 6 taps per point instead of 36), writing straight into
the layout the batched matrix product reads, and the output transform adds the bias and writes the
final map. The arithmetic is the same linear map: results agree with the PyTorch transforms to
float32 rounding.

The kernels hold no global interpreter lock; ``run_split`` cuts the planes into one share per
intra-op thread, so they use the cores the matrix products use, with no second thread runtime.
Without numba (``AVAILABLE`` is False) the PyTorch transforms are used.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

try:
    from numba import njit
except ImportError:  # pragma: no cover - numba is a dependency; this keeps a broken install working
    AVAILABLE = False
else:
    AVAILABLE = True

# float32 coefficients: with Python ints numba would compute in float64
_F2, _F4, _F5, _F8 = np.float32(2), np.float32(4), np.float32(5), np.float32(8)


def _jit(fn):
    """Compiled without the GIL, cached on disk where numba finds a writable place (else per process)."""
    if not AVAILABLE:
        return fn
    try:
        return njit(nogil=True, cache=True, boundscheck=False)(fn)
    except RuntimeError:  # no cache directory numba can write to
        return njit(nogil=True, boundscheck=False)(fn)


@_jit
def input_transform(xp, v, r0, r, tw, p0, p1):  # pragma: no cover - compiled
    """Planes p0..p1 of ``xp`` (P, Hp, Wp), tile rows r0..r0+r -> ``v`` (36, P, r * tw), B^T d B."""
    tmp = np.empty((6, 6, tw), dtype=v.dtype)
    for p in range(p0, p1):
        for ty in range(r):
            y0 = (r0 + ty) * 4
            for i in range(6):
                row = xp[p, y0 + i]
                for tx in range(tw):
                    x0 = tx * 4
                    d0, d1, d2 = row[x0], row[x0 + 1], row[x0 + 2]
                    d3, d4, d5 = row[x0 + 3], row[x0 + 4], row[x0 + 5]
                    tmp[i, 0, tx] = _F4 * d0 - _F5 * d2 + d4
                    tmp[i, 1, tx] = -_F4 * (d1 + d2) + d3 + d4
                    tmp[i, 2, tx] = _F4 * (d1 - d2) - d3 + d4
                    tmp[i, 3, tx] = _F2 * (d3 - d1) - d2 + d4
                    tmp[i, 4, tx] = _F2 * (d1 - d3) - d2 + d4
                    tmp[i, 5, tx] = _F4 * d1 - _F5 * d3 + d5
            base = ty * tw
            for b in range(6):
                for tx in range(tw):
                    d0, d1, d2 = tmp[0, b, tx], tmp[1, b, tx], tmp[2, b, tx]
                    d3, d4, d5 = tmp[3, b, tx], tmp[4, b, tx], tmp[5, b, tx]
                    v[b, p, base + tx] = _F4 * d0 - _F5 * d2 + d4
                    v[6 + b, p, base + tx] = -_F4 * (d1 + d2) + d3 + d4
                    v[12 + b, p, base + tx] = _F4 * (d1 - d2) - d3 + d4
                    v[18 + b, p, base + tx] = _F2 * (d3 - d1) - d2 + d4
                    v[24 + b, p, base + tx] = _F2 * (d1 - d3) - d2 + d4
                    v[30 + b, p, base + tx] = _F4 * d1 - _F5 * d3 + d5

@_jit
def output_transform(mm, out, bias, r0, r, tw, per_bias, q0, q1):  # pragma: no cover - compiled
    """Planes q0..q1 of ``mm`` (36, Q, r * tw) -> rows of ``out`` (Q, H4, W4): A^T m A + bias[q // per_bias]."""
    s = np.empty((6, 4, tw), dtype=out.dtype)
    for q in range(q0, q1):
        bq = bias[q // per_bias]
        for ty in range(r):
            base = ty * tw
            for a in range(6):
                for tx in range(tw):
                    t = base + tx
                    m0, m1, m2 = mm[a * 6, q, t], mm[a * 6 + 1, q, t], mm[a * 6 + 2, q, t]
                    m3, m4, m5 = mm[a * 6 + 3, q, t], mm[a * 6 + 4, q, t], mm[a * 6 + 5, q, t]
                    s[a, 0, tx] = m0 + m1 + m2 + m3 + m4
                    s[a, 1, tx] = m1 - m2 + _F2 * (m3 - m4)
                    s[a, 2, tx] = m1 + m2 + _F4 * (m3 + m4)
                    s[a, 3, tx] = m1 - m2 + _F8 * (m3 - m4) + m5
            y0 = (r0 + ty) * 4
            for j in range(4):
                for tx in range(tw):
                    m0, m1, m2 = s[0, j, tx], s[1, j, tx], s[2, j, tx]
                    m3, m4, m5 = s[3, j, tx], s[4, j, tx], s[5, j, tx]
                    x = tx * 4 + j
                    out[q, y0, x] = m0 + m1 + m2 + m3 + m4 + bq
                    out[q, y0 + 1, x] = m1 - m2 + _F2 * (m3 - m4) + bq
                    out[q, y0 + 2, x] = m1 + m2 + _F4 * (m3 + m4) + bq
                    out[q, y0 + 3, x] = m1 - m2 + _F8 * (m3 - m4) + m5 + bq


@_jit
def modulate_upsampled(n, g, beta, out, s, slope, use_beta, p0, p1):  # pragma: no cover - compiled
    """Planes p0..p1: out = act(up(n) * g [+ beta]) with ``up`` the nearest ``s``x upsampling of ``n``
    (P, h, w) to the size of ``g`` (P, h * s, w * s) and act the leaky ReLU of ``slope`` (1: none)."""
    h_out = g.shape[1]
    w_in = n.shape[2]
    for p in range(p0, p1):
        for y in range(h_out):
            nrow = n[p, y // s]
            grow, orow = g[p, y], out[p, y]
            brow = beta[p, y]
            for xl in range(w_in):
                nv = nrow[xl]
                for k in range(s):
                    x = xl * s + k
                    v = nv * grow[x]
                    if use_beta:
                        v += brow[x]
                    orow[x] = v if v >= 0 else v * slope


class _Workers:
    """Helper threads for ``run_split``, made on first use and grown to the intra-op thread count."""

    def __init__(self):
        self._lock = threading.Lock()
        self._pool: ThreadPoolExecutor | None = None
        self._size = 0

    def get(self, n: int) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None or self._size < n:
                # the smaller pool is not shut down: another thread may be submitting to it right now;
                # its idle threads end once it is no longer referenced
                self._pool = ThreadPoolExecutor(n, thread_name_prefix="liveportrait-winograd")
                self._size = n
            return self._pool


_workers = _Workers()


def run_split(kernel, planes: int, *args) -> None:
    """``kernel(*args, start, stop)`` over ``planes`` planes, one share per intra-op thread."""
    n = max(1, min(torch.get_num_threads(), planes // 8))
    if n == 1:
        kernel(*args, 0, planes)
        return
    bounds = [planes * i // n for i in range(n + 1)]
    pool = _workers.get(n - 1)
    futures = [pool.submit(kernel, *args, bounds[i], bounds[i + 1]) for i in range(1, n)]
    kernel(*args, bounds[0], bounds[1])
    for f in futures:
        f.result()
