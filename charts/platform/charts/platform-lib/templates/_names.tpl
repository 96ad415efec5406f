{{/*
`<release>-<chart>`: the name of a chart's objects and of the Service other charts call
(docs/interfaces.md). With the chart's own context: its own name. With (list $ "<chart>"): another
chart's, e.g. chat-api naming vllm-llama's Service.
*/}}
{{- define "platform-lib.fullname" -}}
{{- $ctx := . -}}
{{- $chart := "" -}}
{{- if kindIs "slice" . -}}
{{- $ctx = index . 0 -}}
{{- $chart = index . 1 -}}
{{- else -}}
{{- $chart = .Chart.Name -}}
{{- end -}}
{{- printf "%s-%s" $ctx.Release.Name $chart | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{/* The ServiceAccount a chart's pods run as: its own (serviceAccount.create), or the one named. */}}
{{- define "platform-lib.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ include "platform-lib.fullname" . }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end }}
