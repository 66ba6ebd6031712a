//! Who is calling: bearer JWTs verified once per request by a tower layer in front of every
//! service, which refuses a role the service's [`RoleTable`] does not list for the RPC.
//!
//! Roles: `applicant` (the subject is the account id), `reviewer`, `operator`, `service` (other
//! services of the mesh). Health and reflection need no token. Ownership (an applicant sees only
//! its own account's resources) is decided by the handlers, which take the [`Caller`] from the
//! request extensions with [`Caller::require`] and ask it [`Caller::may_see`] or
//! [`Caller::scope_account`].
//!
//! Keys: an HS256 secret, RS256/ES256 public keys from a JWKS file (rotated by `kid`), or both.
//! The token's `alg` picks nothing but the key set: HS256 tokens are checked only against the
//! secret, RS256/ES256 tokens only against the JWKS key named by their `kid`, and that key's own
//! algorithm must be the token's. `alg: none`, unknown algorithms and symmetric JWKS keys are
//! refused. `iss`, `aud`, `exp` and `sub` are required, `nbf` is checked when present, with
//! [`LEEWAY_SECS`] of clock skew. See docs/security.md.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tower::{Layer, Service};

use crate::redact;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Applicant,
    Reviewer,
    Operator,
    Service,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Applicant => "applicant",
            Role::Reviewer => "reviewer",
            Role::Operator => "operator",
            Role::Service => "service",
        }
    }
}

/// The authenticated caller of one RPC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
}

impl Caller {
    /// The caller of a request; `None` only when the auth layer did not run (unit tests).
    pub fn of<T>(request: &tonic::Request<T>) -> Option<&Caller> {
        request.extensions().get::<Caller>()
    }

    /// The caller of a request, which the auth layer in front of every service always sets (the
    /// development identity when authentication is off). A request that reaches a handler
    /// without one did not pass the layer: it is refused (UNAUTHENTICATED), in every service.
    pub fn require<T>(request: &tonic::Request<T>) -> Result<Caller, crate::error::CommonError> {
        Self::of(request)
            .cloned()
            .ok_or(crate::error::CommonError::NoCaller)
    }

    pub fn is_staff(&self) -> bool {
        matches!(self.role, Role::Reviewer | Role::Operator)
    }

    /// Applicants see their own account's resources; staff and services see all.
    pub fn may_see(&self, account_id: &str) -> bool {
        self.role != Role::Applicant || self.subject == account_id
    }

    /// The account a request of this caller is about: an applicant's own, filled in when
    /// `account_id` is empty and refused (NOT_ACCOUNT_OWNER) when it names another; staff and
    /// services keep what they asked for.
    pub fn scope_account(&self, account_id: &mut String) -> Result<(), crate::error::CommonError> {
        if self.role != Role::Applicant {
            return Ok(());
        }
        if account_id.is_empty() {
            account_id.clone_from(&self.subject);
            return Ok(());
        }
        if *account_id != self.subject {
            return Err(crate::error::CommonError::NotOwner);
        }
        Ok(())
    }
}

/// The claims of the tokens this mesh mints (service tokens, `koogallery token`).
#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub role: Role,
    pub iss: String,
    pub aud: String,
    pub exp: u64,
    pub nbf: u64,
    pub iat: u64,
}

/// What a verified token must carry besides the registered claims the validation checks
/// (`iss`, `aud`, `exp`, `nbf`): a subject and one role. Other claims are ignored; `aud` may be
/// a string or an array.
#[derive(Debug, Deserialize)]
struct TokenClaims {
    sub: String,
    role: Role,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("missing bearer token")]
    Missing,
    #[error("invalid token")]
    Invalid,
    #[error("token expired")]
    Expired,
}

