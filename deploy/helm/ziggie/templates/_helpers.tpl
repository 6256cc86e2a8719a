{{/*
Names and labels. Helpers that describe one component take a dict: root (the chart's context)
and component (a name from ziggie.components, or "gpu-<pool>", "tests").
*/}}

{{- define "ziggie.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ziggie.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "ziggie.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ziggie.version" -}}
{{- .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* <fullname>-<component>: the name of every object of a component. */}}
{{- define "ziggie.componentName" -}}
{{- printf "%s-%s" (include "ziggie.fullname" .root) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ziggie.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ziggie.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "ziggie.labels" -}}
helm.sh/chart: {{ include "ziggie.chart" .root }}
{{ include "ziggie.selectorLabels" . }}
app.kubernetes.io/version: {{ include "ziggie.version" .root | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: ziggie
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Standard metadata of a namespaced object of a component: name, namespace, labels. */}}
{{- define "ziggie.metadata" -}}
name: {{ include "ziggie.componentName" . }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "ziggie.labels" . | nindent 2 }}
{{- end }}

{{/*
The six services: ports (libs/platform DefaultPorts), the gRPC service each serves
(proto/ziggie/v1, package ziggie.v1), the peers each calls over gRPC (PeerClients.get in
each service's source), and which use Postgres (services with migrations) and Redis (shared limiter
counters). Every policy in the chart (NetworkPolicy, AuthorizationPolicy) is derived from
`calls`, so this is the one place the call graph of DESIGN §2 is written down.
*/}}
{{- define "ziggie.components" -}}
gateway:
  key: gateway
  http: 4000
  grpc: 0
  grpcService: ""
  calls: [orchestrator, workspace-coord, agent-registry, mcp-gateway]
  database: true
  redis: true
  seed: false
orchestrator:
  key: orchestrator
  http: 4010
  grpc: 50051
  grpcService: Orchestrator
  calls: [workspace-coord, agent-registry]
  database: true
  redis: false
  seed: false
agent-registry:
  key: agentRegistry
  http: 4020
  grpc: 50052
  grpcService: AgentRegistry
  calls: []
  database: true
  redis: false
  seed: true
workspace-coord:
  key: workspaceCoord
  http: 4030
  grpc: 50053
  grpcService: WorkspaceCoord
  calls: [orchestrator]
  database: true
  redis: false
  seed: true
agent-runtime:
  key: agentRuntime
  http: 4040
  grpc: 0
  grpcService: ""
  calls: [mcp-gateway, agent-registry, orchestrator]
  database: false
  redis: false
  seed: false
mcp-gateway:
  key: mcpGateway
  http: 4100
  grpc: 50054
  grpcService: McpGateway
  calls: []
  database: false
  redis: true
  seed: false
{{- end }}

{{/* The table entry of .component. */}}
{{- define "ziggie.component" -}}
{{- toYaml (index (include "ziggie.components" .root | fromYaml) .component) }}
{{- end }}

{{/* The names of the services that call .component over gRPC, as a YAML list. */}}
{{- define "ziggie.callers" -}}
{{- $callers := list }}
{{- range $name, $meta := include "ziggie.components" .root | fromYaml }}
{{- if has $.component $meta.calls }}
{{- $callers = append $callers $name }}
{{- end }}
{{- end }}
{{- toYaml $callers }}
{{- end }}

{{/* <fullname>-<component>.<namespace>.svc */}}
{{- define "ziggie.serviceHost" -}}
{{- printf "%s.%s.svc" (include "ziggie.componentName" .) .root.Release.Namespace }}
{{- end }}

{{- define "ziggie.image" -}}
{{- $image := .root.Values.image }}
{{- printf "%s/ziggie-%s:%s" $image.repository .service (include "ziggie.version" .root) }}
{{- end }}

{{- define "ziggie.serviceAccountName" -}}
{{- include "ziggie.componentName" . }}
{{- end }}

{{/* Istio identity of a component's ServiceAccount. */}}
{{- define "ziggie.principal" -}}
{{- printf "%s/ns/%s/sa/%s" .root.Values.istio.trustDomain .root.Release.Namespace (include "ziggie.serviceAccountName" .) }}
{{- end }}

{{/* True (non-empty) when mcp-gateway talks to the Kubernetes API: GPU pools on. */}}
{{- define "ziggie.gpuPoolsOn" -}}
{{- if and .Values.gpu.enabled (gt (len .Values.gpu.pools) 0) }}true{{ end }}
{{- end }}

{{/*
GPU pools with gpu.poolDefaults filled in, as a YAML list. Templates range over this, never over
gpu.pools directly, so every field exists (helm lint --strict refuses missing keys).
*/}}
{{- define "ziggie.gpuPools" -}}
{{- $pools := list }}
{{- if .Values.gpu.enabled }}
{{- range .Values.gpu.pools }}
{{- $pool := mustMergeOverwrite (deepCopy $.Values.gpu.poolDefaults) (deepCopy .) }}
{{- if and (eq $pool.autoscaling "hpa") (lt (int $pool.minReplicas) 1) }}
{{- fail (printf "gpu.pools[%s]: autoscaling hpa needs minReplicas >= 1 (only KEDA scales to zero)" $pool.name) }}
{{- end }}
{{- if gt (int $pool.minReplicas) (int $pool.maxReplicas) }}
{{- fail (printf "gpu.pools[%s]: minReplicas is greater than maxReplicas" $pool.name) }}
{{- end }}
{{- $pools = append $pools $pool }}
{{- end }}
{{- end }}
{{- toYaml (dict "pools" $pools) }}
{{- end }}

{{/*
GPU_POOLS for mcp-gateway: how it finds, reads and scales each pool. Keys: name, mode
("keda": the ScaledObject owns replicas and mcp-gateway patches its bounds; "deployment": an HPA
owns replicas), namespace, deployment, scaledObject (keda only), minReplicas, maxReplicas,
endpoint.
*/}}
{{- define "ziggie.gpuPoolsJson" -}}
{{- $out := list }}
{{- range (include "ziggie.gpuPools" . | fromYaml).pools }}
{{- $ctx := dict "root" $ "component" (printf "gpu-%s" .name) }}
{{- $name := include "ziggie.componentName" $ctx }}
{{- $entry := dict "name" .name "mode" (ternary "keda" "deployment" (eq .autoscaling "keda")) "namespace" $.Release.Namespace "deployment" $name "minReplicas" (int .minReplicas) "maxReplicas" (int .maxReplicas) "endpoint" (printf "http://%s:%d" (include "ziggie.serviceHost" $ctx) (int .port)) }}
{{- if eq .autoscaling "keda" }}
{{- $_ := set $entry "scaledObject" $name }}
{{- end }}
{{- $out = append $out $entry }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Pod and container security contexts shared by every workload of the chart. */}}
{{- define "ziggie.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{- define "ziggie.containerSecurityContext" -}}
{{- toYaml .Values.securityContext }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------- */}}
{{/* Dependencies */}}

{{- define "ziggie.natsUrl" -}}
{{- if .Values.nats.enabled }}
{{- printf "nats://%s-nats.%s.svc:4222" .Release.Name .Release.Namespace }}
{{- else if .Values.nats.external.url }}
{{- .Values.nats.external.url }}
{{- else }}
{{- fail "nats: set nats.enabled=true (bundled) or nats.external.url" }}
{{- end }}
{{- end }}

{{/*
Postgres: bundled (postgresql.enabled), an existing Secret with DATABASE_URL, or a URL the
chart puts into a Secret. Exactly one is needed: every stateful service requires DATABASE_URL
(ADR 0007), in a cluster as in the local stack.
*/}}
{{- define "ziggie.database.mode" -}}
{{- $pg := .Values.postgresql }}
{{- if $pg.enabled }}bundled
{{- else if $pg.external.existingSecret }}existingSecret
{{- else if $pg.external.url }}url
{{- else }}
{{- fail "postgresql: set postgresql.enabled=true (bundled), postgresql.external.existingSecret or postgresql.external.url" }}
{{- end }}
{{- end }}

{{- define "ziggie.database.secretName" -}}
{{- printf "%s-database" (include "ziggie.fullname" .) }}
{{- end }}

{{- define "ziggie.redis.mode" -}}
{{- $r := .Values.redis }}
{{- if $r.enabled }}bundled
{{- else if $r.external.existingSecret }}existingSecret
{{- else if $r.external.url }}url
{{- end }}
{{- end }}

{{- define "ziggie.redis.secretName" -}}
{{- printf "%s-redis-url" (include "ziggie.fullname" .) }}
{{- end }}

{{/* The bundled Redis Service, for services and Kong's rate-limiting plugin. */}}
{{- define "ziggie.redis.host" -}}
{{- printf "%s-redis.%s.svc" .Release.Name .Release.Namespace }}
{{- end }}

{{/* ---------------------------------------------------------------------------------------- */}}
{{/* JWT */}}

{{- define "ziggie.auth.secretName" -}}
{{- default (printf "%s-auth" (include "ziggie.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{- define "ziggie.auth.usesHmac" -}}
{{- range .Values.auth.algorithms }}{{ if hasPrefix "HS" . }}true{{ end }}{{ end }}
{{- end }}

{{- define "ziggie.auth.usesPublicKey" -}}
{{- if or .Values.auth.publicKey (and .Values.auth.existingSecret (not .Values.auth.jwksUrl) (not (include "ziggie.auth.usesHmac" .))) }}true{{ end }}
{{- end }}

{{/*
The HMAC secret: auth.jwtSecret, else the one an earlier release generated (kept across
upgrades), else a new random one. Cached in the values of this render, so the services' Secret
and Kong's JWT credential get the same value.
*/}}
{{- define "ziggie.auth.hmacSecret" -}}
{{- if .Values.auth.jwtSecret }}
{{- .Values.auth.jwtSecret }}
{{- else }}
{{- $cache := .Values.auth }}
{{- if not (hasKey $cache "__generated") }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (printf "%s-auth" (include "ziggie.fullname" .)) }}
{{- $value := randAlphaNum 48 }}
{{- if and $existing (index ($existing.data | default dict) "jwt-secret") }}
{{- $value = index $existing.data "jwt-secret" | b64dec }}
{{- end }}
{{- $_ := set $cache "__generated" $value }}
{{- end }}
{{- index $cache "__generated" }}
{{- end }}
{{- end }}

{{- define "ziggie.auth.validate" -}}
{{- $a := .Values.auth }}
{{- if and (not (include "ziggie.auth.usesHmac" .)) (not $a.publicKey) (not $a.jwksUrl) (not $a.existingSecret) }}
{{- fail "auth: with only asymmetric algorithms set auth.publicKey, auth.jwksUrl or auth.existingSecret (key public.pem)" }}
{{- end }}
{{- if and $a.publicKey $a.jwksUrl }}
{{- fail "auth: give auth.publicKey or auth.jwksUrl, not both" }}
{{- end }}
{{- end }}

{{/*
The paths of mcp-gateway's OAuth 2.0 protected resource metadata (RFC 9728): the path-specific
one of /mcp and the bare one. Public: MCP clients read them before they have a token.
*/}}
{{- define "ziggie.mcp.metadataPaths" -}}
{{- toYaml (list "/.well-known/oauth-protected-resource/mcp" "/.well-known/oauth-protected-resource") }}
{{- end }}

{{/*
MCP_PUBLIC_URL of mcp-gateway: mcp.publicUrl, else /mcp on the Kong host (https with kong.tls),
else empty (mcp-gateway then names the Host of each request).
*/}}
{{- define "ziggie.mcp.publicUrl" -}}
{{- if .Values.mcp.publicUrl }}
{{- .Values.mcp.publicUrl }}
{{- else if and .Values.kong.enabled .Values.kong.host }}
{{- printf "%s://%s/mcp" (ternary "https" "http" .Values.kong.tls.enabled) .Values.kong.host }}
{{- end }}
{{- end }}
