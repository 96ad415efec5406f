#!/usr/bin/env bash
# containerd's overlay snapshotter needs overlay; bridged pod traffic must pass iptables (br_netfilter).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

modules=(overlay br_netfilter)
did=0
if write_if_changed /etc/modules-load.d/kubernetes.conf "$(printf '%s\n' "${modules[@]}")"; then
  changed "/etc/modules-load.d/kubernetes.conf written"
  did=1
fi
for module in "${modules[@]}"; do
  if [[ ! -d "/sys/module/$module" ]]; then
    modprobe "$module"
    changed "module $module loaded"
    did=1
  fi
done
[[ "$did" == 0 ]] && already_done "overlay and br_netfilter loaded and persisted"
exit 0
