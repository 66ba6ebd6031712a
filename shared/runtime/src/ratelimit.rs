//! Per-caller rate limits: one token bucket per authenticated caller (role and subject), refilled
//! at `per_sec` up to `burst`. A request that finds its bucket empty gets RESOURCE_EXHAUSTED with
//! `google.rpc.ErrorInfo` reason `RATE_LIMITED` and a `google.rpc.RetryInfo` saying when a token
//! is back.
//!
//! The layer sits behind the auth layer (it reads the [`Caller`] it set). Health and reflection
//! (no caller) and the `service` role (the mesh's own calls, which retry with backoff anyway) are
//! not limited.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tonic_types::{ErrorDetails, StatusExt};
use tower::{Layer, Service};

use crate::auth::{Caller, Role};

/// Buckets kept before full (idle) ones are dropped.
const MAX_BUCKETS: usize = 50_000;

/// Token buckets by caller.
pub struct RateLimiter {
    per_sec: f64,
    burst: f64,
    buckets: Mutex<HashMap<(Role, String), Bucket>>,
}

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `None` when `per_sec` is 0 (or not a positive number): no limit. A burst of 0 means one
    /// second's worth (at least 1).
    pub fn new(per_sec: f64, burst: u32) -> Option<Self> {
        if !(per_sec.is_finite() && per_sec > 0.0) {
            return None;
        }
        let burst = if burst == 0 {
            per_sec.ceil().max(1.0)
        } else {
            f64::from(burst)
        };
        Some(Self {
            per_sec,
            burst,
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes one token from `caller`'s bucket; `Err(wait)` when there is none yet.
    pub fn check(&self, caller: &Caller) -> Result<(), Duration> {
        self.check_at(caller, Instant::now())
    }

    fn check_at(&self, caller: &Caller, now: Instant) -> Result<(), Duration> {
        let mut buckets = self.buckets.lock().unwrap_or_else(|e| e.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            let (per_sec, burst) = (self.per_sec, self.burst);
            buckets.retain(|_, b| Self::refilled(b, now, per_sec, burst) < burst);
        }
        let bucket = buckets
            .entry((caller.role, caller.subject.clone()))
            .or_insert(Bucket {
                tokens: self.burst,
                updated: now,
            });
        bucket.tokens = Self::refilled(bucket, now, self.per_sec, self.burst);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            let wait = (1.0 - bucket.tokens) / self.per_sec;
            Err(Duration::from_secs_f64(wait.max(0.001)))
        }
    }

    fn refilled(bucket: &Bucket, now: Instant, per_sec: f64, burst: f64) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        (bucket.tokens + elapsed * per_sec).min(burst)
    }
}

/// The tower layer; `RateLimitLayer::new(None)` passes everything.
#[derive(Clone)]
pub struct RateLimitLayer {
    limiter: Option<Arc<RateLimiter>>,
}

impl RateLimitLayer {
    pub fn new(limiter: Option<RateLimiter>) -> Self {
        Self {
            limiter: limiter.map(Arc::new),
        }
    }
}

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimitService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RateLimitService {
            inner,
            limiter: self.limiter.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RateLimitService<S> {
    inner: S,
    limiter: Option<Arc<RateLimiter>>,
}

impl<S, B> Service<http::Request<B>> for RateLimitService<S>
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

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let (Some(limiter), Some(caller)) = (&self.limiter, request.extensions().get::<Caller>())
            && caller.role != Role::Service
            && let Err(wait) = limiter.check(caller)
        {
            tracing::info!(
                rpc = %request.uri().path(),
                subject = %caller.subject,
                role = caller.role.as_str(),
                retry_after_ms = wait.as_millis() as u64,
                "refused: rate limit"
            );
            let response = limited(wait).into_http();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// RESOURCE_EXHAUSTED with ErrorInfo `RATE_LIMITED` and RetryInfo.
pub fn limited(wait: Duration) -> tonic::Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(
        crate::error::ErrorReason::RateLimited.as_str_name(),
        "auth.koogallery.io",
        HashMap::from([("retry_after_ms".to_string(), wait.as_millis().to_string())]),
    );
    details.set_retry_info(Some(wait));
    tonic::Status::with_error_details(
        tonic::Code::ResourceExhausted,
        "too many requests from this caller; retry later",
        details,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(subject: &str) -> Caller {
        Caller {
            subject: subject.into(),
            role: Role::Applicant,
        }
    }

    #[test]
    fn zero_is_off() {
        assert!(RateLimiter::new(0.0, 10).is_none());
        assert!(RateLimiter::new(f64::NAN, 10).is_none());
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = RateLimiter::new(2.0, 3).unwrap();
        let t0 = Instant::now();
        let a = caller("a");
        for _ in 0..3 {
            assert!(limiter.check_at(&a, t0).is_ok());
        }
        let wait = limiter.check_at(&a, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(400) && wait <= Duration::from_millis(500),
            "{wait:?}"
        );
        // another caller has its own bucket
        assert!(limiter.check_at(&caller("b"), t0).is_ok());
        // half a second later one token is back, and only one
        let t1 = t0 + Duration::from_millis(500);
        assert!(limiter.check_at(&a, t1).is_ok());
        assert!(limiter.check_at(&a, t1).is_err());
        // long idle: refilled to the burst, not beyond
        let t2 = t1 + Duration::from_secs(60);
        for _ in 0..3 {
            assert!(limiter.check_at(&a, t2).is_ok());
        }
        assert!(limiter.check_at(&a, t2).is_err());
    }

    #[test]
    fn the_status_carries_the_reason_and_the_delay() {
        let status = limited(Duration::from_millis(1500));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "RATE_LIMITED"
        );
        assert_eq!(
            status.get_details_retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(1500))
        );
    }
}
