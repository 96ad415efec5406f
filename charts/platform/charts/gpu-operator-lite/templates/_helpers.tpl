{{/* Names of gpu-operator-lite (labels, images: platform-lib). Template names carry the `gol.` prefix because Helm
shares named templates across the umbrella and all subcharts. */}}

{{- define "gol.devicePluginName" -}}
{{- printf "%s-nvidia-device-plugin" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gol.dcgmExporterName" -}}
{{- printf "%s-dcgm-exporter" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Scheduling and pulls of the GPU node DaemonSets: the GPU nodes' label and taint (platform-lib). */}}
{{- define "gol.podCommon" -}}
priorityClassName: {{ .Values.priorityClassName }}
{{- with .Values.daemonSetRuntimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
nodeSelector:
  {{- include "platform-lib.gpuNodeSelector" . | nindent 2 }}
{{- with (include "platform-lib.gpuTolerations" . | fromYamlArray) }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- include "platform-lib.imagePullSecrets" . }}
{{- end -}}
