//! [`SupabaseVaultStore`]: the [`SecretStore`] over Vault's SQL interface.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffer_envelope::{Keyring, KeyringHandle, from_text, to_text};
use coffer_sql::support::{map_sqlx, prefix_range, run_migrations_in, verify_checks};
use coffer_sql::tls::{CleartextGuard, PgTarget};
use coffer_store::backend::{
    check_condition, list_filtered, not_found, now, page_of, put_optimistic, tag_head,
};
use coffer_store::{
    AttributeUpdate, Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions,
    Result, RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore,
};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::postgres::PgPoolOptions;
use sqlx::{PgPool, Postgres, Transaction};

use crate::row::{Naming, VaultRow, lock_name, select_row};
use crate::{BACKEND, MIGRATIONS_TABLE, SEAL_URL_PARAM, SupabaseOptions, UNSCOPED_URL_PARAM};

/// A [`SecretStore`] over Supabase Vault's SQL interface.
///
/// - Values go in with `vault.create_secret` / `vault.update_secret` and come out of the
///   view `vault.decrypted_secrets`; destroy is `DELETE FROM vault.secrets`. Vault
///   encrypts them at rest; other Supabase consumers read them as usual.
/// - A coffer secret `(scope, name)` is the Vault secret named `{scope}/{name}`
///   ([`vault_name`](crate::vault_name); the name alone in the `?unscoped=` scope);
///   coffer's description is Vault's `description`; the rest of coffer's metadata
///   (provider, kind, tags, expiry, version counter, …) lives in the side table
///   `coffer_vault_meta`, keyed by the Vault secret's id. A secret created by
///   plain SQL has no metadata row and reads as version 1 of kind `other`.
/// - Vault keeps no history: [`Capabilities::versions`] is false and only the latest
///   version is readable. coffer's writers of one name take one transaction-scoped
///   advisory lock (not a row lock: Supabase gives its `postgres` role no UPDATE on
///   `vault.secrets`), so create-only (also through Vault's unique name index) and
///   check-and-set on the version counter are exact among coffer's writers. A write
///   made outside coffer (the dashboard, plain `vault.update_secret`) takes no such lock
///   and does not move coffer's version; the head MAC then refuses the secret's
///   metadata only if a covered field changed. There is no soft delete.
/// - Optional client-side sealing ([`SupabaseOptions::sealing`], `?seal=true`): the
///   value Vault stores is a coffer envelope (`cf1.…`) bound to (scope, name, version),
///   so the database never sees the plaintext; other consumers then read the envelope.
#[derive(Clone)]
pub struct SupabaseVaultStore {
    pool: PgPool,
    sealing: Option<KeyringHandle>,
    naming: Naming,
    /// The cleartext-password guard the pool connects through, if it needs one.
    guard: Option<Arc<CleartextGuard>>,
}

impl std::fmt::Debug for SupabaseVaultStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseVaultStore")
            .field("sealing", &self.sealing)
            .field("unscoped", &self.naming.unscoped)
            .finish_non_exhaustive()
    }
}

fn sql(e: sqlx::Error) -> Error {
    map_sqlx(BACKEND, e)
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(db) if db.code().as_deref() == Some("23505"))
}

/// A pool for a Supabase URL (TLS and the cleartext guard from the URL), and the
/// store options its query asks for (`?seal=`, `?unscoped=`).
pub(crate) struct Connected {
    pub(crate) pool: PgPool,
    pub(crate) seal: bool,
    pub(crate) unscoped: Option<Scope>,
    pub(crate) guard: Option<Arc<CleartextGuard>>,
}

pub(crate) async fn connect_pool(url: &str) -> Result<Connected> {
    let plain = url.strip_prefix("supabase+").unwrap_or(url);
    let mut seal = false;
    let mut unscoped = None;
    let target = PgTarget::from_url(plain, |key, value| match key {
        SEAL_URL_PARAM => {
            seal = coffer_store::open::parse_flag(SEAL_URL_PARAM, value)?;
            Ok(true)
        }
        UNSCOPED_URL_PARAM => {
            unscoped = Some(Scope::new(value).map_err(|e| {
                Error::config(format!(
                    "supabase: ?{UNSCOPED_URL_PARAM}= names no scope: {e}"
                ))
            })?);
            Ok(true)
        }
        _ => Ok(false),
    })?;
    let pool = PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect_with(target.options().clone())
        .await
        .map_err(|e| target.connect_error(BACKEND, e))?;
    Ok(Connected {
        pool,
        seal,
        unscoped,
        guard: target.guard().cloned(),
    })
}

