"""Offline tests of the koogallery Helm chart: lint, render, schema, golden files, policy.

Run:  python3 -m venv .venv && .venv/bin/pip install helm-python-sdk kubernetes-validate pytest pyyaml
      .venv/bin/pytest tests/chart
Regenerate the golden renders after an intended change:  UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from typing import Any

import helm_python
import pytest
import yaml

import chart_helpers as ch
import gen_schema

SCENARIOS = ch.scenario_names()
# The demo profile runs one `koogallery up` in place of the per-service workloads.
SERVICE_SCENARIOS = [s for s in SCENARIOS if s != "demo"]
WORKLOAD_KINDS = ("Deployment", "Job", "Pod")


# --- the scenario set ------------------------------------------------------------------------------


def test_scenarios_cover_the_required_cases() -> None:
    required = {"defaults", "production", "existing-secrets", "minimal"}
    required |= {f"without-{svc}" for svc in ch.SERVICES}
    assert required <= set(SCENARIOS), f"missing scenarios: {sorted(required - set(SCENARIOS))}"


def test_no_golden_file_is_orphaned() -> None:
    """Every golden file belongs to a scenario (a missing one fails test_golden_render)."""
    goldens = {p.stem for p in ch.GOLDEN_DIR.glob("*.yaml")}
    orphans = goldens - set(SCENARIOS)
    assert not orphans, f"golden files without a scenario: {sorted(orphans)}"


# --- lint ------------------------------------------------------------------------------------------


def test_chart_metadata() -> None:
    meta = ch.chart().metadata
    assert meta["name"] == "koogallery"
    assert meta["apiVersion"] == "v2"
    assert meta["appVersion"] == "0.1.0"


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_lint_strict_is_clean(scenario: str) -> None:
    """`helm lint --strict` equivalent: no warning and no error (INFO such as "icon is
    recommended" is not a finding under --strict)."""
    report = helm_python.lint(
        ch.CHART_DIR,
        ch.scenario_values(scenario),
        strict=True,
        kube_version=ch.LINT_KUBE_VERSION,
    )
    findings = [m for m in report["messages"] if m["severity"] >= 2]
    assert not findings, json.dumps(findings, indent=2)
    assert not report["errors"], report["errors"]


def test_lint_reports_bad_values() -> None:
    """The lint is not vacuous: a wrong type is an error finding."""
    report = helm_python.lint(ch.CHART_DIR, {"defaults": {"replicaCount": "two"}}, strict=True)
    assert any(m["severity"] == 3 and "replicaCount" in m["error"] for m in report["messages"])


# --- render and validate ---------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_renders_and_every_manifest_validates(scenario: str) -> None:
    objs = ch.scenario_manifests(scenario)
    assert objs, "nothing rendered"
    failures = []
    for obj in objs:
        assert obj.get("apiVersion") and obj.get("kind"), f"not a Kubernetes object: {obj!r:.200}"
        if ch.is_crd_kind(obj):
            CRD_CHECKS[obj["kind"]](obj)  # not in the Kubernetes schema: checked by hand
            continue
        for version in ch.K8S_VERSIONS:
            try:
                ch.validate_k8s(obj, version)
            except Exception as err:  # noqa: BLE001 - report every failure at once
                message = getattr(err, "message", str(err))
                path = "/".join(str(p) for p in getattr(err, "absolute_path", []))
                failures.append(f"{ch.kind_name(obj)} (k8s {version}) at /{path}: {message}")
    assert not failures, "\n".join(failures)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_resource_names_are_unique_and_short(scenario: str) -> None:
    seen = set()
    for obj in ch.scenario_manifests(scenario):
        key = (obj["kind"], obj["metadata"]["name"])
        assert key not in seen, f"duplicate {key}"
        seen.add(key)
        assert len(obj["metadata"]["name"]) <= 63
        assert obj["metadata"].get("namespace", ch.NAMESPACE) == ch.NAMESPACE


def test_long_release_name_keeps_names_valid_and_distinct() -> None:
    name = "a-very-long-release-name-for-the-koogallery-platform-x"[:53]
    objs = ch.manifests({}, name=name)
    names = [(o["kind"], o["metadata"]["name"]) for o in objs]
    assert len(names) == len(set(names))
    for kind, obj_name in names:
        assert len(obj_name) <= 63, (kind, obj_name)
        assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", obj_name), (kind, obj_name)
    for obj in objs:
        if not ch.is_crd_kind(obj):
            ch.validate_k8s(obj, "1.33.0")


def test_kubernetes_validate_is_strict() -> None:
    """The validation above is not vacuous: an unknown field and a wrong type are refused."""
    deployment = ch.one(ch.scenario_manifests("defaults"), "Deployment", "koogallery-registration")
    deployment["spec"]["template"]["spec"]["containers"][0]["livenessProbe"]["grpcc"] = {}
    with pytest.raises(Exception, match="grpcc"):
        ch.validate_k8s(deployment, "1.33.0")
    deployment = ch.one(ch.scenario_manifests("defaults"), "Deployment", "koogallery-registration")
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(Exception, match="two"):
        ch.validate_k8s(deployment, "1.33.0")


# --- golden renders --------------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_golden_render(scenario: str) -> None:
    diff = ch.compare_golden(scenario, ch.golden_text(ch.scenario_values(scenario)))
    if diff:
        pytest.fail(
            f"render of scenarios/{scenario}.yaml differs from golden/{scenario}.yaml "
            f"(UPDATE_GOLDEN=1 .venv/bin/pytest tests/chart regenerates it):\n{diff}",
            pytrace=False,
        )


def test_render_is_deterministic() -> None:
    values = ch.scenario_values("production")
    assert ch.golden_text(values) == ch.golden_text(values)


# --- values.schema.json ----------------------------------------------------------------------------


def test_schema_file_is_generated_and_current() -> None:
    on_disk = (ch.CHART_DIR / "values.schema.json").read_text()
    assert on_disk == gen_schema.render(), "run: python3 tests/chart/gen_schema.py"


def _walk(node: Any, path: str = "#"):
    if isinstance(node, dict):
        yield path, node
        for key, child in node.items():
            yield from _walk(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _walk(child, f"{path}/{i}")


def test_schema_is_draft07_and_closed_everywhere() -> None:
    schema = ch.chart().schema
    assert schema is not None
    assert schema["$schema"] == "http://json-schema.org/draft-07/schema#"
    open_objects = [
        path
        for path, node in _walk(schema)
        if isinstance(node, dict) and "properties" in node and node.get("additionalProperties") is not False
    ]
    assert not open_objects, f"objects that accept unknown keys: {open_objects}"


def test_chart_defaults_satisfy_the_schema() -> None:
    ch.chart().validate_schema({})
    ch.chart().validate_schema(ch.chart().values)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"replicas": 3}, ["replicas", "additional properties"]),
        ({"services": {"registration": {"replicas": 3}}}, ["/services/registration", "replicas"]),
        ({"services": {"billing": {"enabled": True}}}, ["/services", "billing"]),
        ({"defaults": {"probes": {"readiness": {"path": "/"}}}}, ["/defaults/probes/readiness", "path"]),
        ({"secrets": {"jwt": {"secret": "hunter2"}}}, ["/secrets/jwt", "secret"]),
        ({"services": {"registration": {"timezone": "UTC"}}}, ["/services/registration", "timezone"]),
        ({"defaults": {"wiring": {"redis": True}}}, ["/defaults", "wiring"]),
        ({"services": {"review": {"wiring": {"kafka": True}}}}, ["/services/review/wiring", "kafka"]),
    ],
    ids=["top-level", "service", "unknown-service", "probe", "plain-secret", "review-only-key", "wiring-in-defaults", "wiring-key"],
)
def test_schema_refuses_unknown_keys(values: dict[str, Any], expected: list[str]) -> None:
    message = ch.schema_error(values)
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"defaults": {"replicaCount": "two"}}, ["/defaults/replicaCount", "got string, want integer"]),
        ({"networkPolicy": {"enabled": "yes"}}, ["/networkPolicy/enabled", "got string, want boolean"]),
        ({"ports": {"grpc": 70000}}, ["/ports/grpc", "maximum", "65,535"]),
        ({"services": {"review": {"calendar": {"holidays": "2026-10-01"}}}}, ["/services/review/calendar/holidays", "want array"]),
        ({"defaults": {"resources": {"limits": {"cpu": "lots"}}}}, ["/defaults/resources/limits/cpu", "lots"]),
        ({"secrets": {"jwt": {"mode": "rs256"}}}, ["/secrets/jwt/mode", "must be one of 'hs256', 'jwks'"]),
        ({"image": {"digest": "latest"}}, ["/image/digest", "latest"]),
        ({"services": {"review": {"wiring": {"calls": ["billing"]}}}}, ["/services/review/wiring/calls/0", "must be one of"]),
        ({"services": {"review": {"wiring": {"redis": "yes"}}}}, ["/services/review/wiring/redis", "want boolean"]),
    ],
    ids=["integer", "boolean", "port-range", "array", "cpu-quantity", "enum", "digest", "wiring-callee", "wiring-switch"],
)
def test_schema_refuses_wrong_types(values: dict[str, Any], expected: list[str]) -> None:
    message = ch.schema_error(values)
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"


