#!/usr/bin/env bash
# GPU nodes carry nvidia.com/gpu.present=true and the nvidia.com/gpu=present:NoSchedule taint,
# which the gpu-operator-lite device plugin and vLLM select and tolerate (docs/interfaces.md).
set -euo pipefail
# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "$0")/lib.sh"
export KUBECONFIG=/etc/kubernetes/admin.conf

node="${1:?usage: label-gpu-node.sh NODE_NAME}"
state="$(kubectl get node "$node" -o json | python3 -c '
import json, sys
node = json.load(sys.stdin)
label = node["metadata"].get("labels", {}).get("nvidia.com/gpu.present") == "true"
taint = any(t.get("key") == "nvidia.com/gpu" and t.get("value") == "present" and t.get("effect") == "NoSchedule"
            for t in node.get("spec", {}).get("taints") or [])
print(f"{label} {taint}")')"

if [[ "$state" == "True True" ]]; then
  already_done "$node labelled and tainted"
  exit 0
fi
kubectl label node "$node" nvidia.com/gpu.present=true --overwrite
kubectl taint node "$node" nvidia.com/gpu=present:NoSchedule --overwrite
changed "$node labelled nvidia.com/gpu.present=true and tainted nvidia.com/gpu=present:NoSchedule"
