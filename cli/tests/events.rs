//! `koogallery events watch` against `koogallery up`: one line per event with its resume token;
//! resuming with a printed token continues with the next event; type filters; bad input refused.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::io::Read;
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{KillOnDrop, Mesh, word};

/// `events watch …`, which waits for its events: killed (and the test failed) after 60 s.
fn watch(mesh: &Mesh, args: &[&str]) -> (bool, String, String) {
    let mut child = KillOnDrop(
        mesh.command(&[&["events", "watch"][..], args].concat())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "events watch {args:?} did not finish"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let (mut out, mut err) = (String::new(), String::new());
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.success(), out, err)
}

/// The words of the one line of `out` (time, type, subject, actor, token).
fn one_line(out: &str) -> Vec<String> {
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    lines[0].split_whitespace().map(str::to_string).collect()
}

#[test]
fn events_watch_prints_one_line_per_event_and_resumes_with_its_token() {
    let mesh = Mesh::start();
    mesh.import_example_accounts();
    let file = mesh.example_application();
    let (ok, out) = mesh.run(&["apply", "--file", &file]);
    assert!(ok, "{out}");

    // The submission: time, type, subject, actor, token.
    let (ok, out, err) = watch(&mesh, &["--account", "acct-demo", "--limit", "1"]);
    assert!(ok, "{out}{err}");
    let submitted = one_line(&out);
    assert_eq!(submitted.len(), 5, "{out}");
    assert!(submitted[0].ends_with('Z'), "{out}");
    assert_eq!(submitted[1], "APPLICATION_SUBMITTED");
    assert!(submitted[2].starts_with("applications/"), "{out}");
    assert_eq!(submitted[3], "acct-demo");

    // A reviewer approves; resuming after the submission waits for the approval, and a type
    // filter finds the same event.
    let task = mesh.poll(&["review", "list"], |out| word(out, "reviewTasks/"));
    assert!(mesh.run(&["review", "claim", &task]).0);
    assert!(mesh.run(&["review", "approve", &task]).0);
    let (ok, out, err) = watch(&mesh, &["--resume", &submitted[4], "--limit", "1"]);
    assert!(ok, "{out}{err}");
    let approved = one_line(&out);
    assert_eq!(approved[1], "APPLICATION_APPROVED");
    assert_eq!(approved[2], submitted[2]);
    assert_eq!(approved[3], "reviewer-1");
    assert_ne!(approved[4], submitted[4]);
    let (ok, out, err) = watch(
        &mesh,
        &[
            "--types",
            "application_approved,SELLER_EXITED",
            "--limit",
            "1",
        ],
    );
    assert!(ok, "{out}{err}");
    assert_eq!(one_line(&out), approved);
    let (ok, out, err) = watch(&mesh, &["--from", "2000-01-01T00:00:00Z", "--limit", "2"]);
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // Refused: an unknown type (before any call), a forged token (by the server).
    let (ok, _, err) = watch(&mesh, &["--types", "SELLER_GONE"]);
    assert!(!ok && err.contains("MODIFICATION_WITHDRAWN"), "{err}");
    let (ok, out, err) = watch(&mesh, &["--resume", "not-a-token", "--limit", "1"]);
    assert!(!ok && out.is_empty(), "{out}");
    assert!(
        err.contains("INVALID_ARGUMENT INVALID_RESUME_TOKEN"),
        "{err}"
    );
}
