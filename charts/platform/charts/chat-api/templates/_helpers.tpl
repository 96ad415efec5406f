{{/* Derived values of the chat-api chart (names, labels and images: platform-lib). */}}

{{/* vLLM's URL: the vllm-llama Service of this release unless upstream.url says otherwise. */}}
{{- define "chat-api.upstreamUrl" -}}
{{ .Values.upstream.url | default (include "platform-lib.url" (list . "vllm-llama")) | trimSuffix "/" }}
{{- end }}

{{- define "chat-api.defaultModel" -}}
{{ .Values.upstream.defaultModel | default .Values.global.model.servedName }}
{{- end }}

{{- define "chat-api.allowedModels" -}}
{{- if .Values.upstream.allowedModels -}}
{{ join "," .Values.upstream.allowedModels }}
{{- else -}}
{{ include "chat-api.defaultModel" . }}
{{- end -}}
{{- end }}

{{/*
"true" when the HPA renders: forced on, or `auto` and the cluster serves the resource metrics API
(metrics.k8s.io/v1beta1, from metrics-server). Without that API an HPA shows <unknown> and never
scales; kubeadm installs no metrics-server, so `auto` falls back to replicaCount pods there.
*/}}
{{- define "chat-api.hpa" -}}
{{- $enabled := .Values.autoscaling.enabled -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if .Capabilities.APIVersions.Has "metrics.k8s.io/v1beta1" }}true{{ end -}}
{{- else if eq (toString $enabled) "true" -}}
true
{{- end -}}
{{- end }}

{{/* Pods the PDB can count on: the HPA's floor when it scales, else replicaCount. */}}
{{- define "chat-api.minPods" -}}
{{- if include "chat-api.hpa" . -}}{{ .Values.autoscaling.minReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end }}

{{/* The vLLM pods of this release (the vllm-llama chart's selector labels). */}}
{{- define "chat-api.vllmPodSelector" -}}
app.kubernetes.io/name=vllm-llama,app.kubernetes.io/instance={{ .Release.Name }}
{{- end }}

{{/*
Addresses of the Kubernetes API server for the egress rule: podStatus.apiServerCIDRs, else what the
cluster says at install (the `kubernetes` Service's ClusterIP and its endpoints), else empty (no `to`:
any address, on the API server ports only). `helm template` has no cluster, so it renders the last.
*/}}
{{- define "chat-api.apiServerCIDRs" -}}
{{- $cidrs := .Values.podStatus.apiServerCIDRs | default list -}}
{{- if not $cidrs -}}
{{- $svc := lookup "v1" "Service" "default" "kubernetes" -}}
{{- if $svc -}}
{{- range $svc.spec.clusterIPs | default (list $svc.spec.clusterIP) }}{{ $cidrs = append $cidrs (printf "%s/%s" . (ternary "128" "32" (contains ":" .))) }}{{ end -}}
{{- end -}}
{{- $eps := lookup "v1" "Endpoints" "default" "kubernetes" -}}
{{- if $eps -}}
{{- range $eps.subsets | default list }}{{ range .addresses | default list }}{{ $cidrs = append $cidrs (printf "%s/%s" .ip (ternary "128" "32" (contains ":" .ip))) }}{{ end }}{{ end -}}
{{- end -}}
{{- end -}}
{{ toJson (uniq $cidrs) }}
{{- end }}

{{/* The shared store (store.redis): names of its objects and its password's Secret. */}}
{{- define "chat-api.redisName" -}}
{{ printf "%s-redis" (include "platform-lib.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chat-api.redisSecretName" -}}
{{ .Values.store.redis.existingSecret | default (include "chat-api.redisName" .) }}
{{- end }}

{{- define "chat-api.redisSelectorLabels" -}}
app.kubernetes.io/name: chat-api-redis
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The Secret chat-api reads the store's URL from (entry `url`, or store.secretKey for a store of
the user's own): this release's Redis (store.redis) or store.existingSecret; empty: no store. */}}
{{- define "chat-api.storeSecret" -}}
{{- if .Values.store.redis.enabled -}}
{{ include "chat-api.redisSecretName" . }}
{{- else -}}
{{ .Values.store.existingSecret }}
{{- end -}}
{{- end }}
{{/* Most pods that can run at once: the HPA's ceiling where one renders, else replicaCount. */}}
{{- define "chat-api.maxPods" -}}
{{- if include "chat-api.hpa" . -}}{{ .Values.autoscaling.maxReplicas }}{{- else -}}{{ .Values.replicaCount }}{{- end -}}
{{- end }}

{{/* The conversation store in effect: history.database with `auto` resolved (sqlite for one pod, off for more). */}}
{{- define "chat-api.historyDatabase" -}}
{{- $db := .Values.history.database -}}
{{- if eq $db "auto" -}}
{{- if gt (int (include "chat-api.maxPods" .)) 1 -}}off{{- else -}}sqlite{{- end -}}
{{- else -}}
{{- $db -}}
{{- end -}}
{{- end }}
