#!/usr/bin/env bash
# kubeadm init, once, from the rendered config (version, podSubnet, certSANs, node-ip).
# "Done" is read from the end state kubeadm leaves when it finishes (the kubeadm-config
# ConfigMap, then the kube-proxy and CoreDNS addons, its last phase), not from files it writes
# early: an init cut short leaves admin.conf and the static pod manifests behind, and a second
# `kubeadm init` then stops at its preflight. Such a partial init is reset and run again.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
export KUBECONFIG=/etc/kubernetes/admin.conf

# Written only after the end state was seen: from then on a silent API server is an outage to
# look at, never a reason to reset.
complete_marker=/etc/kubernetes/node-bootstrap-init-complete
wait_s="${NODE_BOOTSTRAP_API_WAIT_S:-180}"

api_answers() {
  [[ -f /etc/kubernetes/admin.conf ]] || return 1
  local deadline=$((SECONDS + wait_s))
  until kubectl get --raw /readyz >/dev/null 2>&1; do
    ((SECONDS < deadline)) || return 1
    sleep 3
  done
}

end_state_present() {
  kubectl -n kube-system get configmap kubeadm-config >/dev/null 2>&1 &&
    kubectl -n kube-system get daemonset kube-proxy >/dev/null 2>&1 &&
    kubectl -n kube-system get deployment coredns >/dev/null 2>&1
}

if [[ -f /etc/kubernetes/admin.conf || -f /etc/kubernetes/manifests/kube-apiserver.yaml ]]; then
  if api_answers && end_state_present; then
    [[ -f "$complete_marker" ]] || touch "$complete_marker"
    already_done "control plane initialised (kubeadm-config, kube-proxy, CoreDNS present)"
    exit 0
  fi
  if [[ -f "$complete_marker" ]]; then
    say "the API server does not answer (or lost kube-proxy/CoreDNS) on a control plane that was complete"
    say "fix: sudo crictl ps -a; sudo journalctl -u kubelet -n 100 on this node; then re-run 'make bootstrap'"
    exit 1
  fi
  say "a previous kubeadm init did not finish (no kubeadm-config, kube-proxy or CoreDNS): resetting it"
  kubeadm reset --force
  changed "partial kubeadm init reset"
fi
# --skip-token-print: the bootstrap token never reaches a log; workers get their own short-lived one.
kubeadm init --config "$NODE_BOOTSTRAP_DIR/files/kubeadm-init.yaml" --skip-token-print
if ! end_state_present; then
  say "kubeadm init returned but kubeadm-config, kube-proxy or CoreDNS is missing"
  exit 1
fi
touch "$complete_marker"
changed "control plane initialised"
