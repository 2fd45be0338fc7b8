//! [`StoreBuilder`]: layers over a backend, named outermost first.

use std::fmt;
use std::sync::Arc;

use crate::{DynSecretStore, SecretStore};

/// One layer: wraps the store below it.
type Wrap = Box<dyn FnOnce(Arc<DynSecretStore>) -> Arc<DynSecretStore> + Send>;

/// Stacks layers over a backend in the order a call meets them, outermost first, as
/// tower's `ServiceBuilder` does: the first layer named is the first a call goes
/// through, the backend the last.
///
/// ```
/// # #[cfg(all(feature = "cache", feature = "audit", feature = "usage", feature = "rate-limit"))]
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// use std::num::NonZeroU32;
/// use std::sync::Arc;
/// use coffer_store::layer::{CacheOptions, StoreBuilder, TracingSink, UsageOptions};
/// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
///
/// // Every read is limited and audited, counted even when the cache answers, and the
/// // backend sees only misses.
/// let store = StoreBuilder::new()
///     .rate_limit(NonZeroU32::new(1000).unwrap())
///     .audit(vec![Arc::new(TracingSink)])
///     .usage(UsageOptions::new())
///     .cache(CacheOptions::new())
///     .build(MemoryStore::new());
/// let (tenant, name) = (Scope::new("tenant-42")?, SecretName::new("openai_api_key")?);
/// store.put(&tenant, &name, &"sk-example".into(), &PutOptions::new()).await?;
/// assert_eq!(store.get(&tenant, &name, None).await?.meta.version, 1);
/// # Ok(()) }
/// # #[cfg(not(all(feature = "cache", feature = "audit", feature = "usage", feature = "rate-limit")))]
/// # fn main() {}
/// ```
///
/// The stores it builds are type-erased ([`DynSecretStore`]); to keep a layer's own
/// handle (a cache's [`stats`](super::CacheStore::stats), say), build that layer by
/// hand and pass it to [`build`](Self::build) or [`layer`](Self::layer).
#[derive(Default)]
pub struct StoreBuilder {
    /// Outermost first.
    layers: Vec<Wrap>,
}

impl fmt::Debug for StoreBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreBuilder")
            .field("layers", &self.layers.len())
            .finish()
    }
}

impl StoreBuilder {
    /// No layers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds any layer, below the ones named so far: `wrap` gets the store under it.
    #[must_use]
    pub fn layer<S, F>(mut self, wrap: F) -> Self
    where
        S: SecretStore + 'static,
        F: FnOnce(Arc<DynSecretStore>) -> S + Send + 'static,
    {
        self.layers.push(Box::new(move |inner| {
            Arc::new(wrap(inner)) as Arc<DynSecretStore>
        }));
        self
    }

    /// A [`RateLimitStore`](super::RateLimitStore) of `per_second` calls per scope.
    #[cfg(feature = "rate-limit")]
    #[must_use]
    pub fn rate_limit(self, per_second: std::num::NonZeroU32) -> Self {
        self.layer(move |inner| super::RateLimitStore::per_second(inner, per_second))
    }

    /// An [`AuditStore`](super::AuditStore) into `sinks`.
    #[cfg(feature = "audit")]
    #[must_use]
    pub fn audit(self, sinks: Vec<Arc<dyn super::AuditSink>>) -> Self {
        self.layer(move |inner| super::AuditStore::new(inner, sinks))
    }

    /// A [`UsageStore`](super::UsageStore).
    #[cfg(feature = "usage")]
    #[must_use]
    pub fn usage(self, options: super::UsageOptions) -> Self {
        self.layer(move |inner| super::UsageStore::new(inner, options))
    }

    /// A [`CacheStore`](super::CacheStore).
    #[cfg(feature = "cache")]
    #[must_use]
    pub fn cache(self, options: super::CacheOptions) -> Self {
        self.layer(move |inner| super::CacheStore::new(inner, options))
    }

    /// The layers over `backend`.
    pub fn build<S: SecretStore + 'static>(self, backend: S) -> Arc<DynSecretStore> {
        let mut store: Arc<DynSecretStore> = Arc::new(backend);
        for wrap in self.layers.into_iter().rev() {
            store = wrap(store);
        }
        store
    }
}
