//! The README walkthrough as a test: the command lines between the walkthrough markers of
//! README.md run in order, as one `bash -e` script, against `koogallery up` — inside a network
//! namespace of their own with only loopback (no route to the internet) when `unshare -n` works
//! here, so the offline demo is what is tested. A README that drifts from the CLI fails.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{BIN, KillOnDrop};

const TEST: &str = "the_readme_walkthrough_runs_offline_against_koogallery_up";
/// Set in the re-executed test inside the namespace.
const INSIDE: &str = "KG_WALKTHROUGH_IN_NETNS";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The command lines of the sh blocks between the walkthrough markers.
fn walkthrough(readme: &str) -> Vec<String> {
    let begin = readme
        .find("<!-- walkthrough:begin")
        .expect("README.md has a walkthrough:begin marker");
    let end = readme[begin..]
        .find("<!-- walkthrough:end -->")
        .expect("README.md has a walkthrough:end marker")
        + begin;
    let mut lines = Vec::new();
    let mut in_sh = false;
    for line in readme[begin..end].lines() {
        let trimmed = line.trim();
        if trimmed.starts_with("```") {
            in_sh = !in_sh && trimmed == "```sh";
            continue;
        }
        if in_sh && !trimmed.is_empty() && !trimmed.starts_with('#') {
            lines.push(trimmed.to_string());
        }
    }
    lines
}

/// One bash script: each line echoed, run, and a captured variable checked to be non-empty.
fn script(lines: &[String]) -> String {
    let mut s = String::from("set -euo pipefail\nexec 2>&1\n");
    for line in lines {
        s.push_str(&format!(
            "printf '%s\\n' '$ {}'\n",
            line.replace('\'', r"'\''")
        ));
        s.push_str(line);
        s.push('\n');
        if let Some((var, _)) = line.split_once("=$(") {
            s.push_str(&format!(
                "[ -n \"${var}\" ] || {{ echo \"{var} is empty\"; exit 1; }}\necho \"  {var}=${var}\"\n"
            ));
        }
    }
    s
}

#[test]
fn the_walkthrough_covers_the_whole_journey() {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let lines = walkthrough(&readme).join("\n");
    for step in [
        "koogallery accounts import",
        "--preflight-only",
        "koogallery apply --file",
        "koogallery review list",
        "koogallery review claim",
        "koogallery review approve",
        "koogallery review request-changes",
        "--resubmit",
        "koogallery review reject",
        "koogallery notifications list",
        "koogallery seller show",
        "koogallery seller update",
        "koogallery seller rename",
        "koogallery seller exit",
        "koogallery events watch",
    ] {
        assert!(
            lines.contains(step),
            "the README walkthrough lacks {step:?}"
        );
    }
    assert!(
        lines.lines().all(|l| l.contains("koogallery ")),
        "every walkthrough line is a koogallery command:\n{lines}"
    );
}

