{{- define "ziggie.kong.pluginName" -}}
{{- printf "%s-%s" (include "ziggie.fullname" .root) .plugin }}
{{- end }}

{{/* The algorithm Kong verifies with: the first of auth.algorithms. */}}
{{- define "ziggie.kong.algorithm" -}}
{{- first .Values.auth.algorithms }}
{{- end }}

{{- define "ziggie.kong.credentialSecretName" -}}
{{- default (printf "%s-kong-jwt" (include "ziggie.fullname" .)) .Values.kong.jwt.existingSecret }}
{{- end }}

{{/* konghq.com/plugins of the API and MCP routes (JWT-protected) and of the public docs routes. */}}
{{- define "ziggie.kong.protectedPlugins" -}}
{{- $names := list "correlation-id" "jwt" "rate-limiting" "prometheus" }}
{{- if .Values.cors.origins }}{{ $names = prepend $names "cors" }}{{ end }}
{{- $out := list }}
{{- range $names }}{{ $out = append $out (include "ziggie.kong.pluginName" (dict "root" $ "plugin" .)) }}{{ end }}
{{- join "," $out }}
{{- end }}

{{- define "ziggie.kong.publicPlugins" -}}
{{- $names := list "correlation-id" "rate-limiting" "prometheus" }}
{{- if .Values.cors.origins }}{{ $names = prepend $names "cors" }}{{ end }}
{{- $out := list }}
{{- range $names }}{{ $out = append $out (include "ziggie.kong.pluginName" (dict "root" $ "plugin" .)) }}{{ end }}
{{- join "," $out }}
{{- end }}
