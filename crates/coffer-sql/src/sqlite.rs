//! The SQLite store.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use coffer_envelope::{KeyringHandle, KeyringKek};
use coffer_store::keys::{KeyringReload, KeyringStorage};
use coffer_store::open::{OpenOptions, StoreOpener};
use coffer_store::{DynSecretStore, Error, Result};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool};

use crate::common::map_sqlx;
use crate::dialect::{Dialect, sealed};
use crate::driver::{Driver as _, Param, Statement};
use crate::keyring::SqlKeyring;
use crate::row::{PutWrite, Returned};
use crate::sql::{self, Composed};
use crate::store::SqlStore;

const BACKEND: &str = "sqlite";

/// A [`SecretStore`](coffer_store::SecretStore) in a SQLite file: the embedded default, no server needed.
///
/// Values are sealed with [`coffer_envelope`] under the context (scope, name, version)
/// and stored as BLOBs; the schema comes from embedded migrations; the database runs
/// in WAL mode with `synchronous = FULL`, so an acknowledged write survives a crash.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// use std::sync::Arc;
/// use coffer_envelope::{Keyring, MasterKey};
/// use coffer_sql::SqliteStore;
/// use coffer_store::{PutOptions, Scope, SecretName, SecretStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let keyring = Arc::new(Keyring::new(MasterKey::generate()));
/// let store = SqliteStore::open(&dir.path().join("secrets.db"), keyring).await?;
/// let (scope, name) = (Scope::new("tenant")?, SecretName::new("api_key")?);
/// store.put(&scope, &name, &"sk-example".into(), &PutOptions::new()).await?;
/// # Ok(()) }
/// ```
pub type SqliteStore = SqlStore<SqliteDialect>;

/// The SQLite [`Dialect`] of [`SqlStore`]: a pooled connection per call, and a put as one
/// `BEGIN IMMEDIATE … COMMIT` call.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteDialect;

impl sealed::Sealed for SqliteDialect {}

impl SqlStore<SqliteDialect> {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path, keyring: impl Into<KeyringHandle>) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::with_options(options, keyring).await
    }

    /// Opens a `sqlite://PATH` or `sqlite:PATH` URL (`?mode=ro` and other sqlx options apply).
    pub async fn connect(url: &str, keyring: impl Into<KeyringHandle>) -> Result<Self> {
        Self::with_options(url_options(url)?, keyring).await
    }

    /// Opens a `sqlite://` URL with the keyring kept in the database itself (table
    /// `coffer_keyring`), opened with `kek`; see [`coffer_store::keys`]. Another process
    /// on the same file that rotates is followed on this one's next call that meets the
    /// new key.
    pub async fn connect_shared(
        url: &str,
        kek: Arc<dyn KeyringKek>,
    ) -> Result<KeyringReload<Self>> {
        let pool = migrated_pool(url_options(url)?).await?;
        Self::shared(pool, kek, SqliteDialect).await
    }

    /// Opens with explicit sqlx options; WAL, `synchronous = FULL`, foreign keys and a
    /// busy timeout are set on top, and the migrations run.
    pub async fn with_options(
        options: SqliteConnectOptions,
        keyring: impl Into<KeyringHandle>,
    ) -> Result<Self> {
        let pool = migrated_pool(options).await?;
        Self::checked(pool, keyring.into(), SqliteDialect).await
    }
}

fn url_options(url: &str) -> Result<SqliteConnectOptions> {
    SqliteConnectOptions::from_str(url).map_err(|_| {
        Error::config(format!(
            "invalid SQLite URL {}",
            coffer_store::open::redact_url(url)
        ))
    })
}

/// A pool on the file with WAL, `synchronous = FULL`, foreign keys and a busy timeout,
/// migrated.
async fn migrated_pool(options: SqliteConnectOptions) -> Result<SqlitePool> {
    {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            // An embedded file has no server to lose a connection to: sqlx's liveness
            // ping before every acquire would only add a round trip to the connection's
            // worker thread on every call.
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| map_sqlx(BACKEND, e))?;
        crate::common::run_migrations(BACKEND, sqlx::migrate!("./migrations/sqlite"), &pool)
            .await?;
        Ok(pool)
    }
}