pub const DEFAULT_ISSUER: &str = "koogallery";
pub const DEFAULT_AUDIENCE: &str = "koogallery";
/// Clock skew tolerated on `exp` and `nbf`.
pub const LEEWAY_SECS: u64 = 30;
/// Longest token accepted; anything longer is refused before it is parsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// How often the JWKS file's modification time is looked at.
pub const JWKS_CHECK_EVERY: Duration = Duration::from_secs(30);
/// How often an unknown `kid` may make the JWKS file be read again (new keys are picked up at
/// once; a stream of made-up kids costs at most one read per interval).
pub const JWKS_MISS_RELOAD_EVERY: Duration = Duration::from_secs(1);

/// Where the keys come from. Any combination: HS256 tokens are checked against the secret,
/// RS256/ES256 tokens against the JWKS key their `kid` names; the header's `alg` must be the
/// algorithm of that key, so a token can never pick how its key is used.
#[derive(Debug, Default, Clone)]
pub struct KeySource {
    /// HS256 secret: verifies HS256 tokens and signs the tokens this process mints.
    pub hs256_secret: Option<Vec<u8>>,
    /// JWKS file of RS256/ES256 public keys, re-read when it changes.
    pub jwks_file: Option<PathBuf>,
    /// PEM private key (PKCS#8 RSA or P-256) and its `kid`, to mint service tokens when there is
    /// no HS256 secret; its public half belongs in the JWKS of every peer.
    pub signing_key_pem: Option<(Vec<u8>, String)>,
}

/// Verifies bearer tokens (HS256 with a shared secret; RS256/ES256 with the keys of a JWKS file,
/// rotated by `kid`) and mints service and development tokens.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Inner>,
}

struct Inner {
    hs256: Option<DecodingKey>,
    jwks: Option<JwksFile>,
    signer: Option<Signer>,
    issuer: String,
    audience: String,
}

struct Signer {
    key: EncodingKey,
    header: Header,
}

impl Authenticator {
    /// HS256 only: verifies with `secret` and mints with it.
    pub fn hs256(secret: &[u8], issuer: &str, audience: &str) -> Self {
        Self {
            inner: Arc::new(Inner {
                hs256: Some(DecodingKey::from_secret(secret)),
                jwks: None,
                signer: Some(Signer {
                    key: EncodingKey::from_secret(secret),
                    header: Header::new(Algorithm::HS256),
                }),
                issuer: issuer.to_string(),
                audience: audience.to_string(),
            }),
        }
    }

    /// An authenticator from any combination of keys; at least one verifying key is required.
    pub fn new(keys: KeySource, issuer: &str, audience: &str) -> anyhow::Result<Self> {
        if keys.hs256_secret.is_none() && keys.jwks_file.is_none() {
            anyhow::bail!("no verification key: set an HS256 secret or a JWKS file");
        }
        let jwks = keys.jwks_file.map(JwksFile::open).transpose()?;
        let signer = match (&keys.hs256_secret, keys.signing_key_pem) {
            (Some(secret), _) => Some(Signer {
                key: EncodingKey::from_secret(secret),
                header: Header::new(Algorithm::HS256),
            }),
            (None, Some((pem, kid))) => Some(Signer::from_pem(&pem, &kid)?),
            (None, None) => None,
        };
        Ok(Self {
            inner: Arc::new(Inner {
                hs256: keys.hs256_secret.as_deref().map(DecodingKey::from_secret),
                jwks,
                signer,
                issuer: issuer.to_string(),
                audience: audience.to_string(),
            }),
        })
    }

    /// Whether [`Authenticator::mint`] produces tokens (a secret or a signing key is configured).
    pub fn can_mint(&self) -> bool {
        self.inner.signer.is_some()
    }

