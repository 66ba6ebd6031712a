//! The whole mesh in this process (authentication on) plus the back office on 127.0.0.1:0, and
//! plain-HTTP helpers that act as the platform's auth proxy (a bearer token on each request).

#![allow(dead_code)] // each test file uses its own part of the helpers

use std::time::Duration;

use kg_proto::review::{ListAuditEntriesRequest, ReviewTask};
use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use kg_runtime::shutdown::{Shutdown, ShutdownTrigger};
use kg_tests::full_mesh::Mesh;
use tokio::task::JoinHandle;

/// The mesh's HS256 secret, shared by the back office.
pub const SECRET: &str = "backoffice-tests-secret-0123456789abcdef";

pub struct Office {
    pub url: String,
    trigger: ShutdownTrigger,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Office {
    /// The back office of `mesh` as `koogallery up` runs it (`Config::local`).
    pub async fn start(mesh: &Mesh) -> Office {
        let config = kg_backoffice::Config::local(
            mesh.identity.url(),
            mesh.registration.url(),
            mesh.review.url(),
            SECRET.to_string(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (trigger, shutdown) = Shutdown::new();
        let task = tokio::spawn(kg_backoffice::run(config, listener, shutdown));
        let office = Office { url, trigger, task };
        let client = http_client();
        kg_tests::poll("the back office", Duration::from_secs(20), || async {
            let r = client
                .get(format!("{}/healthz", office.url))
                .send()
                .await
                .ok()?;
            r.status().is_success().then_some(())
        })
        .await;
        office
    }

    pub async fn stop(self) {
        self.trigger.trigger();
        self.task.await.unwrap().unwrap();
    }
}

pub async fn mesh() -> Mesh {
    Mesh::start_with(Some(SECRET)).await
}

pub fn token(subject: &str, role: Role) -> String {
    Authenticator::hs256(SECRET.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE).mint(
        subject,
        role,
        Duration::from_secs(600),
    )
}

/// No redirects followed: the tests look at each answer.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

pub struct Answer {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Vec<u8>,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }

    /// The value of the CSRF cookie this answer sets, if it sets one.
    pub fn csrf_cookie(&self) -> Option<String> {
        self.headers
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find_map(|c| c.strip_prefix("kg_csrf="))
            .map(|c| c.split(';').next().unwrap_or("").to_string())
    }
}

async fn answer(r: reqwest::Response) -> Answer {
    Answer {
        status: r.status().as_u16(),
        headers: r.headers().clone(),
        body: r.bytes().await.unwrap().to_vec(),
    }
}

/// GET as the holder of `token` (the auth proxy's header), with the CSRF cookie when given.
pub async fn get(office: &Office, path: &str, token: &str, csrf_cookie: Option<&str>) -> Answer {
    let mut request = http_client()
        .get(format!("{}{path}", office.url))
        .bearer_auth(token);
    if let Some(c) = csrf_cookie {
        request = request.header("cookie", format!("kg_csrf={c}"));
    }
    answer(request.send().await.unwrap()).await
}

/// A form POST as the holder of `token`.
pub async fn post(
    office: &Office,
    path: &str,
    token: &str,
    csrf_cookie: Option<&str>,
    form: &[(&str, &str)],
) -> Answer {
    let mut request = http_client()
        .post(format!("{}{path}", office.url))
        .bearer_auth(token)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(
            url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        );
    if let Some(c) = csrf_cookie {
        request = request.header("cookie", format!("kg_csrf={c}"));
    }
    answer(request.send().await.unwrap()).await
}

/// The `value` of the first `<input name="{name}">` after `after` in a page.
pub fn input_value(page: &str, after: &str, name: &str) -> String {
    let start = page
        .find(after)
        .unwrap_or_else(|| panic!("{after:?} not in the page"));
    let rest = &page[start..];
    let marker = format!("name=\"{name}\" value=\"");
    let at = rest
        .find(&marker)
        .unwrap_or_else(|| panic!("no input {name} after {after:?}"))
        + marker.len();
    rest[at..].split('"').next().unwrap().to_string()
}

pub fn task_id(task: &ReviewTask) -> String {
    task.name.rsplit('/').next().unwrap().to_string()
}

/// The actions audited on a task, in order.
pub async fn audited(mesh: &Mesh, task: &ReviewTask) -> Vec<i32> {
    mesh.rev()
        .await
        .list_audit_entries(mesh.reviewer(ListAuditEntriesRequest {
            parent: task.name.clone(),
            page_size: 100,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner()
        .audit_entries
        .iter()
        .map(|e| e.action)
        .collect()
}
