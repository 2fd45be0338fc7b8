//! A read cache in front of any store (feature `cache`).

use std::fmt;
use std::hash::{BuildHasher as _, Hash as _, Hasher as _};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::{Stream, StreamExt as _};
use secrecy::SecretString;

use crate::AttributeUpdate;
use crate::{
    Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo,
    WatchEvent,
};

/// How long an entry is served without asking the store, by default.
pub const DEFAULT_TTL: Duration = Duration::from_secs(300);
/// How many entries the cache holds at most, by default.
pub const DEFAULT_MAX_ENTRIES: u64 = 10_000;

/// Generation stripes: invalidating a name bumps its stripe, which makes every cached
/// version of every name in the stripe stale (a collision costs a miss, never a stale hit).
const STRIPES: usize = 4096;

/// Options of a [`CacheStore`].
///
/// ```
/// use std::time::Duration;
/// use coffer_store::layer::CacheOptions;
/// let options = CacheOptions::new()
///     .ttl(Duration::from_secs(60))
///     .max_entries(50_000)
///     .stale_if_error(Duration::from_secs(600));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct CacheOptions {
    /// How long an entry is served without asking the store ([`DEFAULT_TTL`]).
    pub ttl: Duration,
    /// The most entries held ([`DEFAULT_MAX_ENTRIES`]); the least useful go first.
    pub max_entries: u64,
    /// When set, an entry past its TTL is kept this much longer and served if the store
    /// answers [`Error::Unavailable`] (off by default).
    pub stale_if_error: Option<Duration>,
}

impl Default for CacheOptions {
    fn default() -> Self {
        Self {
            ttl: DEFAULT_TTL,
            max_entries: DEFAULT_MAX_ENTRIES,
            stale_if_error: None,
        }
    }
}

impl CacheOptions {
    /// The defaults: 5 minutes, 10,000 entries, no stale-if-error.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the TTL.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// Sets the size bound.
    #[must_use]
    pub fn max_entries(mut self, max_entries: u64) -> Self {
        self.max_entries = max_entries;
        self
    }

    /// Serves entries up to `window` past their TTL while the store is unavailable.
    #[must_use]
    pub fn stale_if_error(mut self, window: Duration) -> Self {
        self.stale_if_error = Some(window);
        self
    }
}

/// Counters of a [`CacheStore`], for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct CacheStats {
    /// Reads answered from the cache.
    pub hits: u64,
    /// Reads that went to the store.
    pub misses: u64,
    /// Reads answered with an entry past its TTL because the store was unavailable.
    pub stale_served: u64,
    /// Names invalidated (own writes, [`CacheStore::invalidate`], change notifications).
    pub invalidations: u64,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct Key {
    scope: Scope,
    name: SecretName,
    version: Option<u64>,
}

struct Entry {
    secret: Secret,
    generation: u64,
    epoch: u64,
    fetched: Instant,
}

struct Shared {
    entries: moka::sync::Cache<Key, Arc<Entry>>,
    generations: Box<[AtomicU64]>,
    epoch: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
    options: CacheOptions,
    following: AtomicBool,
    hits: AtomicU64,
    misses: AtomicU64,
    stale_served: AtomicU64,
    invalidations: AtomicU64,
    watcher: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = self
            .watcher
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            task.abort();
        }
    }
}

impl Shared {
    fn stripe(&self, scope: &Scope, name: &SecretName) -> &AtomicU64 {
        let mut h = self.hasher.build_hasher();
        scope.hash(&mut h);
        name.hash(&mut h);
        // The modulo keeps the index in range; truncating the hash is intended.
        #[allow(clippy::cast_possible_truncation)]
        let i = (h.finish() as usize) % STRIPES;
        &self.generations[i]
    }

    fn invalidate(&self, scope: &Scope, name: &SecretName) {
        self.stripe(scope, name).fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate(&Key {
            scope: scope.clone(),
            name: name.clone(),
            version: None,
        });
        self.invalidations.fetch_add(1, Ordering::Relaxed);
    }

    fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.entries.invalidate_all();
    }

    fn apply(&self, event: &WatchEvent) {
        match event {
            WatchEvent::Changed(change) => self.invalidate(&change.scope, &change.name),
            WatchEvent::Disconnected => {
                self.following.store(false, Ordering::Release);
                self.clear();
                tracing::warn!(
                    "coffer cache: change notifications lost; entries expire by TTL until they resume"
                );
            }
            WatchEvent::Reconnected => {
                // Changes in the gap were not seen: nothing cached before now can be trusted.
                self.clear();
                self.following.store(true, Ordering::Release);
                tracing::info!("coffer cache: change notifications resumed");
            }
            // A rotation changes no value: what is cached is still what the store holds.
            WatchEvent::KeyringChanged { .. } => {}
        }
    }
}

/// A store that answers repeated reads of a secret from memory.
///
/// - Caches `get` (latest and numbered versions) for a TTL (default 5 minutes) under
///   a size bound; `metadata` and `list` always go to the store.
/// - Its own writes and deletes invalidate the name at once; [`invalidate`](Self::invalidate)
///   and [`clear`](Self::clear) do it by hand.
/// - [`follow`](Self::follow) consumes another instance's change stream (such as
///   `PgStore::watch` in coffer-sql), so a write on any instance drops the entry here as
///   soon as the notification arrives. A generation check makes sure a read that raced an
///   invalidation cannot put the old value back. If the stream breaks, the cache is
///   cleared and entries live by their TTL until it resumes.
/// - With [`CacheOptions::stale_if_error`] an entry past its TTL is served while the
///   store is [`Unavailable`](Error::Unavailable).
/// - A cached secret is checked for expiry and activity on every hit.
///
/// Values stay in [`SecretString`]s and are zeroized when evicted.
///
/// ```
/// use coffer_store::layer::{CacheStore, CacheOptions};
/// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let store = CacheStore::new(MemoryStore::new(), CacheOptions::new());
/// let (scope, name) = (Scope::new("t1")?, SecretName::new("openai_api_key")?);
/// store.put(&scope, &name, &"sk-1".into(), &PutOptions::new()).await?;
/// store.get(&scope, &name, None).await?; // from the store
/// store.get(&scope, &name, None).await?; // from memory
/// assert_eq!(store.stats().hits, 1);
/// # Ok(()) }
/// ```
pub struct CacheStore<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S: fmt::Debug> fmt::Debug for CacheStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheStore")
            .field("inner", &self.inner)
            .field("options", &self.shared.options)
            .field("entries", &self.shared.entries.entry_count())
            .field("following", &self.shared.following.load(Ordering::Relaxed))
            .finish()
    }
}

