#!/usr/bin/env bash
# Shared helpers for the node steps. Sourced, never run: each step file does
#   source "$(dirname "$0")/lib.sh"
# and node.env (written by the orchestrator, no secrets in it) beside the scripts sets NODE_BOOTSTRAP_*.
set -euo pipefail

NODE_BOOTSTRAP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=/dev/null
[[ -f "$NODE_BOOTSTRAP_DIR/node.env" ]] && source "$NODE_BOOTSTRAP_DIR/node.env"

STEP="$(basename "$0" .sh)"

say() { printf 'node-bootstrap: %s: %s\n' "$STEP" "$*"; }
already_done() { say "already done${1:+: $1}"; }
changed() { say "changed: $*"; }

# apt waits for cloud-init's or unattended-upgrades' lock instead of failing on it.
APT_OPTS=(-o DPkg::Lock::Timeout=300 -o Dpkg::Options::=--force-confold -y -q)
apt_get() { DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" "$@"; }

# Version of an installed package, empty when it is not installed ("ii", or "hi" when held).
installed_version() {
  dpkg-query -W -f='${db:Status-Abbrev} ${Version}\n' "$1" 2>/dev/null | awk '$1 ~ /^[ih]i$/ {print $2}'
}

# The first letter of Status-Abbrev is the selection: h = hold. (No `apt-mark showhold | grep -q`:
# grep -q exits early, apt-mark dies of SIGPIPE and pipefail turns a match into a failure.)
is_held() { [[ "$(dpkg-query -W -f='${db:Status-Abbrev}' "$1" 2>/dev/null)" == h* ]]; }

# Writes $2 (content) to $1 with mode $3 only when it differs; returns 0 when it changed.
write_if_changed() {
  local path="$1" content="$2" mode="${3:-0644}"
  if [[ -f "$path" ]] && [[ "$(cat "$path")" == "$content" ]]; then
    return 1
  fi
  install -d -m 0755 "$(dirname "$path")"
  printf '%s\n' "$content" >"$path.nb-tmp"
  chmod "$mode" "$path.nb-tmp"
  mv "$path.nb-tmp" "$path"
  return 0
}

# Installs a keyring from a URL once; an empty URL means the source is trusted otherwise
# (a local mirror declared with [trusted=yes] or signed-by a key already on the image).
install_apt_key() {
  local url="$1" keyring="$2"
  [[ -z "$url" || -s "$keyring" ]] && return 0
  install -d -m 0755 "$(dirname "$keyring")"
  curl -fsSL --retry 5 --retry-delay 2 --max-time 60 "$url" | gpg --batch --yes --dearmor -o "$keyring.nb-tmp"
  chmod 0644 "$keyring.nb-tmp"
  mv "$keyring.nb-tmp" "$keyring"
}

# Downloads $1 (a release binary) to $3 only when its SHA-256 is $2; a mismatch names both and installs nothing.
fetch_verified() {
  local url="$1" sha="$2" dest="$3" got
  curl -fsSL --retry 5 --retry-delay 2 --max-time 300 -o "$dest" "$url"
  got="$(sha256sum "$dest" | cut -d' ' -f1)"
  if [[ "$got" != "$sha" ]]; then
    rm -f "$dest"
    say "checksum mismatch for $url: got sha256 $got, pinned $sha; nothing installed"
    say "fix: if the pin is wrong, correct it from ${url}.sha256 in node_bootstrap/settings.py"
    exit 1
  fi
}
