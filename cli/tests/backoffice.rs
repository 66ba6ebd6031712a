//! The reviewers' back office in a real browser against `koogallery up`, as the README runs it:
//! headless Chromium driven through chromedriver (WebDriver). An application is submitted with
//! the CLI, two reviewers in two browser sessions sign in on the development sign-in, one claims
//! and approves it, the other sees it claimed; the CLI then finds the seller.
//!
//! Needs Debian's `chromium` and `chromium-driver` (scripts/test installs them). Screenshots of
//! the queue and the task are written under the test target folder (`backoffice-screenshots/`),
//! and over docs/backoffice/ when KG_UPDATE_DOCS_SCREENSHOTS=1.

#![allow(clippy::unwrap_used)] // a test: a failed unwrap is a failed test

mod common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::{Mesh, word};
use fantoccini::{Client, ClientBuilder, Locator};
use tokio::process::{Child, Command};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const COMPANY: &str = "Fuzhou Example Software Co., Ltd.";

/// chromedriver on a free loopback port, killed when dropped.
struct Driver {
    url: String,
    _child: Child,
}

impl Driver {
    async fn start() -> Driver {
        assert!(
            Path::new(CHROMEDRIVER).exists(),
            "{CHROMEDRIVER} is missing: apt-get install chromium chromium-driver (scripts/test does)"
        );
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap().port()
        };
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("starting chromedriver");
        let started = Instant::now();
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not listen"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Driver {
            url: format!("http://127.0.0.1:{port}"),
            _child: child,
        }
    }

    /// A new browser session with a profile of its own.
    async fn browser(&self, profile: &Path) -> Client {
        let binary = ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("chromium is missing: apt-get install chromium chromium-driver");
        let mut caps = serde_json::Map::new();
        caps.insert(
            "goog:chromeOptions".into(),
            serde_json::json!({
                "binary": binary,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--window-size=1280,1400",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }),
        );
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&self.url)
            .await
            .expect("a Chromium session through chromedriver")
    }
}

/// The development sign-in `koogallery up` offers on loopback.
async fn sign_in(browser: &Client, office: &str, subject: &str) {
    browser.goto(&format!("{office}/")).await.unwrap();
    let url = browser.current_url().await.unwrap();
    assert_eq!(
        url.path(),
        "/signin",
        "unsigned visitors are sent to sign in"
    );
    let field = browser.find(Locator::Id("subject")).await.unwrap();
    field.send_keys(subject).await.unwrap();
    click(browser, "signin").await;
    let me = browser.wait().for_element(Locator::Id("me")).await.unwrap();
    assert_eq!(me.text().await.unwrap(), subject);
}

