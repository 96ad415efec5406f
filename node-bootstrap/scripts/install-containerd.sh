#!/usr/bin/env bash
# containerd from the distribution with the rendered config (one file: SystemdCgroup, pause:3.9,
# on GPU nodes the runtime nvidia), and proof that its CRI plugin loaded that config.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

rendered="$NODE_BOOTSTRAP_DIR/files/containerd-config.toml"
config=/etc/containerd/config.toml
did=0

# containerd starts even when its CRI plugin rejects the config; only the plugin's status tells.
cri_status() {
  ctr plugins ls 2>/dev/null | awk '$1 == "io.containerd.grpc.v1" && $2 == "cri" {print $NF}'
}

if [[ -z "$(installed_version "$NODE_BOOTSTRAP_CONTAINERD_PACKAGE")" ]]; then
  apt_get update
  apt_get install --no-install-recommends "$NODE_BOOTSTRAP_CONTAINERD_PACKAGE"
  changed "package $NODE_BOOTSTRAP_CONTAINERD_PACKAGE installed"
  did=1
fi
if ! cmp -s "$rendered" "$config"; then
  install -d -m 0755 /etc/containerd
  install -m 0644 "$rendered" "$config"
  systemctl restart containerd
  changed "$config written, containerd restarted"
  did=1
fi
if ! systemctl is-enabled --quiet containerd || ! systemctl is-active --quiet containerd; then
  systemctl enable --now containerd
  changed "containerd enabled and started"
  did=1
fi
if [[ "$(cri_status)" != "ok" ]]; then
  say "containerd's CRI plugin did not load $config:"
  ctr plugins ls --detailed id==cri 2>&1 | sed -n '/Error:/,$p' >&2 || true
  say "fix: compare $config with the rendered $rendered; then re-run 'make bootstrap'"
  exit 1
fi
[[ "$did" == 0 ]] && already_done "containerd installed, configured, CRI plugin loaded"
exit 0
