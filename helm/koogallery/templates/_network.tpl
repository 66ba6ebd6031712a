{{/*
One egress rule from a values entry {cidr, except} or {namespaceSelector, podSelector}, with
ports and protocols (default [TCP]).
*/}}
{{- define "kg.egressRule" -}}
{{- $peer := dict -}}
{{- if .cidr -}}
{{- $block := dict "cidr" .cidr -}}
{{- with .except }}{{ $_ := set $block "except" . }}{{ end -}}
{{- $_ := set $peer "ipBlock" $block -}}
{{- else -}}
{{- with .namespaceSelector }}{{ $_ := set $peer "namespaceSelector" . }}{{ end -}}
{{- with .podSelector }}{{ $_ := set $peer "podSelector" . }}{{ end -}}
{{- end -}}
{{- $ports := list -}}
{{- $protocols := .protocols | default (list "TCP") -}}
{{- range $port := .ports -}}
{{- range $protocol := $protocols -}}
{{- $ports = append $ports (dict "port" (int $port) "protocol" $protocol) -}}
{{- end -}}
{{- end -}}
- to:
    {{- toYaml (list $peer) | nindent 4 }}
  ports:
    {{- range $ports }}
    - port: {{ .port }}
      protocol: {{ .protocol }}
    {{- end }}
{{- end -}}

{{/* Egress rules from a list of values entries, each on a new line indented by 4. */}}
{{- define "kg.egressRules" -}}
{{- range . }}
{{- include "kg.egressRule" . | nindent 4 }}
{{- end }}
{{- end -}}

{{- define "kg.networkPolicy" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
{{- $np := $v.networkPolicy -}}
{{- $name := .name -}}
{{- $w := include "kg.wiring" (list $root $name) | fromYaml -}}
{{- /* the mesh's own paths, from services.<name>.wiring.calls: ingress from every service that
calls this one, egress to every service this one calls */ -}}
{{- $meshPeers := list -}}
{{- range $caller := splitList " " (include "kg.serviceNames" $root) -}}
{{- if has $name (include "kg.wiring" (list $root $caller) | fromYaml).calls -}}
{{- $peer := dict "podSelector" (dict "matchLabels" (include "kg.selectorLabels" (list $root $caller) | fromYaml)) -}}
{{- $meshPeers = append $meshPeers $peer -}}
{{- end -}}
{{- end -}}
{{- if $v.tests.enabled -}}
{{- $meshPeers = append $meshPeers (dict "podSelector" (dict "matchLabels" (include "kg.selectorLabels" (list $root "test") | fromYaml))) -}}
{{- end -}}
{{- /* the back office calls the services whose wiring.calledByBackoffice is set */ -}}
{{- if and $v.backoffice.enabled $w.calledByBackoffice -}}
{{- $meshPeers = append $meshPeers (dict "podSelector" (dict "matchLabels" (include "kg.selectorLabels" (list $root "backoffice") | fromYaml))) -}}
{{- end -}}
{{- $callees := $w.calls | uniq | sortAlpha -}}
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: {{ include "kg.resourceName" (list $root $name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list $root $name) | nindent 4 }}
spec:
  podSelector:
    matchLabels:
      {{- include "kg.selectorLabels" (list $root $name) | nindent 6 }}
  policyTypes:
    - Ingress
    - Egress
  ingress:
    {{- if $meshPeers }}
    # The mesh's own calls (and the helm test pod).
    - from:
        {{- toYaml $meshPeers | nindent 8 }}
      ports:
        - port: grpc
          protocol: TCP
    {{- end }}
    {{- if and .s.networkPolicy.clientAccess $np.clientSelectors }}
    # Platform callers.
    - from:
        {{- toYaml $np.clientSelectors | nindent 8 }}
      ports:
        - port: grpc
          protocol: TCP
    {{- end }}
    {{- if and .s.ingress.enabled $np.ingressControllerSelectors }}
    # The ingress controller.
    - from:
        {{- toYaml $np.ingressControllerSelectors | nindent 8 }}
      ports:
        - port: grpc
          protocol: TCP
    {{- end }}
    {{- if $np.metricsSelectors }}
    # Prometheus.
    - from:
        {{- toYaml $np.metricsSelectors | nindent 8 }}
      ports:
        - port: metrics
          protocol: TCP
    {{- end }}
    {{- with .s.networkPolicy.extraIngress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  egress:
    {{- include "kg.egressRules" $np.egress.dns }}
    {{- if $callees }}
    # The mesh's own calls.
    - to:
        {{- range $callee := $callees }}
        - podSelector:
            matchLabels:
              {{- include "kg.selectorLabels" (list $root $callee) | nindent 14 }}
        {{- end }}
      ports:
        - port: {{ $v.ports.grpc }}
          protocol: TCP
    {{- end }}
    {{- include "kg.egressRules" $np.egress.postgres }}
    {{- if $w.redis }}
    {{- include "kg.egressRules" $np.egress.redis }}
    {{- end }}
    {{- if $w.smtp }}
    {{- include "kg.egressRules" $np.egress.smtp }}
    {{- end }}
    {{- if and $w.sms $v.secrets.sms.enabled }}
    {{- include "kg.egressRules" $np.egress.sms }}
    {{- end }}
    {{- if $w.websites }}
    {{- include "kg.egressRules" $np.egress.websites }}
    {{- end }}
    {{- if $v.otel.endpoint }}
    {{- include "kg.egressRules" $np.egress.otlp }}
    {{- end }}
    {{- with .s.networkPolicy.extraEgress }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "kg.serviceMonitor" -}}
{{- $sm := .root.Values.serviceMonitor -}}
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "kg.resourceName" (list .root .name) }}
  namespace: {{ .root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list .root .name) | nindent 4 }}
    {{- with $sm.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  jobLabel: app.kubernetes.io/component
  namespaceSelector:
    matchNames:
      - {{ .root.Release.Namespace }}
  selector:
    matchLabels:
      {{- include "kg.selectorLabels" (list .root .name) | nindent 6 }}
  endpoints:
    - port: metrics
      path: /metrics
      scheme: http
      interval: {{ $sm.interval }}
      scrapeTimeout: {{ $sm.scrapeTimeout }}
{{- end -}}

{{- define "kg.ingress" -}}
{{- $root := .root -}}
{{- $ing := .s.ingress -}}
{{- $host := required (printf "services.%s.ingress.host is required when its ingress is enabled" .name) $ing.host -}}
apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: {{ include "kg.resourceName" (list $root .name) }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "kg.componentLabels" (list $root .name) | nindent 4 }}
  annotations:
    nginx.ingress.kubernetes.io/backend-protocol: {{ ternary "GRPCS" "GRPC" $root.Values.tls.enabled }}
    {{- with $ing.annotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  {{- with $ing.className }}
  ingressClassName: {{ . }}
  {{- end }}
  {{- if $ing.tls.enabled }}
  tls:
    - hosts:
        - {{ $host }}
      secretName: {{ default (include "kg.resourceName" (list $root (printf "%s-ingress-tls" .name))) $ing.tls.secretName }}
  {{- end }}
  rules:
    - host: {{ $host }}
      http:
        paths:
          {{- range $path := $ing.paths }}
          - path: {{ $path }}
            pathType: Prefix
            backend:
              service:
                name: {{ include "kg.resourceName" (list $root $.name) }}
                port:
                  name: grpc
          {{- end }}
{{- end -}}
