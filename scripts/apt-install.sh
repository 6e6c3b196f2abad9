# Sourced by the install scripts: `apt_install WHAT PACKAGE...` installs Debian packages with apt-get when
# this is root or has sudo without a password prompt; otherwise it says why it cannot (naming WHAT) and
# returns 0, so that the caller goes on and the tests that need the packages skip (fail under CI=true).
# The caller defines say().

apt_install() {
  local what=$1 sudo=""
  shift
  if ! command -v apt-get >/dev/null 2>&1; then
    say "no apt-get here: install $what yourself; skipping it"
    return 0
  fi
  if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
      sudo="sudo"
    else
      say "$what is missing and installing it (apt-get install $*) needs root or sudo; skipping it"
      return 0
    fi
  fi
  say "installing Debian's $* with apt-get (as root${sudo:+, through sudo})"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
