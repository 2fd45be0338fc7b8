//! The broker: connection ids and their pools' lifecycle (connect, reaper, registry).
//! Beside it: the public value types (`types`), one call's protocol (`call`) over what
//! it needs of a server (`server`), and one module per server database (`postgres`,
//! `mysql`) with its transaction batches, rows and connect-time probe; SQLite is
//! `crate::sqlite`, on rusqlite.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::Utc;
use serde_json::Value;

use coffer_sql::tls::CleartextGuard;
use coffer_store::{Scope, SecretStore};

use crate::config::NamedConnections;
use crate::error::from_sqlx;
use crate::privileges;
use crate::registry::ConnectionRegistry;
use crate::schema::{self, Schema};
use crate::sqlite::SqlitePool;
use crate::statement::{Dialect, check};
use crate::value::QueryResult;
use crate::{BrokerError, ConnectionParams, Engine, Mode, Result};
use call::Call;

mod call;
mod mysql;
mod postgres;
mod server;
mod types;

use mysql::MysqlFlavor;

pub use types::{ConnectionId, ConnectionInfo, Limits};

/// A connection id's pool, with how its server reads SQL text.
#[derive(Debug, Clone)]
enum Pool {
    Pg(sqlx::PgPool, Dialect),
    Mysql(sqlx::MySqlPool, MysqlFlavor, Dialect),
    Sqlite(Arc<SqlitePool>),
}

impl Pool {
    async fn close(&self) {
        match self {
            Self::Pg(p, _) => p.close().await,
            Self::Mysql(p, _, _) => p.close().await,
            Self::Sqlite(p) => p.close(),
        }
    }

    fn dialect(&self) -> Dialect {
        match self {
            Self::Pg(_, d) | Self::Mysql(_, _, d) => *d,
            Self::Sqlite(_) => Dialect::of(Engine::Sqlite),
        }
    }
}

struct Conn {
    owner: String,
    pool: Pool,
    /// The cleartext-password guard the pool connects through, if it needs one.
    _guard: Option<Arc<CleartextGuard>>,
    params: ConnectionParams,
    info: Mutex<ConnectionInfo>,
    created: Instant,
    last_used: Mutex<Instant>,
    /// When the registry last confirmed the id.
    confirmed: Mutex<Instant>,
}

impl Conn {
    fn touch(&self) {
        *self.last_used.lock().expect("not poisoned") = Instant::now();
        self.info.lock().expect("not poisoned").last_used_at = Utc::now();
    }

    fn expired(&self, limits: &Limits, now: Instant) -> bool {
        let idle = now.duration_since(*self.last_used.lock().expect("not poisoned"));
        idle > limits.idle_timeout || now.duration_since(self.created) > limits.max_lifetime
    }
}

struct Inner {
    limits: Limits,
    named: NamedConnections,
    store: Option<Arc<dyn SecretStore>>,
    registry: Option<ConnectionRegistry>,
    conns: Mutex<HashMap<String, Arc<Conn>>>,
    shut: AtomicBool,
}

/// The connection broker. Cheap to clone; clones share connections.
///
/// Credentials go in once ([`connect`](Self::connect)); an opaque [`ConnectionId`]
/// comes out; every later call names the owner and the id. The credentials stay in
/// [`secrecy`] types inside the broker and never appear in its errors, logs or answers.
///
/// ```no_run
/// # async fn run() -> coffer_broker::Result<()> {
/// use coffer_broker::{Broker, ConnectionParams, Limits};
///
/// let broker = Broker::new(Limits::default());
/// let params = ConnectionParams::postgres("127.0.0.1", "shop", "agent_ro", "s3cret".into());
/// let id = broker.connect("tenant-42", params).await?;
/// let result = broker
///     .query("tenant-42", &id, "SELECT name, price FROM products WHERE id = $1", &[7.into()])
///     .await?;
/// println!("{}", serde_json::to_string(&result).unwrap());
/// broker.disconnect("tenant-42", &id).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Broker {
    inner: Arc<Inner>,
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Broker")
            .field("limits", &self.inner.limits)
            .field(
                "connections",
                &self.inner.conns.lock().map(|c| c.len()).unwrap_or(0),
            )
            .finish()
    }
}

