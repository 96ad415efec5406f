{{/* Names, labels and derived numbers of the vLLM chart, defined once. */}}

{{/* `<release>-vllm` (docs/interfaces.md). */}}
{{- define "vllm-llama.fullname" -}}
{{ printf "%s-vllm" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "vllm-llama.selectorLabels" -}}
app.kubernetes.io/name: vllm-llama
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vllm-llama.labels" -}}
{{ include "vllm-llama.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llama-platform
app.kubernetes.io/component: model-server
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "vllm-llama.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ include "vllm-llama.fullname" . }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end }}

{{- define "vllm-llama.modelName" -}}
{{ .Values.model.name | default .Values.global.model.name }}
{{- end }}

{{- define "vllm-llama.servedName" -}}
{{ .Values.model.servedName | default .Values.global.model.servedName }}
{{- end }}

{{/* Where vLLM reads the weights: the downloaded copy on the cache volume, or the baked path. */}}
{{- define "vllm-llama.weightsPath" -}}
{{- if eq .Values.model.source "image" -}}
{{ .Values.model.imagePath }}
{{- else -}}
{{ printf "/models/weights/%s" (include "vllm-llama.modelName" .) }}
{{- end -}}
{{- end }}

{{- define "vllm-llama.isGpu" -}}
{{- if ne .Values.gpu.profile "cpu" }}true{{ end -}}
{{- end }}

{{/* The image reference: global.image.mirror replaces the registry; a digest wins over the tag. */}}
{{- define "vllm-llama.image" -}}
{{- $repo := .Values.image.repository -}}
{{- $registry := .Values.global.image.mirror | default "" -}}
{{- if $registry -}}
{{- $parts := splitList "/" $repo -}}
{{- if and (gt (len $parts) 1) (or (contains "." (first $parts)) (contains ":" (first $parts))) -}}
{{- $repo = join "/" (rest $parts) -}}
{{- end -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $registry) $repo -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{ printf "%s@%s" $repo .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" $repo (include "vllm-llama.imageTag" .) }}
{{- end -}}
{{- end }}

{{/* The tag: image.tag, or v<appVersion> (the vLLM release this chart and CI are built for). */}}
{{- define "vllm-llama.imageTag" -}}
{{ .Values.image.tag | default (printf "v%s" .Chart.AppVersion) }}
{{- end }}

{{/* The Secret holding HF_TOKEN: an existing one, or the one this chart creates. */}}
{{- define "vllm-llama.hfTokenSecret" -}}
{{ .Values.hfToken.existingSecret | default (printf "%s-hf-token" (include "vllm-llama.fullname" .)) }}
{{- end }}

{{- define "vllm-llama.needsHfToken" -}}
{{- if and .Values.hfToken.enabled (eq .Values.model.source "huggingface") }}true{{ end -}}
{{- end }}

{{/* "true" when ServiceMonitors render: forced on, or auto and the CRD's API is announced. */}}
{{- define "vllm-llama.monitoring" -}}
{{- $enabled := .Values.global.monitoring.enabled -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor" }}true{{ end -}}
{{- else if eq (toString $enabled) "true" -}}
true
{{- end -}}
{{- end }}

{{/* Bytes of one element of the KV cache for the dtype in use. */}}
{{- define "vllm-llama.kvBytes" -}}
{{- $kv := .Values.vllm.kvCacheDtype -}}
{{- $dtype := .Values.vllm.dtype -}}
{{- if hasPrefix "fp8" $kv -}}1
{{- else if or (eq $kv "float16") (eq $kv "bfloat16") -}}2
{{- else if or (eq $dtype "float") (eq $dtype "float32") -}}4
{{- else -}}2
{{- end -}}
{{- end }}

{{/* Bytes of one weight for the dtype in use (auto: the checkpoint's bf16). */}}
{{- define "vllm-llama.weightBytes" -}}
{{- if has .Values.vllm.dtype (list "float" "float32") }}4{{ else }}2{{ end -}}
{{- end }}

{{/* GiB of KV cache one sequence of max model length needs. */}}
{{- define "vllm-llama.kvGiBPerSequence" -}}
{{- $a := .Values.model.architecture -}}
{{- $perToken := mul 2 (int $a.layers) (int $a.kvHeads) (int $a.headDim) (int (include "vllm-llama.kvBytes" .)) -}}
{{- divf (mulf $perToken (int .Values.vllm.maxModelLen)) 1073741824.0 -}}
{{- end }}

{{/* GiB of KV cache available: GPU share minus weights and overhead, or the CPU KV space. */}}
{{- define "vllm-llama.kvGiBAvailable" -}}
{{- if include "vllm-llama.isGpu" . -}}
{{- $p := index .Values.gpu.profiles .Values.gpu.profile -}}
{{- $gpus := max 1 (int .Values.gpu.count) -}}
{{- $total := mulf (float64 $p.memoryGiB) (float64 .Values.vllm.gpuMemoryUtilization) $gpus -}}
{{- $weights := divf (mulf (float64 .Values.model.architecture.paramsBillions) 1000000000.0 (int (include "vllm-llama.weightBytes" .))) 1073741824.0 -}}
{{- subf $total $weights (mulf (float64 .Values.vllm.overheadGiB) $gpus) -}}
{{- else -}}
{{- float64 .Values.vllm.cpuKvCacheGiB -}}
{{- end -}}
{{- end }}

{{- define "vllm-llama.excludeArgs" -}}
{{- $args := list -}}
{{- range .Values.model.downloadExclude }}{{ $args = append $args (printf "--exclude %s" .) }}{{ end -}}
{{ join " " $args }}
{{- end }}

{{/* `vllm serve` arguments from the structured values, then extraArgs. */}}
{{- define "vllm-llama.args" -}}
{{- $v := .Values -}}
- {{ include "vllm-llama.weightsPath" . | quote }}
- --served-model-name
- {{ include "vllm-llama.servedName" . | quote }}
- --host
- "0.0.0.0"
- --port
- "8000"
- --dtype
- {{ $v.vllm.dtype | quote }}
- --max-model-len
- {{ $v.vllm.maxModelLen | quote }}
- --max-num-seqs
- {{ $v.vllm.maxNumSeqs | quote }}
- --max-num-batched-tokens
- {{ $v.vllm.maxNumBatchedTokens | quote }}
{{- if include "vllm-llama.isGpu" . }}
- --gpu-memory-utilization
- {{ $v.vllm.gpuMemoryUtilization | toString | quote }}
- --tensor-parallel-size
- {{ $v.vllm.tensorParallelSize | quote }}
{{- end }}
{{- if ne $v.vllm.kvCacheDtype "auto" }}
- --kv-cache-dtype
- {{ $v.vllm.kvCacheDtype | quote }}
{{- end }}
{{- with $v.vllm.attentionBackend }}
- --attention-backend
- {{ . | quote }}
{{- end }}
{{- if $v.vllm.enforceEager }}
- --enforce-eager
{{- end }}
{{- range $v.vllm.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{- define "vllm-llama.resources" -}}
{{- $res := deepCopy .Values.resources -}}
{{- if include "vllm-llama.isGpu" . -}}
{{- $_ := set $res "requests" (merge (dict "nvidia.com/gpu" (int .Values.gpu.count)) ($res.requests | default dict)) -}}
{{- $_ := set $res "limits" (merge (dict "nvidia.com/gpu" (int .Values.gpu.count)) ($res.limits | default dict)) -}}
{{- end -}}
{{ toYaml $res }}
{{- end }}

{{- define "vllm-llama.containerSecurityContext" -}}
allowPrivilegeEscalation: false
privileged: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end }}

{{/* Weights, HF cache and compile caches all under /models. */}}
{{- define "vllm-llama.cacheMounts" -}}
- name: models
  mountPath: /models
{{- if eq .Values.cache.type "emptyDir" }}
- name: hf-cache
  mountPath: /models/hf
{{- end }}
{{- end }}

{{- define "vllm-llama.cacheVolumes" -}}
{{- $c := .Values.cache -}}
{{- if eq $c.type "pvc" }}
- name: models
  persistentVolumeClaim:
    claimName: {{ $c.pvc.existingClaim | default (printf "%s-cache" (include "vllm-llama.fullname" .)) }}
{{- else if eq $c.type "hostPath" }}
- name: models
  hostPath:
    path: {{ $c.hostPath.path }}
    type: {{ $c.hostPath.type }}
{{- else }}
- name: models
  emptyDir:
    sizeLimit: {{ $c.emptyDir.modelSizeLimit }}
- name: hf-cache
  emptyDir:
    sizeLimit: {{ $c.emptyDir.hfCacheSizeLimit }}
{{- end }}
{{- end }}

{{/* A Kubernetes memory quantity (Gi, Mi, Ki, G, M, k or bytes) in MiB, rounded up; "" gives 0. */}}
{{- define "vllm-llama.quantityMiB" -}}
{{- $q := toString . -}}
{{- $units := list (list "Ki" 1024.0) (list "Mi" 1048576.0) (list "Gi" 1073741824.0) (list "Ti" 1099511627776.0) (list "k" 1000.0) (list "M" 1000000.0) (list "G" 1000000000.0) (list "T" 1000000000000.0) -}}
{{- $bytes := 0.0 -}}
{{- $matched := false -}}
{{- range $units -}}
{{- if and (not $matched) (hasSuffix (index . 0) $q) -}}
{{- $bytes = mulf (float64 (trimSuffix (index . 0) $q)) (index . 1) -}}
{{- $matched = true -}}
{{- end -}}
{{- end -}}
{{- if and (not $matched) $q -}}{{- $bytes = float64 $q -}}{{- end -}}
{{- ceil (divf $bytes 1048576.0) | int -}}
{{- end -}}
