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
if ! command -v apt-get >/dev/null 2>&1; then
  say "no apt-get here: install espeak-ng yourself; skipping it"
  exit 0
fi
sudo=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    sudo="sudo"
  else
    say "espeak-ng is missing and installing it (apt-get install espeak-ng) needs root or sudo; skipping it"
    exit 0
  fi
fi
say "installing Debian's espeak-ng with apt-get (as root${sudo:+, through sudo})"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends espeak-ng >/dev/null
espeak-ng --version
