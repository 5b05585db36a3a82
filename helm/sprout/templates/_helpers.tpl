{{/* Names, labels and images of the Sprout chart. */}}

{{- define "sprout.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sprout.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "sprout.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels of one component: include "sprout.selectorLabels" (list . "api") */}}
{{- define "sprout.selectorLabels" -}}
{{- $ctx := index . 0 -}}
app.kubernetes.io/name: {{ include "sprout.name" $ctx }}
app.kubernetes.io/instance: {{ $ctx.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* All labels of one component: include "sprout.labels" (list . "api") */}}
{{- define "sprout.labels" -}}
{{- $ctx := index . 0 -}}
helm.sh/chart: {{ include "sprout.chart" $ctx }}
{{ include "sprout.selectorLabels" . }}
app.kubernetes.io/version: {{ $ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $ctx.Release.Service }}
app.kubernetes.io/part-of: sprout
{{- end }}

{{/* A Sprout image: include "sprout.image" (list . .Values.images.api) */}}
{{- define "sprout.image" -}}
{{- $ctx := index . 0 -}}
{{- $image := index . 1 -}}
{{- printf "%s%s:%s" $ctx.Values.imageRegistry $image.repository (default (default $ctx.Chart.AppVersion $ctx.Values.imageTag) $image.tag) }}
{{- end }}

{{/* A third-party image: include "sprout.thirdPartyImage" .Values.postgresql.image */}}
{{- define "sprout.thirdPartyImage" -}}
{{- printf "%s:%s" .repository .tag }}
{{- end }}

