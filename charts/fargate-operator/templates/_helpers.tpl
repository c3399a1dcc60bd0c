{{/* Chart name, truncated to 63 characters. */}}
{{- define "fargate-operator.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: release name, plus the chart name unless the release already contains it. */}}
{{- define "fargate-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "fargate-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fargate-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fargate-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "fargate-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "fargate-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fargate-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespace the operator watches: empty for all. */}}
{{- define "fargate-operator.watchNamespace" -}}
{{- if .Values.operator.watchNamespace -}}
{{- .Values.operator.watchNamespace -}}
{{- else if .Values.rbac.namespaced -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{- define "fargate-operator.leaderElect" -}}
{{- $e := toString .Values.operator.leaderElection.enabled -}}
{{- if eq $e "auto" -}}
{{- if gt (int .Values.replicaCount) 1 -}}true{{- else -}}false{{- end -}}
{{- else -}}
{{- $e -}}
{{- end -}}
{{- end -}}
