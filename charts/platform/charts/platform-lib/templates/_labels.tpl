{{/*
Labels of every object (app.kubernetes.io/*). With a chart's own context: name = the chart's name,
component = its Chart.yaml annotation `llama-platform/component`. A chart with several apps
(gpu-operator-lite) passes (dict "ctx" $ "name" "<app>" "component" "<component>" ["version" "<v>"]).
*/}}
{{- define "platform-lib.labels" -}}
{{- $ctx := . -}}
{{- $name := "" -}}
{{- $component := "" -}}
{{- $version := "" -}}
{{- if hasKey . "ctx" -}}
{{- $ctx = .ctx -}}
{{- $name = .name -}}
{{- $component = .component -}}
{{- $version = .version | default "" -}}
{{- else -}}
{{- $name = .Chart.Name -}}
{{- $component = index (.Chart.Annotations | default dict) "llama-platform/component" | default "" -}}
{{- end -}}
{{ include "platform-lib.selectorLabels" (dict "ctx" $ctx "name" $name) }}
helm.sh/chart: {{ printf "%s-%s" $ctx.Chart.Name $ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: llama-platform
{{- with $component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
app.kubernetes.io/version: {{ $version | default $ctx.Chart.AppVersion | quote }}
{{- end }}

{{/*
The labels a Deployment/DaemonSet/Service selects on: name and instance. With a chart's context
(its own pods), (dict "ctx" $ "name" "<app>") or (list $ "<chart>") (another chart's pods, e.g. a
NetworkPolicy peer).
*/}}
{{- define "platform-lib.selectorLabels" -}}
{{- $ctx := . -}}
{{- $name := "" -}}
{{- if kindIs "slice" . -}}
{{- $ctx = index . 0 -}}
{{- $name = index . 1 -}}
{{- else if hasKey . "ctx" -}}
{{- $ctx = .ctx -}}
{{- $name = .name -}}
{{- else -}}
{{- $name = .Chart.Name -}}
{{- end -}}
app.kubernetes.io/name: {{ $name }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
{{- end }}
