{{/*
conclave.name is the chart name, or nameOverride.
*/}}
{{- define "conclave.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
conclave.fullname is "<release>-<name>" (just the release name when it
already contains the name), or fullnameOverride. It names the API Service.
*/}}
{{- define "conclave.fullname" -}}
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
conclave.serverName names the StatefulSet, its headless Service, the
ConfigMap and the ServiceAccount. The fullname is cut to 45 characters so
that the StatefulSet's name stays within 52: Kubernetes appends an 11
character hash to it in the controller-revision-hash label (63 at most).
*/}}
{{- define "conclave.serverName" -}}
{{- printf "%s-server" (include "conclave.fullname" . | trunc 45 | trimSuffix "-") -}}
{{- end -}}

{{/*
conclave.chart is the helm.sh/chart label value.
*/}}
{{- define "conclave.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
conclave.labels are the standard labels of every object.
*/}}
{{- define "conclave.labels" -}}
helm.sh/chart: {{ include "conclave.chart" . }}
{{ include "conclave.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/*
conclave.selectorLabels identify this release's objects.
*/}}
{{- define "conclave.selectorLabels" -}}
app.kubernetes.io/name: {{ include "conclave.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
conclave.serverSelectorLabels select the server pods: the StatefulSet, the
Services, the PodDisruptionBudget, the anti-affinity term and the k8s
provider's label_selector all use them.
*/}}
{{- define "conclave.serverSelectorLabels" -}}
{{ include "conclave.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{/*
conclave.serverLabelSelector is serverSelectorLabels as a label selector
string, for the k8s provider.
*/}}
{{- define "conclave.serverLabelSelector" -}}
{{- $labels := include "conclave.serverSelectorLabels" . | fromYaml -}}
{{- $pairs := list -}}
{{- range $k := keys $labels | sortAlpha -}}
{{- $pairs = append $pairs (printf "%s=%s" $k (get $labels $k)) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}

{{/*
conclave.image is "<repository>:<tag>", the tag defaulting to appVersion.
*/}}
{{- define "conclave.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
conclave.headlessDNS is the headless Service's DNS name. It resolves to every
server pod with an IP, ready or not (publishNotReadyAddresses).
*/}}
{{- define "conclave.headlessDNS" -}}
{{- printf "%s.%s.svc.%s" (include "conclave.serverName" .) .Release.Namespace .Values.clusterDomain -}}
{{- end -}}

{{/*
conclave.retryJoin is the servers' retry_join list, one entry per line:
the headless Service's DNS name, the k8s provider, then join.extra.
*/}}
{{- define "conclave.retryJoin" -}}
{{- $join := .Values.server.join -}}
{{- if $join.headlessService }}
{{ include "conclave.headlessDNS" . }}
{{- end }}
{{- if $join.k8sProvider }}
{{ printf "provider=k8s namespace=%s label_selector=%q" .Release.Namespace (include "conclave.serverLabelSelector" .) }}
{{- end }}
{{- range $join.extra }}
{{ . }}
{{- end }}
{{- end -}}

{{/*
conclave.readinessPath is the readiness probe's path (server.readiness).
*/}}
{{- define "conclave.readinessPath" -}}
{{- if eq .Values.server.readiness "voter" -}}
/v1/status/ready?voter
{{- else -}}
/v1/status/ready
{{- end -}}
{{- end -}}

{{/*
conclave.validate fails the render on values that would deploy a cluster
that cannot work. values.schema.json checks the types; these are the rules
that involve several values.
*/}}
{{- define "conclave.validate" -}}
{{- $s := .Values.server -}}
{{- $n := int $s.replicas -}}
{{- if lt $n 1 -}}
{{- fail (printf "conclave: server.replicas is %d; it must be at least 1" $n) -}}
{{- end -}}
{{- if eq (mod $n 2) 0 -}}
{{- fail (printf "conclave: server.replicas is %d; it must be odd (1, 3, 5, ...): %d servers need a quorum of %d and tolerate %d failure(s), as %d do; use %d or %d" $n $n (add (div $n 2) 1) (div (sub $n 1) 2) (sub $n 1) (sub $n 1) (add $n 1)) -}}
{{- end -}}
{{- if and (eq $s.readiness "voter") (not $s.join.headlessService) -}}
{{- fail "conclave: server.readiness=voter needs server.join.headlessService=true: the voter gate is not ready before the cluster bootstraps, so discovery must not depend on readiness, and go-discover's k8s provider lists only Ready pods; set server.join.headlessService=true, or server.readiness=started to discover through the k8s provider alone" -}}
{{- end -}}
{{- if and (gt $n 1) (not $s.join.headlessService) (not $s.join.k8sProvider) (not $s.join.extra) -}}
{{- fail (printf "conclave: server.replicas is %d but retry_join is empty, so the servers cannot find each other; set server.join.headlessService=true, server.join.k8sProvider=true or server.join.extra" $n) -}}
{{- end -}}
{{- $p := $s.ports -}}
{{- if or (eq (int $p.http) (int $p.serfLan)) (eq (int $p.http) (int $p.server)) (eq (int $p.serfLan) (int $p.server)) -}}
{{- fail (printf "conclave: server.ports must be three different ports; got http=%d serfLan=%d server=%d" (int $p.http) (int $p.serfLan) (int $p.server)) -}}
{{- end -}}
{{- $tolerance := div (sub $n 1) 2 -}}
{{- if and $s.disruptionBudget.enabled (gt (int $s.disruptionBudget.maxUnavailable) (max 1 $tolerance)) -}}
{{- fail (printf "conclave: server.disruptionBudget.maxUnavailable is %d, but %d servers tolerate only %d down at once; evicting more would lose the quorum" (int $s.disruptionBudget.maxUnavailable) $n (max 1 $tolerance)) -}}
{{- end -}}
{{- end -}}