def test_render_refuses_values_the_schema_refuses() -> None:
    with pytest.raises(helm_python.HelmValuesError, match="replicaCount"):
        ch.render({"defaults": {"replicaCount": "two"}})


# --- workloads: probes, resources, security --------------------------------------------------------


def _workloads(scenario: str) -> list[dict[str, Any]]:
    return [o for o in ch.scenario_manifests(scenario) if o["kind"] in WORKLOAD_KINDS]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_workload_has_limits_and_a_non_root_security_context(scenario: str) -> None:
    workloads = _workloads(scenario)
    assert workloads
    for obj in workloads:
        spec = ch.pod_spec(obj)
        where = ch.kind_name(obj)
        pod_sc = spec["securityContext"]
        assert pod_sc["runAsNonRoot"] is True, where
        assert pod_sc["runAsUser"] == 65532, where
        assert pod_sc["seccompProfile"]["type"] == "RuntimeDefault", where
        assert spec.get("automountServiceAccountToken") is False, where
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"] + spec.get("initContainers", []):
            cwhere = f"{where} container {container['name']}"
            limits = container.get("resources", {}).get("limits", {})
            assert limits.get("cpu") and limits.get("memory"), f"{cwhere}: no cpu/memory limits"
            requests = container.get("resources", {}).get("requests", {})
            assert requests.get("cpu") and requests.get("memory"), f"{cwhere}: no requests"
            sc = container["securityContext"]
            assert sc["runAsNonRoot"] is True, cwhere
            assert sc["runAsUser"] == 65532, cwhere
            assert sc["readOnlyRootFilesystem"] is True, cwhere
            assert sc["allowPrivilegeEscalation"] is False, cwhere
            assert sc["capabilities"]["drop"] == ["ALL"], cwhere
            assert not sc["capabilities"].get("add"), cwhere
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", cwhere
            assert not sc.get("privileged"), cwhere
            tmp = [m for m in container.get("volumeMounts", []) if m["mountPath"] == "/tmp"]
            assert tmp and "emptyDir" in volumes[tmp[0]["name"]], f"{cwhere}: no emptyDir at /tmp"


