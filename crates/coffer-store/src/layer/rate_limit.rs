//! Per-scope rate limits (feature `rate-limit`).

use std::fmt;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use secrecy::SecretString;

use crate::AttributeUpdate;
use crate::{
    Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo,
};

/// Calls between sweeps of idle scopes out of the limiter's table.
const SWEEP_EVERY: u64 = 4096;

/// A store that lets each scope make at most so many calls per second (a GCRA limiter
/// from `governor`, one bucket per scope); a call over the limit fails at once with
/// [`Error::RateLimited`], saying when to retry, and never reaches the store.
///
/// Every scoped call counts (`get`, `put`, `metadata`, `list`, `delete`); store-wide
/// maintenance (`rewrap_batch`, `record_usage`) does not. Idle scopes are swept from
/// memory as the limiter goes.
///
/// ```
/// use std::num::NonZeroU32;
/// use coffer_store::layer::RateLimitStore;
/// use coffer_store::{Error, MemoryStore, Scope, SecretName, SecretStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let store = RateLimitStore::per_second(MemoryStore::new(), NonZeroU32::new(2).unwrap());
/// let (scope, name) = (Scope::new("t1").unwrap(), SecretName::new("k").unwrap());
/// for _ in 0..2 {
///     assert!(store.metadata(&scope, &name).await.unwrap_err().is_not_found());
/// }
/// let over = store.metadata(&scope, &name).await.unwrap_err();
/// assert!(matches!(over, Error::RateLimited { .. }));
/// # }
/// ```
pub struct RateLimitStore<S> {
    inner: S,
    limiter: DefaultKeyedRateLimiter<Scope>,
    quota: Quota,
    calls: AtomicU64,
}

impl<S: fmt::Debug> fmt::Debug for RateLimitStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitStore")
            .field("inner", &self.inner)
            .field("quota", &self.quota)
            .finish()
    }
}

impl<S: SecretStore> RateLimitStore<S> {
    /// Limits each scope of `inner` to `quota` (see `governor::Quota`: a rate and a
    /// burst).
    pub fn new(inner: S, quota: Quota) -> Self {
        Self {
            inner,
            limiter: governor::RateLimiter::keyed(quota),
            quota,
            calls: AtomicU64::new(0),
        }
    }

    /// `per_second` calls per second per scope, in bursts of up to as many.
    pub fn per_second(inner: S, per_second: NonZeroU32) -> Self {
        Self::new(inner, Quota::per_second(per_second))
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn admit(&self, scope: &Scope) -> Result<()> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter.check_key(scope).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(DefaultClock::default().now());
            tracing::debug!(%scope, ?retry_after, "coffer rate limit: call refused");
            Error::RateLimited {
                scope: scope.to_string(),
                retry_after,
            }
        })
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: SecretStore> SecretStore for RateLimitStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        self.admit(scope)?;
        self.inner.put(scope, name, value, options).await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        self.admit(scope)?;
        self.inner.get(scope, name, version).await
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.admit(scope)?;
        self.inner.metadata(scope, name).await
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.admit(scope)?;
        self.inner.list(scope, options).await
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        self.admit(scope)?;
        self.inner.delete(scope, name, mode).await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        self.admit(scope)?;
        self.inner.update_attributes(scope, name, update).await
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        self.inner.list_scopes().await
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        self.admit(scope)?;
        self.inner.versions(scope, name).await
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.admit(scope)?;
        self.inner.list_deleted(scope, options).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.admit(scope)?;
        self.inner.restore(scope, name).await
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        self.inner.rewrap_batch(limit).await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        self.inner.key_usage().await
    }

    async fn retire_key(&self, key_id: u32) -> Result<()> {
        self.inner.retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        self.inner.adopt_untagged_heads().await
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        self.inner.record_usage(usage).await
    }
}
