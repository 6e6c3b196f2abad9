"""ONNX export of the five networks and ONNX Runtime / OpenVINO backends.

W's 5-D ``grid_sample`` exports as ONNX ``GridSample`` (opset 20 defines it for N-D inputs), so no
custom operator or TensorRT plugin is needed. Every graph has a dynamic batch axis. The runtime
wrappers take and return torch tensors with the modules' own signatures, so ``Animator`` runs them
unchanged.

Exported files are cached under ``cache_dir`` (default ``$LIVEPORTRAIT_CACHE/onnx`` or ``onnx`` in the
user cache folder, ``~/.cache/liveportrait/onnx`` on Linux), named by a digest of the weights, so a second
run loads at once.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..networks.outputs import MotionOutput, WarpingOutput

OPSET = 20

# (file stem, input names, output names)
GRAPHS = {
    "F": ("appearance_feature_extractor", ["image"], ["feature_3d"]),
    "M": ("motion_extractor", ["image"], ["pitch", "yaw", "roll", "t", "exp", "scale", "kp"]),
    "W": ("warping_module", ["feature_3d", "kp_driving", "kp_source"], ["out", "occlusion_map", "deformation"]),
    "G": ("spade_generator", ["feature"], ["image"]),
    "S_stitching": ("stitching", ["x"], ["delta"]),
    "S_eye": ("eye_retargeting", ["x"], ["delta"]),
    "S_lip": ("lip_retargeting", ["x"], ["delta"]),
}
# the graphs' outputs are the fields of MotionOutput and WarpingOutput, in the released order
M_KEYS = GRAPHS["M"][2]
W_KEYS = GRAPHS["W"][2]


class _MOut(nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, x):
        out = self.m(x)
        return tuple(getattr(out, k) for k in M_KEYS)


class _WOut(nn.Module):
    def __init__(self, w):
        super().__init__()
        self.w = w

    def forward(self, feature_3d, kp_driving, kp_source):
        out = self.w(feature_3d, kp_driving, kp_source)
        return tuple(getattr(out, k) for k in W_KEYS)


def example_inputs(networks, batch: int = 1) -> dict[str, tuple[torch.Tensor, ...]]:
    cfg = networks.config
    a = cfg.appearance
    img = torch.rand(batch, 3, 256, 256)
    feat = torch.randn(batch, a.reshape_channel, a.reshape_depth, 64, 64)
    kp = torch.randn(batch, cfg.motion.num_kp, 3) * 0.3
    g_in = torch.randn(batch, cfg.generator.input_channels, 64, 64)
    s = cfg.stitching
    return {
        "F": (img,), "M": (img,), "W": (feat, kp + 0.01, kp), "G": (g_in,),
        "S_stitching": (torch.randn(batch, s.stitching.input_size),),
        "S_eye": (torch.randn(batch, s.eye.input_size),), "S_lip": (torch.randn(batch, s.lip.input_size),),
    }


def _module(networks, name: str) -> nn.Module:
    if name == "F":
        return networks.F
    if name == "M":
        return _MOut(networks.M)
    if name == "W":
        return _WOut(networks.W)
    if name == "G":
        return networks.G
    return {"S_stitching": networks.S.stitching, "S_eye": networks.S.eye, "S_lip": networks.S.lip}[name]


def grid_sample_3d(x: torch.Tensor, grid: torch.Tensor, mode: str = "bilinear", padding_mode: str = "zeros",
                   align_corners: bool = False) -> torch.Tensor:
    """``F.grid_sample`` for 5-D inputs (trilinear, zero padding, align_corners=False) from gathers.

    For runtimes without N-D GridSample (OpenVINO 2025 has only the 4-D operator): eight corner
    gathers weighted by the trilinear coefficients, corners outside the volume weighted zero.
    """
    if x.ndim != 5 or mode != "bilinear" or padding_mode != "zeros" or align_corners:
        return _torch_grid_sample(x, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    b, c, d, h, w = x.shape
    out_shape = grid.shape[1:4]
    g = grid.reshape(b, -1, 3)
    # unnormalise (align_corners=False): ((coord + 1) * size - 1) / 2
    gx = ((g[..., 0] + 1) * w - 1) / 2
    gy = ((g[..., 1] + 1) * h - 1) / 2
    gz = ((g[..., 2] + 1) * d - 1) / 2
    x0, y0, z0 = torch.floor(gx), torch.floor(gy), torch.floor(gz)
    fx, fy, fz = gx - x0, gy - y0, gz - z0
    flat = x.reshape(b, c, d * h * w)
    out = torch.zeros(b, c, g.shape[1], dtype=x.dtype, device=x.device)
    for dz in (0, 1):
        zi = z0 + dz
        wz = fz if dz else 1 - fz
        for dy in (0, 1):
            yi = y0 + dy
            wy = fy if dy else 1 - fy
            for dx in (0, 1):
                xi = x0 + dx
                wx = fx if dx else 1 - fx
                valid = (xi >= 0) & (xi <= w - 1) & (yi >= 0) & (yi <= h - 1) & (zi >= 0) & (zi <= d - 1)
                weight = wx * wy * wz * valid.to(x.dtype)
                idx = (zi.clamp(0, d - 1) * (h * w) + yi.clamp(0, h - 1) * w + xi.clamp(0, w - 1)).long()
                vals = torch.gather(flat, 2, idx.unsqueeze(1).expand(b, c, idx.shape[1]))
                out = out + vals * weight.unsqueeze(1)
    return out.view(b, c, *out_shape)


_torch_grid_sample = torch.nn.functional.grid_sample


class _FunctionalWithGatherSampling:
    """``torch.nn.functional`` with ``grid_sample`` replaced (used while exporting for OpenVINO)."""

    def __getattr__(self, name):
        if name == "grid_sample":
            return grid_sample_3d
        return getattr(torch.nn.functional, name)


@contextlib.contextmanager
def gather_grid_sample():
    """Within the block, W samples its volumes with ``grid_sample_3d`` (gathers) instead of GridSample."""
    from ..networks import warping

    saved = warping.F
    warping.F = _FunctionalWithGatherSampling()
    try:
        yield
    finally:
        warping.F = saved


def weights_digest(networks) -> str:
    h = hashlib.sha256()
    h.update(repr(networks.config).encode())
    for k, v in networks.state_dict().items():
        h.update(k.encode())
        t = v.detach().cpu().contiguous().reshape(-1)
        raw = t.view(torch.uint8).numpy() if t.numel() else np.zeros(0, np.uint8)
        h.update(raw[:: max(1, raw.size // 65536)].tobytes())
        h.update(str(tuple(t.shape)).encode())
    return h.hexdigest()[:16]


def default_cache_dir() -> Path:
    from ..networks.checkpoint import ENV_CACHE, user_cache_root

    return (Path(os.environ[ENV_CACHE]).expanduser() if os.environ.get(ENV_CACHE) else user_cache_root()) / "onnx"


def export_onnx(networks, out_dir: str | os.PathLike, names=None, opset: int = OPSET,
                gather_sampling: bool = False) -> dict[str, Path]:
    """Write ``NAME.onnx`` for each network (default all); returns name -> path.

    ``gather_sampling``: W's 5-D sampling as gathers (for runtimes without N-D GridSample).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    networks = networks.cpu().eval()
    inputs = example_inputs(networks)
    paths = {}
    for name in names or GRAPHS:
        stem, in_names, out_names = GRAPHS[name]
        path = out_dir / f"{stem}.onnx"
        module = _module(networks, name).eval()
        dynamic = {n: {0: "batch"} for n in in_names + out_names}
        tmp = path.with_suffix(".tmp.onnx")
        sampling = gather_grid_sample() if gather_sampling and name == "W" else contextlib.nullcontext()
        with warnings.catch_warnings(), torch.no_grad(), sampling:
            warnings.simplefilter("ignore")
            torch.onnx.export(module, inputs[name], str(tmp), opset_version=opset, dynamo=False,
                              input_names=in_names, output_names=out_names, dynamic_axes=dynamic)
        module.eval()  # export restores the wrapper's mode; keep the networks in inference mode
        os.replace(tmp, path)
        paths[name] = path
    networks.eval()
    return paths


