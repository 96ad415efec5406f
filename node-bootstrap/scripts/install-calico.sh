#!/usr/bin/env bash
# Calico through the tigera operator, VXLAN, MTU for the 9001-byte VPC (rendered Installation).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
export KUBECONFIG=/etc/kubernetes/admin.conf

installation="$NODE_BOOTSTRAP_DIR/files/calico-installation.yaml"
want_hash="$(sha256sum "$installation" | cut -c1-16)"
did=0

if ! kubectl get deployment -n tigera-operator tigera-operator >/dev/null 2>&1; then
  # create, not apply: the operator's CRDs exceed apply's annotation size limit.
  kubectl create -f "$NODE_BOOTSTRAP_CALICO_OPERATOR_URL"
  changed "tigera operator $NODE_BOOTSTRAP_CALICO_VERSION created"
  did=1
fi
kubectl wait --for=condition=established --timeout=180s \
  crd/installations.operator.tigera.io crd/apiservers.operator.tigera.io >/dev/null
have_hash="$(kubectl get installation default -o json 2>/dev/null |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["metadata"].get("annotations",{}).get("node-bootstrap/config-hash",""))' 2>/dev/null || true)"
if [[ "$have_hash" != "$want_hash" ]]; then
  kubectl apply -f "$installation"
  kubectl annotate installation default "node-bootstrap/config-hash=$want_hash" --overwrite
  changed "Calico Installation applied (VXLAN, MTU $NODE_BOOTSTRAP_CALICO_MTU)"
  did=1
fi
[[ "$did" == 0 ]] && already_done "tigera operator and Calico Installation in place"
exit 0
