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
# Two pytest-xdist workers, a file each at a time (a module's fixtures built once), one thread each
# (tests/conftest.py): much of the suite waits on processes, servers and the browser, so two files at once use the
# two cores of a CI machine; LIVEPORTRAIT_TEST_WORKERS=0 runs in this process (a debugger, -x in order).
# pytest exits 5 when it collects nothing: that fails this script too.
exec python -m pytest -n "${LIVEPORTRAIT_TEST_WORKERS:-2}" --dist loadfile "$@"
