{{/*
Facts more than one chart relies on, read from the umbrella's `global` (charts/platform/values.yaml),
the one place each is defined. A subchart cannot read a sibling's values, so a port that chat-api
calls or a label the bootstrap sets lives there.
*/}}

{{/* The port of a platform Service: (list $ "vllm-llama") or (list $ "chat-api"), from global.ports. */}}
{{- define "platform-lib.port" -}}
{{- $ctx := index . 0 -}}
{{- $chart := index . 1 -}}
{{- $port := dig "ports" $chart "" ($ctx.Values.global | default dict) -}}
{{- if not $port -}}
{{- fail (printf "global.ports.%s is not set: it is the port of the %s Service that the other charts call; the umbrella chart's values.yaml defines it (render through charts/platform)." $chart $chart) -}}
{{- end -}}
{{- int $port -}}
{{- end }}

{{/* The in-cluster base URL of a platform Service: (list $ "<chart>") -> http://<release>-<chart>:<port>. */}}
{{- define "platform-lib.url" -}}
{{- printf "http://%s:%s" (include "platform-lib.fullname" .) (include "platform-lib.port" .) -}}
{{- end }}

{{/* The node contract (global.node), which node-bootstrap reads from the same file. */}}
{{- define "platform-lib.node" -}}
{{- $node := dig "node" dict (.Values.global | default dict) -}}
{{- range $key := list "uid" "gid" "modelCachePath" "gpuLabel" "gpuTaint" -}}
{{- if not (hasKey $node $key) -}}
{{- fail (printf "global.node.%s is not set: the umbrella chart's values.yaml defines the node contract that node-bootstrap also reads (render through charts/platform)." $key) -}}
{{- end -}}
{{- end -}}
{{ toYaml $node }}
{{- end }}

{{/*
Where GPU pods go: global.gpu.nodeSelector when given (another cluster's GPU nodes), else the label
the bootstrap puts on GPU nodes (global.node.gpuLabel). YAML; "{}" when given empty.
*/}}
{{- define "platform-lib.gpuNodeSelector" -}}
{{- $gpu := dig "gpu" dict (.Values.global | default dict) -}}
{{- if hasKey $gpu "nodeSelector" -}}
{{ toYaml ($gpu.nodeSelector | default dict) }}
{{- else -}}
{{- $label := (include "platform-lib.node" . | fromYaml).gpuLabel -}}
{{ toYaml (dict $label.key (toString $label.value)) }}
{{- end -}}
{{- end }}

{{/*
What GPU pods tolerate: global.gpu.tolerations when given, else the taint the bootstrap puts on GPU
nodes (global.node.gpuTaint: its key and effect, whatever its value). YAML list; "[]" when given empty.
*/}}
{{- define "platform-lib.gpuTolerations" -}}
{{- $gpu := dig "gpu" dict (.Values.global | default dict) -}}
{{- if hasKey $gpu "tolerations" -}}
{{ toYaml ($gpu.tolerations | default list) }}
{{- else -}}
{{- $taint := (include "platform-lib.node" . | fromYaml).gpuTaint -}}
{{ toYaml (list (dict "key" $taint.key "operator" "Exists" "effect" $taint.effect)) }}
{{- end -}}
{{- end }}
