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

{{/* The environment every Sprout container loads: the settings ConfigMap and the secrets. */}}
{{- define "sprout.envFrom" -}}
- configMapRef:
    name: {{ include "sprout.settingsName" . }}
- secretRef:
    name: {{ required "secrets.existingSecret is required" .Values.secrets.existingSecret }}
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
