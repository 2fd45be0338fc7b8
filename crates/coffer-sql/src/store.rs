//! [`SqlStore`]: the `SecretStore` of both SQL dialects, written once over [`Dialect`].

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use async_trait::async_trait;
use coffer_envelope::{Keyring, KeyringHandle};
use coffer_store::backend::{
    MAX_WRITE_ATTEMPTS, check_condition, list_filtered, not_found, now, page_of, put_optimistic,
    retry_optimistic, tag_head,
};
use coffer_store::{
    AttributeUpdate, Capabilities, Change, ChangeOp, DeleteMode, Error, KeyUsage, ListOptions,
    ListPage, PutOptions, Result, RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore,
    Usage, VersionInfo,
};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::{Pool, Transaction};

use crate::common::{context, map_sqlx, ms, prefix_range, to_i64, verify_checks};
use crate::dialect::Dialect;
use crate::driver::{Driver, FromColumns, Param, Statement, first};
use crate::row::{
    Count, EnvelopeRow, KeyCheck, KeyCount, MetaRow, PutWrite, ScopeRow, ValueRow, VersionRow,
};
use crate::sql;

/// A [`SecretStore`] in a SQL database, the same for every [`Dialect`]: sealed values,
/// versions, check-and-set writes, soft delete and destroy. Use it as
/// [`SqliteStore`](crate::SqliteStore) or [`PgStore`](crate::PgStore), as sqlx's
/// `PgPool` is a `Pool<Postgres>`.
///
/// Values are sealed with [`coffer_envelope`] under the context (scope, name, version);
/// each write is an optimistic check-and-set on the head row, so create-only and
/// expected-version writes are exact under any number of writers.
pub struct SqlStore<D: Dialect> {
    pub(crate) pool: Pool<D::Db>,
    /// The keyring, through a handle that a [`SharedKeyring`](coffer_store::keys::SharedKeyring)
    /// kept in this store replaces on reload; each operation takes it once.
    pub(crate) keys: KeyringHandle,
    /// The primary key whose check value this store last checked against the store's
    /// key checks and recorded: a keyring replaced under the store (a rotation kept in
    /// the store) is checked and its new primary recorded before its first write.
    recorded_primary: Arc<AtomicU32>,
    pub(crate) dialect: D,
}

impl<D: Dialect> Clone for SqlStore<D> {
    fn clone(&self) -> Self {
        Self {
            pool: self.pool.clone(),
            keys: self.keys.clone(),
            recorded_primary: self.recorded_primary.clone(),
            dialect: self.dialect.clone(),
        }
    }
}

impl<D: Dialect> std::fmt::Debug for SqlStore<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut s = f.debug_struct(D::STORE);
        s.field("keyring", &self.keys);
        self.dialect.debug_fields(&mut s);
        s.finish_non_exhaustive()
    }
}

fn sql_error<D: Dialect>(e: sqlx::Error) -> Error {
    map_sqlx(D::BACKEND, e)
}

/// A refused retirement in words: the engine's trigger says the key is still in use.
fn retire_error<D: Dialect>(key_id: u32, e: sqlx::Error) -> Error {
    let in_use = e
        .as_database_error()
        .is_some_and(|d| d.message().contains("coffer: key still in use"));
    if in_use {
        return Error::config(format!(
            "{}: key {key_id} still protects envelopes or head MACs in this store: rewrap \
             them onto the primary (coffer keys rotate) before retiring it",
            D::BACKEND
        ));
    }
    sql_error::<D>(e)
}

impl<D: Dialect> SqlStore<D> {
    /// The sqlx pool (for tests and for tables of other coffer crates in the same database).
    pub fn pool(&self) -> &Pool<D::Db> {
        &self.pool
    }

    /// The keyring values are sealed with now.
    pub fn keyring(&self) -> Arc<Keyring> {
        self.keys.current()
    }

    /// How many stored envelopes (of every version, deleted or not) are not sealed under
    /// the keyring's primary key, and how many head MACs were not made with it: what a
    /// rewrap still has to move. Which key sealed an envelope is read from its header.
    pub async fn pending_rewrap(&self) -> Result<u64> {
        let keyring = self.keys.current();
        let primary = keyring.primary_id().to_be_bytes();
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        let count: Option<Count> =
            D::Db::fetch_all(&mut conn, &sql::REWRAP_REMAINING, &[Param::Blob(&primary)])
                .await
                .map(first)
                .map_err(sql_error::<D>)?;
        Ok(count.map_or(0, |c| u64::try_from(c.0).unwrap_or(0)))
    }

