//! The Postgres store: the same semantics as SQLite, plus optional row-level security
//! and change notifications.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use async_trait::async_trait;
use coffer_envelope::{KeyringHandle, KeyringKek};
use coffer_store::keys::{KeyringReload, KeyringStorage, SharedKeyring};
use coffer_store::open::{OpenOptions, StoreOpener};
use coffer_store::{Change, DynSecretStore, Error, KeyringNotice, Result, Scope};
use futures::{Stream, StreamExt as _};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres};

use crate::common::map_sqlx;
use crate::dialect::{Dialect, Scoped, sealed};
use crate::driver::{Driver as _, Param, Statement, first};
use crate::keyring::SqlKeyring;
use crate::row::{PutWrite, Returned};
use crate::sql::{self, Composed};
use crate::store::SqlStore;
use crate::support::Liveness;
use crate::tls::{CleartextGuard, PgTarget};

const BACKEND: &str = "postgres";

/// The channel every write is announced on with `NOTIFY`. The payload is the JSON of a
/// [`Change`]: scope, name, version (0 for deletes) and operation — never a value.
pub const NOTIFY_CHANNEL: &str = "coffer_secrets";

/// The URL query parameter that turns on row-level security (`?row_level_security=true`).
pub const RLS_URL_PARAM: &str = "row_level_security";

/// Options of a [`PgStore`] beyond the connection.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgOptions {
    /// Limit the secret tables to the scope set per transaction (see [`PgStore`]).
    pub row_level_security: bool,
    /// Run the embedded migrations at connect (the default). Turn off for an
    /// application role that has no DDL rights, after the owner has migrated.
    pub migrate: bool,
    /// Pool size.
    pub max_connections: u32,
    /// How long a call waits for a pooled connection before it is `Unavailable`.
    pub acquire_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            row_level_security: false,
            migrate: true,
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl PgOptions {
    /// The defaults: no row-level security, migrations on, 10 connections.
    pub fn new() -> Self {
        Self::default()
    }

    /// Turns row-level security on or off.
    #[must_use]
    pub fn row_level_security(mut self, on: bool) -> Self {
        self.row_level_security = on;
        self
    }

    /// Turns the migrations at connect on or off.
    #[must_use]
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }

    /// Sets how long a call waits for a pooled connection.
    #[must_use]
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// Sets the pool size.
    #[must_use]
    pub fn max_connections(mut self, n: u32) -> Self {
        self.max_connections = n;
        self
    }
}

/// A [`SecretStore`](coffer_store::SecretStore) in Postgres, with the semantics of
/// [`SqliteStore`](crate::SqliteStore) (sealed values, versions, check-and-set, soft
/// delete and destroy) from the same implementation.
///
/// - **Migrations** are embedded and take sqlx's advisory lock, so several processes may
///   start at once.
/// - **Row-level security** (opt-in, [`PgOptions::row_level_security`] or
///   `?row_level_security=true`): a policy limits both tables to the scope in the
///   transaction-local setting `coffer.scope`, which the store sets with
///   `set_config('coffer.scope', scope, true)` on every call (each call then runs in a
///   transaction: two more round trips). It protects against the application's own
///   queries reaching another tenant when the store connects as a role that does not
///   own the tables; the owner is exempt, and [`rewrap_batch`](coffer_store::SecretStore::rewrap_batch)
///   must run as the owner.
/// - **Change notifications**: every write sends `NOTIFY coffer_secrets` with a
///   [`Change`] in the same transaction, so it is delivered exactly when the write
///   commits. [`PgStore::watch`] streams them.
pub type PgStore = SqlStore<PgDialect>;

/// The Postgres [`Dialect`] of [`SqlStore`]: optional row-level security, a change
/// notice in every write's transaction, and a put as one statement.
#[derive(Debug, Clone, Default)]
pub struct PgDialect {
    rls: bool,
    /// The cleartext-password guard the pool connects through, if it needs one.
    guard: Option<Arc<CleartextGuard>>,
    /// The pool's liveness policy (installed on the pools this crate opens).
    liveness: Liveness,
}

impl sealed::Sealed for PgDialect {}

impl SqlStore<PgDialect> {
    /// Connects to a `postgres://` (or `postgresql://`) URL. `?row_level_security=true`
    /// turns on row-level security; the other parameters are sqlx's.
    ///
    /// TLS follows [`coffer_store::transport`]: `sslmode`, `sslrootcert`, `sslcert`,
    /// `sslkey`, `verify-full` by default to a host off loopback, and a guard against a
    /// server asking for the password in cleartext without TLS. An unknown parameter is
    /// an error.
    pub async fn connect(url: &str, keyring: impl Into<KeyringHandle>) -> Result<Self> {
        let (pool, dialect) = connect_url(url).await?;
        Self::checked(pool, keyring.into(), dialect).await
    }

