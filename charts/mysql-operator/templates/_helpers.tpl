{{- define "mysql-operator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mysql-operator.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "mysql-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "mysql-operator.serviceAccountName" -}}
{{- default (include "mysql-operator.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* kopf watches which CRDs exist to find its resources: read-only. */}}
{{- define "mysql-operator.discoveryRules" -}}
- apiGroups: ["apiextensions.k8s.io"]
  resources: ["customresourcedefinitions"]
  verbs: ["get", "list", "watch"]
{{- end -}}

{{/* The rules the operator needs: exactly the verbs and kinds it uses, nothing more. */}}
{{- define "mysql-operator.rules" -}}
- apiGroups: ["mysql.operator.dev"]
  resources: ["mysqlclusters"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mysql.operator.dev"]
  resources: ["mysqlclusters/status"]
  verbs: ["get", "patch"]
- apiGroups: ["mysql.operator.dev"]
  resources: ["mysqlbackups"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["mysql.operator.dev"]
  resources: ["mysqlbackups/status"]
  verbs: ["get", "patch"]
- apiGroups: ["mysql.operator.dev"]
  resources: ["mysqldatabases", "mysqlusers"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["mysql.operator.dev"]
  resources: ["mysqldatabases/status", "mysqlusers/status"]
  verbs: ["get", "patch"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "create"]
- apiGroups: ["apps"]
  resources: ["statefulsets"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["persistentvolumeclaims"]
  verbs: ["create"]
- apiGroups: [""]
  resources: ["services", "configmaps", "secrets"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["cert-manager.io"]
  resources: ["certificates"]
  verbs: ["get", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list", "watch", "patch", "delete"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}

{{/* Cluster-wide in every mode: a cordoned primary's node turns a drain into a switchover. */}}
{{- define "mysql-operator.nodeRules" -}}
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get"]
{{- end -}}
