//! The keyring kept in the store itself, sealed under a KEK, so that every instance that
//! shares a store shares its keys (Vault's barrier keyring, kept in storage under the root
//! key, and Tink's keysets encrypted under a KMS key are the anchors).
//!
//! - A backend keeps one sealed keyring document with a generation
//!   ([`KeyringStorage`]): coffer-sql in the table `coffer_keyring`, coffer-vault at a KV
//!   v2 path, coffer-supabase as one vault secret. A write names the generation it read
//!   (check-and-set): of two instances rotating at once exactly one wins; the other gets
//!   [`Error::KeyringConflict`] and has reloaded.
//! - [`SharedKeyring`] holds the document's KEK ([`KeyringKek`]: a key, a key file, a
//!   passphrase, Vault Transit), the keyring it opened, and the [`KeyringHandle`] the
//!   store seals and opens with. [`SharedKeyring::update`] changes the keyring (rotate,
//!   retire) and writes it back; [`SharedKeyring::reload`] reads it again.
//! - [`KeyringReload`] wraps the store: an envelope or a head MAC under a key this
//!   keyring does not hold, or a write the store refuses under a retired key, makes it
//!   reload the keyring (at most once per [`SharedKeyring::min_reload_interval`]) and
//!   retry the call once. On Postgres a keyring change is also announced over
//!   `NOTIFY coffer_secrets` ([`WatchEvent::KeyringChanged`](crate::WatchEvent)), which
//!   coffer-sql's `PgStore::follow_keyring` turns into an immediate reload.
//!
//! What this does not give: an instance that neither reads an envelope under a new key
//! nor writes under a retired one nor hears a NOTIFY keeps writing under the old primary
//! until its next reload; its envelopes are still readable by all, and `keys rotate`'s
//! rewrap (or `keys retire`, which refuses while they exist) finds them.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
//! use std::sync::Arc;
//! use coffer_envelope::{Kek, Keyring, MasterKey};
//! use coffer_store::keys::{MemoryKeyringStorage, SharedKeyring};
//!
//! let storage = Arc::new(MemoryKeyringStorage::default());
//! let kek = Arc::new(Kek::from_key(MasterKey::generate()));
//! let a = SharedKeyring::create(storage.clone(), kek.clone(), Keyring::new(MasterKey::generate())).await?;
//! let b = SharedKeyring::open(storage, kek).await?;
//! a.update(|ring| Ok(ring.rotate())).await?;
//! assert!(b.reload_now().await?);
//! assert_eq!(b.handle().current().primary_id(), 2);
//! # Ok(()) }
//! ```

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use coffer_envelope::{Keyring, KeyringHandle, KeyringKek};
use secrecy::SecretString;

use crate::AttributeUpdate;
use crate::{
    Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo,
};

/// A sealed keyring document as a store keeps it, with its generation (1 for the first
/// write, one more for each).
#[derive(Clone, PartialEq, Eq)]
pub struct StoredKeyring {
    /// The document ([`KeyringKek::seal_keyring`]'s output; not secret, but not useful to
    /// anyone without the KEK).
    pub document: Vec<u8>,
    /// How many times it was written.
    pub generation: u64,
}

impl fmt::Debug for StoredKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredKeyring")
            .field("generation", &self.generation)
            .field("document_len", &self.document.len())
            .finish()
    }
}

/// Where a store keeps its sealed keyring: one document with a generation, written with
/// check-and-set. Implemented by the backends that can (coffer-sql, coffer-vault with KV
/// v2, coffer-supabase) and by [`MemoryKeyringStorage`].
#[async_trait]
pub trait KeyringStorage: fmt::Debug + Send + Sync + 'static {
    /// The backend's short name, for errors.
    fn backend(&self) -> &'static str;

    /// The document kept, if any.
    async fn read_keyring(&self) -> Result<Option<StoredKeyring>>;

    /// Writes `document` if the kept generation is `expected` (`None`: none is kept yet)
    /// and returns the new generation; otherwise writes nothing and returns
    /// [`Error::KeyringConflict`] with the generation found.
    async fn write_keyring(&self, document: &[u8], expected: Option<u64>) -> Result<u64>;
}

