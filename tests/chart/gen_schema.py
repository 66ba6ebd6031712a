#!/usr/bin/env python3
"""Generate helm/koogallery/values.schema.json (JSON Schema draft-07).

The four entries of `services` take the same settings as `defaults` (each key optional there, since
they override `defaults` key by key) plus their own keys, and every object refuses unknown keys
(additionalProperties: false). Writing the schema by hand would repeat the settings four times, so
it is generated; tests/chart/test_chart.py checks that the checked-in file is what this prints.

    python3 tests/chart/gen_schema.py          # rewrite the schema
    python3 tests/chart/gen_schema.py --check  # exit 1 when the file is stale
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "helm" / "koogallery" / "values.schema.json"

Schema = dict[str, Any]

# --- small builders -------------------------------------------------------------------------------


def obj(props: dict[str, Schema], required: bool | list[str] = False, desc: str | None = None) -> Schema:
    """A closed object. required=True requires every property (the chart's own defaults)."""
    out: Schema = {"type": "object", "additionalProperties": False, "properties": props}
    if required is True:
        out["required"] = sorted(props)
    elif required:
        out["required"] = list(required)
    if desc:
        out["description"] = desc
    return out


def string(desc: str | None = None, **kw: Any) -> Schema:
    out: Schema = {"type": "string", **kw}
    if desc:
        out["description"] = desc
    return out


def integer(minimum: int | None = None, maximum: int | None = None, desc: str | None = None) -> Schema:
    out: Schema = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    if desc:
        out["description"] = desc
    return out


def boolean(desc: str | None = None) -> Schema:
    out: Schema = {"type": "boolean"}
    if desc:
        out["description"] = desc
    return out


def array(items: Schema, desc: str | None = None, **kw: Any) -> Schema:
    out: Schema = {"type": "array", "items": items, **kw}
    if desc:
        out["description"] = desc
    return out


def string_map(desc: str | None = None) -> Schema:
    """Labels, annotations, node selectors: string keys to string values."""
    out: Schema = {"type": "object", "additionalProperties": {"type": "string"}}
    if desc:
        out["description"] = desc
    return out


def ref(name: str) -> Schema:
    return {"$ref": f"#/definitions/{name}"}


# --- shared definitions ---------------------------------------------------------------------------

DNS_NAME = r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$"
SECRET_KEY = r"^[-._a-zA-Z0-9]+$"
PORT = integer(1, 65535)

DEFINITIONS: dict[str, Schema] = {
    "cpuQuantity": {
        "description": 'A CPU quantity: "500m", "2", "1.5" or a number.',
        "oneOf": [
            {"type": "string", "pattern": r"^([0-9]+m|[0-9]+(\.[0-9]+)?)$"},
            {"type": "number", "exclusiveMinimum": 0},
        ],
    },
    "memoryQuantity": {
        "description": 'A memory quantity: "512Mi", "1Gi", "1G" or a number of bytes.',
        "oneOf": [
            {"type": "string", "pattern": r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|Ei|k|M|G|T|P|E)?$"},
            {"type": "integer", "minimum": 1},
        ],
    },
    "resourceList": obj(
        {
            "cpu": ref("cpuQuantity"),
            "memory": ref("memoryQuantity"),
            "ephemeral-storage": ref("memoryQuantity"),
        }
    ),
    "labelSelector": obj(
        {
            "matchLabels": string_map(),
            "matchExpressions": array(
                obj(
                    {
                        "key": string(),
                        "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                        "values": array(string()),
                    },
                    required=["key", "operator"],
                )
            ),
        }
    ),
    "networkPolicyPeer": obj(
        {
            "podSelector": ref("labelSelector"),
            "namespaceSelector": ref("labelSelector"),
            "ipBlock": obj({"cidr": string(), "except": array(string())}, required=["cidr"]),
        },
        desc="A Kubernetes NetworkPolicyPeer.",
    ),
    "networkPolicyPort": obj(
        {
            "port": {"type": ["integer", "string"]},
            "endPort": PORT,
            "protocol": {"enum": ["TCP", "UDP", "SCTP"]},
        }
    ),
    "egressTarget": {
        **obj(
            {
                "cidr": string("An IPv4/IPv6 CIDR.", pattern=r"^[0-9a-fA-F.:]+/[0-9]{1,3}$"),
                "except": array(string(pattern=r"^[0-9a-fA-F.:]+/[0-9]{1,3}$")),
                "namespaceSelector": ref("labelSelector"),
                "podSelector": ref("labelSelector"),
                "ports": array(PORT, minItems=1),
                "protocols": array({"enum": ["TCP", "UDP", "SCTP"]}, minItems=1),
            },
            required=["ports"],
            desc="An egress destination: a cidr (with except) or namespace/pod selectors, and its ports.",
        ),
        "anyOf": [
            {"required": ["cidr"]},
            {"required": ["namespaceSelector"]},
            {"required": ["podSelector"]},
        ],
    },
    "secretRef": obj(
        {
            "existingSecret": string('Secret name; "" = secrets.existingSecret.', pattern=DNS_NAME, maxLength=253),
            "key": string(pattern=SECRET_KEY),
        },
        required=True,
    ),
    "probe": obj(
        {
            "service": string('grpc.health.v1 service name; "" = the overall status.'),
            "initialDelaySeconds": integer(0),
            "periodSeconds": integer(1),
            "timeoutSeconds": integer(1),
            "failureThreshold": integer(1),
        },
        required=True,
    ),
    "toleration": obj(
        {
            "key": string(),
            "operator": {"enum": ["Exists", "Equal"]},
            "value": string(),
            "effect": {"enum": ["", "NoSchedule", "PreferNoSchedule", "NoExecute"]},
            "tolerationSeconds": integer(),
        }
    ),
    "envVar": obj(
        {
            "name": string(pattern=r"^[-._a-zA-Z][-._a-zA-Z0-9]*$"),
            "value": string(),
            "valueFrom": obj(
                {
                    "secretKeyRef": {"type": "object"},
                    "configMapKeyRef": {"type": "object"},
                    "fieldRef": {"type": "object"},
                    "resourceFieldRef": {"type": "object"},
                }
            ),
        },
        required=["name"],
    ),
    "date": string("A date, YYYY-MM-DD.", pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"),
}


def settings(full: bool) -> dict[str, Schema]:
    """The per-service settings. full=True: `defaults`, every key required; False: an override."""

    def o(props: dict[str, Schema], desc: str | None = None) -> Schema:
        return obj(props, required=full, desc=desc)

    pct_or_int = {
        "oneOf": [
            {"type": "integer", "minimum": 0},
            {"type": "string", "pattern": r"^([0-9]+%)?$"},
        ]
    }
    return {
        "replicaCount": integer(0, desc="Replicas when autoscaling is off."),
        "resources": obj(
            {"requests": ref("resourceList"), "limits": ref("resourceList")},
            required=["requests", "limits"] if full else False,
            desc="TOKIO_WORKER_THREADS = ceil(limits.cpu), at least 1.",
        ),
        "rustLog": string("RUST_LOG, e.g. info or info,kg_registration=debug.", minLength=1),
        "logFormat": {"description": "KG_LOG_FORMAT.", "enum": ["json", "text"]},
        "env": {
            "type": "object",
            "description": "Extra plain settings for the ConfigMap.",
            "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
            "additionalProperties": {"type": ["string", "number", "boolean"]},
        },
        "extraEnv": array(ref("envVar")),
        "database": o(
            {
                "existingSecret": string(pattern=DNS_NAME, maxLength=253),
                "key": string('"" = "<service>-database-url".', pattern=r"^([-._a-zA-Z0-9]+)?$"),
            },
            desc="The Secret key mounted as KG_DATABASE_URL_FILE.",
        ),
        "probes": o({"startup": ref("probe"), "readiness": ref("probe"), "liveness": ref("probe")}),
        "autoscaling": o(
            {
                "enabled": boolean(),
                "minReplicas": integer(1),
                "maxReplicas": integer(1),
                "targetCPUUtilizationPercentage": integer(1, 1000),
                "targetMemoryUtilizationPercentage": integer(0, 1000, desc="0 = off."),
            }
        ),
        "podDisruptionBudget": o(
            {"enabled": boolean(), "maxUnavailable": pct_or_int, "minAvailable": pct_or_int}
        ),
        "serviceAccount": o(
            {
                "create": boolean(),
                "name": string(pattern=DNS_NAME, maxLength=253),
                "annotations": string_map(),
                "automountToken": boolean(),
            }
        ),
        "service": o(
            {
                "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                "annotations": string_map(),
            }
        ),
        "podAnnotations": string_map(),
        "podLabels": string_map(),
        "nodeSelector": string_map(),
        "tolerations": array(ref("toleration")),
        "affinity": obj(
            {
                "nodeAffinity": {"type": "object"},
                "podAffinity": {"type": "object"},
                "podAntiAffinity": {"type": "object"},
            },
            desc="A Kubernetes Affinity.",
        ),
        "topologySpread": o(
            {
                "enabled": boolean(),
                "maxSkew": integer(1),
                "whenUnsatisfiable": {"enum": ["ScheduleAnyway", "DoNotSchedule"]},
                "topologyKeys": array(string(minLength=1)),
            }
        ),
        "priorityClassName": string(),
        "terminationGracePeriodSeconds": integer(
            6, desc="KG_SHUTDOWN_GRACE_SECS (the drain time of in-flight RPCs) is this less 5 s."
        ),
        "networkPolicy": o(
            {
                "clientAccess": boolean("Let networkPolicy.clientSelectors reach the gRPC port."),
                "extraIngress": array(
                    obj({"from": array(ref("networkPolicyPeer")), "ports": array(ref("networkPolicyPort"))})
                ),
                "extraEgress": array(
                    obj({"to": array(ref("networkPolicyPeer")), "ports": array(ref("networkPolicyPort"))})
                ),
            }
        ),
        "ingress": o(
            {
                "enabled": boolean(),
                "className": string(),
                "annotations": string_map(),
                "host": string(pattern=r"^([a-z0-9*]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$"),
                "paths": array(string(pattern=r"^/"), minItems=1),
                "tls": o({"enabled": boolean(), "secretName": string(pattern=DNS_NAME, maxLength=253)}),
            },
            desc="gRPC ingress (ingress-nginx backend-protocol GRPC/GRPCS).",
        ),
        "migrations": o(
            {"enabled": boolean(), "backoffLimit": integer(0), "activeDeadlineSeconds": integer(1)},
            desc="The pre-install/pre-upgrade Job running `koogallery-<service> migrate`.",
        ),
    }


SERVICE_NAMES = ["identity-check", "registration", "review", "notification"]

# What a service's binary talks to: the templates derive its secret files, NetworkPolicy rules and
# the back office's settings from this, never from the service's name. Not part of `defaults`.
WIRING = obj(
    {
        "calls": array(
            {"enum": SERVICE_NAMES},
            "The services it calls over gRPC (NetworkPolicy egress here, ingress there).",
            uniqueItems=True,
        ),
        "calledByBackoffice": boolean(
            "The back office calls its public API (KG_<SERVICE>_URL, NetworkPolicy)."
        ),
        "redis": boolean("KG_REDIS_URL_FILE (secrets.redis) and egress to networkPolicy.egress.redis."),
        "smtp": boolean("KG_SMTP_URL_FILE (secrets.smtp) and egress to networkPolicy.egress.smtp."),
        "sms": boolean(
            "With secrets.sms.enabled: KG_SMS_URL_FILE, KG_SMS_TOKEN_FILE and egress to networkPolicy.egress.sms."
        ),
        "websites": boolean("Egress to networkPolicy.egress.websites (the website check)."),
    },
    desc="What the service's binary talks to; fixed by its code. A switch left out is off.",
)
DEFINITIONS["wiring"] = WIRING


def service(extra: dict[str, Schema] | None = None) -> Schema:
    props = {"enabled": boolean(), **settings(full=False), "wiring": ref("wiring"), **(extra or {})}
    return obj(props)


def build() -> Schema:
    review_extra = {
        "timezone": string(
            "KG_TIMEZONE: an IANA time zone.", pattern=r"^[A-Za-z_]+(/[A-Za-z0-9_+-]+)*$"
        ),
        "calendar": obj(
            {"holidays": array(ref("date")), "extraWorkingDays": array(ref("date"))},
            desc="The working-day calendar (calendar.yaml, KG_CALENDAR_FILE).",
        ),
    }
    review_extra["requireVerifiedContacts"] = boolean(
        "KG_REQUIRE_VERIFIED_CONTACTS: approval waits until the applicant's addresses are verified."
    )
    registration_extra = {
        "contacts": obj(
            {
                "unreachableFailures": integer(1, desc="KG_CONTACT_UNREACHABLE_FAILURES."),
                "failureWindowHours": integer(1, desc="KG_CONTACT_FAILURE_WINDOW_HOURS."),
            },
            desc="When an account counts as unreachable.",
        ),
    }
    notification_extra = {
        "bounceAddress": string(
            'KG_SMTP_BOUNCE_ADDRESS, the envelope sender; "" = the From address.',
            pattern=r"^([^\s@<>]+@[^\s@<>]+)?$",
            maxLength=320,
        ),
        "bounceMailbox": obj(
            {
                "existingClaim": string(
                    'A PersistentVolumeClaim with the bounce Maildir (KG_BOUNCE_MAILDIR); "" = off.',
                    pattern=DNS_NAME,
                    maxLength=253,
                ),
            },
        ),
    }
    egress_names = ["dns", "postgres", "redis", "smtp", "sms", "otlp", "websites"]
    props: dict[str, Schema] = {
        "nameOverride": string(maxLength=63),
        "fullnameOverride": string(maxLength=63),
        "commonLabels": string_map(),
        "image": obj(
            {
                "repository": string(minLength=1),
                "tag": string('"" = the chart appVersion.'),
                "digest": string("sha256:... (wins over tag).", pattern=r"^(sha256:[a-f0-9]{64})?$"),
                "pullPolicy": {"enum": ["Always", "IfNotPresent", "Never"]},
            },
            required=True,
        ),
        "imagePullSecrets": array(obj({"name": string(minLength=1)}, required=True)),
        "ports": obj({"grpc": PORT, "metrics": PORT}, required=True),
        "otel": obj(
            {
                "endpoint": string("OTEL_EXPORTER_OTLP_ENDPOINT; \"\" = no export.", pattern=r"^(https?://.+)?$"),
                "resourceAttributes": {
                    "type": "object",
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
            },
            required=True,
        ),
        "tls": obj(
            {
                "enabled": boolean(),
                "existingSecret": string(pattern=DNS_NAME, maxLength=253),
                "clientAuth": boolean("mTLS: require client certificates signed by ca.crt."),
                "healthPort": PORT,
            },
            required=True,
        ),
        "secrets": obj(
            {
                "existingSecret": string(pattern=DNS_NAME, maxLength=253),
                "jwt": obj(
                    {
                        "mode": {"enum": ["hs256", "jwks"]},
                        "existingSecret": string(pattern=DNS_NAME, maxLength=253),
                        "key": string(pattern=SECRET_KEY),
                        "jwksKey": string(pattern=SECRET_KEY),
                    },
                    required=True,
                ),
                "serviceToken": ref("secretRef"),
                "redis": ref("secretRef"),
                "smtp": ref("secretRef"),
                "sms": obj(
                    {
                        "enabled": boolean(),
                        "existingSecret": string(pattern=DNS_NAME, maxLength=253),
                        "urlKey": string(pattern=SECRET_KEY),
                        "tokenKey": string(pattern=SECRET_KEY),
                    },
                    required=True,
                ),
            },
            required=True,
            desc="References to Secrets made out of band; never secret values.",
        ),
        "serviceMonitor": obj(
            {
                "enabled": boolean(),
                "interval": string(pattern=r"^([0-9]+(ms|s|m|h))+$"),
                "scrapeTimeout": string(pattern=r"^([0-9]+(ms|s|m|h))+$"),
                "labels": string_map(),
            },
            required=True,
        ),
        "backoffice": obj(
            {
                "enabled": boolean(),
                "replicaCount": integer(0),
                "port": PORT,
                "csrfSecret": obj(
                    {
                        "existingSecret": string(pattern=DNS_NAME, maxLength=253),
                        "key": string('"" = a random key per process.', pattern=r"^([-._a-zA-Z0-9]+)?$"),
                    },
                    required=True,
                    desc="Where KG_BACKOFFICE_CSRF_SECRET comes from.",
                ),
                "atRiskHours": integer(1),
                "env": {
                    "type": "object",
                    "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                    "additionalProperties": {"type": ["string", "number", "boolean"]},
                },
                "resources": obj(
                    {"requests": ref("resourceList"), "limits": ref("resourceList")},
                    required=["limits"],
                ),
                "service": obj(
                    {
                        "type": {"enum": ["ClusterIP", "NodePort", "LoadBalancer"]},
                        "port": PORT,
                        "annotations": string_map(),
                    },
                    required=True,
                ),
                "networkPolicy": obj({"proxySelectors": array(ref("networkPolicyPeer"))}, required=True),
                "ingress": obj(
                    {
                        "enabled": boolean(),
                        "className": string(),
                        "annotations": string_map(),
                        "host": string(pattern=r"^([a-z0-9*]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$"),
                        "tls": obj(
                            {"enabled": boolean(), "secretName": string(pattern=DNS_NAME, maxLength=253)},
                            required=True,
                        ),
                    },
                    required=True,
                ),
                "podAnnotations": string_map(),
                "nodeSelector": string_map(),
                "tolerations": array(ref("toleration")),
            },
            required=True,
            desc="The reviewers' back office behind an auth proxy (Authorization: Bearer <JWT>).",
        ),
        "demo": obj(
            {
                "enabled": boolean("DEMO ONLY: one `koogallery up` Deployment with SQLite instead of the services."),
                "persistence": obj(
                    {
                        "enabled": boolean("A PersistentVolumeClaim; false = an emptyDir."),
                        "size": ref("memoryQuantity"),
                        "storageClassName": string(pattern=DNS_NAME, maxLength=253),
                    },
                    required=True,
                ),
                "resources": obj(
                    {"requests": ref("resourceList"), "limits": ref("resourceList")},
                    required=["limits"],
                ),
            },
            required=True,
            desc="Not for production: see docs/operations.md.",
        ),
        "grafanaDashboard": obj(
            {
                "enabled": boolean(),
                "namespace": string('"" = the release namespace.', pattern=DNS_NAME, maxLength=63),
                "labels": string_map(),
                "annotations": string_map(),
            },
            required=True,
            desc="files/grafana-dashboard.json as a ConfigMap for the Grafana sidecar.",
        ),
        "prometheusRule": obj(
            {
                "enabled": boolean(),
                "labels": string_map(),
                "thresholds": obj(
                    {
                        "contactsUndeliverablePerHour": integer(
                            0, desc="KooGalleryContactsUndeliverable: addresses an hour."
                        ),
                        "malformedBounceReportsPerHour": integer(
                            0, desc="KooGalleryBounceReportsMalformed: malformed reports an hour."
                        ),
                    },
                    required=True,
                    desc="Alert thresholds written into the rules.",
                ),
            },
            required=True,
            desc="files/prometheus-rules.yaml as a PrometheusRule.",
        ),
        "networkPolicy": obj(
            {
                "enabled": boolean(),
                "clientSelectors": array(ref("networkPolicyPeer")),
                "metricsSelectors": array(ref("networkPolicyPeer")),
                "ingressControllerSelectors": array(ref("networkPolicyPeer")),
                "egress": obj({n: array(ref("egressTarget")) for n in egress_names}, required=True),
            },
            required=True,
        ),
        "tests": obj(
            {
                "enabled": boolean(),
                "resources": obj(
                    {"requests": ref("resourceList"), "limits": ref("resourceList")},
                    required=["limits"],
                ),
            },
            required=True,
        ),
        "defaults": obj(settings(full=True), required=True, desc="Settings every service starts from."),
        "services": obj(
            {
                "identity-check": service(),
                "registration": service(registration_extra),
                "review": service(review_extra),
                "notification": service(notification_extra),
            },
            required=True,
        ),
    }
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "KooGallery chart values",
        "definitions": DEFINITIONS,
        **obj(props, required=[k for k in props if k not in ("nameOverride", "fullnameOverride", "commonLabels", "imagePullSecrets")]),
    }


def render() -> str:
    return json.dumps(build(), indent=2) + "\n"


def main() -> int:
    text = render()
    if "--check" in sys.argv[1:]:
        if SCHEMA_PATH.read_text() != text:
            print(f"{SCHEMA_PATH} is stale: run python3 tests/chart/gen_schema.py", file=sys.stderr)
            return 1
        return 0
    SCHEMA_PATH.write_text(text)
    print(f"wrote {SCHEMA_PATH}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
