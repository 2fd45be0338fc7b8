use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::{
    AttributeUpdate, Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions,
    Result, RewrapBatch, Scope, Secret, SecretKind, SecretMeta, SecretName, Usage, VersionInfo,
};

/// A place that keeps secrets: the one trait every backend and every layer implements.
///
/// The trait holds only what a backend must write; conveniences are in
/// [`SecretStoreExt`], implemented for every store. All methods take `&self`: stores are
/// shared (`Arc<dyn SecretStore>`) across tasks.
///
/// Semantics every implementation keeps, and the conformance suite of `coffer-testkit` checks:
/// - versions start at 1 and grow by one per write, also across a soft delete;
/// - `get` of an expired or inactive secret is an error, never a value;
/// - a soft-deleted secret is invisible to `get`, `metadata` and `list`;
/// - one scope never sees another scope's secrets.
///
/// ```
/// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
/// use secrecy::ExposeSecret;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let store = MemoryStore::new();
/// let scope = Scope::new("tenant-a")?;
/// let name = SecretName::new("openai_api_key")?;
/// let meta = store.put(&scope, &name, &"sk-example".into(), &PutOptions::create_only()).await?;
/// assert_eq!(meta.version, 1);
/// let secret = store.get(&scope, &name, None).await?;
/// assert_eq!(secret.value.expose_secret(), "sk-example");
/// # Ok(()) }
/// ```
#[async_trait]
pub trait SecretStore: fmt::Debug + Send + Sync + 'static {
    /// A short name of the backend (`memory`, `sqlite`, …) for errors and logs.
    fn backend(&self) -> &'static str;

    /// What this backend can do.
    fn capabilities(&self) -> Capabilities;

    /// Writes a new version of `name` and returns the secret's metadata after the write.
    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta>;

    /// Reads the latest version, or version `version`.
    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret>;

    /// Reads the metadata of the latest version, also of an expired or inactive secret.
    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta>;

    /// One page of the scope's live secrets, ordered by name.
    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage>;

    /// Deletes a secret (see [`DeleteMode`]).
    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()>;

    /// Edits a live secret's metadata (active, expiry, tags, description, env name,
    /// provider, kind) without writing a new value version, and returns the metadata
    /// after the edit: the version stays, `updated_at` moves. Works on an expired or
    /// inactive secret (that is how one is renewed or reactivated). Atomic against
    /// concurrent writes of the same secret: an edit is never lost, nor does it undo one.
    /// (Vault has no check-and-set on KV v2 metadata or KV v1 secrets: there edits
    /// through one store are serialized, and an edit from another client at the same
    /// moment can be lost.)
    ///
    /// Backends that cannot ([`Capabilities::update_attributes`] is false) answer
    /// [`Error::Unsupported`].
    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        let _ = (scope, name, update);
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "editing metadata without a new version",
        })
    }

    /// Every version the store keeps of a live secret (also an expired or inactive
    /// one), oldest first, never a value. Backends without history
    /// ([`Capabilities::versions`] is false) answer [`Error::Unsupported`].
    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let _ = (scope, name);
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "listing versions",
        })
    }

    /// One page of the scope's soft-deleted secrets, ordered by name, with the metadata
    /// they had when deleted; `options` filter and page as for [`list`](Self::list).
    /// Backends without soft delete ([`Capabilities::soft_delete`] is false) answer
    /// [`Error::Unsupported`].
    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        let _ = (scope, options);
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "listing deleted secrets",
        })
    }

    /// Brings back a soft-deleted secret as it was deleted: its versions, values and
    /// metadata, readable again; returns its metadata. Restoring a live secret changes
    /// nothing and returns its metadata (so a retried restore succeeds); a name with no
    /// secret, live or deleted, is [`Error::NotFound`]. A put over a deleted name
    /// already brings it back, with a new version. Backends without soft delete
    /// ([`Capabilities::soft_delete`] is false) answer [`Error::Unsupported`].
    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let _ = (scope, name);
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "restoring deleted secrets",
        })
    }

    /// The scopes that hold at least one live secret, in order. Backends that cannot
    /// ([`Capabilities::list_scopes`] is false) answer [`Error::Unsupported`].
    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "listing scopes",
        })
    }

    /// Moves up to `limit` stored envelopes that are not under the keyring's primary key
    /// onto it, each with a check-and-set so no concurrent write is overwritten. Call it
    /// until [`RewrapBatch::remaining`] is 0 (or use [`SecretStoreExt::rewrap_all`]);
    /// it resumes wherever an earlier, interrupted run stopped.
    ///
    /// Stores that do not seal answer [`Error::Unsupported`].
    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        let _ = limit;
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "rewrap",
        })
    }

    /// Which keys the stored envelopes and head MACs are under, ascending by key id,
    /// each key once. A key that appears nowhere here can be removed from the keyring
    /// without losing anything (`coffer keys retire`).
    ///
    /// Answered only by stores that can count every version they keep; others answer
    /// [`Error::Unsupported`], and a key must then be kept.
    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "counting key usage",
        })
    }

    /// Retires key `key_id` in the store: refused while anything is under it (see
    /// [`key_usage`](Self::key_usage)), and from then on no write under it is accepted,
    /// from any instance, so a stale keyring elsewhere fails instead of sealing what no
    /// current keyring opens. Idempotent. The key's material is then removed from the
    /// keyring by its owner (`Keyring::remove`).
    ///
    /// Stores that cannot enforce it answer [`Error::Unsupported`].
    async fn retire_key(&self, key_id: u32) -> Result<()> {
        let _ = key_id;
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "retiring a key",
        })
    }

    /// Gives every head that has no MAC (written by a coffer before it authenticated
    /// metadata) the MAC of its state as it is now, and returns how many it tagged. Every
    /// read of such a head is refused as [`Error::Tampered`] until then. Run it once,
    /// right after the upgrade, and only on a store no one else could have written in
    /// between: a head whose MAC someone removed is adopted too. `coffer keys migrate`.
    ///
    /// Stores that keep no head MACs answer [`Error::Unsupported`].
    async fn adopt_untagged_heads(&self) -> Result<u64> {
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "adopting heads without a MAC",
        })
    }

    /// Adds reads to the secrets' `usage_count` and moves `last_used_at` forward, without
    /// touching versions, values or `updated_at`. Records of deleted or unknown secrets
    /// are skipped. The usage layer (`layer::UsageStore`, feature `usage`) calls it in batches.
    ///
    /// Stores that keep no usage answer [`Error::Unsupported`].
    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        let _ = usage;
        Err(Error::Unsupported {
            backend: self.backend(),
            operation: "usage tracking",
        })
    }
}

