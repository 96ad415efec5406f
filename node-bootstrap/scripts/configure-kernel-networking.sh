#!/usr/bin/env bash
# Pod traffic is routed (ip_forward) and bridged traffic is seen by iptables (kube-proxy, Calico).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

conf=/etc/sysctl.d/99-kubernetes.conf
declare -A want=(
  [net.bridge.bridge-nf-call-iptables]=1
  [net.bridge.bridge-nf-call-ip6tables]=1
  [net.ipv4.ip_forward]=1
)
content="$(for key in "${!want[@]}"; do printf '%s = %s\n' "$key" "${want[$key]}"; done | sort)"

did=0
if write_if_changed "$conf" "$content"; then
  changed "$conf written"
  did=1
fi
for key in "${!want[@]}"; do
  if [[ "$(sysctl -n "$key" 2>/dev/null || true)" != "${want[$key]}" ]]; then
    # Only this file: `sysctl --system` would re-apply every other file too.
    sysctl -q -p "$conf"
    changed "$conf applied"
    did=1
    break
  fi
done
[[ "$did" == 0 ]] && already_done "bridge-nf-call and ip_forward set and persisted"
exit 0
