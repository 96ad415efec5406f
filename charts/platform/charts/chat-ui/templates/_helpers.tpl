{{/* Names and labels of the chat-ui chart, defined once. */}}

{{/* `<release>-chat-ui` (docs/interfaces.md). */}}
{{- define "chat-ui.fullname" -}}
{{ printf "%s-chat-ui" .Release.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "chat-ui.selectorLabels" -}}
app.kubernetes.io/name: chat-ui
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "chat-ui.labels" -}}
{{ include "chat-ui.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: llama-platform
app.kubernetes.io/component: ui
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "chat-ui.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{ include "chat-ui.fullname" . }}
{{- else -}}
{{ .Values.serviceAccount.name | default "default" }}
{{- end -}}
{{- end }}

{{/*
The image reference. This image exists only where `make images` pushed it: an unqualified
repository (llama-platform/chat-ui) goes under global.image.registry; a repository with a registry
host is used as given. The tag defaults to the chart's appVersion, which `make images` tags with.
A digest wins over the tag.
*/}}
{{- define "chat-ui.image" -}}
{{- $repo := .Values.image.repository -}}
{{- $first := first (splitList "/" $repo) -}}
{{- $qualified := and (contains "/" $repo) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if and (not $qualified) .Values.global.image.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" .Values.global.image.registry) $repo -}}
{{- end -}}
{{- if .Values.image.digest -}}
{{ printf "%s@%s" $repo .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" $repo (.Values.image.tag | default .Chart.AppVersion) }}
{{- end -}}
{{- end }}

{{/* chat-api's in-cluster URL that nginx proxies to. */}}
{{- define "chat-ui.apiUpstream" -}}
{{ .Values.apiProxy.upstream | default (printf "http://%s-chat-api:8080" .Release.Name) | trimSuffix "/" }}
{{- end }}

{{/* CSP connect-src: the page's own origin, plus the API's origin when it is elsewhere. */}}
{{- define "chat-ui.connectSrc" -}}
{{- $origin := regexFind "^https?://[^/]+" .Values.config.apiBaseUrl -}}
{{ trim (printf "'self' %s" $origin) }}
{{- end }}

{{/* The runtime config the page reads at start (docs/interfaces.md). */}}
{{- define "chat-ui.configJson" -}}
{{- $config := dict "apiBaseUrl" (trimSuffix "/" .Values.config.apiBaseUrl) "title" .Values.config.title -}}
{{- if .Values.config.apiKey }}{{ $_ := set $config "apiKey" .Values.config.apiKey }}{{ end -}}
{{- if .Values.config.defaultSystemPrompt }}{{ $_ := set $config "defaultSystemPrompt" .Values.config.defaultSystemPrompt }}{{ end -}}
{{- if .Values.config.savedPrompts }}{{ $_ := set $config "savedPrompts" .Values.config.savedPrompts }}{{ end -}}
{{- if .Values.config.signIn }}{{ $_ := set $config "signIn" true }}{{ end -}}
{{ toPrettyJson $config }}
{{- end }}

{{/* Host names nginx serves: localhost, the Ingress host and serverNames (ui/nginx/default.conf.template). */}}
{{- define "chat-ui.serverNames" -}}
{{- $names := list "localhost" -}}
{{- with .Values.ingress.host }}{{ $names = append $names . }}{{ end -}}
{{- range .Values.serverNames }}{{ $names = append $names . }}{{ end -}}
{{- $names | uniq | join " " -}}
{{- end }}
