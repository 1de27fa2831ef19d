{{/* The prefix of every object name: `gpuplace` (as in manifests/) unless fullnameOverride. */}}
{{- define "gpuplace.name" -}}
{{- default "gpuplace" .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- end -}}

{{- define "gpuplace.image" -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}

{{- define "gpuplace.secretName" -}}
{{- default (printf "%s-webhook-tls" (include "gpuplace.name" .)) .Values.certs.secretName -}}
{{- end -}}

{{/* Labels on every object: part-of (as manifests/), Helm's own, and extraLabels. */}}
{{- define "gpuplace.labels" -}}
app.kubernetes.io/part-of: gpuplace
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- with .Values.extraLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Labels of an object with a component name ($ is the root context, name the component). */}}
{{- define "gpuplace.componentLabels" -}}
app.kubernetes.io/name: {{ .name }}
{{ include "gpuplace.labels" .root }}
{{- end -}}

{{/* The restricted pod security context every gpuplace pod runs with. */}}
{{- define "gpuplace.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
seccompProfile: {type: RuntimeDefault}
{{- end -}}

{{- define "gpuplace.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities: {drop: [ALL]}
{{- end -}}

{{/* The gpuplace config file: the `config` values with the certificate paths the Deployment mounts. */}}
{{- define "gpuplace.configFile" -}}
{{- $fixed := dict "webhook" (dict "cert_file" "/certs/tls.crt" "key_file" "/certs/tls.key") -}}
{{- toYaml (mustMergeOverwrite (deepCopy .Values.config) $fixed) -}}
{{- end -}}

{{/*
The one list of webhook entries, shared by the validating and the mutating configuration (the same list
as manifests/base/webhooks.yaml). `pod` is the CEL path of the pod spec: with it, a matchCondition skips
objects that request no GPUs (`optionalPod`: a pod template that may be absent, its GPUs count too);
`mutate` says whether /mutate serves the entry too.
*/}}
{{- define "gpuplace.webhookEntries" -}}
- name: pods.gpuplace.io
  pod: object.spec
  mutate: true
  rules:
  - {apiGroups: [""], apiVersions: [v1], resources: [pods]}
- name: workloads.gpuplace.io
  pod: object.spec.template.spec
  mutate: true
  rules:
  - {apiGroups: [apps], apiVersions: [v1], resources: [deployments, statefulsets]}
  - {apiGroups: [batch], apiVersions: [v1], resources: [jobs]}
- name: cronjobs.gpuplace.io
  pod: object.spec.jobTemplate.spec.template.spec
  mutate: true
  rules:
  - {apiGroups: [batch], apiVersions: [v1], resources: [cronjobs]}
- name: leaderworkersets.gpuplace.io
  pod: object.spec.leaderWorkerTemplate.workerTemplate.spec
  # The leader template is optional; when there, its GPUs count too.
  optionalPod: object.spec.leaderWorkerTemplate.leaderTemplate
  mutate: true
  rules:
  - {apiGroups: [leaderworkerset.x-k8s.io], apiVersions: [v1], resources: [leaderworkersets]}
- name: serving.gpuplace.io
  mutate: true
  rules:
  - {apiGroups: [serving.kserve.io], apiVersions: [v1beta1], resources: [inferenceservices]}
  - {apiGroups: [serving.knative.dev], apiVersions: [v1], resources: [services]}
# CRDs that serve models (Ray, KubeAI, KServe LLMInferenceService, AIBrix, Dynamo): validated only; the
# pods their operators create are stamped through pods.gpuplace.io. No matchCondition: where the GPUs sit
# differs per CRD (a Serve config, a resource profile), and an object without GPUs gets no finding.
- name: modelservers.gpuplace.io
  mutate: false
  rules:
  - {apiGroups: [ray.io], apiVersions: [v1], resources: [rayservices, rayclusters]}
  - {apiGroups: [kubeai.org], apiVersions: [v1], resources: [models]}
  - {apiGroups: [serving.kserve.io], apiVersions: [v1alpha1, v1alpha2], resources: [llminferenceservices]}
  - {apiGroups: [orchestration.aibrix.ai], apiVersions: [v1alpha1], resources: [rayclusterfleets]}
  - {apiGroups: [model.aibrix.ai], apiVersions: [v1alpha1], resources: [modeladapters]}
  - {apiGroups: [nvidia.com], apiVersions: [v1alpha1, v1beta1], resources: [dynamographdeployments]}
- name: autoscalers.gpuplace.io
  mutate: false
  rules:
  - {apiGroups: [autoscaling], apiVersions: [v2], resources: [horizontalpodautoscalers]}
  - {apiGroups: [keda.sh], apiVersions: [v1alpha1], resources: [scaledobjects]}
# The claims Kubernetes generates (one per pod from a template, or for a DRA-backed extended resource)
# were judged through their template or pod: not reviewed again on every pod start.
- name: claims.gpuplace.io
  mutate: false
  rules:
  - {apiGroups: [resource.k8s.io], apiVersions: [v1], resources: [resourceclaimtemplates, resourceclaims]}
  matchConditions:
  - name: written-by-users
    expression: "!has(object.metadata.annotations) || !('resource.kubernetes.io/pod-claim-name' in object.metadata.annotations || 'resource.kubernetes.io/extended-resource-claim' in object.metadata.annotations)"
{{- end -}}

{{/* CEL: the pod spec at this path asks for GPUs (a GPU or MIG limit, or DRA claims). */}}
{{- define "gpuplace.requestsGpus" -}}
{{ . }}.containers.exists(c, has(c.resources) && has(c.resources.limits) && c.resources.limits.exists(k, k == 'nvidia.com/gpu' || k.startsWith('nvidia.com/mig-'))) || has({{ . }}.resourceClaims)
{{- end -}}

{{/* One webhook of a configuration: (dict "root" $ "entry" <entry> "path" "/validate"|"/mutate"). */}}
{{- define "gpuplace.webhook" -}}
{{- $root := .root -}}
{{- $e := .entry -}}
- name: {{ $e.name }}
  admissionReviewVersions: [v1]
  sideEffects: None
  failurePolicy: {{ $root.Values.webhook.failurePolicy }}
  timeoutSeconds: {{ $root.Values.webhook.timeoutSeconds }}
  matchPolicy: Equivalent
  namespaceSelector:
    matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: [kube-system, {{ $root.Release.Namespace }}]
  rules:
  {{- range $e.rules }}
  - apiGroups: {{ toJson .apiGroups }}
    apiVersions: {{ toJson .apiVersions }}
    resources: {{ toJson .resources }}
    operations: [CREATE, UPDATE]
    scope: Namespaced
  {{- end }}
  clientConfig:
  {{- if eq $root.Values.certs.mode "none" }}
    url: {{ printf "%s%s" (trimSuffix "/" $root.Values.webhook.url) .path | quote }}
  {{- else }}
    service:
      name: {{ include "gpuplace.name" $root }}-webhook
      namespace: {{ $root.Release.Namespace }}
      path: {{ .path }}
      port: 443
  {{- end }}
  {{- if $root.Values.certs.caBundle }}
    caBundle: {{ $root.Values.certs.caBundle }}
  {{- end }}
  {{- if $e.pod }}
  matchConditions:
  - name: requests-gpus
    {{- $expr := include "gpuplace.requestsGpus" $e.pod }}
    {{- if $e.optionalPod }}
    {{- $expr = printf "%s || (has(%s) && (%s))" $expr $e.optionalPod (include "gpuplace.requestsGpus" (printf "%s.spec" $e.optionalPod)) }}
    {{- end }}
    expression: {{ $expr | quote }}
  {{- else if $e.matchConditions }}
  matchConditions: {{ toJson $e.matchConditions }}
  {{- end }}
  {{- if eq .path "/mutate" }}
  reinvocationPolicy: Never
  {{- end }}
{{- end -}}

{{/* The pod template of the bootstrap Job and its renewal CronJob. */}}
{{- define "gpuplace.certsPod" -}}
metadata:
  labels: {app.kubernetes.io/name: {{ .name }}-certs}
spec:
  serviceAccountName: {{ .name }}-certs
  restartPolicy: OnFailure
  {{- with .root.Values.imagePullSecrets }}
  imagePullSecrets: {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "gpuplace.podSecurityContext" . | nindent 4 }}
  containers:
    - name: certs
      image: {{ include "gpuplace.image" .root }}
      {{- with .root.Values.image.pullPolicy }}
      imagePullPolicy: {{ . }}
      {{- end }}
      args:
        - certs
        - --secret={{ .secret }}
        - --service={{ .name }}-webhook
        - --namespace={{ .root.Release.Namespace }}
        - --webhook-config={{ .name }}
        - --wait=120
      resources:
        {{- toYaml .root.Values.certs.bootstrap.resources | nindent 8 }}
      securityContext:
        {{- include "gpuplace.containerSecurityContext" . | nindent 8 }}
{{- end -}}

{{/* The KubeSchedulerConfiguration of <name>-scheduler (manifests/scheduler/scheduler-config.yaml). */}}
{{- define "gpuplace.schedulerConfig" -}}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  resourceNamespace: {{ .Release.Namespace }}
  resourceName: {{ include "gpuplace.name" . }}-scheduler
# Score every feasible node: packing and NVLink-domain fit are global questions.
percentageOfNodesToScore: 100
profiles:
  - schedulerName: {{ include "gpuplace.name" . }}-scheduler
extenders:
  - urlPrefix: http://127.0.0.1:8888
    filterVerb: filter
    prioritizeVerb: prioritize
    bindVerb: bind
    # One extender point is weight x 10 = 2000, more than all default plugins together (1500).
    weight: 200
    enableHTTPS: false
    nodeCacheCapable: true
    managedResources:
      - name: nvidia.com/gpu
        ignoredByScheduler: false
    httpTimeout: 5s
    ignorable: false
{{- end -}}
