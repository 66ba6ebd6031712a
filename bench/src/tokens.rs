//! Bearer tokens: the HS256 secret of one run, handed to every service and the echo server, and
//! the tokens the bench's clients present with it, minted with the same `kg_runtime::auth` code
//! the services verify them with. With `--auth off` nothing is minted and no header is sent.

use std::time::Duration;

use kg_runtime::auth::{Authenticator, DEFAULT_AUDIENCE, DEFAULT_ISSUER, Role};
use tonic::metadata::{AsciiMetadataValue, MetadataValue};
use tonic::service::Interceptor;

/// Where the services (and `kg-bench echo-server`) read the secret: `jwt_secret` of
/// kg_runtime's `CommonConfig`.
pub const SECRET_ENV: &str = "KG_JWT_SECRET";

/// Longer than any run, so that no token expires in the middle of a step.
const TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// The secret of this run and the authenticator built from it; `None` with `--auth off`.
#[derive(Clone)]
pub struct Tokens {
    auth: Option<(String, Authenticator)>,
}

impl Tokens {
    /// A fresh random secret per run, so no token of an earlier run (or another mesh) is valid.
    pub fn new(on: bool) -> Tokens {
        Tokens {
            auth: on.then(|| {
                let secret = format!(
                    "{}{}",
                    uuid::Uuid::new_v4().simple(),
                    uuid::Uuid::new_v4().simple()
                );
                let authenticator = authenticator(&secret);
                (secret, authenticator)
            }),
        }
    }

    pub fn on(&self) -> bool {
        self.auth.is_some()
    }

    /// The verifier the services build from this run's secret (none when off).
    pub fn verifier(&self) -> Option<&Authenticator> {
        self.auth.as_ref().map(|(_, a)| a)
    }

    /// The variables that switch authentication on in a service process (none when off).
    pub fn service_env(&self) -> Vec<(&'static str, String)> {
        self.auth
            .iter()
            .map(|(secret, _)| (SECRET_ENV, secret.clone()))
            .collect()
    }

    /// The raw token (empty when authentication is off).
    pub fn mint(&self, subject: &str, role: Role) -> String {
        self.auth
            .as_ref()
            .map_or_else(String::new, |(_, a)| a.mint(subject, role, TOKEN_TTL))
    }

    /// A client interceptor presenting a token of `role` for `subject`.
    pub fn bearer(&self, subject: &str, role: Role) -> Bearer {
        let token = self.mint(subject, role);
        if token.is_empty() {
            return Bearer(None);
        }
        Bearer(Some(
            MetadataValue::try_from(format!("Bearer {token}")).expect("a JWT is ASCII"),
        ))
    }

    /// An applicant acting for its own account, the only way applicants may submit and read.
    pub fn applicant(&self, account_id: &str) -> Bearer {
        self.bearer(account_id, Role::Applicant)
    }
}

/// How every service builds its verifier from `KG_JWT_SECRET` alone
/// (`CommonConfig::authenticator`).
pub fn authenticator(secret: &str) -> Authenticator {
    Authenticator::hs256(secret.as_bytes(), DEFAULT_ISSUER, DEFAULT_AUDIENCE)
}

/// Adds `authorization: Bearer …` to each call of the client it is given to; a no-op when
/// authentication is off. Cloning shares the header's bytes, so per-request clients stay cheap.
#[derive(Clone, Default)]
pub struct Bearer(Option<AsciiMetadataValue>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_as_the_services_verify_them() {
        let tokens = Tokens::new(true);
        let (secret, _) = tokens.auth.clone().unwrap();
        let caller = authenticator(&secret)
            .verify(&tokens.mint("acct-1", Role::Applicant))
            .unwrap();
        assert_eq!(caller.subject, "acct-1");
        assert_eq!(caller.role, Role::Applicant);
        assert!(secret.len() >= 32, "the services refuse shorter secrets");
        assert_eq!(tokens.service_env()[0].0, "KG_JWT_SECRET");
    }

    #[test]
    fn off_sends_nothing() {
        let tokens = Tokens::new(false);
        assert!(tokens.service_env().is_empty());
        let mut bearer = tokens.applicant("acct-1");
        let request = bearer.call(tonic::Request::new(())).unwrap();
        assert!(request.metadata().get("authorization").is_none());
    }

    #[test]
    fn on_sends_the_header() {
        let mut bearer = Tokens::new(true).bearer("ops", Role::Operator);
        let request = bearer.call(tonic::Request::new(())).unwrap();
        let value = request.metadata().get("authorization").unwrap();
        assert!(value.to_str().unwrap().starts_with("Bearer ey"));
    }
}