impl Broker {
    /// A broker with `limits`. Inside a Tokio runtime it starts a reaper task that closes
    /// idle and old connections every [`Limits::reap_interval`]; expired ids are refused
    /// at use either way.
    pub fn new(limits: Limits) -> Self {
        Self::with_config(limits, NamedConnections::default(), None)
    }

    /// A broker that also opens the `named` connections ([`connect_named`]), reading
    /// their `credentialsSecret` and `urlSecret` from `store` in the owner's scope.
    ///
    /// [`connect_named`]: Self::connect_named
    pub fn with_config(
        limits: Limits,
        named: NamedConnections,
        store: Option<Arc<dyn SecretStore>>,
    ) -> Self {
        Self::build(limits, named, store, None)
    }

    /// A broker whose connections are also kept in `registry`: an id survives a restart
    /// and resolves on every broker sharing the registry's store and keyring. An id
    /// another instance registered opens its own pool here on first use. Idle ids are
    /// closed locally by the reaper; the registry forgets an id when it is disconnected
    /// or reaches [`Limits::max_lifetime`]. [`Limits::max_per_owner`] counts the ids open
    /// on this instance.
    pub fn with_registry(
        limits: Limits,
        named: NamedConnections,
        store: Option<Arc<dyn SecretStore>>,
        registry: ConnectionRegistry,
    ) -> Self {
        Self::build(limits, named, store, Some(registry))
    }

