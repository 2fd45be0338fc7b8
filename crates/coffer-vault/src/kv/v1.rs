//! KV v1: no versions, no check-and-set, no soft delete. coffer's metadata and a
//! version counter are extra fields beside the value; create-only is a read before the
//! write, not atomic.

use std::collections::HashMap;

use async_trait::async_trait;
use coffer_store::backend::{check_condition, now};
use coffer_store::{
    AttributeUpdate, Capabilities, DeleteMode, Error, PutOptions, Result, Scope, Secret,
    SecretMeta, SecretName,
};
use secrecy::{ExposeSecret as _, SecretString};
use serde_json::Value;

use coffer_envelope::Keyring;

use super::{
    Engine, Key, MAC_KEY, Put, VaultStore, apply_map, meta_to_map, not_found, optional,
    verify_custom,
};
use crate::client::{BACKEND, Failure};

/// The KV v1 engine.
pub(super) struct KvV1;

impl KvV1 {
    async fn read(kv: &VaultStore, path: &str) -> Result<Option<serde_json::Map<String, Value>>> {
        optional(
            kv.at(path, |c, mount, p| {
                Box::pin(async move { vaultrs::kv1::get_raw(c, &mount, &p).await })
            })
            .await
            .map(|res| res.data.as_object().cloned().unwrap_or_default()),
            path,
        )
    }

    /// The metadata kept beside the value, checked against its MAC when values are sealed.
    fn meta(
        kv: &VaultStore,
        scope: &Scope,
        name: &SecretName,
        data: &serde_json::Map<String, Value>,
    ) -> Result<SecretMeta> {
        let meta = Self::meta_of(scope, name, data);
        verify_custom(kv.keyring().as_deref(), &meta, &Self::coffer_fields(data))?;
        Ok(meta)
    }

    /// The `coffer_*` string fields of a stored secret.
    fn coffer_fields(data: &serde_json::Map<String, Value>) -> HashMap<String, String> {
        data.iter()
            .filter(|(k, _)| k.starts_with("coffer_"))
            .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
            .collect()
    }

    /// The metadata as stored, not checked.
    fn meta_of(
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

    /// The `coffer_*` fields to store beside a value for `meta`, MAC included.
    fn fields(meta: &SecretMeta, keyring: Option<&Keyring>) -> Result<HashMap<String, String>> {
        let mut map = meta_to_map(meta, false, keyring)?;
        map.insert("coffer_version".into(), meta.version.to_string());
        map.insert(
            "coffer_updated_at".into(),
            meta.updated_at.timestamp_millis().to_string(),
        );
        Ok(map)
    }

    /// Writes `fields` and the stored `value` as the whole secret at `path`.
    async fn write(
        kv: &VaultStore,
        path: String,
        fields: HashMap<String, String>,
        value: String,
        what: &str,
    ) -> Result<()> {
        let mount = kv.mount().to_owned();
        let field = kv.field().to_owned();
        kv.conn
            .run(move |c| {
                let mount = mount.clone();
                let path = path.clone();
                let mut owned = fields.clone();
                owned.insert(field.clone(), value.clone());
                Box::pin(async move {
                    let data: HashMap<&str, &str> = owned
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect();
                    vaultrs::kv1::set(c, &mount, &path, &data).await
                })
            })
            .await
            .map_err(|f| f.into_error(what))
    }

    /// Adds the string fields other tools keep beside the value in `data` to `fields`:
    /// KV v1 writes whole secrets, so a write that left them out would drop them.
    fn keep_others(
        kv: &VaultStore,
        data: &serde_json::Map<String, Value>,
        fields: &mut HashMap<String, String>,
    ) {
        for (k, v) in data {
            if !k.starts_with("coffer_")
                && k != kv.field()
                && let Some(v) = v.as_str()
            {
                fields.entry(k.clone()).or_insert_with(|| v.to_owned());
            }
        }
    }

    /// One write, as read: KV v1 cannot detect a lost race.
    async fn put(
        kv: &VaultStore,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        let path = kv.path(scope, name);
        let current = Self::read(kv, &path).await?;
        let mut meta = match &current {
            Some(data) => Self::meta(kv, scope, name, data)?,
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
        meta.key_id = kv.keyring().map(|k| k.primary_id());
        let stored = kv.seal(scope, name, meta.version, value);
        let mut fields = Self::fields(&meta, kv.keyring().as_deref())?;
        if let Some(data) = &current {
            Self::keep_others(kv, data, &mut fields);
        }
        let value = stored.expose_secret().to_owned();
        Self::write(kv, path, fields, value, &format!("{scope}/{name}")).await?;
        Ok(meta)
    }
}

#[async_trait]
impl Engine for KvV1 {
    fn capabilities(&self, sealing: bool) -> Capabilities {
        Capabilities::NONE
            .with_rewrap(sealing)
            .with_list_scopes(true)
            .with_update_attributes(true)
    }

    async fn try_put(&self, kv: &VaultStore, put: Put<'_>) -> Result<Option<SecretMeta>> {
        let Put {
            key,
            value,
            options,
        } = put;
        let Key { scope, name } = key;
        Self::put(kv, scope, name, value, options).await.map(Some)
    }

    async fn get(&self, kv: &VaultStore, key: Key<'_>, version: Option<u64>) -> Result<Secret> {
        let Key { scope, name } = key;
        let data = Self::read(kv, &kv.path(scope, name))
            .await?
            .ok_or_else(|| not_found(scope, name, version))?;
        let meta = Self::meta(kv, scope, name, &data)?;
        if version.is_some_and(|v| v != meta.version) {
            return Err(not_found(scope, name, version));
        }
        meta.check_readable()?;
        let stored = data
            .get(kv.field())
            .and_then(Value::as_str)
            .ok_or_else(|| not_found(scope, name, version))?;
        kv.open_stored(meta, stored)
    }

    async fn metadata(&self, kv: &VaultStore, key: Key<'_>) -> Result<SecretMeta> {
        let Key { scope, name } = key;
        let data = Self::read(kv, &kv.path(scope, name))
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        Self::meta(kv, scope, name, &data)
    }

    async fn delete(&self, kv: &VaultStore, key: Key<'_>, mode: DeleteMode) -> Result<()> {
        let Key { scope, name } = key;
        if mode != DeleteMode::Destroy {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "soft delete on KV v1",
            });
        }
        let path = kv.path(scope, name);
        Self::read(kv, &path)
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        kv.at(&path, |c, mount, p| {
            Box::pin(async move { vaultrs::kv1::delete(c, &mount, &p).await })
        })
        .await
        .map_err(|f| f.into_error(&format!("{scope}/{name}")))
    }

