#!/usr/bin/env bash
# Install liveportrait with its test dependencies into ./.venv, then run the whole test suite.
# Extra arguments go to pytest (e.g. `bash scripts/test.sh -k conformance`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh dev
# Debian's Chromium for the web app's browser test: apt-get install chromium when it is missing, which
# needs root or sudo; without them it says so and the browser test skips (fails under CI=true)
bash scripts/install-browser.sh
# Debian's espeak-ng for `animate --text` (the same way: apt-get when root or sudo allows it)
bash scripts/install-tts.sh
# shellcheck disable=SC1091
[ -n "${VIRTUAL_ENV:-}" ] || . .venv/bin/activate
python -m ruff check --quiet .  # pyflakes, pycodestyle, import order (pyproject.toml [tool.ruff])
# pytest exits 5 when it collects nothing: that fails this script too.
exec python -m pytest "$@"
