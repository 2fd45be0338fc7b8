//! The SQLite store.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffer_envelope::Keyring;
use coffer_store::open::{OpenOptions, StoreOpener};
use coffer_store::{DynSecretStore, Error, Result, Scope};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};

use crate::common::{PutWrite, bind_head, insert_head, map_sqlx, update_head};
use crate::sql_store::{Change, Scoped, impl_sql_store};

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
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path, keyring: Arc<Keyring>) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::with_options(options, keyring).await
    }

    /// Opens a `sqlite://PATH` or `sqlite:PATH` URL (`?mode=ro` and other sqlx options apply).
    pub async fn connect(url: &str, keyring: Arc<Keyring>) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url).map_err(|_| {
            Error::config(format!(
                "invalid SQLite URL {}",
                coffer_store::open::redact_url(url)
            ))
        })?;
        Self::with_options(options, keyring).await
    }

    /// Opens with explicit sqlx options; WAL, `synchronous = FULL`, foreign keys and a
    /// busy timeout are set on top, and the migrations run.
    pub async fn with_options(
        options: SqliteConnectOptions,
        keyring: Arc<Keyring>,
    ) -> Result<Self> {
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
        let store = Self { pool, keyring };
        store.check_keys().await?;
        Ok(store)
    }

    /// The sqlx pool (for tests and for tables of other coffer crates in the same file).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The keyring values are sealed with.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    async fn conn(&self, _scope: Option<&Scope>) -> Result<Scoped<Sqlite>> {
        self.pool
            .acquire()
            .await
            .map(Scoped::Pooled)
            .map_err(|e| map_sqlx(BACKEND, e))
    }

    async fn begin(&self, _scope: &Scope) -> Result<Transaction<'static, Sqlite>> {
        self.pool.begin().await.map_err(|e| map_sqlx(BACKEND, e))
    }

    async fn enter_scope(
        &self,
        _tx: &mut Transaction<'static, Sqlite>,
        _scope: &Scope,
    ) -> Result<()> {
        Ok(())
    }

    async fn on_write(
        &self,
        _tx: &mut Transaction<'static, Sqlite>,
        _change: &Change,
    ) -> Result<()> {
        Ok(())
    }

    /// A put's head row and version in one transaction, sent to the connection's worker
    /// thread as one multi-statement call (`BEGIN IMMEDIATE; head; version; COMMIT`):
    /// with sqlx every call is a round trip to that thread, which costs far more than the
    /// statements themselves. The version row is inserted only if the head statement
    /// changed a row (`changes() = 1`), and `RETURNING` reports whether it was. A
    /// connection whose call did not finish (an error, a cancelled future) may still be
    /// inside the transaction, so it is closed (which rolls back), never pooled again.
    async fn write_put(&self, w: &PutWrite<'_>) -> Result<bool> {
        let sql = |e| map_sqlx(BACKEND, e);
        let mut conn = CloseUnlessFinished {
            conn: self.pool.acquire().await.map_err(sql)?,
            finished: false,
        };
        let rows = bind_head!(w, PUT_NEW, PUT_NEXT)
            .bind(w.key_id)
            .bind(&w.sealed)
            .fetch_all(&mut *conn.conn)
            .await
            .map_err(sql)?;
        conn.finished = true;
        Ok(rows.len() == 1)
    }
}

/// One put as one transaction: `$head` (a head statement), then the version row from
/// `$version` (the parameters that fill scope, name, version, key id, envelope and
/// creation time), inserted only if `$head` changed a row.
macro_rules! put_transaction {
    ($head:expr, $version:literal) => {
        concat!(
            "BEGIN IMMEDIATE; ",
            $head,
            "; INSERT INTO coffer_secret_versions (scope, name, version, key_id, ciphertext, \
             created_at) SELECT ",
            $version,
            " WHERE changes() = 1 RETURNING version; COMMIT"
        )
    };
}

/// A put of a new name: [`insert_head!`] ($1–$12), then its version ($13 key id,
/// $14 envelope).
const PUT_NEW: &str = put_transaction!(insert_head!(), "$1, $2, $3, $13, $14, $12");

/// A put over an existing head: [`update_head!`] ($1–$13), then its version ($14 key
/// id, $15 envelope).
const PUT_NEXT: &str = put_transaction!(update_head!(), "$10, $11, $1, $14, $15, $9");

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

impl_sql_store!(SqliteStore, Sqlite, BACKEND);

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
}
