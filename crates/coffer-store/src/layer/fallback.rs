//! Reads from a chain of stores (feature `fallback`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::AttributeUpdate;
use crate::backend::page_of;
use crate::{
    Capabilities, DeleteMode, DynSecretStore, Error, KeyUsage, ListOptions, ListPage, PutOptions,
    Result, RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo,
};

/// Which store of a [`FallbackStore`] answered a read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Answered {
    /// Its position in the chain (0: the first).
    pub index: usize,
    /// Its [`SecretStore::backend`].
    pub backend: &'static str,
}

/// A chain of stores for reads — say Vault, then the process environment — that keeps
/// working when an earlier store does not have a secret or cannot be reached.
///
/// - `get` and `metadata` ask each store in order and stop at the first answer. A store
///   moves the read on when it answers [`Error::NotFound`] or [`Error::Unavailable`];
///   any other answer (a value, `Expired`, `PermissionDenied`, …) is final. If no store
///   answers, the error is the first `Unavailable` (so callers can retry), else
///   `NotFound`. [`get_answered`](Self::get_answered) also says which store answered;
///   every fallback past the first store is logged at DEBUG.
/// - `list` merges the stores' listings by name; the first store with a name wins.
///   Unavailable stores are left out (logged) as long as one store answers.
/// - Writes, deletes, rewraps and usage go to the first store only, and
///   [`capabilities`](SecretStore::capabilities) are the first store's.
///
/// A secret deleted in the first store is still read from a later one that has it:
/// that is what a fallback is for.
///
/// ```
/// use coffer_store::layer::{EnvStore, FallbackStore};
/// use coffer_store::{MemoryStore, Scope, SecretName};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let env = EnvStore::from_vars([("OPENAI_API_KEY", "sk-from-env")]).for_all_scopes();
/// let store = FallbackStore::new(MemoryStore::new()).or(env);
/// let (secret, answered) = store
///     .get_answered(&Scope::new("t1")?, &SecretName::new("openai_api_key")?, None)
///     .await?;
/// assert_eq!(answered.backend, "env");
/// # Ok(()) }
/// ```
pub struct FallbackStore {
    stores: Vec<Arc<DynSecretStore>>,
}

impl fmt::Debug for FallbackStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FallbackStore")
            .field("stores", &self.stores)
            .finish()
    }
}

fn moves_on(e: &Error) -> bool {
    matches!(e, Error::NotFound { .. } | Error::Unavailable { .. })
}

impl FallbackStore {
    /// A chain of one store; add more with [`or`](Self::or).
    pub fn new(first: impl SecretStore) -> Self {
        Self {
            stores: vec![Arc::new(first)],
        }
    }

    /// A chain of shared stores, asked in order. Empty is a configuration error.
    pub fn from_stores(stores: Vec<Arc<DynSecretStore>>) -> Result<Self> {
        if stores.is_empty() {
            return Err(Error::config("a fallback chain needs at least one store"));
        }
        Ok(Self { stores })
    }

    /// Appends `store` to the chain.
    #[must_use]
    pub fn or(mut self, store: impl SecretStore) -> Self {
        self.stores.push(Arc::new(store));
        self
    }

    /// The stores, in order.
    pub fn stores(&self) -> &[Arc<DynSecretStore>] {
        &self.stores
    }

    fn first(&self) -> &DynSecretStore {
        &*self.stores[0]
    }

    /// Asks each store in turn with `read`.
    async fn chain<'a, T, F, Fut>(&'a self, mut read: F) -> Result<(T, Answered)>
    where
        F: FnMut(&'a DynSecretStore) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut not_found = None;
        let mut unavailable = None;
        for (index, store) in self.stores.iter().enumerate() {
            match read(&**store).await {
                Ok(v) => {
                    let backend = store.backend();
                    if index > 0 {
                        tracing::debug!(index, backend, "coffer fallback: a later store answered");
                    }
                    return Ok((v, Answered { index, backend }));
                }
                Err(e) if moves_on(&e) => {
                    if e.is_transient() {
                        tracing::warn!(index, backend = store.backend(), error = %e, "coffer fallback: store unavailable, trying the next");
                        unavailable.get_or_insert(e);
                    } else {
                        not_found.get_or_insert(e);
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Err(unavailable
            .or(not_found)
            .unwrap_or_else(|| Error::config("a fallback chain needs at least one store")))
    }

    /// [`get`](SecretStore::get), also saying which store answered.
    pub async fn get_answered(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: Option<u64>,
    ) -> Result<(Secret, Answered)> {
        self.chain(|s| s.get(scope, name, version)).await
    }

    /// [`metadata`](SecretStore::metadata), also saying which store answered.
    pub async fn metadata_answered(
        &self,
        scope: &Scope,
        name: &SecretName,
    ) -> Result<(SecretMeta, Answered)> {
        self.chain(|s| s.metadata(scope, name)).await
    }
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl SecretStore for FallbackStore {
    fn backend(&self) -> &'static str {
        self.first().backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.first().capabilities()
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        self.first().put(scope, name, value, options).await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        self.get_answered(scope, name, version)
            .await
            .map(|(s, _)| s)
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.metadata_answered(scope, name).await.map(|(m, _)| m)
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let limit = options.page_size()?;
        let pages =
            futures::future::join_all(self.stores.iter().map(|s| s.list(scope, options))).await;
        let mut merged: std::collections::BTreeMap<SecretName, SecretMeta> = Default::default();
        let mut more = false;
        let mut answered = false;
        let mut unavailable = None;
        for (index, (store, page)) in self.stores.iter().zip(pages).enumerate() {
            match page {
                Ok(page) => {
                    answered = true;
                    more |= page.next_cursor.is_some();
                    for item in page.items {
                        merged.entry(item.name.clone()).or_insert(item);
                    }
                }
                Err(e) if e.is_transient() => {
                    tracing::warn!(index, backend = store.backend(), error = %e, "coffer fallback: store unavailable; left out of the listing");
                    unavailable.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        if !answered && let Some(e) = unavailable {
            return Err(e);
        }
        let mut items: Vec<SecretMeta> = merged.into_values().collect();
        if more && items.len() <= limit {
            // Another page exists in some store: continue after the last name shown.
            let next = items.last().map(|m| m.name.to_string());
            return Ok(ListPage::new(items, next));
        }
        items.truncate(limit + 1);
        Ok(page_of(&mut items, limit))
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        self.first().delete(scope, name, mode).await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        self.first().update_attributes(scope, name, update).await
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        self.first().list_scopes().await
    }

    /// Asks the stores that keep history, in turn; a store without history does not
    /// answer for the others.
    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        if !self.stores.iter().any(|s| s.capabilities().versions) {
            return self.first().versions(scope, name).await;
        }
        self.chain(|s| async move {
            if s.capabilities().versions {
                s.versions(scope, name).await
            } else {
                Err(crate::backend::not_found(scope, name, None))
            }
        })
        .await
        .map(|(versions, _)| versions)
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        // Deleted secrets are the primary's to bring back: writes go there.
        self.first().list_deleted(scope, options).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.first().restore(scope, name).await
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        self.first().rewrap_batch(limit).await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        self.first().key_usage().await
    }

    async fn retire_key(&self, key_id: u32) -> Result<()> {
        self.first().retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        self.first().adopt_untagged_heads().await
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        self.first().record_usage(usage).await
    }
}
