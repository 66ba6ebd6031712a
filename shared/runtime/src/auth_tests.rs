//! Tests of [`super`] (the auth module): token verification, key rotation, role tables and
//! callers. (The services' tables against proto/ and docs/security.md: tests/tests/security/roles.rs.)

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use jsonwebtoken::jwk::{Jwk, JwkSet};

const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
const RSA_KEY: &[u8] = include_bytes!("../testdata/rsa-test-key.pem");
const RSA_PUB: &[u8] = include_bytes!("../testdata/rsa-test-pub.pem");
const EC_KEY: &[u8] = include_bytes!("../testdata/ec-test-key.pem");
const EC_PUB: &[u8] = include_bytes!("../testdata/ec-test-pub.pem");

fn auth() -> Authenticator {
    Authenticator::hs256(SECRET, DEFAULT_ISSUER, DEFAULT_AUDIENCE)
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(exp: u64, nbf: u64) -> serde_json::Value {
    serde_json::json!({
        "sub": "acct-1", "role": "applicant", "iss": DEFAULT_ISSUER, "aud": DEFAULT_AUDIENCE,
        "exp": exp, "nbf": nbf, "iat": now(),
    })
}

fn sign(
    alg: Algorithm,
    kid: Option<&str>,
    key: &EncodingKey,
    claims: &serde_json::Value,
) -> String {
    let mut header = Header::new(alg);
    header.kid = kid.map(str::to_string);
    jsonwebtoken::encode(&header, claims, key).unwrap()
}

/// A hand-made HS256 token: header and claims as given, HMAC-SHA256 with `key`.
fn hmac_token(header: &serde_json::Value, claims: &serde_json::Value, key: &[u8]) -> String {
    let signing_input = format!(
        "{}.{}",
        B64.encode(serde_json::to_vec(header).unwrap()),
        B64.encode(serde_json::to_vec(claims).unwrap())
    );
    format!(
        "{signing_input}.{}",
        B64.encode(hmac_sha256(key, signing_input.as_bytes()))
    )
}

/// HMAC-SHA256 (RFC 2104) on top of `sha2`, so the test can sign with arbitrary key bytes.
fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha256::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(data);
    let mut outer = Sha256::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

fn jwk(key: &EncodingKey, alg: Algorithm, kid: &str) -> Jwk {
    let mut jwk = Jwk::from_encoding_key(key, alg).unwrap();
    jwk.common.key_id = Some(kid.to_string());
    jwk
}

fn jwks_file(keys: Vec<Jwk>) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, serde_json::to_vec(&JwkSet { keys }).unwrap()).unwrap();
    (dir, path)
}

fn jwks_auth(path: &Path, secret: Option<&[u8]>) -> Authenticator {
    Authenticator::new(
        KeySource {
            hs256_secret: secret.map(<[u8]>::to_vec),
            jwks_file: Some(path.to_path_buf()),
            signing_key_pem: None,
        },
        DEFAULT_ISSUER,
        DEFAULT_AUDIENCE,
    )
    .unwrap()
}

#[test]
fn a_minted_token_verifies() {
    let a = auth();
    let caller = a
        .verify(&a.mint("acct-1", Role::Applicant, Duration::from_secs(60)))
        .unwrap();
    assert_eq!(
        caller,
        Caller {
            subject: "acct-1".into(),
            role: Role::Applicant
        }
    );
}

#[test]
fn alg_none_and_other_keys_are_refused() {
    let a = auth();
    let token = a.mint("acct-1", Role::Operator, Duration::from_secs(60));
    let mut parts = token.split('.');
    let (_, payload) = (parts.next().unwrap(), parts.next().unwrap());
    // {"alg":"none","typ":"JWT"}
    let none = format!("eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.{payload}.");
    assert_eq!(a.verify(&none), Err(AuthError::Invalid));
    let other = Authenticator::hs256(
        b"another-secret-another-secret-xx",
        DEFAULT_ISSUER,
        DEFAULT_AUDIENCE,
    );
    assert_eq!(
        a.verify(&other.mint("x", Role::Operator, Duration::from_secs(60))),
        Err(AuthError::Invalid)
    );
    let wrong_aud = Authenticator::hs256(SECRET, DEFAULT_ISSUER, "elsewhere");
    assert_eq!(
        a.verify(&wrong_aud.mint("x", Role::Operator, Duration::from_secs(60))),
        Err(AuthError::Invalid)
    );
    let wrong_iss = Authenticator::hs256(SECRET, "someone-else", DEFAULT_AUDIENCE);
    assert_eq!(
        a.verify(&wrong_iss.mint("x", Role::Operator, Duration::from_secs(60))),
        Err(AuthError::Invalid)
    );
    assert_eq!(a.verify("garbage"), Err(AuthError::Invalid));
    assert_eq!(a.verify(""), Err(AuthError::Missing));
    assert_eq!(
        a.verify(&"a".repeat(MAX_TOKEN_BYTES + 1)),
        Err(AuthError::Invalid)
    );
}

