"""Rendering, linting and validating the koogallery chart offline.

Helm itself comes from the PyPI package `helm-python-sdk` (module `helm_python`), which binds
Helm 4's Go SDK through a C ABI: no helm binary and no cluster are involved.

    helm_python.Chart.load(path)                     -> Chart (a context manager)
    Chart.render(values, name=, namespace=, is_install=)
                                                     -> {"koogallery/templates/x.yaml": text}
                                                        (values are checked against
                                                        values.schema.json first)
    Chart.validate_schema(values)                    -> None, or HelmValuesError naming the key
    helm_python.lint(path, values, strict=True, kube_version="v1.33.0")
                                                     -> {"messages": [{"severity", "path",
                                                        "error"}], "errors": [...]}

Rendered objects are validated with `kubernetes_validate.validate(obj, version, strict=True)`,
whose strict schemas also refuse unknown fields.
"""

from __future__ import annotations

import copy
import difflib
import functools
import json
import os
import re
from pathlib import Path
from typing import Any

import helm_python
import kubernetes_validate
import kubernetes_validate.utils
import yaml

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHART_DIR = REPO / "helm" / "koogallery"
SCENARIO_DIR = HERE / "scenarios"
GOLDEN_DIR = HERE / "golden"

RELEASE = "koogallery"
NAMESPACE = "koogallery"

# libyaml when PyYAML has it: the pure-Python loader is several times slower.
Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


SERVICES = ("identity-check", "registration", "review", "notification")

# The oldest Kubernetes the chart declares (kubeVersion >=1.27), the one the lint runs as, and the
# newest schema kubernetes-validate ships.
LINT_KUBE_VERSION = "v1.33.0"
K8S_VERSIONS = tuple(
    dict.fromkeys(["1.27.0", "1.33.0", kubernetes_validate.utils.latest_version()])
)

# Kinds that are CustomResources: not in the Kubernetes schemas, checked by hand instead.
CRD_GROUPS = ("monitoring.coreos.com/",)

# The callee -> callers graph of the mesh (what the NetworkPolicies must allow, and nothing else).
CALLERS = {
    "identity-check": {"registration", "review", "notification"},
    "registration": {"review", "notification"},
    "review": {"registration"},
    "notification": {"registration", "review"},
}

# Settings that carry secrets: the pods get them only as files, through <name>_FILE.
SECRET_ENV = {
    "KG_DATABASE_URL",
    "KG_BACKOFFICE_CSRF_SECRET",
    "KG_REDIS_URL",
    "KG_JWT_SECRET",
    "KG_SERVICE_TOKEN",
    "KG_SMTP_URL",
    "KG_SMS_URL",
    "KG_SMS_TOKEN",
}


def scenario_names() -> list[str]:
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.yaml"))


@functools.cache
def _scenario_values(name: str) -> dict[str, Any]:
    data = load_yaml((SCENARIO_DIR / f"{name}.yaml").read_text())
    return data or {}


def scenario_values(name: str) -> dict[str, Any]:
    """A fresh (mutable) copy of a scenario's values."""
    return copy.deepcopy(_scenario_values(name))


@functools.cache
def chart() -> helm_python.Chart:
    return helm_python.Chart.load(CHART_DIR)


def render(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> dict[str, str]:
    """Render the chart as `helm install` would: {template path: text}."""
    return chart().render(values or {}, name=name, namespace=NAMESPACE, is_install=True)


_DOC_SPLIT = re.compile(r"^---[ \t]*$", re.MULTILINE)


def split_documents(rendered: dict[str, str]) -> list[tuple[str, str]]:
    """(template path, document text) for every non-empty YAML document, NOTES.txt left out."""
    out: list[tuple[str, str]] = []
    for path in sorted(rendered):
        if path.endswith("NOTES.txt"):
            continue
        for text in _DOC_SPLIT.split(rendered[path]):
            body = "\n".join(line.rstrip() for line in text.strip("\n").splitlines())
            if load_yaml(body) is not None:
                out.append((path, body))
    return out


def manifests(values: dict[str, Any] | None = None, *, name: str = RELEASE) -> list[dict[str, Any]]:
    return [load_yaml(body) for _, body in split_documents(render(values, name=name))]


@functools.cache
def _scenario_manifests(name: str) -> tuple[str, ...]:
    return tuple(json.dumps(m) for m in manifests(scenario_values(name)))


def scenario_manifests(name: str) -> list[dict[str, Any]]:
    """Parsed manifests of a scenario (rendered once per test session, copied per call)."""
    return [json.loads(text) for text in _scenario_manifests(name)]


def golden_text(values: dict[str, Any] | None = None) -> str:
    """The render as `helm template` prints it: one `# Source:` header per document."""
    parts = [f"---\n# Source: {path}\n{body}\n" for path, body in split_documents(render(values))]
    return "".join(parts)


def compare_golden(name: str, actual: str) -> str | None:
    """None when the golden file matches; a unified diff otherwise. UPDATE_GOLDEN=1 rewrites it."""
    path = GOLDEN_DIR / f"{name}.yaml"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        GOLDEN_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return None
    expected = path.read_text() if path.exists() else ""
    if expected == actual:
        return None
    diff = difflib.unified_diff(
        expected.splitlines(keepends=True),
        actual.splitlines(keepends=True),
        fromfile=f"golden/{name}.yaml",
        tofile=f"render of scenarios/{name}.yaml",
    )
    return "".join(diff) or f"golden/{name}.yaml is missing"


def is_crd_kind(obj: dict[str, Any]) -> bool:
    return str(obj.get("apiVersion", "")).startswith(CRD_GROUPS)


def validate_k8s(obj: dict[str, Any], version: str) -> None:
    """Validate one object against the Kubernetes OpenAPI schema (strict: no unknown fields)."""
    kubernetes_validate.validate(obj, version, strict=True)


def kind_name(obj: dict[str, Any]) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def find(objs: list[dict[str, Any]], kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [
        o for o in objs if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def component(obj: dict[str, Any]) -> str | None:
    return obj["metadata"].get("labels", {}).get("app.kubernetes.io/component")


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    if obj["kind"] == "Pod":
        return obj["spec"]
    return obj["spec"]["template"]["spec"]


def container_env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}


def schema_error(values: dict[str, Any]) -> str:
    """The message Helm gives for values the schema refuses (fails when it accepts them)."""
    try:
        chart().validate_schema(values)
    except helm_python.HelmValuesError as err:
        return str(err)
    raise AssertionError(f"the schema accepted {values!r}")
