{{/*
NetworkPolicy of a service (dict root, component): ingress only from the services that call it
(ziggie.components), from Kong to gateway and mcp-gateway, from Prometheus and the helm test Pod
to the HTTP port; egress only to DNS, NATS, Postgres, Redis, the peers it calls, the OTLP
collector, istiod, and for mcp-gateway its upstreams, GPU pools and the Kubernetes API.
*/}}

{{- define "ziggie.np.rule" -}}
{{- $rule := dict "ports" (list) }}
{{- range .ports }}
{{- $rule = set $rule "ports" (append $rule.ports (dict "port" (int .) "protocol" "TCP")) }}
{{- end }}
{{- if .peers }}
{{- $_ := set $rule .direction .peers }}
{{- end }}
{{- if not $rule.ports }}
{{- $_ := unset $rule "ports" }}
{{- end }}
{{- toYaml $rule }}
{{- end }}

{{/* Port of the OTLP endpoint URL (4318 for the default OTLP/HTTP collector, 443/80 without one). */}}
{{- define "ziggie.otlpPort" -}}
{{- $u := urlParse . }}
{{- $port := regexFind ":[0-9]+$" $u.host | trimPrefix ":" }}
{{- if $port }}{{ $port }}{{ else if eq $u.scheme "https" }}443{{ else }}80{{ end }}
{{- end }}

{{- define "ziggie.networkPolicy" -}}
{{- $root := .root }}
{{- $c := .component }}
{{- $np := $root.Values.networkPolicy }}
{{- if $np.enabled }}
{{- $meta := include "ziggie.component" . | fromYaml }}
{{- $ingress := list }}
{{- range $caller := include "ziggie.callers" . | fromYamlArray }}
{{- $from := list (dict "podSelector" (dict "matchLabels" (include "ziggie.selectorLabels" (dict "root" $root "component" $caller) | fromYaml))) }}
{{- $ingress = append $ingress (include "ziggie.np.rule" (dict "direction" "from" "peers" $from "ports" (list $meta.grpc)) | fromYaml) }}
{{- end }}
{{- if and $root.Values.kong.enabled (has $c (list "gateway" "mcp-gateway")) }}
{{- $ingress = append $ingress (include "ziggie.np.rule" (dict "direction" "from" "peers" $np.kong.from "ports" (list $meta.http)) | fromYaml) }}
{{- end }}
{{- if $root.Values.metrics.serviceMonitor.enabled }}
{{- $ingress = append $ingress (include "ziggie.np.rule" (dict "direction" "from" "peers" $np.prometheus.from "ports" (list $meta.http)) | fromYaml) }}
{{- end }}
{{- if $root.Values.tests.enabled }}
{{- $from := list (dict "podSelector" (dict "matchLabels" (include "ziggie.selectorLabels" (dict "root" $root "component" "tests") | fromYaml))) }}
{{- $ingress = append $ingress (include "ziggie.np.rule" (dict "direction" "from" "peers" $from "ports" (list $meta.http)) | fromYaml) }}
{{- end }}

{{- $egress := list }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.dns.to "ports" list) | fromYaml) }}
{{- $dns := index $egress 0 }}
{{- $_ := set $dns "ports" (list (dict "port" 53 "protocol" "UDP") (dict "port" 53 "protocol" "TCP")) }}
{{- if $root.Values.nats.enabled }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" (list (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "nats" "app.kubernetes.io/instance" $root.Release.Name)))) "ports" (list 4222)) | fromYaml) }}
{{- else }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.external.nats "ports" (list 4222)) | fromYaml) }}
{{- end }}
{{- if $meta.database }}
{{- if $root.Values.postgresql.enabled }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" (list (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "postgresql" "app.kubernetes.io/instance" $root.Release.Name)))) "ports" (list 5432)) | fromYaml) }}
{{- else }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.external.postgresql "ports" (list 5432)) | fromYaml) }}
{{- end }}
{{- end }}
{{- if and $meta.redis (include "ziggie.redis.mode" $root) }}
{{- if $root.Values.redis.enabled }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" (list (dict "podSelector" (dict "matchLabels" (dict "app.kubernetes.io/name" "redis" "app.kubernetes.io/instance" $root.Release.Name)))) "ports" (list 6379)) | fromYaml) }}
{{- else }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.external.redis "ports" (list 6379)) | fromYaml) }}
{{- end }}
{{- end }}
{{- range $peer := $meta.calls }}
{{- $peerMeta := include "ziggie.component" (dict "root" $root "component" $peer) | fromYaml }}
{{- $to := list (dict "podSelector" (dict "matchLabels" (include "ziggie.selectorLabels" (dict "root" $root "component" $peer) | fromYaml))) }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $to "ports" (list $peerMeta.grpc)) | fromYaml) }}
{{- end }}
{{- with $root.Values.tracing.otlpEndpoint }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.otlpCollector.to "ports" (list (include "ziggie.otlpPort" .))) | fromYaml) }}
{{- end }}
{{- if $root.Values.istio.enabled }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.istiod.to "ports" (list 15012)) | fromYaml) }}
{{- end }}
{{- if eq $c "mcp-gateway" }}
{{- range (include "ziggie.gpuPools" $root | fromYaml).pools }}
{{- $to := list (dict "podSelector" (dict "matchLabels" (include "ziggie.selectorLabels" (dict "root" $root "component" (printf "gpu-%s" .name)) | fromYaml))) }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $to "ports" (list .port)) | fromYaml) }}
{{- end }}
{{- if include "ziggie.gpuPoolsOn" $root }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.kubeApiServer.to "ports" $np.kubeApiServer.ports) | fromYaml) }}
{{- end }}
{{- if $np.mcpUpstreams.enabled }}
{{- $egress = append $egress (include "ziggie.np.rule" (dict "direction" "to" "peers" $np.mcpUpstreams.to "ports" $np.mcpUpstreams.ports) | fromYaml) }}
{{- end }}
{{- end }}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  {{- include "ziggie.metadata" . | nindent 2 }}
spec:
  podSelector:
    matchLabels:
      {{- include "ziggie.selectorLabels" . | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- toYaml $ingress | nindent 4 }}
  egress:
    {{- toYaml $egress | nindent 4 }}
{{- end }}
{{- end }}
