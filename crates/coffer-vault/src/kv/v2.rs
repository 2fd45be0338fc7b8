//! KV v2: Vault's versions are coffer's versions and every write is a check-and-set on
//! the version it read; coffer's metadata is in `custom_metadata`; soft delete is Vault's
//! delete of the live versions, undeleted by the next write.

use std::collections::HashMap;

use async_trait::async_trait;
use coffer_store::backend::{check_condition, now};
use coffer_store::{
    AttributeUpdate, Capabilities, DeleteMode, Error, Result, Scope, Secret, SecretMeta,
    SecretName, VersionInfo, VersionState,
};
use secrecy::ExposeSecret as _;
use serde_json::Value;
use vaultrs::api::kv2::requests::{
    ReadSecretRequest, SetSecretMetadataRequest, SetSecretRequestOptions,
};
use vaultrs::api::kv2::responses::{ReadSecretMetadataResponse, ReadSecretResponse};

use coffer_envelope::Keyring;

use super::{
    DELETED_KEY, Engine, Key, MAC_KEY, Put, VaultStore, apply_map, meta_to_map, millis_of,
    not_found, optional, verify_custom,
};
use crate::client::{BACKEND, Failure};

/// The KV v2 engine.
pub(super) struct KvV2;

/// What KV v2 metadata says about the latest version.
struct Head {
    current: u64,
    live: bool,
    custom: HashMap<String, String>,
    created: Option<chrono::DateTime<chrono::Utc>>,
    updated: Option<chrono::DateTime<chrono::Utc>>,
    deleted_versions: Vec<u64>,
    live_versions: Vec<u64>,
    /// Every version Vault has a record of, oldest first.
    versions: Vec<VersionInfo>,
}

impl Head {
    fn from_response(md: ReadSecretMetadataResponse) -> Self {
        let current = md.current_version;
        let mut deleted_versions = Vec::new();
        let mut live_versions = Vec::new();
        let mut versions = Vec::new();
        for (v, info) in &md.versions {
            let Ok(v) = v.parse::<u64>() else { continue };
            let state = if info.destroyed {
                VersionState::Destroyed
            } else if info.deletion_time.is_empty() {
                VersionState::Kept
            } else {
                VersionState::Deleted
            };
            versions.push(
                VersionInfo::new(v, millis_of(&info.created_time).unwrap_or_default()).state(state),
            );
            if info.destroyed {
                continue;
            }
            if info.deletion_time.is_empty() {
                live_versions.push(v);
            } else {
                deleted_versions.push(v);
            }
        }
        versions.sort_by_key(|v| v.version);
        let live = live_versions.contains(&current);
        Self {
            current,
            live,
            custom: md.custom_metadata.unwrap_or_default(),
            created: millis_of(&md.created_time),
            updated: millis_of(&md.updated_time),
            deleted_versions,
            live_versions,
            versions,
        }
    }

