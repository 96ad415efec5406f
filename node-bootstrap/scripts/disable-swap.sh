#!/usr/bin/env bash
# The kubelet refuses to start with swap on (1.29 default): off now and after reboots.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

active="$(swapon --noheadings --show=NAME 2>/dev/null || true)"
in_fstab="$(awk '$1 !~ /^#/ && $3 == "swap"' /etc/fstab)"

if [[ -z "$active" && -z "$in_fstab" ]]; then
  already_done "no swap active or in /etc/fstab"
  exit 0
fi
if [[ -n "$active" ]]; then
  swapoff -a
  changed "swap turned off"
fi
if [[ -n "$in_fstab" ]]; then
  sed -i.nb-bak -E '/^[^#]\S*\s+\S+\s+swap\s/ s/^/# disabled by node-bootstrap: /' /etc/fstab
  changed "swap entries commented out in /etc/fstab (backup /etc/fstab.nb-bak)"
fi
