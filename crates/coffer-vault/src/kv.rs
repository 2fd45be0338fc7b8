//! The KV store (v2 and v1).

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use async_trait::async_trait;
use coffer_envelope::{Context, from_text, to_text};
use coffer_store::backend::{check_condition, now, page_of, put_optimistic};
use coffer_store::{
    Capabilities, DeleteMode, Error, ListOptions, ListPage, PutOptions, Result, RewrapBatch, Scope,
    Secret, SecretKind, SecretMeta, SecretName, SecretStore,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;
use vaultrs::api::kv2::requests::{
    ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequestOptions,
};
use vaultrs::api::kv2::responses::{ReadSecretMetadataResponse, ReadSecretResponse};

use crate::client::{BACKEND, Call, Connection, Failure};
use crate::config::{KvVersion, VaultConfig};

/// The data field that holds the value (what `bao kv get -field=value` prints).
pub const VALUE_FIELD: &str = "value";
/// Vault limits each `custom_metadata` value to 512 bytes.
const MAX_METADATA_VALUE: usize = 512;

/// A [`SecretStore`] on a HashiCorp Vault or OpenBao KV mount.
///
/// A secret lives at `{mount}/{prefix}/{scope}/{name}` with its value in the field
/// [`VALUE_FIELD`], so `bao kv get` and every other Vault client read it as usual.
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
}

impl std::fmt::Debug for VaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultStore")
            .field("conn", &self.conn)
            .finish()
    }
}

