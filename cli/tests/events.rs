//! `koogallery events watch` against `koogallery up`: one line per event with its resume token;
//! resuming with a printed token continues with the next event; type filters; bad input refused.

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_koogallery");

fn free_base_port() -> u16 {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 60_000 {
            continue;
        }
        let free = (0..4).all(|i| {
            std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok()
                && std::net::TcpListener::bind(("127.0.0.1", base + 1000 + i)).is_ok()
        });
        if free {
            return base;
        }
    }
}

/// A tiny English website on a thread.
fn website() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut buf = [0u8; 2048];
            let _ = stream.read(&mut buf);
            let body = "<html lang=\"en\"><body><p>Example Software builds cloud monitoring tools for small businesses.</p></body></html>";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}/")
}

fn command(args: &[&str], base: u16, data_dir: &std::path::Path) -> Command {
    let mut command = Command::new(BIN);
    command
        .args(args)
        .env("KG_DATA_DIR", data_dir)
        .env_remove("KG_JWT_SECRET")
        .env("KG_IDENTITY_CHECK_ADDR", format!("127.0.0.1:{base}"))
        .env("KG_REGISTRATION_ADDR", format!("127.0.0.1:{}", base + 1))
        .env("KG_REVIEW_ADDR", format!("127.0.0.1:{}", base + 2));
    command
}

fn run(args: &[&str], base: u16, data_dir: &std::path::Path) -> (bool, String) {
    let out = command(args, base, data_dir).output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// `events watch …`, which waits for its events: killed (and the test failed) after 60 s.
fn watch(args: &[&str], base: u16, data_dir: &std::path::Path) -> (bool, String, String) {
    let mut child = KillOnDrop(
        command(&[&["events", "watch"][..], args].concat(), base, data_dir)
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

/// Runs `args` until `found` picks something out of a successful output.
fn poll(
    args: &[&str],
    base: u16,
    data: &std::path::Path,
    found: impl Fn(&str) -> Option<String>,
) -> String {
    let started = Instant::now();
    loop {
        let (ok, out) = run(args, base, data);
        if ok && let Some(v) = found(&out) {
            return v;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{args:?}: {out}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The first word of `out` that starts with `prefix`.
fn word(out: &str, prefix: &str) -> Option<String> {
    out.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .map(str::to_string)
}

/// The words of the one line of `out` (time, type, subject, actor, token).
fn one_line(out: &str) -> Vec<String> {
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    lines[0].split_whitespace().map(str::to_string).collect()
}

#[test]
fn events_watch_prints_one_line_per_event_and_resumes_with_its_token() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port();
    let data = dir.path().join("data");
    let _mesh = KillOnDrop(
        Command::new(BIN)
            .args(["up", "--data-dir"])
            .arg(&data)
            .env_remove("KG_JWT_SECRET")
            .args(["--base-port", &base.to_string()])
            .env("KG_WEBSITE_TEST_ALLOWLIST", "127.0.0.1/32")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    poll(
        &["status", "--base-port", &base.to_string()],
        base,
        &data,
        |_| Some(String::new()),
    );
    let (ok, out) = run(
        &[
            "accounts",
            "import",
            "--file",
            examples.join("accounts.yaml").to_str().unwrap(),
        ],
        base,
        &data,
    );
    assert!(ok, "{out}");
    let text = std::fs::read_to_string(examples.join("application.yaml"))
        .unwrap()
        .replace("https://www.example.com/", &website());
    std::fs::write(dir.path().join("application.yaml"), text).unwrap();
    std::fs::copy(examples.join("logo.png"), dir.path().join("logo.png")).unwrap();
    let file = dir.path().join("application.yaml");
    let (ok, out) = run(&["apply", "--file", file.to_str().unwrap()], base, &data);
    assert!(ok, "{out}");

    // The submission: time, type, subject, actor, token.
    let (ok, out, err) = watch(&["--account", "acct-demo", "--limit", "1"], base, &data);
    assert!(ok, "{out}{err}");
    let submitted = one_line(&out);
    assert_eq!(submitted.len(), 5, "{out}");
    assert!(submitted[0].ends_with('Z'), "{out}");
    assert_eq!(submitted[1], "APPLICATION_SUBMITTED");
    assert!(submitted[2].starts_with("applications/"), "{out}");
    assert_eq!(submitted[3], "acct-demo");

    // A reviewer approves; resuming after the submission waits for the approval, and a type
    // filter finds the same event.
    let task = poll(&["review", "list"], base, &data, |out| {
        word(out, "reviewTasks/")
    });
    assert!(run(&["review", "claim", &task], base, &data).0);
    assert!(run(&["review", "approve", &task], base, &data).0);
    let (ok, out, err) = watch(&["--resume", &submitted[4], "--limit", "1"], base, &data);
    assert!(ok, "{out}{err}");
    let approved = one_line(&out);
    assert_eq!(approved[1], "APPLICATION_APPROVED");
    assert_eq!(approved[2], submitted[2]);
    assert_eq!(approved[3], "reviewer-1");
    assert_ne!(approved[4], submitted[4]);
    let (ok, out, err) = watch(
        &[
            "--types",
            "application_approved,SELLER_EXITED",
            "--limit",
            "1",
        ],
        base,
        &data,
    );
    assert!(ok, "{out}{err}");
    assert_eq!(one_line(&out), approved);
    let (ok, out, err) = watch(
        &["--from", "2000-01-01T00:00:00Z", "--limit", "2"],
        base,
        &data,
    );
    assert!(ok, "{out}{err}");
    assert_eq!(out.lines().count(), 2, "{out}");

    // Refused: an unknown type (before any call), a forged token (by the server).
    let (ok, _, err) = watch(&["--types", "SELLER_GONE"], base, &data);
    assert!(!ok && err.contains("MODIFICATION_WITHDRAWN"), "{err}");
    let (ok, out, _) = watch(&["--resume", "not-a-token", "--limit", "1"], base, &data);
    assert!(!ok && out.contains("INVALID_RESUME_TOKEN"), "{out}");
}

/// Kills the process even when an assertion fails first, so no test leaves one behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
