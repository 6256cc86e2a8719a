{{/*
Environment of a service (dict root, component). The names are the ones libs/platform/src/config
and the services' config.ts validate at start-up; a service exits listing every bad variable.
*/}}
{{- define "ziggie.env" -}}
{{- $root := .root }}
{{- $c := .component }}
{{- $meta := include "ziggie.component" . | fromYaml }}
{{- $v := index $root.Values $meta.key }}
{{- $auth := $root.Values.auth }}
- name: NODE_ENV
  value: production
- name: LOG_LEVEL
  value: {{ $root.Values.logLevel | quote }}
- name: HTTP_HOST
  value: {{ $root.Values.listenHost | quote }}
- name: HTTP_PORT
  value: {{ $meta.http | quote }}
{{- if $meta.grpc }}
- name: GRPC_HOST
  value: {{ $root.Values.listenHost | quote }}
- name: GRPC_PORT
  value: {{ $meta.grpc | quote }}
{{- end }}
- name: DATA_DIR
  value: /var/lib/ziggie
- name: HOME
  value: /tmp
- name: NATS_URL
  value: {{ include "ziggie.natsUrl" $root | quote }}
{{- range $peer, $peerMeta := include "ziggie.components" $root | fromYaml }}
{{- if $peerMeta.grpc }}
- name: {{ $peer | upper | replace "-" "_" }}_GRPC_ADDR
  value: {{ printf "%s:%d" (include "ziggie.serviceHost" (dict "root" $root "component" $peer)) (int $peerMeta.grpc) | quote }}
{{- end }}
{{- end }}
- name: JWT_ISSUER
  value: {{ $auth.issuer | quote }}
- name: JWT_AUDIENCE
  value: {{ $auth.audience | quote }}
- name: JWT_ALGORITHMS
  value: {{ join "," $auth.algorithms | quote }}
- name: JWT_CLOCK_TOLERANCE_SECONDS
  value: {{ $auth.clockToleranceSeconds | quote }}
- name: JWT_MAX_TOKEN_LIFETIME_SECONDS
  value: {{ $auth.maxTokenLifetimeSeconds | quote }}
{{- if include "ziggie.auth.usesHmac" $root }}
- name: ZIGGIE_JWT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ include "ziggie.auth.secretName" $root }}
      key: jwt-secret
{{- end }}
{{- if include "ziggie.auth.usesPublicKey" $root }}
- name: JWT_PUBLIC_KEY_FILE
  value: /etc/ziggie/jwt/public.pem
{{- end }}
{{- if $auth.jwksUrl }}
- name: JWT_JWKS_URL
  value: {{ $auth.jwksUrl | quote }}
- name: JWT_JWKS_CACHE_MAX_AGE_SECONDS
  value: {{ $auth.jwksCacheMaxAgeSeconds | quote }}
{{- end }}
{{- with $root.Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- if $meta.database }}
{{- $mode := include "ziggie.database.mode" $root }}
{{- if eq $mode "bundled" }}
{{- $pg := $root.Values.postgresql }}
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-postgresql" $root.Release.Name) $pg.auth.existingSecret }}
      key: password
- name: DATABASE_URL
  value: {{ printf "postgres://%s:$(POSTGRES_PASSWORD)@%s-postgresql.%s.svc:5432/%s" $pg.auth.username $root.Release.Name $root.Release.Namespace $pg.auth.database | quote }}
{{- else }}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ eq $mode "existingSecret" | ternary $root.Values.postgresql.external.existingSecret (include "ziggie.database.secretName" $root) }}
      key: {{ eq $mode "existingSecret" | ternary $root.Values.postgresql.external.existingSecretKey "DATABASE_URL" }}
{{- end }}
{{- end }}
{{- if $meta.redis }}
{{- $mode := include "ziggie.redis.mode" $root }}
{{- if eq $mode "bundled" }}
{{- $r := $root.Values.redis }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ default (printf "%s-redis" $root.Release.Name) $r.auth.existingSecret }}
      key: password
- name: REDIS_URL
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "ziggie.redis.host" $root) | quote }}
{{- else if $mode }}
- name: REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ eq $mode "existingSecret" | ternary $root.Values.redis.external.existingSecret (include "ziggie.redis.secretName" $root) }}
      key: {{ eq $mode "existingSecret" | ternary $root.Values.redis.external.existingSecretKey "REDIS_URL" }}
{{- end }}
{{- end }}
{{- if $meta.seed }}
- name: ZIGGIE_SEED
  value: {{ $root.Values.seed | quote }}
{{- end }}
{{- if eq $c "gateway" }}
- name: CORS_ORIGINS
  value: {{ join "," $root.Values.cors.origins | quote }}
{{- end }}
{{- if eq $c "mcp-gateway" }}
{{- $mcp := $root.Values.mcp }}
- name: MCP_SERVERS_FILE
  value: /etc/ziggie/mcp/servers.json
- name: MCP_SSRF_ALLOW
  value: {{ $mcp.ssrfAllow | quote }}
- name: MCP_ALLOWED_ORIGINS
  value: {{ join "," $mcp.allowedOrigins | quote }}
{{- with include "ziggie.mcp.publicUrl" $root }}
- name: MCP_PUBLIC_URL
  value: {{ . | quote }}
{{- end }}
{{- with $mcp.authorizationServers }}
- name: MCP_AUTHORIZATION_SERVERS
  value: {{ join "," . | quote }}
{{- end }}
{{- with $mcp.oauthScopes }}
- name: MCP_OAUTH_SCOPES
  value: {{ join " " . | quote }}
{{- end }}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- if include "ziggie.gpuPoolsOn" $root }}
- name: GPU_POOLS
  value: {{ include "ziggie.gpuPoolsJson" $root | quote }}
{{- end }}
{{- end }}
{{- range $name, $value := $v.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}
