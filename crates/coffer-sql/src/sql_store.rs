//! The `SecretStore` implementation shared by the SQL dialects.
//!
//! The SQL is written once, portable between SQLite and Postgres (`$N` parameters in
//! ascending order of first use, `TRUE`/`FALSE`, bytewise name ranges instead of `LIKE`),
//! and the macro expands it once per dialect with that dialect's concrete sqlx types.
//! A store type that uses it provides these hooks:
//!
//! - `async fn conn(&self, scope: Option<&Scope>) -> Result<Scoped<DB>>`: a connection for
//!   one call (Postgres with row-level security: a transaction with the scope set);
//! - `async fn enter_scope(&self, tx, scope: &Scope) -> Result<()>`: makes the rest of a
//!   transaction act for `scope` (Postgres with row-level security: `set_config`);
//! - `async fn on_write(&self, conn: &mut DB::Connection, change: &Change) -> Result<()>`:
//!   runs inside each write's transaction (Postgres: `pg_notify`);
//! - `async fn write_put(&self, write: &PutWrite<'_>) -> Result<bool>`: writes a put's
//!   head row and version atomically, `false` if the head changed since it was read
//!   (SQLite: one transaction; Postgres: one statement, see `PgStore`);
//! - the fields `pool` and `keyring`.

use sqlx::pool::PoolConnection;
use sqlx::{Database, Transaction};

/// A connection for one store call: pooled, or a transaction that sets per-call state
/// (and must be committed with [`Scoped::finish`]).
pub(crate) enum Scoped<DB: Database> {
    Pooled(PoolConnection<DB>),
    Tx(Transaction<'static, DB>),
}

impl<DB: Database> std::ops::Deref for Scoped<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        match self {
            Scoped::Pooled(c) => c,
            Scoped::Tx(t) => t,
        }
    }
}

impl<DB: Database> std::ops::DerefMut for Scoped<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Scoped::Pooled(c) => c,
            Scoped::Tx(t) => t,
        }
    }
}

impl<DB: Database> Scoped<DB> {
    pub(crate) async fn finish(self) -> Result<(), sqlx::Error> {
        match self {
            Scoped::Pooled(_) => Ok(()),
            Scoped::Tx(t) => t.commit().await,
        }
    }
}

pub use coffer_store::Change;

