{{/* Helpers of kube-prometheus-dashboards (labels and the monitoring switch: platform-lib). Template names carry the `kpd.` prefix because
Helm shares named templates across the umbrella and all subcharts. */}}

{{/* Whether the file stem (gpu, vllm, ...) is wanted: GPU files only with gpu.enabled. */}}
{{- define "kpd.wanted" -}}
{{- if or .root.Values.gpu.enabled (ne .stem "gpu") -}}true{{- end -}}
{{- end -}}