impl<S: SecretStore> CacheStore<S> {
    /// Caches `inner` with `options`.
    pub fn new(inner: S, options: CacheOptions) -> Self {
        let lifetime = options.ttl + options.stale_if_error.unwrap_or(Duration::ZERO);
        let entries = moka::sync::Cache::builder()
            .max_capacity(options.max_entries)
            .time_to_live(lifetime.max(Duration::from_millis(1)))
            .build();
        Self {
            inner,
            shared: Arc::new(Shared {
                entries,
                generations: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
                epoch: AtomicU64::new(0),
                hasher: std::collections::hash_map::RandomState::new(),
                options,
                following: AtomicBool::new(false),
                hits: AtomicU64::new(0),
                misses: AtomicU64::new(0),
                stale_served: AtomicU64::new(0),
                invalidations: AtomicU64::new(0),
                watcher: Mutex::new(None),
            }),
        }
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Drops every cached version of `scope/name`.
    pub fn invalidate(&self, scope: &Scope, name: &SecretName) {
        self.shared.invalidate(scope, name);
    }

    /// Drops everything.
    pub fn clear(&self) {
        self.shared.clear();
    }

    /// The counters so far.
    pub fn stats(&self) -> CacheStats {
        let s = &self.shared;
        CacheStats {
            hits: s.hits.load(Ordering::Relaxed),
            misses: s.misses.load(Ordering::Relaxed),
            stale_served: s.stale_served.load(Ordering::Relaxed),
            invalidations: s.invalidations.load(Ordering::Relaxed),
        }
    }

    /// Whether a change stream is being followed and connected.
    pub fn is_following(&self) -> bool {
        self.shared.following.load(Ordering::Acquire)
    }

    /// Follows a change stream (such as `PgStore::watch()` of coffer-sql) on a tokio
    /// task: every change drops the name here; a disconnect or reconnect clears the
    /// cache. Replaces any stream followed before. The task ends when the stream ends
    /// (then entries live by their TTL) or when the cache is dropped.
    pub fn follow<W>(&self, changes: W)
    where
        W: Stream<Item = WatchEvent> + Send + 'static,
    {
        let shared = Arc::downgrade(&self.shared);
        self.shared.following.store(true, Ordering::Release);
        let task = tokio::spawn(async move {
            let mut changes = std::pin::pin!(changes);
            while let Some(event) = changes.next().await {
                let Some(shared) = shared.upgrade() else {
                    return;
                };
                shared.apply(&event);
            }
            if let Some(shared) = shared.upgrade() {
                shared.following.store(false, Ordering::Release);
                shared.clear();
                tracing::warn!(
                    "coffer cache: the change stream ended; entries expire by TTL from now on"
                );
            }
        });
        let previous = self
            .shared
            .watcher
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .replace(task.abort_handle());
        if let Some(previous) = previous {
            previous.abort();
        }
    }

    fn lookup(&self, key: &Key) -> Option<(Arc<Entry>, bool)> {
        let s = &self.shared;
        let entry = s.entries.get(key)?;
        let current = entry.generation == s.stripe(&key.scope, &key.name).load(Ordering::Acquire)
            && entry.epoch == s.epoch.load(Ordering::Acquire);
        if !current {
            s.entries.invalidate(key);
            return None;
        }
        let fresh = entry.fetched.elapsed() < s.options.ttl;
        Some((entry, fresh))
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: SecretStore> SecretStore for CacheStore<S> {
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
        let written = self.inner.put(scope, name, value, options).await;
        // Also after a failure: an `Unavailable` write may still have landed.
        self.shared.invalidate(scope, name);
        written
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let s = &self.shared;
        let key = Key {
            scope: scope.clone(),
            name: name.clone(),
            version,
        };
        let cached = self.lookup(&key);
        if let Some((entry, true)) = &cached {
            s.hits.fetch_add(1, Ordering::Relaxed);
            entry.secret.meta.check_readable()?;
            return Ok(entry.secret.clone());
        }
        s.misses.fetch_add(1, Ordering::Relaxed);
        // Read the generation before the store: an invalidation after this point makes
        // the entry written below stale, whatever order the insert and it happen in.
        let generation = s.stripe(scope, name).load(Ordering::Acquire);
        let epoch = s.epoch.load(Ordering::Acquire);
        match self.inner.get(scope, name, version).await {
            Ok(secret) => {
                s.entries.insert(
                    key,
                    Arc::new(Entry {
                        secret: secret.clone(),
                        generation,
                        epoch,
                        fetched: Instant::now(),
                    }),
                );
                Ok(secret)
            }
            Err(e @ Error::Unavailable { .. }) => match cached {
                Some((entry, false)) => {
                    s.stale_served.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        %scope, %name, error = %e,
                        "coffer cache: store unavailable; serving an entry past its TTL"
                    );
                    entry.secret.meta.check_readable()?;
                    Ok(entry.secret.clone())
                }
                _ => Err(e),
            },
            Err(e) => {
                if matches!(e, Error::NotFound { .. }) {
                    s.entries.invalidate(&key);
                }
                Err(e)
            }
        }
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.inner.metadata(scope, name).await
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.inner.list(scope, options).await
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let deleted = self.inner.delete(scope, name, mode).await;
        self.shared.invalidate(scope, name);
        deleted
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        let updated = self.inner.update_attributes(scope, name, update).await;
        self.shared.invalidate(scope, name);
        updated
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        self.inner.list_scopes().await
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        self.inner.versions(scope, name).await
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.inner.list_deleted(scope, options).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let restored = self.inner.restore(scope, name).await;
        self.shared.invalidate(scope, name);
        restored
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        let batch = self.inner.rewrap_batch(limit).await?;
        if batch.rewrapped > 0 {
            // Values are unchanged, but cached metadata names the old key.
            self.shared.clear();
        }
        Ok(batch)
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        self.inner.key_usage().await
    }

    async fn retire_key(&self, key_id: u32) -> Result<()> {
        self.inner.retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        let adopted = self.inner.adopt_untagged_heads().await?;
        if adopted > 0 {
            // Nothing cached could have been read from an untagged head, but be plain.
            self.shared.clear();
        }
        Ok(adopted)
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        self.inner.record_usage(usage).await
    }
}