    /// Re-tags up to `limit` heads whose MAC another key made, after checking each one
    /// under that key; returns how many moved.
    async fn retag_heads(&self, keyring: &Keyring, limit: usize) -> Result<u64> {
        let primary = keyring.primary_id().to_be_bytes();
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        let heads: Vec<MetaRow> = D::Db::fetch_all(
            &mut conn,
            &sql::RETAG_CANDIDATES,
            &[Param::Blob(&primary), Param::Int(to_i64(limit as u64))],
        )
        .await
        .map_err(sql_error::<D>)?;
        drop(conn);
        if heads.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(sql_error::<D>)?;
        let mut moved = 0;
        for head in heads {
            let read = HeadRead::of(&head);
            let meta = head.into_checked(D::BACKEND, keyring)?;
            let mac = tag_head(keyring, &meta, read.deleted);
            moved += read.retag::<D>(&mut tx, &mac).await?;
        }
        tx.commit().await.map_err(sql_error::<D>)?;
        Ok(moved)
    }

    /// One attempt at a soft delete: `Ok(false)` when another writer changed the head
    /// between the read and the write.
    async fn try_soft_delete(&self, scope: &Scope, name: &SecretName) -> Result<bool> {
        let (keyring, head) = self.live_head(scope, name).await?;
        let meta = self.flip_deleted(&keyring, head, true).await?;
        Ok(meta.is_some())
    }

    /// One attempt at a restore: `Ok(None)` when another writer changed the head between
    /// the read and the write. A live head is returned as it is.
    async fn try_restore(&self, scope: &Scope, name: &SecretName) -> Result<Option<SecretMeta>> {
        let keyring = self.keys.current();
        self.ensure_checked(&keyring).await?;
        let head = self
            .head(scope, name)
            .await?
            .ok_or_else(|| not_found(scope, name, None))?;
        if !head.deleted {
            return head.into_checked(D::BACKEND, &keyring).map(Some);
        }
        self.flip_deleted(&keyring, head, false).await
    }

    /// Writes `head` (checked against its MAC first) as deleted or live again, with a new
    /// MAC, if it is still at the version and deletion state it was read at; `Ok(None)`
    /// when another writer changed it meanwhile.
    async fn flip_deleted(
        &self,
        keyring: &Keyring,
        head: MetaRow,
        deleted: bool,
    ) -> Result<Option<SecretMeta>> {
        let version_read = head.version;
        let mut meta = head.into_checked(D::BACKEND, keyring)?;
        meta.updated_at = now();
        let mac = tag_head(keyring, &meta, deleted);
        let (scope, name) = (meta.scope.clone(), meta.name.clone());
        let params = [
            Param::Int(ms(meta.updated_at)),
            Param::Blob(&mac),
            Param::Text(scope.as_str()),
            Param::Text(name.as_str()),
            Param::Int(version_read),
        ];
        let (statement, version, op) = if deleted {
            (&sql::SOFT_DELETE, 0, ChangeOp::Delete)
        } else {
            (&sql::RESTORE, meta.version, ChangeOp::Restore)
        };
        let written = self
            .write_head(statement, &params, &scope, &name, version, op)
            .await?;
        Ok(written.then_some(meta))
    }

    /// The keyring now (checked against the store before a write under it) and the live
    /// head a head write starts from; not found when there is none or it is deleted.
    async fn live_head(&self, scope: &Scope, name: &SecretName) -> Result<(Arc<Keyring>, MetaRow)> {
        let keyring = self.keys.current();
        self.ensure_checked(&keyring).await?;
        let head = self
            .head(scope, name)
            .await?
            .filter(|h| !h.deleted)
            .ok_or_else(|| not_found(scope, name, None))?;
        Ok((keyring, head))
    }

