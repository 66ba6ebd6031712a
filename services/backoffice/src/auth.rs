//! Who is signed in, and the CSRF token of every form.
//!
//! Identity: in production the platform's auth proxy puts `Authorization: Bearer <JWT>` on
//! every request; it is verified here with the services' own keys (a bad token never reaches a
//! service) and forwarded unchanged on every gRPC call. On a local mesh the development sign-in
//! keeps a token it minted in an HttpOnly, SameSite=Strict cookie instead. Tokens never appear
//! in a URL or a page.
//!
//! CSRF: a signed double-submit token. A random per-browser cookie (HttpOnly, SameSite=Strict)
//! plus, in each form, HMAC(key, cookie, subject). A forged post from another site has neither
//! the cookie value nor the key, and a token taken from one reviewer's page is worthless for
//! another reviewer. Checked on every POST before anything else happens.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::{AUTHORIZATION, COOKIE};
use kg_runtime::auth::{AuthError, Role};
use sha2::Sha256;

use crate::App;

type HmacSha256 = Hmac<Sha256>;

/// The signed-in reviewer (or operator) of one request.
#[derive(Debug, Clone)]
pub struct Session {
    pub subject: String,
    pub role: Role,
    /// The bearer token, forwarded to the services; never rendered.
    pub token: String,
    /// Signed in through the development form (shown on every page).
    pub dev: bool,
}

/// Why a request has no usable session.
pub enum Denied {
    /// Nobody is signed in and the development sign-in is on: go there.
    SignIn,
    /// No token, or one that does not verify.
    Unauthenticated(String),
    /// A valid token of a role that may not review.
    Forbidden(String),
}

/// Lifetime of a development sign-in.
pub const DEV_SESSION_SECS: u64 = 8 * 3600;

pub fn cookie_name(app: &App, base: &str) -> String {
    // `__Host-` pins a cookie to this origin (no Domain, Path=/, Secure): browsers accept it only
    // over HTTPS, so plain-HTTP development uses the bare name.
    if app.secure_cookies {
        format!("__Host-{base}")
    } else {
        base.to_string()
    }
}

pub fn set_cookie(app: &App, base: &str, value: &str, max_age: Option<u64>) -> String {
    let mut cookie = format!(
        "{}={value}; Path=/; HttpOnly; SameSite=Strict",
        cookie_name(app, base)
    );
    if let Some(age) = max_age {
        cookie.push_str(&format!("; Max-Age={age}"));
    }
    if app.secure_cookies {
        cookie.push_str("; Secure");
    }
    cookie
}

pub fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_string())
}

pub fn authenticate(app: &App, headers: &HeaderMap) -> Result<Session, Denied> {
    let (token, dev) = match headers.get(AUTHORIZATION) {
        Some(value) => {
            let value = value.to_str().unwrap_or_default();
            let token = value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
                .ok_or_else(|| {
                    Denied::Unauthenticated("the Authorization header is not a bearer token".into())
                })?;
            (token.trim().to_string(), false)
        }
        None => match app
            .dev_signin
            .then(|| cookie(headers, &cookie_name(app, "kg_dev_session")))
            .flatten()
        {
            Some(token) => (token, true),
            None if app.dev_signin => return Err(Denied::SignIn),
            None => {
                return Err(Denied::Unauthenticated(
                    "no bearer token: sign in through the platform's auth proxy".into(),
                ));
            }
        },
    };
    let caller = match app.auth.verify(&token) {
        Ok(caller) => caller,
        // An expired development session just means signing in again.
        Err(_) if dev => return Err(Denied::SignIn),
        Err(AuthError::Expired) => {
            return Err(Denied::Unauthenticated(
                "your sign-in has expired: sign in again".into(),
            ));
        }
        Err(_) => {
            return Err(Denied::Unauthenticated(
                "the bearer token is not valid here".into(),
            ));
        }
    };
    if !caller.is_staff() {
        return Err(Denied::Forbidden(format!(
            "the back office is for reviewers and operators; you are signed in as {} ({})",
            caller.subject,
            caller.role.as_str()
        )));
    }
    Ok(Session {
        subject: caller.subject,
        role: caller.role,
        token,
        dev,
    })
}

/// The browser's CSRF cookie value, or a new one to set (with its `Set-Cookie` header).
pub fn csrf_cookie(app: &App, headers: &HeaderMap) -> (String, Option<String>) {
    match cookie(headers, &cookie_name(app, "kg_csrf")).filter(|v| is_nonce(v)) {
        Some(value) => (value, None),
        None => {
            let value = hex::encode(rand::random::<[u8; 32]>());
            let header = set_cookie(app, "kg_csrf", &value, None);
            (value, Some(header))
        }
    }
}

fn is_nonce(value: &str) -> bool {
    value.len() == 64 && value.bytes().all(|b| b.is_ascii_hexdigit())
}

fn mac(key: &[u8], nonce: &str, subject: &str) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(key).expect("HMAC takes any key length");
    mac.update(b"kg-backoffice csrf v1\0");
    mac.update(nonce.as_bytes());
    mac.update(b"\0");
    mac.update(subject.as_bytes());
    mac
}

/// The token forms carry: bound to the browser's CSRF cookie and to the signed-in subject (""
/// before sign-in).
pub fn csrf_token(key: &[u8], nonce: &str, subject: &str) -> String {
    hex::encode(mac(key, nonce, subject).finalize().into_bytes())
}

/// Whether a posted token belongs to this browser and subject (constant-time comparison).
pub fn csrf_valid(app: &App, headers: &HeaderMap, subject: &str, posted: &str) -> bool {
    let Some(nonce) = cookie(headers, &cookie_name(app, "kg_csrf")).filter(|v| is_nonce(v)) else {
        return false;
    };
    let Ok(posted) = hex::decode(posted) else {
        return false;
    };
    mac(&app.csrf_key, &nonce, subject)
        .verify_slice(&posted)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_bound_to_its_nonce_key_and_subject() {
        let key = b"k".repeat(32);
        let nonce = "a".repeat(64);
        let token = csrf_token(&key, &nonce, "reviewer-1");
        let check = |key: &[u8], nonce: &str, subject: &str, posted: &str| {
            let Ok(posted) = hex::decode(posted) else {
                return false;
            };
            mac(key, nonce, subject).verify_slice(&posted).is_ok()
        };
        assert!(check(&key, &nonce, "reviewer-1", &token));
        assert!(!check(&key, &nonce, "reviewer-2", &token));
        assert!(!check(&key, &"b".repeat(64), "reviewer-1", &token));
        assert!(!check(&b"x".repeat(32), &nonce, "reviewer-1", &token));
        assert!(!check(&key, &nonce, "reviewer-1", ""));
        assert!(!check(&key, &nonce, "reviewer-1", &token[..32]));
        assert!(!is_nonce("zz"));
        assert!(is_nonce(&nonce));
    }

    #[test]
    fn cookies_are_found_by_exact_name() {
        let mut headers = HeaderMap::new();
        headers.insert(COOKIE, "xkg_csrf=1; kg_csrf=2; other=3".parse().unwrap());
        assert_eq!(cookie(&headers, "kg_csrf").as_deref(), Some("2"));
        assert_eq!(cookie(&headers, "missing"), None);
    }
}