/// `dyn SecretStore`, the type behind most handles.
pub type DynSecretStore = dyn SecretStore;

/// Conveniences over [`SecretStore`], for every store.
#[async_trait]
pub trait SecretStoreExt: SecretStore {
    /// The latest version.
    async fn get_latest(&self, scope: &Scope, name: &SecretName) -> Result<Secret> {
        self.get(scope, name, None).await
    }

    /// Whether a live secret has this name (expired and inactive ones count).
    async fn exists(&self, scope: &Scope, name: &SecretName) -> Result<bool> {
        match self.metadata(scope, name).await {
            Ok(_) => Ok(true),
            Err(e) if e.is_not_found() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every page of a listing, collected.
    async fn list_all(&self, scope: &Scope, prefix: Option<&str>) -> Result<Vec<SecretMeta>> {
        let mut options = ListOptions::new();
        options.prefix = prefix.map(ToOwned::to_owned);
        self.list_matching(scope, &options).await
    }

    /// Every page of a listing with `options`' filters, collected (its limit and cursor
    /// are ignored).
    async fn list_matching(&self, scope: &Scope, options: &ListOptions) -> Result<Vec<SecretMeta>> {
        every_page(options, |page| async move { self.list(scope, &page).await }).await
    }

    /// Every soft-deleted secret of the scope matching `options`' filters, collected
    /// (its limit and cursor are ignored).
    async fn list_deleted_all(
        &self,
        scope: &Scope,
        options: &ListOptions,
    ) -> Result<Vec<SecretMeta>> {
        every_page(options, |page| async move {
            self.list_deleted(scope, &page).await
        })
        .await
    }

    /// Writes version `to`'s value again as a new version (as Vault's `kv rollback`
    /// does), with a check-and-set on the latest version read, so a write that lands in
    /// between is never overwritten ([`Error::Conflict`]: run it again). The secret's
    /// metadata stays as it is (metadata belongs to the secret, not to a version), and
    /// version `to` must be readable: an expired or inactive secret is renewed or
    /// reactivated first ([`update_attributes`](SecretStore::update_attributes)).
    ///
    /// ```
    /// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore, SecretStoreExt};
    /// use secrecy::ExposeSecret;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
    /// let store = MemoryStore::new();
    /// let (scope, name) = (Scope::new("user-42")?, SecretName::new("github_token")?);
    /// store.put(&scope, &name, &"ghp-old".into(), &PutOptions::new()).await?;
    /// store.put(&scope, &name, &"ghp-broken".into(), &PutOptions::new()).await?;
    /// let meta = store.rollback(&scope, &name, 1).await?;
    /// assert_eq!(meta.version, 3);
    /// assert_eq!(store.get(&scope, &name, None).await?.value.expose_secret(), "ghp-old");
    /// # Ok(()) }
    /// ```
    async fn rollback(&self, scope: &Scope, name: &SecretName, to: u64) -> Result<SecretMeta> {
        let latest = self.metadata(scope, name).await?.version;
        let old = self.get(scope, name, Some(to)).await?;
        self.put(scope, name, &old.value, &PutOptions::if_version(latest))
            .await
    }

    /// The one active secret of `provider` (and `kind`, when given) in `scope`, e.g. "the
    /// user's OpenAI API key": [`Error::NoMatch`] when there is none, [`Error::Ambiguous`]
    /// (naming them) when there are several. Reads its value, so an expired one is
    /// [`Error::Expired`].
    ///
    /// ```
    /// use coffer_store::{MemoryStore, PutOptions, Scope, SecretKind, SecretName, SecretStore, SecretStoreExt};
    /// use secrecy::ExposeSecret;
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
    /// let store = MemoryStore::new();
    /// let user = Scope::new("user-42")?;
    /// let options = PutOptions::new().provider("openai").kind(SecretKind::ApiKey);
    /// store.put(&user, &SecretName::new("main_key")?, &"sk-example".into(), &options).await?;
    /// let key = store.find(&user, "openai", Some(SecretKind::ApiKey)).await?;
    /// assert_eq!(key.value.expose_secret(), "sk-example");
    /// # Ok(()) }
    /// ```
    async fn find(
        &self,
        scope: &Scope,
        provider: &str,
        kind: Option<SecretKind>,
    ) -> Result<Secret> {
        let mut options = ListOptions::new().provider(provider).active(true);
        options.kind = kind;
        let what = match kind {
            Some(kind) => format!("provider {provider}, kind {kind}"),
            None => format!("provider {provider}"),
        };
        let mut found = self.list_matching(scope, &options).await?;
        match found.len() {
            0 => Err(Error::NoMatch {
                scope: scope.to_string(),
                what,
            }),
            1 => {
                let meta = found.remove(0);
                self.get(scope, &meta.name, None).await
            }
            _ => Err(Error::Ambiguous {
                scope: scope.to_string(),
                what,
                names: found.into_iter().map(|m| m.name.to_string()).collect(),
            }),
        }
    }

    /// The scope's secrets whose `expires_at` falls within `within` from now, soonest
    /// first, including those already expired (they need attention too).
    async fn expiring_within(
        &self,
        scope: &Scope,
        within: std::time::Duration,
    ) -> Result<Vec<SecretMeta>> {
        let horizon = chrono::Duration::from_std(within)
            .ok()
            .and_then(|d| chrono::Utc::now().checked_add_signed(d))
            .unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
        let mut soon: Vec<SecretMeta> = self
            .list_all(scope, None)
            .await?
            .into_iter()
            .filter(|m| m.expires_at.is_some_and(|at| at <= horizon))
            .collect();
        soon.sort_by_key(|m| m.expires_at);
        Ok(soon)
    }

    /// Moves every item onto the primary key in batches of `batch`, calling
    /// `progress(done, total)` (in items) after each batch. Returns the sums of all
    /// batches, with [`RewrapBatch::remaining`] as the last batch left it (0 unless
    /// items could not be moved, e.g. rows changed by writers all along).
    async fn rewrap_all(
        &self,
        batch: usize,
        progress: &mut (dyn FnMut(u64, u64) + Send),
    ) -> Result<RewrapBatch> {
        let mut total = RewrapBatch::default();
        loop {
            let step = self.rewrap_batch(batch).await?;
            total.rewrapped += step.rewrapped;
            total.retagged += step.retagged;
            total.remaining = step.remaining;
            progress(total.moved(), total.moved() + step.remaining);
            if step.remaining == 0 || step.moved() == 0 {
                return Ok(total);
            }
        }
    }
}

impl<T: SecretStore + ?Sized> SecretStoreExt for T {}

/// Every page of a listing with `options`' filters (its limit and cursor ignored): each
/// page asked of `list`, collected.
async fn every_page<F, Fut>(options: &ListOptions, mut list: F) -> Result<Vec<SecretMeta>>
where
    F: FnMut(ListOptions) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage>>,
{
    let mut options = options.clone().limit(crate::MAX_PAGE_SIZE);
    options.cursor = None;
    let mut all = Vec::new();
    loop {
        let page = list(options.clone()).await?;
        all.extend(page.items);
        match page.next_cursor {
            Some(cursor) => options.cursor = Some(cursor),
            None => return Ok(all),
        }
    }
}

macro_rules! forward_store {
    ($($ptr:ident),*) => {$(
        #[async_trait]
        #[deny(clippy::missing_trait_methods)]
        impl<T: SecretStore + ?Sized> SecretStore for $ptr<T> {
            fn backend(&self) -> &'static str {
                (**self).backend()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn put(
                &self,
                scope: &Scope,
                name: &SecretName,
                value: &SecretString,
                options: &PutOptions,
            ) -> Result<SecretMeta> {
                (**self).put(scope, name, value, options).await
            }
            async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
                (**self).get(scope, name, version).await
            }
            async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
                (**self).metadata(scope, name).await
            }
            async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
                (**self).list(scope, options).await
            }
            async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
                (**self).delete(scope, name, mode).await
            }
            async fn update_attributes(
                &self,
                scope: &Scope,
                name: &SecretName,
                update: &AttributeUpdate,
            ) -> Result<SecretMeta> {
                (**self).update_attributes(scope, name, update).await
            }
            async fn list_scopes(&self) -> Result<Vec<Scope>> {
                (**self).list_scopes().await
            }
            async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
                (**self).versions(scope, name).await
            }
            async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
                (**self).list_deleted(scope, options).await
            }
            async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
                (**self).restore(scope, name).await
            }
            async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
                (**self).rewrap_batch(limit).await
            }
            async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
                (**self).key_usage().await
            }
            async fn retire_key(&self, key_id: u32) -> Result<()> {
                (**self).retire_key(key_id).await
            }
            async fn adopt_untagged_heads(&self) -> Result<u64> {
                (**self).adopt_untagged_heads().await
            }
            async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
                (**self).record_usage(usage).await
            }
        }
    )*};
}
forward_store!(Arc, Box);