    fn build(
        limits: Limits,
        named: NamedConnections,
        store: Option<Arc<dyn SecretStore>>,
        registry: Option<ConnectionRegistry>,
    ) -> Self {
        let broker = Self {
            inner: Arc::new(Inner {
                limits,
                named,
                store,
                registry,
                conns: Mutex::new(HashMap::new()),
                shut: AtomicBool::new(false),
            }),
        };
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&broker.inner);
            let every = broker.inner.limits.reap_interval;
            handle.spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let Some(inner) = weak.upgrade() else { return };
                    if inner.shut.load(Ordering::SeqCst) {
                        return;
                    }
                    Self { inner }.reap().await;
                }
            });
        }
        broker
    }

    /// The limits.
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// Closes and forgets every connection that is idle or old beyond the limits.
    /// Returns how many.
    pub async fn reap(&self) -> usize {
        let now = Instant::now();
        let expired: Vec<Arc<Conn>> = {
            let mut conns = self.inner.conns.lock().expect("not poisoned");
            let ids: Vec<String> = conns
                .iter()
                .filter(|(_, c)| c.expired(&self.inner.limits, now))
                .map(|(id, _)| id.clone())
                .collect();
            ids.iter().filter_map(|id| conns.remove(id)).collect()
        };
        for conn in &expired {
            tracing::debug!(owner = %conn.owner, "closing an idle or old connection");
            conn.pool.close().await;
        }
        expired.len()
    }

    fn check_open(&self) -> Result<()> {
        if self.inner.shut.load(Ordering::SeqCst) {
            return Err(BrokerError::ShutDown);
        }
        Ok(())
    }

    /// Opens one connection with `params`, runs `SELECT 1`, and closes it: a check
    /// before saving a connection.
    pub async fn test_connection(&self, params: &ConnectionParams) -> Result<()> {
        self.check_open()?;
        params.validate()?;
        let (pool, _guard) = self.open_pool(params, 1).await?;
        pool.close().await;
        Ok(())
    }

    /// Opens the pool, and the cleartext-password guard it connects through (which must
    /// live as long as the pool) where coffer's TLS rule asks for one.
    async fn open_pool(
        &self,
        params: &ConnectionParams,
        size: u32,
    ) -> Result<(Pool, Option<Arc<CleartextGuard>>)> {
        let limits = &self.inner.limits;
        let secrets = params.secrets();
        let guarded = params.mode == Mode::ReadOnly && !params.allow_privileged;
        let opening = Opening {
            params,
            limits,
            size,
            guarded,
            secrets: &secrets,
        };
        let mut guard = None;
        let pool = match params.engine {
            Engine::Postgres => {
                let (pool, dialect, g) = postgres::open(&opening).await?;
                guard = g;
                Pool::Pg(pool, dialect)
            }
            Engine::Mysql => {
                let (pool, flavor, dialect, g) = mysql::open(&opening).await?;
                guard = g;
                Pool::Mysql(pool, flavor, dialect)
            }
            Engine::Sqlite => Pool::Sqlite(Arc::new(
                SqlitePool::open(
                    params
                        .address
                        .get_path()
                        .map(ToOwned::to_owned)
                        .unwrap_or_default(),
                    params.mode,
                    size,
                    limits.byte_limit_of(params),
                    limits.connect_timeout,
                )
                .await?,
            )),
        };
        Ok((pool, guard))
    }

    /// The configured named connections.
    pub fn named(&self) -> &NamedConnections {
        &self.inner.named
    }

    /// Connects `owner` to the configured connection `name` (its mode as configured:
    /// read-only unless the configuration says `read_write`). Secrets it names are read
    /// from the broker's store in the scope named like `owner`.
    pub async fn connect_named(&self, owner: &str, name: &str) -> Result<ConnectionId> {
        self.check_open()?;
        let scope = match &self.inner.store {
            Some(_) => Some(Scope::new(owner.to_owned())?),
            None => None,
        };
        let store = self.inner.store.as_deref().zip(scope.as_ref());
        let params = self.inner.named.resolve(name, store).await?;
        self.connect_as(owner, params, Some(name.to_owned())).await
    }

    /// Connects `owner` to the database of `params` and returns the id to use from now on.
    pub async fn connect(&self, owner: &str, params: ConnectionParams) -> Result<ConnectionId> {
        self.connect_as(owner, params, None).await
    }

    pub(crate) async fn connect_as(
        &self,
        owner: &str,
        params: ConnectionParams,
        name: Option<String>,
    ) -> Result<ConnectionId> {
        self.check_open()?;
        params.validate()?;
        if owner.is_empty() {
            return Err(BrokerError::params("owner", "is empty"));
        }
        let held = self.list(owner).len();
        if held >= self.inner.limits.max_per_owner {
            return Err(BrokerError::Limit {
                reason: format!(
                    "{held} connections are open for this owner; the limit is {} \
                     (disconnect one first)",
                    self.inner.limits.max_per_owner
                ),
            });
        }
        let (pool, guard) = self.open_pool(&params, self.inner.limits.pool_size).await?;
        let id = ConnectionId::random();
        let now = Utc::now();
        let info = ConnectionInfo::of(&id, name, &params, now);
        let conn = Arc::new(Conn {
            owner: owner.to_owned(),
            pool,
            _guard: guard,
            params,
            info: Mutex::new(info),
            created: Instant::now(),
            last_used: Mutex::new(Instant::now()),
            confirmed: Mutex::new(Instant::now()),
        });
        if let Some(registry) = &self.inner.registry {
            let name = conn.info.lock().expect("not poisoned").name.clone();
            let expires = now
                + chrono::Duration::from_std(self.inner.limits.max_lifetime)
                    .unwrap_or(chrono::Duration::days(365));
            if let Err(e) = registry
                .save(owner, &id, &conn.params, name.as_deref(), now, expires)
                .await
            {
                conn.pool.close().await;
                return Err(e);
            }
        }
        tracing::info!(owner, kind = %conn.params.engine, "connected");
        self.inner
            .conns
            .lock()
            .expect("not poisoned")
            .insert(id.0.clone(), conn);
        Ok(id)
    }

    /// Opens a pool here for an id another instance (or an earlier run) registered.
    async fn adopt(&self, owner: &str, id: &ConnectionId) -> Result<Arc<Conn>> {
        let Some(registry) = &self.inner.registry else {
            return Err(BrokerError::NotFound);
        };
        let (params, name, created_at) = registry.load(owner, id).await?;
        let (pool, guard) = self.open_pool(&params, self.inner.limits.pool_size).await?;
        let info = ConnectionInfo::of(id, name, &params, created_at);
        let age = (Utc::now() - created_at).to_std().unwrap_or_default();
        let conn = Arc::new(Conn {
            owner: owner.to_owned(),
            pool,
            _guard: guard,
            params,
            info: Mutex::new(info),
            created: Instant::now().checked_sub(age).unwrap_or_else(Instant::now),
            last_used: Mutex::new(Instant::now()),
            confirmed: Mutex::new(Instant::now()),
        });
        // Another call may have adopted it meanwhile: keep the first.
        let kept = self
            .inner
            .conns
            .lock()
            .expect("not poisoned")
            .entry(id.0.clone())
            .or_insert_with(|| conn.clone())
            .clone();
        if !Arc::ptr_eq(&kept, &conn) {
            conn.pool.close().await;
        }
        Ok(kept)
    }

    /// The connection `id` of `owner`, or `NotFound` for every other case.
    async fn lookup(&self, owner: &str, id: &ConnectionId) -> Result<Arc<Conn>> {
        self.check_open()?;
        let found = {
            let mut conns = self.inner.conns.lock().expect("not poisoned");
            let conn = conns.get(id.as_str()).filter(|c| c.owner == owner).cloned();
            match conn {
                Some(c) if c.expired(&self.inner.limits, Instant::now()) => {
                    conns.remove(id.as_str());
                    Err(c)
                }
                Some(c) => Ok(Some(c)),
                // Another owner's id.
                None if conns.contains_key(id.as_str()) => return Err(BrokerError::NotFound),
                None => Ok(None),
            }
        };
        match found {
            Ok(Some(c)) => {
                let stale = c.confirmed.lock().expect("not poisoned").elapsed()
                    > self.inner.limits.registry_recheck;
                if let Some(registry) = &self.inner.registry
                    && stale
                {
                    match registry.load(owner, id).await {
                        Ok(_) => *c.confirmed.lock().expect("not poisoned") = Instant::now(),
                        Err(BrokerError::NotFound) => {
                            // Disconnected elsewhere, or expired.
                            self.inner
                                .conns
                                .lock()
                                .expect("not poisoned")
                                .remove(id.as_str());
                            c.pool.close().await;
                            return Err(BrokerError::NotFound);
                        }
                        Err(e) => return Err(e),
                    }
                }
                Ok(c)
            }
            Ok(None) => self.adopt(owner, id).await,
            Err(expired) => {
                expired.pool.close().await;
                Err(BrokerError::NotFound)
            }
        }
    }

    /// What is known about a connection: type, host, database, user, mode, times.
    pub async fn info(&self, owner: &str, id: &ConnectionId) -> Result<ConnectionInfo> {
        let conn = self.lookup(owner, id).await?;
        let info = conn.info.lock().expect("not poisoned").clone();
        Ok(info)
    }

    /// The owner's connections.
    pub fn list(&self, owner: &str) -> Vec<ConnectionInfo> {
        let now = Instant::now();
        let conns = self.inner.conns.lock().expect("not poisoned");
        let mut list: Vec<ConnectionInfo> = conns
            .values()
            .filter(|c| c.owner == owner && !c.expired(&self.inner.limits, now))
            .map(|c| c.info.lock().expect("not poisoned").clone())
            .collect();
        list.sort_by_key(|c| c.created_at);
        list
    }

    /// Closes the connection and forgets the id.
    pub async fn disconnect(&self, owner: &str, id: &ConnectionId) -> Result<()> {
        let conn = self.lookup(owner, id).await?;
        self.inner
            .conns
            .lock()
            .expect("not poisoned")
            .remove(id.as_str());
        conn.pool.close().await;
        if let Some(registry) = &self.inner.registry {
            registry.remove(owner, id).await?;
        }
        Ok(())
    }

    /// Refuses new calls, then closes every connection (waiting for calls in flight).
    pub async fn shutdown(&self) {
        self.inner.shut.store(true, Ordering::SeqCst);
        let all: Vec<Arc<Conn>> = self
            .inner
            .conns
            .lock()
            .expect("not poisoned")
            .drain()
            .map(|(_, c)| c)
            .collect();
        for conn in all {
            conn.pool.close().await;
        }
    }

    /// Runs one reading statement with bound `params` and returns its rows: at most
    /// [`Limits::row_limit`] rows and [`Limits::byte_limit`] bytes (`truncated` says
    /// whether there were more), each cell at most [`Limits::cell_limit`] bytes.
    pub async fn query(
        &self,
        owner: &str,
        id: &ConnectionId,
        sql: &str,
        params: &[Value],
    ) -> Result<QueryResult> {
        let conn = self.lookup(owner, id).await?;
        let checked = check(sql, conn.pool.dialect(), conn.params.mode)?;
        conn.touch();
        let run = Call::new(&conn, &self.inner.limits, checked.touches_session);
        run.guarded(run.query(sql, params)).await
    }

    /// Runs one writing statement with bound `params` on a read-write connection and
    /// returns the rows it affected.
    pub async fn execute(
        &self,
        owner: &str,
        id: &ConnectionId,
        sql: &str,
        params: &[Value],
    ) -> Result<u64> {
        let conn = self.lookup(owner, id).await?;
        if conn.params.mode == Mode::ReadOnly {
            return Err(BrokerError::Rejected {
                reason: "the connection is read-only; writes need a read-write connection".into(),
            });
        }
        let checked = check(sql, conn.pool.dialect(), conn.params.mode)?;
        conn.touch();
        let run = Call::new(&conn, &self.inner.limits, checked.touches_session);
        run.guarded(run.execute(sql, params)).await
    }

    /// Runs `sql` like [`query`](Self::query), but without the statement check, so a
    /// test can show that the database engine itself refuses what the check would.
    /// Only with the `testing` feature, which no service should enable.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub async fn query_unchecked(
        &self,
        owner: &str,
        id: &ConnectionId,
        sql: &str,
        params: &[Value],
    ) -> Result<QueryResult> {
        let conn = self.lookup(owner, id).await?;
        let run = Call::new(&conn, &self.inner.limits, false);
        run.guarded(run.query(sql, params)).await
    }

    /// For each idle SQLite connection of `id`: whether `query_only` is on, how many
    /// databases are attached, how many temp objects exist. Only with `testing`.
    #[cfg(feature = "testing")]
    #[doc(hidden)]
    pub async fn sqlite_session_state(
        &self,
        owner: &str,
        id: &ConnectionId,
    ) -> Result<Vec<crate::sqlite::SessionState>> {
        let conn = self.lookup(owner, id).await?;
        match &conn.pool {
            Pool::Sqlite(pool) => pool.session_state(),
            _ => Err(BrokerError::Rejected {
                reason: "not a SQLite connection".into(),
            }),
        }
    }

    /// The tables and views the connection can see: their columns and types, primary
    /// keys, foreign keys and indexes. It has its own limit ([`Limits::schema_limit`]
    /// columns), not the row limit; `truncated` says whether tables were left out.
    pub async fn schema(&self, owner: &str, id: &ConnectionId) -> Result<Schema> {
        let conn = self.lookup(owner, id).await?;
        conn.touch();
        let limits = &self.inner.limits;
        let mut run = Call::new(&conn, limits, false);
        // One row past the limit tells whether there was more.
        run.rows = limits.schema_limit.saturating_add(1);
        run.bytes = usize::MAX;
        run.cells = usize::MAX;
        let queries = schema::queries(conn.params.engine);
        let columns = run.guarded(run.query(queries.columns, &[])).await?;
        let keys = run.guarded(run.query(queries.keys, &[])).await?;
        let indexes = run.guarded(run.query(queries.indexes, &[])).await?;
        Ok(schema::assemble(
            conn.params.engine,
            &columns,
            &keys,
            &indexes,
            limits.schema_limit,
        ))
    }
}

