#!/usr/bin/env bash
# containerd from the distribution, with the rendered config (SystemdCgroup, pause:3.9, conf.d imports).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

rendered="$NB_DIR/files/containerd-config.toml"
config=/etc/containerd/config.toml
did=0

if [[ -z "$(installed_version "$NB_CONTAINERD_PACKAGE")" ]]; then
  apt_get update
  apt_get install --no-install-recommends "$NB_CONTAINERD_PACKAGE"
  changed "package $NB_CONTAINERD_PACKAGE installed"
  did=1
fi
install -d -m 0755 /etc/containerd/conf.d
if ! cmp -s "$rendered" "$config"; then
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
[[ "$did" == 0 ]] && already_done "containerd installed, configured and running"
exit 0
