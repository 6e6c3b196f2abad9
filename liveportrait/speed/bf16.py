"""bfloat16 CPU forward passes of W and G, for CPUs that compute bfloat16 natively (AVX512-BF16, AMX).

``Bf16Warping`` and ``Bf16Generator`` wrap the original modules, like the exact ``fastnets`` rewrites,
and run the same function with the convolutions in bfloat16 (oneDNN, channels-last activations,
weights folded, cast and laid out once); what measurement showed to be sensitive stays float32:

* W: the compressed feature, the sparse motions, the 22 sampled volumes and the heatmaps (the
  hourglass' input), the 7x7x7 mask head (FFT tiles, float32, the exact path's), its softmax, the
  blended deformation and the ``grid_sample`` of the source volume. A bfloat16 mask head moves the
  deformation by a few thousandths of the grid, which resamples the noisy feature volume visibly
  differently (about 24 dB frames, ``benchmarks/bench_bf16.py``).
* G: ``fc`` (the first convolution: its output starts the residual stream, whose bfloat16 rounding
  alone cost 10 dB of the frame, 37.8 -> 48.7 dB on the conformance fixture), the residual stream
  between blocks, the instance-norm statistics, the 64 -> 12 output convolution and the sigmoid.

By default (``accelerate``) W is the exact float32 ``FastWarping``: no part of W met the bound in
bfloat16 at a gain (``W_FLOAT32``). Every convolution on a nearest-upsampled map (W's decoder, G's label
maps at 128 and 256) runs per output phase on the low-resolution map, as in the exact path, with fewer
taps. Keypoints, M and S are not touched: the networks around W and G stay float32.

Fidelity bound (``FIDELITY_PSNR_DB["bf16"]``, enforced in ``tests/speed/test_bf16.py``): rendered
uint8 frames at least 40 dB PSNR against float32 eager.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..networks.blocks import SameBlock2d, SPADEResnetBlock
from ..networks.generator import SPADEDecoder
from ..networks.outputs import WarpingOutput
from ..networks.warping import WarpingNetwork, make_coordinate_grid
from . import kernels
from .fastnets import FastWarping, _SN1x1, _sn_weight, _spade_gb, flush_subnormal_, fold_bn
from .winograd import CachedTransform, FFTConv3d

BF16 = torch.bfloat16
# the SPADE modulation by the compiled kernel (numba) when it is installed; False: PyTorch operations
COMPILED_MODULATION = True


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """``x`` (4-D or 5-D) in the channels-last layout oneDNN's bfloat16 convolutions run fastest on."""
    fmt = torch.channels_last if x.ndim == 4 else torch.channels_last_3d
    return x.contiguous(memory_format=fmt)


def to_bf16(x: torch.Tensor) -> torch.Tensor:
    return channels_last(x.to(BF16))


def _nhwc(x: torch.Tensor) -> torch.Tensor:
    """(B, C, *S) channels-last -> a (B, *S, C) view (no copy when ``x`` is channels-last)."""
    return x.movedim(1, -1)


def _nchw(x: torch.Tensor) -> torch.Tensor:
    return x.movedim(-1, 1)


