//! The README's run command: `koogallery up` serves all four services; a separate client process
//! (`koogallery status`) finds each SERVING and listing its own service through reflection; the
//! reviewers' back office answers on the fifth port; and SIGTERM stops the mesh with exit code 0.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

use std::process::Stdio;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_koogallery");

/// Five consecutive free ports (four services and the back office), and metrics ports at +1000.
fn free_base_port() -> u16 {
    for _ in 0..200 {
        let base = 20_000 + (std::process::id() as u16 % 20_000) + rand_offset();
        let all_free = (0..5).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
            && (0..4).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + 1000 + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no free port range");
}

fn rand_offset() -> u16 {
    (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos()
        % 10_000) as u16
}

#[test]
fn up_serves_all_four_services_to_a_separate_client_process() {
    let dir = tempfile::tempdir().unwrap();
    let base = free_base_port();
    let mut mesh = KillOnDrop(
        std::process::Command::new(BIN)
            .args(["up", "--data-dir"])
            .arg(dir.path())
            .args(["--base-port", &base.to_string()])
            .env_remove("KG_REDIS_URL")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );

    let started = Instant::now();
    let output = loop {
        let out = std::process::Command::new(BIN)
            .args(["status", "--base-port", &base.to_string()])
            .output()
            .unwrap();
        if out.status.success() {
            break String::from_utf8(out.stdout).unwrap();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = mesh.0.kill();
            panic!("mesh not SERVING: {}", String::from_utf8_lossy(&out.stdout));
        }
        std::thread::sleep(Duration::from_millis(200));
    };

    // The back office, over plain HTTP/1.1.
    let backoffice = std::net::SocketAddr::from(([127, 0, 0, 1], base + 4));
    let mut conn = std::net::TcpStream::connect(backoffice).expect("the back office listens");
    use std::io::{Read as _, Write as _};
    conn.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "back office: {reply}");

    for (name, grpc) in [
        (
            "identity-check",
            "koogallery.identity.v1.IdentityCheckService",
        ),
        (
            "registration",
            "koogallery.registration.v1.RegistrationService",
        ),
        ("review", "koogallery.review.v1.ReviewService"),
        (
            "notification",
            "koogallery.notification.v1.NotificationService",
        ),
    ] {
        let line = output
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name} missing from:\n{output}"));
        assert!(line.contains("SERVING"), "{line}");
        assert!(line.contains(grpc), "{line}");
    }

    let killed = std::process::Command::new("kill")
        .args(["-TERM", &mesh.0.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = mesh.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "mesh did not stop after SIGTERM");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(status.code(), Some(0));
}

/// Kills the mesh even when an assertion fails first, so no test leaves a server behind.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