@pytest.mark.parametrize("scenario", SERVICE_SCENARIOS)
def test_every_deployment_has_native_grpc_probes(scenario: str) -> None:
    values = ch.scenario_values(scenario)
    tls = values.get("tls", {}).get("enabled", False)
    deployments = [d for d in ch.find(ch.scenario_manifests(scenario), "Deployment") if ch.component(d) in ch.SERVICES]
    assert deployments
    for obj in deployments:
        container = ch.pod_spec(obj)["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["grpc"] == 50051 and ports["metrics"] == 9090
        expected_port = ports["health"] if tls else 50051
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert probe in container, f"{ch.kind_name(obj)}: no {probe}"
            spec = container[probe]
            assert set(spec) & {"httpGet", "tcpSocket", "exec"} == set(), spec
            assert spec["grpc"]["port"] == expected_port, f"{ch.kind_name(obj)} {probe}: {spec}"
            assert spec["failureThreshold"] >= 1 and spec["periodSeconds"] >= 1


def test_tls_probes_use_the_plaintext_health_listener() -> None:
    objs = ch.scenario_manifests("production")
    for svc in ch.SERVICES:
        config = ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"]
        assert config["KG_HEALTH_LISTEN_ADDR"] == "0.0.0.0:50052"
        service = ch.one(objs, "Service", f"koogallery-{svc}")
        assert {p["name"] for p in service["spec"]["ports"]} == {"grpc", "metrics"}, (
            "the plaintext health port must not be exposed by the Service"
        )


@pytest.mark.parametrize("scenario", SERVICE_SCENARIOS)
def test_deployments_run_the_service_binary(scenario: str) -> None:
    for obj in ch.find(ch.scenario_manifests(scenario), "Deployment"):
        svc = ch.component(obj)
        if svc == "backoffice":
            continue  # test_backoffice_deployment
        container = ch.pod_spec(obj)["containers"][0]
        assert container["command"] == [f"koogallery-{svc}"]
        assert container["envFrom"] == [{"configMapRef": {"name": f"koogallery-{svc}"}}]


# --- TOKIO_WORKER_THREADS ------------------------------------------------------------------------


def _worker_threads(values: dict[str, Any], svc: str = "registration") -> str:
    cm = ch.one(ch.manifests(values), "ConfigMap", f"koogallery-{svc}")
    return cm["data"]["TOKIO_WORKER_THREADS"]


@pytest.mark.parametrize(
    ("cpu", "threads"),
    [
        ("100m", 1),
        ("500m", 1),
        ("1000m", 1),
        ("1001m", 2),
        ("1500m", 2),
        ("1", 1),
        ("2", 2),
        (2, 2),
        ("2.5", 3),
        (0.5, 1),
        ("4000m", 4),
        (8, 8),
    ],
)
def test_tokio_worker_threads_follow_the_cpu_limit(cpu: Any, threads: int) -> None:
    values = {"defaults": {"resources": {"limits": {"cpu": cpu}}}}
    assert _worker_threads(values) == str(threads)
    cpu_value = float(cpu[:-1]) / 1000 if isinstance(cpu, str) and cpu.endswith("m") else float(cpu)
    assert threads == max(1, math.ceil(cpu_value))


def test_tokio_worker_threads_per_service_override() -> None:
    values = {
        "defaults": {"resources": {"limits": {"cpu": "500m"}}},
        "services": {"review": {"resources": {"limits": {"cpu": "3"}}}},
    }
    assert _worker_threads(values, "registration") == "1"
    assert _worker_threads(values, "review") == "3"
    # the override touched only the cpu limit: the rest of the defaults still apply
    deployment = ch.one(ch.manifests(values), "Deployment", "koogallery-review")
    resources = ch.pod_spec(deployment)["containers"][0]["resources"]
    assert resources["limits"] == {"cpu": "3", "memory": "512Mi"}
    assert resources["requests"] == {"cpu": "250m", "memory": "128Mi"}


def test_production_worker_threads() -> None:
    objs = ch.scenario_manifests("production")
    data = {svc: ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"] for svc in ch.SERVICES}
    assert data["identity-check"]["TOKIO_WORKER_THREADS"] == "2"  # 1500m
    assert data["registration"]["TOKIO_WORKER_THREADS"] == "2"  # "2"


# --- configuration and secrets ---------------------------------------------------------------------


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_secrets_are_only_referenced(scenario: str) -> None:
    objs = ch.scenario_manifests(scenario)
    assert not ch.find(objs, "Secret"), "the chart must never create a Secret"
    for cm in ch.find(objs, "ConfigMap"):
        leaked = ch.SECRET_ENV & set(cm.get("data", {}))
        assert not leaked, f"{ch.kind_name(cm)} holds {leaked}"
        for value in cm.get("data", {}).values():
            assert not re.search(r"://[^/@\s]+:[^/@\s]+@", value), f"credentials in {ch.kind_name(cm)}"
    for obj in objs:
        if obj["kind"] not in WORKLOAD_KINDS:
            continue
        for container in ch.pod_spec(obj)["containers"]:
            env = ch.container_env(container)
            # secrets reach the process as files only (checkov CKV_K8S_35): neither the value
            # nor a secretKeyRef in the environment
            leaked = ch.SECRET_ENV & set(env)
            assert not leaked, f"{ch.kind_name(obj)}: {leaked}"
            refs = [n for n, e in env.items() if "secretKeyRef" in e.get("valueFrom", {})]
            assert not refs, f"{ch.kind_name(obj)}: secretKeyRef env {refs}"
            assert "envFrom" not in container or all("secretRef" not in e for e in container["envFrom"])


def _secret_files(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """KG_X -> (Secret, key) of a workload, resolved as the kubelet would: KG_X_FILE names a
    path, a read-only mount holds it, and the projected volume maps a Secret key to that file."""
    spec = ch.pod_spec(obj)
    container = spec["containers"][0]
    volumes = {v["name"]: v for v in spec["volumes"]}
    out = {}
    for name, env in ch.container_env(container).items():
        if not (name.endswith("_FILE") and name.removesuffix("_FILE") in ch.SECRET_ENV):
            continue
        path = env["value"]
        mount = next(m for m in container["volumeMounts"] if path.startswith(m["mountPath"] + "/"))
        assert mount.get("readOnly") is True, f"{ch.kind_name(obj)}: {mount} is writable"
        volume = volumes[mount["name"]]["projected"]
        assert volume["defaultMode"] & 0o077 == 0o040, f"{oct(volume['defaultMode'])}: group read only"
        relative = path[len(mount["mountPath"]) + 1 :]
        found = [
            (src["secret"]["name"], item["key"])
            for src in volume["sources"]
            for item in src["secret"]["items"]
            if item["path"] == relative
        ]
        assert len(found) == 1, f"{ch.kind_name(obj)}: {path} maps to {found}"
        out[name.removesuffix("_FILE")] = found[0]
    return out


def _secret_refs(objs: list[dict[str, Any]], svc: str) -> dict[str, tuple[str, str]]:
    return _secret_files(ch.one(objs, "Deployment", f"koogallery-{svc}"))


def test_each_service_gets_exactly_its_secrets() -> None:
    objs = ch.scenario_manifests("defaults")
    common = {"KG_DATABASE_URL", "KG_JWT_SECRET", "KG_SERVICE_TOKEN"}
    expected = {
        "identity-check": common,
        "registration": common | {"KG_REDIS_URL"},
        "review": common,
        "notification": common | {"KG_SMTP_URL", "KG_SMS_URL", "KG_SMS_TOKEN"},
    }
    for svc, names in expected.items():
        refs = _secret_refs(objs, svc)
        assert set(refs) == names, svc
        assert refs["KG_DATABASE_URL"] == ("koogallery-secrets", f"{svc}-database-url")
        assert {secret for secret, _ in refs.values()} == {"koogallery-secrets"}


def test_existing_secrets_are_used_as_named() -> None:
    objs = ch.scenario_manifests("existing-secrets")
    reg = _secret_refs(objs, "registration")
    assert reg["KG_DATABASE_URL"] == ("registration-db-app", "uri")
    assert reg["KG_REDIS_URL"] == ("registration-redis", "url")
    assert reg["KG_JWT_SECRET"] == ("koogallery-jwt", "hs256-key")
    assert reg["KG_SERVICE_TOKEN"] == ("koogallery-service-token", "token")
    notif = _secret_refs(objs, "notification")
    assert notif["KG_SMTP_URL"] == ("mail-relay", "smtp-url")
    assert notif["KG_SMS_URL"] == ("sms-provider", "endpoint")
    assert notif["KG_SMS_TOKEN"] == ("sms-provider", "api-token")
    for svc in ch.SERVICES:
        assert _secret_refs(objs, svc)["KG_DATABASE_URL"] == (f"{svc}-db-app", "uri")
        job = ch.one(objs, "Job", f"koogallery-{svc}-migrate")
        assert _secret_files(job) == {"KG_DATABASE_URL": (f"{svc}-db-app", "uri")}


def test_jwks_mode_mounts_the_key_set() -> None:
    objs = ch.scenario_manifests("production")
    for svc in ch.SERVICES:
        deployment = ch.one(objs, "Deployment", f"koogallery-{svc}")
        spec = ch.pod_spec(deployment)
        assert "KG_JWT_SECRET" not in _secret_refs(objs, svc)
        config = ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"]
        assert config["KG_JWT_JWKS_FILE"] == "/etc/koogallery/jwt/jwks.json"
        volume = next(v for v in spec["volumes"] if v["name"] == "jwks")
        assert volume["secret"]["secretName"] == "koogallery-jwks"
        mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "jwks")
        assert mount["mountPath"] == "/etc/koogallery/jwt" and mount["readOnly"] is True


def test_sms_can_be_switched_off() -> None:
    objs = ch.scenario_manifests("minimal")
    refs = _secret_refs(objs, "notification")
    assert "KG_SMTP_URL" in refs
    assert not {"KG_SMS_URL", "KG_SMS_TOKEN"} & set(refs)


def test_configuration_contract_defaults() -> None:
    objs = ch.scenario_manifests("defaults")
    for svc in ch.SERVICES:
        data = ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"]
        assert data["KG_LISTEN_ADDR"] == "0.0.0.0:50051"
        assert data["KG_METRICS_ADDR"] == "0.0.0.0:9090"
        assert data["KG_IDENTITY_CHECK_URL"] == "http://koogallery-identity-check:50051"
        assert data["KG_REGISTRATION_URL"] == "http://koogallery-registration:50051"
        assert data["KG_REVIEW_URL"] == "http://koogallery-review:50051"
        assert data["KG_NOTIFICATION_URL"] == "http://koogallery-notification:50051"
        assert data["KG_LOG_FORMAT"] == "json"
        assert data["RUST_LOG"] == "info"
        assert data["OTEL_SERVICE_NAME"] == f"koogallery-{svc}"
        assert data["KG_SHUTDOWN_GRACE_SECS"] == "25"  # terminationGracePeriodSeconds 30 - 5
        assert "OTEL_EXPORTER_OTLP_ENDPOINT" not in data
        assert not any(k.startswith("KG_TLS_") for k in data)
        assert ("KG_TIMEZONE" in data) == (svc == "review")


def test_configuration_contract_production() -> None:
    objs = ch.scenario_manifests("production")
    for svc in ch.SERVICES:
        data = ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"]
        assert data["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://otel-collector.observability.svc:4317"
        assert data["OTEL_RESOURCE_ATTRIBUTES"] == "deployment.environment=production"
        assert data["KG_REGISTRATION_URL"] == "https://koogallery-registration:50051"
        assert data["KG_TLS_CERT"] == "/etc/koogallery/tls/tls.crt"
        assert data["KG_TLS_KEY"] == "/etc/koogallery/tls/tls.key"
        assert data["KG_TLS_CLIENT_CA"] == "/etc/koogallery/tls/ca.crt"
        spec = ch.pod_spec(ch.one(objs, "Deployment", f"koogallery-{svc}"))
        tls = next(v for v in spec["volumes"] if v["name"] == "tls")
        assert tls["secret"]["secretName"] == "koogallery-mesh-tls"
    assert ch.one(objs, "ConfigMap", "koogallery-registration")["data"]["RUST_BACKTRACE"] == "1"


def test_review_calendar_and_timezone() -> None:
    objs = ch.scenario_manifests("production")
    data = ch.one(objs, "ConfigMap", "koogallery-review")["data"]
    assert data["KG_TIMEZONE"] == "Asia/Shanghai"
    assert data["KG_CALENDAR_FILE"] == "/etc/koogallery/calendar/calendar.yaml"
    calendar = yaml.safe_load(ch.one(objs, "ConfigMap", "koogallery-review-calendar")["data"]["calendar.yaml"])
    assert calendar == {
        "timezone": "Asia/Shanghai",
        "holidays": ["2026-10-01", "2026-10-02", "2026-10-05"],
        "extra_working_days": ["2026-10-10"],
    }
    spec = ch.pod_spec(ch.one(objs, "Deployment", "koogallery-review"))
    volume = next(v for v in spec["volumes"] if v["name"] == "calendar")
    assert volume["configMap"]["name"] == "koogallery-review-calendar"
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "calendar")
    assert mount["mountPath"] == "/etc/koogallery/calendar"


def test_contact_reachability_settings_defaults() -> None:
    objs = ch.scenario_manifests("defaults")
    data = {svc: ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"] for svc in ch.SERVICES}
    assert data["registration"]["KG_CONTACT_UNREACHABLE_FAILURES"] == "3"
    assert data["registration"]["KG_CONTACT_FAILURE_WINDOW_HOURS"] == "720"
    assert data["review"]["KG_REQUIRE_VERIFIED_CONTACTS"] == "false"
    # notification reports undeliverable addresses to registration, as review sends it decisions
    assert data["notification"]["KG_REGISTRATION_URL"] == data["review"]["KG_REGISTRATION_URL"]
    assert data["notification"]["KG_REGISTRATION_URL"] == "http://koogallery-registration:50051"
    # no bounce mailbox unless one is given
    assert not {"KG_BOUNCE_MAILDIR", "KG_SMTP_BOUNCE_ADDRESS"} & set(data["notification"])
    spec = ch.pod_spec(ch.one(objs, "Deployment", "koogallery-notification"))
    assert "bounces" not in {v["name"] for v in spec["volumes"]}
    assert "bounces" not in {m["name"] for m in spec["containers"][0]["volumeMounts"]}
    owned = {
        "KG_CONTACT_UNREACHABLE_FAILURES": "registration",
        "KG_CONTACT_FAILURE_WINDOW_HOURS": "registration",
        "KG_REQUIRE_VERIFIED_CONTACTS": "review",
    }
    for name, owner in owned.items():
        assert [svc for svc in ch.SERVICES if name in data[svc]] == [owner], name


def test_contact_reachability_settings_production() -> None:
    objs = ch.scenario_manifests("production")
    data = {svc: ch.one(objs, "ConfigMap", f"koogallery-{svc}")["data"] for svc in ch.SERVICES}
    assert data["registration"]["KG_CONTACT_UNREACHABLE_FAILURES"] == "5"
    assert data["registration"]["KG_CONTACT_FAILURE_WINDOW_HOURS"] == "168"
    assert data["review"]["KG_REQUIRE_VERIFIED_CONTACTS"] == "true"
    assert data["notification"]["KG_REGISTRATION_URL"] == "https://koogallery-registration:50051"
    assert data["notification"]["KG_SMTP_BOUNCE_ADDRESS"] == "bounces@koogallery.example.com"
    assert data["notification"]["KG_BOUNCE_MAILDIR"] == "/var/lib/koogallery/bounces"
    for svc in ("identity-check", "registration", "review"):
        assert not {"KG_BOUNCE_MAILDIR", "KG_SMTP_BOUNCE_ADDRESS"} & set(data[svc]), svc
    spec = ch.pod_spec(ch.one(objs, "Deployment", "koogallery-notification"))
    volume = next(v for v in spec["volumes"] if v["name"] == "bounces")
    assert volume == {"name": "bounces", "persistentVolumeClaim": {"claimName": "koogallery-bounces"}}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == "bounces")
    assert mount["mountPath"] == data["notification"]["KG_BOUNCE_MAILDIR"]
    assert not mount.get("readOnly"), "the service moves read reports from new/ to cur/"
    assert spec["securityContext"]["fsGroup"] == 65532, "the non-root process may write the claim"
    for svc in ("identity-check", "registration", "review"):
        other = ch.pod_spec(ch.one(objs, "Deployment", f"koogallery-{svc}"))
        assert "bounces" not in {v["name"] for v in other["volumes"]}, svc


def test_bounce_address_and_mailbox_are_independent() -> None:
    values = {"services": {"notification": {"bounceAddress": "bounces@example.com"}}}
    data = ch.one(ch.manifests(values), "ConfigMap", "koogallery-notification")["data"]
    assert data["KG_SMTP_BOUNCE_ADDRESS"] == "bounces@example.com"
    assert "KG_BOUNCE_MAILDIR" not in data
    values = {"services": {"notification": {"bounceMailbox": {"existingClaim": "mail"}}}}
    data = ch.one(ch.manifests(values), "ConfigMap", "koogallery-notification")["data"]
    assert data["KG_BOUNCE_MAILDIR"] == "/var/lib/koogallery/bounces"
    assert "KG_SMTP_BOUNCE_ADDRESS" not in data


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"services": {"notification": {"bounceAddress": "not an address"}}}, ["/services/notification/bounceAddress"]),
        ({"services": {"notification": {"bounceMailbox": {"existingClaim": "Bad_Claim"}}}}, ["/services/notification/bounceMailbox/existingClaim"]),
        ({"services": {"notification": {"bounceMailbox": {"claim": "x"}}}}, ["/services/notification/bounceMailbox", "claim"]),
        ({"services": {"registration": {"contacts": {"unreachableFailures": 0}}}}, ["/services/registration/contacts/unreachableFailures"]),
        ({"services": {"registration": {"contacts": {"failureWindowHours": "30d"}}}}, ["/services/registration/contacts/failureWindowHours"]),
        ({"services": {"review": {"requireVerifiedContacts": "yes"}}}, ["/services/review/requireVerifiedContacts", "want boolean"]),
        ({"services": {"review": {"bounceAddress": "a@b.c"}}}, ["/services/review", "bounceAddress"]),
        ({"prometheusRule": {"thresholds": {"contactsUndeliverablePerHour": -1}}}, ["/prometheusRule/thresholds/contactsUndeliverablePerHour"]),
    ],
    ids=["bounce-address", "claim-name", "claim-unknown-key", "failures-zero", "window-type", "verified-type", "notification-only-key", "threshold"],
)
def test_schema_refuses_bad_contact_settings(values: dict[str, Any], expected: list[str]) -> None:
    message = ch.schema_error(values)
    for text in expected:
        assert text in message, f"{text!r} not in {message!r}"