#[test]
fn the_readme_walkthrough_runs_offline_against_koogallery_up() {
    if std::env::var_os(INSIDE).is_some() {
        return run(true);
    }
    let namespaces = Command::new("unshare")
        .args(["-n", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !namespaces {
        eprintln!("no network namespaces here (unshare -n failed): running on the host network");
        return run(false);
    }
    // The same test again, alone, in a new network namespace.
    let out = Command::new("unshare")
        .args(["-n", "--"])
        .arg(std::env::current_exe().unwrap())
        .args([TEST, "--exact", "--nocapture", "--test-threads=1"])
        .env(INSIDE, "1")
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    println!("{text}");
    assert!(
        out.status.success() && text.contains("1 passed"),
        "the walkthrough failed in its network namespace:\n{text}"
    );
}

fn run(isolated: bool) {
    let repo = repo();
    if isolated {
        let up = Command::new("ip")
            .args(["link", "set", "lo", "up"])
            .status()
            .unwrap();
        assert!(up.success(), "ip link set lo up");
        let routes = Command::new("ip").args(["route"]).output().unwrap();
        let routes = String::from_utf8_lossy(&routes.stdout);
        assert!(!routes.contains("default"), "a default route: {routes}");
        assert!(
            std::net::TcpStream::connect_timeout(
                &"1.1.1.1:443".parse().unwrap(),
                Duration::from_secs(2)
            )
            .is_err(),
            "the internet is reachable"
        );
    }
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");

    // `koogallery up` as the README runs it: default ports in the namespace (all free there),
    // a free range otherwise. Clients get the data folder and nothing else.
    let mut up = common::client(&["up"]);
    up.current_dir(&repo)
        .env("KG_DATA_DIR", &data)
        .env_remove("KG_WEBSITE_TEST_ALLOWLIST")
        .env_remove("KG_NO_DEMO_SITE")
        .env_remove("KG_REDIS_URL")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if !isolated {
        up.args(["--base-port", &common::free_base_port().to_string()]);
    }
    let _mesh = KillOnDrop(up.spawn().unwrap());
    let client = |args: &[&str]| {
        let mut c = common::client(args);
        c.current_dir(&repo).env("KG_DATA_DIR", &data);
        c
    };
    let started = Instant::now();
    while !client(&["status"]).output().unwrap().status.success() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "mesh not SERVING"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The walkthrough, with `koogallery` the binary under test.
    let readme = std::fs::read_to_string(repo.join("README.md")).unwrap();
    let lines = walkthrough(&readme);
    let bin_dir = Path::new(BIN).parent().unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = KillOnDrop(
        Command::new("bash")
            .args(["-c", &script(&lines)])
            .current_dir(&repo)
            .env("PATH", path)
            .env("KG_DATA_DIR", &data)
            .env_remove("KG_BASE_PORT")
            .env_remove("KG_JWT_SECRET")
            .env_remove("KG_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "the walkthrough did not finish in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut log = String::new();
    child
        .0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    println!("{log}");
    assert!(status.success(), "a walkthrough command failed:\n{log}");
    assert_eq!(
        log.lines().filter(|l| l.starts_with("$ ")).count(),
        lines.len(),
        "{log}"
    );

    // The records the walkthrough made, as JSON for scripts.
    let json = |args: &[&str]| -> serde_json::Value {
        let out = client(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {out:?}"))
    };
    let tasks = json(&[
        "review",
        "list",
        "-o",
        "json",
        "--state",
        "approved,rejected",
    ]);
    let kinds: Vec<(String, String)> = tasks
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                t["kind"].as_str().unwrap().to_string(),
                t["state"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for expected in [
        ("APPLICATION", "APPROVED"),
        ("APPLICATION", "REJECTED"),
        ("MODIFICATION", "APPROVED"),
    ] {
        assert!(
            kinds
                .iter()
                .any(|(k, s)| (k.as_str(), s.as_str()) == expected),
            "{expected:?} in {kinds:?}"
        );
    }
    let sent = json(&[
        "notifications",
        "list",
        "--account",
        "acct-demo",
        "-o",
        "json",
    ]);
    let sent: Vec<_> = sent.as_array().unwrap().iter().collect();
    assert!(
        sent.iter()
            .any(|n| n["kind"] == "APPLICATION_APPROVED" && n["channel"] == "EMAIL"),
        "{sent:?}"
    );

    // The demo's exception is the demo site's address only: the mesh's own ports on
    // 127.0.0.1 stay forbidden to the website check.
    let app = std::fs::read_to_string(repo.join("examples/application.yaml"))
        .unwrap()
        .replace("http://127.0.80.1:8080/", "http://127.0.0.1:50052/")
        .replace(
            "logo.png",
            &repo.join("examples/logo.png").display().to_string(),
        );
    let file = dir.path().join("internal.yaml");
    std::fs::write(&file, app).unwrap();
    let out = client(&[
        "apply",
        "--file",
        file.to_str().unwrap(),
        "--preflight-only",
    ])
    .output()
    .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("WEBSITE_ADDRESS_FORBIDDEN"),
        "{text}"
    );
}
