{{/* Derived values of the vLLM chart (names, labels and images: platform-lib). */}}

{{- define "vllm-llama.modelName" -}}
{{ .Values.global.model.name }}
{{- end }}

{{- define "vllm-llama.servedName" -}}
{{ .Values.global.model.servedName }}
{{- end }}

{{/*
The model's shape (layers, kvHeads, headDim, paramsBillions) as YAML: files/model-shapes.yaml's entry
for global.model.name, with model.architecture's keys over it. A model the table does not know must
give all four, else the install is refused with a sentence that says so.
*/}}
{{- define "vllm-llama.shape" -}}
{{- $name := include "vllm-llama.modelName" . -}}
{{- $known := .Files.Get "files/model-shapes.yaml" | fromYaml -}}
{{- $shape := merge (deepCopy (.Values.model.architecture | default dict)) (deepCopy (get $known $name | default dict)) -}}
{{- $missing := list -}}
{{- range $key := list "layers" "kvHeads" "headDim" "paramsBillions" -}}
{{- if not (get $shape $key) }}{{ $missing = append $missing $key }}{{ end -}}
{{- end -}}
{{- if $missing -}}
{{- fail (printf "global.model.name %q is not a model this chart knows (charts/platform/charts/vllm-llama/files/model-shapes.yaml lists %s), so the KV cache check cannot size it: give its shape as vllm-llama.model.architecture (%s missing; from the model's config.json: num_hidden_layers, num_key_value_heads, hidden_size / num_attention_heads, and its parameter count in billions), or add it to that file." $name (keys $known | sortAlpha | join ", ") (join ", " $missing)) -}}
{{- end -}}
{{ toYaml $shape }}
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

{{/* The Secret holding HF_TOKEN: an existing one, or the one this chart creates. */}}
{{- define "vllm-llama.hfTokenSecret" -}}
{{ .Values.hfToken.existingSecret | default (printf "%s-hf-token" (include "platform-lib.fullname" .)) }}
{{- end }}

{{- define "vllm-llama.needsHfToken" -}}
{{- if and .Values.hfToken.enabled (eq .Values.model.source "huggingface") }}true{{ end -}}
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
{{- $a := include "vllm-llama.shape" . | fromYaml -}}
{{- $perToken := mul 2 (int $a.layers) (int $a.kvHeads) (int $a.headDim) (int (include "vllm-llama.kvBytes" .)) -}}
{{- divf (mulf $perToken (int .Values.vllm.maxModelLen)) 1073741824.0 -}}
{{- end }}

{{/* GiB of KV cache available: GPU share minus weights and overhead, or the CPU KV space. */}}
{{- define "vllm-llama.kvGiBAvailable" -}}
{{- if include "vllm-llama.isGpu" . -}}
{{- $p := index .Values.gpu.profiles .Values.gpu.profile -}}
{{- $gpus := max 1 (int .Values.gpu.count) -}}
{{- $total := mulf (float64 $p.memoryGiB) (float64 .Values.vllm.gpuMemoryUtilization) $gpus -}}
{{- $shape := include "vllm-llama.shape" . | fromYaml -}}
{{- $weights := divf (mulf (float64 $shape.paramsBillions) 1000000000.0 (int (include "vllm-llama.weightBytes" .))) 1073741824.0 -}}
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
- {{ include "platform-lib.port" (list . "vllm-llama") | quote }}
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
    claimName: {{ $c.pvc.existingClaim | default (printf "%s-cache" (include "platform-lib.fullname" .)) }}
{{- else if eq $c.type "hostPath" }}
- name: models
  hostPath:
    path: {{ (include "platform-lib.node" . | fromYaml).modelCachePath }}
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
