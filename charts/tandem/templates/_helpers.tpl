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
{{- printf "http://%s.%s:%d" (include "tandem.rayHeadName" .) .Release.Namespace (.Values.ray.gatewayPort | int) -}}
{{- end -}}
{{- end -}}

{{/* The Secret holding the figures gateway's key (templates/ray.yaml). */}}
{{- define "tandem.metricsKeySecret" -}}
{{- printf "%s-metrics-key" (include "tandem.fullname" .) -}}
{{- end -}}

{{/* Rules the operator needs wherever TrainingJobs live (ClusterRole or one Role per namespace). */}}
{{- define "tandem.jobRules" -}}
{{- /* Exactly what the code uses (docs/security.md): kopf lists and watches; children are
created, and a name already taken is read (get) to see whether the job owns it; events are listed
for the Job controller's FailedCreate; the TTL deletes a TrainingJob, a group restart its Job; a
scaled elastic job patches its Job's parallelism and completions. */}}
- apiGroups: [tandem.dev]
  resources: [trainingjobs]
  verbs: [list, watch, delete]
- apiGroups: [tandem.dev]
  resources: [trainingjobs/status]
  verbs: [patch]
# Children carry ownerReferences with blockOwnerDeletion; where the
# OwnerReferencesPermissionEnforcement admission plugin is on, that needs update on finalizers.
- apiGroups: [tandem.dev]
  resources: [trainingjobs/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, get, patch, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [list, watch, create, get]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, list]
{{- if .Values.kueue.enabled }}
# Kueue's verdict on a queued job's Job (docs/queues.md): read, never written.
- apiGroups: [kueue.x-k8s.io]
  resources: [workloads]
  verbs: [list]
{{- end }}
{{- if .Values.ray.enabled }}
# Each metrics-enabled job's token Secret (docs/security.md, "Metrics channel"): create only, never read.
- apiGroups: [""]
  resources: [secrets]
  verbs: [create]
{{- end }}
# The job's TensorBoard Deployment (spec.tensorboard with a shared claim or a remote logDir).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [create, get]
# The job's NetworkPolicies (its workers, its TensorBoard): watched to be put back when deleted or
# edited; removed with the job by the garbage collector (ownerReferences), so no delete.
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [list, watch, create, get, patch]
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

{{- /* The requests the operator-children policies look at: every create and update but events, the
Lease and TrainingJobs (tandem.api.admission.NOT_CHILDREN), by the operator's ServiceAccount. */}}
{{- /* The operator's requests a children policy looks at; called with the operations as a list
(tandem.api.admission: the children policy also matches DELETE, the pods policy does not). */}}
{{- define "tandem.operatorRequests" -}}
resourceRules:
  - apiGroups: ["*"]
    apiVersions: ["*"]
    resources: ["*"]
    operations: [{{ join ", " . }}]
excludeResourceRules:
  - {apiGroups: [""], apiVersions: ["*"], resources: [events], operations: ["*"]}
  - {apiGroups: [events.k8s.io], apiVersions: ["*"], resources: [events], operations: ["*"]}
  - {apiGroups: [coordination.k8s.io], apiVersions: ["*"], resources: [leases], operations: ["*"]}
  - {apiGroups: [tandem.dev], apiVersions: ["*"], resources: [trainingjobs, trainingjobs/status], operations: ["*"]}
{{- end -}}

{{- define "tandem.operatorAccountCondition" -}}
- name: operator-service-account
  expression: {{ printf "request.userInfo.username == 'system:serviceaccount:%s:%s'" .Release.Namespace (include "tandem.serviceAccountName" .) | quote }}
{{- end -}}

{{- /*
The admin policy's settings as CEL literals, the admission policies' `variables` (the rules read
variables.<setting>): lists of strings and booleans, in the order of tandem.api.admin_policy.AdminPolicy
(a unit test compares this rendering with AdminPolicy.variables). values.schema.json limits the
list items to names and label keys, so no quote can reach the CEL.
*/ -}}
{{- define "tandem.adminPolicyVariables" -}}
{{- range $name := list "allowedServiceAccounts" "allowedPriorityClasses" "reservedNodeKeys" }}
{{- $items := list }}
{{- range (index $.Values.adminPolicy $name) }}{{ $items = append $items (squote .) }}{{ end }}
- name: {{ $name }}
  expression: {{ printf "[%s]" (join ", " $items) | quote }}
{{- end }}
{{- range $name := list "allowHostPath" "allowSecretVolumes" "allowPrivileged" "allowRunAsRoot" "allowTolerateAll" }}
- name: {{ $name }}
  expression: {{ index $.Values.adminPolicy $name | toString | quote }}
{{- end }}
{{- end -}}

{{- /*
Ray's token authentication, for the Ray head's containers only (the head and the gateway beside
it), never the operator or a job; called with the token file's path. RAY_AUTH_TOKEN_PATH: the
file Ray's token loader reads (ray._private.authentication).
*/ -}}
{{- define "tandem.rayAuthEnv" -}}
- name: RAY_AUTH_MODE
  value: token
- name: RAY_AUTH_TOKEN_PATH
  value: {{ . }}
{{- end -}}
