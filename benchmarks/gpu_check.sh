#!/usr/bin/env bash
# One check of the GPU path, for a few minutes on a lent CUDA machine (issue 16):
#   1. installs what it needs (scripts/install.sh, the CUDA torch build),
#   2. runs the conformance kit (../shared/conformance) in float32 on the GPU: W, G and the pipeline's
#      keypoints and frames against the reference's, within the kit's bounds,
#   3. checks the float16 bound: frames at least FIDELITY_PSNR_DB["fp16"] dB against float32, and no
#      NaN/Inf fallback needed,
#   4. prints ms per frame of M, W and G and network-work fps at batch 1 and 8 for eager float32,
#      float16 and torch.compile.
#
#   bash benchmarks/gpu_check.sh            # exit status 0: every check passed
#
# Settings (environment): GPU_CHECK_DEVICE (cuda), GPU_CHECK_CONFIG (released; tiny: small random
# networks, no conformance: how the tests run this on a CPU), GPU_CHECK_SKIP_INSTALL=1,
# GPU_CHECK_COMPILE=0 (skip torch.compile), GPU_CHECK_PATHS (timed paths, comma-separated: "eager fp32,eager fp16,
# compile fp16"), GPU_CHECK_FRAMES (timed calls, 10), GPU_CHECK_FP16_DB (the bound).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${GPU_CHECK_SKIP_INSTALL:-0}" != "1" ]; then
  LIVEPORTRAIT_TORCH_INDEX=${LIVEPORTRAIT_TORCH_INDEX:-https://download.pytorch.org/whl/cu128} bash scripts/install.sh
fi
if [ -z "${VIRTUAL_ENV:-}" ] && [ -x .venv/bin/python ]; then
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
exec python - <<'PY'
import os, sys, time, tempfile, importlib.util
from pathlib import Path

import numpy as np
import torch

from liveportrait.animator import Animator
from liveportrait.motion.compose import MotionOptions
from liveportrait.networks import LivePortraitNetworks, ModelConfig
from liveportrait.speed import FIDELITY_PSNR_DB, accelerate

device = os.environ.get("GPU_CHECK_DEVICE", "cuda")
config = os.environ.get("GPU_CHECK_CONFIG", "released")
frames = int(os.environ.get("GPU_CHECK_FRAMES", "10"))
fp16_db = float(os.environ.get("GPU_CHECK_FP16_DB", FIDELITY_PSNR_DB["fp16"]))
shared = Path(os.environ.get("LIVEPORTRAIT_SHARED", Path.cwd().parent / "shared"))
failed = []


def check(name, ok, detail):
    print(f"{'PASS' if ok else 'FAIL'} {name}: {detail}", flush=True)
    if not ok:
        failed.append(name)


def rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def psnr_u8(a, b):
    a = np.floor(np.clip(np.asarray(a, np.float64), 0, 1) * 255)
    b = np.floor(np.clip(np.asarray(b, np.float64), 0, 1) * 255)
    mse = np.mean((a - b) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0**2 / mse))


def sync():
    if device == "cuda":
        torch.cuda.synchronize()


if device == "cuda" and not torch.cuda.is_available():
    sys.exit("gpu_check: no CUDA device visible to this torch build")
name = torch.cuda.get_device_name() if device == "cuda" else "CPU"
print(f"device: {device} ({name}); torch {torch.__version__}; config {config}", flush=True)

