"""Fixtures of the cross-language client tests.

    stubs    (session)  Python stubs generated from proto/ by grpcio-tools into a temporary
                        folder (google well-known types from grpc_tools' bundled include path),
                        put on sys.path and imported: see mesh.Stubs.
    website  (session)  a small English website on 127.0.0.1 (http.server in a thread).
    smtp     (session)  an SMTP server (aiosmtpd, in a thread) on a free port of 127.0.0.1 that
                        keeps every message it accepts: see mesh.SmtpServer.
    mesh     (session)  `target/debug/koogallery up --data-dir <tmp> --base-port <free>` as a
                        separate process, with KG_WEBSITE_TEST_ALLOWLIST=127.0.0.1/32 so that
                        identity-check may fetch the local website, and KG_SMTP_URL pointing
                        notification at `smtp` (SMS stays disabled: its deliveries stay
                        PENDING); ready once all four services answer SERVING over
                        grpc.health.v1. The KG_* variables of the caller's environment are not
                        passed on, so `up` signs with its development secret
                        (<data dir>/dev-jwt-secret), which the tests read to mint their tokens.
                        At the end it gets SIGTERM and must exit with code 0 (a failure shows as
                        an error of the last test). When the binary is missing, the fixture runs
                        `cargo build -p koogallery` first (scripts/test builds it before pytest,
                        so that is for ad-hoc runs).
    web_page (session)  a local HTTP server of tests/python/web/ on a free port: the page the
                        headless-Chromium grpc-web test opens; its origin is the one origin the
                        mesh allows by CORS (KG_CORS_ALLOWED_ORIGINS).
    clients  (session)  one channel and stub per service of the mesh, and the token minter
                        (clients.as_applicant(id), as_reviewer(), as_operator()): mesh.Clients.

The mesh is shared by every test of the session; tests stay independent by using fresh account
ids and fresh company entities (random Unified Social Credit Codes).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import mesh as kg  # noqa: E402 - after the path insert


@pytest.fixture(scope="session")
def stubs(tmp_path_factory) -> kg.Stubs:
    gen_dir = kg.generate_stubs(tmp_path_factory.mktemp("gen"))
    return kg.Stubs(gen_dir)


@pytest.fixture(scope="session")
def website():
    with kg.Website() as site:
        yield site


@pytest.fixture(scope="session")
def smtp():
    with kg.SmtpServer() as server:
        yield server


@pytest.fixture(scope="session")
def web_page():
    with kg.StaticSite(Path(__file__).resolve().parent / "web") as site:
        yield site


@pytest.fixture(scope="session")
def mesh(tmp_path_factory, smtp, web_page):
    binary = kg.ensure_binary()
    data_dir = tmp_path_factory.mktemp("mesh-data")
    running = kg.Mesh(
        binary,
        data_dir,
        env={
            # TEST ONLY escape of the SSRF guard, so the website check can reach `website`.
            "KG_WEBSITE_TEST_ALLOWLIST": "127.0.0.1/32",
            # notification sends its email to the test's SMTP server, in plain text
            "KG_SMTP_URL": smtp.url,
            # a delivery that fails transiently is retried within the tests' waits
            "KG_DELIVERY_RETRY_BASE_MS": "500",
            "KG_DELIVERY_RETRY_MAX_MS": "2000",
            "KG_DISPATCH_INTERVAL_MS": "200",
            # the browser test's page calls the mesh with grpc-web from this origin
            "KG_CORS_ALLOWED_ORIGINS": web_page.origin,
            # No OTLP export from the test mesh even if the environment configures one.
            "OTEL_EXPORTER_OTLP_ENDPOINT": "",
        },
    ).start()
    try:
        yield running
    finally:
        code = running.stop()
        assert code == 0, f"koogallery up exited with {code} after SIGTERM:\n{running.log()}"


@pytest.fixture(scope="session")
def clients(stubs, mesh) -> kg.Clients:
    connected = kg.Clients.connect(stubs, mesh)
    yield connected
    connected.close()
