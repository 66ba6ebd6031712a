//! The cost of token verification: `Authenticator::verify` of the kind of token the bench's
//! applicants present, in this process on one thread, with the verifier every service builds
//! from `KG_JWT_SECRET`. Measured whether or not the mesh runs with authentication, since it
//! needs no server; the mesh's figures include it only with `--auth on`.

use std::time::{Duration, Instant};

use kg_runtime::auth::Role;

use crate::console::say;
use crate::load;
use crate::report::TokenVerification;
use crate::tokens::Tokens;

/// Verifications before the measured ones (caches, branch predictors, page faults).
const WARMUP: u32 = 1_000;

/// Times `n` verifications of one token; runs on a blocking thread so that it has a core to
/// itself rather than a runtime worker other tasks wait for.
pub async fn measure(n: u32) -> anyhow::Result<TokenVerification> {
    say(format!("token verification ({n} verifications in process)"));
    let result = tokio::task::spawn_blocking(move || verify_n(n)).await??;
    say(format!(
        "  {:.0} verifications/s, {:.2} µs each (p50 {:.2} µs, p99 {:.2} µs)",
        result.per_s, result.mean_us, result.p50_us, result.p99_us
    ));
    Ok(result)
}

fn verify_n(n: u32) -> anyhow::Result<TokenVerification> {
    let n = n.max(1);
    let tokens = Tokens::new(true);
    let verifier = tokens
        .verifier()
        .ok_or_else(|| anyhow::anyhow!("no verifier with authentication on"))?;
    // An applicant named like the accounts of (c), so the token is as long as theirs.
    let token = tokens.mint("bench-10-1234", Role::Applicant);
    for _ in 0..WARMUP {
        verifier.verify(&token)?;
    }
    let mut nanos = Vec::with_capacity(n as usize);
    let started = Instant::now();
    for _ in 0..n {
        let t = Instant::now();
        let caller = verifier.verify(&token)?;
        nanos.push(u32::try_from(t.elapsed().as_nanos()).unwrap_or(u32::MAX));
        std::hint::black_box(caller);
    }
    let elapsed = started.elapsed();
    nanos.sort_unstable();
    // percentile_ms reads its input as µs: nanoseconds in, µs out.
    let pct = |p: f64| load::percentile_ms(&nanos, p);
    Ok(TokenVerification {
        algorithm: "HS256".into(),
        token_bytes: token.len(),
        verifications: u64::from(n),
        elapsed_s: elapsed.as_secs_f64(),
        per_s: f64::from(n) / elapsed.as_secs_f64().max(f64::MIN_POSITIVE),
        mean_us: per_call_us(elapsed, n),
        p50_us: pct(50.0),
        p99_us: pct(99.0),
    })
}

fn per_call_us(elapsed: Duration, n: u32) -> f64 {
    elapsed.as_secs_f64() * 1e6 / f64::from(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn measures_every_verification() {
        let v = verify_n(200).unwrap();
        assert_eq!(v.verifications, 200);
        assert!(v.per_s > 0.0 && v.mean_us > 0.0);
        assert!(v.p50_us <= v.p99_us);
        assert!(v.token_bytes > 100, "a signed JWT, not an empty token");
    }
}
