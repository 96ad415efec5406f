#!/usr/bin/env bash
# kubeadm join. The JoinConfiguration (it holds the bootstrap token) arrives on stdin and only
# ever lives in a 0600 file that is removed on exit; it is never an argument.
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"

if [[ -f /etc/kubernetes/kubelet.conf ]]; then
  cat >/dev/null
  already_done "node already joined"
  exit 0
fi
install -d -m 0755 /etc/kubernetes
umask 077
config="$(mktemp /etc/kubernetes/node-bootstrap-join.XXXXXX)"
trap 'rm -f "$config"' EXIT
cat >"$config"
kubeadm join --config "$config"
changed "node joined the cluster"
