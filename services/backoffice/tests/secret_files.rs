//! The `koogallery-backoffice` binary takes its secrets as files, as the chart mounts them:
//! `KG_JWT_SECRET_FILE` verifies the proxy's bearer tokens, `KG_BACKOFFICE_CSRF_SECRET_FILE` is
//! read and checked like the variable, and setting both forms of one secret is refused.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::http_client;
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};

const BIN: &str = env!("CARGO_BIN_EXE_koogallery-backoffice");
const FILE_SECRET: &str = "secret-from-a-mounted-file-0123456789abcdef";

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

/// The binary with no secret inherited from the environment.
fn backoffice(port: u16) -> Command {
    let mut command = Command::new(BIN);
    command
        .env("KG_LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for var in [
        "KG_JWT_SECRET",
        "KG_JWT_JWKS_FILE",
        "KG_BACKOFFICE_CSRF_SECRET",
        "KG_BACKOFFICE_DEV_SIGNIN",
    ] {
        command.env_remove(var);
    }
    command
}

fn free_port() -> u16 {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap().port()
}

struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn token(secret: &str, role: Role) -> String {
    Authenticator::hs256(secret.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE).mint(
        "reviewer-files",
        role,
        Duration::from_secs(600),
    )
}

#[tokio::test]
async fn secrets_are_read_from_their_files() {
    let dir = tempfile::tempdir().unwrap();
    // a final newline, as `kubectl create secret --from-file` often leaves
    let jwt = write(dir.path(), "jwt-secret", &format!("{FILE_SECRET}\n"));
    let csrf = write(dir.path(), "csrf-secret", &format!("{}\n", "c".repeat(40)));
    let port = free_port();
    let _office = KillOnDrop(
        backoffice(port)
            .env("KG_JWT_SECRET_FILE", &jwt)
            .env("KG_BACKOFFICE_CSRF_SECRET_FILE", &csrf)
            .spawn()
            .unwrap(),
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = http_client();
    let started = Instant::now();
    while !client
        .get(format!("{url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the back office did not start"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = |token: String| {
        let client = client.clone();
        let url = url.clone();
        async move {
            client
                .get(format!("{url}/"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Verified with the file's key: an applicant is then refused as not staff (403), while a
    // token signed with any other key is not verified at all (401).
    assert_eq!(status(token(FILE_SECRET, Role::Applicant)).await, 403);
    assert_eq!(
        status(token(
            "another-secret-of-enough-length-0123456789",
            Role::Reviewer
        ))
        .await,
        401
    );
}

#[test]
fn a_short_csrf_secret_file_and_both_forms_of_one_secret_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let jwt = write(dir.path(), "jwt-secret", FILE_SECRET);
    let short = write(dir.path(), "csrf-secret", "too-short");
    let run = |command: &mut Command| {
        let out = command.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let err = run(backoffice(free_port())
        .env("KG_JWT_SECRET_FILE", &jwt)
        .env("KG_BACKOFFICE_CSRF_SECRET_FILE", &short));
    assert!(
        err.contains("KG_BACKOFFICE_CSRF_SECRET must be at least 32 bytes"),
        "{err}"
    );
    let err = run(backoffice(free_port())
        .env("KG_JWT_SECRET_FILE", &jwt)
        .env("KG_JWT_SECRET", FILE_SECRET));
    assert!(
        err.contains("set KG_JWT_SECRET or KG_JWT_SECRET_FILE, not both"),
        "{err}"
    );
}
