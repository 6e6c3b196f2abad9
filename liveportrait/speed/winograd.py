"""Exact algebraic rewrites of convolutions that cut the arithmetic of W and G.

Every function here computes the same linear map as the convolution it replaces; only the order of
the floating-point operations changes. The kernels are transformed once (per weights version) and
kept, so each frame pays only for the data side.

* ``WinogradConv2d``: 3x3 stride-1 convolutions as Winograd F(4x4, 3x3) (Lavin & Gray 2016): 36
  multiplications per 16 outputs instead of 144, done as 36 large matrix products.
* ``WinogradConv3d``: 3x3x3 convolutions with Winograd over height and width and the three depth taps
  accumulated as matrix products on shifted views.
* ``UpsampledConv2d`` / ``UpsampledConv3d``: a 3x3 convolution applied to a nearest-upsampled map
  equals, for each output phase, a 1- or 2-tap convolution on the low-resolution map; the upsampled
  map is never built.
* ``FFTConv3d``: a large (7x7x7) kernel as overlap-save FFT tiles over height and width with the
  depth taps accumulated in the frequency domain.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from . import kernels

# Winograd F(4, 3) on the points 0, +-1, +-2 and infinity
_BT4 = [[4, 0, -5, 0, 1, 0],
        [0, -4, -4, 1, 1, 0],
        [0, 4, -4, -1, 1, 0],
        [0, -2, -1, 2, 1, 0],
        [0, 2, -1, -2, 1, 0],
        [0, 4, 0, -5, 0, 1]]
_G4 = [[1 / 4, 0, 0],
       [-1 / 6, -1 / 6, -1 / 6],
       [-1 / 6, 1 / 6, -1 / 6],
       [1 / 24, 1 / 12, 1 / 6],
       [1 / 24, -1 / 12, 1 / 6],
       [0, 0, 1]]
_AT4 = [[1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 0],
        [0, 1, 1, 4, 4, 0],
        [0, 1, -1, 8, -8, 1]]
# Winograd F(2, 3) on 0, +-1, infinity (smaller tiles, for small maps)
_BT2 = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
_G2 = [[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]]
_AT2 = [[1, 1, 1, 0], [0, 1, -1, -1]]

_MATS = {4: (_BT4, _G4, _AT4), 2: (_BT2, _G2, _AT2)}


def winograd_matrices(m: int, dtype=torch.float32):
    """(kron(BT, BT) (a*a, a*a), G (a, 3), kron(AT, AT) (m*m, a*a)) with a = m + 2."""
    bt, g, at = (torch.tensor(x, dtype=torch.float64) for x in _MATS[m])
    return torch.kron(bt, bt).to(dtype), g, torch.kron(at, at).to(dtype)


def transform_kernel(weight: torch.Tensor, m: int) -> torch.Tensor:
    """(K, C, 3, 3) -> (a*a, K, C): G w G^T for every filter, in float64 then cast."""
    _, g, _ = winograd_matrices(m)
    w = weight.detach().to(torch.float64)
    u = torch.einsum("ai,kcij,bj->abkc", g, w, g)
    a = m + 2
    return u.reshape(a * a, *w.shape[:2]).to(weight.dtype).contiguous()


def transform_kernel3d(weight: torch.Tensor, m: int) -> torch.Tensor:
    """(K, C, kd, 3, 3) -> (kd, a*a, K, C)."""
    return torch.stack([transform_kernel(weight[:, :, i], m) for i in range(weight.shape[2])])


def compiled_transforms_apply(x: torch.Tensor) -> bool:
    """Whether ``winograd_conv`` runs the compiled tile transforms on ``x`` (float32 CPU, numba, no gradient)."""
    return (kernels.AVAILABLE and x.dtype == torch.float32 and x.device.type == "cpu"
            and not (torch.is_grad_enabled() and x.requires_grad))


def winograd_conv(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None, m: int = 4,
                  tiles_per_strip: int | None = None, compiled: bool | None = None) -> torch.Tensor:
    """Same-padded 3x3 (2-D) or kd x 3 x 3 (3-D) convolution from transformed kernels.

    ``x``: (B, C, H, W) with ``u`` (1, a*a, K, C), or (B, C, D, H, W) with ``u`` (kd, a*a, K, C).
    The map is processed in strips of about ``tiles_per_strip`` tiles (whole tile rows).
    ``compiled``: the tile transforms of ``kernels.py`` (default: when they apply: numba installed,
    F(4, 3), float32 on the CPU, no gradient wanted) or the PyTorch ones.
    """
    if compiled is None:
        compiled = m == 4 and compiled_transforms_apply(x) and not (torch.is_grad_enabled() and u.requires_grad)
    if compiled:
        # measured (2-core AVX2): larger strips make larger, faster products, the transforms being one
        # pass anyway; 2048 tiles took 10% off G and W against 256
        return _winograd_conv_compiled(x, u, bias, tiles_per_strip or 2048)
    # the PyTorch transforms copy the tiles several times: strips that stay in cache pay there
    tiles_per_strip = tiles_per_strip or 256
    squeeze = x.ndim == 4
    if squeeze:
        x = x.unsqueeze(2)
    b, c, d, h, w = x.shape
    kd, aa, k, _ = u.shape
    a = m + 2
    pd = kd // 2
    th, tw = -(-h // m), -(-w // m)
    bt, _, at = winograd_matrices(m, x.dtype)
    bt, at = bt.to(x.device), at.to(x.device)
    u = u.to(x.dtype)
    xp = F.pad(x, (1, tw * m + 1 - w, 1, th * m + 1 - h, pd, pd))
    dp = d + 2 * pd
    out = torch.empty(b, k, d, th * m, tw * m, dtype=x.dtype, device=x.device)
    rows = max(1, min(th, tiles_per_strip // max(1, tw * d)))
    for bi in range(b):
        for r0 in range(0, th, rows):
            r = min(th, r0 + rows) - r0
            t = r * tw
            tiles = xp[bi, :, :, r0 * m:(r0 + r) * m + 2].unfold(2, a, m).unfold(3, a, m)
            v = torch.mm(bt, tiles.reshape(-1, aa).t()).view(aa, c, dp, t)
            mm = _depth_tap_products(u, v, d)
            if bias is not None:
                mm[7 if m == 4 else 1 + a] += bias.to(x.dtype)[:, None]  # the point 1 (x) 1 adds to every output
            y = torch.mm(at, mm.view(aa, -1)).view(m, m, k, d, r, tw)
            out[bi, :, :, r0 * m:(r0 + r) * m].view(k, d, r, m, tw, m).copy_(y.permute(2, 3, 4, 0, 5, 1))
    if th * m != h or tw * m != w:
        out = out[..., :h, :w]
    return out.squeeze(2) if squeeze else out


def _depth_tap_products(u: torch.Tensor, v: torch.Tensor, d: int) -> torch.Tensor:
    """sum over depth taps j of u[j] @ v[:, :, j:j + d]: (kd, a*a, K, C), (a*a, C, D + kd - 1, T) -> (a*a, K, D*T)."""
    kd, aa, k, c = u.shape
    t = v.shape[-1]
    mm = torch.empty(aa, k, d * t, dtype=v.dtype, device=v.device)
    for j in range(kd):
        vj = v[:, :, j:j + d].reshape(aa, c, d * t)
        if j == 0:
            torch.bmm(u[j], vj, out=mm)
        else:
            mm.baddbmm_(u[j], vj)
    return mm


def _winograd_conv_compiled(x: torch.Tensor, u: torch.Tensor, bias: torch.Tensor | None,
                            tiles_per_strip: int) -> torch.Tensor:
    """``winograd_conv`` for F(4, 3) with the compiled tile transforms (same strips, same products)."""
    squeeze = x.ndim == 4
    if squeeze:
        x = x.unsqueeze(2)
    b, c, d, h, w = x.shape
    kd, aa, k, _ = u.shape
    pd = kd // 2
    th, tw = -(-h // 4), -(-w // 4)
    xp = F.pad(x, (1, tw * 4 + 1 - w, 1, th * 4 + 1 - h, pd, pd)).contiguous()
    dp = d + 2 * pd
    u = u.to(x.dtype)
    out = torch.empty(b, k, d, th * 4, tw * 4, dtype=x.dtype, device=x.device)
    bias_np = (torch.zeros(k, dtype=x.dtype) if bias is None else bias.detach().to(x.dtype).contiguous()).numpy()
    rows = max(1, min(th, tiles_per_strip // max(1, tw * d)))
    for bi in range(b):
        planes_in = xp[bi].view(c * dp, th * 4 + 2, tw * 4 + 2).numpy()
        planes_out = out[bi].view(k * d, th * 4, tw * 4).numpy()
        for r0 in range(0, th, rows):
            r = min(th, r0 + rows) - r0
            t = r * tw
            v = torch.empty(aa, c * dp, t, dtype=x.dtype)
            kernels.run_split(kernels.input_transform, c * dp, planes_in, v.numpy(), r0, r, tw)
            mm = _depth_tap_products(u, v.view(aa, c, dp, t), d)
            kernels.run_split(kernels.output_transform, k * d, mm.view(aa, k * d, t).numpy(), planes_out, bias_np,
                              r0, r, tw, d)
    if th * 4 != h or tw * 4 != w:
        out = out[..., :h, :w]
    return out.squeeze(2) if squeeze else out


class CachedTransform(nn.Module):
    """Keeps transformed weights keyed on the source parameters' versions."""

    def __init__(self):
        super().__init__()
        self._key = None
        self._value = None

    def _sources(self) -> tuple[torch.Tensor, ...]:
        raise NotImplementedError

    def _build(self):
        raise NotImplementedError

    def prepared(self):
        key = tuple((t.data_ptr(), 0 if t.is_inference() else t._version, t.dtype, t.device)
                    for t in self._sources() if t is not None)
        if self._key != key:
            with torch.no_grad():
                self._value = self._build()
            self._key = key
        return self._value