impl SupabaseVaultStore {
    /// The keyring values are sealed with now, if sealing is on.
    fn keyring(&self) -> Option<Arc<Keyring>> {
        self.sealing.as_ref().map(KeyringHandle::current)
    }

    /// Connects to a `supabase+postgres://`, `postgres://` or `postgresql://` URL.
    /// `?seal=true` turns on client-side sealing with `keyring`, which it then requires.
    ///
    /// TLS follows [`coffer_store::transport`] (`sslmode`, `sslrootcert`, …; `verify-full`
    /// by default to a host off loopback, which hosted Supabase is: name Supabase's CA
    /// with `sslrootcert`). An unknown parameter is an error.
    pub async fn connect(url: &str, keyring: Option<KeyringHandle>) -> Result<Self> {
        let Connected {
            pool,
            seal,
            unscoped,
            guard,
        } = connect_pool(url).await?;
        let mut options = SupabaseOptions::new();
        options.unscoped = unscoped;
        if seal {
            let keyring = keyring.ok_or_else(|| {
                Error::config(
                    "supabase: ?seal=true needs a keyring (a keyring file or COFFER_MASTER_KEY)",
                )
            })?;
            options = options.sealing(keyring);
        }
        let mut store = Self::from_pool(pool, options).await?;
        store.guard = guard;
        Ok(store)
    }

    /// Connects (as [`connect`](Self::connect)) with values sealed under the keyring
    /// kept in the project itself ([`SupabaseKeyring`](crate::SupabaseKeyring), one
    /// vault secret), opened with `kek`; sealing is on whatever `?seal=` says. See
    /// [`coffer_store::keys`].
    pub async fn connect_shared(
        url: &str,
        kek: Arc<dyn coffer_envelope::KeyringKek>,
    ) -> Result<coffer_store::keys::KeyringReload<Self>> {
        let Connected {
            pool,
            unscoped,
            guard,
            ..
        } = connect_pool(url).await?;
        let storage = Arc::new(crate::SupabaseKeyring::new(pool.clone(), guard.clone()));
        let keys = Arc::new(coffer_store::keys::SharedKeyring::open(storage, kek).await?);
        let mut options = SupabaseOptions::new().sealing(keys.handle());
        options.unscoped = unscoped;
        let mut store = Self::from_pool(pool, options).await?;
        store.guard = guard;
        Ok(coffer_store::keys::KeyringReload::new(store, keys))
    }

    /// Builds the store on an existing pool. The database must have Supabase Vault (or a
    /// schema with its interface).
    pub async fn from_pool(pool: PgPool, options: SupabaseOptions) -> Result<Self> {
        let has_vault: bool = sqlx::query_scalar("SELECT to_regclass('vault.secrets') IS NOT NULL")
            .fetch_one(&pool)
            .await
            .map_err(sql)?;
        if !has_vault {
            return Err(Error::config(
                "supabase: this database has no vault.secrets (enable the supabase_vault extension)",
            ));
        }
        if options.migrate {
            run_migrations_in(
                BACKEND,
                sqlx::migrate!("./migrations"),
                MIGRATIONS_TABLE,
                &pool,
            )
            .await?;
        }
        let store = Self {
            pool,
            sealing: options.sealing,
            naming: Naming {
                unscoped: options.unscoped,
            },
            guard: None,
        };
        store.check_keys().await?;
        Ok(store)
    }

