{{/* Derived values of the chat-ui chart (names, labels and images: platform-lib). */}}

{{/* chat-api's in-cluster URL that nginx proxies to. */}}
{{- define "chat-ui.apiUpstream" -}}
{{ .Values.apiProxy.upstream | default (include "platform-lib.url" (list . "chat-api")) | trimSuffix "/" }}
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
{{ .Values.tls.existingSecret | default (printf "%s-tls" (include "platform-lib.fullname" .)) }}
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
{{ printf "%s-acme" (include "platform-lib.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The port browsers reach HTTPS at, for the redirect: 443 on the edge, else the NodePort. */}}
{{- define "chat-ui.httpsPublicPort" -}}
{{- if .Values.edge.externalIPs -}}443
{{- else if and (eq .Values.service.type "NodePort") .Values.service.httpsNodePort -}}{{ .Values.service.httpsNodePort }}
{{- else -}}443
{{- end -}}
{{- end }}