    pub fn verify(&self, token: &str) -> Result<Caller, AuthError> {
        if token.is_empty() {
            return Err(AuthError::Missing);
        }
        if token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::Invalid);
        }
        // `alg: none` (and any name jsonwebtoken does not know) fails to parse here.
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::Invalid)?;
        let jwk_key;
        let key = match header.alg {
            Algorithm::HS256 => self.inner.hs256.as_ref().ok_or(AuthError::Invalid)?,
            Algorithm::RS256 | Algorithm::ES256 => {
                let jwks = self.inner.jwks.as_ref().ok_or(AuthError::Invalid)?;
                let kid = header.kid.as_deref().ok_or(AuthError::Invalid)?;
                jwk_key = jwks.key(kid).ok_or(AuthError::Invalid)?;
                // The key decides the algorithm, never the token.
                if jwk_key.alg != header.alg {
                    return Err(AuthError::Invalid);
                }
                &jwk_key.key
            }
            _ => return Err(AuthError::Invalid),
        };
        let validation = self.validation(header.alg);
        let data =
            jsonwebtoken::decode::<TokenClaims>(token, key, &validation).map_err(|e| {
                match e.kind() {
                    jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                    _ => AuthError::Invalid,
                }
            })?;
        let claims = data.claims;
        if claims.sub.is_empty()
            || claims.sub.len() > 128
            || claims.sub.chars().any(char::is_control)
        {
            return Err(AuthError::Invalid);
        }
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
        })
    }

    fn validation(&self, alg: Algorithm) -> Validation {
        let mut validation = Validation::new(alg);
        validation.algorithms = vec![alg];
        validation.set_issuer(&[&self.inner.issuer]);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.leeway = LEEWAY_SECS;
        validation
    }

    /// A signed token for `subject` in `role`, valid for `ttl`; empty when this authenticator
    /// has no signing key (see [`Authenticator::can_mint`]).
    pub fn mint(&self, subject: &str, role: Role, ttl: Duration) -> String {
        let Some(signer) = &self.inner.signer else {
            return String::new();
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let claims = Claims {
            sub: subject.to_string(),
            role,
            iss: self.inner.issuer.clone(),
            aud: self.inner.audience.clone(),
            exp: now + ttl.as_secs(),
            nbf: now.saturating_sub(1),
            iat: now,
        };
        jsonwebtoken::encode(&signer.header, &claims, &signer.key).unwrap_or_default()
    }
}

impl Signer {
    fn from_pem(pem: &[u8], kid: &str) -> anyhow::Result<Self> {
        if kid.trim().is_empty() {
            anyhow::bail!("the signing key needs a kid (KG_JWT_SIGNING_KID)");
        }
        let (key, alg) = if let Ok(key) = EncodingKey::from_ec_pem(pem) {
            (key, Algorithm::ES256)
        } else if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
            (key, Algorithm::RS256)
        } else {
            anyhow::bail!("the signing key is neither a PEM P-256 nor a PEM RSA private key");
        };
        let mut header = Header::new(alg);
        header.kid = Some(kid.to_string());
        Ok(Self { key, header })
    }
}

/// One usable key of the JWKS and the one algorithm it verifies.
struct JwkKey {
    key: DecodingKey,
    alg: Algorithm,
}

/// A JWKS file, re-read when its modification time changes (looked at every
/// [`JWKS_CHECK_EVERY`]) and when a token names a `kid` it does not hold (at most every
/// [`JWKS_MISS_RELOAD_EVERY`]). A file that stops parsing keeps the keys last read.
struct JwksFile {
    path: PathBuf,
    state: Mutex<JwksState>,
}

struct JwksState {
    keys: HashMap<String, Arc<JwkKey>>,
    stamp: Option<(SystemTime, u64)>,
    content_hash: [u8; 32],
    checked: Instant,
    read: Instant,
}

impl JwksFile {
    fn open(path: PathBuf) -> anyhow::Result<Self> {
        let bytes = std::fs::read(&path)
            .map_err(|e| anyhow::anyhow!("cannot read the JWKS file {}: {e}", path.display()))?;
        let keys = parse_jwks(&bytes)
            .map_err(|e| anyhow::anyhow!("the JWKS file {}: {e}", path.display()))?;
        if keys.is_empty() {
            anyhow::bail!(
                "the JWKS file {} holds no usable key (RS256 or ES256 with a kid)",
                path.display()
            );
        }
        let now = Instant::now();
        Ok(Self {
            state: Mutex::new(JwksState {
                keys,
                stamp: stamp_of(&path),
                content_hash: Sha256::digest(&bytes).into(),
                checked: now,
                read: now,
            }),
            path,
        })
    }

