#!/usr/bin/env bash
# Install liveportrait into ./.venv (or into the virtual environment that is already active).
#
#   bash scripts/install.sh          # the tool (the command line)
#   bash scripts/install.sh app      # and the web app (liveportrait app: Gradio)
#   bash scripts/install.sh dev      # the tool, every extra and what the tests need
#
# Extras (pyproject.toml): app, train, onnx, openvino, serve, audio, c2pa, live, dev; several at once: `install.sh app onnx`.
#
# PyTorch comes first so that pip does not pick a build for us: LIVEPORTRAIT_TORCH names the
# requirement (default torch==2.13.0) and LIVEPORTRAIT_TORCH_INDEX an index to take it from, e.g.
# https://download.pytorch.org/whl/cpu for the small CPU-only build, or .../whl/cu128 for CUDA 12.8.
set -euo pipefail
cd "$(dirname "$0")/.."
KNOWN_EXTRAS="app train onnx openvino serve audio c2pa live dev"
extras=""
for name in "$@"; do
  case " $KNOWN_EXTRAS " in
    *" $name "*) extras="${extras:+$extras,}$name" ;;
    *) echo "install.sh: unknown extra '$name' (known: $KNOWN_EXTRAS)" >&2; exit 2 ;;
  esac
done

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || "${PYTHON:-python3}" -m venv .venv
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
# mediapipe 0.10.21 declares jax, matplotlib and more that its face models never import (it is installed with
# --no-deps below); pip's resolver then prints those as red "conflicts" on later installs: only they are dropped
drop_mediapipe_conflicts() {
  grep -v -E "^mediapipe 0\.10\.21 requires |^ERROR: pip's dependency resolver does not currently take into account" \
    >&2 || true
}
pip_q() { python -m pip install --quiet --disable-pip-version-check "$@" 2> >(drop_mediapipe_conflicts); }

if ! python -c "import torch" 2>/dev/null; then
  torch_spec=${LIVEPORTRAIT_TORCH:-torch==2.13.0}
  if [ -n "${LIVEPORTRAIT_TORCH_INDEX:-}" ]; then
    pip_q "$torch_spec" --index-url "$LIVEPORTRAIT_TORCH_INDEX"
  else
    pip_q "$torch_spec"
  fi
fi

# after torch, so that the extras cannot pull another torch build in
if [ -n "$extras" ]; then pip_q -e ".[$extras]"; else pip_q -e .; fi
# mediapipe 0.10.21 is the last release that ships its face models. Its declared dependencies
# (jax, opencv-contrib-python, matplotlib, ...) are not needed for the parts we load, and
# opencv-contrib-python would overwrite the cv2 of opencv-python-headless: install it alone.
python -c "import importlib.metadata as m; assert m.version('mediapipe') == '0.10.21'" 2>/dev/null \
  || pip_q --no-deps "mediapipe==0.10.21"
echo "liveportrait installed in ${VIRTUAL_ENV}: run ${VIRTUAL_ENV}/bin/liveportrait --help"
case ",$extras," in
  *,app,* | *,dev,*) ;;
  *) echo "the web app (liveportrait app) needs the app extra: bash scripts/install.sh app" ;;
esac