    /// The metadata, checked against its MAC when values are sealed, and whether the
    /// secret is live: its latest version is neither deleted in Vault nor marked deleted
    /// by coffer (which an undelete by someone else cannot clear).
    fn checked(
        &self,
        kv: &VaultStore,
        scope: &Scope,
        name: &SecretName,
    ) -> Result<(SecretMeta, bool)> {
        let meta = self.meta(scope, name);
        let marked = verify_custom(kv.keyring().as_deref(), &meta, &self.custom)?;
        Ok((meta, self.live && !marked && self.current > 0))
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

impl KvV2 {
    /// Replaces the custom metadata at `path` (`what` names the secret in errors).
    async fn set_custom(
        kv: &VaultStore,
        path: &str,
        custom: HashMap<String, String>,
        what: &str,
    ) -> Result<()> {
        kv.at(path, move |c, mount, p| {
            let mut req = SetSecretMetadataRequest::builder();
            req.custom_metadata(custom.clone());
            Box::pin(async move { vaultrs::kv2::set_metadata(c, &mount, &p, Some(&mut req)).await })
        })
        .await
        .map_err(|f| f.into_error(&format!("{what} metadata")))
    }

    /// Version `version` (the latest with `None`) at `path`, as Vault answers it.
    async fn read_version(
        kv: &VaultStore,
        path: &str,
        version: Option<u64>,
    ) -> Result<ReadSecretResponse, Failure> {
        kv.at(path, move |c, mount, p| {
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
    }

    /// The data of version `version` at `path`; `None` when it is deleted or gone.
    async fn data_at(
        kv: &VaultStore,
        path: &str,
        version: u64,
    ) -> Result<Option<serde_json::Map<String, Value>>> {
        optional(
            Self::read_version(kv, path, Some(version))
                .await
                .map(|res| res.data.as_object().cloned().unwrap_or_default()),
            path,
        )
    }

    /// The head of a live secret and its metadata, checked against its MAC; not found
    /// when there is none or it is deleted.
    async fn live_head(
        kv: &VaultStore,
        scope: &Scope,
        name: &SecretName,
    ) -> Result<(Head, SecretMeta)> {
        let head = Self::head(kv, &kv.path(scope, name))
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        match head.checked(kv, scope, name)? {
            (meta, true) => Ok((head, meta)),
            (_, false) => Err(not_found(scope, name, None)),
        }
    }

    async fn head(kv: &VaultStore, path: &str) -> Result<Option<Head>> {
        optional(
            kv.at(path, |c, mount, p| {
                Box::pin(async move { vaultrs::kv2::read_metadata(c, &mount, &p).await })
            })
            .await
            .map(Head::from_response),
            path,
        )
    }
}

#[async_trait]
impl Engine for KvV2 {
    fn capabilities(&self, sealing: bool) -> Capabilities {
        Capabilities::ALL.with_rewrap(sealing)
    }

    /// One optimistic KV v2 write; `Ok(None)` when the `cas` lost a race.
    async fn try_put(&self, kv: &VaultStore, put: Put<'_>) -> Result<Option<SecretMeta>> {
        let Put {
            key,
            value,
            options,
        } = put;
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let head = Self::head(kv, &path).await?;
        // The head is checked against its MAC before anything is decided on it.
        let checked = match &head {
            Some(h) if h.current > 0 => Some(h.checked(kv, scope, name)?),
            _ => None,
        };
        let was_live = checked.as_ref().is_some_and(|(_, live)| *live);
        let live = checked
            .as_ref()
            .filter(|(_, live)| *live)
            .map(|(m, _)| m.version);
        check_condition(scope, name, options.condition, live)?;
        let current = head.as_ref().map_or(0, |h| h.current);
        let (mut meta, old_custom) = match (checked, &head) {
            (Some((mut m, _)), Some(h)) => {
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
        meta.key_id = kv.keyring().map(|k| k.primary_id());
        let custom = meta_to_map(&meta, false, kv.keyring().as_deref())?;
        if current == 0 {
            // A new secret: its metadata (and MAC) goes first, so no reader ever sees a
            // version without a MAC'd head (KV v2 cannot write data and metadata in one
            // request). After the data lands it is written again below, so a writer that
            // lost the race for the first version does not leave its metadata behind.
            Self::set_custom(kv, &path, custom.clone(), &format!("{scope}/{name}")).await?;
        }
        let stored = kv.seal(scope, name, meta.version, value);
        let cas = u32::try_from(current)
            .map_err(|_| Error::backend(BACKEND, "version beyond Vault's cas range"))?;
        // Fields other tools keep beside the value stay: a KV v2 write replaces them all.
        let mut others = match current {
            0 => serde_json::Map::new(),
            v => Self::data_at(kv, &path, v).await?.unwrap_or_default(),
        };
        others.remove(kv.field());
        let mount = kv.mount().to_owned();
        let p = path.clone();
        let field = kv.field().to_owned();
        let written = kv
            .conn
            .run(move |c| {
                let (mount, p) = (mount.clone(), p.clone());
                let mut data = others.clone();
                data.insert(
                    field.clone(),
                    Value::String(stored.expose_secret().to_owned()),
                );
                let data = Value::Object(data);
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
            Self::set_custom(kv, &path, custom, &format!("{scope}/{name}")).await?;
        }
        // A write after a soft delete brings the history back (coffer's semantics).
        if let Some(h) = head.filter(|h| !was_live && !h.deleted_versions.is_empty()) {
            kv.at(&path, move |c, mount, p| {
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

    async fn get(&self, kv: &VaultStore, key: Key<'_>, version: Option<u64>) -> Result<Secret> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let res = Self::read_version(kv, &path, version)
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
        let custom = res.metadata.custom_metadata.clone().unwrap_or_default();
        if verify_custom(kv.keyring().as_deref(), &meta, &custom)? {
            return Err(not_found(scope, name, version));
        }
        meta.check_readable()?;
        let stored = res
            .data
            .get(kv.field())
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::backend(
                    BACKEND,
                    format!("{scope}/{name} has no {:?} field", kv.field()),
                )
            })?;
        kv.open_stored(meta, stored)
    }

    async fn metadata(&self, kv: &VaultStore, key: Key<'_>) -> Result<SecretMeta> {
        let Key { scope, name } = key;
        Self::live_head(kv, scope, name).await.map(|(_, meta)| meta)
    }

    async fn delete(&self, kv: &VaultStore, key: Key<'_>, mode: DeleteMode) -> Result<()> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let what = format!("{scope}/{name}");
        let head = Self::head(kv, &path)
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        match mode {
            DeleteMode::Soft => {
                let (meta, live) = head.checked(kv, scope, name)?;
                if !live {
                    return Err(not_found(scope, name, None));
                }
                // Marked deleted under the MAC first, so an undelete of Vault's versions
                // by someone without the key does not bring the secret back.
                if let Some(keyring) = kv.keyring().as_deref() {
                    let custom = meta_to_map(&meta, true, Some(keyring))?;
                    Self::set_custom(kv, &path, custom, &what).await?;
                }
                kv.at(&path, move |c, mount, p| {
                    let versions = head.live_versions.clone();
                    Box::pin(
                        async move { vaultrs::kv2::delete_versions(c, &mount, &p, versions).await },
                    )
                })
                .await
                .map_err(|f| f.into_error(&what))
            }
            DeleteMode::Destroy => kv
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

    async fn versions(&self, kv: &VaultStore, key: Key<'_>) -> Result<Vec<VersionInfo>> {
        let Key { scope, name } = key;
        Self::live_head(kv, scope, name)
            .await
            .map(|(head, _)| head.versions)
    }

    async fn deleted(&self, kv: &VaultStore, key: Key<'_>) -> Result<Option<SecretMeta>> {
        let Key { scope, name } = key;
        match Self::head(kv, &kv.path(scope, name)).await? {
            Some(h) if h.current > 0 => match h.checked(kv, scope, name)? {
                (meta, false) => Ok(Some(meta)),
                (_, true) => Ok(None),
            },
            _ => Ok(None),
        }
    }

    /// Undeletes the versions Vault holds deleted (not destroyed), then clears coffer's
    /// deleted mark under a new MAC: until the mark is cleared the secret stays deleted,
    /// so an interrupted restore is finished by running it again.
    async fn restore(&self, kv: &VaultStore, key: Key<'_>) -> Result<SecretMeta> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let what = format!("{scope}/{name}");
        let head = Self::head(kv, &path)
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        let (meta, live) = head.checked(kv, scope, name)?;
        if live {
            return Ok(meta);
        }
        if head.current == 0
            || !(head.live_versions.contains(&head.current)
                || head.deleted_versions.contains(&head.current))
        {
            // No version, or the latest one destroyed: nothing to bring back.
            return Err(not_found(scope, name, None));
        }
        if !head.deleted_versions.is_empty() {
            let versions = head.deleted_versions.clone();
            kv.at(&path, move |c, mount, p| {
                let versions = versions.clone();
                Box::pin(
                    async move { vaultrs::kv2::undelete_versions(c, &mount, &p, versions).await },
                )
            })
            .await
            .map_err(|f| f.into_error(&what))?;
        }
        if let Some(keyring) = kv.keyring().as_deref() {
            let custom = meta_to_map(&meta, false, Some(keyring))?;
            Self::set_custom(kv, &path, custom, &what).await?;
        }
        self.metadata(kv, key).await
    }

    /// Reads the head (checking its MAC), applies the edit and writes `custom_metadata`
    /// with a new MAC; Vault's version stays. Vault has no check-and-set on metadata:
    /// edits through one store are serialized by the caller, edits from elsewhere at the
    /// same moment are last-writer-wins.
    async fn update_attributes(
        &self,
        kv: &VaultStore,
        key: Key<'_>,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let (_, mut meta) = Self::live_head(kv, scope, name).await?;
        update.apply(&mut meta)?;
        let custom = meta_to_map(&meta, false, kv.keyring().as_deref())?;
        Self::set_custom(kv, &path, custom, &format!("{scope}/{name}")).await?;
        self.metadata(kv, key).await
    }

    async fn adopt(&self, kv: &VaultStore, key: Key<'_>, keyring: &Keyring) -> Result<bool> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let Some(head) = Self::head(kv, &path).await? else {
            return Ok(false);
        };
        if head.current == 0 || head.custom.contains_key(MAC_KEY) {
            return Ok(false);
        }
        let meta = head.meta(scope, name);
        let deleted = head.custom.get(DELETED_KEY).is_some_and(|v| v == "true");
        let custom = meta_to_map(&meta, deleted, Some(keyring))?;
        Self::set_custom(kv, &path, custom, &format!("{scope}/{name}")).await?;
        Ok(true)
    }

    async fn list(&self, kv: &VaultStore, folder: &str) -> Result<Vec<String>, Failure> {
        kv.at(folder, |c, mount, p| {
            Box::pin(async move { vaultrs::kv2::list(c, &mount, &p).await })
        })
        .await
    }
}
