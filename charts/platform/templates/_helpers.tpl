{{/*
Names and labels of the umbrella's own objects (the helm test pod). Names, labels, images, ports and
the node contract shared with the subcharts come from the platform-lib library chart.
*/}}

{{- define "platform.labels" -}}
{{ include "platform-lib.labels" (dict "ctx" . "name" "platform-test" "component" "helm-test") }}
{{- end }}

{{/*
The platform's own images (chat-api, chat-ui) exist only where `make images` pushed them: an
unqualified repository (no registry host) needs global.image.registry. "" when it can be pulled.
*/}}
{{- define "platform.unpublishedImages" -}}
{{- $missing := list -}}
{{- range $name := list "chat-api" "chat-ui" -}}
{{- $sub := index $.Values $name -}}
{{- if $sub.enabled -}}
{{- $repo := dig "image" "repository" (printf "llama-platform/%s" $name) $sub -}}
{{- $first := first (splitList "/" $repo) -}}
{{- $qualified := and (contains "/" $repo) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if and (not $qualified) (not $.Values.global.image.registry) -}}
{{- $missing = append $missing $name -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{ join " and " $missing }}
{{- end }}

{{/*
Where the platform faces a network beyond the cluster (issue 15, safe by default). "" when it does
not; else the settings that expose it, as `key=value` phrases for the refusal's sentence.
platform.uiExposure: the UI (and, through its proxy, /api and /v1). platform.apiExposure: chat-api's
own Service (/v1 directly).
*/}}
{{- define "platform.uiExposure" -}}
{{- $ui := index .Values "chat-ui" -}}
{{- $how := list -}}
{{- if $ui.enabled -}}
{{- $type := dig "service" "type" "ClusterIP" $ui -}}
{{- if ne $type "ClusterIP" }}{{ $how = append $how (printf "chat-ui.service.type=%s" $type) }}{{ end -}}
{{- if dig "ingress" "enabled" false $ui }}{{ $how = append $how "chat-ui.ingress.enabled=true" }}{{ end -}}
{{- with dig "edge" "externalIPs" list $ui }}{{ $how = append $how (printf "chat-ui.edge.externalIPs=%v" .) }}{{ end -}}
{{- end -}}
{{ join ", " $how }}
{{- end }}

{{- define "platform.apiExposure" -}}
{{- $api := index .Values "chat-api" -}}
{{- if $api.enabled -}}
{{- $type := dig "service" "type" "ClusterIP" $api -}}
{{- if ne $type "ClusterIP" }}{{ printf "chat-api.service.type=%s" $type }}{{ end -}}
{{- end -}}
{{- end }}

{{/* "true" when people sign in (OpenID Connect, chat-api.auth.oidc; on once its issuer is set). */}}
{{- define "platform.signIn" -}}
{{- if dig "auth" "oidc" "issuerUrl" "" (index .Values "chat-api") -}}true{{- end -}}
{{- end }}

{{/* "true" when /v1 wants an API key (chat-api.apiKeys: a Secret of keys, or the key store). */}}
{{- define "platform.apiKeys" -}}
{{- $keys := dig "apiKeys" dict (index .Values "chat-api") -}}
{{- if or (dig "existingSecret" "" $keys) (dig "enabled" false $keys) -}}true{{- end -}}
{{- end }}