    /// Runs one conditional write of a head in a transaction acting for `scope` and, if
    /// it matched a row, announces the change and commits; `Ok(false)` when it matched
    /// none (another writer changed the head since it was read).
    async fn write_head(
        &self,
        statement: &crate::driver::Statement,
        params: &[Param<'_>],
        scope: &Scope,
        name: &SecretName,
        version: u64,
        op: ChangeOp,
    ) -> Result<bool> {
        let mut tx = self.begin(scope).await?;
        let n = D::Db::execute(&mut tx, statement, params)
            .await
            .map_err(sql_error::<D>)?;
        if n == 0 {
            return Ok(false);
        }
        let change = Change {
            scope: scope.clone(),
            name: name.clone(),
            version,
            op,
        };
        self.dialect.on_write(&mut tx, &change).await?;
        tx.commit().await.map_err(sql_error::<D>)?;
        Ok(true)
    }

    /// One attempt at an attribute edit: `Ok(None)` when another writer changed the head
    /// between the read and the write.
    async fn try_update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<Option<SecretMeta>> {
        let (keyring, head) = self.live_head(scope, name).await?;
        let (version_read, updated_read) = (head.version, head.updated_at);
        let mac_read = head.mac.clone().unwrap_or_default();
        let mut meta = head.into_checked(D::BACKEND, &keyring)?;
        update.apply(&mut meta)?;
        let mac = tag_head(&keyring, &meta, false);
        let tags = serde_json::to_string(&meta.tags).map_err(|e| Error::backend(D::BACKEND, e))?;
        let params = [
            Param::OptText(meta.provider.as_deref()),
            Param::Text(meta.kind.as_str()),
            Param::OptText(meta.description.as_deref()),
            Param::Text(&tags),
            Param::OptText(meta.env_name.as_deref()),
            Param::OptInt(meta.expires_at.map(ms)),
            Param::Bool(meta.active),
            Param::Int(ms(meta.updated_at)),
            Param::Blob(&mac),
            Param::Text(scope.as_str()),
            Param::Text(name.as_str()),
            Param::Int(version_read),
            Param::Int(updated_read),
            Param::Blob(&mac_read),
        ];
        let written = self
            .write_head(
                &sql::UPDATE_ATTRIBUTES,
                &params,
                scope,
                name,
                meta.version,
                ChangeOp::Attributes,
            )
            .await?;
        Ok(written.then_some(meta))
    }

    /// One page of the scope's live (or, with `deleted`, soft-deleted) heads by prefix and
    /// cursor, unfiltered.
    async fn list_page(
        &self,
        scope: &Scope,
        options: ListOptions,
        deleted: bool,
    ) -> Result<ListPage> {
        let keyring = self.keys.current();
        let limit = options.page_size()?;
        let (lower, upper) = prefix_range(options.prefix.as_deref().unwrap_or(""));
        // Start after the cursor when it is inside the prefix range, else at the prefix.
        let (start, inclusive) = match &options.cursor {
            Some(c) if c.as_str() >= lower.as_str() => (c.as_str(), false),
            _ => (lower.as_str(), true),
        };
        let params = [
            Param::Text(scope.as_str()),
            Param::Text(start),
            Param::Bool(inclusive),
            Param::OptText(upper.as_deref()),
            Param::Int(to_i64(limit as u64 + 1)),
            Param::Bool(deleted),
        ];
        let rows: Vec<MetaRow> = self.read(scope, &sql::LIST, &params).await?;
        let mut items = rows
            .into_iter()
            .map(|r| r.into_checked(D::BACKEND, &keyring))
            .collect::<Result<Vec<_>>>()?;
        Ok(page_of(&mut items, limit))
    }

    /// Builds the store on a migrated pool and checks the keyring against the key check
    /// values recorded in it: a wrong key fails here, with advice.
    pub(crate) async fn checked(
        pool: Pool<D::Db>,
        keys: KeyringHandle,
        dialect: D,
    ) -> Result<Self> {
        let store = Self {
            pool,
            keys,
            recorded_primary: Arc::new(AtomicU32::new(0)),
            dialect,
        };
        let keyring = store.keys.current();
        store.check_keyring(&keyring).await?;
        Ok(store)
    }

    /// Before a write under `keyring`'s primary: if it is not the primary this store last
    /// checked (the keyring was replaced under it), checks and records it.
    async fn ensure_checked(&self, keyring: &Keyring) -> Result<()> {
        if self.recorded_primary.load(Ordering::Acquire) == keyring.primary_id() {
            return Ok(());
        }
        self.check_keyring(keyring).await
    }

    /// Checks `keyring` against the key check values recorded in the store (a wrong key,
    /// a retired primary) and records its primary's check value.
    async fn check_keyring(&self, keyring: &Keyring) -> Result<()> {
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        let recorded: Vec<KeyCheck> = D::Db::fetch_all(&mut conn, &sql::KEY_CHECKS, &[])
            .await
            .map_err(sql_error::<D>)?;
        let primary = i64::from(keyring.primary_id());
        if let Some(k) = recorded
            .iter()
            .find(|k| k.key_id == primary && k.retired_at.is_some())
        {
            return Err(Error::config(format!(
                "{}: this keyring is out of date: its primary key {} was retired from this \
                 store{}; load the current keyring (another instance rotated and retired it)",
                D::BACKEND,
                k.key_id,
                k.retired_at
                    .and_then(chrono::DateTime::from_timestamp_millis)
                    .map(|at| format!(
                        " at {}",
                        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                    ))
                    .unwrap_or_default()
            )));
        }
        let recorded: Vec<(i64, String)> =
            recorded.into_iter().map(|k| (k.key_id, k.check)).collect();
        verify_checks(D::BACKEND, keyring, &recorded)?;
        drop(conn);
        self.record_primary_check(keyring).await?;
        self.recorded_primary
            .store(keyring.primary_id(), Ordering::Release);
        Ok(())
    }

    /// A transaction acting for `scope`.
    pub(crate) async fn begin(&self, scope: &Scope) -> Result<Transaction<'static, D::Db>> {
        let mut tx = self.pool.begin().await.map_err(sql_error::<D>)?;
        self.dialect.enter_scope(&mut tx, scope).await?;
        Ok(tx)
    }

