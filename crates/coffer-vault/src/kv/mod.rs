//! The KV store: one [`VaultStore`] over two engines, KV v2 ([`v2`]) and KV v1 ([`v1`]),
//! which differ in how they read, write, delete and list; what they share (paths,
//! sealing, the metadata codec, listing by folders, rewrap) is here.

mod v1;
mod v2;

use base64::Engine as _;
use coffer_store::backend::{not_found, tag_head, verify_head};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use coffer_envelope::{Context, Keyring, from_text, to_text};
use coffer_store::backend::{page_of, put_optimistic};
use coffer_store::{
    AttributeUpdate, Capabilities, DeleteMode, Error, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretKind, SecretMeta, SecretName, SecretStore, VersionInfo,
};
use secrecy::{ExposeSecret as _, SecretString};

use crate::client::{BACKEND, Call, Connection, Failure};
use crate::config::{KvVersion, Layout, VaultConfig};

/// The data field that holds the value (what `bao kv get -field=value` prints).
pub const VALUE_FIELD: &str = "value";
/// Vault limits each `custom_metadata` value to 512 bytes.
const MAX_METADATA_VALUE: usize = 512;

/// A [`SecretStore`] on a HashiCorp Vault or OpenBao KV mount.
///
/// A secret lives at `{mount}/{prefix}/{scope}/{name}` (or where
/// [`VaultConfig::layout`] puts it) with its value in the field [`VALUE_FIELD`] (or
/// [`VaultConfig::field`]), so `bao kv get` and every other Vault client read it as
/// usual. Values are stored as they are unless client-side sealing is on
/// ([`VaultConfig::sealing`], `?seal=true`): Vault encrypts at rest itself. A store
/// without sealing that meets a coffer envelope says so instead of returning it.
///
/// **KV v2** (the default): Vault's versions are coffer's versions; every write is a
/// check-and-set (`cas`) on the version it read, so create-only (`cas=0` semantics),
/// expected-version writes and the version a sealed value is bound to are exact. coffer's
/// metadata is in `custom_metadata` (keys `coffer_*`, each at most 512 bytes). Soft delete
/// is Vault's delete of every live version (undeleted again by the next write, so history
/// comes back as coffer's semantics say); destroy deletes the metadata and all versions.
/// A soft-deleted latest version (Vault answers 404 but keeps metadata) is reported as
/// deleted, never confused with a missing secret.
///
/// With client-side sealing, `custom_metadata` also holds `coffer_mac`, a MAC over it
/// ([`coffer_store::backend::integrity`]), and a soft delete first marks the secret
/// `coffer_deleted` under that MAC, then deletes Vault's versions. Someone with write
/// access to the mount but no key who edits the metadata (`bao kv metadata patch` to
/// clear an expiry or switch a secret back on) is refused as [`Error::Tampered`]; one who
/// undeletes the versions (`bao kv undelete`) finds the secret still deleted. Without
/// sealing there is no key to check with, and Vault's policies are the only guard.
///
/// **KV v1**: no versions, no check-and-set, no soft delete (see [`Capabilities`]); the
/// metadata and a version counter are extra fields beside the value, and create-only is a
/// read before the write, not atomic.
///
/// Errors: sealed, unreachable or timed out is [`Error::Unavailable`] after a bounded
/// retry; 403 is [`Error::PermissionDenied`]. Rotation with [`rewrap_batch`](SecretStore::rewrap_batch)
/// (sealing on) writes the latest value again as a new version under the primary key;
/// older KV v2 versions stay sealed by their old keys.
#[derive(Clone)]
pub struct VaultStore {
    conn: Arc<Connection>,
    engine: &'static dyn Engine,
    layout: Layout,
    /// Serializes this store's attribute edits (Vault has no check-and-set on metadata).
    edits: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("conn", &self.conn)
            .field("kv", &self.conn.config().kv_version)
            .finish()
    }
}

/// A 404 as `None`, any other failure as the store error.
fn optional<T>(result: Result<T, Failure>, what: &str) -> Result<Option<T>> {
    match result {
        Ok(value) => Ok(Some(value)),
        Err(Failure::NotFound) => Ok(None),
        Err(f) => Err(f.into_error(what)),
    }
}

fn millis_of(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| coffer_store::backend::truncate_millis(t.with_timezone(&chrono::Utc)))
}

/// The `custom_metadata` key of the head MAC (with client-side sealing).
const MAC_KEY: &str = "coffer_mac";
/// The `custom_metadata` key coffer's soft delete sets before Vault's delete.
const DELETED_KEY: &str = "coffer_deleted";

