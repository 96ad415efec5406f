{{/*
"true" when ServiceMonitors and PrometheusRules render: global.monitoring.enabled true, or `auto`
and the cluster announces monitoring.coreos.com/v1 (prometheus-operator's CRDs, which
kube-prometheus-stack installs). One capability string for every chart, so the switch never
disagrees with itself.
*/}}
{{- define "platform-lib.monitoring" -}}
{{- $enabled := toString (dig "monitoring" "enabled" "auto" (.Values.global | default dict)) -}}
{{- if eq $enabled "true" -}}true
{{- else if and (eq $enabled "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true
{{- end -}}
{{- end }}