/// What opening a server pool takes: the parameters, the broker's limits, the pool size,
/// whether the role's escapes from a read-only transaction refuse the connection, and the
/// secrets no error may show.
#[derive(Clone, Copy)]
struct Opening<'a> {
    params: &'a ConnectionParams,
    limits: &'a Limits,
    size: u32,
    guarded: bool,
    secrets: &'a [&'a str],
}

impl Opening<'_> {
    /// The pool to `target`, under the broker's limits (see [`server::pool_options`]).
    async fn connect<DB: sqlx::Database>(
        &self,
        target: &coffer_sql::tls::Target<<DB::Connection as sqlx::Connection>::Options>,
    ) -> Result<sqlx::Pool<DB>> {
        server::pool_options::<DB>(self.limits, self.size)
            .connect_with(target.options().clone())
            .await
            .map_err(|e| crate::error::connect_error(target, e, self.secrets))
    }
}

/// The answer of a new pool's connect-time probe (the server's settings, and the role's
/// escapes from a read-only transaction): the settings, or the pool closed and the error
/// or the refusal naming the escapes.
async fn accept_probe<DB: sqlx::Database, T, E: AsRef<str>>(
    pool: &sqlx::Pool<DB>,
    probed: std::result::Result<(T, Vec<E>), sqlx::Error>,
    kind: Engine,
    user: &str,
    secrets: &[&str],
) -> Result<T> {
    let refused = match probed {
        Ok((settings, escapes)) if escapes.is_empty() => return Ok(settings),
        Ok((_, escapes)) => privileges::refusal(kind, user, &escapes),
        Err(e) => from_sqlx(e, secrets),
    };
    pool.close().await;
    Err(refused)
}
