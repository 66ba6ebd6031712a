//! What the CLI tests share: a `koogallery up` mesh on free ports in a temporary folder, the
//! client commands pointed at it, and a tiny English website for the applications.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_koogallery");

/// A base port with the four service ports (base..base+3) and their health ports (+1000) free.
pub fn free_base_port() -> u16 {
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

/// A tiny English website on a thread; returns its URL.
pub fn website() -> String {
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

/// Kills the process even when an assertion fails first, so no test leaves a server behind.
pub struct KillOnDrop(pub std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `koogallery up` mesh (SQLite files and an in-process lock in a temporary folder).
pub struct Mesh {
    pub process: KillOnDrop,
    pub base: u16,
    pub data: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Mesh {
    /// Starts the mesh and waits until `koogallery status` says every service is SERVING.
    pub fn start() -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        let base = free_base_port();
        let data = dir.path().join("data");
        let process = KillOnDrop(
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
        let mesh = Mesh {
            process,
            base,
            data,
            dir,
        };
        mesh.poll(&["status", "--base-port", &base.to_string()], |_| {
            Some(String::new())
        });
        mesh
    }

    /// A client command against this mesh; its tokens are minted from the mesh's development
    /// secret.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command
            .args(args)
            .env("KG_DATA_DIR", &self.data)
            .env_remove("KG_JWT_SECRET")
            .env("KG_IDENTITY_CHECK_ADDR", format!("127.0.0.1:{}", self.base))
            .env(
                "KG_REGISTRATION_ADDR",
                format!("127.0.0.1:{}", self.base + 1),
            )
            .env("KG_REVIEW_ADDR", format!("127.0.0.1:{}", self.base + 2));
        command
    }

    /// Runs a client command: (success, stdout).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// Runs `args` until `found` picks something out of a successful output (30 s at most).
    pub fn poll(&self, args: &[&str], found: impl Fn(&str) -> Option<String>) -> String {
        let started = Instant::now();
        loop {
            let (ok, out) = self.run(args);
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

    /// Imports examples/accounts.yaml.
    pub fn import_example_accounts(&self) {
        let file = examples().join("accounts.yaml");
        let (ok, out) = self.run(&["accounts", "import", "--file", file.to_str().unwrap()]);
        assert!(ok, "{out}");
    }

    /// examples/application.yaml (and its logo) copied into the test folder with the website
    /// pointed at a local English site; returns the file's path.
    pub fn example_application(&self) -> String {
        let text = std::fs::read_to_string(examples().join("application.yaml"))
            .unwrap()
            .replace("https://www.example.com/", &website());
        let file = self.dir.path().join("application.yaml");
        std::fs::write(&file, text).unwrap();
        std::fs::copy(
            examples().join("logo.png"),
            self.dir.path().join("logo.png"),
        )
        .unwrap();
        file.to_str().unwrap().to_string()
    }
}

pub fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// The first word of `out` that starts with `prefix`.
pub fn word(out: &str, prefix: &str) -> Option<String> {
    out.split_whitespace()
        .find(|w| w.starts_with(prefix))
        .map(str::to_string)
}
