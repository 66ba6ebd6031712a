"""checkov (PyPI) on the rendered chart: no secret in a container's environment (CKV_K8S_35).

checkov pins `packaging<24` and pytest 9 needs `packaging>=24`, so checkov cannot share .venv with
the other tools: it lives in its own venv, .venv/checkov (tests/chart/requirements-checkov.txt):

    python3 -m venv .venv/checkov && .venv/checkov/bin/pip install -r tests/chart/requirements-checkov.txt

KG_CHECKOV names another checkov executable. Without one the tests fail: a security check that
silently skips would pass on the very chart it is meant to refuse.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

import chart_helpers as ch

# The profiles an operator installs; each must keep every secret out of the environment.
SCENARIOS = ["defaults", "production", "demo", "backoffice"]
CHECK = "CKV_K8S_35"


def checkov_executable() -> str:
    candidates = [
        os.environ.get("KG_CHECKOV"),
        str(ch.REPO / ".venv" / "checkov" / "bin" / "checkov"),
        shutil.which("checkov"),
    ]
    for candidate in candidates:
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "checkov not found: python3 -m venv .venv/checkov && "
        ".venv/checkov/bin/pip install -r tests/chart/requirements-checkov.txt",
        pytrace=False,
    )


def run_checkov(manifest: Path) -> dict[str, Any]:
    """checkov's JSON report of CKV_K8S_35 on one rendered file; fails on any checkov error."""
    env = {
        **os.environ,
        # offline: no update check, no download of guidelines or policies
        "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false",
        "BC_SKIP_MAPPING": "TRUE",
        "SKIP_VERSION_CHECK": "true",
        "CHECKOV_SKIP_VERSION_CHECK": "true",
    }
    proc = subprocess.run(
        [
            checkov_executable(),
            "--file", str(manifest),
            "--framework", "kubernetes",
            "--check", CHECK,
            "--output", "json",
            "--skip-download",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    # 0: all passed, 1: some check failed; anything else is checkov itself failing
    assert proc.returncode in (0, 1), f"checkov exited {proc.returncode}:\n{proc.stderr[-4000:]}"
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError as err:
        pytest.fail(f"checkov printed no JSON report ({err}):\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    # one framework: an object; several: a list of them
    reports = report if isinstance(report, list) else [report]
    kubernetes = [r for r in reports if r.get("check_type") == "kubernetes"]
    assert len(kubernetes) == 1, f"no kubernetes report in {[r.get('check_type') for r in reports]}"
    result = kubernetes[0]
    assert result["summary"]["parsing_errors"] == 0, result["summary"]
    return result


def _workloads(objs: list[dict[str, Any]]) -> int:
    return sum(o["kind"] in ("Deployment", "StatefulSet", "Job", "Pod") for o in objs)


def _failures(result: dict[str, Any]) -> list[str]:
    return [f"{c['resource']}: {c['check_name']}" for c in result["results"]["failed_checks"]]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_checkov_finds_no_secret_in_the_environment(scenario: str, tmp_path: Path) -> None:
    manifest = tmp_path / f"{scenario}.yaml"
    manifest.write_text(ch.golden_text(ch.scenario_values(scenario)))
    result = run_checkov(manifest)
    assert not _failures(result), "\n".join(_failures(result))
    # the check ran on every workload, not on nothing
    passed = {c["check_id"] for c in result["results"]["passed_checks"]}
    assert passed == {CHECK}
    assert result["summary"]["passed"] == _workloads(ch.scenario_manifests(scenario))


def test_checkov_sees_a_secret_in_the_environment(tmp_path: Path) -> None:
    """The check is not vacuous: a secretKeyRef added through extraEnv is a finding."""
    values = {
        "services": {
            "review": {
                "extraEnv": [
                    {
                        "name": "EXTRA_TOKEN",
                        "valueFrom": {"secretKeyRef": {"name": "other", "key": "token"}},
                    }
                ]
            }
        }
    }
    manifest = tmp_path / "leaky.yaml"
    manifest.write_text(ch.golden_text(values))
    failures = _failures(run_checkov(manifest))
    assert len(failures) == 1 and "koogallery-review" in failures[0], failures
