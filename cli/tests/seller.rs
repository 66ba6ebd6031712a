//! `koogallery seller …` against `koogallery up`: an approved seller shows itself, requests a
//! reviewed change (one at a time), lists and withdraws it, is refused an unverified rename,
//! exits, and its account cannot apply again.

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

fn run(args: &[&str], base: u16, data_dir: &std::path::Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(args)
        .env("KG_DATA_DIR", data_dir)
        .env_remove("KG_JWT_SECRET")
        .env("KG_IDENTITY_CHECK_ADDR", format!("127.0.0.1:{base}"))
        .env("KG_REGISTRATION_ADDR", format!("127.0.0.1:{}", base + 1))
        .env("KG_REVIEW_ADDR", format!("127.0.0.1:{}", base + 2))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
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

#[test]
fn a_seller_changes_its_information_under_review_and_exits_for_good() {
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
    let file = file.to_str().unwrap();
    let (ok, out) = run(&["apply", "--file", file], base, &data);
    assert!(ok, "{out}");

    // A reviewer approves; the seller appears.
    let task = poll(&["review", "list"], base, &data, |out| {
        word(out, "reviewTasks/")
    });
    let (ok, out) = run(&["review", "claim", &task], base, &data);
    assert!(ok, "{out}");
    let (ok, out) = run(&["review", "approve", &task], base, &data);
    assert!(ok, "{out}");
    let acct = ["--account", "acct-demo"];
    let seller = poll(
        &[&["seller", "list"][..], &acct].concat(),
        base,
        &data,
        |out| word(out, "sellers/"),
    );

    let (ok, out) = run(
        &[&["seller", "show", &seller][..], &acct].concat(),
        base,
        &data,
    );
    assert!(
        ok && out.contains("Fuzhou Example Software Co., Ltd."),
        "{out}"
    );

    let update = [
        &["seller", "update", &seller, "--industry", "CONSULTING"][..],
        &acct,
    ]
    .concat();
    let (ok, out) = run(&update, base, &data);
    assert!(
        ok && out.contains("PENDING_REVIEW") && out.contains("industry"),
        "{out}"
    );
    let (ok, out) = run(&update, base, &data);
    assert!(!ok && out.contains("MODIFICATION_ALREADY_PENDING"), "{out}");

    let (ok, out) = run(
        &[&["seller", "modifications", "list", &seller][..], &acct].concat(),
        base,
        &data,
    );
    assert!(ok, "{out}");
    let request = word(&out, "sellers/").expect("the request's name");
    assert!(request.contains("/modificationRequests/"), "{out}");
    let (ok, out) = run(
        &[
            &["seller", "modifications", "withdraw", &request][..],
            &acct,
        ]
        .concat(),
        base,
        &data,
    );
    assert!(ok && out.contains("WITHDRAWN"), "{out}");

    let (ok, out) = run(
        &[
            &["seller", "rename", &seller, "--name", "Not Verified Ltd."][..],
            &acct,
        ]
        .concat(),
        base,
        &data,
    );
    assert!(!ok && out.contains("COMPANY_NAME_NOT_VERIFIED"), "{out}");

    let (ok, out) = run(
        &[
            &[
                "seller",
                "exit",
                &seller,
                "--reason",
                "closing the business",
            ][..],
            &acct,
        ]
        .concat(),
        base,
        &data,
    );
    assert!(ok && out.contains("EXITED"), "{out}");
    let (ok, out) = run(&["apply", "--file", file], base, &data);
    assert!(!ok && out.contains("ACCOUNT_BARRED"), "{out}");
}

/// Kills the mesh even when an assertion fails first, so no test leaves a server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
