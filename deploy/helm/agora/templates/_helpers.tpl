{{/* The release's name prefix: "agora" for a release called agora, else <release>-agora. */}}
{{- define "agora.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "agora.labels" -}}
app.kubernetes.io/name: agora
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: agora
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "auth"). */}}
{{- define "agora.selector" -}}
app.kubernetes.io/name: agora
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "agora.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/*
What the binary is, not what an operator chooses: each service's ports (the binary's
defaults), whether it keeps a store, and who calls it (the gateway over HTTP; services over
gRPC and auth's JWKS over HTTP).
*/}}
{{- define "agora.platform" -}}
auth:
  httpPort: 8081
  grpcPort: 9081
  store: true
  callers: [gateway, tickets, analytics, inventory-sync, code-exec, realtime, ai]
tickets:
  httpPort: 8082
  grpcPort: 9082
  store: true
  callers: [gateway, analytics, realtime, ai]
analytics:
  httpPort: 8083
  grpcPort: 9083
  store: true
  callers: [gateway, ai]
inventory-sync:
  httpPort: 8084
  grpcPort: 9084
  store: true
  callers: [gateway]
code-exec:
  httpPort: 8085
  grpcPort: 9085
  store: true
  callers: [gateway]
  # Runs untrusted programs in a sandbox it builds itself (namespaces, mounts, cgroups, a uid
  # per slot): its container is privileged and root; see values.yaml services.code-exec.
  sandbox: true
realtime:
  httpPort: 8086
  grpcPort: 9086
  store: true
  callers: [gateway]
ai:
  httpPort: 8087
  grpcPort: 9087
  store: true
  callers: [gateway]
gateway:
  httpPort: 8080
  store: false
  callers: []
{{- end -}}

{{/* The non-secret configuration every process shares (the ConfigMap's data). */}}
{{- define "agora.config" -}}
{{- $name := include "agora.fullname" . -}}
AGORA_MODE: distributed
AGORA_LOG_LEVEL: {{ .Values.logLevel | quote }}
AGORA_LOG_FORMAT: {{ .Values.logFormat | quote }}
AGORA_KAFKA__BROKERS: {{ .Values.kafka.brokers | quote }}
AGORA_KAFKA__PARTITIONS: {{ .Values.kafka.partitions | quote }}
AGORA_KAFKA__REPLICATION: {{ .Values.kafka.replication | quote }}
AGORA_AUTH_PEER__URL: "http://{{ $name }}-auth:8081"
AGORA_AUTH_PEER__GRPC: "{{ $name }}-auth:9081"
AGORA_ANALYTICS__TICKETS_GRPC: "{{ $name }}-tickets:9082"
AGORA_REALTIME__TICKETS_GRPC: "{{ $name }}-tickets:9082"
AGORA_AI__TICKETS_GRPC: "{{ $name }}-tickets:9082"
AGORA_AI__ANALYTICS_GRPC: "{{ $name }}-analytics:9083"
# Replicas share channels' history, presence and publications through Redis.
AGORA_REALTIME__ENGINE: redis
AGORA_GATEWAY__SERVICES__AUTH__URL: "http://{{ $name }}-auth:8081"
AGORA_GATEWAY__SERVICES__TICKETS__URL: "http://{{ $name }}-tickets:8082"
AGORA_GATEWAY__SERVICES__ANALYTICS__URL: "http://{{ $name }}-analytics:8083"
AGORA_GATEWAY__SERVICES__INVENTORY_SYNC__URL: "http://{{ $name }}-inventory-sync:8084"
AGORA_GATEWAY__SERVICES__CODE_EXEC__URL: "http://{{ $name }}-code-exec:8085"
AGORA_GATEWAY__SERVICES__REALTIME__URL: "http://{{ $name }}-realtime:8086"
AGORA_GATEWAY__SERVICES__AI__URL: "http://{{ $name }}-ai:8087"
AGORA_AUTH__TRUSTED_PROXIES: {{ printf "[%s]" (join ", " .Values.trustedProxies) | quote }}
AGORA_GATEWAY__TRUSTED_PROXIES: {{ printf "[%s]" (join ", " .Values.trustedProxies) | quote }}
{{- with .Values.otlpEndpoint }}
OTEL_EXPORTER_OTLP_ENDPOINT: {{ . | quote }}
{{- end }}
{{- range $key, $value := .Values.extraEnv }}
{{ $key }}: {{ $value | quote }}
{{- end }}
{{- end -}}

{{/* A service's configuration section in variable names: inventory-sync -> INVENTORY_SYNC. */}}
{{- define "agora.envSection" -}}
{{- . | replace "-" "_" | upper -}}
{{- end -}}

{{/* A variable from the operator's Secret: (dict "root" $ "env" NAME "key" KEY). */}}
{{- define "agora.secretEnv" -}}
- name: {{ .env }}
  valueFrom:
    secretKeyRef:
      name: {{ .root.Values.secret.name }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}
