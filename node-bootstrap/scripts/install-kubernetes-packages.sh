#!/usr/bin/env bash
# kubelet, kubeadm and kubectl from pkgs.k8s.io at exactly NB_K8S_PKG_VERSION, held against upgrades.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

packages=(kubelet kubeadm kubectl)
want="$NB_K8S_PKG_VERSION"

all_pinned() {
  local p
  for p in "${packages[@]}"; do
    [[ "$(installed_version "$p")" == "$want" ]] && is_held "$p" || return 1
  done
}

if all_pinned && systemctl is-enabled --quiet kubelet; then
  already_done "kubelet kubeadm kubectl $want installed and held"
  exit 0
fi

install_apt_key "$NB_K8S_APT_KEY_URL" /etc/apt/keyrings/kubernetes-apt-keyring.gpg
if write_if_changed /etc/apt/sources.list.d/kubernetes.list "$NB_K8S_APT_SOURCE"; then
  changed "apt source for Kubernetes $NB_K8S_MINOR written"
fi
apt_get update
apt-mark unhold "${packages[@]}" >/dev/null
apt_get install --allow-downgrades --allow-change-held-packages \
  "${packages[@]/%/=$want}"
apt-mark hold "${packages[@]}" >/dev/null
systemctl enable kubelet
changed "kubelet kubeadm kubectl $want installed and held"