    /// Runs one statement that only reads, in `scope`: every row it returned. The
    /// pool does not ping a connection before lending it ([`Liveness`](crate::support::Liveness)),
    /// so this statement is the liveness check: if it finds its connection gone (closed
    /// by the server, cut by a restart), it runs once more on another, which the pool
    /// pings or opens anew. Running a read twice is always safe.
    async fn read<R: FromColumns>(
        &self,
        scope: &Scope,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<R>> {
        match self.try_read(scope, statement, params).await {
            Err(e) if self.dialect.lost(&e) => {
                tracing::debug!(
                    backend = D::BACKEND,
                    "a pooled connection was gone; reading again on another"
                );
                self.try_read(scope, statement, params).await
            }
            done => done,
        }
    }

    async fn try_read<R: FromColumns>(
        &self,
        scope: &Scope,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<R>> {
        let mut conn = self.dialect.conn(&self.pool, scope).await?;
        let rows = D::Db::fetch_all(&mut conn, statement, params)
            .await
            .map_err(sql_error::<D>)?;
        conn.finish().await.map_err(sql_error::<D>)?;
        Ok(rows)
    }

    async fn head(&self, scope: &Scope, name: &SecretName) -> Result<Option<MetaRow>> {
        let params = [Param::Text(scope.as_str()), Param::Text(name.as_str())];
        self.read(scope, &sql::SELECT_HEAD, &params)
            .await
            .map(first)
    }

    /// One optimistic attempt at a write; `Ok(None)`: another writer got there first.
    async fn try_put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<Option<SecretMeta>> {
        let keyring = self.keys.current();
        self.ensure_checked(&keyring).await?;
        // The head is checked against its MAC before anything is decided on it.
        let head = match self.head(scope, name).await? {
            Some(h) => Some((
                (h.version, h.deleted),
                h.into_checked(D::BACKEND, &keyring)?,
            )),
            None => None,
        };
        let live = head
            .as_ref()
            .filter(|((_, deleted), _)| !deleted)
            .map(|(_, meta)| meta.version);
        check_condition(scope, name, options.condition, live)?;

        let (old, mut meta) = match head {
            Some((old, mut meta)) => {
                meta.version += 1;
                meta.updated_at = now();
                options.attributes.apply(&mut meta);
                (Some(old), meta)
            }
            None => (
                None,
                SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
            ),
        };
        meta.key_id = Some(keyring.primary_id());
        let sealed = keyring.seal(
            value.expose_secret().as_bytes(),
            &context(scope.as_str(), name.as_str(), meta.version),
        );
        let write = PutWrite {
            scope,
            name,
            meta: &meta,
            tags: serde_json::to_string(&meta.tags).map_err(|e| Error::backend(D::BACKEND, e))?,
            old,
            key_id: i64::from(keyring.primary_id()),
            sealed,
            mac: tag_head(&keyring, &meta, false),
        };
        if !self.dialect.write_put(&self.pool, &write).await? {
            return Ok(None);
        }
        Ok(Some(meta))
    }

    async fn record_primary_check(&self, keyring: &Keyring) -> Result<()> {
        let primary = keyring.primary_id();
        if let Some(check) = keyring.check_value(primary) {
            let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
            let params = [Param::Int(i64::from(primary)), Param::Text(&check)];
            D::Db::execute(&mut conn, &sql::RECORD_KEY_CHECK, &params)
                .await
                .map_err(sql_error::<D>)?;
        }
        Ok(())
    }
}

#[async_trait]
impl<D: Dialect> SecretStore for SqlStore<D> {
    fn backend(&self) -> &'static str {
        D::BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        // A write is not run again when its connection breaks (it may have committed
        // before the break), but the break is noted so the pool pings the connections
        // idle since then before lending them.
        put_optimistic(D::BACKEND, scope, name, value, options, || {
            self.try_put(scope, name, value, options)
        })
        .await
        .inspect_err(|e| {
            self.dialect.lost(e);
        })
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let keyring = self.keys.current();
        let params = [
            Param::OptInt(version.map(to_i64)),
            Param::Text(scope.as_str()),
            Param::Text(name.as_str()),
        ];
        let row: ValueRow = first(self.read(scope, &sql::SELECT_VALUE, &params).await?)
            .ok_or_else(|| not_found(scope, name, version))?;
        let mut meta = row.head.into_checked(D::BACKEND, &keyring)?;
        meta.check_readable()?;
        meta.version = u64::try_from(row.version).map_err(|_| not_found(scope, name, version))?;
        meta.key_id = keyring.key_id_of(&row.ciphertext).ok();
        let value = keyring
            .open_string(
                &row.ciphertext,
                &context(scope.as_str(), name.as_str(), meta.version),
            )
            .map_err(|source| Error::Crypto {
                scope: scope.to_string(),
                name: name.to_string(),
                source,
            })?;
        Ok(Secret { value, meta })
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let keyring = self.keys.current();
        match self.head(scope, name).await? {
            Some(h) if !h.deleted => h.into_checked(D::BACKEND, &keyring),
            _ => Err(not_found(scope, name, None)),
        }
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        list_filtered(options, |page| self.list_page(scope, page, false)).await
    }

    /// The head is checked against its MAC first, so a tampered head lists nothing, then
    /// the versions' numbers, times and key ids are read (never an envelope).
    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let keyring = self.keys.current();
        match self.head(scope, name).await? {
            Some(h) if !h.deleted => h.into_checked(D::BACKEND, &keyring)?,
            _ => return Err(not_found(scope, name, None)),
        };
        let params = [Param::Text(scope.as_str()), Param::Text(name.as_str())];
        let rows: Vec<VersionRow> = self.read(scope, &sql::VERSIONS, &params).await?;
        rows.into_iter().map(|r| r.into_info(D::BACKEND)).collect()
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        list_filtered(options, |page| self.list_page(scope, page, true)).await
    }