fixture = None
if config == "released":
    spec = importlib.util.spec_from_file_location("synth_weights", shared / "conformance" / "synth_weights.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    weights = tempfile.mkdtemp(prefix="lp-gpu-check-")
    module.write_checkpoints(weights)
    nets = LivePortraitNetworks.from_pretrained(weights, locate=False).to(device).eval()
    fixture = dict(np.load(shared / "conformance" / "fixture_s0_d1.npz"))
else:
    torch.manual_seed(0)
    nets = LivePortraitNetworks(getattr(ModelConfig, config)()).to(device).eval()

# -- 2. conformance in float32 on the device -----------------------------------------------------------
if fixture is not None:
    from liveportrait.conformance import pipeline_outputs

    t = lambda k: torch.from_numpy(fixture[k]).to(device)  # noqa: E731
    with torch.inference_mode():
        w = nets.W(t("F_out"), t("W_kp_driving"), t("W_kp_source"))
        for key in ("out", "occlusion_map", "deformation"):
            e = rel(getattr(w, key).cpu(), fixture[f"W_{key}"])
            check(f"conformance W {key}", e <= 1e-4, f"rel L2 {e:.1e} (bound 1e-4)")
        e = rel(nets.G(t("W_out")).cpu(), fixture["G_out"])
        check("conformance G", e <= 1e-4, f"rel L2 {e:.1e} (bound 1e-4)")
    ours = pipeline_outputs(Animator(nets, device, "fp32"), fixture)
    worst_kp = max(rel(v, fixture[k]) for k, v in ours.items() if k.endswith("_kp_driving"))
    check("conformance keypoints", worst_kp <= 1e-4, f"worst rel L2 {worst_kp:.1e} over the variants (1e-4)")
    worst = max(rel(v, fixture[k]) for k, v in ours.items() if k.endswith("_out"))
    check("conformance frames", worst <= 1e-3, f"worst rel L2 {worst:.1e} (bound 1e-3)")

# -- 3. the float16 bound --------------------------------------------------------------------------------
rng = np.random.default_rng(0)
src_img = fixture["source_rgb_256"] if fixture is not None else rng.integers(0, 255, (256, 256, 3), np.uint8)
drv_img = rng.integers(0, 255, (256, 256, 3), np.uint8)
rendered = {}
for precision in ("fp32", "fp16"):
    anim = Animator(nets, device, precision)
    src = anim.prepare_source(src_img)
    x_d = anim.driving_keypoints(src, anim.extract_motion(drv_img).motion, src.motion, MotionOptions())
    rendered[precision] = (anim.render(src, x_d).cpu().numpy(), anim.precision)
db = psnr_u8(rendered["fp16"][0], rendered["fp32"][0])
check("fp16 bound", db >= fp16_db, f"{db:.1f} dB against float32 (bound {fp16_db:.0f} dB)")
check("fp16 without fallback", rendered["fp16"][1] == "fp16", f"ran in {rendered['fp16'][1]}")

# -- 4. speed ---------------------------------------------------------------------------------------------
paths = {"eager fp32": (nets, "fp32"), "eager fp16": (nets, "fp16")}
if os.environ.get("GPU_CHECK_COMPILE", "1") == "1":
    paths["compile fp16"] = (accelerate(nets, "compile", device=device), "fp16")
wanted = [p.strip() for p in os.environ.get("GPU_CHECK_PATHS", ",".join(paths)).split(",")]
paths = {k: v for k, v in paths.items() if k in wanted}


def timed(fn):
    with torch.inference_mode():
        fn()  # warm-up (and compilation)
        sync()
        best = float("inf")
        for _ in range(frames):
            t0 = time.perf_counter()
            fn()
            sync()
            best = min(best, time.perf_counter() - t0)
    return best


print("| path | batch | M ms/frame | W ms/frame | G ms/frame | network fps |")
print("|---|---|---|---|---|---|")
for label, (networks, precision) in paths.items():
    anim = Animator(networks, device, precision)
    src = anim.prepare_source(src_img)
    for batch in (1, 8):
        drv = np.repeat(drv_img[None], batch, axis=0)
        x_d = anim.driving_keypoints(src, anim.extract_motion(drv).motion, src.motion, MotionOptions())
        f_s = src.f_s.expand(batch, -1, -1, -1, -1)
        x_s = src.x_s.expand(batch, -1, -1)
        with torch.inference_mode(), anim._autocast():
            w_out = networks.W(f_s, x_d, x_s).out
            m_s = timed(lambda: networks.M(torch.rand(batch, 3, 256, 256, device=device)))
            w_s = timed(lambda: networks.W(f_s, x_d, x_s))
            g_s = timed(lambda: networks.G(w_out))

        def frame():
            x = anim.driving_keypoints(src, anim.extract_motion(drv).motion, src.motion, MotionOptions())
            anim.render(src, x)
        fps = batch / timed(frame)
        print(f"| {label} | {batch} | {1e3 * m_s / batch:.2f} | {1e3 * w_s / batch:.2f} | {1e3 * g_s / batch:.2f} "
              f"| {fps:.1f} |", flush=True)

print("gpu_check: " + ("all checks passed" if not failed else f"FAILED: {', '.join(failed)}"))
sys.exit(1 if failed else 0)
PY
