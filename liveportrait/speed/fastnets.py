"""Fast, faithful CPU forward passes of W and G.

``FastWarping`` and ``FastGenerator`` wrap the original modules, read their weights (never copy them
into new parameters) and run the same mathematics with fewer operations:

* batch norms folded into the preceding convolutions (inference is an affine map), spectral norm
  divided into the weights once;
* 3x3 convolutions as Winograd F(4x4, 3x3), computed in cache-sized strips (``winograd.py``);
* convolutions on nearest-upsampled maps computed per output phase on the low-resolution map;
  instance norm of an upsampled map taken on the low-resolution map (same mean and variance);
* SPADE: the ``mlp_shared`` convolutions that read the same label map become one convolution, each
  SPADE's gamma and beta convolutions one convolution, ``1 +`` folded into gamma's bias, and the
  shortcut's 1x1 convolution folded into its beta convolution (both linear); the modulation of a
  nearest-upsampled normalised map in one compiled pass (``kernels.py``), without the upsampled copy;
* W's 7x7x7 mask head by FFT tiles, its 2272-channel occlusion head as one matrix product and 49
  shifted sums.

Transformed weights are built on first use and rebuilt when any source parameter changes (its
version counter moves): both modules are ``CachedTransform``s, like the convolutions they use. The
modules are float32 CPU/GPU code: any device works, the rewrites pay off where the arithmetic, not
the memory, is the bottleneck.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..networks.blocks import SPADE, SameBlock2d, SPADEResnetBlock
from ..networks.generator import SPADEDecoder
from ..networks.outputs import WarpingOutput
from ..networks.warping import WarpingNetwork, make_coordinate_grid
from . import kernels
from .winograd import (
    CachedTransform,
    FFTConv3d,
    UpsampledConv2d,
    UpsampledConv3d,
    compiled_transforms_apply,
    transform_kernel,
    transform_kernel3d,
    winograd_conv,
)


def _float32(forward):
    """The rewrites are float32 arithmetic: under autocast (``--precision bf16/fp16``) they still run
    in float32 instead of failing on mixed dtypes; pick the eager backend for reduced precision."""

    @functools.wraps(forward)
    def run(self, first: torch.Tensor, *args, **kwargs):
        with torch.autocast(first.device.type, enabled=False):
            return forward(self, first.float(), *(a.float() if torch.is_tensor(a) else a for a in args),
                           **{k: v.float() if torch.is_tensor(v) else v for k, v in kwargs.items()})
    return run


def flush_subnormal_(t: torch.Tensor) -> torch.Tensor:
    """``t`` with its subnormal floats (0 < |x| < the smallest normal number, 1.2e-38 in float32) set to
    zero, in place. W's Gaussian heatmaps underflow into them wherever a keypoint is far from a point of
    the volume, and x86 CPUs take a slow microcode path for each multiply-add that reads one (the
    heatmaps feed W's first and last hourglass convolutions): on 2 cores of an Intel Xeon (AVX-512,
    no BF16) the fast W took 1.5 to 4x as long with them (benchmarks/bench_denormals.py). The change
    is below 1.2e-38 per value: exact within any float32 bound. Done here, where they arise, rather than by
    ``torch.set_flush_denormal(True)``, which sets only the calling thread (PyTorch's worker threads
    keep the mode they were created with) and would change every later computation of the process."""
    return t.masked_fill_(t.abs() < torch.finfo(t.dtype).tiny, 0)


def fold_bn(weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.modules.batchnorm._BatchNorm):
    """(weight, bias) of ``bn(conv(x))`` as one convolution (float64 arithmetic)."""
    w = weight.detach().double()
    b = torch.zeros(w.shape[0], dtype=torch.float64, device=w.device) if bias is None else bias.detach().double()
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)
    shape = (-1,) + (1,) * (w.ndim - 1)
    return (w * scale.view(shape)), (b - bn.running_mean.detach().double()) * scale + bn.bias.detach().double()


# When a 3x3 convolution runs as Winograd (module constants, so that tests can lower them and reach that
# path with tiny networks). Measured on AVX2 (2 cores): 1.5-2.2x for 128 channels or more, none for
# 64 -> 64; with the compiled transforms W's 110 -> 64 conv3d gains too.
WINOGRAD_MIN_CHANNELS = 32  # the narrower side of the convolution, at least
WINOGRAD_MIN_WIDEST = 96  # the wider side, at least, with the compiled tile transforms (kernels.py)
WINOGRAD_MIN_WIDEST_UNCOMPILED = 128  # the same with the PyTorch tile transforms
# measured: 2-D maps below 16x16 are faster direct; the 3-D ones of W (16 deep) gain from 4x4 on when the
# tile transforms are compiled
WINOGRAD_MIN_SIDE = 16
WINOGRAD_MIN_SIDE_3D_COMPILED = 4


class _Conv:
    """A prepared same-padded convolution: Winograd for 3x3 kernels with enough channels, else direct."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, winograd: bool | None = None,
                 dtype=torch.float32):
        weight = weight.detach()
        self.kernel = weight.shape[2:]
        self.padding = tuple(k // 2 for k in self.kernel)
        cin, cout = weight.shape[1], weight.shape[0]
        square3 = tuple(self.kernel[-2:]) == (3, 3)
        if winograd is None:
            widest = WINOGRAD_MIN_WIDEST if kernels.AVAILABLE else WINOGRAD_MIN_WIDEST_UNCOMPILED
            winograd = square3 and min(cin, cout) >= WINOGRAD_MIN_CHANNELS and max(cin, cout) >= widest
        self.winograd = winograd and square3
        self.bias = None if bias is None else bias.detach().to(dtype)
        self.weight = weight.to(dtype).contiguous()
        if self.winograd:
            self.u = transform_kernel(weight.double(), 4).to(dtype)[None] if weight.ndim == 4 else \
                transform_kernel3d(weight.double(), 4).to(dtype)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        compiled3d = x.ndim == 5 and compiled_transforms_apply(x)
        smallest = WINOGRAD_MIN_SIDE_3D_COMPILED if compiled3d else WINOGRAD_MIN_SIDE
        if self.winograd and min(x.shape[-2:]) >= smallest:
            return winograd_conv(x, self.u, self.bias)
        fn = F.conv2d if x.ndim == 4 else F.conv3d
        return fn(x, self.weight, self.bias, padding=self.padding)


class _UpConv3d:
    """conv3d(nearest 2x upsampling (1, 2, 2)): per-phase on the low-resolution map from 8x8 on;
    below that the phase convolutions are too small to run well and the plain one is faster."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor, winograd: bool | None = None):
        self.plain = _Conv(weight, bias, winograd=winograd)
        self.phases = UpsampledConv3d(_Frozen3d(weight, bias), 2)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if min(x.shape[-2:]) >= 8:
            return self.phases(x)
        return self.plain(F.interpolate(x, scale_factor=(1, 2, 2)))


def _spade_gb(spade: SPADE, post: nn.Module | None = None):
    """Kernel and bias computing [gamma + 1 ; beta] (or [gamma + 1 ; post(beta)] for a linear 1x1 ``post``)."""
    wg, bg = spade.mlp_gamma.weight.detach().double(), spade.mlp_gamma.bias.detach().double() + 1.0
    wb, bb = spade.mlp_beta.weight.detach().double(), spade.mlp_beta.bias.detach().double()
    if post is not None:
        p = post.effective_weight_64()[:, :, 0, 0]
        wb = torch.einsum("oc,cikl->oikl", p, wb)
        bb = p @ bb
    return torch.cat([wg, wb]), torch.cat([bg, bb])


def _sn_weight(conv) -> torch.Tensor:
    w = conv.weight_orig.detach().double()
    sigma = torch.dot(conv.weight_u.double(), torch.mv(w.reshape(w.shape[0], -1), conv.weight_v.double()))
    return w / sigma


class _SN1x1:
    def __init__(self, conv):
        self.w = _sn_weight(conv)

    def effective_weight_64(self):
        return self.w


def _scale_upsampled(n: torch.Tensor, gb: torch.Tensor, scale: int, slope: float, with_beta: bool) -> torch.Tensor:
    """act(up(n) * gb[:, :C] [+ gb[:, C:]]) computed into gb[:, :C] by the compiled kernel (one pass,
    no upsampled copy of n); C = n's channels, up = nearest ``scale``x, act = leaky ReLU (1: none)."""
    c = n.shape[1]
    for i in range(n.shape[0]):
        g = gb[i, :c].numpy()
        beta = gb[i, c:2 * c].numpy() if with_beta else g
        kernels.run_split(kernels.modulate_upsampled, c, n[i].contiguous().numpy(), g, beta, g, scale,
                          np.float32(slope), with_beta)
    return gb[:, :c]


def _modulate(n: torch.Tensor, gb: torch.Tensor, scale: int) -> torch.Tensor:
    """lrelu(n_up * (1 + gamma) + beta, 0.2) where n is the instance-normalised map at low resolution."""
    c = n.shape[1]
    g, b = gb[:, :c], gb[:, c:]
    if scale > 1 and compiled_transforms_apply(n):
        return _scale_upsampled(n, gb, scale, 0.2, True)
    if scale == 1:
        out = torch.addcmul(b, n, g)
    else:
        bsz, _, h, w = n.shape
        s = scale
        out = torch.addcmul(b.reshape(bsz, c, h, s, w, s), n.reshape(bsz, c, h, 1, w, 1),
                            g.reshape(bsz, c, h, s, w, s)).view(bsz, c, h * s, w * s)
    return F.leaky_relu_(out, 0.2)


class FastGenerator(CachedTransform):
    """Same function as ``SPADEDecoder``; see the module docstring for the rewrites."""

    def __init__(self, generator: SPADEDecoder, winograd: bool = True):
        super().__init__()
        self.generator = generator
        self.config = generator.config
        self.use_winograd = winograd

    def _sources(self):
        return (*self.generator.parameters(), *self.generator.buffers())

    def _conv(self, w, b):
        return _Conv(w, b, winograd=None if self.use_winograd else False)

    @torch.no_grad()
    def _build(self) -> dict:
        g = self.generator
        plan: dict = {"fc": self._conv(g.fc.weight, g.fc.bias)}
        middle = [getattr(g, f"G_middle_{i}") for i in range(6)]
        # every mlp_shared of the middle blocks reads the same label map: one convolution
        shared = [s for blk in middle for s in (blk.norm_0, blk.norm_1)]
        plan["mid_shared"] = self._conv(torch.cat([s.mlp_shared[0].weight for s in shared]),
                                        torch.cat([s.mlp_shared[0].bias for s in shared]))
        plan["hidden"] = shared[0].mlp_shared[0].out_channels
        plan["middle"] = []
        for blk in middle:
            plan["middle"].append({
                "gb0": self._conv(*_spade_gb(blk.norm_0)), "gb1": self._conv(*_spade_gb(blk.norm_1)),
                "conv0": self._conv(_sn_weight(blk.conv_0), blk.conv_0.bias),
                "conv1": self._conv(_sn_weight(blk.conv_1), blk.conv_1.bias),
            })
        for name, scale in (("up_0", 2), ("up_1", 4)):
            blk: SPADEResnetBlock = getattr(g, name)
            spades = [blk.norm_s, blk.norm_0, blk.norm_1] if blk.learned_shortcut else [blk.norm_0, blk.norm_1]
            w_sh = torch.cat([s.mlp_shared[0].weight for s in spades])
            b_sh = torch.cat([s.mlp_shared[0].bias for s in spades])
            step = {
                "shared": UpsampledConv2d(lambda w=w_sh: w, lambda b=b_sh: b, lambda: (), scale),
                "gb0": self._conv(*_spade_gb(blk.norm_0)), "gb1": self._conv(*_spade_gb(blk.norm_1)),
                "conv0": self._conv(_sn_weight(blk.conv_0), blk.conv_0.bias),
                "conv1": self._conv(_sn_weight(blk.conv_1), blk.conv_1.bias),
                "shortcut": blk.learned_shortcut, "scale": scale,
            }
            if blk.learned_shortcut:
                # conv_s(n * g + beta) = conv_s(n * g) + (conv_s . mlp_beta)(actv) + conv_s(b_beta)
                step["gbs"] = self._conv(*_spade_gb(blk.norm_s, _SN1x1(blk.conv_s)))
                step["conv_s"] = _sn_weight(blk.conv_s).float()
                step["fin"] = blk.conv_s.weight_orig.shape[1]
            plan[name] = step
        head = g.conv_img[0] if isinstance(g.conv_img, nn.Sequential) else g.conv_img
        plan["img"] = (head.weight.detach().float(), head.bias.detach().float())
        return plan

    @_float32
    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        p = self.prepared()
        dtype = torch.float32
        seg = feature.to(dtype)
        hid = p["hidden"]
        x = p["fc"](seg)
        actv = F.relu_(p["mid_shared"](seg))
        for i, blk in enumerate(p["middle"]):
            a0, a1 = actv[:, 2 * i * hid:(2 * i + 1) * hid], actv[:, (2 * i + 1) * hid:(2 * i + 2) * hid]
            dx = blk["conv0"](_modulate(F.instance_norm(x), blk["gb0"](a0), 1))
            dx = blk["conv1"](_modulate(F.instance_norm(dx), blk["gb1"](a1), 1))
            x = x + dx
        for name in ("up_0", "up_1"):
            st = p[name]
            a = F.relu_(st["shared"](seg))
            # labels upsampled s times from the 64x64 feature; x upsampled 2x from the previous block:
            # the instance norm of a nearest upsampling is the upsampling of the instance norm
            n = F.instance_norm(x)
            k = 0
            if st["shortcut"]:
                a_s, k = a[:, :hid], hid
                gbs = st["gbs"](a_s)
                fin = st["fin"]
                bsz, c, h, w = n.shape
                if compiled_transforms_apply(n):
                    mod = _scale_upsampled(n, gbs, 2, 1.0, False)
                else:
                    mod = n.reshape(bsz, c, h, 1, w, 1) * gbs[:, :fin].reshape(bsz, c, h, 2, w, 2)
                    mod = mod.view(bsz, c, 2 * h, 2 * w)
                x_s = F.conv2d(mod, st["conv_s"]).add_(gbs[:, fin:])
            else:
                x_s = F.interpolate(x, scale_factor=2)
            a0, a1 = a[:, k:k + hid], a[:, k + hid:k + 2 * hid]
            dx = st["conv0"](_modulate(n, st["gb0"](a0), 2))
            dx = st["conv1"](_modulate(F.instance_norm(dx), st["gb1"](a1), 1))
            x = x_s + dx
        w, b = p["img"]
        x = F.conv2d(F.leaky_relu(x, 0.2), w, b, padding=1)
        if isinstance(self.generator.conv_img, nn.Sequential):
            x = F.pixel_shuffle(x, self.generator.config.upscale)
        return torch.sigmoid(x)


class FastWarping(CachedTransform):
    """Same function as ``WarpingNetwork`` (same outputs dict)."""

    def __init__(self, warping: WarpingNetwork, winograd: bool = True, fft_mask: bool = True):
        super().__init__()
        self.warping = warping
        self.config = warping.config
        self.use_winograd = winograd
        self.fft_mask = fft_mask

    def _sources(self):
        return (*self.warping.parameters(), *self.warping.buffers())

    @torch.no_grad()
    def _build(self) -> dict:
        wn = self.warping
        dm = wn.dense_motion_network
        hg = dm.hourglass
        wino = None if self.use_winograd else False
        plan: dict = {"compress": tuple(t.float() for t in fold_bn(dm.compress.weight, dm.compress.bias, dm.norm))}
        plan["down"] = [_Conv(*fold_bn(blk.conv.weight, blk.conv.bias, blk.norm), winograd=wino)
                        for blk in hg.encoder.down_blocks]
        plan["up"] = []
        for blk in hg.decoder.up_blocks:
            w, b = fold_bn(blk.conv.weight, blk.conv.bias, blk.norm)
            w, b = w.float(), b.float()
            plan["up"].append(_UpConv3d(w, b, winograd=wino))
        plan["final"] = _Conv(*fold_bn(hg.decoder.conv.weight, hg.decoder.conv.bias, hg.decoder.norm), winograd=wino)
        if self.fft_mask:
            plan["mask"] = FFTConv3d(dm.mask)
        else:
            plan["mask"] = lambda x, m=dm.mask: m(x)
        if dm.occlusion is not None:
            occ = dm.occlusion
            k = occ.kernel_size[0]
            plan["occlusion"] = (occ.weight.detach()[0].permute(1, 2, 0).reshape(k * k, -1).float().contiguous(),
                                 occ.bias.detach().float(), k)
        third: SameBlock2d = wn.third
        plan["third"] = _Conv(*fold_bn(third.conv.weight, third.conv.bias, third.norm), winograd=wino)
        plan["third_lrelu"] = isinstance(third.act, nn.LeakyReLU)
        plan["fourth"] = (wn.fourth.weight.detach().float(), wn.fourth.bias.detach().float())
        return plan

    @staticmethod
    def _occlusion(prediction: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, k: int) -> torch.Tensor:
        """Conv2d(C*D -> 1, k x k) as one (k*k, C*D) @ (C*D, H*W) product and k*k shifted sums."""
        b, c, d, h, w = prediction.shape
        z = torch.matmul(weight, prediction.reshape(b, c * d, h * w)).view(b, k, k, h, w)
        p = k // 2
        zp = F.pad(z, (p, p, p, p))
        out = bias.view(1, 1, 1).expand(b, h, w).clone()
        for i in range(k):
            for j in range(k):
                out += zp[:, i, j, i:i + h, j:j + w]
        return out.unsqueeze(1)

    @_float32
    def forward(self, feature_3d: torch.Tensor, kp_driving: torch.Tensor, kp_source: torch.Tensor) -> WarpingOutput:
        p = self.prepared()
        wn = self.warping
        dm = wn.dense_motion_network
        feature_3d = feature_3d.float()
        b, _, d, h, w = feature_3d.shape
        cw, cb = p["compress"]
        feature = F.relu_(F.conv3d(feature_3d, cw, cb))
        grid = make_coordinate_grid((d, h, w), kp_source)
        sparse = dm.sparse_motions(grid, kp_driving, kp_source)
        deformed = dm.deformed_features(feature, sparse)
        heat = flush_subnormal_(dm.heatmaps(grid, kp_driving, kp_source).to(deformed.dtype))
        x = torch.cat([heat, deformed], dim=2).view(b, -1, d, h, w)
        skips = [x]
        for conv in p["down"]:
            skips.append(F.avg_pool3d(F.relu_(conv(skips[-1])), kernel_size=(1, 2, 2)))
        out = skips.pop()
        for conv in p["up"]:
            out = torch.cat([F.relu_(conv(out)), skips.pop()], dim=1)
        prediction = F.relu_(p["final"](out))
        mask = F.softmax(p["mask"](prediction), dim=1)
        deformation = (sparse.permute(0, 1, 5, 2, 3, 4) * mask.unsqueeze(2)).sum(dim=1).permute(0, 2, 3, 4, 1)
        warped = F.grid_sample(feature_3d, deformation, mode="bilinear", padding_mode="zeros", align_corners=False)
        x2 = p["third"](warped.reshape(b, -1, h, w))
        x2 = F.leaky_relu_(x2, 0.01) if p["third_lrelu"] else F.relu_(x2)
        fw, fb = p["fourth"]
        out2 = F.conv2d(x2, fw, fb)
        occ = None
        if "occlusion" in p:
            occ = torch.sigmoid(self._occlusion(prediction, *p["occlusion"]))
            out2 = out2 * occ
        return WarpingOutput(out=out2, occlusion_map=occ, deformation=deformation)


class _Frozen3d(nn.Module):
    """A Conv3d-like holder of fixed (already folded) weights, for ``UpsampledConv3d``."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight, self.bias = weight, bias
        self.out_channels = weight.shape[0]