def test_config_change_rolls_the_pods() -> None:
    before = ch.one(ch.manifests({}), "Deployment", "koogallery-registration")
    after = ch.one(ch.manifests({"defaults": {"rustLog": "debug"}}), "Deployment", "koogallery-registration")
    key = "checksum/config"
    assert before["spec"]["template"]["metadata"]["annotations"][key] != (
        after["spec"]["template"]["metadata"]["annotations"][key]
    )


def test_image_defaults_to_app_version_and_digest_wins() -> None:
    deployment = ch.one(ch.scenario_manifests("defaults"), "Deployment", "koogallery-review")
    assert ch.pod_spec(deployment)["containers"][0]["image"] == "ghcr.io/koogallery/koogallery:0.1.0"
    deployment = ch.one(ch.scenario_manifests("production"), "Deployment", "koogallery-review")
    assert ch.pod_spec(deployment)["containers"][0]["image"].startswith("ghcr.io/koogallery/koogallery@sha256:")


# --- scaling and availability ----------------------------------------------------------------------


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_selectors_match_the_pods(scenario: str) -> None:
    objs = ch.scenario_manifests(scenario)
    pods = {
        ch.component(d): d["spec"]["template"]["metadata"]["labels"] for d in ch.find(objs, "Deployment")
    }
    for d in ch.find(objs, "Deployment"):
        assert _selects(d["spec"]["selector"]["matchLabels"], pods[ch.component(d)])
    for svc in ch.find(objs, "Service"):
        assert _selects(svc["spec"]["selector"], pods[ch.component(svc)])
    for pdb in ch.find(objs, "PodDisruptionBudget"):
        assert _selects(pdb["spec"]["selector"]["matchLabels"], pods[ch.component(pdb)])
    for np in ch.find(objs, "NetworkPolicy"):
        assert _selects(np["spec"]["podSelector"]["matchLabels"], pods[ch.component(np)])
    for hpa in ch.find(objs, "HorizontalPodAutoscaler"):
        target = hpa["spec"]["scaleTargetRef"]
        deployment = ch.one(objs, "Deployment", target["name"])
        assert "replicas" not in deployment["spec"], "the HPA owns the replica count"
    for d in ch.find(objs, "Deployment"):
        for tsc in ch.pod_spec(d).get("topologySpreadConstraints", []):
            assert _selects(tsc["labelSelector"]["matchLabels"], pods[ch.component(d)])


def test_production_scales_and_spreads() -> None:
    objs = ch.scenario_manifests("production")
    for svc in ch.SERVICES:
        hpa = ch.one(objs, "HorizontalPodAutoscaler", f"koogallery-{svc}")
        assert hpa["apiVersion"] == "autoscaling/v2"
        assert hpa["spec"]["minReplicas"] == 3
        assert hpa["spec"]["maxReplicas"] == (4 if svc == "notification" else 12)
        metrics = {m["resource"]["name"]: m["resource"]["target"]["averageUtilization"] for m in hpa["spec"]["metrics"]}
        assert metrics == {"cpu": 65, "memory": 80}
        pdb = ch.one(objs, "PodDisruptionBudget", f"koogallery-{svc}")
        assert pdb["spec"]["minAvailable"] == 2
        assert "maxUnavailable" not in pdb["spec"]
        spec = ch.pod_spec(ch.one(objs, "Deployment", f"koogallery-{svc}"))
        assert [t["topologyKey"] for t in spec["topologySpreadConstraints"]] == ["topology.kubernetes.io/zone"]
        assert spec["topologySpreadConstraints"][0]["whenUnsatisfiable"] == "DoNotSchedule"
        assert spec["priorityClassName"] == "platform-critical"


def test_defaults_have_a_pdb_and_spread_but_no_hpa() -> None:
    objs = ch.scenario_manifests("defaults")
    assert not ch.find(objs, "HorizontalPodAutoscaler")
    for svc in ch.SERVICES:
        assert ch.one(objs, "PodDisruptionBudget", f"koogallery-{svc}")["spec"]["maxUnavailable"] == 1
        deployment = ch.one(objs, "Deployment", f"koogallery-{svc}")
        assert deployment["spec"]["replicas"] == 2
        keys = [t["topologyKey"] for t in ch.pod_spec(deployment)["topologySpreadConstraints"]]
        assert keys == ["topology.kubernetes.io/zone", "kubernetes.io/hostname"]


def test_minimal_leaves_out_the_optional_parts() -> None:
    objs = ch.scenario_manifests("minimal")
    kinds = {o["kind"] for o in objs}
    assert kinds == {"ConfigMap", "Service", "Deployment", "Job", "ServiceAccount"}
    # the only ServiceAccount is the migrations hook's: the services run as "default"
    assert [sa["metadata"]["name"] for sa in ch.find(objs, "ServiceAccount")] == ["koogallery-migrations"]
    for d in ch.find(objs, "Deployment"):
        assert d["spec"]["replicas"] == 1
        assert ch.pod_spec(d)["serviceAccountName"] == "default"
        assert "topologySpreadConstraints" not in ch.pod_spec(d)


# --- network policy --------------------------------------------------------------------------------