    /// Connects to a Postgres URL (as [`connect`](Self::connect)) with the keyring kept
    /// in the database itself (table `coffer_keyring`), opened with `kek`; see
    /// [`coffer_store::keys`]. [`follow_keyring`](Self::follow_keyring) makes a
    /// rotation by another instance take effect here as soon as it is announced.
    pub async fn connect_shared(
        url: &str,
        kek: Arc<dyn KeyringKek>,
    ) -> Result<KeyringReload<Self>> {
        let (pool, dialect) = connect_url(url).await?;
        Self::shared(pool, kek, dialect).await
    }

    /// Reloads `keys` whenever another instance announces a keyring change on
    /// [`NOTIFY_CHANNEL`], and after the notification connection comes back (a change
    /// may have been missed), until the returned task is aborted. The reload on an
    /// unknown key id stays as the fallback.
    pub async fn follow_keyring(
        &self,
        keys: Arc<SharedKeyring>,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let events = self.watch().await?;
        Ok(tokio::spawn(async move {
            futures::pin_mut!(events);
            while let Some(event) = events.next().await {
                let due = match event {
                    WatchEvent::KeyringChanged { generation } => generation > keys.generation(),
                    WatchEvent::Reconnected => true,
                    _ => false,
                };
                if due && let Err(e) = keys.reload_now().await {
                    tracing::warn!(error = %e, "coffer: reloading the keyring after a notice failed");
                }
            }
        }))
    }

    /// Connects with explicit sqlx connect options and store options.
    pub async fn connect_with(
        connect: PgConnectOptions,
        keyring: impl Into<KeyringHandle>,
        options: PgOptions,
    ) -> Result<Self> {
        let liveness = Liveness::new();
        let pool = pool_options(&options, &liveness)
            .connect_with(connect)
            .await
            .map_err(|e| map_sqlx(BACKEND, e))?;
        let mut dialect = prepare(&pool, &options).await?;
        dialect.liveness = liveness;
        Self::checked(pool, keyring.into(), dialect).await
    }

    /// Builds the store on an existing pool (migrating it unless told not to). The pool
    /// keeps its own liveness settings (sqlx pings before each acquire by default); the
    /// pools [`connect`](Self::connect) and [`connect_with`](Self::connect_with) open
    /// follow [`Liveness`] instead, one round trip per call fewer. Either way a read
    /// whose connection turns out to be gone is retried once.
    pub async fn from_pool(
        pool: PgPool,
        keyring: impl Into<KeyringHandle>,
        options: PgOptions,
    ) -> Result<Self> {
        let dialect = prepare(&pool, &options).await?;
        Self::checked(pool, keyring.into(), dialect).await
    }

    /// Streams the changes every writer on this database commits (see [`WatchEvent`]).
    ///
    /// The stream holds its own connection. When that connection drops it yields
    /// [`WatchEvent::Disconnected`], reconnects with backoff, and yields
    /// [`WatchEvent::Reconnected`]: changes in between were not seen, so a cache should
    /// drop what it holds or fall back to its TTL.
    pub async fn watch(&self) -> Result<impl Stream<Item = WatchEvent> + Send + 'static> {
        let listener = listen(&self.pool).await?;
        let pool = self.pool.clone();
        Ok(futures::stream::unfold(
            (Some(listener), pool),
            |(mut listener, pool)| async move {
                loop {
                    match listener.as_mut() {
                        Some(l) => match l.try_recv().await {
                            Ok(Some(n)) => match parse_notice(n.payload()) {
                                Some(event) => return Some((event, (listener, pool))),
                                None => {
                                    tracing::warn!(
                                        channel = NOTIFY_CHANNEL,
                                        "ignoring a notification that is not a coffer change"
                                    );
                                }
                            },
                            Ok(None) | Err(_) => {
                                tracing::warn!("coffer watch: the notification connection dropped");
                                return Some((WatchEvent::Disconnected, (None, pool)));
                            }
                        },
                        None => {
                            let mut delay = Duration::from_millis(100);
                            loop {
                                match listen(&pool).await {
                                    Ok(l) => {
                                        return Some((WatchEvent::Reconnected, (Some(l), pool)));
                                    }
                                    Err(e) => {
                                        tracing::warn!(error = %e, "coffer watch: reconnect failed; retrying");
                                        tokio::time::sleep(delay).await;
                                        delay = (delay * 2).min(Duration::from_secs(5));
                                    }
                                }
                            }
                        }
                    }
                }
            },
        ))
    }
}

#[async_trait]
impl Dialect for PgDialect {
    type Db = Postgres;
    const BACKEND: &'static str = BACKEND;
    const STORE: &'static str = "PgStore";

