{{/* Names, labels and the secret-name defaulting shared by every template. */}}

{{- define "tacgw.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tacgw.fullname" -}}
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

{{- define "tacgw.instanceLabels" -}}
app.kubernetes.io/name: {{ include "tacgw.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The serving pods; the migration Job's pods are component "migrate" and never match. */}}
{{- define "tacgw.selectorLabels" -}}
{{ include "tacgw.instanceLabels" . }}
app.kubernetes.io/component: gateway
{{- end }}

{{- define "tacgw.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tacgw.instanceLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tacgw.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "tacgw.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tacgw.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tacgw.policiesConfigMap" -}}
{{- default (printf "%s-policies" (include "tacgw.fullname" .)) .Values.policies.existingConfigMap }}
{{- end }}

{{/* A referenced Secret's name: the value given, or the release's own name. */}}
{{- define "tacgw.secretName" -}}
{{- default (include "tacgw.fullname" .root) .ref.existingSecret }}
{{- end }}

{{/* The database URL from its Secret; the gateway Deployment and the migration Job share it. */}}
{{- define "tacgw.databaseEnv" -}}
- name: TACGW_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "tacgw.secretName" (dict "root" . "ref" .Values.externalDatabase) }}
      key: {{ .Values.externalDatabase.key }}
{{- end }}

{{- /* Egress to a port: to the given CIDRs, or to any destination when none are given. */}}
{{- define "tacgw.egressTo" -}}
- ports:
    {{- range .ports }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
  {{- with .cidrs }}
  to:
    {{- range . }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  {{- end }}
{{- end }}