/// A [`KeyringStorage`] in memory, for tests and examples: what a process keeps to itself.
#[derive(Debug, Default)]
pub struct MemoryKeyringStorage {
    kept: Mutex<Option<StoredKeyring>>,
}

#[async_trait]
impl KeyringStorage for MemoryKeyringStorage {
    fn backend(&self) -> &'static str {
        "memory"
    }

    async fn read_keyring(&self) -> Result<Option<StoredKeyring>> {
        Ok(self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone())
    }

    async fn write_keyring(&self, document: &[u8], expected: Option<u64>) -> Result<u64> {
        let mut kept = self
            .kept
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let found = kept.as_ref().map(|k| k.generation);
        if found != expected {
            return Err(Error::KeyringConflict {
                backend: "memory",
                found,
            });
        }
        let generation = found.unwrap_or(0) + 1;
        *kept = Some(StoredKeyring {
            document: document.to_vec(),
            generation,
        });
        Ok(generation)
    }
}

/// The keyring kept in a store, opened with its KEK; see the [module docs](self).
pub struct SharedKeyring {
    storage: Arc<dyn KeyringStorage>,
    kek: RwLock<Arc<dyn KeyringKek>>,
    handle: KeyringHandle,
    generation: AtomicU64,
    /// When a rate-limited reload last read the storage and found nothing new.
    last_fruitless: Mutex<Option<Instant>>,
    /// Held while a keyring and its generation are installed together, so a slower
    /// reload of an older generation never replaces a newer keyring.
    installing: Mutex<()>,
    min_interval: Duration,
    /// Serializes this process's own writes (rotate, retire, rekey).
    writing: futures::lock::Mutex<()>,
}

impl fmt::Debug for SharedKeyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedKeyring")
            .field("storage", &self.storage)
            .field("kek", &self.kek().describe())
            .field("generation", &self.generation())
            .field("keyring", &self.handle.current())
            .finish()
    }
}

/// The shortest time between two reloads that an unknown key id causes.
pub const DEFAULT_MIN_RELOAD_INTERVAL: Duration = Duration::from_secs(1);

impl SharedKeyring {
    /// Opens the keyring kept in `storage` with `kek`. A store that keeps none, and a
    /// KEK that does not open it, are errors that say so.
    pub async fn open(storage: Arc<dyn KeyringStorage>, kek: Arc<dyn KeyringKek>) -> Result<Self> {
        let Some(kept) = storage.read_keyring().await? else {
            return Err(Error::config(format!(
                "{}: this store keeps no keyring; move one into it with `coffer keys migrate \
                 --to-store` (or SharedKeyring::create)",
                storage.backend()
            )));
        };
        let keyring = open_with(&*kek, &kept.document, storage.backend()).await?;
        Ok(Self::new(storage, kek, keyring, kept.generation))
    }

    /// Seals `keyring` under `kek` and keeps it in `storage`, which must keep none yet
    /// ([`Error::KeyringConflict`] otherwise: open that one instead).
    pub async fn create(
        storage: Arc<dyn KeyringStorage>,
        kek: Arc<dyn KeyringKek>,
        keyring: Keyring,
    ) -> Result<Self> {
        let document = seal_with(&*kek, &keyring, storage.backend()).await?;
        let generation = storage.write_keyring(&document, None).await?;
        Ok(Self::new(storage, kek, keyring, generation))
    }

    fn new(
        storage: Arc<dyn KeyringStorage>,
        kek: Arc<dyn KeyringKek>,
        keyring: Keyring,
        generation: u64,
    ) -> Self {
        Self {
            storage,
            kek: RwLock::new(kek),
            handle: KeyringHandle::from(keyring),
            generation: AtomicU64::new(generation),
            last_fruitless: Mutex::new(None),
            installing: Mutex::new(()),
            min_interval: DEFAULT_MIN_RELOAD_INTERVAL,
            writing: futures::lock::Mutex::new(()),
        }
    }

    /// With another shortest time between two rate-limited reloads
    /// ([`DEFAULT_MIN_RELOAD_INTERVAL`] by default).
    #[must_use]
    pub fn min_reload_interval(mut self, interval: Duration) -> Self {
        self.min_interval = interval;
        self
    }

    /// The handle the store seals and opens with; it follows every reload and update.
    pub fn handle(&self) -> KeyringHandle {
        self.handle.clone()
    }