    /// Checks the deleted head against its MAC and writes its live state with a new MAC,
    /// matching only the head as it was read.
    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        retry_optimistic(D::BACKEND, scope, name, || self.try_restore(scope, name)).await
    }

    /// Checks the head against its MAC, applies the edit and writes the head with a new
    /// MAC in one statement that matches only the head as it was read.
    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        update.validate()?;
        retry_optimistic(D::BACKEND, scope, name, || {
            self.try_update_attributes(scope, name, update)
        })
        .await
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        let rows: Vec<ScopeRow> = D::Db::fetch_all(&mut conn, &sql::LIST_SCOPES, &[])
            .await
            .map_err(sql_error::<D>)?;
        rows.into_iter()
            .map(|r| {
                Scope::new(r.scope).map_err(|e| {
                    Error::backend(D::BACKEND, format!("a row has an invalid scope: {e}"))
                })
            })
            .collect()
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        match mode {
            // A soft delete writes the head's deleted state with a new MAC, so it checks
            // the head first and writes with check-and-set on the version it read.
            DeleteMode::Soft => {
                for _ in 0..MAX_WRITE_ATTEMPTS {
                    if self.try_soft_delete(scope, name).await? {
                        return Ok(());
                    }
                }
                Err(Error::Unavailable {
                    backend: D::BACKEND,
                    message: format!(
                        "delete of {scope}/{name} lost to concurrent writers \
                         {MAX_WRITE_ATTEMPTS} times"
                    ),
                    source: None,
                })
            }
            // Destroying removes the rows whatever they say: nothing is read from them.
            DeleteMode::Destroy => {
                let key = [Param::Text(scope.as_str()), Param::Text(name.as_str())];
                let mut tx = self.begin(scope).await?;
                D::Db::execute(&mut tx, &sql::DESTROY_VERSIONS, &key)
                    .await
                    .map_err(sql_error::<D>)?;
                let n = D::Db::execute(&mut tx, &sql::DESTROY_HEAD, &key)
                    .await
                    .map_err(sql_error::<D>)?;
                if n == 0 {
                    return Err(not_found(scope, name, None));
                }
                let change = Change {
                    scope: scope.clone(),
                    name: name.clone(),
                    version: 0,
                    op: ChangeOp::Destroy,
                };
                self.dialect.on_write(&mut tx, &change).await?;
                tx.commit().await.map_err(sql_error::<D>)
            }
            _ => Err(Error::Unsupported {
                backend: D::BACKEND,
                operation: "this delete mode",
            }),
        }
    }

    /// Moves up to `limit` items to the primary key: first head MACs made by other keys
    /// (each checked under its key, so a forged head stops the rotation as
    /// [`Error::Tampered`]), then envelopes whose header names another key.
    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        let keyring = self.keys.current();
        self.check_keyring(&keyring).await?;
        let limit = limit.max(1);
        let retagged = self.retag_heads(&keyring, limit).await?;
        let limit = limit - usize::try_from(retagged).unwrap_or(limit).min(limit);
        if limit == 0 {
            return Ok(RewrapBatch::new(0, self.pending_rewrap().await?).with_retagged(retagged));
        }
        let primary_id = keyring.primary_id().to_be_bytes();
        let primary = Param::Int(i64::from(keyring.primary_id()));
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        let rows: Vec<EnvelopeRow> = D::Db::fetch_all(
            &mut conn,
            &sql::REWRAP_CANDIDATES,
            &[Param::Blob(&primary_id), Param::Int(to_i64(limit as u64))],
        )
        .await
        .map_err(sql_error::<D>)?;
        drop(conn);

        let mut tx = self.pool.begin().await.map_err(sql_error::<D>)?;
        let mut rewrapped = 0;
        for row in rows {
            let (scope, name, version) = (&row.scope, &row.name, row.version);
            let moved = keyring
                .rewrap(&row.ciphertext, &context(scope, name, version as u64))
                .map_err(|source| Error::Crypto {
                    scope: scope.clone(),
                    name: format!("{name} (version {version})"),
                    source,
                })?;
            // Check-and-set on the old envelope: a row changed since it was read is left
            // for the next batch, never overwritten.
            let params = [
                Param::Blob(&moved),
                primary,
                Param::Text(scope),
                Param::Text(name),
                Param::Int(version),
                Param::Blob(&row.ciphertext),
            ];
            rewrapped += D::Db::execute(&mut tx, &sql::REWRAP_ONE, &params)
                .await
                .map_err(sql_error::<D>)?;
        }
        tx.commit().await.map_err(sql_error::<D>)?;
        Ok(RewrapBatch::new(rewrapped, self.pending_rewrap().await?).with_retagged(retagged))
    }

    /// Envelopes of every version, deleted or not, counted by the key id in their own
    /// header; heads by the key id that starts their MAC.
    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        let envelopes: Vec<KeyCount> = D::Db::fetch_all(&mut conn, &sql::KEY_USAGE, &[])
            .await
            .map_err(sql_error::<D>)?;
        let heads: Vec<KeyCount> = D::Db::fetch_all(&mut conn, &sql::HEAD_KEY_USAGE, &[])
            .await
            .map_err(sql_error::<D>)?;
        let mut usage = std::collections::BTreeMap::<Option<u32>, KeyUsage>::new();
        for c in envelopes {
            usage
                .entry(c.key_id)
                .or_insert_with(|| KeyUsage::new(c.key_id, 0, 0))
                .envelopes += c.n;
        }
        for c in heads {
            usage
                .entry(c.key_id)
                .or_insert_with(|| KeyUsage::new(c.key_id, 0, 0))
                .heads += c.n;
        }
        Ok(usage.into_values().collect())
    }

    /// Marks `key_id` retired in the key check table. The database refuses while any
    /// envelope (by its header or its key_id column) or head MAC is under the key, and
    /// from then on refuses every write under it, from any instance.
    async fn retire_key(&self, key_id: u32) -> Result<()> {
        let keyring = self.keys.current();
        if key_id == keyring.primary_id() {
            return Err(Error::config(format!(
                "{}: key {key_id} is this keyring's primary: rotate to a new key first",
                D::BACKEND
            )));
        }
        let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
        if let Some(check) = keyring.check_value(key_id) {
            // A key that never sealed here is recorded first, so it is refused from now on.
            let params = [Param::Int(i64::from(key_id)), Param::Text(&check)];
            D::Db::execute(&mut conn, &sql::RECORD_KEY_CHECK, &params)
                .await
                .map_err(sql_error::<D>)?;
        }
        let params = [Param::Int(ms(now())), Param::Int(i64::from(key_id))];
        let retired = D::Db::execute(&mut conn, &sql::RETIRE_KEY, &params)
            .await
            .map_err(|e| retire_error::<D>(key_id, e))?;
        if retired == 0 {
            let recorded: Vec<KeyCheck> = D::Db::fetch_all(&mut conn, &sql::KEY_CHECKS, &[])
                .await
                .map_err(sql_error::<D>)?;
            let known = recorded.iter().any(|k| k.key_id == i64::from(key_id));
            if !known {
                return Err(Error::config(format!(
                    "{}: key {key_id} is neither in this keyring nor recorded in the store",
                    D::BACKEND
                )));
            }
            // Already retired: retiring is idempotent.
        }
        Ok(())
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        let keyring = self.keys.current();
        self.ensure_checked(&keyring).await?;
        let mut adopted = 0;
        loop {
            let mut conn = self.pool.acquire().await.map_err(sql_error::<D>)?;
            let heads: Vec<MetaRow> =
                D::Db::fetch_all(&mut conn, &sql::UNTAGGED_HEADS, &[Param::Int(500)])
                    .await
                    .map_err(sql_error::<D>)?;
            drop(conn);
            if heads.is_empty() {
                return Ok(adopted);
            }
            let mut tx = self.pool.begin().await.map_err(sql_error::<D>)?;
            for head in heads {
                let read = HeadRead::of(&head);
                let meta = head.into_meta(D::BACKEND)?;
                let mac = tag_head(&keyring, &meta, read.deleted);
                adopted += read.retag::<D>(&mut tx, &mac).await?;
            }
            tx.commit().await.map_err(sql_error::<D>)?;
        }
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        let Some(first) = usage.first() else {
            return Ok(());
        };
        // One transaction for the batch; with row-level security it enters each record's
        // scope before touching its row.
        let mut records: Vec<&Usage> = usage.iter().collect();
        records.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
        let mut tx = self.begin(&first.scope).await?;
        let mut entered = &first.scope;
        for u in records {
            if u.scope != *entered {
                self.dialect.enter_scope(&mut tx, &u.scope).await?;
                entered = &u.scope;
            }
            let params = [
                Param::Int(to_i64(u.count)),
                Param::Int(ms(u.last_used_at)),
                Param::Text(u.scope.as_str()),
                Param::Text(u.name.as_str()),
            ];
            D::Db::execute(&mut tx, &sql::RECORD_USAGE, &params)
                .await
                .map_err(sql_error::<D>)?;
        }
        tx.commit().await.map_err(sql_error::<D>)
    }
}

/// What a re-tag checks-and-sets on: the head as it was read.
struct HeadRead {
    scope: String,
    name: String,
    version: i64,
    deleted: bool,
    updated_at: i64,
    mac: Option<Vec<u8>>,
}

impl HeadRead {
    fn of(head: &MetaRow) -> Self {
        Self {
            scope: head.scope.clone(),
            name: head.name.clone(),
            version: head.version,
            deleted: head.deleted,
            updated_at: head.updated_at,
            mac: head.mac.clone(),
        }
    }

    /// Writes `mac` over the head if it is still as read; how many rows changed (0 or 1).
    async fn retag<D: Dialect>(
        &self,
        tx: &mut Transaction<'static, D::Db>,
        mac: &[u8],
    ) -> Result<u64> {
        let params = [
            Param::Blob(mac),
            Param::Text(&self.scope),
            Param::Text(&self.name),
            Param::Int(self.version),
            Param::Bool(self.deleted),
            Param::Int(self.updated_at),
            Param::OptBlob(self.mac.as_deref()),
        ];
        D::Db::execute(tx, &sql::RETAG_HEAD, &params)
            .await
            .map_err(sql_error::<D>)
    }
}