{{- define "sprout.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sprout.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sprout.trainerServiceAccountName" -}}
{{- if .Values.training.serviceAccount.create }}
{{- default (printf "%s-trainer" (include "sprout.fullname" .)) .Values.training.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.training.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sprout.settingsName" -}}
{{- printf "%s-settings" (include "sprout.fullname" .) }}
{{- end }}

{{- define "sprout.postgresqlHost" -}}
{{- printf "%s-postgresql" (include "sprout.fullname" .) }}
{{- end }}

{{- define "sprout.minioHost" -}}
{{- printf "%s-minio" (include "sprout.fullname" .) }}
{{- end }}

{{- define "sprout.mlflowHost" -}}
{{- printf "%s-mlflow" (include "sprout.fullname" .) }}
{{- end }}

{{/* host:port of the object store, for SPROUT_S3_ENDPOINT. */}}
{{- define "sprout.s3Endpoint" -}}
{{- if .Values.objectStorage.bundled }}
{{- printf "%s:9000" (include "sprout.minioHost" .) }}
{{- else }}
{{- required "objectStorage.external.endpoint is required when objectStorage.bundled is false" .Values.objectStorage.external.endpoint }}
{{- end }}
{{- end }}

{{- define "sprout.mlflowTrackingUri" -}}
{{- if .Values.mlflow.enabled }}
{{- printf "http://%s:%v" (include "sprout.mlflowHost" .) .Values.mlflow.service.port }}
{{- else }}
{{- required "mlflow.externalTrackingUri is required when mlflow.enabled is false" .Values.mlflow.externalTrackingUri }}
{{- end }}
{{- end }}

{{/* The non-secret settings every Sprout container loads (envFrom). */}}
{{- define "sprout.envFrom" -}}
- configMapRef:
    name: {{ include "sprout.settingsName" . }}
{{- end }}

{{/*
Only the keys of Sprout's Secret that a container uses, as env (secretKeyRef), never the whole Secret:
include "sprout.secretEnv" (list . (list "REQUIRED_KEY" ...) (list "OPTIONAL_KEY" ...))
*/}}
{{- define "sprout.secretEnv" -}}
{{- $ctx := index . 0 -}}
{{- $name := required "secrets.existingSecret is required" $ctx.Values.secrets.existingSecret -}}
{{- range index . 1 }}
- name: {{ . }}
  valueFrom:
    secretKeyRef: {name: {{ $name }}, key: {{ . }}}
{{- end }}
{{- range index . 2 }}
- name: {{ . }}
  valueFrom:
    secretKeyRef: {name: {{ $name }}, key: {{ . }}, optional: true}
{{- end }}
{{- end }}

{{/* What every Sprout process needs from the Secret: its database, its bucket's key, the signing key. */}}
{{- define "sprout.coreSecretKeys" -}}
{{- toJson (list "SPROUT_DATABASE_URL" "SPROUT_S3_ACCESS_KEY" "SPROUT_S3_SECRET_KEY" "SPROUT_SECRET_KEY") }}
{{- end }}

{{/* The webhooks' signing secret, for every container that loads the settings, only when webhooks.url is set. */}}
{{- define "sprout.webhookSecretKeys" -}}
{{- toJson (ternary (list "SPROUT_WEBHOOK_SECRET") (list) (not (empty .Values.webhooks.url))) }}
{{- end }}

{{/* MLflow's login (MLflow's client reads these), for the processes that use the registry. */}}
{{- define "sprout.mlflowClientKeys" -}}
{{- toJson (list "MLFLOW_TRACKING_USERNAME" "MLFLOW_TRACKING_PASSWORD") }}
{{- end }}

{{- define "sprout.redisHost" -}}
{{- printf "%s-redis" (include "sprout.fullname" .) }}
{{- end }}

{{/* The bundled Valkey's password and, built from it by Kubernetes ($(VAR)), the API's SPROUT_RATE_LIMIT_STORAGE. */}}
{{- define "sprout.rateLimitEnv" -}}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef: {name: {{ required "rateLimits.existingSecret is required" .Values.rateLimits.existingSecret }}, key: REDIS_PASSWORD}
- name: SPROUT_RATE_LIMIT_STORAGE
  value: {{ printf "redis://:$(REDIS_PASSWORD)@%s:6379/0" (include "sprout.redisHost" .) | quote }}
{{- end }}

{{/* Pod selectors of the NetworkPolicies' peers: include "sprout.peer" (list . "api") */}}
{{- define "sprout.peer" -}}
podSelector:
  matchLabels:
    {{- include "sprout.selectorLabels" . | nindent 4 }}
{{- end }}

{{/* The training pods the DAGs start (KubernetesPodOperator, label sprout/task), in this namespace. */}}
{{- define "sprout.trainerPeer" -}}
podSelector:
  {{- toYaml .Values.networkPolicy.trainerPodSelector | nindent 2 }}
{{- end }}

{{/* Airflow's pods (the official chart's, tier: airflow), in airflow.namespace when that is another one. */}}
{{- define "sprout.airflowPeer" -}}
podSelector:
  {{- toYaml .Values.networkPolicy.airflowPodSelector | nindent 2 }}
{{- $namespace := .Values.airflow.namespace }}
{{- if .Values.networkPolicy.airflowNamespaceSelector }}
namespaceSelector:
  {{- toYaml .Values.networkPolicy.airflowNamespaceSelector | nindent 2 }}
{{- else if and $namespace (ne $namespace .Release.Namespace) }}
namespaceSelector:
  matchLabels:
    kubernetes.io/metadata.name: {{ $namespace | quote }}
{{- end }}
{{- end }}

{{/* Pod-level scheduling fields of a component's values. */}}
{{- define "sprout.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Writable scratch space for containers with a read-only root filesystem. */}}
{{- define "sprout.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
{{- end }}

{{/*
The API's paths on the Ingress (JSON list): only the routes clients outside the cluster use. Never /metrics
(Prometheus scrapes the pods), /healthz, /readyz (the kubelet's probes) or /events (the UI, in the cluster);
the OpenAPI docs only with ingress.api.docs.
*/}}
{{- define "sprout.apiIngressPaths" -}}
{{- $paths := list "/predict" "/samples" "/auth" "/admin" "/models" "/rollouts" "/v2" }}
{{- if .Values.ingress.api.docs }}
{{- $paths = concat $paths (list "/docs" "/redoc" "/openapi.json") }}
{{- end }}
{{- toJson $paths }}
{{- end }}

{{/*
"true" when an entry of the Ingress's tls covers the host: include "sprout.tlsCovers" (list .Values.ingress.tls HOST).
An entry without hosts covers every host (the controller's default certificate); "*.example.com" covers one label.
*/}}
{{- define "sprout.tlsCovers" -}}
{{- $host := index . 1 }}
{{- range index . 0 }}
{{- $hosts := default (list) .hosts }}
{{- if not $hosts }}true{{ end }}
{{- range $hosts }}
{{- if eq . $host }}true{{ end }}
{{- if and (hasPrefix "*." .) (hasSuffix (trimPrefix "*" .) $host) (eq (len (splitList "." $host)) (len (splitList "." .))) }}true{{ end }}
{{- end }}
{{- end }}
{{- end }}
