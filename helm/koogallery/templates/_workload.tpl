{{/* Mount points inside the container. */}}
{{- define "kg.tlsDir" -}}/etc/koogallery/tls{{- end -}}
{{- define "kg.jwtDir" -}}/etc/koogallery/jwt{{- end -}}
{{- define "kg.calendarDir" -}}/etc/koogallery/calendar{{- end -}}
{{- define "kg.bounceMaildir" -}}/var/lib/koogallery/bounces{{- end -}}

{{/* The bounce mailbox claim of a service's settings (bounceMailbox.existingClaim), or "". */}}
{{- define "kg.bounceClaim" -}}
{{- dig "bounceMailbox" "existingClaim" "" . -}}
{{- end -}}

{{/*
The plain (non-secret) configuration of one service, as a map of environment variables.
Call with (list $root "registration" $settings); returns YAML.
*/}}
{{- define "kg.config" -}}
{{- $root := index . 0 -}}
{{- $name := index . 1 -}}
{{- $s := index . 2 -}}
{{- $v := $root.Values -}}
{{- $cfg := dict -}}
{{- $_ := set $cfg "KG_LISTEN_ADDR" (printf "0.0.0.0:%d" (int $v.ports.grpc)) -}}
{{- $_ := set $cfg "KG_METRICS_ADDR" (printf "0.0.0.0:%d" (int $v.ports.metrics)) -}}
{{- range $peer := splitList " " (include "kg.serviceNames" $root) -}}
{{- $_ := set $cfg (printf "KG_%s_URL" ($peer | upper | replace "-" "_")) (include "kg.serviceUrl" (list $root $peer)) -}}
{{- end -}}
{{- $_ := set $cfg "KG_LOG_FORMAT" $s.logFormat -}}
{{- $_ := set $cfg "RUST_LOG" $s.rustLog -}}
{{- /* in-flight RPCs get the grace period less 5 s for the process to exit before SIGKILL */ -}}
{{- $_ := set $cfg "KG_SHUTDOWN_GRACE_SECS" (max 1 (sub (int $s.terminationGracePeriodSeconds) 5) | toString) -}}
{{- $_ := set $cfg "OTEL_SERVICE_NAME" (printf "koogallery-%s" $name) -}}
{{- with $v.otel.endpoint -}}
{{- $_ := set $cfg "OTEL_EXPORTER_OTLP_ENDPOINT" . -}}
{{- end -}}
{{- with $v.otel.resourceAttributes -}}
{{- $attrs := list -}}
{{- range $k, $val := . -}}
{{- $attrs = append $attrs (printf "%s=%v" $k $val) -}}
{{- end -}}
{{- $_ := set $cfg "OTEL_RESOURCE_ATTRIBUTES" (join "," $attrs) -}}
{{- end -}}
{{- $_ := set $cfg "TOKIO_WORKER_THREADS" (include "kg.workerThreads" (required (printf "services.%s.resources.limits.cpu is required" $name) $s.resources.limits.cpu)) -}}
{{- if $v.tls.enabled -}}
{{- $_ := set $cfg "KG_TLS_CERT" (printf "%s/tls.crt" (include "kg.tlsDir" $root)) -}}
{{- $_ := set $cfg "KG_TLS_KEY" (printf "%s/tls.key" (include "kg.tlsDir" $root)) -}}
{{- $_ := set $cfg "KG_TLS_CA" (printf "%s/ca.crt" (include "kg.tlsDir" $root)) -}}
{{- $_ := set $cfg "KG_HEALTH_LISTEN_ADDR" (printf "0.0.0.0:%d" (int $v.tls.healthPort)) -}}
{{- if $v.tls.clientAuth -}}
{{- $_ := set $cfg "KG_TLS_CLIENT_CA" (printf "%s/ca.crt" (include "kg.tlsDir" $root)) -}}
{{- end -}}
{{- end -}}
{{- if eq $v.secrets.jwt.mode "jwks" -}}
{{- $_ := set $cfg "KG_JWT_JWKS_FILE" (printf "%s/%s" (include "kg.jwtDir" $root) $v.secrets.jwt.jwksKey) -}}
{{- end -}}
{{- /*
The settings only some services have: each is written when the service's values hold its key
(services.<name>: contacts, timezone, calendar, requireVerifiedContacts, bounceAddress,
bounceMailbox), never by the service's name.
*/ -}}
{{- with $s.contacts -}}
{{- $_ := set $cfg "KG_CONTACT_UNREACHABLE_FAILURES" (.unreachableFailures | int | toString) -}}
{{- $_ := set $cfg "KG_CONTACT_FAILURE_WINDOW_HOURS" (.failureWindowHours | int | toString) -}}
{{- end -}}
{{- with $s.timezone -}}
{{- $_ := set $cfg "KG_TIMEZONE" . -}}
{{- end -}}
{{- if $s.calendar -}}
{{- $_ := set $cfg "KG_CALENDAR_FILE" (printf "%s/calendar.yaml" (include "kg.calendarDir" $root)) -}}
{{- end -}}
{{- if hasKey $s "requireVerifiedContacts" -}}
{{- $_ := set $cfg "KG_REQUIRE_VERIFIED_CONTACTS" (ternary "true" "false" (eq (toString $s.requireVerifiedContacts) "true")) -}}
{{- end -}}
{{- with $s.bounceAddress -}}
{{- $_ := set $cfg "KG_SMTP_BOUNCE_ADDRESS" . -}}
{{- end -}}
{{- if include "kg.bounceClaim" $s -}}
{{- $_ := set $cfg "KG_BOUNCE_MAILDIR" (include "kg.bounceMaildir" $root) -}}
{{- end -}}
{{- range $k, $val := $s.env -}}
{{- $_ := set $cfg $k (toString $val) -}}
{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{- define "kg.serviceAccountName" -}}
{{- if .s.serviceAccount.create -}}
{{- default (include "kg.resourceName" (list .root .name)) .s.serviceAccount.name -}}
{{- else -}}
{{- default "default" .s.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kg.serviceAccount" -}}
apiVersion: v1
kind: ServiceAccount
metadata:
  name: {{ include "kg.serviceAccountName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
  {{- with .s.serviceAccount.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
automountServiceAccountToken: {{ .s.serviceAccount.automountToken }}
{{- end -}}

{{- define "kg.configMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "kg.resourceName" (list .root .name) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
data:
  {{- range $k, $v := .config }}
  {{ $k }}: {{ $v | toString | quote }}
  {{- end }}
{{- end -}}

{{- define "kg.calendar" -}}
# Working-day calendar of the review deadlines (3 working days from submission).
# Saturdays and Sundays are days off unless listed in extra_working_days.
timezone: {{ .s.timezone | quote }}
holidays: {{ .s.calendar.holidays | default list | toJson }}
extra_working_days: {{ .s.calendar.extraWorkingDays | default list | toJson }}
{{- end -}}

{{/* The ConfigMap of a service's calendar ("<fullname>-<service>-calendar"). */}}
{{- define "kg.calendarName" -}}
{{- include "kg.resourceName" (list .root (printf "%s-calendar" .name)) -}}
{{- end -}}

{{- define "kg.calendarConfigMap" -}}
apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "kg.calendarName" . }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
data:
  calendar.yaml: |
    {{- include "kg.calendar" . | nindent 4 }}
{{- end -}}

{{- define "kg.service" -}}
apiVersion: v1
kind: Service
metadata:
  name: {{ include "kg.resourceName" (list .root .name) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
  {{- with .s.service.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  type: {{ .s.service.type }}
  selector:
    {{- include "kg.selectorLabels" (list .root .name) | nindent 4 }}
  ports:
    - name: grpc
      port: {{ .root.Values.ports.grpc }}
      targetPort: grpc
      protocol: TCP
      appProtocol: grpc
    - name: metrics
      port: {{ .root.Values.ports.metrics }}
      targetPort: metrics
      protocol: TCP
      appProtocol: http
{{- end -}}

{{/* One native gRPC probe. Call with (dict "probe" $p "port" $port). */}}
{{- define "kg.grpcProbe" -}}
grpc:
  port: {{ .port }}
  {{- with .probe.service }}
  service: {{ . | quote }}
  {{- end }}
initialDelaySeconds: {{ .probe.initialDelaySeconds }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end -}}

{{- define "kg.deployment" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $s := .s -}}
{{- $probePort := ternary $v.tls.healthPort $v.ports.grpc $v.tls.enabled | int -}}
{{- $secretFiles := include "kg.secretFiles" (list $root .name $s) | fromYamlArray -}}
{{- $bounceClaim := include "kg.bounceClaim" $s -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "kg.resourceName" (list $root .name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list $root .name) | nindent 4 }}
spec:
  {{- if not $s.autoscaling.enabled }}
  replicas: {{ $s.replicaCount }}
  {{- end }}
  revisionHistoryLimit: 5
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxUnavailable: 0
      maxSurge: 1
  selector:
    matchLabels:
      {{- include "kg.selectorLabels" (list $root .name) | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "kg.componentLabels" (list $root .name) | nindent 8 }}
        {{- with $s.podLabels }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      annotations:
        checksum/config: {{ toJson .config | sha256sum }}
        {{- if $s.calendar }}
        checksum/calendar: {{ include "kg.calendar" . | sha256sum }}
        {{- end }}
        {{- with $s.podAnnotations }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
    spec:
      serviceAccountName: {{ include "kg.serviceAccountName" . }}
      automountServiceAccountToken: {{ $s.serviceAccount.automountToken }}
      {{- with $v.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $s.priorityClassName }}
      priorityClassName: {{ . }}
      {{- end }}
      terminationGracePeriodSeconds: {{ $s.terminationGracePeriodSeconds }}
      securityContext:
        {{- include "kg.podSecurityContext" $root | nindent 8 }}
      containers:
        - name: {{ .name }}
          image: {{ include "kg.image" $root }}
          imagePullPolicy: {{ $v.image.pullPolicy }}
          command:
            - koogallery-{{ .name }}
          envFrom:
            - configMapRef:
                name: {{ include "kg.resourceName" (list $root .name) }}
          env:
            {{- include "kg.secretFileEnv" $secretFiles | nindent 12 }}
            {{- with $s.extraEnv }}
            {{- toYaml . | nindent 12 }}
            {{- end }}
          ports:
            - name: grpc
              containerPort: {{ $v.ports.grpc }}
              protocol: TCP
            - name: metrics
              containerPort: {{ $v.ports.metrics }}
              protocol: TCP
            {{- if $v.tls.enabled }}
            - name: health
              containerPort: {{ $v.tls.healthPort }}
              protocol: TCP
            {{- end }}
          startupProbe:
            {{- include "kg.grpcProbe" (dict "probe" $s.probes.startup "port" $probePort) | nindent 12 }}
          readinessProbe:
            {{- include "kg.grpcProbe" (dict "probe" $s.probes.readiness "port" $probePort) | nindent 12 }}
          livenessProbe:
            {{- include "kg.grpcProbe" (dict "probe" $s.probes.liveness "port" $probePort) | nindent 12 }}
          resources:
            {{- toYaml $s.resources | nindent 12 }}
          securityContext:
            {{- include "kg.containerSecurityContext" $root | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
            - name: secrets
              mountPath: {{ include "kg.secretsDir" $root }}
              readOnly: true
            {{- if $v.tls.enabled }}
            - name: tls
              mountPath: {{ include "kg.tlsDir" $root }}
              readOnly: true
            {{- end }}
            {{- if eq $v.secrets.jwt.mode "jwks" }}
            - name: jwks
              mountPath: {{ include "kg.jwtDir" $root }}
              readOnly: true
            {{- end }}
            {{- if $s.calendar }}
            - name: calendar
              mountPath: {{ include "kg.calendarDir" $root }}
              readOnly: true
            {{- end }}
            {{- if $bounceClaim }}
            - name: bounces
              mountPath: {{ include "kg.bounceMaildir" $root }}
            {{- end }}
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
        {{- include "kg.secretsVolume" $secretFiles | nindent 8 }}
        {{- if $v.tls.enabled }}
        - name: tls
          secret:
            secretName: {{ include "kg.tlsSecretName" $root }}
            defaultMode: 0440
        {{- end }}
        {{- if eq $v.secrets.jwt.mode "jwks" }}
        - name: jwks
          secret:
            secretName: {{ include "kg.secretName" (list $root $v.secrets.jwt) }}
            defaultMode: 0440
            items:
              - key: {{ $v.secrets.jwt.jwksKey }}
                path: {{ $v.secrets.jwt.jwksKey }}
        {{- end }}
        {{- if $s.calendar }}
        - name: calendar
          configMap:
            name: {{ include "kg.calendarName" . }}
        {{- end }}
        {{- if $bounceClaim }}
        - name: bounces
          persistentVolumeClaim:
            claimName: {{ $bounceClaim }}
        {{- end }}
      {{- if $s.topologySpread.enabled }}
      topologySpreadConstraints:
        {{- range $key := $s.topologySpread.topologyKeys }}
        - maxSkew: {{ $s.topologySpread.maxSkew }}
          topologyKey: {{ $key }}
          whenUnsatisfiable: {{ $s.topologySpread.whenUnsatisfiable }}
          labelSelector:
            matchLabels:
              {{- include "kg.selectorLabels" (list $root $.name) | nindent 14 }}
        {{- end }}
      {{- end }}
      {{- with $s.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $s.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $s.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
{{- end -}}

{{- define "kg.hpa" -}}
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: {{ include "kg.resourceName" (list .root .name) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: {{ include "kg.resourceName" (list .root .name) }}
  minReplicas: {{ .s.autoscaling.minReplicas }}
  maxReplicas: {{ .s.autoscaling.maxReplicas }}
  metrics:
    - type: Resource
      resource:
        name: cpu
        target:
          type: Utilization
          averageUtilization: {{ .s.autoscaling.targetCPUUtilizationPercentage }}
    {{- with .s.autoscaling.targetMemoryUtilizationPercentage }}
    - type: Resource
      resource:
        name: memory
        target:
          type: Utilization
          averageUtilization: {{ . }}
    {{- end }}
{{- end -}}

{{- define "kg.pdb" -}}
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: {{ include "kg.resourceName" (list .root .name) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
spec:
  {{- if ne (toString .s.podDisruptionBudget.minAvailable) "" }}
  minAvailable: {{ .s.podDisruptionBudget.minAvailable }}
  {{- else }}
  maxUnavailable: {{ .s.podDisruptionBudget.maxUnavailable }}
  {{- end }}
  selector:
    matchLabels:
      {{- include "kg.selectorLabels" (list .root .name) | nindent 6 }}
{{- end -}}
