//! [`SqlKeyring`]: the keyring kept in the store's own database (table `coffer_keyring`,
//! migrations `0005_keyring` on SQLite and `0006_keyring` on Postgres).

use std::sync::Arc;

use async_trait::async_trait;
use coffer_envelope::KeyringKek;
use coffer_store::keys::{KeyringReload, KeyringStorage, SharedKeyring, StoredKeyring};
use coffer_store::{Error, Result};
use sqlx::Pool;

use crate::common::map_sqlx;
use crate::dialect::Dialect;
use crate::driver::{Columns, Driver, FromColumns, Param, first};
use crate::sql;
use crate::store::SqlStore;

/// The sealed keyring document of a SQL store, in its table `coffer_keyring` (one row).
///
/// The database enforces what it can: one row, a generation that grows by exactly one
/// per write, no delete (and on Postgres, every write announced on `coffer_secrets`,
/// whoever wrote it). A write names the generation it read, so of two instances
/// rotating at once exactly one wins. Build it with [`SqlStore::keyring_storage`], or open
/// a store on it with `SqliteStore::connect_shared` / `PgStore::connect_shared`.
pub struct SqlKeyring<D: Dialect> {
    pool: Pool<D::Db>,
    /// The dialect the pool was opened with, kept for as long as the pool: on Postgres
    /// it holds the cleartext-password guard the pool may connect through.
    dialect: D,
}

impl<D: Dialect> Clone for SqlKeyring<D> {
    fn clone(&self) -> Self {
        Self::new(self.pool.clone(), self.dialect.clone())
    }
}

impl<D: Dialect> std::fmt::Debug for SqlKeyring<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlKeyring")
            .field("backend", &D::BACKEND)
            .finish_non_exhaustive()
    }
}

impl<D: Dialect> SqlKeyring<D> {
    /// The keyring table of the database behind `pool`, which must be migrated and was
    /// opened with `dialect`.
    pub(crate) fn new(pool: Pool<D::Db>, dialect: D) -> Self {
        Self { pool, dialect }
    }
}

struct KeyringRow {
    generation: i64,
    document: Vec<u8>,
}

impl FromColumns for KeyringRow {
    fn from_columns(row: &impl Columns) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            generation: row.int("generation")?,
            document: row.blob("document")?,
        })
    }
}

#[async_trait]
impl<D: Dialect> KeyringStorage for SqlKeyring<D> {
    fn backend(&self) -> &'static str {
        D::BACKEND
    }

    async fn read_keyring(&self) -> Result<Option<StoredKeyring>> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| map_sqlx(D::BACKEND, e))?;
        let row: Option<KeyringRow> = D::Db::fetch_all(&mut conn, &sql::READ_KEYRING, &[])
            .await
            .map(first)
            .map_err(|e| map_sqlx(D::BACKEND, e))?;
        row.map(|r| {
            Ok(StoredKeyring {
                generation: u64::try_from(r.generation).map_err(|_| {
                    Error::config(format!(
                        "{}: the keyring's generation is negative",
                        D::BACKEND
                    ))
                })?,
                document: r.document,
            })
        })
        .transpose()
    }

    async fn write_keyring(&self, document: &[u8], expected: Option<u64>) -> Result<u64> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(|e| map_sqlx(D::BACKEND, e))?;
        let written = match expected {
            None => {
                let params = [Param::Blob(document), Param::Int(now)];
                D::Db::execute(&mut conn, &sql::CREATE_KEYRING, &params).await
            }
            Some(generation) => {
                let params = [
                    Param::Blob(document),
                    Param::Int(now),
                    Param::Int(i64::try_from(generation).unwrap_or(i64::MAX)),
                ];
                D::Db::execute(&mut conn, &sql::UPDATE_KEYRING, &params).await
            }
        }
        .map_err(|e| map_sqlx(D::BACKEND, e))?;
        drop(conn);
        if written == 1 {
            return Ok(expected.map_or(1, |g| g + 1));
        }
        let found = self.read_keyring().await?.map(|k| k.generation);
        Err(Error::KeyringConflict {
            backend: D::BACKEND,
            found,
        })
    }
}

impl<D: Dialect> SqlStore<D> {
    /// The keyring table of this store's database, as a [`KeyringStorage`].
    pub fn keyring_storage(&self) -> SqlKeyring<D> {
        SqlKeyring::new(self.pool.clone(), self.dialect.clone())
    }

    /// The store on a migrated pool, with the keyring kept in its own table opened with
    /// `kek` and wrapped in [`KeyringReload`].
    pub(crate) async fn shared(
        pool: Pool<D::Db>,
        kek: Arc<dyn KeyringKek>,
        dialect: D,
    ) -> Result<KeyringReload<Self>> {
        let storage = Arc::new(SqlKeyring::new(pool.clone(), dialect.clone()));
        let keys = Arc::new(SharedKeyring::open(storage, kek).await?);
        let store = Self::checked(pool, keys.handle(), dialect).await?;
        Ok(KeyringReload::new(store, keys))
    }
}
