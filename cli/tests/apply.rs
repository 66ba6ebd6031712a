//! `koogallery accounts import` and `koogallery apply` against `koogallery up`: the example files
//! work, the preflight runs, and a refused submission prints its reasons.

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
