#!/usr/bin/env bash
# What `liveportrait animate --text` needs: Debian's espeak-ng (an offline text-to-speech program).
#
#   bash scripts/install-tts.sh
#
# When espeak-ng is missing this runs `apt-get install espeak-ng`, which needs root (or sudo without a
# password prompt). Without root, sudo or apt-get it installs nothing, says so and goes on: the --text
# tests then skip with the reason (and fail under CI=true).
set -euo pipefail

say() { echo "install-tts: $*" >&2; }

if command -v espeak-ng >/dev/null 2>&1; then
  exit 0
fi
cd "$(dirname "$0")/.."
# shellcheck source=scripts/apt-install.sh
. scripts/apt-install.sh
apt_install espeak-ng espeak-ng
command -v espeak-ng >/dev/null 2>&1 && espeak-ng --version || say "no espeak-ng: the --text tests will skip (and fail under CI=true)"