    async fn conn(&self, pool: &PgPool, scope: &Scope) -> Result<Scoped<Postgres>> {
        if self.rls {
            let mut tx = pool.begin().await.map_err(|e| map_sqlx(BACKEND, e))?;
            self.enter_scope(&mut tx, scope).await?;
            return Ok(Scoped::Tx(tx));
        }
        pool.acquire()
            .await
            .map(Scoped::Pooled)
            .map_err(|e| map_sqlx(BACKEND, e))
    }

    /// With row-level security, makes the rest of `tx` act for `scope`.
    async fn enter_scope(&self, tx: &mut PgConnection, scope: &Scope) -> Result<()> {
        if self.rls {
            Postgres::execute(tx, &SET_SCOPE, &[Param::Text(scope.as_str())])
                .await
                .map_err(|e| map_sqlx(BACKEND, e))?;
        }
        Ok(())
    }

    async fn on_write(&self, tx: &mut PgConnection, change: &Change) -> Result<()> {
        let payload = serde_json::to_string(change).map_err(|e| Error::backend(BACKEND, e))?;
        let params = [Param::Text(NOTIFY_CHANNEL), Param::Text(&payload)];
        Postgres::execute(tx, &NOTIFY, &params)
            .await
            .map_err(|e| map_sqlx(BACKEND, e))?;
        Ok(())
    }

    /// A put's head row, its version and the change notice in one statement (data-modifying
    /// CTEs, atomic on their own): one round trip where a transaction of the same writes
    /// takes five. The version is inserted only if the head write matched, so a put that
    /// lost the race writes nothing and returns no row. With row-level security it runs
    /// inside the scoped transaction, after `set_config`.
    async fn write_put(&self, pool: &PgPool, w: &PutWrite<'_>) -> Result<bool> {
        let sql = |e| map_sqlx(BACKEND, e);
        let payload = serde_json::to_string(&w.change()).map_err(|e| Error::backend(BACKEND, e))?;
        let mut params = w.head_params();
        params.extend([
            Param::Int(w.key_id),
            Param::Blob(&w.sealed),
            Param::Text(NOTIFY_CHANNEL),
            Param::Text(&payload),
        ]);
        let statement = if w.old.is_none() { &PUT_NEW } else { &PUT_NEXT }.statement();
        let mut conn = self.conn(pool, w.scope).await?;
        let written: Option<Returned> = Postgres::fetch_all(&mut conn, &statement, &params)
            .await
            .map(first)
            .map_err(|e| w.failed(BACKEND, e))?;
        conn.finish().await.map_err(sql)?;
        Ok(written.is_some())
    }

    fn lost(&self, e: &Error) -> bool {
        self.liveness.lost(e)
    }

    fn debug_fields(&self, f: &mut std::fmt::DebugStruct<'_, '_>) {
        f.field("row_level_security", &self.rls);
    }
}

/// Sets the scope row-level security limits the rest of the transaction to.
const SET_SCOPE: Statement = Statement {
    sql: "SELECT set_config('coffer.scope', $1, true)",
    params: &["scope"],
};

/// A notification on [`NOTIFY_CHANNEL`]: a [`Change`] or a [`KeyringNotice`].
fn parse_notice(payload: &str) -> Option<WatchEvent> {
    if let Ok(change) = serde_json::from_str::<Change>(payload) {
        return Some(WatchEvent::Changed(change));
    }
    serde_json::from_str::<KeyringNotice>(payload)
        .ok()
        .map(|n| WatchEvent::KeyringChanged {
            generation: n.keyring.generation,
        })
}

/// Announces a [`Change`] on [`NOTIFY_CHANNEL`] when the transaction commits.
const NOTIFY: Statement = Statement {
    sql: "SELECT pg_notify($1, $2)",
    params: &["channel", "payload"],
};

/// A put in one statement of data-modifying CTEs: a head write (`sql::INSERT_HEAD` for a
/// new name, `sql::UPDATE_HEAD` over an existing head), the version row from what it
/// returned, and the change notice from that.
fn put_statement(head: &Statement) -> Composed {
    Composed::on(head, &["key id", "envelope", "channel", "payload"], |p| {
        format!(
            "WITH head AS ({} RETURNING scope, name, version, updated_at), \
             ver AS (INSERT INTO coffer_secret_versions \
             (scope, name, version, key_id, ciphertext, created_at) \
             SELECT scope, name, version, {}, {}, updated_at FROM head RETURNING version) \
             SELECT pg_notify({}, {}) FROM ver",
            head.sql,
            p.param("key id"),
            p.param("envelope"),
            p.param("channel"),
            p.param("payload"),
        )
    })
}

