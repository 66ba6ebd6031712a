{{/*
The four services, in a fixed order. What each one talks to (the mesh's gRPC paths, Redis, SMTP,
SMS, websites, the back office) is not decided here by name: it is services.<name>.wiring, see
kg.wiring.
*/}}
{{- define "kg.serviceNames" -}}
identity-check registration review notification
{{- end -}}

{{/*
The wiring of one service (services.<name>.wiring, with every switch present): calls (the
services it calls over gRPC), calledByBackoffice, redis, smtp, sms and websites. Read from
services.<name> only, not from defaults: it says what a binary does, which no default changes.
Call with (list $root "registration"); returns YAML.
*/}}
{{- define "kg.wiring" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $w := dig $name "wiring" dict $root.Values.services -}}
calls: {{ $w.calls | default list | toJson }}
calledByBackoffice: {{ $w.calledByBackoffice | default false }}
redis: {{ $w.redis | default false }}
smtp: {{ $w.smtp | default false }}
sms: {{ $w.sms | default false }}
websites: {{ $w.websites | default false }}
{{- end -}}

{{- define "kg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kg.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"<fullname>-<suffix>" that fits 63 characters: the fullname is shortened, never the suffix
(the suffix tells the services apart). Call with (list $root "registration").
*/}}
{{- define "kg.resourceName" -}}
{{- $root := index . 0 -}}
{{- $suffix := index . 1 -}}
{{- $base := include "kg.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" -}}
{{- printf "%s-%s" $base $suffix -}}
{{- end -}}

{{- define "kg.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kg.labels" -}}
helm.sh/chart: {{ include "kg.chart" . }}
app.kubernetes.io/name: {{ include "kg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: koogallery
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. Call with (list $root "registration"). */}}
{{- define "kg.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "kg.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* All labels of one component. Call with (list $root "registration"). */}}
{{- define "kg.componentLabels" -}}
{{ include "kg.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{- define "kg.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/*
The settings of one service: defaults, overridden key by key by services.<name>.
Call with (list $root "registration"); returns YAML.
*/}}
{{- define "kg.settings" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $own := index $root.Values.services $name | default dict -}}
{{- toYaml (mustMergeOverwrite (deepCopy $root.Values.defaults) (deepCopy $own)) -}}
{{- end -}}

{{/*
TOKIO_WORKER_THREADS from a Kubernetes CPU quantity: ceil(cpu), at least 1.
"500m" -> 1, "1500m" -> 2, "2" -> 2, 2 -> 2, "2.5" -> 3, 0.25 -> 1.
*/}}
{{- define "kg.workerThreads" -}}
{{- $cpu := toString . -}}
{{- if hasSuffix "m" $cpu -}}
{{- $milli := trimSuffix "m" $cpu | atoi -}}
{{- max 1 (div (add $milli 999) 1000) -}}
{{- else -}}
{{- max 1 (ceil (float64 $cpu)) -}}
{{- end -}}
{{- end -}}

{{/* The Secret a reference uses: its own existingSecret, else secrets.existingSecret, else "<fullname>-secrets". Call with (list $root $ref). */}}
{{- define "kg.secretName" -}}
{{- $root := index . 0 -}}
{{- $ref := index . 1 -}}
{{- if $ref.existingSecret -}}
{{- $ref.existingSecret -}}
{{- else if $root.Values.secrets.existingSecret -}}
{{- $root.Values.secrets.existingSecret -}}
{{- else -}}
{{- include "kg.resourceName" (list $root "secrets") -}}
{{- end -}}
{{- end -}}

{{- define "kg.tlsSecretName" -}}
{{- default (include "kg.resourceName" (list . "tls")) .Values.tls.existingSecret -}}
{{- end -}}

{{/* The gRPC URL of one service (KG_<SERVICE>_URL). Call with (list $root "registration"). */}}
{{- define "kg.serviceUrl" -}}
{{- $root := index . 0 -}}
{{- printf "%s://%s:%d" (ternary "https" "http" $root.Values.tls.enabled) (include "kg.resourceName" .) (int $root.Values.ports.grpc) -}}
{{- end -}}

{{/* Container security context shared by every container of the chart. */}}
{{- define "kg.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Pod security context shared by every pod of the chart. */}}
{{- define "kg.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "kg.secretsDir" -}}/etc/koogallery/secrets{{- end -}}

{{/*
The secrets a service reads, as files: a YAML list of {env, file, secret, key}. The container
gets <env>_FILE=<secretsDir>/<file> (the services read every KG_X they take as a secret from
KG_X_FILE too), and the projected "secrets" volume maps the Secret's key to that file, so no
secret value is in the pod's environment. Call with (list $root "registration" $settings), or
(list $root "registration" $settings "migrate") for the database URL alone (a migration Job).
*/}}
{{- define "kg.secretFiles" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $s := index . 2 -}}
{{- $onlyDb := eq (len .) 4 -}}
{{- $sec := $root.Values.secrets -}}
- env: KG_DATABASE_URL
  file: database-url
  secret: {{ include "kg.secretName" (list $root $s.database) }}
  key: {{ default (printf "%s-database-url" $name) $s.database.key }}
{{- if not $onlyDb }}
{{- if eq $sec.jwt.mode "hs256" }}
- env: KG_JWT_SECRET
  file: jwt-secret
  secret: {{ include "kg.secretName" (list $root $sec.jwt) }}
  key: {{ $sec.jwt.key }}
{{- end }}
- env: KG_SERVICE_TOKEN
  file: service-token
  secret: {{ include "kg.secretName" (list $root $sec.serviceToken) }}
  key: {{ $sec.serviceToken.key }}
{{- $w := include "kg.wiring" (list $root $name) | fromYaml }}
{{- if $w.redis }}
- env: KG_REDIS_URL
  file: redis-url
  secret: {{ include "kg.secretName" (list $root $sec.redis) }}
  key: {{ $sec.redis.key }}
{{- end }}
{{- if $w.smtp }}
- env: KG_SMTP_URL
  file: smtp-url
  secret: {{ include "kg.secretName" (list $root $sec.smtp) }}
  key: {{ $sec.smtp.key }}
{{- end }}
{{- if and $w.sms $sec.sms.enabled }}
- env: KG_SMS_URL
  file: sms-url
  secret: {{ include "kg.secretName" (list $root $sec.sms) }}
  key: {{ $sec.sms.urlKey }}
- env: KG_SMS_TOKEN
  file: sms-token
  secret: {{ include "kg.secretName" (list $root $sec.sms) }}
  key: {{ $sec.sms.tokenKey }}
{{- end }}
{{- end }}
{{- end -}}

{{/* <env>_FILE entries for a kg.secretFiles list. */}}
{{- define "kg.secretFileEnv" -}}
{{- range . }}
- name: {{ .env }}_FILE
  value: {{ include "kg.secretsDir" nil }}/{{ .file }}
{{- end }}
{{- end -}}

{{/*
The read-only volume of a kg.secretFiles list. Projected: keys of several Secrets in one
directory. Mode 0440: the kubelet makes the files root-owned with group fsGroup (65532), so group
read is what the non-root process needs, and nobody may write.
*/}}
{{- define "kg.secretsVolume" -}}
- name: secrets
  projected:
    defaultMode: 0440
    sources:
      {{- range . }}
      - secret:
          name: {{ .secret }}
          items:
            - key: {{ .key }}
              path: {{ .file }}
      {{- end }}
{{- end -}}