class BConv:
    """A same-padded (or given padding) convolution with bfloat16 weights, laid out channels-last."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, padding: int | tuple | None = None,
                 dtype: torch.dtype = BF16):
        w = weight.detach()
        self.dtype = dtype
        self.padding = tuple(k // 2 for k in w.shape[2:]) if padding is None else padding
        self.weight = channels_last(w.float().to(dtype))
        self.bias = None if bias is None else bias.detach().float().to(dtype)
        self.fn = F.conv2d if w.ndim == 4 else F.conv3d

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.fn(channels_last(x.to(self.dtype)), self.weight, self.bias, padding=self.padding)


def _up_taps(scale: int) -> torch.Tensor:
    """(scale + 2, 3) 0/1 matrix: which taps of a 3-tap kernel on a nearest ``scale``x upsampling fall on
    each tap of the equivalent transposed convolution (stride ``scale``, padding 1)."""
    m = torch.zeros(scale + 2, 3, dtype=torch.float64)
    for t in range(scale + 2):
        for k in range(3):
            if 0 <= t - 2 + k <= scale - 1:
                m[t, k] = 1
    return m


class BUpConv:
    """``conv(nearest upsampling by s)`` (3x3 2-D, or 3x3x3 3-D upsampled over height and width only) as
    one transposed convolution of the low-resolution map: stride s, kernel s + 2, padding 1; its kernel
    sums the 3x3 taps that land on each low-resolution pixel (exact: the same linear map). Per output
    pixel (s + 2)^2 / s^2 taps instead of 9, and the result comes out interleaved, channels-last."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, scale: int, dtype: torch.dtype = BF16):
        w = weight.detach().double()
        m = _up_taps(scale)
        self.dtype = dtype
        self.three_d = w.ndim == 5
        if self.three_d:
            # depth: stride 1, where a transposed convolution is the correlation with the flipped kernel
            kern = torch.einsum("yi,kcdij,xj->ckdyx", m, w.flip(2), m)
            self.stride, self.padding = (1, scale, scale), (1, 1, 1)
        else:
            kern = torch.einsum("yi,kcij,xj->ckyx", m, w, m)
            self.stride, self.padding = scale, 1
        self.weight = channels_last(kern.float().to(dtype))
        self.bias = None if bias is None else bias.detach().float().to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        fn = F.conv_transpose3d if self.three_d else F.conv_transpose2d
        return fn(channels_last(x.to(self.dtype)), self.weight, self.bias, stride=self.stride, padding=self.padding)