class WinogradConv2d(CachedTransform):
    """3x3, stride 1, padding 1 convolution with F(m x m, 3 x 3); ``weight_fn`` gives (K, C, 3, 3)."""

    def __init__(self, weight_fn, bias_fn, sources, m: int = 4):
        super().__init__()
        self.weight_fn, self.bias_fn, self._src, self.m = weight_fn, bias_fn, sources, m

    def _sources(self):
        return self._src()

    def _build(self):
        w = self.weight_fn()
        bias = self.bias_fn()
        return transform_kernel(w, self.m)[None], None if bias is None else bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, bias = self.prepared()
        return winograd_conv(x, u, bias, self.m)


class WinogradConv3d(CachedTransform):
    """3x3x3, stride 1, padding 1 Conv3d: Winograd over (H, W), depth taps as shifted matrix products."""

    def __init__(self, conv: nn.Conv3d, m: int = 4):
        super().__init__()
        assert conv.kernel_size == (3, 3, 3) and conv.padding == (1, 1, 1) and conv.stride == (1, 1, 1)
        self.conv, self.m = conv, m

    def _sources(self):
        return (self.conv.weight,) if self.conv.bias is None else (self.conv.weight, self.conv.bias)

    def _build(self):
        w = self.conv.weight.detach()
        return transform_kernel3d(w, self.m), None if self.conv.bias is None else self.conv.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u, bias = self.prepared()
        return winograd_conv(x, u, bias, self.m)


