//! `koogallery seller …` against `koogallery up`: an approved seller shows itself, requests a
//! reviewed change (one at a time), lists and withdraws it, is refused an unverified rename,
//! exits, and its account cannot apply again.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use common::{Mesh, word};

#[test]
fn a_seller_changes_its_information_under_review_and_exits_for_good() {
    let mesh = Mesh::start();
    mesh.import_example_accounts();
    let file = mesh.example_application();
    let file = file.as_str();
    let (ok, out) = mesh.run(&["apply", "--file", file]);
    assert!(ok, "{out}");

    // A reviewer approves; the seller appears.
    let task = mesh.poll(&["review", "list"], |out| word(out, "reviewTasks/"));
    let (ok, out) = mesh.run(&["review", "claim", &task]);
    assert!(ok, "{out}");
    let (ok, out) = mesh.run(&["review", "approve", &task]);
    assert!(ok, "{out}");
    let acct = ["--account", "acct-demo"];
    let seller = mesh.poll(&[&["seller", "list"][..], &acct].concat(), |out| {
        word(out, "sellers/")
    });

    // Without the data folder no token goes out, and the refusal says what was missing.
    let mut bare = common::client(&["seller", "show", &seller]);
    let registration = format!("127.0.0.1:{}", mesh.base + 1);
    let out = bare
        .args(["--registration-addr", &registration])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("UNAUTHENTICATED")
            && err.contains("no token was sent")
            && err.contains("--data-dir"),
        "{err}"
    );

    let (ok, out) = mesh.run(&[&["seller", "show", &seller][..], &acct].concat());
    assert!(
        ok && out.contains("Fuzhou Example Software Co., Ltd."),
        "{out}"
    );

    let update = [
        &["seller", "update", &seller, "--industry", "CONSULTING"][..],
        &acct,
    ]
    .concat();
    let (ok, out) = mesh.run(&update);
    assert!(
        ok && out.contains("PENDING_REVIEW") && out.contains("industry"),
        "{out}"
    );
    let (ok, out) = mesh.run(&update);
    assert!(!ok && out.contains("MODIFICATION_ALREADY_PENDING"), "{out}");

    let (ok, out) = mesh.run(&[&["seller", "modifications", "list", &seller][..], &acct].concat());
    assert!(ok, "{out}");
    let request = word(&out, "sellers/").expect("the request's name");
    assert!(request.contains("/modificationRequests/"), "{out}");
    let (ok, out) = mesh.run(
        &[
            &["seller", "modifications", "withdraw", &request][..],
            &acct,
        ]
        .concat(),
    );
    assert!(ok && out.contains("WITHDRAWN"), "{out}");

    let (ok, out) = mesh.run(
        &[
            &["seller", "rename", &seller, "--name", "Not Verified Ltd."][..],
            &acct,
        ]
        .concat(),
    );
    assert!(!ok && out.contains("COMPANY_NAME_NOT_VERIFIED"), "{out}");

    let (ok, out) = mesh.run(
        &[
            &[
                "seller",
                "exit",
                &seller,
                "--reason",
                "closing the business",
                "--yes",
            ][..],
            &acct,
        ]
        .concat(),
    );
    assert!(ok && out.contains("EXITED"), "{out}");
    let (ok, out) = mesh.run(&["apply", "--file", file]);
    assert!(!ok && out.contains("ACCOUNT_BARRED"), "{out}");
}