/// The state the head MAC covers on Vault: the metadata coffer keeps in
/// `custom_metadata` and whether coffer deleted the secret. Vault's version number and
/// update time are left out: Vault keeps them itself, nobody can set them through the API,
/// and each version's value is an envelope bound to its version number already.
fn mac_state(meta: &SecretMeta) -> SecretMeta {
    let mut state = meta.clone();
    state.version = 0;
    state.updated_at = state.created_at;
    state
}

/// Checks a head's `custom_metadata` against its MAC when values are sealed (a keyring is
/// there to check with); returns whether coffer's soft delete marked it deleted.
fn verify_custom(
    keyring: Option<&coffer_envelope::Keyring>,
    meta: &SecretMeta,
    custom: &HashMap<String, String>,
) -> Result<bool> {
    let deleted = custom.get(DELETED_KEY).is_some_and(|v| v == "true");
    if let Some(keyring) = keyring {
        let tag = match custom.get(MAC_KEY) {
            None => None,
            Some(text) => Some(
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(text)
                    .map_err(|_| Error::Tampered {
                        scope: meta.scope.to_string(),
                        name: meta.name.to_string(),
                        reason: format!("its {MAC_KEY} is not base64url"),
                    })?,
            ),
        };
        verify_head(keyring, &mac_state(meta), deleted, tag.as_deref())?;
    }
    Ok(deleted)
}

fn meta_to_map(
    meta: &SecretMeta,
    deleted: bool,
    keyring: Option<&coffer_envelope::Keyring>,
) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
    if deleted {
        map.insert(DELETED_KEY.to_owned(), "true".to_owned());
    }
    if let Some(keyring) = keyring {
        let tag = tag_head(keyring, &mac_state(meta), deleted);
        map.insert(
            MAC_KEY.to_owned(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag),
        );
    }
    let mut put = |k: &str, v: String| map.insert(k.to_owned(), v);
    if let Some(p) = &meta.provider {
        put("coffer_provider", p.clone());
    }
    put("coffer_kind", meta.kind.as_str().to_owned());
    if let Some(d) = &meta.description {
        // Vault refuses unprintable characters in custom_metadata: keep the description
        // as a JSON string, whose escapes (\n, \t, \u…) are printable.
        put(
            "coffer_description",
            serde_json::to_string(d).unwrap_or_default(),
        );
    }
    if !meta.tags.is_empty() {
        put(
            "coffer_tags",
            serde_json::to_string(&meta.tags).unwrap_or_default(),
        );
    }
    if let Some(e) = &meta.env_name {
        put("coffer_env_name", e.clone());
    }
    if let Some(at) = meta.expires_at {
        put("coffer_expires_at", at.timestamp_millis().to_string());
    }
    put("coffer_active", meta.active.to_string());
    put(
        "coffer_created_at",
        meta.created_at.timestamp_millis().to_string(),
    );
    if let Some((k, _)) = map.iter().find(|(_, v)| v.len() > MAX_METADATA_VALUE) {
        return Err(Error::InvalidInput {
            field: match k.as_str() {
                "coffer_description" => "description",
                "coffer_tags" => "tags",
                _ => "metadata",
            },
            reason: format!("Vault keeps at most {MAX_METADATA_VALUE} bytes per metadata field"),
        });
    }
    Ok(map)
}

fn apply_map(meta: &mut SecretMeta, map: &HashMap<String, String>) {
    let get = |k: &str| map.get(k).cloned();
    meta.provider = get("coffer_provider");
    meta.kind = get("coffer_kind")
        .and_then(|k| k.parse().ok())
        .unwrap_or(SecretKind::Other);
    meta.description = get("coffer_description").map(|d| serde_json::from_str(&d).unwrap_or(d));
    meta.tags = get("coffer_tags")
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default();
    meta.env_name = get("coffer_env_name");
    let ms = |k: &str| {
        get(k)
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis)
    };
    meta.expires_at = ms("coffer_expires_at");
    meta.active = get("coffer_active").is_none_or(|v| v != "false");
    if let Some(created) = ms("coffer_created_at") {
        meta.created_at = created;
    }
}

