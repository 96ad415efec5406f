{{/* Names and labels of kube-prometheus-dashboards. Template names carry the `kpd.` prefix because
Helm shares named templates across the umbrella and all subcharts. */}}

{{- define "kpd.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llama-platform
app.kubernetes.io/name: kube-prometheus-dashboards
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dashboards
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{/* "true" when PrometheusRules should render: global.monitoring.enabled true, or auto and the API exists. */}}
{{- define "kpd.monitoringEnabled" -}}
{{- $enabled := toString .Values.global.monitoring.enabled -}}
{{- if eq $enabled "true" -}}true
{{- else if and (eq $enabled "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true
{{- end -}}
{{- end -}}

{{/* Whether the file stem (gpu, vllm, ...) is wanted: GPU files only with gpu.enabled. */}}
{{- define "kpd.wanted" -}}
{{- if or .root.Values.gpu.enabled (ne .stem "gpu") -}}true{{- end -}}
{{- end -}}