def _phase_taps(scale: int) -> list[tuple[int, int]]:
    """For each output phase p of a 3-tap kernel on an x``scale`` nearest upsampling:
    (first low-resolution offset, number of low-resolution taps)."""
    out = []
    for p in range(scale):
        offs = sorted({(p + k) // scale for k in (-1, 0, 1)})
        out.append((offs[0], len(offs)))
    return out


def _phase_kernel_1d(scale: int, p: int) -> torch.Tensor:
    """(n_taps, 3) 0/1 matrix summing the 3 high-resolution taps into low-resolution taps."""
    first, n = _phase_taps(scale)[p]
    m = torch.zeros(n, 3, dtype=torch.float64)
    for k in (-1, 0, 1):
        m[(p + k) // scale - first, k + 1] = 1
    return m


def _phase_plans(weight: torch.Tensor, s: int, equation: str) -> list[tuple]:
    """One (taps y, taps x, phases y, phases x, kernel) per group of output phases sharing their taps;
    the group's phase kernels are stacked along the output channels (float64 sums, then cast)."""
    w = weight.detach().to(torch.float64)
    groups: dict[tuple, list[int]] = {}
    for p, t in enumerate(_phase_taps(s)):
        groups.setdefault(t, []).append(p)
    plans = []
    for ty, py in groups.items():
        for tx, px in groups.items():
            ks = [torch.einsum(equation, _phase_kernel_1d(s, a), w, _phase_kernel_1d(s, b)) for a in py for b in px]
            plans.append((ty, tx, py, px, torch.cat(ks).to(weight.dtype).contiguous()))
    return plans


class UpsampledConv2d(CachedTransform):
    """``conv(interpolate(x, scale_factor=s, mode='nearest'))`` for a 3x3, padding-1 conv.

    Output phases with the same low-resolution footprint share one convolution (their kernels
    stacked along the output channels); the phases are interleaved at the end.
    """

    def __init__(self, weight_fn, bias_fn, sources, scale: int):
        super().__init__()
        self.weight_fn, self.bias_fn, self._src, self.scale = weight_fn, bias_fn, sources, scale

    def _sources(self):
        return self._src()

    def _build(self):
        weight = self.weight_fn()
        plans = _phase_plans(weight, self.scale, "yi,kcij,xj->kcyx")
        bias = self.bias_fn()
        return plans, None if bias is None else bias.detach().reshape(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plans, bias = self.prepared()
        s = self.scale
        b, c, h, w = x.shape
        xp = F.pad(x, (1, 1, 1, 1))
        k = plans[0][4].shape[0] // (len(plans[0][2]) * len(plans[0][3]))
        out = torch.empty(b, k, h, s, w, s, dtype=x.dtype, device=x.device)
        for (fy, ny), (fx, nx), py, px, kernel in plans:
            if (fy, ny, fx, nx) == (0, 1, 0, 1):
                # a 1x1 kernel on the map itself: a matrix product (faster than the 1x1 convolution)
                y = torch.matmul(kernel.to(x.dtype)[:, :, 0, 0], x.reshape(b, c, h * w))
                y = y.view(b, len(py), len(px), k, h, w)
            else:
                # low-resolution offsets fy .. fy+ny-1 relative to the pixel: padded index starts at 1 + fy
                inp = xp[:, :, 1 + fy:1 + fy + h + ny - 1, 1 + fx:1 + fx + w + nx - 1]
                y = F.conv2d(inp, kernel.to(x.dtype)).view(b, len(py), len(px), k, h, w)
            for i, a in enumerate(py):
                for j, bb in enumerate(px):
                    out[:, :, :, a, :, bb] = y[:, i, j]
        out = out.view(b, k, h * s, w * s)
        return out if bias is None else out.add_(bias.to(x.dtype))


class UpsampledConv3d(CachedTransform):
    """``conv3d(interpolate(x, scale_factor=(1, s, s)))`` for a 3x3x3, padding-1 Conv3d."""

    def __init__(self, conv: nn.Conv3d, scale: int = 2):
        super().__init__()
        self.conv, self.scale = conv, scale

    def _sources(self):
        return (self.conv.weight, self.conv.bias)

    def _build(self):
        plans = _phase_plans(self.conv.weight, self.scale, "yi,kcdij,xj->kcdyx")
        return plans, self.conv.bias.detach().reshape(1, -1, 1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plans, bias = self.prepared()
        s = self.scale
        b, c, d, h, w = x.shape
        xp = F.pad(x, (1, 1, 1, 1, 1, 1))
        k = self.conv.out_channels
        out = torch.empty(b, k, d, h, s, w, s, dtype=x.dtype, device=x.device)
        for (fy, ny), (fx, nx), py, px, kernel in plans:
            inp = xp[:, :, :, 1 + fy:1 + fy + h + ny - 1, 1 + fx:1 + fx + w + nx - 1]
            y = F.conv3d(inp, kernel.to(x.dtype)).view(b, len(py), len(px), k, d, h, w)
            for i, a in enumerate(py):
                for j, bb in enumerate(px):
                    out[:, :, :, :, a, :, bb] = y[:, i, j]
        out = out.view(b, k, d, h * s, w * s)
        return out.add_(bias.to(x.dtype))


class FFTConv3d(CachedTransform):
    """A same-padded Conv3d with a large odd kernel (the 7x7x7 mask head of W) by FFT tiles.

    Height and width are cut into tiles of ``tile`` outputs; each tile's input window (tile + k - 1)
    is zero-padded to ``n`` and transformed once; the kernel's transform is kept. Depth taps are
    accumulated as complex matrix products over the input channels.
    """

    def __init__(self, conv: nn.Conv3d, n: int = 22):
        super().__init__()
        kd, kh, kw = conv.kernel_size
        assert kh == kw and conv.stride == (1, 1, 1) and conv.padding == (kd // 2, kh // 2, kw // 2)
        self.conv, self.n = conv, n
        self.k = kh
        self.kd = kd
        self.tile = n - kh + 1

    def _sources(self):
        return (self.conv.weight, self.conv.bias)

    def _build(self):
        w = self.conv.weight.detach()
        n = self.n
        # correlation: flip the kernel to use the convolution theorem
        wf = torch.fft.rfft2(torch.flip(w, dims=(-2, -1)).to(torch.float64), s=(n, n))  # (K, C, kd, n, n//2+1)
        kk, c, kd = wf.shape[:3]
        wf = wf.permute(2, 3, 4, 0, 1).reshape(kd, n * (n // 2 + 1), kk, c)
        # complex products as real ones: [re; im] = [[A, -B], [B, A]] [x_re; x_im]
        real = torch.cat([torch.cat([wf.real, -wf.imag], dim=3), torch.cat([wf.imag, wf.real], dim=3)], dim=2)
        return real.to(w.dtype).contiguous(), self.conv.bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        wr, bias = self.prepared()
        dtype = x.dtype
        x = x.float()
        b, c, d, h, w = x.shape
        n, k, t, kd = self.n, self.k, self.tile, self.kd
        th, tw = -(-h // t), -(-w // t)
        p = k // 2
        nf = n * (n // 2 + 1)
        kk = wr.shape[2] // 2
        xp = F.pad(x, (p, tw * t - w + (n - t) - p, p, th * t - h + (n - t) - p, kd // 2, kd // 2))
        dp = d + kd - 1
        outs = []
        for bi in range(b):
            tiles = xp[bi].unfold(2, n, t).unfold(3, n, t)  # (C, Dp, th, tw, n, n)
            xf = torch.fft.rfft2(tiles)  # (C, Dp, th, tw, n, nr)
            xf = torch.view_as_real(xf).permute(4, 5, 6, 0, 1, 2, 3)  # (n, nr, 2, C, Dp, th, tw)
            xr = xf.reshape(nf, 2 * c, dp, th * tw)
            acc = torch.empty(nf, 2 * kk, d * th * tw, dtype=torch.float32, device=x.device)
            for j in range(kd):
                vj = xr[:, :, j:j + d].reshape(nf, 2 * c, d * th * tw)
                if j == 0:
                    torch.bmm(wr[j], vj, out=acc)
                else:
                    acc.baddbmm_(wr[j], vj)
            y = acc.view(n, n // 2 + 1, 2, kk, d, th, tw).permute(3, 4, 5, 6, 0, 1, 2).contiguous()
            y = torch.fft.irfft2(torch.view_as_complex(y), s=(n, n))[..., n - t:, n - t:]  # (K, D, th, tw, t, t)
            outs.append(y.permute(0, 1, 2, 4, 3, 5).reshape(kk, d, th * t, tw * t)[..., :h, :w])
        y = torch.stack(outs) + bias.view(1, -1, 1, 1, 1)
        return y.to(dtype)
