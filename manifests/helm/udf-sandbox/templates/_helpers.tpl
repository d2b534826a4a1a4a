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

{{- define "udf-sandbox.image" -}}
{{ .Values.operator.image.repository }}:{{ .Values.operator.image.tag }}
{{- end -}}
