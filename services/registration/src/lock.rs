//! The entity lock: serializes work on one company entity across replicas.
//!
//! Redis: `SET key token NX PX ttl`, released by a compare-and-delete script so a holder whose
//! lock expired never deletes someone else's. When Redis does not answer the lock fails closed
//! (an error, never "probably fine"). The in-process variant exists for the single-process
//! embedded mesh only; the database's unique indexes remain the final fence in both cases.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

use kg_runtime::health::{PROBE_TIMEOUT, Probe};

const RELEASE_SCRIPT: &str = r#"
if redis.call("GET", KEYS[1]) == ARGV[1] then
  return redis.call("DEL", KEYS[1])
else
  return 0
end
"#;

#[derive(Debug, thiserror::Error)]
pub enum LockError {
    #[error("the lock service is unavailable: {0}")]
    Unavailable(String),
}

/// Proof of holding a lock; give it back with [`EntityLock::release`].
#[derive(Debug)]
pub struct LockGuard {
    pub key: String,
    token: String,
}

#[derive(Clone)]
pub enum EntityLock {
    Redis(Arc<RedisLock>),
    InProcess(Arc<InProcessLock>),
}

impl EntityLock {
    pub fn redis(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client =
            redis::Client::open(url).map_err(|e| anyhow::anyhow!("invalid Redis URL: {e}"))?;
        Ok(Self::Redis(Arc::new(RedisLock {
            client,
            conn: OnceCell::new(),
            prefix: prefix.to_string(),
            release: redis::Script::new(RELEASE_SCRIPT),
        })))
    }

    pub fn in_process() -> Self {
        Self::InProcess(Arc::new(InProcessLock::default()))
    }

    pub fn describe(&self) -> &'static str {
        match self {
            Self::Redis(_) => "redis",
            Self::InProcess(_) => "in-process",
        }
    }

    /// Tries once; `Ok(None)` means another holder has it.
    pub async fn try_acquire(
        &self,
        key: &str,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, LockError> {
        let token = uuid::Uuid::new_v4().to_string();
        match self {
            Self::Redis(lock) => lock.try_acquire(key, token, ttl).await,
            Self::InProcess(lock) => Ok(lock.try_acquire(key, token, ttl)),
        }
    }

    /// Retries until `wait` has passed; `Ok(None)` when still contended.
    pub async fn acquire(
        &self,
        key: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Option<LockGuard>, LockError> {
        let deadline = Instant::now() + wait;
        let mut backoff = Duration::from_millis(5);
        loop {
            if let Some(guard) = self.try_acquire(key, ttl).await? {
                return Ok(Some(guard));
            }
            if Instant::now() + backoff > deadline {
                return Ok(None);
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_millis(100));
        }
    }

    /// Releases if still ours. Returns false when the lock had expired or passed to another.
    pub async fn release(&self, guard: LockGuard) -> Result<bool, LockError> {
        match self {
            Self::Redis(lock) => lock.release(&guard).await,
            Self::InProcess(lock) => Ok(lock.release(&guard)),
        }
    }

    pub async fn ping(&self) -> bool {
        match self {
            Self::Redis(lock) => lock.ping().await,
            Self::InProcess(_) => true,
        }
    }
}

/// The lock's health probe (named `redis`): [`EntityLock::ping`].
pub fn probe(lock: EntityLock) -> Probe {
    Probe::new("redis", move || {
        let lock = lock.clone();
        async move { lock.ping().await }
    })
}

pub struct RedisLock {
    client: redis::Client,
    conn: OnceCell<ConnectionManager>,
    prefix: String,
    release: redis::Script,
}

impl RedisLock {
    async fn connection(&self) -> Result<ConnectionManager, LockError> {
        let conn = self
            .conn
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Duration::from_millis(500))
                    .set_response_timeout(Duration::from_millis(500))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config)
                    .await
                    .map_err(|e| LockError::Unavailable(e.to_string()))
            })
            .await?;
        Ok(conn.clone())
    }

    fn full_key(&self, key: &str) -> String {
        format!("{}{}", self.prefix, key)
    }

    async fn try_acquire(
        &self,
        key: &str,
        token: String,
        ttl: Duration,
    ) -> Result<Option<LockGuard>, LockError> {
        let mut conn = self.connection().await?;
        let full = self.full_key(key);
        let reply: Option<String> = redis::cmd("SET")
            .arg(&full)
            .arg(&token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut conn)
            .await
            .map_err(|e| LockError::Unavailable(e.to_string()))?;
        Ok(reply.map(|_| LockGuard { key: full, token }))
    }

    async fn release(&self, guard: &LockGuard) -> Result<bool, LockError> {
        let mut conn = self.connection().await?;
        let deleted: i64 = self
            .release
            .key(&guard.key)
            .arg(&guard.token)
            .invoke_async(&mut conn)
            .await
            .map_err(|e| LockError::Unavailable(e.to_string()))?;
        Ok(deleted == 1)
    }

    /// PONG within [`PROBE_TIMEOUT`] (connecting included): a Redis that has
    /// gone away must not hold the health check for the client's own timeouts.
    async fn ping(&self) -> bool {
        let pong = async {
            let mut conn = self.connection().await.ok()?;
            let pong: Result<String, _> = redis::cmd("PING").query_async(&mut conn).await;
            pong.ok()
        };
        matches!(tokio::time::timeout(PROBE_TIMEOUT, pong).await, Ok(Some(_)))
    }
}

/// A lock table in memory, with the same expiry semantics as the Redis one.
#[derive(Default)]
pub struct InProcessLock {
    held: Mutex<HashMap<String, (String, Instant)>>,
}

impl InProcessLock {
    fn try_acquire(&self, key: &str, token: String, ttl: Duration) -> Option<LockGuard> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if let Some((_, expires)) = held.get(key)
            && *expires > now
        {
            return None;
        }
        held.insert(key.to_string(), (token.clone(), now + ttl));
        Some(LockGuard {
            key: key.to_string(),
            token,
        })
    }

    fn release(&self, guard: &LockGuard) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        match held.get(&guard.key) {
            Some((token, _)) if *token == guard.token => {
                held.remove(&guard.key);
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn in_process_lock_excludes_and_expires() {
        let lock = EntityLock::in_process();
        let first = lock
            .try_acquire("CN:X", Duration::from_millis(50))
            .await
            .unwrap();
        assert!(first.is_some());
        assert!(
            lock.try_acquire("CN:X", Duration::from_secs(1))
                .await
                .unwrap()
                .is_none()
        );
        tokio::time::sleep(Duration::from_millis(60)).await;
        let second = lock
            .try_acquire("CN:X", Duration::from_secs(1))
            .await
            .unwrap();
        assert!(second.is_some());
        // The expired holder must not delete the new holder's lock.
        assert!(!lock.release(first.unwrap()).await.unwrap());
        assert!(lock.release(second.unwrap()).await.unwrap());
    }
}
