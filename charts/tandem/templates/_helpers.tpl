{{/* Name prefix of every object: the release name, or fullnameOverride. */}}
{{- define "tandem.fullname" -}}
{{- default .Release.Name .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "tandem.operatorName" -}}
{{- printf "%s-operator" (include "tandem.fullname" .) -}}
{{- end -}}

{{- define "tandem.rayHeadName" -}}
{{- printf "%s-ray-head" (include "tandem.fullname" .) -}}
{{- end -}}

{{- define "tandem.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tandem.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "tandem.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "tandem.selectorLabels" -}}
app.kubernetes.io/name: tandem
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tandem.labels" -}}
{{ include "tandem.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/part-of: tandem
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "tandem.chart" . }}
{{- end -}}

{{- define "tandem.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Ray address the operator reads and passes to every worker as TANDEM_METRICS_ADDRESS. */}}
{{- define "tandem.metricsAddress" -}}
{{- if .Values.operator.metricsAddress -}}
{{- .Values.operator.metricsAddress -}}
{{- else if .Values.ray.enabled -}}
{{- printf "ray://%s.%s:10001" (include "tandem.rayHeadName" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Rules the operator needs wherever TrainingJobs live (ClusterRole or one Role per namespace). */}}
{{- define "tandem.jobRules" -}}
- apiGroups: [tandem.dev]
  resources: [trainingjobs]
  verbs: [get, list, watch, patch, delete]
- apiGroups: [tandem.dev]
  resources: [trainingjobs/status]
  verbs: [get, patch, update]
# Children carry ownerReferences with blockOwnerDeletion; where the
# OwnerReferencesPermissionEnforcement admission plugin is on, that needs update on finalizers.
- apiGroups: [tandem.dev]
  resources: [trainingjobs/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
# The job's TensorBoard Deployment (spec.tensorboard with a shared claim or a remote logDir).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, create, patch]
# The job's NetworkPolicies (its workers, its TensorBoard): watched to be put back when deleted or
# edited; removed with the job by the garbage collector (ownerReferences), so no delete.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, list, watch, create, patch]
{{- end -}}

{{- define "tandem.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tandem.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
runAsUser: 1000
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}
