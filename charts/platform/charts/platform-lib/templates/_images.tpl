{{/*
An image reference. Call with (dict "ctx" $ "image" <repository/tag/digest map> ["own" true] ["tag" "<default tag>"]).
- own: one of the platform's own images (chat-api, chat-ui, built by `make images` and published
  nowhere else): an unqualified repository (no registry host) goes under global.image.registry.
- otherwise (vLLM, NVIDIA, Redis, curl): global.image.mirror, when set, replaces the registry.
The tag: image.tag, else the `tag` given, else the calling chart's appVersion. A digest wins over the tag.
*/}}
{{- define "platform-lib.image" -}}
{{- $global := .ctx.Values.global | default dict -}}
{{- $images := $global.image | default dict -}}
{{- $repo := .image.repository -}}
{{- $first := first (splitList "/" $repo) -}}
{{- $hasHost := and (contains "/" $repo) (or (contains "." $first) (contains ":" $first) (eq $first "localhost")) -}}
{{- if .own -}}
{{- if and (not $hasHost) $images.registry -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $images.registry) $repo -}}
{{- end -}}
{{- else if $images.mirror -}}
{{- if $hasHost -}}
{{- $repo = join "/" (rest (splitList "/" $repo)) -}}
{{- end -}}
{{- $repo = printf "%s/%s" (trimSuffix "/" $images.mirror) $repo -}}
{{- end -}}
{{- if .image.digest -}}
{{- printf "%s@%s" $repo .image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (toString (.image.tag | default .tag | default .ctx.Chart.AppVersion)) -}}
{{- end -}}
{{- end }}

{{/* imagePullSecrets from global.image.pullSecrets (nothing when there are none). */}}
{{- define "platform-lib.imagePullSecrets" -}}
{{- with dig "image" "pullSecrets" list (.Values.global | default dict) }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end }}