macro_rules! impl_sql_store {
    ($store:ident, $db:ty, $backend:expr) => {
        impl $store {
            async fn head_on(
                conn: &mut <$db as sqlx::Database>::Connection,
                scope: &coffer_store::Scope,
                name: &coffer_store::SecretName,
            ) -> coffer_store::Result<Option<$crate::common::MetaRow>> {
                sqlx::query_as::<_, $crate::common::MetaRow>(concat!(
                    $crate::common::select_meta!(),
                    "WHERE s.scope = $1 AND s.name = $2"
                ))
                .bind(scope.as_str())
                .bind(name.as_str())
                .fetch_optional(conn)
                .await
                .map_err(|e| $crate::common::map_sqlx($backend, e))
            }

            /// One optimistic attempt at a write; `Ok(None)`: another writer got there first.
            async fn try_put(
                &self,
                scope: &coffer_store::Scope,
                name: &coffer_store::SecretName,
                value: &secrecy::SecretString,
                options: &coffer_store::PutOptions,
            ) -> coffer_store::Result<Option<coffer_store::SecretMeta>> {
                use secrecy::ExposeSecret as _;
                use $crate::common::{context, map_sqlx};
                let sql = |e| map_sqlx($backend, e);

                let mut conn = self.conn(Some(scope)).await?;
                let head = Self::head_on(&mut conn, scope, name).await?;
                conn.finish().await.map_err(sql)?;
                let live = head.as_ref().filter(|h| !h.deleted).map(|h| h.version as u64);
                coffer_store::backend::check_condition(scope, name, options.condition, live)?;

                let (old, mut meta) = match head {
                    Some(h) => {
                        let old = (h.version, h.deleted);
                        let mut meta = h.into_meta($backend)?;
                        meta.version += 1;
                        meta.updated_at = coffer_store::backend::now();
                        options.attributes.apply(&mut meta);
                        (Some(old), meta)
                    }
                    None => (
                        None,
                        coffer_store::SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
                    ),
                };
                meta.key_id = Some(self.keyring.primary_id());
                let sealed = self.keyring.seal(
                    value.expose_secret().as_bytes(),
                    &context(scope.as_str(), name.as_str(), meta.version),
                );
                let write = $crate::common::PutWrite {
                    scope,
                    name,
                    meta: &meta,
                    tags: serde_json::to_string(&meta.tags)
                        .map_err(|e| coffer_store::Error::backend($backend, e))?,
                    old,
                    key_id: i64::from(self.keyring.primary_id()),
                    sealed,
                };
                if !self.write_put(&write).await? {
                    return Ok(None);
                }
                Ok(Some(meta))
            }

            async fn record_primary_check(&self) -> coffer_store::Result<()> {
                let primary = self.keyring.primary_id();
                if let Some(check) = self.keyring.check_value(primary) {
                    sqlx::query(
                        "INSERT INTO coffer_key_checks (key_id, check_value) VALUES ($1, $2) \
                         ON CONFLICT (key_id) DO NOTHING",
                    )
                    .bind(i64::from(primary))
                    .bind(check)
                    .execute(&self.pool)
                    .await
                    .map_err(|e| $crate::common::map_sqlx($backend, e))?;
                }
                Ok(())
            }

            /// Verifies the recorded key check values against the keyring, then records
            /// the primary's: a wrong key fails here, with advice.
            async fn check_keys(&self) -> coffer_store::Result<()> {
                let recorded: Vec<(i64, String)> =
                    sqlx::query_as("SELECT key_id, check_value FROM coffer_key_checks")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(|e| $crate::common::map_sqlx($backend, e))?;
                $crate::common::verify_checks($backend, &self.keyring, &recorded)?;
                self.record_primary_check().await
            }
        }

        #[async_trait::async_trait]
        impl coffer_store::SecretStore for $store {
            fn backend(&self) -> &'static str {
                $backend
            }

            fn capabilities(&self) -> coffer_store::Capabilities {
                coffer_store::Capabilities::ALL
            }

            async fn put(
                &self,
                scope: &coffer_store::Scope,
                name: &coffer_store::SecretName,
                value: &secrecy::SecretString,
                options: &coffer_store::PutOptions,
            ) -> coffer_store::Result<coffer_store::SecretMeta> {
                coffer_store::backend::put_optimistic($backend, scope, name, value, options, || {
                    self.try_put(scope, name, value, options)
                })
                .await
            }

            async fn get(
                &self,
                scope: &coffer_store::Scope,
                name: &coffer_store::SecretName,
                version: Option<u64>,
            ) -> coffer_store::Result<coffer_store::Secret> {
                use sqlx::Row as _;
                use $crate::common::{context, map_sqlx, to_i64};
                let sql = |e| map_sqlx($backend, e);
                let not_found = || coffer_store::Error::NotFound {
                    scope: scope.to_string(),
                    name: name.to_string(),
                    version,
                };
                let mut conn = self.conn(Some(scope)).await?;
                let row = sqlx::query(
                    "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, s.tags, \
                     s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, s.last_used_at, \
                     s.usage_count, v.key_id, v.version AS v_version, v.ciphertext FROM coffer_secrets s \
                     JOIN coffer_secret_versions v ON v.scope = s.scope AND v.name = s.name \
                     AND v.version = COALESCE($1, s.version) \
                     WHERE s.scope = $2 AND s.name = $3 AND s.deleted = FALSE",
                )
                .bind(version.map(to_i64))
                .bind(scope.as_str())
                .bind(name.as_str())
                .fetch_optional(&mut *conn)
                .await
                .map_err(sql)?
                .ok_or_else(not_found)?;
                conn.finish().await.map_err(sql)?;
                let v_version: i64 = row.try_get("v_version").map_err(sql)?;
                let ciphertext: Vec<u8> = row.try_get("ciphertext").map_err(sql)?;
                let mut meta = <$crate::common::MetaRow as sqlx::FromRow<_>>::from_row(&row)
                    .map_err(sql)?
                    .into_meta($backend)?;
                meta.check_readable()?;
                meta.version = u64::try_from(v_version).map_err(|_| not_found())?;
                meta.key_id = self.keyring.key_id_of(&ciphertext).ok();
                let value = self
                    .keyring
                    .open_string(&ciphertext, &context(scope.as_str(), name.as_str(), meta.version))
                    .map_err(|source| coffer_store::Error::Crypto {
                        scope: scope.to_string(),
                        name: name.to_string(),
                        source,
                    })?;
                Ok(coffer_store::Secret { value, meta })
            }

            async fn metadata(
                &self,
                scope: &coffer_store::Scope,
                name: &coffer_store::SecretName,
            ) -> coffer_store::Result<coffer_store::SecretMeta> {
                let mut conn = self.conn(Some(scope)).await?;
                let head = Self::head_on(&mut conn, scope, name).await?;
                conn.finish().await.map_err(|e| $crate::common::map_sqlx($backend, e))?;
                match head {
                    Some(h) if !h.deleted => h.into_meta($backend),
                    _ => Err(coffer_store::Error::NotFound {
                        scope: scope.to_string(),
                        name: name.to_string(),
                        version: None,
                    }),
                }
            }

            async fn list(
                &self,
                scope: &coffer_store::Scope,
                options: &coffer_store::ListOptions,
            ) -> coffer_store::Result<coffer_store::ListPage> {
                use $crate::common::{map_sqlx, prefix_range, to_i64};
                options.validate()?;
                let limit = options.page_size()?;
                let (lower, upper) = prefix_range(options.prefix.as_deref().unwrap_or(""));
                // Start after the cursor when it is inside the prefix range, else at the prefix.
                let (start, inclusive) = match &options.cursor {
                    Some(c) if c.as_str() >= lower.as_str() => (c.clone(), false),
                    _ => (lower, true),
                };
                let mut conn = self.conn(Some(scope)).await?;
                let rows: Vec<$crate::common::MetaRow> = sqlx::query_as(concat!(
                    $crate::common::select_meta!(),
                    "WHERE s.scope = $1 AND s.deleted = FALSE AND (s.name > $2 OR ($3 AND s.name = $2)) \
                     AND ($4 IS NULL OR s.name < $4) ORDER BY s.name LIMIT $5"
                ))
                .bind(scope.as_str())
                .bind(&start)
                .bind(inclusive)
                .bind(upper)
                .bind(to_i64(limit as u64 + 1))
                .fetch_all(&mut *conn)
                .await
                .map_err(|e| map_sqlx($backend, e))?;
                conn.finish().await.map_err(|e| map_sqlx($backend, e))?;
                let mut items = rows
                    .into_iter()
                    .map(|r| r.into_meta($backend))
                    .collect::<coffer_store::Result<Vec<_>>>()?;
                Ok(coffer_store::backend::page_of(&mut items, limit))
            }

            async fn delete(
                &self,
                scope: &coffer_store::Scope,
                name: &coffer_store::SecretName,
                mode: coffer_store::DeleteMode,
            ) -> coffer_store::Result<()> {
                use $crate::common::{map_sqlx, ms};
                let sql = |e| map_sqlx($backend, e);
                let mut tx = self.begin(scope).await?;
                let (affected, op) = match mode {
                    coffer_store::DeleteMode::Soft => (
                        sqlx::query(
                            "UPDATE coffer_secrets SET deleted = TRUE, updated_at = $1 \
                             WHERE scope = $2 AND name = $3 AND deleted = FALSE",
                        )
                        .bind(ms(coffer_store::backend::now()))
                        .bind(scope.as_str())
                        .bind(name.as_str())
                        .execute(&mut *tx)
                        .await
                        .map_err(sql)?
                        .rows_affected(),
                        coffer_store::ChangeOp::Delete,
                    ),
                    coffer_store::DeleteMode::Destroy => {
                        sqlx::query("DELETE FROM coffer_secret_versions WHERE scope = $1 AND name = $2")
                            .bind(scope.as_str())
                            .bind(name.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(sql)?;
                        let n = sqlx::query("DELETE FROM coffer_secrets WHERE scope = $1 AND name = $2")
                            .bind(scope.as_str())
                            .bind(name.as_str())
                            .execute(&mut *tx)
                            .await
                            .map_err(sql)?
                            .rows_affected();
                        (n, coffer_store::ChangeOp::Destroy)
                    }
                    _ => {
                        return Err(coffer_store::Error::Unsupported {
                            backend: $backend,
                            operation: "this delete mode",
                        });
                    }
                };
                if affected == 0 {
                    return Err(coffer_store::Error::NotFound {
                        scope: scope.to_string(),
                        name: name.to_string(),
                        version: None,
                    });
                }
                let change = $crate::sql_store::Change {
                    scope: scope.clone(),
                    name: name.clone(),
                    version: 0,
                    op,
                };
                self.on_write(&mut tx, &change).await?;
                tx.commit().await.map_err(sql)?;
                Ok(())
            }

            async fn rewrap_batch(&self, limit: usize) -> coffer_store::Result<coffer_store::RewrapBatch> {
                use $crate::common::{context, map_sqlx, to_i64};
                let sql = |e| map_sqlx($backend, e);
                self.record_primary_check().await?;
                let primary = i64::from(self.keyring.primary_id());
                let rows: Vec<(String, String, i64, Vec<u8>)> = sqlx::query_as(
                    "SELECT scope, name, version, ciphertext FROM coffer_secret_versions \
                     WHERE key_id <> $1 ORDER BY scope, name, version LIMIT $2",
                )
                .bind(primary)
                .bind(to_i64(limit.max(1) as u64))
                .fetch_all(&self.pool)
                .await
                .map_err(sql)?;

                let mut tx = self.pool.begin().await.map_err(sql)?;
                let mut rewrapped = 0;
                for (scope, name, version, ciphertext) in rows {
                    let moved = self
                        .keyring
                        .rewrap(&ciphertext, &context(&scope, &name, version as u64))
                        .map_err(|source| coffer_store::Error::Crypto {
                            scope: scope.clone(),
                            name: format!("{name} (version {version})"),
                            source,
                        })?;
                    // Check-and-set on the old envelope: a row changed since it was read
                    // is left for the next batch, never overwritten.
                    rewrapped += sqlx::query(
                        "UPDATE coffer_secret_versions SET ciphertext = $1, key_id = $2 \
                         WHERE scope = $3 AND name = $4 AND version = $5 AND ciphertext = $6",
                    )
                    .bind(&moved)
                    .bind(primary)
                    .bind(&scope)
                    .bind(&name)
                    .bind(version)
                    .bind(&ciphertext)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql)?
                    .rows_affected();
                }
                tx.commit().await.map_err(sql)?;
                let remaining: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM coffer_secret_versions WHERE key_id <> $1")
                        .bind(primary)
                        .fetch_one(&self.pool)
                        .await
                        .map_err(sql)?;
                Ok(coffer_store::RewrapBatch::new(rewrapped, remaining as u64))
            }

            async fn record_usage(&self, usage: &[coffer_store::Usage]) -> coffer_store::Result<()> {
                use $crate::common::{map_sqlx, ms, to_i64};
                let sql = |e| map_sqlx($backend, e);
                let Some(first) = usage.first() else {
                    return Ok(());
                };
                // One transaction for the batch; with row-level security it enters each
                // record's scope before touching its row.
                let mut records: Vec<&coffer_store::Usage> = usage.iter().collect();
                records.sort_by(|a, b| (&a.scope, &a.name).cmp(&(&b.scope, &b.name)));
                let mut tx = self.begin(&first.scope).await?;
                let mut entered = &first.scope;
                for u in records {
                    if u.scope != *entered {
                        self.enter_scope(&mut tx, &u.scope).await?;
                        entered = &u.scope;
                    }
                    sqlx::query(
                        "UPDATE coffer_secrets SET usage_count = usage_count + $1, \
                         last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 \
                         THEN $2 ELSE last_used_at END \
                         WHERE scope = $3 AND name = $4 AND deleted = FALSE",
                    )
                    .bind(to_i64(u.count))
                    .bind(ms(u.last_used_at))
                    .bind(u.scope.as_str())
                    .bind(u.name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(sql)?;
                }
                tx.commit().await.map_err(sql)
            }
        }
    };
}
pub(crate) use impl_sql_store;
