//! `koogallery accounts import` and `koogallery apply` against `koogallery up`: the example files
//! work, the preflight runs, and a refused submission prints its reasons.

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
        // The client commands mint their tokens from the mesh's development secret.
        .env("KG_DATA_DIR", data_dir)
        .env_remove("KG_JWT_SECRET")
        .env("KG_IDENTITY_CHECK_ADDR", format!("127.0.0.1:{base}"))
        .env("KG_REGISTRATION_ADDR", format!("127.0.0.1:{}", base + 1))
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_example_files_import_preflight_and_submit() {
    let examples = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples");
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port();
    let data = dir.path().join("data");
    let mut mesh = KillOnDrop(
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
    let started = Instant::now();
    while !run(&["status", "--base-port", &base.to_string()], base, &data).0 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "mesh never came up"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

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
    assert!(out.contains("created 2"), "{out}");

    // The example application, pointed at the local site.
    let text = std::fs::read_to_string(examples.join("application.yaml"))
        .unwrap()
        .replace("https://www.example.com/", &website());
    std::fs::write(dir.path().join("application.yaml"), text).unwrap();
    std::fs::copy(examples.join("logo.png"), dir.path().join("logo.png")).unwrap();
    let file = dir.path().join("application.yaml");
    let file = file.to_str().unwrap();

    let (ok, out) = run(&["apply", "--file", file, "--preflight-only"], base, &data);
    assert!(ok, "{out}");
    assert!(out.contains("website") && out.contains("PASSED"), "{out}");

    let (ok, out) = run(&["apply", "--file", file], base, &data);
    assert!(ok, "{out}");
    assert!(
        out.contains("applications/") && out.contains("SUBMITTED"),
        "{out}"
    );

    let (ok, out) = run(&["apply", "--file", file], base, &data);
    assert!(!ok, "a second application of the same account is refused");
    assert!(out.contains("APPLICATION_ALREADY_OPEN"), "{out}");

    let _ = Command::new("kill")
        .args(["-TERM", &mesh.0.id().to_string()])
        .status();
    let _ = mesh.0.wait();
}

/// Kills the mesh even when an assertion fails first, so no test leaves a server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
