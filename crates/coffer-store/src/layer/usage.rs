//! Batched usage tracking (feature `usage`).

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use tokio::sync::Notify;

use crate::AttributeUpdate;
use crate::{
    Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo,
};

/// Options of a [`UsageStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UsageOptions {
    /// Flush at least this often (default 10 s).
    pub interval: Duration,
    /// Flush as soon as this many distinct secrets have pending reads (default 1000).
    pub max_pending: usize,
    /// Secrets per [`SecretStore::record_usage`] call (default 500).
    pub batch: usize,
}

impl Default for UsageOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            max_pending: 1000,
            batch: 500,
        }
    }
}

impl UsageOptions {
    /// The defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flush interval.
    #[must_use]
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Sets the pending-count trigger.
    #[must_use]
    pub fn max_pending(mut self, max_pending: usize) -> Self {
        self.max_pending = max_pending.max(1);
        self
    }

    /// Sets the batch size.
    #[must_use]
    pub fn batch(mut self, batch: usize) -> Self {
        self.batch = batch.max(1);
        self
    }
}

type Pending = HashMap<(Scope, SecretName), (u64, DateTime<Utc>)>;

struct Shared<S> {
    inner: S,
    pending: Mutex<Pending>,
    wake: Notify,
    closed: AtomicBool,
    unsupported: AtomicBool,
    flushing: tokio::sync::Mutex<()>,
    options: UsageOptions,
}

impl<S: SecretStore> Shared<S> {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn note(&self, scope: &Scope, name: &SecretName) {
        if self.unsupported.load(Ordering::Relaxed) {
            return;
        }
        let now = crate::backend::now();
        let len = {
            let mut pending = self.pending();
            let slot = pending
                .entry((scope.clone(), name.clone()))
                .or_insert((0, now));
            slot.0 += 1;
            slot.1 = slot.1.max(now);
            pending.len()
        };
        if len >= self.options.max_pending {
            self.wake.notify_one();
        }
    }

    fn overlay(&self, meta: &mut SecretMeta) {
        if let Some((count, at)) = self.pending().get(&(meta.scope.clone(), meta.name.clone())) {
            meta.usage_count = meta.usage_count.saturating_add(*count);
            meta.last_used_at = meta.last_used_at.max(Some(*at));
        }
    }

    async fn flush(&self) -> Result<()> {
        let _one_at_a_time = self.flushing.lock().await;
        let taken = std::mem::take(&mut *self.pending());
        if taken.is_empty() {
            return Ok(());
        }
        let records: Vec<Usage> = taken
            .into_iter()
            .map(|((scope, name), (count, at))| Usage::new(scope, name, count, at))
            .collect();
        for (i, chunk) in records.chunks(self.options.batch).enumerate() {
            match self.inner.record_usage(chunk).await {
                Ok(()) => {}
                Err(Error::Unsupported { backend, .. }) => {
                    self.unsupported.store(true, Ordering::Relaxed);
                    tracing::warn!(
                        backend,
                        "coffer usage: this store keeps no usage statistics; tracking is off"
                    );
                    return Ok(());
                }
                Err(e) => {
                    // Keep the unsent counts for the next flush: nothing is lost.
                    let mut pending = self.pending();
                    for u in records[i * self.options.batch..].iter() {
                        let slot = pending
                            .entry((u.scope.clone(), u.name.clone()))
                            .or_insert((0, u.last_used_at));
                        slot.0 += u.count;
                        slot.1 = slot.1.max(u.last_used_at);
                    }
                    tracing::warn!(error = %e, "coffer usage: flush failed; retrying later");
                    return Err(e);
                }
            }
        }
        Ok(())
    }
}