def _peer_components(peers: list[dict[str, Any]]) -> set[str]:
    return {p["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for p in peers if "podSelector" in p and "namespaceSelector" not in p and "app.kubernetes.io/component" in p["podSelector"].get("matchLabels", {})}


def _ports(rule: dict[str, Any]) -> set[tuple[Any, str]]:
    return {(p["port"], p.get("protocol", "TCP")) for p in rule.get("ports", [])}


@pytest.mark.parametrize("scenario", ["defaults", "production"])
def test_network_policy_allows_only_the_mesh_paths(scenario: str) -> None:
    objs = ch.scenario_manifests(scenario)
    values = ch.scenario_values(scenario)
    clients = (values.get("networkPolicy") or {}).get("clientSelectors") or ch.chart().values["networkPolicy"]["clientSelectors"]
    for svc in ch.SERVICES:
        np = ch.one(objs, "NetworkPolicy", f"koogallery-{svc}")
        assert np["spec"]["policyTypes"] == ["Ingress", "Egress"]
        ingress = np["spec"]["ingress"]
        for rule in ingress:
            assert rule.get("from"), f"{svc}: an ingress rule without `from` allows everyone"
            assert rule.get("ports"), f"{svc}: an ingress rule without ports allows every port"
        grpc_rules = [r for r in ingress if _ports(r) == {("grpc", "TCP")}]
        mesh = set().union(*(_peer_components(r["from"]) for r in grpc_rules))
        assert mesh == ch.CALLERS[svc] | {"test"}, svc
        client_rules = [r for r in grpc_rules if r["from"] == clients]
        assert bool(client_rules) == (svc != "notification"), f"{svc}: client access"
        metrics_rules = [r for r in ingress if _ports(r) == {("metrics", "TCP")}]
        assert len(metrics_rules) == 1
        assert all("namespaceSelector" in p for p in metrics_rules[0]["from"])
        assert {("grpc", "TCP"), ("metrics", "TCP")} >= set().union(*(_ports(r) for r in ingress))

        egress = np["spec"]["egress"]
        for rule in egress:
            assert rule.get("to") and rule.get("ports"), f"{svc}: unbounded egress rule {rule}"
        dns = [r for r in egress if _ports(r) == {(53, "UDP"), (53, "TCP")}]
        assert len(dns) == 1 and "kube-system" in json.dumps(dns[0]["to"])
        mesh_out = set().union(*(_peer_components(r["to"]) for r in egress if _ports(r) == {(50051, "TCP")}))
        assert mesh_out == {callee for callee, callers in ch.CALLERS.items() if svc in callers}, svc
        all_ports = set().union(*(_ports(r) for r in egress))
        assert (5432, "TCP") in all_ports
        assert ((6380, "TCP") in all_ports or (6379, "TCP") in all_ports) == (svc == "registration")
        assert ((587, "TCP") in all_ports) == (svc == "notification")
        assert ((80, "TCP") in all_ports) == (svc == "identity-check")
        assert ((4317, "TCP") in all_ports) == ("otel" in values)


def test_website_check_egress_excludes_private_ranges() -> None:
    np = ch.one(ch.scenario_manifests("defaults"), "NetworkPolicy", "koogallery-identity-check")
    web = [r for r in np["spec"]["egress"] if _ports(r) == {(80, "TCP"), (443, "TCP")}]
    assert len(web) == 1
    block = web[0]["to"][0]["ipBlock"]
    assert block["cidr"] == "0.0.0.0/0"
    for private in ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16", "127.0.0.0/8"):
        assert private in block["except"]


def test_ingress_controller_may_reach_services_with_an_ingress() -> None:
    objs = ch.scenario_manifests("production")
    for svc in ch.SERVICES:
        np = ch.one(objs, "NetworkPolicy", f"koogallery-{svc}")
        has_rule = any("ingress-nginx" in json.dumps(r["from"]) for r in np["spec"]["ingress"])
        assert has_rule == (svc in {"registration", "review"}), svc


def test_wiring_values_decide_secrets_egress_and_mesh_paths() -> None:
    """services.<name>.wiring, not the service's name, decides a service's secret files, its
    external egress, the mesh paths and the back office's callees."""
    values = {
        "backoffice": {"enabled": True},
        "services": {
            "review": {"wiring": {"calls": ["identity-check"], "calledByBackoffice": False, "redis": True}},
            "notification": {"wiring": {"sms": False, "websites": True}},
        },
    }
    objs = ch.manifests(values)
    assert set(_secret_refs(objs, "review")) == {"KG_DATABASE_URL", "KG_JWT_SECRET", "KG_SERVICE_TOKEN", "KG_REDIS_URL"}
    assert set(_secret_refs(objs, "notification")) == {"KG_DATABASE_URL", "KG_JWT_SECRET", "KG_SERVICE_TOKEN", "KG_SMTP_URL"}

    def policy(svc: str) -> tuple[set[str], set[str], set[tuple[Any, str]]]:
        spec = ch.one(objs, "NetworkPolicy", f"koogallery-{svc}")["spec"]
        grpc_in = [r for r in spec["ingress"] if _ports(r) == {("grpc", "TCP")}]
        callers = set().union(*(_peer_components(r["from"]) for r in grpc_in))
        callees = set().union(*(_peer_components(r["to"]) for r in spec["egress"] if _ports(r) == {(50051, "TCP")}))
        return callers, callees, set().union(*(_ports(r) for r in spec["egress"]))

    callers, callees, ports = policy("review")
    assert callers == {"registration", "test"}  # no back office
    assert callees == {"identity-check"}
    assert (6379, "TCP") in ports
    assert policy("registration")[0] == {"notification", "test", "backoffice"}
    assert policy("notification")[0] == {"registration", "test"}
    egress = ch.one(objs, "NetworkPolicy", "koogallery-notification")["spec"]["egress"]
    assert [_ports(r) for r in egress if (587, "TCP") in _ports(r)] == [{(25, "TCP"), (465, "TCP"), (587, "TCP")}]
    assert [_ports(r) for r in egress if (443, "TCP") in _ports(r)] == [{(80, "TCP"), (443, "TCP")}]  # websites, no SMS

    backoffice = ch.one(objs, "Deployment", "koogallery-backoffice")
    urls = [n for n in ch.container_env(ch.pod_spec(backoffice)["containers"][0]) if n.endswith("_URL")]
    assert urls == ["KG_IDENTITY_CHECK_URL", "KG_REGISTRATION_URL"]
    np = ch.one(objs, "NetworkPolicy", "koogallery-backoffice")
    mesh = set().union(*(_peer_components(r["to"]) for r in np["spec"]["egress"] if _ports(r) == {(50051, "TCP")}))
    assert mesh == {"identity-check", "registration"}


# --- ServiceMonitor and Ingress --------------------------------------------------------------------


def check_service_monitor(obj: dict[str, Any]) -> None:
    """The monitoring.coreos.com/v1 ServiceMonitor shape, checked by hand (a CRD)."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1", obj["apiVersion"]
    assert obj["kind"] == "ServiceMonitor", obj["kind"]
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    meta = obj["metadata"]
    assert re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", meta["name"]) and len(meta["name"]) <= 63
    assert all(isinstance(v, str) for v in meta.get("labels", {}).values())
    spec = obj["spec"]
    assert set(spec) <= {"jobLabel", "namespaceSelector", "selector", "endpoints"}, set(spec)
    assert isinstance(spec["selector"]["matchLabels"], dict) and spec["selector"]["matchLabels"]
    assert isinstance(spec["namespaceSelector"]["matchNames"], list)
    assert spec["endpoints"], "no endpoints"
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= {"port", "path", "scheme", "interval", "scrapeTimeout"}, endpoint
        assert endpoint["port"] == "metrics"
        assert endpoint["path"] == "/metrics"
        assert endpoint["scheme"] in {"http", "https"}
        for key in ("interval", "scrapeTimeout"):
            assert re.fullmatch(r"([0-9]+(ms|s|m|h))+", endpoint[key]), endpoint[key]


def check_prometheus_rule(obj: dict[str, Any]) -> None:
    """The monitoring.coreos.com/v1 PrometheusRule shape, checked by hand (a CRD)."""
    assert obj["apiVersion"] == "monitoring.coreos.com/v1", obj["apiVersion"]
    assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}
    assert set(obj["spec"]) == {"groups"}
    for group in obj["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"} and group["name"], group
        for rule in group["rules"]:
            assert set(rule) <= {"alert", "record", "expr", "for", "labels", "annotations"}, rule
            assert ("alert" in rule) != ("record" in rule), rule
            assert isinstance(rule["expr"], str) and rule["expr"].strip()
            assert all(isinstance(v, str) for v in rule.get("annotations", {}).values())


CRD_CHECKS = {"ServiceMonitor": check_service_monitor, "PrometheusRule": check_prometheus_rule}


def test_service_monitors_select_the_metrics_port() -> None:
    objs = ch.scenario_manifests("production")
    monitors = ch.find(objs, "ServiceMonitor")
    assert {ch.component(m) for m in monitors} == set(ch.SERVICES)
    for monitor in monitors:
        check_service_monitor(monitor)
        assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
        service = ch.one(objs, "Service", monitor["metadata"]["name"])
        assert _selects(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
        assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert not ch.find(ch.scenario_manifests("defaults"), "ServiceMonitor")


def test_grpc_ingress() -> None:
    objs = ch.scenario_manifests("production")
    ingresses = {ch.component(i): i for i in ch.find(objs, "Ingress")}
    assert set(ingresses) == {"registration", "review"}
    reg = ingresses["registration"]
    assert reg["apiVersion"] == "networking.k8s.io/v1"
    annotations = reg["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"  # mesh TLS on
    assert annotations["nginx.ingress.kubernetes.io/proxy-body-size"] == "16m"
    assert reg["spec"]["ingressClassName"] == "nginx"
    assert reg["spec"]["tls"] == [{"hosts": ["registration.grpc.koogallery.example.com"], "secretName": "registration-grpc-tls"}]
    backend = reg["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "koogallery-registration", "port": {"name": "grpc"}}
    assert ingresses["review"]["spec"]["tls"][0]["secretName"] == "koogallery-review-ingress-tls"


def test_grpc_ingress_without_mesh_tls_uses_grpc_backend() -> None:
    values = {"services": {"review": {"ingress": {"enabled": True, "host": "review.example.com"}}}}
    ingress = ch.one(ch.manifests(values), "Ingress", "koogallery-review")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPC"


def test_ingress_needs_a_host() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"services\.review\.ingress\.host is required"):
        ch.render({"services": {"review": {"ingress": {"enabled": True}}}})


# --- hooks: migrations and helm test ---------------------------------------------------------------


def _hooks(obj: dict[str, Any]) -> set[str]:
    return set(obj["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")) - {""}


@pytest.mark.parametrize("scenario", SERVICE_SCENARIOS)
def test_migration_jobs_run_before_install_and_upgrade(scenario: str) -> None:
    objs = ch.scenario_manifests(scenario)
    values = ch.scenario_values(scenario)
    enabled = [s for s in ch.SERVICES if (values.get("services", {}).get(s, {}).get("enabled", True))]
    jobs = ch.find(objs, "Job")
    assert sorted(j["metadata"]["name"] for j in jobs) == sorted(f"koogallery-{s}-migrate" for s in enabled)
    sa = ch.one(objs, "ServiceAccount", "koogallery-migrations")
    assert _hooks(sa) == {"pre-install", "pre-upgrade"}
    for job in jobs:
        svc = job["metadata"]["name"].removeprefix("koogallery-").removesuffix("-migrate")
        assert _hooks(job) == {"pre-install", "pre-upgrade"}
        annotations = job["metadata"]["annotations"]
        assert int(sa["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
        assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
        spec = ch.pod_spec(job)
        assert spec["restartPolicy"] == "Never"
        assert spec["serviceAccountName"] == "koogallery-migrations"
        container = spec["containers"][0]
        assert container["command"] == [f"koogallery-{svc}", "migrate"]
        assert _secret_files(job) == {"KG_DATABASE_URL": _secret_refs(objs, svc)["KG_DATABASE_URL"]}
        assert "envFrom" not in container, "hooks run before the ConfigMaps exist"


def test_migrations_can_be_turned_off_per_service() -> None:
    values = {"services": {"notification": {"migrations": {"enabled": False}}}}
    names = {j["metadata"]["name"] for j in ch.find(ch.manifests(values), "Job")}
    assert names == {f"koogallery-{s}-migrate" for s in ch.SERVICES if s != "notification"}


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_helm_test_pod_checks_every_service(scenario: str) -> None:
    objs = ch.scenario_manifests(scenario)
    values = ch.scenario_values(scenario)
    pods = ch.find(objs, "Pod")
    if values.get("tests", {}).get("enabled") is False:
        assert not pods
        return
    assert len(pods) == 1
    pod = pods[0]
    assert _hooks(pod) == {"test"}
    assert pod["spec"]["restartPolicy"] == "Never"
    enabled = [s for s in ch.SERVICES if values.get("services", {}).get(s, {}).get("enabled", True)]
    tls = values.get("tls", {}).get("enabled", False)
    commands = {c["name"]: c["command"] for c in pod["spec"]["containers"]}
    assert list(commands) == enabled
    for svc, command in commands.items():
        addr = f"https://koogallery-{svc}:50051" if tls else f"koogallery-{svc}:50051"
        assert command == ["koogallery", "health", "--addr", addr]


# --- templates are driven by values, never by a service's name ---------------------------------------

_NAMED_SERVICE = re.compile(r'"(identity-check|registration|review|notification|backoffice)"')
# comparisons (eq $name "review", has $name (list "registration" ...), hasKey $m "review", ...) and
# lookups of one named entry (index $callers "registration", .Values.services.review)
_NAME_TEST = re.compile(r"\b(eq|ne|has|mustHas|hasKey|hasPrefix|hasSuffix|contains|regexMatch|index|get|dig|pluck)\b")
_NAMED_VALUES = re.compile(r"\.services\.(registration|review|notification)\b")
_ACTION = re.compile(r"\{\{(.*?)\}\}", re.DOTALL)
_TEMPLATE_COMMENT = re.compile(r"/\*.*?\*/", re.DOTALL)


def _service_name_tests(text: str) -> list[tuple[int, str]]:
    """(line, action) of every template action that tests or looks up a service by its name."""
    found = []
    for match in _ACTION.finditer(text):
        action = _TEMPLATE_COMMENT.sub("", match.group(1))
        if (_NAME_TEST.search(action) and _NAMED_SERVICE.search(action)) or _NAMED_VALUES.search(action):
            found.append((text.count("\n", 0, match.start()) + 1, " ".join(match.group(0).split())))
    return found


def test_name_test_detector_catches_the_old_branches() -> None:
    for branch in [
        '{{- if eq $name "review" }}',
        '{{- if and (eq .name "notification") $s.bounceMailbox.existingClaim }}',
        '{{- if and $v.backoffice.enabled (has $name (list "identity-check" "registration" "review")) -}}',
        '{{ if ne .name\n "identity-check" }}',
        '{{- if hasKey $callers "registration" }}',
        '{{- range index $callers "review" }}',
        '{{- if .Values.services.notification.enabled }}',
    ]:
        assert _service_name_tests(branch), branch
    for fine in [
        '{{- $name := "backoffice" -}}',
        '{{ include "kg.serviceUrl" (list $root "registration") }}',
        '{{- if has $name (include "kg.wiring" (list $root $caller) | fromYaml).calls -}}',
        '{{- /* the back office calls "review", never eq to "notification" */ -}}',
    ]:
        assert not _service_name_tests(fine), fine


def test_no_template_branches_on_a_service_name() -> None:
    """What differs between services comes from services.<name> (wiring, and the settings keys
    only one service has), so no template compares a service's name to a literal."""
    templates = sorted(p for p in (ch.REPO / "helm").glob("*/templates/**/*") if p.is_file())
    assert len(templates) >= 5
    found = [
        f"{path.relative_to(ch.REPO)}:{line}: {action}"
        for path in templates
        for line, action in _service_name_tests(path.read_text())
    ]
    assert not found, "templates that branch on a service's name:\n" + "\n".join(found)


# --- disabling services ----------------------------------------------------------------------------


@pytest.mark.parametrize("svc", ch.SERVICES)
def test_a_disabled_service_leaves_no_trace(svc: str) -> None:
    objs = ch.scenario_manifests(f"without-{svc}")
    for obj in objs:
        assert ch.component(obj) not in {svc, f"{svc}-migrate"}, ch.kind_name(obj)
    others = [s for s in ch.SERVICES if s != svc]
    assert sorted(ch.component(d) for d in ch.find(objs, "Deployment")) == sorted(others)
    # the rest still knows where the disabled one lives (another release may serve it)
    for other in others:
        data = ch.one(objs, "ConfigMap", f"koogallery-{other}")["data"]
        assert data[f"KG_{svc.upper().replace('-', '_')}_URL"] == f"http://koogallery-{svc}:50051"


def test_notes_explain_the_next_steps() -> None:
    notes = next(text for path, text in ch.render({}).items() if path.endswith("NOTES.txt"))
    assert "helm test koogallery" in notes
    assert "koogallery-secrets" in notes
    for svc in ch.SERVICES:
        assert f"http://koogallery-{svc}:50051" in notes


# --- dashboard and alert rules ---------------------------------------------------------------------

DASHBOARD_FILE = ch.CHART_DIR / "files" / "grafana-dashboard.json"
RULES_FILE = ch.CHART_DIR / "files" / "prometheus-rules.yaml"
OPERATIONS_MD = ch.REPO / "docs" / "operations.md"
# Labels a query may group by: the documented metric labels, and Prometheus's own.
KNOWN_LABELS = {
    "job", "instance", "pod", "le", "rpc_system_name", "rpc_method", "rpc_response_status_code",
    "service", "version", "revision", "channel", "status", "outcome",
}
_HISTOGRAM_SUFFIX = re.compile(r"_(bucket|count|sum)$")


def _documented_metrics() -> set[str]:
    """The names in the first column of docs/operations.md's metric table."""
    text = OPERATIONS_MD.read_text()
    table = text[text.index("| metric | type | labels | what |") :].split("\n\n", 1)[0]
    names = set()
    for line in table.splitlines()[2:]:
        names |= set(re.findall(r"`([a-z_:][a-z0-9_:]*)`", line.split("|")[1]))
    return names


def _metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: strings, label matchers, grouping clauses, range
    and function names taken out first, so that label names are not mistaken for metrics."""
    expr = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    expr = re.sub(r"\{[^}]*\}", " ", expr)
    expr = re.sub(r"\b(by|without)\s*\([^)]*\)", " ", expr)
    expr = re.sub(r"\[[^\]]*\]", " ", expr)
    expr = re.sub(r"\b[a-z_]+\s*\(", "(", expr)
    return set(re.findall(r"\b[a-zA-Z_:][a-zA-Z0-9_:]*\b", expr))


def _grouping_labels(expr: str) -> set[str]:
    labels = set()
    for clause in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", expr):
        labels |= {label.strip() for label in clause.split(",") if label.strip()}
    return labels


def _dashboard_queries(dashboard: dict[str, Any]) -> list[str]:
    exprs = [t["expr"] for _, node in _walk(dashboard) for t in node.get("targets", []) if "expr" in t]
    for var in dashboard["templating"]["list"]:
        if var["type"] == "query":
            exprs.append(re.fullmatch(r"label_values\((.*), *[a-z_]+\)", var["definition"]).group(1))
    return exprs


def test_metric_name_extraction() -> None:
    """The extraction the dashboard test relies on: label names and functions are not metrics."""
    expr = (
        'histogram_quantile(0.99, sum by (job, rpc_method, le) (rate('
        'rpc_server_call_duration_seconds_bucket{rpc_method!~"a|b", job=~"$job"}[$__rate_interval])))'
        " / on() max(koogallery_review_overdue_tasks)"
    )
    assert _metric_names(expr) - {"on"} == {"rpc_server_call_duration_seconds_bucket", "koogallery_review_overdue_tasks"}
    assert _grouping_labels(expr) == {"job", "rpc_method", "le"}


def test_dashboard_queries_only_metrics_that_exist() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    rules_text = RULES_FILE.read_text()
    documented = _documented_metrics()
    assert "rpc_server_call_duration_seconds" in documented, "the metric table moved or changed"
    queries = _dashboard_queries(dashboard)
    used = set().union(*(_metric_names(q) for q in queries))
    unknown = {
        name
        for name in used
        if name not in documented
        and _HISTOGRAM_SUFFIX.sub("", name) not in documented
        and not re.search(rf"\b{re.escape(name)}\b", rules_text)
    }
    assert not unknown, f"the dashboard queries metrics neither documented nor in the rules: {sorted(unknown)}"
    labels = set().union(*(_grouping_labels(q) for q in queries))
    assert labels <= KNOWN_LABELS, f"unknown labels: {sorted(labels - KNOWN_LABELS)}"
    # what issue 15 asks the dashboard to show
    for needed in (
        "rpc_server_call_duration_seconds_count",
        "rpc_server_call_duration_seconds_bucket",
        "koogallery_review_overdue_tasks",
        "koogallery_registration_outbox_backlog",
        "koogallery_review_outbox_backlog",
        "koogallery_registration_outbox_dead_letters",
        "koogallery_review_outbox_dead_letters",
        "koogallery_notification_deliveries_open",
        "koogallery_notification_delivery_attempts_total",
    ):
        assert needed in used, f"the dashboard shows no {needed}"
    assert {"rpc_method", "rpc_response_status_code"} <= labels, "RED is per method and status code"


def test_dashboard_is_well_formed() -> None:
    dashboard = json.loads(DASHBOARD_FILE.read_text())
    assert dashboard["uid"] and dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None, "a fixed id clashes on import"
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "duplicate panel ids"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            for var in re.findall(r"\$(\w+)", target["expr"]):
                assert var in variables or var.startswith("__"), f"{panel['title']}: ${var}"


def test_dashboard_and_rules_are_off_by_default() -> None:
    objs = ch.scenario_manifests("defaults")
    assert not ch.find(objs, "PrometheusRule")
    assert not [c for c in ch.find(objs, "ConfigMap") if "grafana_dashboard" in c["metadata"]["labels"]]


def test_dashboard_config_map_for_the_grafana_sidecar() -> None:
    cm = ch.one(ch.scenario_manifests("observability"), "ConfigMap", "koogallery-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "KooGallery"}
    assert json.loads(cm["data"]["koogallery.json"]) == json.loads(DASHBOARD_FILE.read_text())
    values = {"grafanaDashboard": {"enabled": True, "namespace": "monitoring", "labels": {"grafana_dashboard": "kg"}}}
    cm = ch.one(ch.manifests(values), "ConfigMap", "koogallery-grafana-dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "kg"


def test_prometheus_rule_is_the_rules_file() -> None:
    rule = ch.one(ch.scenario_manifests("observability"), "PrometheusRule", "koogallery-alerts")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    # the file verbatim: Prometheus's own {{ $value }} templates survive Helm
    assert rule["spec"] == yaml.safe_load(RULES_FILE.read_text())
    assert "{{ $value }}" in json.dumps(rule["spec"])


RULES_TEST_FILE = ch.CHART_DIR / "files" / "prometheus-rules.test.yaml"
# alert -> (values key under prometheusRule.thresholds, the number in the rules file)
RULE_THRESHOLDS = {
    "KooGalleryContactsUndeliverable": "contactsUndeliverablePerHour",
    "KooGalleryBounceReportsMalformed": "malformedBounceReportsPerHour",
}


def _rules_by_alert(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {r["alert"]: r for g in spec["groups"] for r in g["rules"] if "alert" in r}


def test_rule_thresholds_default_to_the_rules_file() -> None:
    """Plain Prometheus (rule_files) and the chart's defaults alert at the same numbers."""
    rules = _rules_by_alert(yaml.safe_load(RULES_FILE.read_text()))
    defaults = ch.chart().values["prometheusRule"]["thresholds"]
    assert set(defaults) == set(RULE_THRESHOLDS.values())
    for alert, key in RULE_THRESHOLDS.items():
        number = re.search(r">\s*([0-9.]+)\s*$", rules[alert]["expr"]).group(1)
        assert float(number) == defaults[key], alert


def test_rule_thresholds_are_written_into_the_rules() -> None:
    values = {
        "prometheusRule": {
            "enabled": True,
            "thresholds": {"contactsUndeliverablePerHour": 150, "malformedBounceReportsPerHour": 0},
        }
    }
    rule = ch.one(ch.manifests(values), "PrometheusRule", "koogallery-alerts")
    check_prometheus_rule(rule)
    expected = yaml.safe_load(RULES_FILE.read_text())
    by_alert = _rules_by_alert(expected)
    for alert, number in (("KooGalleryContactsUndeliverable", 150), ("KooGalleryBounceReportsMalformed", 0)):
        by_alert[alert]["expr"] = re.sub(r">\s*[0-9.]+\s*$", f"> {number}", by_alert[alert]["expr"])
    assert rule["spec"] == expected, "only the two thresholds change"
    rendered = _rules_by_alert(rule["spec"])
    assert rendered["KooGalleryContactsUndeliverable"]["expr"].endswith("[1h])) > 150")
    assert rendered["KooGalleryBounceReportsMalformed"]["expr"].endswith("[1h])) > 0")


def test_contact_alerts() -> None:
    rules = _rules_by_alert(yaml.safe_load(RULES_FILE.read_text()))
    undeliverable = rules["KooGalleryContactsUndeliverable"]
    assert "increase(koogallery_registration_contacts_undeliverable_total[1h])" in undeliverable["expr"]
    malformed = rules["KooGalleryBounceReportsMalformed"]
    assert 'koogallery_notification_bounce_reports_total{outcome="malformed"}[1h]' in malformed["expr"]
    for rule in (undeliverable, malformed):
        assert rule["for"] == "15m"
        assert rule["labels"] == {"severity": "warning"}
        assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
        assert rule["annotations"]["runbook_url"] == "docs/operations.md#undeliverable-contacts"
    # the runbook the alerts point at exists
    assert "\n## Undeliverable contacts\n" in OPERATIONS_MD.read_text()


def test_every_alert_has_a_promtool_unit_test() -> None:
    """scripts/test runs `promtool test rules prometheus-rules.test.yaml`: each alert is tested
    firing (a non-empty exp_alerts) and not firing (an empty one)."""
    alerts = set(_rules_by_alert(yaml.safe_load(RULES_FILE.read_text())))
    suite = yaml.safe_load(RULES_TEST_FILE.read_text())
    assert suite["rule_files"] == [RULES_FILE.name]
    cases = [c for group in suite["tests"] for c in group.get("alert_rule_test", [])]
    firing = {c["alertname"] for c in cases if c["exp_alerts"]}
    quiet = {c["alertname"] for c in cases if not c["exp_alerts"]}
    new = set(RULE_THRESHOLDS)
    assert new <= firing and new <= quiet, "the contact alerts are tested both ways"
    assert alerts <= firing, f"alerts never tested firing: {sorted(alerts - firing)}"


def test_rules_pass_promtool() -> None:
    """`promtool check rules` and `promtool test rules`, as scripts/test runs them (skipped
    without promtool: Debian's prometheus package has it)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    files = RULES_FILE.parent
    for args in (["check", "rules", RULES_FILE.name], ["test", "rules", RULES_TEST_FILE.name]):
        done = subprocess.run([promtool, *args], cwd=files, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode == 0, f"promtool {' '.join(args)}:\n{done.stdout}{done.stderr}"


# --- the demo profile ------------------------------------------------------------------------------

DEMO_COMMAND = ["koogallery", "--data-dir", "/var/lib/koogallery", "up", "--bind", "0.0.0.0", "--log-format", "json"]


def test_scenarios_include_the_demo() -> None:
    assert "demo" in SCENARIOS


def test_demo_runs_everything_in_one_up_process() -> None:
    objs = ch.scenario_manifests("demo")
    kinds = sorted(ch.kind_name(o) for o in objs)
    assert kinds == sorted(
        ["ServiceAccount/koogallery-demo", "PersistentVolumeClaim/koogallery-demo-data", "Deployment/koogallery-demo", "Pod/koogallery-test-health"]
        + [f"Service/koogallery-{svc}" for svc in ch.SERVICES]
    ), "no per-service Deployment, ConfigMap or migration Job, nothing external to reach"
    deployment = ch.one(objs, "Deployment", "koogallery-demo")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}, "two processes on one SQLite"
    spec = ch.pod_spec(deployment)
    container = spec["containers"][0]
    assert container["command"] == DEMO_COMMAND
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert "KG_DATABASE_URL" not in json.dumps(container), "SQLite in the data folder, no database URL"
    mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert mount["mountPath"] == "/var/lib/koogallery" and not mount.get("readOnly")
    volume = next(v for v in spec["volumes"] if v["name"] == "data")
    assert volume["persistentVolumeClaim"]["claimName"] == "koogallery-demo-data"
    pvc = ch.one(objs, "PersistentVolumeClaim", "koogallery-demo-data")
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1Gi"
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["grpc"]["port"] in range(50051, 50055)


def test_demo_services_keep_their_names_and_ports() -> None:
    """Clients and `helm test` reach koogallery-<service>:50051 as on a real install; `up` listens
    on 50051+i (gRPC) and 51051+i (metrics) in the order identity-check, registration, review,
    notification."""
    objs = ch.scenario_manifests("demo")
    deployment = ch.one(objs, "Deployment", "koogallery-demo")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    ports = {p["name"]: p["containerPort"] for p in ch.pod_spec(deployment)["containers"][0]["ports"]}
    for offset, svc in enumerate(ch.SERVICES):
        service = ch.one(objs, "Service", f"koogallery-{svc}")
        assert _selects(service["spec"]["selector"], pod_labels)
        by_name = {p["name"]: p for p in service["spec"]["ports"]}
        assert by_name["grpc"]["port"] == 50051 and ports[by_name["grpc"]["targetPort"]] == 50051 + offset
        assert by_name["metrics"]["port"] == 9090 and ports[by_name["metrics"]["targetPort"]] == 51051 + offset


def test_demo_without_persistence_uses_an_empty_dir() -> None:
    objs = ch.manifests({"demo": {"enabled": True, "persistence": {"enabled": False, "size": "256Mi"}}})
    assert not ch.find(objs, "PersistentVolumeClaim")
    spec = ch.pod_spec(ch.one(objs, "Deployment", "koogallery-demo"))
    assert next(v for v in spec["volumes"] if v["name"] == "data")["emptyDir"] == {"sizeLimit": "256Mi"}


# --- the back office -------------------------------------------------------------------------------


def test_backoffice_is_off_by_default() -> None:
    for scenario in SCENARIOS:
        if scenario == "backoffice":
            continue
        assert not [o for o in ch.scenario_manifests(scenario) if ch.component(o) == "backoffice"], scenario


def test_backoffice_deployment() -> None:
    objs = ch.scenario_manifests("backoffice")
    deployment = ch.one(objs, "Deployment", "koogallery-backoffice")
    assert deployment["spec"]["replicas"] == 2
    container = ch.pod_spec(deployment)["containers"][0]
    assert container["command"] == ["koogallery-backoffice"]
    env = ch.container_env(container)
    assert env["KG_LISTEN_ADDR"]["value"] == "0.0.0.0:8080"
    for svc in ("identity-check", "registration", "review"):
        name = f"KG_{svc.upper().replace('-', '_')}_URL"
        assert env[name]["value"] == f"http://koogallery-{svc}:50051"
    assert env["KG_CALL_TIMEOUT_MS"]["value"] == "10000"
    # nobody is signed in by the back office in a cluster, and cookies stay Secure
    assert not {"KG_BACKOFFICE_DEV_SIGNIN", "KG_BACKOFFICE_INSECURE_COOKIES"} & set(env)
    # its secrets as files, like the services'
    assert _secret_files(deployment) == {
        "KG_JWT_SECRET": ("koogallery-secrets", "jwt-secret"),
        "KG_BACKOFFICE_CSRF_SECRET": ("koogallery-backoffice", "csrf-secret"),
    }
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8080}
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    service = ch.one(objs, "Service", "koogallery-backoffice")
    assert service["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP", "appProtocol": "http"}]
    assert _selects(service["spec"]["selector"], deployment["spec"]["template"]["metadata"]["labels"])
    ingress = ch.one(objs, "Ingress", "koogallery-backoffice")
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/auth-response-headers"] == "Authorization"
    assert ingress["spec"]["tls"] == [{"hosts": ["review.koogallery.example.com"], "secretName": "koogallery-backoffice-ingress-tls"}]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": "koogallery-backoffice", "port": {"name": "http"}}


def test_backoffice_without_csrf_key_and_with_jwks_has_no_secret_env() -> None:
    values = {"backoffice": {"enabled": True}, "secrets": {"jwt": {"mode": "jwks"}}}
    deployment = ch.one(ch.manifests(values), "Deployment", "koogallery-backoffice")
    spec = ch.pod_spec(deployment)
    env = ch.container_env(spec["containers"][0])
    assert not [n for n, e in env.items() if "valueFrom" in e]
    assert [n for n in env if n.endswith("_FILE")] == ["KG_JWT_JWKS_FILE"]
    assert "secrets" not in {v["name"] for v in spec["volumes"]}
    assert env["KG_JWT_JWKS_FILE"]["value"] == "/etc/koogallery/jwt/jwks.json"
    assert next(v for v in spec["volumes"] if v["name"] == "jwks")["secret"]["items"] == [{"key": "jwks.json", "path": "jwks.json"}]


def test_backoffice_network_paths() -> None:
    objs = ch.scenario_manifests("backoffice")
    for svc in ch.SERVICES:
        np = ch.one(objs, "NetworkPolicy", f"koogallery-{svc}")
        grpc_rules = [r for r in np["spec"]["ingress"] if _ports(r) == {("grpc", "TCP")}]
        callers = set().union(*(_peer_components(r["from"]) for r in grpc_rules))
        assert ("backoffice" in callers) == (svc != "notification"), svc
    np = ch.one(objs, "NetworkPolicy", "koogallery-backoffice")
    assert [_ports(r) for r in np["spec"]["ingress"]] == [{("http", "TCP")}]
    assert "ingress-nginx" in json.dumps(np["spec"]["ingress"][0]["from"])
    mesh = set().union(*(_peer_components(r["to"]) for r in np["spec"]["egress"] if _ports(r) == {(50051, "TCP")}))
    assert mesh == {"identity-check", "registration", "review"}
    assert all(_ports(r) <= {(50051, "TCP"), (53, "UDP"), (53, "TCP")} for r in np["spec"]["egress"])


def test_backoffice_ingress_needs_a_host() -> None:
    with pytest.raises(helm_python.HelmRenderError, match=r"backoffice\.ingress\.host is required"):
        ch.render({"backoffice": {"enabled": True, "ingress": {"enabled": True}}})