    /// The sqlx pool.
    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    async fn check_keys(&self) -> Result<()> {
        let Some(keyring) = self.keyring() else {
            return Ok(());
        };
        let recorded: Vec<(i64, String)> =
            sqlx::query_as("SELECT key_id, check_value FROM coffer_vault_key_checks")
                .fetch_all(&self.pool)
                .await
                .map_err(sql)?;
        verify_checks(BACKEND, &keyring, &recorded)?;
        if let Some(check) = keyring.check_value(keyring.primary_id()) {
            sqlx::query("INSERT INTO coffer_vault_key_checks (key_id, check_value) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING")
                .bind(i64::from(keyring.primary_id()))
                .bind(check)
                .execute(&self.pool)
                .await
                .map_err(sql)?;
        }
        Ok(())
    }

    /// A transaction holding Vault secret `id` locked, with its scope and name parsed;
    /// `None` when the secret is gone or its name is not coffer's.
    async fn lock_row(
        &self,
        id: &str,
        scope: String,
        name: String,
    ) -> Result<Option<(Transaction<'static, Postgres>, Scope, SecretName)>> {
        let (Ok(scope), Ok(name)) = (Scope::new(scope), SecretName::new(name)) else {
            return Ok(None);
        };
        let mut tx = self.pool.begin().await.map_err(sql)?;
        lock_name(&mut tx, &self.naming.vault_name(&scope, &name)?).await?;
        let locked: Option<String> =
            sqlx::query_scalar("SELECT id::text FROM vault.secrets WHERE id = $1::uuid")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql)?;
        Ok(locked.map(|_| (tx, scope, name)))
    }

    async fn row_by_id(tx: &mut Transaction<'static, Postgres>, id: &str) -> Result<VaultRow> {
        sqlx::query_as(concat!(
            select_row!("vault.secrets"),
            "WHERE s.id = $1::uuid"
        ))
        .bind(id)
        .fetch_one(&mut **tx)
        .await
        .map_err(sql)
    }

    /// Writes coffer's metadata row of Vault secret `id` (created for a secret made with
    /// plain SQL, which has none yet).
    async fn write_meta(
        tx: &mut Transaction<'static, Postgres>,
        id: &str,
        meta: &SecretMeta,
        mac: Option<Vec<u8>>,
    ) -> Result<()> {
        // Metadata of an earlier secret of this name that was deleted outside coffer.
        sqlx::query(
            "DELETE FROM coffer_vault_meta WHERE scope = $1 AND name = $2 AND vault_id <> $3::uuid",
        )
        .bind(meta.scope.as_str())
        .bind(meta.name.as_str())
        .bind(id)
        .execute(&mut **tx)
        .await
        .map_err(sql)?;
        let tags = serde_json::to_string(&meta.tags).map_err(|e| Error::backend(BACKEND, e))?;
        sqlx::query(
            "INSERT INTO coffer_vault_meta (vault_id, scope, name, version, provider, kind, tags, env_name, \
             expires_at, active, created_at, updated_at, key_id, mac) \
             VALUES ($1::uuid, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (vault_id) DO UPDATE SET scope = EXCLUDED.scope, name = EXCLUDED.name, \
             version = EXCLUDED.version, provider = EXCLUDED.provider, kind = EXCLUDED.kind, tags = EXCLUDED.tags, \
             env_name = EXCLUDED.env_name, expires_at = EXCLUDED.expires_at, active = EXCLUDED.active, \
             updated_at = EXCLUDED.updated_at, key_id = EXCLUDED.key_id, mac = EXCLUDED.mac",
        )
        .bind(id)
        .bind(meta.scope.as_str())
        .bind(meta.name.as_str())
        .bind(i64::try_from(meta.version).unwrap_or(i64::MAX))
        .bind(&meta.provider)
        .bind(meta.kind.as_str())
        .bind(&tags)
        .bind(&meta.env_name)
        .bind(meta.expires_at.map(|t| t.timestamp_millis()))
        .bind(meta.active)
        .bind(meta.created_at.timestamp_millis())
        .bind(meta.updated_at.timestamp_millis())
        .bind(meta.key_id.map(i64::from))
        .bind(mac)
        .execute(&mut **tx)
        .await
        .map_err(sql)?;
        Ok(())
    }

    /// One attribute edit under the name's lock; the description goes to Vault's own
    /// column, the rest to coffer's metadata row, with a new MAC, in one transaction.
    async fn edit_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        let full = self.naming.vault_name(scope, name)?;
        let mut tx = self.pool.begin().await.map_err(sql)?;
        lock_name(&mut tx, &full).await?;
        let id: String = sqlx::query_scalar("SELECT id::text FROM vault.secrets WHERE name = $1")
            .bind(&full)
            .fetch_optional(&mut *tx)
            .await
            .map_err(sql)?
            .ok_or_else(|| not_found(scope, name, None))?;
        let keyring = self.keyring();
        let mut meta = Self::row_by_id(&mut tx, &id).await?.into_checked(
            scope.clone(),
            name.clone(),
            keyring.as_deref(),
        )?;
        update.apply(&mut meta)?;
        meta.description = meta.description.filter(|d| !d.is_empty());
        if update.description.is_some() {
            sqlx::query("SELECT vault.update_secret($1::uuid, NULL, NULL, $2)")
                .bind(&id)
                .bind(meta.description.clone().unwrap_or_default())
                .execute(&mut *tx)
                .await
                .map_err(sql)?;
        }
        let mac = keyring.map(|k| tag_head(&k, &meta, false));
        Self::write_meta(&mut tx, &id, &meta, mac).await?;
        tx.commit().await.map_err(sql)?;
        Ok(meta)
    }

    /// One page of the scope's secrets by prefix and cursor, unfiltered.
    async fn list_page(&self, scope: &Scope, options: ListOptions) -> Result<ListPage> {
        let limit = options.page_size()?;
        let scope_prefix = self.naming.prefix(scope);
        let bare = self.naming.is_bare(scope);
        let (lower, upper) = prefix_range(&format!(
            "{scope_prefix}{}",
            options.prefix.as_deref().unwrap_or("")
        ));
        let (start, inclusive) = match &options.cursor {
            Some(c) if format!("{scope_prefix}{c}") >= lower => {
                (format!("{scope_prefix}{c}"), false)
            }
            _ => (lower, true),
        };
        let mut items = Vec::new();
        let mut start = (start, inclusive);
        // Names that are not valid coffer names (written by other Vault users) are
        // skipped, so a page is refilled until it is full or the range is done.
        loop {
            let rows: Vec<VaultRow> = sqlx::query_as(concat!(
                select_row!("vault.secrets"),
                "WHERE (s.name COLLATE \"C\" > $1 OR ($2 AND s.name COLLATE \"C\" = $1)) \
                 AND ($3 IS NULL OR s.name COLLATE \"C\" < $3) \
                 AND (NOT $5 OR (strpos(s.name, '/') = 0 AND s.name <> $6)) \
                 ORDER BY s.name COLLATE \"C\" LIMIT $4"
            ))
            .bind(&start.0)
            .bind(start.1)
            .bind(&upper)
            .bind(i64::try_from(limit + 1).unwrap_or(i64::MAX))
            .bind(bare)
            .bind(crate::KEYRING_SECRET_NAME)
            .fetch_all(&self.pool)
            .await
            .map_err(sql)?;
            let fetched = rows.len();
            let last = rows.last().map(|r| r.vault_name.clone());
            for row in rows {
                match row
                    .vault_name
                    .strip_prefix(&scope_prefix)
                    .map(SecretName::new)
                {
                    Some(Ok(name)) => items.push(row.into_checked(
                        scope.clone(),
                        name,
                        self.keyring().as_deref(),
                    )?),
                    _ => {
                        tracing::debug!(name = %row.vault_name, "skipping a Vault secret whose name is not a coffer name")
                    }
                }
            }
            match last {
                Some(last) if fetched > limit && items.len() <= limit => start = (last, false),
                _ => break,
            }
        }
        Ok(page_of(&mut items, limit))
    }

    /// One attempt at a write; `Ok(None)` when a concurrent creator won the name first.
    async fn try_put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<Option<SecretMeta>> {
        let full = self.naming.vault_name(scope, name)?;
        let mut tx = self.pool.begin().await.map_err(sql)?;
        lock_name(&mut tx, &full).await?;
        let existing: Option<String> =
            sqlx::query_scalar("SELECT id::text FROM vault.secrets WHERE name = $1")
                .bind(&full)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql)?;
        // Read the metadata after the lock is held: a fresh snapshot sees the last writer's.
        let current = match &existing {
            Some(id) => Some(Self::row_by_id(&mut tx, id).await?.into_checked(
                scope.clone(),
                name.clone(),
                self.keyring().as_deref(),
            )?),
            None => None,
        };
        check_condition(
            scope,
            name,
            options.condition,
            current.as_ref().map(|m| m.version),
        )?;
        let mut meta = match current {
            Some(mut m) => {
                m.version += 1;
                m.updated_at = now();
                options.attributes.apply(&mut m);
                m
            }
            None => SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
        };
        let stored = match self.keyring() {
            Some(keyring) => {
                meta.key_id = Some(keyring.primary_id());
                let ctx = coffer_envelope::Context::new(scope.as_str(), name.as_str())
                    .with_version(meta.version);
                SecretString::from(to_text(
                    &keyring.seal(value.expose_secret().as_bytes(), &ctx),
                ))
            }
            None => value.clone(),
        };
        // Vault keeps no description as an empty one; the MAC covers what reads back.
        meta.description = meta.description.filter(|d| !d.is_empty());
        let description = meta.description.clone().unwrap_or_default();
        let mac = self.keyring().map(|k| tag_head(&k, &meta, false));
        let id = match existing {
            Some(id) => {
                sqlx::query("SELECT vault.update_secret($1::uuid, $2, NULL, $3)")
                    .bind(&id)
                    .bind(stored.expose_secret())
                    .bind(&description)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql)?;
                id
            }
            None => {
                let created =
                    sqlx::query_scalar::<_, String>("SELECT vault.create_secret($1, $2, $3)::text")
                        .bind(stored.expose_secret())
                        .bind(&full)
                        .bind(&description)
                        .fetch_one(&mut *tx)
                        .await;
                match created {
                    Ok(id) => id,
                    Err(e) if is_unique_violation(&e) => return Ok(None),
                    Err(e) => return Err(sql(e)),
                }
            }
        };
        Self::write_meta(&mut tx, &id, &meta, mac).await?;
        tx.commit().await.map_err(sql)?;
        Ok(Some(meta))
    }
}

