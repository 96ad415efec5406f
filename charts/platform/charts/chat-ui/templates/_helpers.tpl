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
{{- if .Values.config.defaultSystemPrompt }}{{ $_ := set $config "defaultSystemPrompt" .Values.config.defaultSystemPrompt }}{{ end -}}
{{- if .Values.config.savedPrompts }}{{ $_ := set $config "savedPrompts" .Values.config.savedPrompts }}{{ end -}}
{{- if .Values.config.signIn }}{{ $_ := set $config "signIn" true }}{{ end -}}
{{ toPrettyJson $config }}
{{- end }}

{{/* Host names nginx serves: localhost, the Ingress host, tls.host and serverNames (ui/nginx/default.conf.template). */}}
{{- define "chat-ui.serverNames" -}}
{{- $names := list "localhost" -}}
{{- with .Values.ingress.host }}{{ $names = append $names . }}{{ end -}}
{{- if .Values.tls.enabled }}{{ with .Values.tls.host }}{{ $names = append $names . }}{{ end }}{{ end -}}
{{- range .Values.serverNames }}{{ $names = append $names . }}{{ end -}}
{{- $names | uniq | join " " -}}
{{- end }}

{{/* The Secret holding the certificate nginx serves (tls.enabled): the user's, or cert-manager's. */}}
{{- define "chat-ui.tlsSecretName" -}}
{{ .Values.tls.existingSecret | default (printf "%s-tls" (include "chat-ui.fullname" .)) }}
{{- end }}

{{/* "true" when cert-manager issues the certificate (no Secret brought). */}}
{{- define "chat-ui.certManager" -}}
{{- if and .Values.tls.enabled (not .Values.tls.existingSecret) .Values.tls.certManager.enabled -}}true{{- end -}}
{{- end }}

{{/* "true" when this chart's ACME Issuer is used, whose HTTP-01 challenge this nginx answers. */}}
{{- define "chat-ui.acmeIssuer" -}}
{{- if and (include "chat-ui.certManager" .) (not .Values.tls.certManager.issuerRef.name) -}}true{{- end -}}
{{- end }}

{{/* The Service that selects cert-manager's HTTP-01 solver pods for this release (label set in the Issuer). */}}
{{- define "chat-ui.acmeSolverService" -}}
{{ printf "%s-acme" (include "chat-ui.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The port browsers reach HTTPS at, for the redirect: 443 on the edge, else the NodePort. */}}
{{- define "chat-ui.httpsPublicPort" -}}
{{- if .Values.edge.externalIPs -}}443
{{- else if and (eq .Values.service.type "NodePort") .Values.service.httpsNodePort -}}{{ .Values.service.httpsNodePort }}
{{- else -}}443
{{- end -}}
{{- end }}