# ---------------------------------------------------------------------------------------------------
# runtimes


class _Session:
    """One compiled graph: numpy in, numpy out (ONNX Runtime or OpenVINO)."""

    def __init__(self, path: Path, runtime: str, threads: int | None = None):
        self.runtime = runtime
        if runtime == "onnxruntime":
            import onnxruntime as ort

            so = ort.SessionOptions()
            so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
            if threads:
                so.intra_op_num_threads = threads
            so.log_severity_level = 3
            self.sess = ort.InferenceSession(str(path), so, providers=_ort_providers())
            self.inputs = [i.name for i in self.sess.get_inputs()]
        elif runtime == "openvino":
            os.environ.setdefault("OPENVINO_TELEMETRY", "0")  # never send usage data
            import openvino as ov

            core = ov.Core()
            config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
            if threads:
                config["INFERENCE_NUM_THREADS"] = threads
            model = core.read_model(str(path))
            with keep_signal_stack():
                self.compiled = core.compile_model(model, "CPU", config)
            self.request = self.compiled.create_infer_request()
            self.inputs = [p.get_any_name() for p in self.compiled.inputs]
        else:
            raise ValueError(runtime)

    def __call__(self, *arrays: np.ndarray) -> list[np.ndarray]:
        feed = dict(zip(self.inputs, arrays))
        if self.runtime == "onnxruntime":
            return self.sess.run(None, feed)
        res = self.request.infer(feed)
        return [np.asarray(res[o]) for o in self.compiled.outputs]


