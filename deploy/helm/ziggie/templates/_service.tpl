{{/*
The objects of one of the six services, each called as
  include "ziggie.<kind>" (dict "root" $ "component" "<service>")
from templates/<service>/<kind>.yaml.
*/}}

{{- define "ziggie.values" -}}
{{- toYaml (index .root.Values (include "ziggie.component" . | fromYaml).key) }}
{{- end }}

{{- define "ziggie.deployment" -}}
{{- $root := .root }}
{{- $c := .component }}
{{- $meta := include "ziggie.component" . | fromYaml }}
{{- $v := include "ziggie.values" . | fromYaml }}
{{- $mcp := eq $c "mcp-gateway" }}
{{- $automount := and $mcp (eq (include "ziggie.gpuPoolsOn" $root) "true") }}
{{- include "ziggie.auth.validate" $root }}
apiVersion: apps/v1
kind: Deployment
metadata:
  {{- include "ziggie.metadata" . | nindent 2 }}
spec:
  {{- if not $v.autoscaling.enabled }}
  replicas: {{ $v.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  selector:
    matchLabels:
      {{- include "ziggie.selectorLabels" . | nindent 6 }}
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 25%
      maxUnavailable: 0
  template:
    metadata:
      labels:
        {{- include "ziggie.labels" . | nindent 8 }}
        service.istio.io/canonical-name: {{ $c }}
        service.istio.io/canonical-revision: {{ include "ziggie.version" $root | replace "." "-" | trunc 63 | quote }}
        {{- with $v.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        {{- if $mcp }}
        checksum/mcp-servers: {{ include (print $root.Template.BasePath "/mcp-gateway/configmap.yaml") $root | sha256sum }}
        {{- end }}
        {{- if $root.Values.istio.enabled }}
        # Start the app only once its sidecar is ready, so the first gRPC and NATS calls succeed.
        proxy.istio.io/config: '{"holdApplicationUntilProxyStarts": true}'
        {{- end }}
        {{- with $v.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "ziggie.serviceAccountName" . }}
      automountServiceAccountToken: {{ $automount }}
      enableServiceLinks: false
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      securityContext:
        {{- include "ziggie.podSecurityContext" $root | nindent 8 }}
      terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
      containers:
        - name: {{ $c }}
          image: {{ include "ziggie.image" (dict "root" $root "service" $c) }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          securityContext:
            {{- include "ziggie.containerSecurityContext" $root | nindent 12 }}
          ports:
            - name: http-api
              containerPort: {{ $meta.http }}
              protocol: TCP
            {{- if $meta.grpc }}
            - name: grpc-api
              containerPort: {{ $meta.grpc }}
              protocol: TCP
            {{- end }}
          env:
            - name: SHUTDOWN_GRACE_MS
              value: {{ mul (sub $v.terminationGracePeriodSeconds 5) 1000 | quote }}
            {{- include "ziggie.env" . | trim | nindent 12 }}
          {{- if and $mcp $root.Values.mcp.credentialsSecret }}
          envFrom:
            - secretRef:
                name: {{ $root.Values.mcp.credentialsSecret }}
          {{- end }}
          startupProbe:
            httpGet:
              path: /healthz
              port: http-api
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 36
          livenessProbe:
            httpGet:
              path: /healthz
              port: http-api
            periodSeconds: 10
            timeoutSeconds: 3
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /readyz
              port: http-api
            periodSeconds: 5
            timeoutSeconds: 3
            failureThreshold: 3
          resources:
            {{- toYaml $v.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: data
              mountPath: /var/lib/ziggie
            {{- if include "ziggie.auth.usesPublicKey" $root }}
            - name: jwt
              mountPath: /etc/ziggie/jwt
              readOnly: true
            {{- end }}
            {{- if $mcp }}
            - name: mcp-servers
              mountPath: /etc/ziggie/mcp
              readOnly: true
            {{- end }}
      volumes:
        # The root filesystem is read-only: scratch space and DATA_DIR live in emptyDirs.
        - name: tmp
          emptyDir:
            sizeLimit: {{ $v.tmpSizeLimit }}
        - name: data
          emptyDir:
            sizeLimit: {{ $v.dataSizeLimit }}
        {{- if include "ziggie.auth.usesPublicKey" $root }}
        - name: jwt
          secret:
            secretName: {{ include "ziggie.auth.secretName" $root }}
            items:
              - key: public.pem
                path: public.pem
        {{- end }}
        {{- if $mcp }}
        - name: mcp-servers
          configMap:
            name: {{ include "ziggie.componentName" . }}-servers
        {{- end }}
      {{- with $v.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $v.topologySpreadConstraints }}
      topologySpreadConstraints:
        {{- range . }}
        - {{ toYaml (mustMergeOverwrite (dict "labelSelector" (dict "matchLabels" (include "ziggie.selectorLabels" $ | fromYaml))) .) | nindent 10 | trim }}
        {{- end }}
      {{- end }}
{{- end }}

{{- define "ziggie.service" -}}
{{- $root := .root }}
{{- $meta := include "ziggie.component" . | fromYaml }}
{{- $v := include "ziggie.values" . | fromYaml }}
{{- $kongFacing := and $root.Values.kong.enabled (has .component (list "gateway" "mcp-gateway")) }}
apiVersion: v1
kind: Service
metadata:
  {{- include "ziggie.metadata" . | nindent 2 }}
  {{- if or $kongFacing $v.serviceAnnotations }}
  annotations:
    {{- if $kongFacing }}
    # Long enough for SSE task events and MCP streams; the services end idle streams themselves.
    konghq.com/read-timeout: {{ int64 $root.Values.kong.readTimeoutMs | quote }}
    {{- if $root.Values.istio.enabled }}
    # Kong sends to the Service, not to pod IPs, so its sidecar applies the mesh routing.
    ingress.kubernetes.io/service-upstream: "true"
    {{- end }}
    {{- end }}
    {{- with $v.serviceAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- end }}
spec:
  type: ClusterIP
  selector:
    {{- include "ziggie.selectorLabels" . | nindent 4 }}
  ports:
    - name: http-api
      port: {{ $meta.http }}
      targetPort: http-api
      protocol: TCP
      appProtocol: http
    {{- if $meta.grpc }}
    - name: grpc-api
      port: {{ $meta.grpc }}
      targetPort: grpc-api
      protocol: TCP
      appProtocol: grpc
    {{- end }}
{{- end }}

{{- define "ziggie.serviceAccount" -}}
{{- $automount := and (eq .component "mcp-gateway") (eq (include "ziggie.gpuPoolsOn" .root) "true") }}
apiVersion: v1
kind: ServiceAccount
metadata:
  {{- include "ziggie.metadata" . | nindent 2 }}
automountServiceAccountToken: {{ $automount }}
{{- end }}

{{- define "ziggie.podDisruptionBudget" -}}
{{- $v := include "ziggie.values" . | fromYaml }}
{{- if $v.podDisruptionBudget.enabled }}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  {{- include "ziggie.metadata" . | nindent 2 }}
spec:
  maxUnavailable: {{ $v.podDisruptionBudget.maxUnavailable }}
  selector:
    matchLabels:
      {{- include "ziggie.selectorLabels" . | nindent 6 }}
{{- end }}
{{- end }}

{{- define "ziggie.horizontalPodAutoscaler" -}}
{{- $v := include "ziggie.values" . | fromYaml }}
{{- if $v.autoscaling.enabled }}
{{- if gt (int $v.autoscaling.minReplicas) (int $v.autoscaling.maxReplicas) }}
{{- fail (printf "%s.autoscaling: minReplicas is greater than maxReplicas" (include "ziggie.component" . | fromYaml).key) }}
{{- end }}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  {{- include "ziggie.metadata" . | nindent 2 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "ziggie.componentName" . }}
  minReplicas: {{ $v.autoscaling.minReplicas }}
  maxReplicas: {{ $v.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ $v.autoscaling.targetCPUUtilizationPercentage }}
  behavior:
    scaleDown:
      stabilizationWindowSeconds: 300
{{- end }}
{{- end }}

{{- define "ziggie.serviceMonitor" -}}
{{- $root := .root }}
{{- $sm := $root.Values.metrics.serviceMonitor }}
{{- if $sm.enabled }}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "ziggie.componentName" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "ziggie.labels" . | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: app.kubernetes.io/component
  selector:
    matchLabels:
      {{- include "ziggie.selectorLabels" . | nindent 6 }}
  namespaceSelector:
    matchNames:
      - {{ $root.Release.Namespace }}
  endpoints:
    - port: http-api
      path: /metrics
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
      # The services label every metric service="<service>" themselves; the dashboards and alert
      # rules select by it. Keep theirs, and give the target (and so `up`) the same value rather
      # than the Kubernetes Service name.
      honorLabels: true
      relabelings:
        - sourceLabels: [__meta_kubernetes_service_label_app_kubernetes_io_component]
          targetLabel: service
          action: replace
      {{- if $root.Values.istio.enabled }}
      # STRICT mTLS: Prometheus scrapes with the workload certificates its sidecar writes to
      # istioCertsDir (the Istio documentation's Prometheus setup, see deploy/README.md).
      scheme: https
      tlsConfig:
        caFile: {{ $sm.istioCertsDir }}/root-cert.pem
        certFile: {{ $sm.istioCertsDir }}/cert-chain.pem
        keyFile: {{ $sm.istioCertsDir }}/key.pem
        insecureSkipVerify: true
      {{- end }}
{{- end }}
{{- end }}
