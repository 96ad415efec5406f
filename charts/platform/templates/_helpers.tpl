{{/*
Names and labels of the umbrella's own objects (the helm test pod). Subcharts keep their own
helpers; the Service names they publish are fixed by docs/interfaces.md (`<release>-vllm`, ...).
*/}}

{{- define "platform.chart" -}}
{{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The vLLM Service, as the vllm-llama subchart names it. */}}
{{- define "platform.vllmService" -}}
{{ printf "%s-vllm" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "platform.labels" -}}
helm.sh/chart: {{ include "platform.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llama-platform
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* An image reference, with global.image.registry replacing the registry when set. */}}
{{- define "platform.image" -}}
{{- $repo := .image.repository -}}
{{- $registry := .global.image.registry | default "" -}}
{{- if $registry -}}
{{- $parts := splitList "/" $repo -}}
{{- if and (gt (len $parts) 1) (or (contains "." (first $parts)) (contains ":" (first $parts))) -}}
{{- $repo = join "/" (rest $parts) -}}
{{- end -}}
{{- printf "%s/%s:%s" (trimSuffix "/" $registry) $repo .image.tag -}}
{{- else -}}
{{- printf "%s:%s" $repo .image.tag -}}
{{- end -}}
{{- end }}