#[async_trait]
impl SecretStore for SupabaseVaultStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
            .with_check_and_set(true)
            .with_update_attributes(true)
            .with_list_scopes(true)
            .with_rewrap(self.sealing.is_some())
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        put_optimistic(BACKEND, scope, name, value, options, || {
            self.try_put(scope, name, value, options)
        })
        .await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        use sqlx::Row as _;
        let row = sqlx::query(concat!(
            select_row!("vault.decrypted_secrets", ", s.decrypted_secret"),
            "WHERE s.name = $1"
        ))
        .bind(self.naming.vault_name(scope, name)?)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql)?
        .ok_or_else(|| not_found(scope, name, version))?;
        let decrypted: Option<String> = row.try_get("decrypted_secret").map_err(sql)?;
        let decrypted = decrypted.map(SecretString::from);
        let meta = <VaultRow as sqlx::FromRow<_>>::from_row(&row)
            .map_err(sql)?
            .into_checked(scope.clone(), name.clone(), self.keyring().as_deref())?;
        if version.is_some_and(|v| v != meta.version) {
            return Err(not_found(scope, name, version));
        }
        meta.check_readable()?;
        let Some(decrypted) = decrypted else {
            return Err(Error::backend(
                BACKEND,
                format!("Vault could not decrypt {scope}/{name}"),
            ));
        };
        let value = match self.keyring() {
            None => decrypted,
            Some(keyring) => {
                let crypto = |source| Error::Crypto {
                    scope: scope.to_string(),
                    name: name.to_string(),
                    source,
                };
                let sealed = from_text(decrypted.expose_secret()).map_err(crypto)?;
                let ctx = coffer_envelope::Context::new(scope.as_str(), name.as_str())
                    .with_version(meta.version);
                keyring.open_string(&sealed, &ctx).map_err(crypto)?
            }
        };
        Ok(Secret { value, meta })
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let row: VaultRow =
            sqlx::query_as(concat!(select_row!("vault.secrets"), "WHERE s.name = $1"))
                .bind(self.naming.vault_name(scope, name)?)
                .fetch_optional(&self.pool)
                .await
                .map_err(sql)?
                .ok_or_else(|| not_found(scope, name, None))?;
        row.into_checked(scope.clone(), name.clone(), self.keyring().as_deref())
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        list_filtered(options, |page| self.list_page(scope, page)).await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        update.validate()?;
        self.edit_attributes(scope, name, update).await
    }

    /// The first segment of every Vault name with a `/` that is a valid scope, and the
    /// unscoped scope (`?unscoped=`) when the project has names without one.
    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT split_part(name, '/', 1) FROM vault.secrets \
             WHERE strpos(name, '/') > 1",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql)?;
        let mut scopes: Vec<Scope> = found
            .into_iter()
            .filter_map(|s| Scope::new(s).ok())
            .collect();
        if let Some(bare) = &self.naming.unscoped {
            let any: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM vault.secrets WHERE strpos(name, '/') = 0 AND name <> $1)",
            )
            .bind(crate::KEYRING_SECRET_NAME)
            .fetch_one(&self.pool)
            .await
            .map_err(sql)?;
            scopes.retain(|s| s != bare);
            if any {
                scopes.push(bare.clone());
            }
        }
        scopes.sort();
        scopes.dedup();
        Ok(scopes)
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        if mode != DeleteMode::Destroy {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "soft delete",
            });
        }
        let mut tx = self.pool.begin().await.map_err(sql)?;
        let ids: Vec<String> =
            sqlx::query_scalar("DELETE FROM vault.secrets WHERE name = $1 RETURNING id::text")
                .bind(self.naming.vault_name(scope, name)?)
                .fetch_all(&mut *tx)
                .await
                .map_err(sql)?;
        if ids.is_empty() {
            return Err(not_found(scope, name, None));
        }
        sqlx::query("DELETE FROM coffer_vault_meta WHERE vault_id = ANY($1::uuid[]) OR (scope = $2 AND name = $3)")
            .bind(&ids)
            .bind(scope.as_str())
            .bind(name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        tx.commit().await.map_err(sql)
    }

    /// Usage lives in `coffer_vault_meta`: secrets written outside coffer (plain
    /// `vault.create_secret`) have no row there until coffer writes them, and their
    /// reads are not counted.
    async fn record_usage(&self, usage: &[coffer_store::Usage]) -> Result<()> {
        let sql = |e| map_sqlx(BACKEND, e);
        let mut tx = self.pool.begin().await.map_err(sql)?;
        for u in usage {
            sqlx::query(
                "UPDATE coffer_vault_meta SET usage_count = usage_count + $1, \
                 last_used_at = GREATEST(COALESCE(last_used_at, $2), $2) \
                 WHERE scope = $3 AND name = $4",
            )
            .bind(i64::try_from(u.count).unwrap_or(i64::MAX))
            .bind(u.last_used_at.timestamp_millis())
            .bind(u.scope.as_str())
            .bind(u.name.as_str())
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
        }
        tx.commit().await.map_err(sql)
    }

    /// One envelope and one head per secret (the extension keeps only the latest value),
    /// both counted by the key id that starts the head's MAC: every write and every
    /// rewrap sets the envelope and the MAC in one transaction, and the MAC covers the
    /// envelope's key id. A value sealed by pgsodium cannot be read by SQL to count it
    /// from its own header.
    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        if self.sealing.is_none() {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "counting key usage without client-side sealing",
            });
        }
        let rows: Vec<(Option<Vec<u8>>, i64)> = sqlx::query_as(
            "SELECT substr(mac, 1, 4), COUNT(*) FROM coffer_vault_meta GROUP BY substr(mac, 1, 4)",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql)?;
        let mut usage: Vec<KeyUsage> = rows
            .into_iter()
            .map(|(id, n)| {
                let id = id
                    .and_then(|b| <[u8; 4]>::try_from(b.as_slice()).ok())
                    .map(u32::from_be_bytes);
                let n = u64::try_from(n).unwrap_or(0);
                KeyUsage::new(id, n, n)
            })
            .collect();
        usage.sort_by_key(|u| u.key_id);
        Ok(usage)
    }

    /// Rows of `coffer_vault_meta` without a MAC, each locked with its Vault secret
    /// while it is tagged. A secret with no metadata row (created with plain SQL) is not
    /// coffer's and stays refused.
    async fn adopt_untagged_heads(&self) -> Result<u64> {
        let Some(keyring) = self.keyring() else {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "adopting heads without client-side sealing",
            });
        };
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT vault_id::text, scope, name FROM coffer_vault_meta WHERE mac IS NULL",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(sql)?;
        let mut adopted = 0;
        for (id, scope, name) in rows {
            let Some((mut tx, scope, name)) = self.lock_row(&id, scope, name).await? else {
                continue;
            };
            let meta = Self::row_by_id(&mut tx, &id)
                .await?
                .into_meta(scope, name)?;
            adopted += sqlx::query(
                "UPDATE coffer_vault_meta SET mac = $1 WHERE vault_id = $2::uuid AND mac IS NULL",
            )
            .bind(tag_head(&keyring, &meta, false))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(sql)?
            .rows_affected();
            tx.commit().await.map_err(sql)?;
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
        self.check_keys().await?;
        let primary = i64::from(keyring.primary_id());
        let primary_bytes = keyring.primary_id().to_be_bytes();
        // Which key a secret is under is read from its MAC's key id, which the MAC
        // authenticates and every write sets with the envelope's, never from the key_id
        // column, which anyone who can write the table could edit.
        let pending = "mac IS NULL OR substr(mac, 1, 4) <> $1";
        let rows: Vec<(String, String, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT vault_id::text, scope, name FROM coffer_vault_meta \
             WHERE {pending} ORDER BY scope, name LIMIT $2"
        )))
        .bind(&primary_bytes[..])
        .bind(i64::try_from(limit.max(1)).unwrap_or(i64::MAX))
        .fetch_all(&self.pool)
        .await
        .map_err(sql)?;
        let mut rewrapped = 0;
        for (id, scope, name) in rows {
            // Lock the row, check its head under the key that made its MAC, then move it.
            let Some((mut tx, scope, name)) = self.lock_row(&id, scope, name).await? else {
                continue;
            };
            let meta = Self::row_by_id(&mut tx, &id).await?.into_checked(
                scope.clone(),
                name.clone(),
                Some(&keyring),
            )?;
            let text: Option<String> = sqlx::query_scalar(
                "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE id = $1::uuid",
            )
            .bind(&id)
            .fetch_one(&mut *tx)
            .await
            .map_err(sql)?;
            let Some(text) = text.map(SecretString::from) else {
                return Err(Error::backend(
                    BACKEND,
                    format!("Vault could not decrypt {scope}/{name}"),
                ));
            };
            let crypto = |source| Error::Crypto {
                scope: scope.to_string(),
                name: name.to_string(),
                source,
            };
            let sealed = from_text(text.expose_secret()).map_err(crypto)?;
            let ctx = coffer_envelope::Context::new(scope.as_str(), name.as_str())
                .with_version(meta.version);
            let moved = to_text(&keyring.rewrap(&sealed, &ctx).map_err(crypto)?);
            sqlx::query("SELECT vault.update_secret($1::uuid, $2)")
                .bind(&id)
                .bind(&moved)
                .execute(&mut *tx)
                .await
                .map_err(sql)?;
            sqlx::query(
                "UPDATE coffer_vault_meta SET key_id = $1, mac = $2 WHERE vault_id = $3::uuid",
            )
            .bind(primary)
            .bind(tag_head(&keyring, &meta, false))
            .bind(&id)
            .execute(&mut *tx)
            .await
            .map_err(sql)?;
            tx.commit().await.map_err(sql)?;
            rewrapped += 1;
        }
        let remaining: i64 = sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
            "SELECT COUNT(*) FROM coffer_vault_meta WHERE {pending}"
        )))
        .bind(&primary_bytes[..])
        .fetch_one(&self.pool)
        .await
        .map_err(sql)?;
        Ok(RewrapBatch::new(rewrapped, remaining as u64))
    }
}