#[test]
fn expiry_and_not_before_are_checked_with_bounded_skew() {
    let a = auth();
    let key = EncodingKey::from_secret(SECRET);
    let t = now();
    let ok = |exp, nbf| a.verify(&sign(Algorithm::HS256, None, &key, &claims(exp, nbf)));
    assert!(ok(t + 60, t).is_ok());
    // within the 30 s leeway
    assert!(ok(t - 10, t - 100).is_ok());
    assert!(ok(t + 60, t + 10).is_ok());
    // beyond it
    assert_eq!(ok(t - 120, t - 200), Err(AuthError::Expired));
    assert_eq!(ok(t + 600, t + 120), Err(AuthError::Invalid));
    // claims are required: no exp, no role, empty subject, unknown role
    let mut c = claims(t + 60, t);
    c.as_object_mut().unwrap().remove("exp");
    assert_eq!(
        a.verify(&sign(Algorithm::HS256, None, &key, &c)),
        Err(AuthError::Invalid)
    );
    let mut c = claims(t + 60, t);
    c["role"] = "superuser".into();
    assert_eq!(
        a.verify(&sign(Algorithm::HS256, None, &key, &c)),
        Err(AuthError::Invalid)
    );
    let mut c = claims(t + 60, t);
    c["sub"] = "".into();
    assert_eq!(
        a.verify(&sign(Algorithm::HS256, None, &key, &c)),
        Err(AuthError::Invalid)
    );
    // an audience array that holds ours is fine
    let mut c = claims(t + 60, t);
    c["aud"] = serde_json::json!(["other", DEFAULT_AUDIENCE]);
    assert!(a.verify(&sign(Algorithm::HS256, None, &key, &c)).is_ok());
}

#[test]
fn rs256_and_es256_tokens_verify_against_the_jwks_by_kid() {
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_KEY).unwrap();
    let (_dir, path) = jwks_file(vec![
        jwk(&rsa, Algorithm::RS256, "rsa-1"),
        jwk(&ec, Algorithm::ES256, "ec-1"),
    ]);
    let a = jwks_auth(&path, None);
    assert!(!a.can_mint());
    assert_eq!(a.mint("x", Role::Service, Duration::from_secs(60)), "");
    let c = claims(now() + 60, now());
    assert_eq!(
        a.verify(&sign(Algorithm::RS256, Some("rsa-1"), &rsa, &c))
            .unwrap()
            .role,
        Role::Applicant
    );
    assert_eq!(
        a.verify(&sign(Algorithm::ES256, Some("ec-1"), &ec, &c))
            .unwrap()
            .subject,
        "acct-1"
    );
    // the wrong kid, no kid, an unknown kid
    assert_eq!(
        a.verify(&sign(Algorithm::RS256, Some("ec-1"), &rsa, &c)),
        Err(AuthError::Invalid)
    );
    assert_eq!(
        a.verify(&sign(Algorithm::RS256, None, &rsa, &c)),
        Err(AuthError::Invalid)
    );
    assert_eq!(
        a.verify(&sign(Algorithm::ES256, Some("nope"), &ec, &c)),
        Err(AuthError::Invalid)
    );
    // HS256 is not accepted when no secret is configured
    let hs = EncodingKey::from_secret(SECRET);
    assert_eq!(
        a.verify(&sign(Algorithm::HS256, Some("rsa-1"), &hs, &c)),
        Err(AuthError::Invalid)
    );
}

#[test]
fn algorithm_confusion_is_refused() {
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY).unwrap();
    let ec = EncodingKey::from_ec_pem(EC_KEY).unwrap();
    let (_dir, path) = jwks_file(vec![
        jwk(&rsa, Algorithm::RS256, "rsa-1"),
        jwk(&ec, Algorithm::ES256, "ec-1"),
    ]);
    let c = claims(now() + 60, now());
    for a in [jwks_auth(&path, None), jwks_auth(&path, Some(SECRET))] {
        // HS256 signed with the public keys (PEM and DER-ish forms) as the HMAC secret
        for (kid, public) in [("rsa-1", RSA_PUB), ("ec-1", EC_PUB)] {
            let forged = hmac_token(
                &serde_json::json!({"alg": "HS256", "kid": kid, "typ": "JWT"}),
                &c,
                public,
            );
            assert_eq!(a.verify(&forged), Err(AuthError::Invalid), "{kid}");
        }
        // an RSA-signed token claiming ES256 for the RSA kid, and the other way round
        assert_eq!(
            a.verify(&sign(Algorithm::RS256, Some("ec-1"), &rsa, &c)),
            Err(AuthError::Invalid)
        );
        assert_eq!(
            a.verify(&sign(Algorithm::ES256, Some("rsa-1"), &ec, &c)),
            Err(AuthError::Invalid)
        );
        // other algorithm names
        for alg in ["none", "None", "HS512", "RS512", "PS256", "EdDSA"] {
            let forged = hmac_token(&serde_json::json!({"alg": alg, "kid": "rsa-1"}), &c, SECRET);
            assert_eq!(a.verify(&forged), Err(AuthError::Invalid), "{alg}");
        }
    }
    // A JWKS that offers a symmetric key is not a way in either.
    let oct: Jwk = serde_json::from_value(serde_json::json!({
        "kty": "oct", "kid": "oct-1", "k": B64.encode(SECRET), "alg": "HS256"
    }))
    .unwrap();
    let (_dir2, path2) = jwks_file(vec![oct, jwk(&rsa, Algorithm::RS256, "rsa-1")]);
    let a = jwks_auth(&path2, None);
    let forged = hmac_token(
        &serde_json::json!({"alg": "HS256", "kid": "oct-1"}),
        &c,
        SECRET,
    );
    assert_eq!(a.verify(&forged), Err(AuthError::Invalid));
}