impl VaultStore {
    /// Connects (and, for AppRole, logs in).
    pub async fn connect(config: VaultConfig) -> Result<Self> {
        let engine: &'static dyn Engine = match config.kv_version {
            KvVersion::V1 => &v1::KvV1,
            _ => &v2::KvV2,
        };
        let layout = Layout::of(&config)?;
        Ok(Self {
            conn: Arc::new(Connection::new(config).await?),
            engine,
            layout,
            edits: Arc::default(),
        })
    }

    /// Connects with values sealed under the keyring kept in the store
    /// ([`VaultKeyring`](crate::VaultKeyring) at `config.keyring_path`), opened with
    /// `kek` (a local [`Kek`](coffer_envelope::Kek) or a [`TransitKek`](crate::TransitKek));
    /// see [`coffer_store::keys`].
    pub async fn connect_shared(
        config: VaultConfig,
        kek: Arc<dyn coffer_envelope::KeyringKek>,
    ) -> Result<coffer_store::keys::KeyringReload<Self>> {
        let storage = Arc::new(crate::VaultKeyring::connect(config.clone()).await?);
        let keys = Arc::new(coffer_store::keys::SharedKeyring::open(storage, kek).await?);
        let store = Self::connect(config.sealing(keys.handle())).await?;
        Ok(coffer_store::keys::KeyringReload::new(store, keys))
    }

    /// From a `vault+http(s)://host:port/mount?prefix=…&kv=1` URL and `VAULT_*` variables
    /// ([`VaultConfig::from_url`]). Values are sealed with `keyring` only when the URL
    /// says `?seal=true` (then a keyring is required); otherwise they are stored as they
    /// are, for every Vault client to read, and `keyring` is not used.
    pub async fn connect_url(
        url: &str,
        keyring: Option<coffer_envelope::KeyringHandle>,
    ) -> Result<Self> {
        let mut config = VaultConfig::from_url(url)?;
        if config.seal {
            config.sealing = Some(keyring.ok_or_else(|| {
                Error::config(
                    "vault: ?seal=true needs a keyring (a keyring file or COFFER_MASTER_KEY)",
                )
            })?);
        }
        Self::connect(config).await
    }

    /// The configuration.
    pub fn config(&self) -> &VaultConfig {
        self.conn.config()
    }

    /// The keyring values are sealed with, if sealing is on.
    fn keyring(&self) -> Option<std::sync::Arc<coffer_envelope::Keyring>> {
        self.conn.config().sealing.as_ref().map(|h| h.current())
    }

    fn mount(&self) -> &str {
        &self.conn.config().mount
    }

    fn path(&self, scope: &Scope, name: &SecretName) -> String {
        format!("{}{name}", self.layout.scope_dir(scope.as_str()))
    }

    /// The data field that holds the value.
    fn field(&self) -> &str {
        &self.conn.config().field
    }

    fn seal(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: u64,
        value: &SecretString,
    ) -> SecretString {
        match self.keyring() {
            Some(keyring) => {
                let ctx = Context::new(scope.as_str(), name.as_str()).with_version(version);
                SecretString::from(to_text(
                    &keyring.seal(value.expose_secret().as_bytes(), &ctx),
                ))
            }
            None => value.clone(),
        }
    }

    fn unseal(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: u64,
        stored: SecretString,
    ) -> Result<(SecretString, Option<u32>)> {
        let Some(keyring) = self.keyring() else {
            if from_text(stored.expose_secret()).is_ok() {
                return Err(Error::config(format!(
                    "vault: {scope}/{name} holds a coffer envelope (cf1.…): this store was \
                     written with client-side sealing; open it with ?seal=true and its keyring"
                )));
            }
            return Ok((stored, None));
        };
        let crypto = |source| Error::Crypto {
            scope: scope.to_string(),
            name: name.to_string(),
            source,
        };
        let sealed = from_text(stored.expose_secret()).map_err(crypto)?;
        let ctx = Context::new(scope.as_str(), name.as_str()).with_version(version);
        let value = keyring.open_string(&sealed, &ctx).map_err(crypto)?;
        Ok((value, keyring.key_id_of(&sealed).ok()))
    }

    /// Runs one request on `path` of this store's mount; `call` gets owned copies of the
    /// mount and the path, so its future borrows only the client.
    async fn at<T, F>(&self, path: &str, call: F) -> Result<T, Failure>
    where
        F: for<'a> Fn(&'a vaultrs::client::VaultClient, String, String) -> Call<'a, T>,
    {
        let (mount, path) = (self.mount().to_owned(), path.to_owned());
        self.conn
            .run(move |c| call(c, mount.clone(), path.clone()))
            .await
    }

    /// `stored` (the value field as read) unsealed into the [`Secret`] of `meta`.
    fn open_stored(&self, mut meta: SecretMeta, stored: &str) -> Result<Secret> {
        let (value, key_id) = self.unseal(
            &meta.scope,
            &meta.name,
            meta.version,
            SecretString::from(stored.to_owned()),
        )?;
        meta.key_id = key_id;
        Ok(Secret { value, meta })
    }

    /// Every name under `{prefix}/{scope}/`, sorted (Vault lists one folder at a time).
    async fn names(&self, dir: String) -> Result<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let keys = self.engine.list(self, &format!("{dir}{folder}")).await;
            let keys = match keys {
                Ok(k) => k,
                Err(Failure::NotFound) => continue,
                Err(f) => return Err(f.into_error(&format!("list {dir}"))),
            };
            for key in keys {
                if key.ends_with('/') {
                    folders.push(format!("{folder}{key}"));
                } else {
                    names.insert(format!("{folder}{key}"));
                }
            }
        }
        Ok(names)
    }
}

