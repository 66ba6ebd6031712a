//! What the CLI says when things go wrong, without a mesh: a mesh that is down is named by
//! address (and by where the address came from) with the status and the cause once; something
//! permanent is not done without a confirmation; completions print a script.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use common::client;

fn run(args: &[&str]) -> (bool, String, String) {
    let out = client(args).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_mesh_that_is_down_is_named_by_address_with_the_cause_once() {
    let port = dead_port();
    let addr = format!("127.0.0.1:{port}");
    let (ok, out, err) = run(&["review", "list", "--review-addr", &addr]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains(&format!(
            "cannot reach review at {addr} (from --review-addr"
        )),
        "{err}"
    );
    assert!(err.contains("UNAVAILABLE"), "{err}");
    assert_eq!(
        err.to_lowercase().matches("connection refused").count(),
        1,
        "the cause once: {err}"
    );

    // Pointed at by a data folder: the address comes from the mesh file `up` wrote there.
    let dir = tempfile::tempdir().unwrap();
    let base = dead_port();
    std::fs::write(
        dir.path().join("mesh.json"),
        serde_json::json!({
            "identity-check": format!("127.0.0.1:{base}"),
            "registration": format!("127.0.0.1:{base}"),
            "review": format!("127.0.0.1:{base}"),
            "notification": format!("127.0.0.1:{base}"),
        })
        .to_string(),
    )
    .unwrap();
    let (ok, _, err) = run(&["seller", "list", "--data-dir", dir.path().to_str().unwrap()]);
    assert!(!ok, "{err}");
    let file = dir.path().join("mesh.json");
    assert!(
        err.contains(&format!(
            "cannot reach registration at 127.0.0.1:{base} (from {})",
            file.display()
        )),
        "{err}"
    );
}

#[test]
fn an_exit_is_not_done_without_a_confirmation() {
    // No terminal to ask on and no --yes: refused before any connection is tried.
    let (ok, _, err) = run(&[
        "seller",
        "exit",
        "s-1",
        "--reason",
        "closing",
        "--registration-addr",
        &format!("127.0.0.1:{}", dead_port()),
    ]);
    assert!(!ok);
    assert!(
        err.contains("--yes") && !err.contains("cannot reach"),
        "{err}"
    );
}

#[test]
fn completions_and_help() {
    let (ok, out, _) = run(&["completions", "bash"]);
    assert!(
        ok && out.contains("complete -F") && out.contains("koogallery"),
        "{out}"
    );
    let (ok, out, _) = run(&["review", "list", "--help"]);
    assert!(
        ok && out.contains("--wait") && out.contains("--data-dir"),
        "{out}"
    );
    let (ok, _, err) = run(&["notifications", "list", "--output", "yaml"]);
    assert!(
        !ok && err.contains("table") && err.contains("json"),
        "{err}"
    );
}