#[async_trait]
impl Dialect for SqliteDialect {
    type Db = Sqlite;
    const BACKEND: &'static str = BACKEND;
    const STORE: &'static str = "SqliteStore";

    /// A put's head row and version in one transaction, sent to the connection's worker
    /// thread as one multi-statement call (`BEGIN IMMEDIATE; head; version; COMMIT`):
    /// with sqlx every call is a round trip to that thread, which costs far more than the
    /// statements themselves. The version row is inserted only if the head statement
    /// changed a row (`changes() = 1`), and `RETURNING` reports whether it was. A
    /// connection whose call did not finish (an error, a cancelled future) may still be
    /// inside the transaction, so it is closed (which rolls back), never pooled again.
    async fn write_put(&self, pool: &SqlitePool, w: &PutWrite<'_>) -> Result<bool> {
        let sql = |e| map_sqlx(BACKEND, e);
        let mut conn = CloseUnlessFinished {
            conn: pool.acquire().await.map_err(sql)?,
            finished: false,
        };
        let mut params = w.head_params();
        params.extend([Param::Int(w.key_id), Param::Blob(&w.sealed)]);
        let statement = if w.old.is_none() { &PUT_NEW } else { &PUT_NEXT }.statement();
        match Sqlite::fetch_all::<Returned>(&mut conn.conn, &statement, &params).await {
            Ok(rows) => {
                conn.finished = true;
                Ok(rows.len() == 1)
            }
            Err(e) => {
                // A statement of the call failed (a version row that already exists):
                // the transaction is still open and holds the write lock, so roll it
                // back now rather than when the pool gets round to closing it.
                if sqlx::raw_sql("ROLLBACK")
                    .execute(&mut *conn.conn)
                    .await
                    .is_ok()
                {
                    conn.finished = true;
                }
                Err(w.failed(BACKEND, e))
            }
        }
    }
}

/// A put in one transaction: a head write (`sql::INSERT_HEAD` for a new name,
/// `sql::UPDATE_HEAD` over an existing head), then the version row, inserted only if the
/// head statement changed a row.
fn put_transaction(head: &Statement) -> Composed {
    Composed::on(head, &["key id", "envelope"], |p| {
        format!(
            "BEGIN IMMEDIATE; {}; INSERT INTO coffer_secret_versions \
             (scope, name, version, key_id, ciphertext, created_at) \
             SELECT {}, {}, {}, {}, {}, {} WHERE changes() = 1 RETURNING version; COMMIT",
            head.sql,
            p.param("scope"),
            p.param("name"),
            p.param("version"),
            p.param("key id"),
            p.param("envelope"),
            p.param("updated_at"),
        )
    })
}

static PUT_NEW: LazyLock<Composed> = LazyLock::new(|| put_transaction(&sql::INSERT_HEAD));
static PUT_NEXT: LazyLock<Composed> = LazyLock::new(|| put_transaction(&sql::UPDATE_HEAD));

/// A pooled connection that is closed, not returned to the pool, unless its call
/// `finished`.
struct CloseUnlessFinished {
    conn: sqlx::pool::PoolConnection<Sqlite>,
    finished: bool,
}

impl Drop for CloseUnlessFinished {
    fn drop(&mut self) {
        if !self.finished {
            self.conn.close_on_drop();
        }
    }
}

/// Opens `sqlite://PATH` (and `sqlite:PATH`) URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOpener;

#[async_trait]
impl StoreOpener for SqliteOpener {
    fn schemes(&self) -> &'static [&'static str] {
        &["sqlite"]
    }

    async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        let keyring = options.require_keyring("sqlite")?;
        Ok(Arc::new(SqliteStore::connect(url, keyring).await?))
    }

    async fn keyring_storage(&self, url: &str) -> Result<Arc<dyn KeyringStorage>> {
        let pool = migrated_pool(url_options(url)?).await?;
        Ok(Arc::new(SqlKeyring::new(pool, SqliteDialect)))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_put_statements_are_the_portable_head_writes_and_number_their_parameters() {
        crate::sql::assert_puts(super::PUT_NEW.statement(), super::PUT_NEXT.statement());
    }
}
