//! `koogallery accounts import` and `koogallery apply` against `koogallery up`: the example files
//! work, the preflight runs, and a refused submission prints its reasons.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::process::Command;

use common::Mesh;

#[test]
fn the_example_files_import_preflight_and_submit() {
    let mut mesh = Mesh::start();
    let examples = common::examples();

    let (ok, out) = mesh.run(&[
        "accounts",
        "import",
        "--file",
        examples.join("accounts.yaml").to_str().unwrap(),
    ]);
    assert!(ok, "{out}");
    assert!(out.contains("created 3"), "{out}");

    // The example application, pointed at the local site.
    let file = mesh.example_application();
    let file = file.as_str();

    let (ok, out) = mesh.run(&["apply", "--file", file, "--preflight-only"]);
    assert!(ok, "{out}");
    assert!(out.contains("website") && out.contains("PASSED"), "{out}");

    let (ok, out) = mesh.run(&["apply", "--file", file]);
    assert!(ok, "{out}");
    assert!(
        out.contains("applications/") && out.contains("SUBMITTED"),
        "{out}"
    );

    let (ok, out) = mesh.run(&["apply", "--file", file]);
    assert!(!ok, "a second application of the same account is refused");
    assert!(out.contains("APPLICATION_ALREADY_OPEN"), "{out}");

    let _ = Command::new("kill")
        .args(["-TERM", &mesh.process.0.id().to_string()])
        .status();
    let _ = mesh.process.0.wait();
}

#[test]
fn the_submitted_addresses_are_listed_pending() {
    let mesh = Mesh::start();
    mesh.import_example_accounts();
    let file = mesh.example_application();
    let (ok, out) = mesh.run(&["apply", "--file", &file]);
    assert!(ok, "{out}");

    // The applicant sees the two addresses of examples/application.yaml, each with a code out.
    let (ok, out) = mesh.run(&["contacts", "list", "--account", "acct-demo"]);
    assert!(ok, "{out}");
    for email in ["li.wei@example.com", "support@example.com"] {
        let line = out.lines().find(|l| l.starts_with(email));
        assert!(
            line.is_some_and(
                |l| l.contains("PENDING") && l.contains("accounts/acct-demo/contacts/")
            ),
            "{email}: {out}"
        );
    }
    assert!(out.contains("not marked unreachable"), "{out}");

    // An operator names the account; without one the command says so before any call.
    let listed = mesh
        .command(&[
            "contacts",
            "list",
            "--account-id",
            "acct-demo",
            "-o",
            "json",
        ])
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&listed.stdout);
    assert!(listed.status.success(), "{out}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["contacts"].as_array().map(Vec::len), Some(2), "{out}");
    assert_eq!(json["unreachable"], false, "{out}");
    let (ok, out) = mesh.run(&["contacts", "list"]);
    assert!(!ok && out.contains("--account-id"), "{out}");
}
