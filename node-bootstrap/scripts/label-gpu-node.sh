#!/usr/bin/env bash
# GPU nodes carry nvidia.com/gpu.present=true and the nvidia.com/gpu=present:NoSchedule taint,
# which the gpu-operator-lite device plugin and vLLM select and tolerate (docs/interfaces.md),
# and the cluster gets the RuntimeClass `nvidia` whose handler is the runtime
# containerd-config.toml.j2 renders on GPU nodes (the chart's pre-install hook creates it only
# where it does not exist yet, so the two never fight over it).
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
# Empty when there is no RuntimeClass nvidia (kubectl: NotFound).
handler="$(kubectl get runtimeclass nvidia -o json 2>/dev/null |
  python3 -c 'import json, sys; print(json.load(sys.stdin).get("handler", ""))' || true)"

if [[ "$state" == "True True" && "$handler" == "nvidia" ]]; then
  already_done "$node labelled and tainted, RuntimeClass nvidia present"
  exit 0
fi
if [[ -n "$handler" && "$handler" != "nvidia" ]]; then
  echo "RuntimeClass nvidia has handler '$handler', not nvidia: GPU pods would not get the NVIDIA" \
    "runtime. Fix: kubectl delete runtimeclass nvidia, then make bootstrap." >&2
  exit 1
fi
if [[ "$state" != "True True" ]]; then
  kubectl label node "$node" nvidia.com/gpu.present=true --overwrite
  kubectl taint node "$node" nvidia.com/gpu=present:NoSchedule --overwrite
  changed "$node labelled nvidia.com/gpu.present=true and tainted nvidia.com/gpu=present:NoSchedule"
fi
if [[ -z "$handler" ]]; then
  echo '{"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "nvidia"}' |
    kubectl apply -f -
  changed "RuntimeClass nvidia (handler nvidia) created"
fi