/// Clicks a form's submit button and waits until the browser has left the page: every button
/// here posts a form whose answer is a redirect, and reading the next page before the old one is
/// gone reads the old one's elements (or meets them stale mid-read).
async fn click(browser: &Client, id: &str) {
    let old_page = browser.find(Locator::Css("html")).await.unwrap();
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap();
    let left = tokio::time::timeout(Duration::from_secs(20), async {
        // the old document's root goes stale once the new document has replaced it
        while old_page.tag_name().await.is_ok() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(
        left.is_ok(),
        "#{id} did not lead to another page within 20 s"
    );
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .wait()
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .text()
        .await
        .unwrap()
}

/// Saves a screenshot as a test artifact (and over the README's copy when asked to).
async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.unwrap();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "{name}: a real PNG screenshot"
    );
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("backoffice-screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(name), &png).unwrap();
    if std::env::var_os("KG_UPDATE_DOCS_SCREENSHOTS").is_some_and(|v| v == "1") {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/backoffice");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::write(docs.join(name), &png).unwrap();
    }
}

/// The logo's natural width once the browser has decoded it (-1 while loading).
async fn logo_width(browser: &Client) -> i64 {
    let started = Instant::now();
    loop {
        let width = browser
            .execute(
                "const i = document.getElementById('logo-preview'); \
                 return i && i.complete ? i.naturalWidth : -1;",
                vec![],
            )
            .await
            .ok()
            .and_then(|w| w.as_i64())
            .unwrap_or(-1);
        if width >= 0 {
            return width;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the logo never loaded"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reviewers_claim_and_approve_in_a_real_browser_against_koogallery_up() {
    // The CLI calls are blocking processes; they run while no browser call is in flight.
    let (mesh, task) = tokio::task::block_in_place(|| {
        let mesh = Mesh::start();
        mesh.import_example_accounts();
        let file = mesh.example_application();
        let (ok, out) = mesh.run(&["apply", "--file", &file]);
        assert!(ok, "{out}");
        assert!(
            out.contains("applications/") && out.contains("SUBMITTED"),
            "{out}"
        );
        let task = mesh.poll(&["review", "list", "--account", "acct-demo"], |out| {
            word(out, "reviewTasks/")
        });
        (mesh, task)
    });
    let id = task.trim_start_matches("reviewTasks/").to_string();
    // `koogallery up` serves the back office on the port after the four services
    let office = format!("http://127.0.0.1:{}", mesh.base + 4);

    let driver = Driver::start().await;
    let profiles = tempfile::tempdir().unwrap();
    let one = driver.browser(&profiles.path().join("reviewer-1")).await;
    let two = driver.browser(&profiles.path().join("reviewer-2")).await;

    // Reviewer 1 signs in and finds the fresh application in the queue, unclaimed.
    sign_in(&one, &office, "reviewer-1").await;
    let row = format!("tr[data-task=\"{id}\"]");
    assert_eq!(text_of(&one, &format!("{row} a.company")).await, COMPANY);
    assert_eq!(
        text_of(&one, &format!("{row} td.assignee")).await,
        "unclaimed"
    );
    assert!(
        text_of(&one, &format!("{row} td:nth-child(2)"))
            .await
            .ends_with("left"),
        "time left on the review clock"
    );
    screenshot(&one, "queue.png").await;

    // The task page, with the logo rendered by the browser from the back office's own URL.
    one.find(Locator::Css(&format!("{row} a.company")))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    assert_eq!(text_of(&one, "#company").await, COMPANY);
    assert_eq!(
        logo_width(&one).await,
        168,
        "the example's 168 x 80 PNG decoded in the browser"
    );
    assert!(text_of(&one, "#materials").await.contains("Website"));
    assert!(text_of(&one, "#audit").await.contains("CREATED"));

    // Reviewer 2 opens the same task while it is still unclaimed.
    sign_in(&two, &office, "reviewer-2").await;
    two.goto(&format!("{office}/tasks/{id}")).await.unwrap();
    two.wait().for_element(Locator::Id("claim")).await.unwrap();

    // Reviewer 1 claims it.
    click(&one, "claim").await;
    assert_eq!(
        text_of(&one, "#assignee").await,
        "Claimed by reviewer-1 (you)"
    );
    one.wait()
        .for_element(Locator::Id("approve"))
        .await
        .unwrap();
    screenshot(&one, "task.png").await;

    // Reviewer 2's stale Claim is refused with the service's reason; the queue shows the claim.
    click(&two, "claim").await;
    let reason = text_of(&two, "#refusal-reason").await;
    assert!(
        reason == "ETAG_MISMATCH" || reason == "TASK_CLAIMED_BY_OTHER",
        "the service's reason code, got {reason:?}"
    );
    two.goto(&format!("{office}/")).await.unwrap();
    assert_eq!(
        text_of(&two, &format!("{row} td.assignee")).await,
        "reviewer-1"
    );
    two.goto(&format!("{office}/tasks/{id}")).await.unwrap();
    assert!(
        text_of(&two, "#no-actions")
            .await
            .contains("Claimed by reviewer-1"),
        "no claim button for the second reviewer"
    );
    assert!(two.find(Locator::Id("claim")).await.is_err());

    // Reviewer 1 approves.
    one.find(Locator::Id("approve-comment"))
        .await
        .unwrap()
        .send_keys("Logo, website and entity verified.")
        .await
        .unwrap();
    click(&one, "approve").await;
    assert_eq!(text_of(&one, "#state").await, "Approved");
    assert!(text_of(&one, "#flash").await.starts_with("Approved"));
    one.close().await.unwrap();
    two.close().await.unwrap();

    // With the CLI: the task is approved by reviewer 1, and the seller exists.
    tokio::task::block_in_place(|| {
        let (ok, out) = mesh.run(&[
            "review",
            "list",
            "--account",
            "acct-demo",
            "--state",
            "approved",
        ]);
        assert!(
            ok && out.contains(&task) && out.contains("reviewer-1"),
            "{out}"
        );
        let acct = ["--account", "acct-demo"];
        let seller = mesh.poll(&[&["seller", "list"][..], &acct].concat(), |out| {
            word(out, "sellers/")
        });
        let (ok, out) = mesh.run(&[&["seller", "show", &seller][..], &acct].concat());
        assert!(ok && out.contains(COMPANY), "{out}");
    });
}
