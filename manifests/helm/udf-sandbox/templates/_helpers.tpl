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
