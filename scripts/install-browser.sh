#!/usr/bin/env bash
# What the web app's browser test needs: Debian's Chromium (apt) and Playwright's Python driver (pip).
#
#   bash scripts/install-browser.sh
#
# Playwright drives /usr/bin/chromium as it is (executable_path); `playwright install`, which downloads
# a browser build of its own, is never run. Installs into ./.venv, or the virtual environment that is
# active. Needs root (or sudo) for apt when Chromium is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_SPEC=${LIVEPORTRAIT_PLAYWRIGHT:-playwright==1.65.2}

if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "install-browser: need root or sudo to apt-get install chromium" >&2; exit 1; }
    sudo="sudo"
  fi
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium fonts-dejavu-core >/dev/null
fi
chromium --version 2>/dev/null || true

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || { echo "install-browser: no .venv here; run scripts/install.sh first" >&2; exit 1; }
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
python -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT_SPEC"
python -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))"