    /// The generation of the document this keyring was read from or written as.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Where the keyring is kept (its backend's name).
    pub fn backend(&self) -> &'static str {
        self.storage.backend()
    }

    /// The KEK in use.
    pub fn kek(&self) -> Arc<dyn KeyringKek> {
        self.kek
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Reads the kept keyring again, unless a reload found nothing new less than the
    /// minimum interval ago (so envelopes that name keys nobody has, forged or not, cost
    /// at most one read of the keyring per interval; a reload that found a change holds
    /// nothing off). `seen` is the [`generation`](Self::generation) the caller worked
    /// with: if another task has reloaded since, this returns `true` at once.
    /// `Ok(true)`: the keyring changed, retry.
    pub async fn reload(&self, seen: u64) -> Result<bool> {
        if self.generation() != seen {
            return Ok(true);
        }
        {
            let mut last = self.last_fruitless();
            if last.is_some_and(|at| at.elapsed() < self.min_interval) {
                return Ok(false);
            }
            // Claimed before the read, so concurrent callers do not all read.
            *last = Some(Instant::now());
        }
        let changed = self.reload_now().await;
        if matches!(changed, Ok(true)) {
            *self.last_fruitless() = None;
        }
        changed
    }

    fn last_fruitless(&self) -> std::sync::MutexGuard<'_, Option<Instant>> {
        self.last_fruitless
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reads the kept keyring now (a notification said it changed); `Ok(true)` when it had.
    pub async fn reload_now(&self) -> Result<bool> {
        let Some(kept) = self.storage.read_keyring().await? else {
            return Err(Error::config(format!(
                "{}: the keyring kept in this store is gone",
                self.backend()
            )));
        };
        self.adopt(kept).await
    }

    /// Takes `kept` if it is newer than what this holds.
    async fn adopt(&self, kept: StoredKeyring) -> Result<bool> {
        if kept.generation <= self.generation() {
            return Ok(false);
        }
        let keyring = open_with(&*self.kek(), &kept.document, self.backend()).await?;
        if self.install(kept.generation, keyring) {
            tracing::info!(
                backend = self.backend(),
                generation = kept.generation,
                "coffer: reloaded the keyring kept in the store"
            );
        }
        Ok(true)
    }

    /// Makes `keyring` current unless a newer generation already is (two reloads, or a
    /// reload and this instance's own write, may race); `true` when it did.
    fn install(&self, generation: u64, keyring: Keyring) -> bool {
        let _installing = self
            .installing
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if generation <= self.generation() {
            return false;
        }
        self.handle.replace(keyring);
        self.generation.store(generation, Ordering::Release);
        true
    }

    /// Changes the keyring with `change` and writes it back with check-and-set. If
    /// another instance wrote it since this one read it, nothing is written, the keyring
    /// is reloaded, and the result is [`Error::KeyringConflict`].
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
    /// # use std::sync::Arc;
    /// # use coffer_envelope::{Kek, Keyring, MasterKey};
    /// # use coffer_store::keys::{MemoryKeyringStorage, SharedKeyring};
    /// let storage = Arc::new(MemoryKeyringStorage::default());
    /// let kek = Arc::new(Kek::from_key(MasterKey::generate()));
    /// let a = SharedKeyring::create(storage.clone(), kek.clone(), Keyring::new(MasterKey::generate())).await?;
    /// let b = SharedKeyring::open(storage, kek).await?;
    /// a.update(|ring| Ok(ring.rotate())).await?;
    /// // b read generation 1; a wrote 2: b's rotation is refused and b now holds a's keyring.
    /// let lost = b.update(|ring| Ok(ring.rotate())).await;
    /// assert!(matches!(lost, Err(coffer_store::Error::KeyringConflict { found: Some(2), .. })));
    /// assert_eq!(b.handle().current().primary_id(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn update<T>(
        &self,
        change: impl FnOnce(&mut Keyring) -> coffer_envelope::Result<T>,
    ) -> Result<T> {
        let _writing = self.writing.lock().await;
        let mut keyring = (*self.handle.current()).clone();
        let out = change(&mut keyring).map_err(|e| Error::config(e.to_string()))?;
        self.write(keyring, &*self.kek()).await?;
        Ok(out)
    }

    /// Seals the keyring under `kek` instead and writes it back (check-and-set, as
    /// [`update`](Self::update)); the data keys, and so every envelope, stay as they are.
    pub async fn rekey(&self, kek: Arc<dyn KeyringKek>) -> Result<()> {
        let _writing = self.writing.lock().await;
        let keyring = (*self.handle.current()).clone();
        self.write(keyring, &*kek).await?;
        *self
            .kek
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = kek;
        Ok(())
    }

    async fn write(&self, keyring: Keyring, kek: &dyn KeyringKek) -> Result<()> {
        let seen = self.generation();
        let document = seal_with(kek, &keyring, self.backend()).await?;
        match self.storage.write_keyring(&document, Some(seen)).await {
            Ok(generation) => {
                self.install(generation, keyring);
                Ok(())
            }
            Err(Error::KeyringConflict { backend, found }) => {
                if let Err(e) = self.reload_now().await {
                    tracing::warn!(error = %e, "coffer: reloading the keyring after a conflict failed");
                }
                Err(Error::KeyringConflict { backend, found })
            }
            Err(other) => Err(other),
        }
    }
}

