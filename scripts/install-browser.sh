#!/usr/bin/env bash
# What the web app's browser test (tests/app/test_browser.py) needs: Debian's Chromium (apt) and
# Playwright's Python driver (pip).
#
#   bash scripts/install-browser.sh
#
# When Chromium is missing this runs `apt-get install chromium`, which needs root (or sudo without
# a password prompt). Without root, sudo or apt-get it installs nothing system-wide, says so and
# goes on: the browser test then skips with the reason (and fails under CI=true).
# Playwright drives /usr/bin/chromium as it is (executable_path); `playwright install`, which downloads
# a browser build of its own, is never run. Playwright goes into ./.venv, or the virtual environment
# that is active. LIVEPORTRAIT_CHROMIUM names another Chromium binary for the test.
set -euo pipefail
cd "$(dirname "$0")/.."
PLAYWRIGHT_SPEC=${LIVEPORTRAIT_PLAYWRIGHT:-playwright==1.65.2}

say() { echo "install-browser: $*" >&2; }

# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh

if [ -n "${LIVEPORTRAIT_CHROMIUM:-}" ]; then
  say "using LIVEPORTRAIT_CHROMIUM=$LIVEPORTRAIT_CHROMIUM"
elif ! command -v chromium >/dev/null 2>&1; then
  apt_install Chromium chromium fonts-dejavu-core
fi
"${LIVEPORTRAIT_CHROMIUM:-chromium}" --version 2>/dev/null \
  || say "no Chromium: tests/app/test_browser.py will skip (and fail under CI=true)"

if [ -z "${VIRTUAL_ENV:-}" ]; then
  [ -x .venv/bin/python ] || { say "no .venv here; run scripts/install.sh first"; exit 1; }
  # shellcheck disable=SC1091
  . .venv/bin/activate
fi
say "installing the Playwright driver ($PLAYWRIGHT_SPEC) with pip"
python -m pip install --quiet --disable-pip-version-check "$PLAYWRIGHT_SPEC"
python -c "import playwright; from importlib.metadata import version; print('playwright', version('playwright'))"