#[test]
fn a_rotated_jwks_is_picked_up_on_a_kid_miss() {
    let ec = EncodingKey::from_ec_pem(EC_KEY).unwrap();
    let rsa = EncodingKey::from_rsa_pem(RSA_KEY).unwrap();
    let (_dir, path) = jwks_file(vec![jwk(&ec, Algorithm::ES256, "old")]);
    let a = jwks_auth(&path, None);
    let c = claims(now() + 60, now());
    let old = sign(Algorithm::ES256, Some("old"), &ec, &c);
    let new = sign(Algorithm::RS256, Some("new"), &rsa, &c);
    assert!(a.verify(&old).is_ok());
    assert_eq!(a.verify(&new), Err(AuthError::Invalid));
    std::fs::write(
        &path,
        serde_json::to_vec(&JwkSet {
            keys: vec![jwk(&rsa, Algorithm::RS256, "new")],
        })
        .unwrap(),
    )
    .unwrap();
    std::thread::sleep(JWKS_MISS_RELOAD_EVERY + Duration::from_millis(50));
    assert!(a.verify(&new).is_ok());
    assert_eq!(a.verify(&old), Err(AuthError::Invalid));
    // a broken file keeps the keys last read
    std::fs::write(&path, b"{ not json").unwrap();
    std::thread::sleep(JWKS_MISS_RELOAD_EVERY + Duration::from_millis(50));
    assert_eq!(a.verify(&old), Err(AuthError::Invalid));
    assert!(a.verify(&new).is_ok());
}

#[test]
fn a_signing_key_mints_tokens_its_jwks_verifies() {
    let ec = EncodingKey::from_ec_pem(EC_KEY).unwrap();
    let (_dir, path) = jwks_file(vec![jwk(&ec, Algorithm::ES256, "svc-1")]);
    let a = Authenticator::new(
        KeySource {
            hs256_secret: None,
            jwks_file: Some(path),
            signing_key_pem: Some((EC_KEY.to_vec(), "svc-1".into())),
        },
        DEFAULT_ISSUER,
        DEFAULT_AUDIENCE,
    )
    .unwrap();
    assert!(a.can_mint());
    let caller = a
        .verify(&a.mint("registration", Role::Service, Duration::from_secs(60)))
        .unwrap();
    assert_eq!(
        caller,
        Caller {
            subject: "registration".into(),
            role: Role::Service
        }
    );
    assert!(Authenticator::new(KeySource::default(), DEFAULT_ISSUER, DEFAULT_AUDIENCE).is_err());
    let (_dir3, empty) = jwks_file(vec![]);
    assert!(
        Authenticator::new(
            KeySource {
                jwks_file: Some(empty),
                ..KeySource::default()
            },
            DEFAULT_ISSUER,
            DEFAULT_AUDIENCE
        )
        .is_err()
    );
}

#[test]
fn a_table_admits_only_its_own_service() {
    fn table(method: &str) -> &'static [Role] {
        match method {
            "Do" => roles::SERVICE_ONLY,
            _ => roles::NOBODY,
        }
    }
    assert_eq!(allowed_roles("pkg.S", table, "/pkg.S/Do"), &[Role::Service]);
    assert!(allowed_roles("pkg.S", table, "/pkg.S/Other").is_empty());
    assert!(allowed_roles("pkg.S", table, "/pkg.T/Do").is_empty());
    assert!(allowed_roles("pkg.S", table, "garbage").is_empty());
}

#[test]
fn an_applicant_is_scoped_to_its_own_account() {
    let applicant = Caller {
        subject: "acct-1".into(),
        role: Role::Applicant,
    };
    let mut empty = String::new();
    applicant.scope_account(&mut empty).unwrap();
    assert_eq!(empty, "acct-1");
    assert!(applicant.scope_account(&mut "acct-2".to_string()).is_err());
    assert!(applicant.may_see("acct-1") && !applicant.may_see("acct-2"));
    let staff = Caller {
        subject: "r1".into(),
        role: Role::Reviewer,
    };
    let mut other = "acct-2".to_string();
    staff.scope_account(&mut other).unwrap();
    assert_eq!(other, "acct-2");
    assert!(staff.may_see("acct-2"));
    assert!(matches!(
        Caller::require(&tonic::Request::new(())),
        Err(crate::error::CommonError::NoCaller)
    ));
}