    /// The secret written again with the same stored value (so the same coffer version
    /// and, sealed, the same envelope) and the edited fields. KV v1 has no check-and-set:
    /// edits through one store are serialized, a write from elsewhere at the same moment
    /// can be lost, as with every KV v1 write.
    async fn update_attributes(
        &self,
        kv: &VaultStore,
        key: Key<'_>,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let data = Self::read(kv, &path)
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        let mut meta = Self::meta(kv, scope, name, &data)?;
        let value = data
            .get(kv.field())
            .and_then(Value::as_str)
            .ok_or_else(|| not_found(scope, name, None))?
            .to_owned();
        update.apply(&mut meta)?;
        let mut fields = Self::fields(&meta, kv.keyring().as_deref())?;
        Self::keep_others(kv, &data, &mut fields);
        Self::write(kv, path, fields, value, &format!("{scope}/{name}")).await?;
        Ok(meta)
    }

    /// KV v1 has no check-and-set: run it while nothing else writes the mount.
    async fn adopt(&self, kv: &VaultStore, key: Key<'_>, keyring: &Keyring) -> Result<bool> {
        let Key { scope, name } = key;
        let path = kv.path(scope, name);
        let Some(data) = Self::read(kv, &path).await? else {
            return Ok(false);
        };
        if data.contains_key(MAC_KEY) {
            return Ok(false);
        }
        let Some(value) = data.get(kv.field()).and_then(Value::as_str) else {
            return Ok(false);
        };
        let meta = Self::meta_of(scope, name, &data);
        let mut fields = Self::fields(&meta, Some(keyring))?;
        Self::keep_others(kv, &data, &mut fields);
        Self::write(
            kv,
            path,
            fields,
            value.to_owned(),
            &format!("{scope}/{name}"),
        )
        .await?;
        Ok(true)
    }

    async fn list(&self, kv: &VaultStore, folder: &str) -> Result<Vec<String>, Failure> {
        kv.at(folder, |c, mount, p| {
            Box::pin(async move { vaultrs::kv1::list(c, &mount, &p).await.map(|r| r.data.keys) })
        })
        .await
    }
}