/// A store that counts reads: every successful `get` adds one to the secret's
/// `usage_count` and moves `last_used_at`, without making the read wait for a write.
///
/// Reads are counted in memory and written with [`SecretStore::record_usage`] by a
/// background task, every [`UsageOptions::interval`] or as soon as
/// [`UsageOptions::max_pending`] secrets have pending reads, in batches. `metadata` and
/// `list` add the pending counts, so they are exact at once. A failed flush keeps its
/// counts for the next one. [`flush`](Self::flush) writes now; dropping the layer hands
/// the remainder to the task for a last flush (call [`flush`](Self::flush) before a
/// shutdown to be sure it lands). On a store that keeps no usage (Vault) tracking turns
/// itself off with a warning.
///
/// ```
/// use coffer_store::layer::{UsageStore, UsageOptions};
/// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let store = UsageStore::new(MemoryStore::new(), UsageOptions::new());
/// let (scope, name) = (Scope::new("t1")?, SecretName::new("openai_api_key")?);
/// store.put(&scope, &name, &"sk-1".into(), &PutOptions::new()).await?;
/// store.get(&scope, &name, None).await?;
/// store.get(&scope, &name, None).await?;
/// store.flush().await?;
/// assert_eq!(store.inner().metadata(&scope, &name).await?.usage_count, 2);
/// # Ok(()) }
/// ```
pub struct UsageStore<S> {
    shared: Arc<Shared<S>>,
}

impl<S: fmt::Debug> fmt::Debug for UsageStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UsageStore")
            .field("inner", &self.shared.inner)
            .field("options", &self.shared.options)
            .finish()
    }
}

impl<S> Drop for UsageStore<S> {
    fn drop(&mut self) {
        self.shared.closed.store(true, Ordering::Release);
        self.shared.wake.notify_one();
    }
}

impl<S: SecretStore> UsageStore<S> {
    /// Tracks reads of `inner`; spawns the flushing task on the current tokio runtime.
    ///
    /// # Panics
    ///
    /// Outside a tokio runtime.
    pub fn new(inner: S, options: UsageOptions) -> Self {
        let shared = Arc::new(Shared {
            inner,
            pending: Mutex::new(HashMap::new()),
            wake: Notify::new(),
            closed: AtomicBool::new(false),
            unsupported: AtomicBool::new(false),
            flushing: tokio::sync::Mutex::new(()),
            options,
        });
        let task = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                let closed = tokio::select! {
                    () = tokio::time::sleep(task.options.interval) => false,
                    () = task.wake.notified() => task.closed.load(Ordering::Acquire),
                };
                let _ = task.flush().await;
                if closed || task.closed.load(Ordering::Acquire) {
                    return;
                }
            }
        });
        Self { shared }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.shared.inner
    }

    /// Writes every pending count now.
    pub async fn flush(&self) -> Result<()> {
        self.shared.flush().await
    }

    /// Reads counted but not yet written.
    pub fn pending(&self) -> u64 {
        self.shared.pending().values().map(|(n, _)| n).sum()
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: SecretStore> SecretStore for UsageStore<S> {
    fn backend(&self) -> &'static str {
        self.shared.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.shared.inner.capabilities()
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        let mut meta = self.shared.inner.put(scope, name, value, options).await?;
        self.shared.overlay(&mut meta);
        Ok(meta)
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let secret = self.shared.inner.get(scope, name, version).await?;
        self.shared.note(scope, name);
        Ok(secret)
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let mut meta = self.shared.inner.metadata(scope, name).await?;
        self.shared.overlay(&mut meta);
        Ok(meta)
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        let mut page = self.shared.inner.list(scope, options).await?;
        for meta in &mut page.items {
            self.shared.overlay(meta);
        }
        Ok(page)
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        self.shared.inner.delete(scope, name, mode).await?;
        self.shared.pending().remove(&(scope.clone(), name.clone()));
        Ok(())
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        self.shared
            .inner
            .update_attributes(scope, name, update)
            .await
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        self.shared.inner.list_scopes().await
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        self.shared.inner.versions(scope, name).await
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.shared.inner.list_deleted(scope, options).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let mut meta = self.shared.inner.restore(scope, name).await?;
        self.shared.overlay(&mut meta);
        Ok(meta)
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        self.shared.inner.rewrap_batch(limit).await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        self.shared.inner.key_usage().await
    }

    async fn retire_key(&self, key_id: u32) -> Result<()> {
        self.shared.inner.retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        self.shared.inner.adopt_untagged_heads().await
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        self.shared.inner.record_usage(usage).await
    }
}