    fn key(&self, kid: &str) -> Option<Arc<JwkKey>> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        if now.duration_since(state.checked) >= JWKS_CHECK_EVERY {
            state.checked = now;
            let stamp = stamp_of(&self.path);
            if stamp != state.stamp {
                self.reload(&mut state, stamp);
            }
        }
        if let Some(key) = state.keys.get(kid) {
            return Some(key.clone());
        }
        if now.duration_since(state.read) >= JWKS_MISS_RELOAD_EVERY {
            let stamp = stamp_of(&self.path);
            self.reload(&mut state, stamp);
        }
        state.keys.get(kid).cloned()
    }

    fn reload(&self, state: &mut JwksState, stamp: Option<(SystemTime, u64)>) {
        state.read = Instant::now();
        state.stamp = stamp;
        let bytes = match std::fs::read(&self.path) {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "cannot read the JWKS file; keeping the keys last read");
                return;
            }
        };
        let hash: [u8; 32] = Sha256::digest(&bytes).into();
        if hash == state.content_hash {
            return;
        }
        match parse_jwks(&bytes) {
            Ok(keys) => {
                tracing::info!(path = %self.path.display(), kids = ?keys.keys().collect::<Vec<_>>(), "JWKS reloaded");
                state.keys = keys;
                state.content_hash = hash;
            }
            Err(e) => {
                tracing::warn!(path = %self.path.display(), error = %e, "the JWKS file does not parse; keeping the keys last read");
            }
        }
    }
}

fn stamp_of(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

/// The RS256 and ES256 (P-256) keys of a JWKS, by `kid`. Symmetric (`oct`) keys are never taken
/// from a JWKS, keys without a `kid` or meant for encryption are skipped, and a key's `alg`, when
/// given, must fit its type.
fn parse_jwks(bytes: &[u8]) -> anyhow::Result<HashMap<String, Arc<JwkKey>>> {
    use jsonwebtoken::jwk::{
        AlgorithmParameters, EllipticCurve, JwkSet, KeyAlgorithm, PublicKeyUse,
    };
    let set: JwkSet = serde_json::from_slice(bytes)?;
    let mut keys = HashMap::new();
    for jwk in &set.keys {
        let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else {
            tracing::warn!("JWKS key without a kid skipped");
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let alg = match (&jwk.algorithm, jwk.common.key_algorithm) {
            (AlgorithmParameters::RSA(_), None | Some(KeyAlgorithm::RS256)) => Algorithm::RS256,
            (AlgorithmParameters::EllipticCurve(ec), None | Some(KeyAlgorithm::ES256))
                if ec.curve == EllipticCurve::P256 =>
            {
                Algorithm::ES256
            }
            _ => {
                tracing::warn!(
                    kid,
                    "JWKS key skipped: only RS256 and ES256 (P-256) keys are used"
                );
                continue;
            }
        };
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => {
                keys.insert(kid, Arc::new(JwkKey { key, alg }));
            }
            Err(e) => tracing::warn!(kid, error = %e, "JWKS key skipped: not a valid key"),
        }
    }
    Ok(keys)
}

/// Which roles may call each RPC of one service, by method name (`SubmitApplication`). Each
/// service declares its own beside its trait implementation; a method missing from it is refused
/// to everyone.
pub type RoleTable = fn(method: &str) -> &'static [Role];

/// Role sets the services' tables share.
pub mod roles {
    use super::Role::{self, *};

    pub const EVERYONE: &[Role] = &[Applicant, Reviewer, Operator, Service];
    pub const APPLICANT_AND_STAFF: &[Role] = &[Applicant, Reviewer, Operator];
    pub const STAFF: &[Role] = &[Reviewer, Operator];
    pub const SERVICE_ONLY: &[Role] = &[Service];
    pub const OPERATOR_AND_SERVICE: &[Role] = &[Operator, Service];
    pub const NOBODY: &[Role] = &[];
}

/// The roles that may call `path` (`/package.Service/Method`) of the service named `service`,
/// whose table is `roles`; nobody for a path of another service.
pub fn allowed_roles(service: &str, roles: RoleTable, path: &str) -> &'static [Role] {
    match path.trim_start_matches('/').split_once('/') {
        Some((named, method)) if named == service => roles(method),
        _ => roles::NOBODY,
    }
}