impl VaultStore {
    /// Every scope folder of the layout, sorted, with the names in it that are coffer
    /// names (other paths are left alone).
    async fn every_secret(&self) -> Result<Vec<(Scope, Vec<SecretName>)>> {
        let before = &self.layout.before;
        let top = match self.engine.list(self, before).await {
            Ok(keys) => keys,
            Err(Failure::NotFound) => return Ok(Vec::new()),
            Err(f) => return Err(f.into_error(&format!("list {before}"))),
        };
        let mut all = Vec::new();
        for folder in top {
            let Some(Ok(scope)) = folder.strip_suffix('/').map(Scope::new) else {
                continue;
            };
            let names = self
                .names(self.layout.scope_dir(scope.as_str()))
                .await?
                .into_iter()
                .filter_map(|n| SecretName::new(n).ok())
                .collect();
            all.push((scope, names));
        }
        all.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(all)
    }
}

/// The secret an engine call is about.
#[derive(Debug, Clone, Copy)]
struct Key<'a> {
    scope: &'a Scope,
    name: &'a SecretName,
}

/// One write an engine attempts.
#[derive(Debug, Clone, Copy)]
struct Put<'a> {
    key: Key<'a>,
    value: &'a SecretString,
    options: &'a PutOptions,
}

/// What KV v1 and KV v2 do differently. The store holds one engine for its mount's
/// version and dispatches to it; everything else is shared.
#[async_trait]
trait Engine: Send + Sync {
    /// What the store can do on this engine, with client-side sealing on or off.
    fn capabilities(&self, sealing: bool) -> Capabilities;
    /// One write attempt: `Ok(None)` when a check-and-set lost a race (retried by
    /// [`put_optimistic`]).
    async fn try_put(&self, kv: &VaultStore, put: Put<'_>) -> Result<Option<SecretMeta>>;
    /// A version (the latest with `None`), readable or an error.
    async fn get(&self, kv: &VaultStore, key: Key<'_>, version: Option<u64>) -> Result<Secret>;
    /// The latest version's metadata.
    async fn metadata(&self, kv: &VaultStore, key: Key<'_>) -> Result<SecretMeta>;
    /// A soft delete or a destroy.
    async fn delete(&self, kv: &VaultStore, key: Key<'_>, mode: DeleteMode) -> Result<()>;
    /// The keys of one folder (`name` or `folder/`).
    async fn list(&self, kv: &VaultStore, folder: &str) -> Result<Vec<String>, Failure>;
    /// Edits the metadata without a new version ([`SecretStore::update_attributes`]).
    async fn update_attributes(
        &self,
        kv: &VaultStore,
        key: Key<'_>,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta>;
    /// Every version kept of a live secret ([`SecretStore::versions`]).
    async fn versions(&self, kv: &VaultStore, key: Key<'_>) -> Result<Vec<VersionInfo>> {
        let _ = (kv, key);
        Err(Error::Unsupported {
            backend: BACKEND,
            operation: "listing versions on KV v1",
        })
    }
    /// The metadata of a soft-deleted secret; `None` when it is live or not there.
    async fn deleted(&self, kv: &VaultStore, key: Key<'_>) -> Result<Option<SecretMeta>> {
        let _ = (kv, key);
        Err(Error::Unsupported {
            backend: BACKEND,
            operation: "listing deleted secrets on KV v1",
        })
    }
    /// Brings back a soft-deleted secret ([`SecretStore::restore`]).
    async fn restore(&self, kv: &VaultStore, key: Key<'_>) -> Result<SecretMeta> {
        let _ = (kv, key);
        Err(Error::Unsupported {
            backend: BACKEND,
            operation: "restoring deleted secrets on KV v1",
        })
    }
    /// Gives the head a MAC of its current state if it has none; whether it did.
    async fn adopt(&self, kv: &VaultStore, key: Key<'_>, keyring: &Keyring) -> Result<bool>;
}

impl VaultStore {
    /// One page of the scope's live (or, with `deleted`, soft-deleted) secrets: Vault lists
    /// names, so each one's head is read.
    async fn page(&self, scope: &Scope, options: &ListOptions, deleted: bool) -> Result<ListPage> {
        options.validate()?;
        let limit = options.page_size()?;
        let prefix = options.prefix.as_deref().unwrap_or("");
        let names = self.names(self.layout.scope_dir(scope.as_str())).await?;
        let mut items = Vec::new();
        for full in names.iter().filter(|n| {
            n.starts_with(prefix) && options.cursor.as_deref().is_none_or(|c| n.as_str() > c)
        }) {
            let Ok(name) = SecretName::new(full.clone()) else {
                continue;
            };
            let meta = if deleted {
                self.engine
                    .deleted(self, Key { scope, name: &name })
                    .await?
            } else {
                match self.metadata(scope, &name).await {
                    Ok(meta) => Some(meta),
                    Err(e) if e.is_not_found() => None,
                    Err(e) => return Err(e),
                }
            };
            match meta {
                Some(meta) if options.matches(&meta) => items.push(meta),
                _ => continue,
            }
            if items.len() > limit {
                break;
            }
        }
        Ok(page_of(&mut items, limit))
    }
}

#[async_trait]
impl SecretStore for VaultStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        self.engine
            .capabilities(self.conn.config().sealing.is_some())
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        let key = Key { scope, name };
        let put = Put {
            key,
            value,
            options,
        };
        put_optimistic(BACKEND, scope, name, value, options, || {
            self.engine.try_put(self, put)
        })
        .await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        self.engine.get(self, Key { scope, name }, version).await
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.engine.metadata(self, Key { scope, name }).await
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.page(scope, options, false).await
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        self.engine.versions(self, Key { scope, name }).await
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        if !self.capabilities().soft_delete {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "listing deleted secrets on KV v1",
            });
        }
        self.page(scope, options, true).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let _one_at_a_time = self.edits.lock().await;
        self.engine.restore(self, Key { scope, name }).await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        update.validate()?;
        let _one_at_a_time = self.edits.lock().await;
        self.engine
            .update_attributes(self, Key { scope, name }, update)
            .await
    }

    /// The folders where the layout puts scopes, each that still has a live secret.
    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        let mut scopes = Vec::new();
        for (scope, names) in self.every_secret().await? {
            for name in names {
                match self.metadata(&scope, &name).await {
                    Ok(_) => {
                        scopes.push(scope);
                        break;
                    }
                    Err(e) if e.is_not_found() => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(scopes)
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        self.engine.delete(self, Key { scope, name }, mode).await
    }

    /// Every secret under the prefix whose metadata has no `coffer_mac`. Vault offers
    /// no check-and-set on metadata, so run it while nothing else writes the mount.
    async fn adopt_untagged_heads(&self) -> Result<u64> {
        let Some(keyring) = self.keyring() else {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "adopting heads without client-side sealing",
            });
        };
        let mut adopted = 0;
        for (scope, names) in self.every_secret().await? {
            for name in names {
                let key = Key {
                    scope: &scope,
                    name: &name,
                };
                adopted += u64::from(self.engine.adopt(self, key, &keyring).await?);
            }
        }
        Ok(adopted)
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        let Some(keyring) = self.keyring() else {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "rewrap without client-side sealing",
            });
        };
        let all: Vec<(Scope, SecretName)> = self
            .every_secret()
            .await?
            .into_iter()
            .flat_map(|(scope, names)| names.into_iter().map(move |n| (scope.clone(), n)))
            .collect();
        let mut rewrapped = 0;
        let mut remaining = 0;
        for (scope, name) in all {
            let secret = match self.get(&scope, &name, None).await {
                Ok(s) => s,
                Err(Error::NotFound { .. } | Error::Expired { .. } | Error::Inactive { .. }) => {
                    continue;
                }
                Err(e) => return Err(e),
            };
            if secret.meta.key_id == Some(keyring.primary_id()) {
                continue;
            }
            if rewrapped >= limit as u64 {
                remaining += 1;
                continue;
            }
            match self
                .put(
                    &scope,
                    &name,
                    &secret.value,
                    &PutOptions::if_version(secret.meta.version),
                )
                .await
            {
                Ok(_) => rewrapped += 1,
                // Written meanwhile: the new value is sealed with the primary already.
                Err(Error::Conflict { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(RewrapBatch::new(rewrapped, remaining))
    }
}
