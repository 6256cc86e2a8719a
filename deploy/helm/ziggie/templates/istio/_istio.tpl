{{- define "ziggie.istio.host" -}}
{{- printf "%s.%s.svc.%s" (include "ziggie.componentName" .) .root.Release.Namespace .root.Values.clusterDomain }}
{{- end }}

{{/* The mesh targets: the six services and the GPU pools, as a YAML list of {component, http, grpc, grpcService, pool}. */}}
{{- define "ziggie.istio.targets" -}}
{{- $targets := list }}
{{- range $name, $meta := include "ziggie.components" . | fromYaml }}
{{- $targets = append $targets (dict "component" $name "http" $meta.http "grpc" $meta.grpc "grpcService" $meta.grpcService "pool" false) }}
{{- end }}
{{- range (include "ziggie.gpuPools" . | fromYaml).pools }}
{{- $targets = append $targets (dict "component" (printf "gpu-%s" .name) "http" .port "grpc" 0 "grpcService" "" "pool" true) }}
{{- end }}
{{- toYaml (dict "targets" $targets) }}
{{- end }}
