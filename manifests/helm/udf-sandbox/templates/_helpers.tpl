{{/* Labels every object of the chart carries; the same as the plain manifests. */}}
{{- define "udf-sandbox.labels" -}}
app.kubernetes.io/name: {{ .Values.operator.name }}
app.kubernetes.io/part-of: udf-sandbox
app.kubernetes.io/component: operator
{{- end -}}

{{- define "udf-sandbox.selectorLabels" -}}
app.kubernetes.io/name: {{ .Values.operator.name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Images default their tag to the chart's appVersion, so one release runs one build. */}}
{{- define "udf-sandbox.image" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "udf-sandbox.workerImage" -}}
{{ .Values.worker.image.repository }}:{{ .Values.worker.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Helm's ownership metadata, rendered by the chart itself so that the plain manifests, which
carry it too, equal `helm template`; with it `helm install` adopts objects that
`kubectl apply -f manifests/` created. */}}
{{- define "udf-sandbox.managedBy" -}}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "udf-sandbox.release" -}}
meta.helm.sh/release-name: {{ .Release.Name }}
meta.helm.sh/release-namespace: {{ .Release.Namespace }}
{{- end -}}

{{/* Labels of an object (not of a pod template): the common ones and Helm's. */}}
{{- define "udf-sandbox.objectLabels" -}}
{{ include "udf-sandbox.labels" . }}
{{ include "udf-sandbox.managedBy" . }}
{{- end -}}