fn not_found(scope: &Scope, name: &SecretName, version: Option<u64>) -> Error {
    Error::NotFound {
        scope: scope.to_string(),
        name: name.to_string(),
        version,
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

fn meta_to_map(meta: &SecretMeta) -> Result<HashMap<String, String>> {
    let mut map = HashMap::new();
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

/// What KV v2 metadata says about the latest version.
struct Head {
    current: u64,
    live: bool,
    custom: HashMap<String, String>,
    created: Option<chrono::DateTime<chrono::Utc>>,
    updated: Option<chrono::DateTime<chrono::Utc>>,
    deleted_versions: Vec<u64>,
    live_versions: Vec<u64>,
}

impl Head {
    fn from_response(md: ReadSecretMetadataResponse) -> Self {
        let current = md.current_version;
        let mut deleted_versions = Vec::new();
        let mut live_versions = Vec::new();
        for (v, info) in &md.versions {
            let Ok(v) = v.parse::<u64>() else { continue };
            if info.destroyed {
                continue;
            }
            if info.deletion_time.is_empty() {
                live_versions.push(v);
            } else {
                deleted_versions.push(v);
            }
        }
        let live = live_versions.contains(&current);
        Self {
            current,
            live,
            custom: md.custom_metadata.unwrap_or_default(),
            created: millis_of(&md.created_time),
            updated: millis_of(&md.updated_time),
            deleted_versions,
            live_versions,
        }
    }

    fn meta(&self, scope: &Scope, name: &SecretName) -> SecretMeta {
        let mut meta = SecretMeta::new(scope.clone(), name.clone(), &Default::default());
        if let Some(c) = self.created {
            meta.created_at = c;
        }
        if let Some(u) = self.updated {
            meta.updated_at = u;
        }
        apply_map(&mut meta, &self.custom);
        meta.version = self.current;
        meta
    }
}

impl VaultStore {
    /// Connects (and, for AppRole, logs in).
    pub async fn connect(config: VaultConfig) -> Result<Self> {
        Ok(Self {
            conn: Arc::new(Connection::new(config).await?),
        })
    }

    /// From a `vault+http(s)://host:port/mount?prefix=…&kv=1` URL and `VAULT_*` variables.
    pub async fn connect_url(
        url: &str,
        sealing: Option<Arc<coffer_envelope::Keyring>>,
    ) -> Result<Self> {
        let mut config = VaultConfig::from_url(url)?;
        config.sealing = sealing;
        Self::connect(config).await
    }

    /// The configuration.
    pub fn config(&self) -> &VaultConfig {
        self.conn.config()
    }

    fn mount(&self) -> &str {
        &self.conn.config().mount
    }

    fn base(&self) -> String {
        let prefix = &self.conn.config().prefix;
        if prefix.is_empty() {
            String::new()
        } else {
            format!("{prefix}/")
        }
    }

    fn path(&self, scope: &Scope, name: &SecretName) -> String {
        format!("{}{scope}/{name}", self.base())
    }

    fn v1(&self) -> bool {
        self.conn.config().kv_version == KvVersion::V1
    }

    fn seal(
        &self,
        scope: &Scope,
        name: &SecretName,
        version: u64,
        value: &SecretString,
    ) -> SecretString {
        match &self.conn.config().sealing {
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
        let Some(keyring) = &self.conn.config().sealing else {
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

    async fn head(&self, path: &str) -> Result<Option<Head>> {
        optional(
            self.at(path, |c, mount, p| {
                Box::pin(async move { vaultrs::kv2::read_metadata(c, &mount, &p).await })
            })
            .await
            .map(Head::from_response),
            path,
        )
    }

    async fn read_v1(&self, path: &str) -> Result<Option<serde_json::Map<String, Value>>> {
        optional(
            self.at(path, |c, mount, p| {
                Box::pin(async move { vaultrs::kv1::get_raw(c, &mount, &p).await })
            })
            .await
            .map(|res| res.data.as_object().cloned().unwrap_or_default()),
            path,
        )
    }

    fn meta_from_v1(
        scope: &Scope,
        name: &SecretName,
        data: &serde_json::Map<String, Value>,
    ) -> SecretMeta {
        let map: HashMap<String, String> = data
            .iter()
            .filter(|(k, _)| k.starts_with("coffer_"))
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect();
        let mut meta = SecretMeta::new(scope.clone(), name.clone(), &Default::default());
        apply_map(&mut meta, &map);
        meta.version = map
            .get("coffer_version")
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        if let Some(u) = map
            .get("coffer_updated_at")
            .and_then(|v| v.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis)
        {
            meta.updated_at = u;
        }
        meta
    }

    async fn put_v1(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        let path = self.path(scope, name);
        let current = self.read_v1(&path).await?;
        let mut meta = match &current {
            Some(data) => Self::meta_from_v1(scope, name, data),
            None => SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
        };
        check_condition(
            scope,
            name,
            options.condition,
            current.as_ref().map(|_| meta.version),
        )?;
        if current.is_some() {
            meta.version += 1;
            meta.updated_at = now();
            options.attributes.apply(&mut meta);
        }
        meta.key_id = self.conn.config().sealing.as_ref().map(|k| k.primary_id());
        let stored = self.seal(scope, name, meta.version, value);
        let mut map = meta_to_map(&meta)?;
        map.insert("coffer_version".into(), meta.version.to_string());
        map.insert(
            "coffer_updated_at".into(),
            meta.updated_at.timestamp_millis().to_string(),
        );
        let mount = self.mount().to_owned();
        self.conn
            .run(move |c| {
                let mount = mount.clone();
                let path = path.clone();
                let mut owned = map.clone();
                owned.insert(VALUE_FIELD.to_owned(), stored.expose_secret().to_owned());
                Box::pin(async move {
                    let data: HashMap<&str, &str> = owned
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    vaultrs::kv1::set(c, &mount, &path, &data).await
                })
            })
            .await
            .map_err(|f| f.into_error(&format!("{scope}/{name}")))?;
        Ok(meta)
    }

    /// One optimistic KV v2 write; `Ok(None)` when the `cas` lost a race.
    async fn try_put_v2(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<Option<SecretMeta>> {
        let path = self.path(scope, name);
        let head = self.head(&path).await?;
        let live = head
            .as_ref()
            .filter(|h| h.live && h.current > 0)
            .map(|h| h.current);
        check_condition(scope, name, options.condition, live)?;
        let current = head.as_ref().map_or(0, |h| h.current);
        let (mut meta, old_custom) = match &head {
            Some(h) if h.current > 0 => {
                let mut m = h.meta(scope, name);
                options.attributes.apply(&mut m);
                (m, Some(h.custom.clone()))
            }
            _ => (
                SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
                None,
            ),
        };
        meta.version = current + 1;
        meta.updated_at = now();
        meta.key_id = self.conn.config().sealing.as_ref().map(|k| k.primary_id());
        let custom = meta_to_map(&meta)?;
        let stored = self.seal(scope, name, meta.version, value);
        let cas = u32::try_from(current)
            .map_err(|_| Error::backend(BACKEND, "version beyond Vault's cas range"))?;
        let mount = self.mount().to_owned();
        let p = path.clone();
        let written = self
            .conn
            .run(move |c| {
                let (mount, p) = (mount.clone(), p.clone());
                let data = serde_json::json!({ VALUE_FIELD: stored.expose_secret() });
                Box::pin(async move {
                    vaultrs::kv2::set_with_options(
                        c,
                        &mount,
                        &p,
                        &data,
                        SetSecretRequestOptions { cas },
                    )
                    .await
                })
            })
            .await;
        let version = match written {
            Ok(v) => v.version,
            Err(Failure::CasMismatch) => return Ok(None),
            Err(f) => return Err(f.into_error(&format!("{scope}/{name}"))),
        };
        meta.version = version;
        if old_custom.as_ref() != Some(&custom) {
            self.at(&path, move |c, mount, p| {
                let mut req = SetSecretMetadataRequest::builder();
                req.custom_metadata(custom.clone());
                Box::pin(
                    async move { vaultrs::kv2::set_metadata(c, &mount, &p, Some(&mut req)).await },
                )
            })
            .await
            .map_err(|f| f.into_error(&format!("{scope}/{name} metadata")))?;
        }
        // A write after a soft delete brings the history back (coffer's semantics).
        if let Some(h) = head.filter(|h| !h.live && !h.deleted_versions.is_empty()) {
            self.at(&path, move |c, mount, p| {
                let versions = h.deleted_versions.clone();
                Box::pin(
                    async move { vaultrs::kv2::undelete_versions(c, &mount, &p, versions).await },
                )
            })
            .await
            .map_err(|f| f.into_error(&format!("{scope}/{name} undelete")))?;
        }
        Ok(Some(meta))
    }

    /// Every name under `{prefix}/{scope}/`, sorted (Vault lists one folder at a time).
    async fn names(&self, dir: String) -> Result<BTreeSet<String>> {
        let mut names = BTreeSet::new();
        let mut folders = vec![String::new()];
        while let Some(folder) = folders.pop() {
            let mount = self.mount().to_owned();
            let full = format!("{dir}{folder}");
            let v1 = self.v1();
            let keys = self
                .conn
                .run(move |c| {
                    let (mount, full) = (mount.clone(), full.clone());
                    Box::pin(async move {
                        if v1 {
                            vaultrs::kv1::list(c, &mount, &full)
                                .await
                                .map(|r| r.data.keys)
                        } else {
                            vaultrs::kv2::list(c, &mount, &full).await
                        }
                    })
                })
                .await;
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

#[async_trait]
impl SecretStore for VaultStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        let sealing = self.conn.config().sealing.is_some();
        if self.v1() {
            Capabilities::NONE.with_rewrap(sealing)
        } else {
            Capabilities::ALL.with_rewrap(sealing)
        }
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        put_optimistic(BACKEND, scope, name, value, options, || async {
            if self.v1() {
                // KV v1 cannot detect a lost race: one attempt, written as read.
                self.put_v1(scope, name, value, options).await.map(Some)
            } else {
                self.try_put_v2(scope, name, value, options).await
            }
        })
        .await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let path = self.path(scope, name);
        if self.v1() {
            let data = self
                .read_v1(&path)
                .await?
                .ok_or_else(|| not_found(scope, name, version))?;
            let mut meta = Self::meta_from_v1(scope, name, &data);
            if version.is_some_and(|v| v != meta.version) {
                return Err(not_found(scope, name, version));
            }
            meta.check_readable()?;
            let stored = data
                .get(VALUE_FIELD)
                .and_then(Value::as_str)
                .ok_or_else(|| not_found(scope, name, version))?;
            let (value, key_id) = self.unseal(
                scope,
                name,
                meta.version,
                SecretString::from(stored.to_owned()),
            )?;
            meta.key_id = key_id;
            return Ok(Secret { value, meta });
        }
        let mount = self.mount().to_owned();
        let p = path.clone();
        let res: ReadSecretResponse = self
            .conn
            .run(move |c| {
                let (mount, p) = (mount.clone(), p.clone());
                Box::pin(async move {
                    let mut req = ReadSecretRequest::builder();
                    req.mount(mount).path(p).version(version);
                    let endpoint = req
                        .build()
                        .map_err(|_| vaultrs::error::ClientError::InvalidLoginMethodError)?;
                    vaultrs::api::exec_with_result(c, endpoint).await
                })
            })
            .await
            .map_err(|f| match f {
                // 404 is both "never written" and "this version is deleted": neither is readable.
                Failure::NotFound => not_found(scope, name, version),
                f => f.into_error(&format!("{scope}/{name}")),
            })?;
        if !res.metadata.deletion_time.is_empty() || res.metadata.destroyed {
            return Err(not_found(scope, name, version));
        }
        let mut meta = SecretMeta::new(scope.clone(), name.clone(), &Default::default());
        apply_map(
            &mut meta,
            &res.metadata.custom_metadata.clone().unwrap_or_default(),
        );
        meta.version = res.metadata.version;
        if let Some(t) = millis_of(&res.metadata.created_time) {
            meta.updated_at = t;
        }
        meta.check_readable()?;
        let stored = res
            .data
            .get(VALUE_FIELD)
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::backend(
                    BACKEND,
                    format!("{scope}/{name} has no {VALUE_FIELD:?} field"),
                )
            })?;
        let (value, key_id) = self.unseal(
            scope,
            name,
            meta.version,
            SecretString::from(stored.to_owned()),
        )?;
        meta.key_id = key_id;
        Ok(Secret { value, meta })
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let path = self.path(scope, name);
        if self.v1() {
            let data = self
                .read_v1(&path)
                .await?
                .ok_or_else(|| not_found(scope, name, None))?;
            return Ok(Self::meta_from_v1(scope, name, &data));
        }
        match self.head(&path).await? {
            Some(h) if h.live => Ok(h.meta(scope, name)),
            _ => Err(not_found(scope, name, None)),
        }
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let limit = options.page_size()?;
        let prefix = options.prefix.as_deref().unwrap_or("");
        let names = self.names(format!("{}{scope}/", self.base())).await?;
        let mut items = Vec::new();
        for full in names.iter().filter(|n| {
            n.starts_with(prefix) && options.cursor.as_deref().is_none_or(|c| n.as_str() > c)
        }) {
            let Ok(name) = SecretName::new(full.clone()) else {
                continue;
            };
            match self.metadata(scope, &name).await {
                Ok(meta) => items.push(meta),
                Err(e) if e.is_not_found() => continue,
                Err(e) => return Err(e),
            }
            if items.len() > limit {
                break;
            }
        }
        Ok(page_of(&mut items, limit))
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let path = self.path(scope, name);
        let what = format!("{scope}/{name}");
        if self.v1() {
            if mode != DeleteMode::Destroy {
                return Err(Error::Unsupported {
                    backend: BACKEND,
                    operation: "soft delete on KV v1",
                });
            }
            self.read_v1(&path)
                .await?
                .ok_or_else(|| not_found(scope, name, None))?;
            return self
                .at(&path, |c, mount, p| {
                    Box::pin(async move { vaultrs::kv1::delete(c, &mount, &p).await })
                })
                .await
                .map_err(|f| f.into_error(&what));
        }
        let head = self
            .head(&path)
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        match mode {
            DeleteMode::Soft if head.live => self
                .at(&path, move |c, mount, p| {
                    let versions = head.live_versions.clone();
                    Box::pin(
                        async move { vaultrs::kv2::delete_versions(c, &mount, &p, versions).await },
                    )
                })
                .await
                .map_err(|f| f.into_error(&what)),
            DeleteMode::Soft => Err(not_found(scope, name, None)),
            DeleteMode::Destroy => self
                .at(&path, |c, mount, p| {
                    Box::pin(async move { vaultrs::kv2::delete_metadata(c, &mount, &p).await })
                })
                .await
                .map_err(|f| f.into_error(&what)),
            _ => Err(Error::Unsupported {
                backend: BACKEND,
                operation: "this delete mode",
            }),
        }
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        let Some(keyring) = self.conn.config().sealing.clone() else {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "rewrap without client-side sealing",
            });
        };
        // Every secret under the prefix: the first folder level is the scope.
        let all = self.names(self.base()).await?;
        let mut rewrapped = 0;
        let mut remaining = 0;
        for full in all {
            let Some((scope, name)) = full.split_once('/') else {
                continue;
            };
            let (Ok(scope), Ok(name)) = (Scope::new(scope), SecretName::new(name)) else {
                continue;
            };
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