static PUT_NEW: LazyLock<Composed> = LazyLock::new(|| put_statement(&sql::INSERT_HEAD));
static PUT_NEXT: LazyLock<Composed> = LazyLock::new(|| put_statement(&sql::UPDATE_HEAD));

async fn listen(pool: &PgPool) -> Result<PgListener> {
    let mut listener = PgListener::connect_with(pool)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))?;
    listener
        .listen(NOTIFY_CHANNEL)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))?;
    Ok(listener)
}

pub use coffer_store::WatchEvent;

/// Opens `postgres://` and `postgresql://` URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct PgOpener;

#[async_trait]
impl StoreOpener for PgOpener {
    fn schemes(&self) -> &'static [&'static str] {
        &["postgres", "postgresql"]
    }

    async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        let keyring = options.require_keyring("postgres")?;
        Ok(Arc::new(PgStore::connect(url, keyring).await?))
    }

    async fn keyring_storage(&self, url: &str) -> Result<Arc<dyn KeyringStorage>> {
        let (pool, dialect) = connect_url(url).await?;
        Ok(Arc::new(SqlKeyring::new(pool, dialect)))
    }
}

/// A pool for a Postgres URL (TLS and the cleartext guard from the URL), migrated, and
/// the dialect its `row_level_security` parameter asks for.
async fn connect_url(url: &str) -> Result<(PgPool, PgDialect)> {
    let mut rls = false;
    let target = PgTarget::from_url(url, |key, value| {
        if key != RLS_URL_PARAM {
            return Ok(false);
        }
        rls = coffer_store::open::parse_flag(RLS_URL_PARAM, value)?;
        Ok(true)
    })?;
    let options = PgOptions::new().row_level_security(rls);
    let liveness = Liveness::new();
    let pool = pool_options(&options, &liveness)
        .connect_with(target.options().clone())
        .await
        .map_err(|e| target.connect_error(BACKEND, e))?;
    let mut dialect = prepare(&pool, &options).await?;
    dialect.guard = target.guard().cloned();
    dialect.liveness = liveness;
    Ok((pool, dialect))
}

/// The pool settings of a store this crate opens: `options`' size and timeout, and no
/// ping before each acquire ([`Liveness`]).
fn pool_options(options: &PgOptions, liveness: &Liveness) -> PgPoolOptions {
    liveness.apply(
        PgPoolOptions::new()
            .max_connections(options.max_connections)
            .acquire_timeout(options.acquire_timeout),
    )
}

/// Migrates `pool` unless told not to, turns on row-level security if asked, and
/// returns the dialect.
async fn prepare(pool: &PgPool, options: &PgOptions) -> Result<PgDialect> {
    if options.migrate {
        crate::common::run_migrations(BACKEND, sqlx::migrate!("./migrations/postgres"), pool)
            .await?;
        if options.row_level_security {
            sqlx::query("SELECT coffer_enable_row_level_security()")
                .execute(pool)
                .await
                .map_err(|e| map_sqlx(BACKEND, e))?;
        }
    }
    Ok(PgDialect {
        rls: options.row_level_security,
        guard: None,
        liveness: Liveness::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql;

    #[test]
    fn the_put_statements_are_the_portable_head_writes_and_number_their_parameters() {
        sql::assert_puts(PUT_NEW.statement(), PUT_NEXT.statement());
        sql::assert_numbered(&SET_SCOPE);
        sql::assert_numbered(&NOTIFY);
    }

    #[test]
    fn url_parameters_are_ours_sqlx_s_or_refused() {
        let mut rls = None;
        let target = PgTarget::from_url(
            "postgres://u:p@db.example.com/db?row_level_security=true&application_name=x",
            |k, v| {
                if k != RLS_URL_PARAM {
                    return Ok(false);
                }
                rls = Some(v.to_owned());
                Ok(true)
            },
        )
        .unwrap();
        assert_eq!(rls.as_deref(), Some("true"));
        assert_eq!(target.options().get_application_name(), Some("x"));
        assert_eq!(
            target.tls().mode,
            coffer_store::transport::TlsMode::VerifyFull
        );
        for bad in [
            "postgres://u:secretpw@h/db?sslmod=require",
            "postgres://u:secretpw@h/db?ssl_mode=require",
            "postgres://u:secretpw@h/db?connect_timeout=3",
        ] {
            let err = PgTarget::from_url(bad, |_, _| Ok(false))
                .unwrap_err()
                .to_string();
            assert!(
                !err.contains("secretpw")
                    && (err.contains("ssl") || err.contains("connect_timeout")),
                "{err}"
            );
        }
        let err = PgTarget::from_url("postgres://u:secretpw@[bad", |_, _| Ok(false))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secretpw"), "{err}");
    }
}
