# Shared helpers for scripts/*. Source it; do not run it.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

say() { printf '==> %s\n' "$*" >&2; }

# apt-get install, once, only for what is missing.
apt_install() {
  if [ "$(id -u)" != 0 ] && ! command -v sudo >/dev/null; then
    echo "need root (or sudo) to install: $*" >&2
    exit 1
  fi
  local SUDO=""
  [ "$(id -u)" = 0 ] || SUDO=sudo
  say "installing $* (apt)"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# The JDK (javac, java, serialver) for the interop peer.
need_jdk() {
  if ! command -v javac >/dev/null || ! command -v serialver >/dev/null; then
    apt_install openjdk-17-jdk-headless
  fi
}

# Peers of the agent's drop-in tests: systemd-analyze (verifies the systemd unit) and
# openssl (a certificate for a fake JNLP4 port).
need_agent_test_tools() {
  local missing=()
  command -v systemd-analyze >/dev/null || missing+=(systemd)
  command -v openssl >/dev/null || missing+=(openssl)
  # builds_sim: unshare (a tmpfs in a user+mount namespace, an unmapped user), setsid, tar.
  { command -v unshare >/dev/null && command -v setsid >/dev/null; } || missing+=(util-linux)
  command -v tar >/dev/null || missing+=(tar)
  if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
}

# Peers of the tests of the machines around the agent (ami/, jenkins-config/): Debian's
# nginx with its stream module (the controller host's proxy), packer (validate) and
# shellcheck, curl for the boot script. nginx's package would start the service on port 80:
# a policy-rc.d keeps it from starting while it installs (and is removed again if this
# function put it there).
need_machine_test_tools() {
  local missing=()
  command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  [ -e /usr/lib/nginx/modules/ngx_stream_module.so ] || missing+=(libnginx-mod-stream)
  command -v packer >/dev/null || missing+=(packer)
  command -v shellcheck >/dev/null || missing+=(shellcheck)
  command -v curl >/dev/null || missing+=(curl)
  [ ${#missing[@]} -gt 0 ] || return 0
  local policy=/usr/sbin/policy-rc.d placed=""
  if [ ! -e "$policy" ] && [ "$(id -u)" = 0 ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 755 "$policy" && placed=1
  fi
  apt_install "${missing[@]}"
  if [ -n "$placed" ]; then rm -f "$policy"; fi
}

# Rust toolchain pieces used by the checks.
need_rust() {
  command -v cargo >/dev/null || { echo "cargo not found: install Rust (rustup) first" >&2; exit 1; }
  cargo fmt --version >/dev/null 2>&1 || rustup component add rustfmt
  cargo clippy --version >/dev/null 2>&1 || rustup component add clippy
}

# Compiles the JDK interop peer into $TARGET/java-peer and prints that directory.
build_java_peer() {
  local out="$TARGET/java-peer"
  rm -rf "$out" && mkdir -p "$out"
  # shellcheck disable=SC2046
  javac --release 17 -nowarn -d "$out" $(find "$ROOT/tests/java/src" -name '*.java')
  echo "$out"
}

java_peer() {
  java --add-opens java.base/java.lang=ALL-UNNAMED --add-opens java.base/java.util=ALL-UNNAMED \
       --add-opens java.base/java.io=ALL-UNNAMED -cp "$TARGET/java-peer" nectr.peer.Main "$@"
}
