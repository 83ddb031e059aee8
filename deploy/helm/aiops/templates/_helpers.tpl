{{/* Names and labels shared by every object of the chart. */}}

{{- define "aiops.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "aiops.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "aiops.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "aiops.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "aiops.selectorLabels" -}}
app.kubernetes.io/name: {{ include "aiops.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "aiops.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "aiops.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: aiops
{{- end }}

{{- define "aiops.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "aiops.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The name the ClusterRole grants for a resource (its resourceNames), "" when it grants any name.
The kill-switch ConfigMap and the Lease are named after it, so the config and RBAC always agree.
Call with (dict "root" $ "resource" "configmaps").
*/}}
{{- define "aiops.grantedName" -}}
{{- $resource := .resource }}
{{- range (.root.Files.Get "files/role.yaml" | fromYaml).rules }}
{{- if and (has $resource .resources) .resourceNames }}{{ first .resourceNames }}{{ end }}
{{- end }}
{{- end }}

{{- define "aiops.controlName" -}}
{{- include "aiops.grantedName" (dict "root" . "resource" "configmaps") | default (printf "%s-control" (include "aiops.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{- define "aiops.leaseName" -}}
{{- include "aiops.grantedName" (dict "root" . "resource" "leases") | default (printf "%s-leader" (include "aiops.fullname" .) | trunc 63 | trimSuffix "-") }}
{{- end }}

{{/*
The config the daemon reads: the user's values with the settings the chart owns laid over them,
so the wiring (namespace, port, state path, kill switch, lease) cannot drift from the manifests.
*/}}
{{- define "aiops.config" -}}
{{- $owned := dict
  "kubernetes" (dict "in_cluster" true "namespace" .Release.Namespace "leader_election" (dict "lease_name" (include "aiops.leaseName" .)))
  "server" (dict "port" (int .Values.port) "webhook_port" (int .Values.webhookPort))
  "state" (dict "path" "/var/lib/aiops/state.sqlite")
  "safety" (dict "kill_switch" (dict "configmap_namespace" .Release.Namespace "configmap_name" (include "aiops.controlName" .) "configmap_key" "kill_switch"))
-}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $owned) }}
{{- end }}
