#!/usr/bin/env bash
# kubeadm, kubelet and kubectl of exactly NODE_BOOTSTRAP_K8S_VERSION, crictl and the CNI plugins: the release
# binaries, each verified against the SHA-256 pinned in node_bootstrap/settings.py before it is
# installed. No pkgs.k8s.io apt repository: its signing key expires (end-of-life channels were
# not re-signed, kubernetes/release#3818), while a checksum pinned in the repository does not.
# The kubelet unit and kubeadm's drop-in are those the release's packages install
# (kubernetes/release cmd/krel/templates/latest/kubelet/kubelet.service, kubeadm/10-kubeadm.conf),
# with the binaries in /usr/local/bin.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

bin=/usr/local/bin
record=/etc/node-bootstrap/kubernetes-release
# What kubeadm's preflight (v1.29 checks.go: conntrack and iptables are errors, socat and
# ethtool warnings) and `kubectl port-forward` need from the distribution (Ubuntu's archive).
deps=(conntrack socat ethtool iptables)
want_record="$(printf '%s\n' "version $NODE_BOOTSTRAP_K8S_VERSION" "kubeadm $NODE_BOOTSTRAP_K8S_SHA256_KUBEADM" \
  "kubelet $NODE_BOOTSTRAP_K8S_SHA256_KUBELET" "kubectl $NODE_BOOTSTRAP_K8S_SHA256_KUBECTL" \
  "crictl $NODE_BOOTSTRAP_CRICTL_SHA256" "cni-plugins $NODE_BOOTSTRAP_CNI_SHA256")"

unit_content="[Unit]
Description=kubelet: The Kubernetes Node Agent
Documentation=https://kubernetes.io/docs/
Wants=network-online.target
After=network-online.target

[Service]
ExecStart=$bin/kubelet
Restart=always
StartLimitInterval=0
RestartSec=10

[Install]
WantedBy=multi-user.target"

dropin_content="# kubeadm's drop-in (the kubeadm package's 10-kubeadm.conf), for $bin/kubelet.
[Service]
Environment=\"KUBELET_KUBECONFIG_ARGS=--bootstrap-kubeconfig=/etc/kubernetes/bootstrap-kubelet.conf --kubeconfig=/etc/kubernetes/kubelet.conf\"
Environment=\"KUBELET_CONFIG_ARGS=--config=/var/lib/kubelet/config.yaml\"
EnvironmentFile=-/var/lib/kubelet/kubeadm-flags.env
EnvironmentFile=-/etc/default/kubelet
ExecStart=
ExecStart=$bin/kubelet \$KUBELET_KUBECONFIG_ARGS \$KUBELET_CONFIG_ARGS \$KUBELET_KUBEADM_ARGS \$KUBELET_EXTRA_ARGS"

binary_ok() { [[ -x "$bin/$1" && "$(sha256sum "$bin/$1" | cut -d' ' -f1)" == "$2" ]]; }

missing_deps=()
for p in "${deps[@]}"; do
  [[ -n "$(installed_version "$p")" ]] || missing_deps+=("$p")
done

if ((${#missing_deps[@]} == 0)) && [[ "$(cat "$record" 2>/dev/null)" == "$want_record" ]] &&
  binary_ok kubeadm "$NODE_BOOTSTRAP_K8S_SHA256_KUBEADM" && binary_ok kubelet "$NODE_BOOTSTRAP_K8S_SHA256_KUBELET" &&
  binary_ok kubectl "$NODE_BOOTSTRAP_K8S_SHA256_KUBECTL" && [[ -x "$bin/crictl" ]] &&
  [[ "$(cat /etc/systemd/system/kubelet.service 2>/dev/null)" == "$unit_content" ]] &&
  [[ "$(cat /etc/systemd/system/kubelet.service.d/10-kubeadm.conf 2>/dev/null)" == "$dropin_content" ]] &&
  systemctl is-enabled --quiet kubelet; then
  already_done "kubeadm kubelet kubectl $NODE_BOOTSTRAP_K8S_VERSION, crictl, CNI plugins installed and verified"
  exit 0
fi

if ((${#missing_deps[@]})); then
  apt_get update
  apt_get install --no-install-recommends "${missing_deps[@]}"
  changed "installed ${missing_deps[*]}"
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for name in kubeadm kubelet kubectl; do
  var="NODE_BOOTSTRAP_K8S_SHA256_${name^^}"
  if ! binary_ok "$name" "${!var}"; then
    fetch_verified "$NODE_BOOTSTRAP_K8S_RELEASE_URL/$name" "${!var}" "$work/$name"
    install -m 0755 "$work/$name" "$bin/$name"
    changed "$name $NODE_BOOTSTRAP_K8S_VERSION installed (sha256 verified)"
  fi
done
if [[ "$(grep '^crictl ' "$record" 2>/dev/null)" != "crictl $NODE_BOOTSTRAP_CRICTL_SHA256" || ! -x "$bin/crictl" ]]; then
  fetch_verified "$NODE_BOOTSTRAP_CRICTL_URL" "$NODE_BOOTSTRAP_CRICTL_SHA256" "$work/crictl.tar.gz"
  tar -xzf "$work/crictl.tar.gz" -C "$bin" crictl
  changed "crictl installed (sha256 verified)"
fi
if [[ "$(grep '^cni-plugins ' "$record" 2>/dev/null)" != "cni-plugins $NODE_BOOTSTRAP_CNI_SHA256" ]]; then
  fetch_verified "$NODE_BOOTSTRAP_CNI_URL" "$NODE_BOOTSTRAP_CNI_SHA256" "$work/cni.tgz"
  install -d -m 0755 /opt/cni/bin
  tar -xzf "$work/cni.tgz" -C /opt/cni/bin
  changed "CNI plugins installed in /opt/cni/bin (sha256 verified)"
fi
write_if_changed "$record" "$want_record" && changed "$record written"
reload=0
write_if_changed /etc/systemd/system/kubelet.service "$unit_content" && reload=1
write_if_changed /etc/systemd/system/kubelet.service.d/10-kubeadm.conf "$dropin_content" && reload=1
if ((reload)); then
  systemctl daemon-reload
  changed "kubelet unit and kubeadm drop-in written"
fi
if ! systemctl is-enabled --quiet kubelet; then
  systemctl enable kubelet
  changed "kubelet enabled"
fi
exit 0
