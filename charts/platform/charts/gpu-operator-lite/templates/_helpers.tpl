{{/* Names and labels of gpu-operator-lite. Template names carry the `gol.` prefix because Helm
shares named templates across the umbrella and all subcharts. */}}

{{- define "gol.devicePluginName" -}}
{{- printf "%s-nvidia-device-plugin" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "gol.dcgmExporterName" -}}
{{- printf "%s-dcgm-exporter" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels every object carries; call with (dict "ctx" $ "name" "<app name>" "component" "<component>"). */}}
{{- define "gol.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: llama-platform
{{ include "gol.selectorLabels" . }}
app.kubernetes.io/component: {{ .component }}
app.kubernetes.io/version: {{ .version | default .ctx.Chart.AppVersion | quote }}
{{- end -}}

{{- define "gol.selectorLabels" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end -}}

{{/* An image reference; global.image.mirror replaces the registry part. */}}
{{- define "gol.image" -}}
{{- $repo := .image.repository -}}
{{- with .global.image.mirror -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .) (regexReplaceAll "^[^/]+/" $repo "") -}}
{{- end -}}
{{- printf "%s:%s" $repo .image.tag -}}
{{- end -}}

{{/* "true" when ServiceMonitors should render: global.monitoring.enabled true, or auto and the API exists. */}}
{{- define "gol.monitoringEnabled" -}}
{{- $enabled := toString .Values.global.monitoring.enabled -}}
{{- if eq $enabled "true" -}}true
{{- else if and (eq $enabled "auto") (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1") -}}true
{{- end -}}
{{- end -}}

{{- define "gol.podCommon" -}}
priorityClassName: {{ .Values.priorityClassName }}
{{- with .Values.daemonSetRuntimeClassName }}
runtimeClassName: {{ . }}
{{- end }}
nodeSelector:
  {{- include "gol.gpuNodeSelector" . | nindent 2 }}
{{- with .Values.global.gpu.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.global.image.pullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* global.gpu.nodeSelector as given (empty stays empty, validate.yaml refuses it), or the GPU
label the bootstrap puts on GPU nodes when it is not set at all. */}}
{{- define "gol.gpuNodeSelector" -}}
{{- $gpu := .Values.global.gpu | default dict -}}
{{- if hasKey $gpu "nodeSelector" -}}
{{- toYaml ($gpu.nodeSelector | default dict) -}}
{{- else -}}
nvidia.com/gpu.present: "true"
{{- end -}}
{{- end -}}
