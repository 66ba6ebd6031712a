//! What the CLI tests share: a `koogallery up` mesh on free ports in a temporary folder, the
//! client commands pointed at it, and a tiny English website for the applications.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_koogallery");

/// A base port with the four service ports (base..base+3), the back office's (base+4) and the
/// services' health ports (+1000) free.
pub fn free_base_port() -> u16 {
    loop {
        let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = probe.local_addr().unwrap().port();
        drop(probe);
        if base > 60_000 {
            continue;
        }
        let free = std::net::TcpListener::bind(("127.0.0.1", base + 4)).is_ok()
            && (0..4).all(|i| {
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
                // Tests run side by side: each serves its own site (below) rather than
                // sharing the demo site's one address.
                .arg("--no-demo-site")
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

    /// A client command against this mesh, pointed at it by its data folder alone: the
    /// addresses come from the folder's mesh.json, the tokens from its development secret.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = client(args);
        command.env("KG_DATA_DIR", &self.data);
        command
    }

    /// Runs a client command: (success, stdout followed by stderr).
    pub fn run(&self, args: &[&str]) -> (bool, String) {
        let out = self.command(args).output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned()
                + &String::from_utf8_lossy(&out.stderr),
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
            .replace("http://127.0.80.1:8080/", &website());
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

/// The CLI with none of the settings that point it at a mesh inherited from the environment.
pub fn client(args: &[&str]) -> Command {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    for var in [
        "KG_DATA_DIR",
        "KG_BASE_PORT",
        "KG_HOST",
        "KG_IDENTITY_CHECK_ADDR",
        "KG_REGISTRATION_ADDR",
        "KG_REVIEW_ADDR",
        "KG_NOTIFICATION_ADDR",
        "KG_JWT_SECRET",
        "KG_TOKEN",
        "KG_ACCOUNT",
        "KG_REVIEWER",
    ] {
        command.env_remove(var);
    }
    command
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
