#!/usr/bin/env bash
# GPU nodes carry the label NODE_BOOTSTRAP_GPU_LABEL (key=value) and the taint NODE_BOOTSTRAP_GPU_TAINT (key=value:effect),
# both from the chart's node contract (global.node in charts/platform/values.yaml, read by
# node_contract.py), which the gpu-operator-lite device plugin and vLLM select and tolerate,
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
label_key, _, label_value = sys.argv[1].partition("=")
taint_kv, _, taint_effect = sys.argv[2].rpartition(":")
taint_key, _, taint_value = taint_kv.partition("=")
label = node["metadata"].get("labels", {}).get(label_key) == label_value
taint = any(t.get("key") == taint_key and t.get("value") == taint_value and t.get("effect") == taint_effect
            for t in node.get("spec", {}).get("taints") or [])
print(f"{label} {taint}")' "$NODE_BOOTSTRAP_GPU_LABEL" "$NODE_BOOTSTRAP_GPU_TAINT")"
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
  kubectl label node "$node" "$NODE_BOOTSTRAP_GPU_LABEL" --overwrite
  kubectl taint node "$node" "$NODE_BOOTSTRAP_GPU_TAINT" --overwrite
  changed "$node labelled $NODE_BOOTSTRAP_GPU_LABEL and tainted $NODE_BOOTSTRAP_GPU_TAINT"
fi
if [[ -z "$handler" ]]; then
  echo '{"apiVersion": "node.k8s.io/v1", "kind": "RuntimeClass", "metadata": {"name": "nvidia"}, "handler": "nvidia"}' |
    kubectl apply -f -
  changed "RuntimeClass nvidia (handler nvidia) created"
fi