fn is_public(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/") || path.starts_with("/grpc.reflection.")
}

/// The auth layer of one service. Without an authenticator (no key configured) every caller is
/// treated as an operator-and-service development identity; the service says so loudly at
/// start-up.
#[derive(Clone)]
pub struct AuthLayer {
    authenticator: Option<Arc<Authenticator>>,
    /// The gRPC name of the service behind the layer (`koogallery.registration.v1.RegistrationService`).
    service: &'static str,
    roles: RoleTable,
}

impl AuthLayer {
    pub fn new(
        authenticator: Option<Authenticator>,
        service: &'static str,
        roles: RoleTable,
    ) -> Self {
        Self {
            authenticator: authenticator.map(Arc::new),
            service,
            roles,
        }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            authenticator: self.authenticator.clone(),
            service: self.service,
            roles: self.roles,
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    authenticator: Option<Arc<Authenticator>>,
    service: &'static str,
    roles: RoleTable,
}

/// The identity every request gets when authentication is switched off (local development).
pub fn development_caller() -> Caller {
    Caller {
        subject: "dev".to_string(),
        role: Role::Operator,
    }
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<tonic::body::Body>> + Send,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        // The credential goes no further than this layer: whatever logs or forwards the request
        // after it (handlers, h2/hyper debug output) never sees it.
        let authorization = request.headers_mut().remove(http::header::AUTHORIZATION);
        let path = request.uri().path().to_string();
        if is_public(&path) {
            return Box::pin(self.inner.call(request));
        }
        let Some(authenticator) = &self.authenticator else {
            request.extensions_mut().insert(development_caller());
            return Box::pin(self.inner.call(request));
        };
        let token = authorization
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        let verdict = match token.map(|t| (t, authenticator.verify(t))) {
            None | Some((_, Err(AuthError::Missing))) => {
                tracing::debug!(rpc = %path, "refused: no bearer token");
                Err(deny(
                    tonic::Status::unauthenticated("a bearer token is required"),
                    crate::error::ErrorReason::Unauthenticated,
                ))
            }
            Some((t, Err(AuthError::Expired))) => {
                tracing::debug!(rpc = %path, token = %redact::token(t), "refused: expired token");
                Err(deny(
                    tonic::Status::unauthenticated("the token has expired"),
                    crate::error::ErrorReason::TokenExpired,
                ))
            }
            Some((t, Err(AuthError::Invalid))) => {
                tracing::debug!(rpc = %path, token = %redact::token(t), "refused: invalid token");
                Err(deny(
                    tonic::Status::unauthenticated("the token is not valid"),
                    crate::error::ErrorReason::TokenInvalid,
                ))
            }
            Some((t, Ok(caller)))
                if !allowed_roles(self.service, self.roles, &path).contains(&caller.role) =>
            {
                tracing::info!(
                    rpc = %path,
                    subject = %caller.subject,
                    role = ?caller.role,
                    token = %redact::token(t),
                    "refused: role not allowed"
                );
                Err(deny(
                    tonic::Status::permission_denied(format!(
                        "the {} role may not call this method",
                        caller.role.as_str()
                    )),
                    crate::error::ErrorReason::RoleNotAllowed,
                ))
            }
            Some((_, Ok(caller))) => Ok(caller),
        };
        match verdict {
            Ok(caller) => {
                request.extensions_mut().insert(caller);
                Box::pin(self.inner.call(request))
            }
            Err(status) => Box::pin(async move { Ok(status) }),
        }
    }
}

fn deny(
    status: tonic::Status,
    reason: crate::error::ErrorReason,
) -> http::Response<tonic::body::Body> {
    let api = crate::ApiError::new(
        status.code(),
        "auth.koogallery.io",
        reason,
        status.message(),
    );
    tonic::Status::from(api).into_http()
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