async fn open_with(kek: &dyn KeyringKek, document: &[u8], backend: &str) -> Result<Keyring> {
    kek.open_keyring(document).await.map_err(|e| {
        Error::config(format!(
            "{backend}: the keyring kept in this store does not open with {}: {e}",
            kek.describe()
        ))
    })
}

async fn seal_with(kek: &dyn KeyringKek, keyring: &Keyring, backend: &str) -> Result<Vec<u8>> {
    kek.seal_keyring(keyring).await.map_err(|e| {
        Error::config(format!(
            "{backend}: sealing the keyring with {} failed: {e}",
            kek.describe()
        ))
    })
}

/// A store whose keyring is kept in the store: on an error that may come from an
/// out-of-date keyring ([`Error::may_be_stale_keyring`]) it reloads the keyring
/// (rate-limited) and, if it changed, retries the call once. Put it directly over the
/// backend, under the other layers.
///
/// Retrying is safe: every call it retries either failed before writing anything (a
/// refused write is rolled back whole) or only read.
pub struct KeyringReload<S> {
    inner: S,
    keys: Arc<SharedKeyring>,
}

impl<S: fmt::Debug> fmt::Debug for KeyringReload<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyringReload")
            .field("inner", &self.inner)
            .field("keys", &self.keys)
            .finish()
    }
}

impl<S> KeyringReload<S> {
    /// `inner`, which must seal with `keys.handle()`.
    pub fn new(inner: S, keys: Arc<SharedKeyring>) -> Self {
        Self { inner, keys }
    }

    /// The shared keyring.
    pub fn keys(&self) -> &Arc<SharedKeyring> {
        &self.keys
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    async fn retry<T, F, Fut>(&self, call: F) -> Result<T>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: std::future::Future<Output = Result<T>> + Send,
    {
        let seen = self.keys.generation();
        match call().await {
            Err(e) if e.may_be_stale_keyring() => match self.keys.reload(seen).await {
                Ok(true) => call().await,
                Ok(false) => Err(e),
                Err(reload) => {
                    tracing::warn!(error = %reload, "coffer: reloading the keyring failed");
                    Err(e)
                }
            },
            other => other,
        }
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: SecretStore> SecretStore for KeyringReload<S> {
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
        self.retry(|| self.inner.put(scope, name, value, options))
            .await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        self.retry(|| self.inner.get(scope, name, version)).await
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.retry(|| self.inner.metadata(scope, name)).await
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.retry(|| self.inner.list(scope, options)).await
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        self.retry(|| self.inner.delete(scope, name, mode)).await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        self.retry(|| self.inner.update_attributes(scope, name, update))
            .await
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        self.inner.list_scopes().await
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        self.retry(|| self.inner.versions(scope, name)).await
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.retry(|| self.inner.list_deleted(scope, options)).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.retry(|| self.inner.restore(scope, name)).await
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        self.retry(|| self.inner.rewrap_batch(limit)).await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        self.retry(|| self.inner.key_usage()).await
    }

    async fn retire_key(&self, key_id: u32) -> Result<()> {
        self.inner.retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        self.retry(|| self.inner.adopt_untagged_heads()).await
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        self.inner.record_usage(usage).await
    }
}
