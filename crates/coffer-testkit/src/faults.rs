//! A store that fails on demand.

use coffer_store::{DeleteMode, Error, ListOptions, PutOptions, Scope, SecretName};
use rand::RngExt as _;
use secrecy::SecretString;

/// A store that fails on demand, for testing what sits on top of a store: while
/// [`set_down`](Self::set_down) is on every call answers [`Error::Unavailable`]
/// without reaching the wrapped store, and with a [failure rate](Self::with_failure_rate)
/// that share of calls does (chosen at random, before the call).
#[derive(Debug)]
pub struct FaultyStore<S> {
    inner: S,
    down: std::sync::atomic::AtomicBool,
    failure_rate: f64,
    calls: std::sync::atomic::AtomicU64,
}

impl<S: coffer_store::SecretStore> FaultyStore<S> {
    /// Wraps `inner`, up and never failing.
    pub fn new(inner: S) -> Self {
        Self {
            inner,
            down: std::sync::atomic::AtomicBool::new(false),
            failure_rate: 0.0,
            calls: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// Fails this share (0.0–1.0) of calls.
    #[must_use]
    pub fn with_failure_rate(mut self, rate: f64) -> Self {
        self.failure_rate = rate.clamp(0.0, 1.0);
        self
    }

    /// Takes the store down (every call `Unavailable`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, std::sync::atomic::Ordering::SeqCst);
    }

    /// Calls that reached the wrapped store.
    pub fn calls(&self) -> u64 {
        self.calls.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    fn gate(&self) -> coffer_store::Result<()> {
        let fail = self.down.load(std::sync::atomic::Ordering::SeqCst)
            || (self.failure_rate > 0.0 && rand::rng().random::<f64>() < self.failure_rate);
        if fail {
            return Err(Error::Unavailable {
                backend: "faulty",
                message: "injected failure".to_owned(),
                source: None,
            });
        }
        self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(())
    }
}

#[async_trait::async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: coffer_store::SecretStore> coffer_store::SecretStore for FaultyStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> coffer_store::Capabilities {
        self.inner.capabilities()
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> coffer_store::Result<coffer_store::SecretMeta> {
        self.gate()?;
        self.inner.put(scope, name, value, options).await
    }

    async fn get(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: Option<u64>,
    ) -> coffer_store::Result<coffer_store::Secret> {
        self.gate()?;
        self.inner.get(scope, name, version).await
    }

    async fn metadata(
        &self,
        scope: &Scope,
        name: &SecretName,
    ) -> coffer_store::Result<coffer_store::SecretMeta> {
        self.gate()?;
        self.inner.metadata(scope, name).await
    }

    async fn list(
        &self,
        scope: &Scope,
        options: &ListOptions,
    ) -> coffer_store::Result<coffer_store::ListPage> {
        self.gate()?;
        self.inner.list(scope, options).await
    }

    async fn delete(
        &self,
        scope: &Scope,
        name: &SecretName,
        mode: DeleteMode,
    ) -> coffer_store::Result<()> {
        self.gate()?;
        self.inner.delete(scope, name, mode).await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &coffer_store::AttributeUpdate,
    ) -> coffer_store::Result<coffer_store::SecretMeta> {
        self.gate()?;
        self.inner.update_attributes(scope, name, update).await
    }

    async fn list_scopes(&self) -> coffer_store::Result<Vec<Scope>> {
        self.gate()?;
        self.inner.list_scopes().await
    }

    async fn versions(
        &self,
        scope: &Scope,
        name: &SecretName,
    ) -> coffer_store::Result<Vec<coffer_store::VersionInfo>> {
        self.gate()?;
        self.inner.versions(scope, name).await
    }

    async fn list_deleted(
        &self,
        scope: &Scope,
        options: &coffer_store::ListOptions,
    ) -> coffer_store::Result<coffer_store::ListPage> {
        self.gate()?;
        self.inner.list_deleted(scope, options).await
    }

    async fn restore(
        &self,
        scope: &Scope,
        name: &SecretName,
    ) -> coffer_store::Result<coffer_store::SecretMeta> {
        self.gate()?;
        self.inner.restore(scope, name).await
    }

    async fn rewrap_batch(&self, limit: usize) -> coffer_store::Result<coffer_store::RewrapBatch> {
        self.gate()?;
        self.inner.rewrap_batch(limit).await
    }

    async fn key_usage(&self) -> coffer_store::Result<Vec<coffer_store::KeyUsage>> {
        self.gate()?;
        self.inner.key_usage().await
    }

    async fn retire_key(&self, key_id: u32) -> coffer_store::Result<()> {
        self.gate()?;
        self.inner.retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> coffer_store::Result<u64> {
        self.gate()?;
        self.inner.adopt_untagged_heads().await
    }

    async fn record_usage(&self, usage: &[coffer_store::Usage]) -> coffer_store::Result<()> {
        self.gate()?;
        self.inner.record_usage(usage).await
    }
}