class _StackT(ctypes.Structure):
    _fields_ = [("ss_sp", ctypes.c_void_p), ("ss_flags", ctypes.c_int), ("ss_size", ctypes.c_size_t)]


@contextlib.contextmanager
def keep_signal_stack():
    """Put back the calling thread's alternate signal stack after OpenVINO's CPU plugin swaps it.

    OpenVINO 2025 installs a stack of its own (mmap'd) when it compiles a model and restores the one it
    saw only when its Core is freed. With two Cores alive, the second one saves the first one's stack,
    which is unmapped later: the next Python signal (Ctrl-C, SIGCHLD from a loader worker) then kills
    the process with SIGSEGV. Keeping the caller's stack in place avoids that chain.
    """
    libc = _libc()
    if libc is None:
        yield
        return
    before = _StackT()
    libc.sigaltstack(None, ctypes.byref(before))
    try:
        yield
    finally:
        after = _StackT()
        libc.sigaltstack(None, ctypes.byref(after))
        if (after.ss_sp, after.ss_flags, after.ss_size) != (before.ss_sp, before.ss_flags, before.ss_size):
            if before.ss_flags & _SS_DISABLE:
                before = _StackT(None, _SS_DISABLE, 0)
            libc.sigaltstack(ctypes.byref(before), None)


_SS_DISABLE = 2  # Linux


def _libc():
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _ort_providers() -> list[str]:
    import onnxruntime as ort

    avail = ort.get_available_providers()
    return [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in avail]


def _np(t: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().float().cpu().numpy())


class _Runner(nn.Module):
    """Base of the wrappers: owns a session, converts tensors at the boundary."""

    def __init__(self, session: _Session, config):
        super().__init__()
        self.session = session
        self.config = config


class OnnxF(_Runner):
    def forward(self, x):
        return torch.from_numpy(self.session(_np(x))[0]).to(x.device)


class OnnxM(_Runner):
    def forward(self, x):
        outs = self.session(_np(x))
        return MotionOutput(**{k: torch.from_numpy(v).to(x.device) for k, v in zip(M_KEYS, outs)})


class OnnxW(_Runner):
    def forward(self, feature_3d, kp_driving, kp_source):
        dev = feature_3d.device
        b = max(feature_3d.shape[0], kp_driving.shape[0])
        args = [_np(t.expand(b, *t.shape[1:])) for t in (feature_3d, kp_driving, kp_source)]
        outs = self.session(*args)
        return WarpingOutput(**{k: torch.from_numpy(v).to(dev) for k, v in zip(W_KEYS, outs)})


class OnnxG(_Runner):
    def forward(self, feature):
        return torch.from_numpy(self.session(_np(feature))[0]).to(feature.device)


def onnx_networks(networks, runtime: str, cache_dir=None, threads: int | None = None, **_) -> dict:
    """F, M, W and G running exported graphs on ``runtime``, by name (``accelerate`` wraps them)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    gather = runtime == "openvino"  # OpenVINO 2025 has no 5-D GridSample
    folder = cache / (weights_digest(networks) + ("-gather" if gather else ""))
    names = ["F", "M", "W", "G"]
    paths = {n: folder / f"{GRAPHS[n][0]}.onnx" for n in names}
    missing = [n for n, p in paths.items() if not p.exists()]
    if missing:
        export_onnx(networks, folder, missing, gather_sampling=gather)
    cfg = networks.config
    parts = {n: cls(_Session(paths[n], runtime, threads), getattr(cfg, attr))
             for n, cls, attr in (("F", OnnxF, "appearance"), ("M", OnnxM, "motion"), ("W", OnnxW, "warping"),
                                  ("G", OnnxG, "generator"))}
    return parts
