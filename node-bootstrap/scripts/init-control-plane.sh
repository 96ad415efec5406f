#!/usr/bin/env bash
# kubeadm init, once, from the rendered config (version, podSubnet, certSANs, node-ip).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

if [[ -f /etc/kubernetes/admin.conf && -f /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then
  already_done "control plane initialised"
  exit 0
fi
# --skip-token-print: the bootstrap token never reaches a log; workers get their own short-lived one.
kubeadm init --config "$NB_DIR/files/kubeadm-init.yaml" --skip-token-print
changed "control plane initialised"