def pool_hw(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pooling over height and width of a channels-last map (``avg_pool3d`` has no bfloat16
    CPU kernel), summed in float32."""
    y = _nhwc(x)
    h, w = y.shape[-3:-1]
    y = y.unflatten(-3, (h // 2, 2)).unflatten(-2, (w // 2, 2))  # (..., h/2, 2, w/2, 2, C)
    return _nchw(y.sum(dim=(-4, -2), dtype=torch.float32).mul_(0.25).to(x.dtype))


def instance_stats(x: torch.Tensor, eps: float = 1e-5) -> tuple[torch.Tensor, torch.Tensor]:
    """Per (batch, channel) mean and 1/std over height and width, in float32 (broadcastable to x)."""
    var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
    return mean, torch.rsqrt(var + eps)


def _modulate_torch(x, gb, scale, slope, with_beta, out_dtype):
    c = x.shape[1]
    mean, rstd = instance_stats(x)
    n = _nhwc((x.float() - mean) * rstd)  # (B, h, w, C)
    g = _nhwc(gb[:, :c])  # (B, H, W, C)
    bsz, h, w, _ = n.shape
    s = scale
    if s > 1:
        n = n.reshape(bsz, h, 1, w, 1, c)
        g = g.unflatten(1, (h, s)).unflatten(3, (w, s))
    if with_beta:
        beta = _nhwc(gb[:, c:2 * c])
        out = torch.addcmul(beta if s == 1 else beta.unflatten(1, (h, s)).unflatten(3, (w, s)), n, g)
    else:
        out = torch.mul(n, g)
    if slope is not None:
        out = F.leaky_relu_(out, slope)
    out = out.to(out_dtype)
    if s > 1:
        out = out.reshape(bsz, h * s, w * s, c)
    return _nchw(out)


def _bits(x: torch.Tensor) -> np.ndarray:
    """A numpy view of a float32 or bfloat16 tensor (bfloat16 as its uint16 bit patterns)."""
    return x.view(torch.uint16).numpy() if x.dtype == BF16 else x.numpy()


def modulate(x: torch.Tensor, gb: torch.Tensor, scale: int, slope: float | None, with_beta: bool = True,
             out_dtype=BF16, eps: float = 1e-5) -> torch.Tensor:
    """act(up(instance_norm(x)) * gb[:, :C] [+ gb[:, C:2C]]) with ``up`` the nearest ``scale``x
    upsampling to gb's size, C = x's channels; statistics and arithmetic in float32, the result in
    ``out_dtype``, channels-last. ``slope`` None: no activation.

    On the CPU with numba: one compiled pass for the statistics and one for the rest (``_modulate_rows``),
    reading the channels-last maps in place; else PyTorch operations."""
    if not (COMPILED_MODULATION and kernels.AVAILABLE and x.device.type == "cpu" and out_dtype == BF16
            and gb.dtype == BF16 and x.dtype in (torch.float32, BF16)):
        return _modulate_torch(x, gb, scale, slope, with_beta, out_dtype)
    c = x.shape[1]
    xs = _nhwc(channels_last(x))
    gbs = _nhwc(channels_last(gb))
    bsz, h, w, _ = xs.shape
    big_h, big_w = gbs.shape[1:3]
    out = torch.empty(bsz, big_h, big_w, c, dtype=BF16)
    is_bf16 = x.dtype == BF16
    for i in range(bsz):
        xi = _bits(xs[i])
        part = np.zeros((h, 2, c), np.float64)
        kernels.run_split(_channel_sums, h, xi, is_bf16, part)
        tot = part.sum(axis=0) / (h * w)
        var = np.maximum(tot[1] - tot[0] ** 2, 0.0)
        rstd = 1.0 / np.sqrt(var + eps)
        gi = _bits(gbs[i])
        kernels.run_split(_modulate_rows, big_h, xi, is_bf16, rstd.astype(np.float32),
                          (-tot[0] * rstd).astype(np.float32), gi[:, :, :c], gi[:, :, c:2 * c] if with_beta else gi,
                          with_beta, _bits(out[i]), scale, np.float32(1.0 if slope is None else slope))
    return _nchw(out)


@kernels._jit
def _load_row(src, buf_u, buf_f, is_bf16):  # pragma: no cover - compiled
    """(w, c) float32, or uint16 holding bfloat16 bits -> the float32 buffer ``buf_f`` (``buf_u``: its bits)."""
    w, c = src.shape
    if is_bf16:
        for i in range(w):
            for k in range(c):
                buf_u[i * c + k] = np.uint32(src[i, k]) << np.uint32(16)
    else:
        for i in range(w):
            for k in range(c):
                buf_f[i * c + k] = src[i, k]


@kernels._jit
def _channel_sums(x, is_bf16, part, y0, y1):  # pragma: no cover - compiled
    """Rows y0..y1 of ``x`` (h, w, c): per-channel sum and sum of squares (float64) into part[y0]."""
    h, w, c = x.shape
    buf_u = np.empty(w * c, np.uint32)
    buf_f = buf_u.view(np.float32)
    s1 = np.zeros(c, np.float64)
    s2 = np.zeros(c, np.float64)
    for y in range(y0, y1):
        _load_row(x[y], buf_u, buf_f, is_bf16)
        for i in range(w):
            for k in range(c):
                v = np.float64(buf_f[i * c + k])
                s1[k] += v
                s2[k] += v * v
    part[y0, 0, :] = s1
    part[y0, 1, :] = s2


@kernels._jit
def _modulate_rows(x, is_bf16, mul, add, g, beta, use_beta, out, s, slope, y0, y1):  # pragma: no cover
    """Output rows y0..y1 of ``out`` (H, W, c) bfloat16 bits: act((up(x) * mul + add) * g [+ beta]), with
    ``up`` the nearest ``s``x upsampling of ``x`` (h, w, c), g and beta (H, W, c) bfloat16 bits, act the
    leaky ReLU of ``slope``; float32 arithmetic, rounded to nearest even once."""
    h, w, c = x.shape
    big_w = out.shape[1]
    xb_u = np.empty(w * c, np.uint32)
    xb_f = xb_u.view(np.float32)
    gb_u = np.empty(big_w * c, np.uint32)
    gb_f = gb_u.view(np.float32)
    bb_u = np.empty(big_w * c, np.uint32)
    bb_f = bb_u.view(np.float32)
    ob_f = np.empty(big_w * c, np.float32)
    ob_u = ob_f.view(np.uint32)
    last = -1
    for y in range(y0, y1):
        ys = y // s
        if ys != last:
            _load_row(x[ys], xb_u, xb_f, is_bf16)
            for i in range(w):
                for k in range(c):
                    xb_f[i * c + k] = xb_f[i * c + k] * mul[k] + add[k]
            last = ys
        _load_row(g[y], gb_u, gb_f, True)
        if use_beta:
            _load_row(beta[y], bb_u, bb_f, True)
        for xo in range(big_w):
            base = (xo // s) * c
            o = xo * c
            for k in range(c):
                v = xb_f[base + k] * gb_f[o + k]
                if use_beta:
                    v += bb_f[o + k]
                ob_f[o + k] = v if v >= 0 else v * slope
        row = out[y]
        for xo in range(big_w):
            for k in range(c):
                u = np.uint64(ob_u[xo * c + k])
                row[xo, k] = np.uint16((u + np.uint64(0x7FFF) + ((u >> np.uint64(16)) & np.uint64(1))) >> np.uint64(16))


class Bf16Generator(CachedTransform):
    """Same function as ``SPADEDecoder`` with bfloat16 convolutions (module docstring)."""

    def __init__(self, generator: SPADEDecoder, float32: tuple[str, ...] = ("fc",)):
        super().__init__()
        self.generator = generator
        self.config = generator.config
        # convolutions kept in float32: fc, mid_shared, mid<i>.{gb0,gb1,conv0,conv1},
        # up_<i>.{shared,gb0,gb1,conv0,conv1,gbs,conv_s}
        self.float32 = frozenset(float32)

    def _dtype(self, name: str) -> torch.dtype:
        return torch.float32 if name in self.float32 else BF16

    def _sources(self):
        return (*self.generator.parameters(), *self.generator.buffers())

    @torch.no_grad()
    def _build(self) -> dict:
        g = self.generator
        dt = self._dtype
        plan: dict = {"fc": BConv(g.fc.weight, g.fc.bias, dtype=dt("fc"))}
        middle = [getattr(g, f"G_middle_{i}") for i in range(6)]
        shared = [s for blk in middle for s in (blk.norm_0, blk.norm_1)]
        plan["mid_shared"] = BConv(torch.cat([s.mlp_shared[0].weight for s in shared]),
                                   torch.cat([s.mlp_shared[0].bias for s in shared]), dtype=dt("mid_shared"))
        plan["hidden"] = shared[0].mlp_shared[0].out_channels
        plan["middle"] = [{"gb0": BConv(*_spade_gb(blk.norm_0), dtype=dt(f"mid{i}.gb0")),
                           "gb1": BConv(*_spade_gb(blk.norm_1), dtype=dt(f"mid{i}.gb1")),
                           "conv0": BConv(_sn_weight(blk.conv_0), blk.conv_0.bias, dtype=dt(f"mid{i}.conv0")),
                           "conv1": BConv(_sn_weight(blk.conv_1), blk.conv_1.bias, dtype=dt(f"mid{i}.conv1"))}
                          for i, blk in enumerate(middle)]
        for name, scale in (("up_0", 2), ("up_1", 4)):
            blk: SPADEResnetBlock = getattr(g, name)
            spades = [blk.norm_s, blk.norm_0, blk.norm_1] if blk.learned_shortcut else [blk.norm_0, blk.norm_1]
            step = {
                "shared": BUpConv(torch.cat([s.mlp_shared[0].weight for s in spades]),
                                  torch.cat([s.mlp_shared[0].bias for s in spades]), scale,
                                  dtype=dt(f"{name}.shared")),
                "gb0": BConv(*_spade_gb(blk.norm_0), dtype=dt(f"{name}.gb0")),
                "gb1": BConv(*_spade_gb(blk.norm_1), dtype=dt(f"{name}.gb1")),
                "conv0": BConv(_sn_weight(blk.conv_0), blk.conv_0.bias, dtype=dt(f"{name}.conv0")),
                "conv1": BConv(_sn_weight(blk.conv_1), blk.conv_1.bias, dtype=dt(f"{name}.conv1")),
                "shortcut": blk.learned_shortcut,
            }
            if blk.learned_shortcut:
                # conv_s(n * g + beta) = conv_s(n * g) + (conv_s . mlp_beta)(actv): one fused gamma/beta conv
                step["gbs"] = BConv(*_spade_gb(blk.norm_s, _SN1x1(blk.conv_s)), dtype=dt(f"{name}.gbs"))
                step["conv_s"] = BConv(_sn_weight(blk.conv_s), None, dtype=dt(f"{name}.conv_s"))
                step["fin"] = blk.conv_s.weight_orig.shape[1]
            plan[name] = step
        head = g.conv_img[0] if isinstance(g.conv_img, nn.Sequential) else g.conv_img
        plan["img"] = (channels_last(head.weight.detach().float()), head.bias.detach().float())
        return plan

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        with torch.autocast(feature.device.type, enabled=False):
            return self._forward(feature.float())

    def _forward(self, feature: torch.Tensor) -> torch.Tensor:
        p = self.prepared()
        seg = channels_last(feature)  # float32: each convolution reading it casts it to its own precision
        hid = p["hidden"]
        x = p["fc"](seg).float()  # the residual stream: float32, channels-last
        actv = F.relu_(p["mid_shared"](seg))
        for i, blk in enumerate(p["middle"]):
            a0, a1 = actv[:, 2 * i * hid:(2 * i + 1) * hid], actv[:, (2 * i + 1) * hid:(2 * i + 2) * hid]
            dx = blk["conv0"](modulate(x, blk["gb0"](a0), 1, 0.2, out_dtype=blk["conv0"].dtype))
            dx = blk["conv1"](modulate(dx, blk["gb1"](a1), 1, 0.2, out_dtype=blk["conv1"].dtype))
            x = x + dx
        for name in ("up_0", "up_1"):
            st = p[name]
            a = F.relu_(st["shared"](seg))
            k = 0
            if st["shortcut"]:
                gbs = st["gbs"](a[:, :hid])
                k = hid
                fin = st["fin"]
                x_s = st["conv_s"](modulate(x, gbs, 2, None, with_beta=False, out_dtype=st["conv_s"].dtype))
                x_s = x_s.float().add_(gbs[:, fin:])
            else:
                x_s = channels_last(F.interpolate(x, scale_factor=2))
            a0, a1 = a[:, k:k + hid], a[:, k + hid:k + 2 * hid]
            dx = st["conv0"](modulate(x, st["gb0"](a0), 2, 0.2, out_dtype=st["conv0"].dtype))
            dx = st["conv1"](modulate(dx, st["gb1"](a1), 1, 0.2, out_dtype=st["conv1"].dtype))
            x = x_s + dx
        w, b = p["img"]
        x = F.conv2d(F.leaky_relu(x, 0.2), w, b, padding=1)
        if isinstance(self.generator.conv_img, nn.Sequential):
            x = F.pixel_shuffle(x, self.generator.config.upscale)
        return torch.sigmoid(x).contiguous()


# The parts of W in float32 by default: all of it (measured, benchmarks/bench_bf16.py). The hourglass and
# the mask head decide the deformation, which bfloat16 moves by about 2e-3 (relative), enough to resample
# the source volume visibly differently (26 to 29 dB frames instead of 44+); third and fourth in bfloat16
# cost 2 to 3 dB of the frame for about 20 ms. With all of W float32 this module's layout was slower than
# the exact ``FastWarping``, so ``accelerate(..., precision="bf16")`` runs that; this module stays for the
# measurements (and for ``w_float32=`` choices with bfloat16 parts).
W_FLOAT32 = ("hourglass", "mask", "third", "fourth")


class Bf16Warping(CachedTransform):
    """Same function as ``WarpingNetwork`` (same outputs dict), with the convolutions not named in
    ``float32`` in bfloat16. Names: ``down<i>``, ``up<i>``, ``final`` (the hourglass' layers;
    ``hourglass``: all of them), ``mask`` (the 7x7x7 head), ``third``, ``fourth``.

    Every layer runs as a oneDNN convolution on channels-last maps (float32 or bfloat16), the decoder's
    convolutions of upsampled maps as transposed convolutions (``BUpConv``); a float32 mask head by FFT
    tiles (``winograd.FFTConv3d``, the exact path's; ``mask_fft=False``: a direct convolution)."""

    def __init__(self, warping: WarpingNetwork, float32: tuple[str, ...] = W_FLOAT32, mask_fft: bool = True):
        super().__init__()
        self.warping = warping
        self.config = warping.config
        dm = warping.dense_motion_network
        n_down, n_up = len(dm.hourglass.encoder.down_blocks), len(dm.hourglass.decoder.up_blocks)
        names = set(float32)
        if "hourglass" in names:
            names |= {f"down{i}" for i in range(n_down)} | {f"up{i}" for i in range(n_up)} | {"final"}
        self.float32 = frozenset(names)
        self.mask_fft = mask_fft

    def _sources(self):
        return (*self.warping.parameters(), *self.warping.buffers())

    def _dtype(self, name: str) -> torch.dtype:
        return torch.float32 if name in self.float32 else BF16

    @torch.no_grad()
    def _build(self) -> dict:
        wn = self.warping
        dm = wn.dense_motion_network
        hg = dm.hourglass
        dt = self._dtype
        plan: dict = {"compress": tuple(t.float() for t in fold_bn(dm.compress.weight, dm.compress.bias, dm.norm))}
        plan["down"] = [BConv(*fold_bn(blk.conv.weight, blk.conv.bias, blk.norm), dtype=dt(f"down{i}"))
                        for i, blk in enumerate(hg.encoder.down_blocks)]
        plan["up"] = [BUpConv(*fold_bn(blk.conv.weight, blk.conv.bias, blk.norm), 2, dtype=dt(f"up{i}"))
                      for i, blk in enumerate(hg.decoder.up_blocks)]
        plan["final"] = BConv(*fold_bn(hg.decoder.conv.weight, hg.decoder.conv.bias, hg.decoder.norm),
                              dtype=dt("final"))
        if "mask" in self.float32 and self.mask_fft:
            fft = FFTConv3d(dm.mask)
            plan["mask"] = lambda x: fft(x.float().contiguous())
        else:
            plan["mask"] = BConv(dm.mask.weight, dm.mask.bias, dtype=dt("mask"))
        if dm.occlusion is not None:
            occ = dm.occlusion
            k = occ.kernel_size[0]
            plan["occlusion"] = (occ.weight.detach()[0].permute(1, 2, 0).reshape(k * k, -1).float().contiguous(),
                                 occ.bias.detach().float(), k)
        third: SameBlock2d = wn.third
        plan["third"] = BConv(*fold_bn(third.conv.weight, third.conv.bias, third.norm), dtype=dt("third"))
        plan["third_lrelu"] = isinstance(third.act, nn.LeakyReLU)
        plan["fourth"] = BConv(wn.fourth.weight, wn.fourth.bias, dtype=dt("fourth"))
        return plan

    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> WarpingOutput:
        with torch.autocast(feature_3d.device.type, enabled=False):
            return self._forward(feature_3d.float(), kp_driving.float(), kp_source.float())

    def _forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> WarpingOutput:
        p = self.prepared()
        dm = self.warping.dense_motion_network
        b, _, d, h, w = feature_3d.shape
        cw, cb = p["compress"]
        feature = F.relu_(F.conv3d(feature_3d, cw, cb))
        grid = make_coordinate_grid((d, h, w), kp_source)
        sparse = dm.sparse_motions(grid, kp_driving, kp_source)
        deformed = dm.deformed_features(feature, sparse)
        heat = flush_subnormal_(dm.heatmaps(grid, kp_driving, kp_source).to(deformed.dtype))
        skips = [channels_last(torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w))]
        for conv in p["down"]:
            skips.append(pool_hw(F.relu_(conv(skips[-1]))))
        out = skips.pop()
        for conv in p["up"]:
            up = F.relu_(conv(out))
            out = torch.cat([up, skips.pop().to(up.dtype)], dim=1)
        prediction = F.relu_(p["final"](channels_last(out)))  # channels-last, in the final layer's precision
        mask = F.softmax(p["mask"](prediction).float(), dim=1)
        deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 4, 1)
        warped = F.grid_sample(feature_3d, deformation, mode="bilinear", padding_mode="zeros", align_corners=False)
        x2 = p["third"](warped.reshape(b, -1, h, w))
        x2 = F.leaky_relu_(x2, 0.01) if p["third_lrelu"] else F.relu_(x2)
        out2 = p["fourth"](x2).float()
        occ = None
        if "occlusion" in p:
            occ = torch.sigmoid(FastWarping._occlusion(prediction.float().contiguous(), *p["occlusion"]))
            out2 = out2 * occ
        return WarpingOutput(out=out2.contiguous(), occlusion_map=occ, deformation=deformation)
