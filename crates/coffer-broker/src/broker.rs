//! The broker: connection ids, pools, and the calls an agent makes by id.

use std::collections::HashMap;
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Column as _, Executor as _, TypeInfo as _};

use coffer_sql::tls::CleartextGuard;
use coffer_store::{Scope, SecretStore};

use crate::config::NamedConnections;
use crate::error::{connect_error, from_sqlx};
use crate::params::MYSQL_STATEMENT_CACHE;
use crate::privileges;
use crate::registry::ConnectionRegistry;
use crate::schema::{self, Schema};
use crate::sqlite::{CallLimits, SqlitePool};
use crate::statement::{Dialect, check};
use crate::value::{self, Budget, QueryResult, bind_json};
use crate::{BrokerError, ConnectionParams, DbKind, Mode, Result};

/// The broker's limits. Start from [`Limits::default`] and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Database connections per connection id (default 4).
    pub pool_size: u32,
    /// A connection id unused this long is closed and forgotten (default 15 minutes).
    pub idle_timeout: Duration,
    /// A connection id older than this is closed and forgotten (default 8 hours).
    pub max_lifetime: Duration,
    /// Connection ids one owner may hold at once (default 16).
    pub max_per_owner: usize,
    /// How long one statement may run (default 30 s).
    pub statement_timeout: Duration,
    /// Rows one query returns at most; more set `truncated` (default 1,000).
    pub row_limit: usize,
    /// Bytes one query returns at most, counted as the JSON its rows become, enforced as
    /// rows arrive; more set `truncated` (default 16 MiB). A connection may set its own
    /// ([`ConnectionParams::max_result_bytes`]). On SQLite it also bounds the largest
    /// value the engine may build, so memory stays bounded inside the engine too.
    pub byte_limit: usize,
    /// Bytes of one cell (text, or bytes before base64) at most; a longer cell is cut
    /// and ends with [`CELL_MARKER`](crate::CELL_MARKER) (default 1 MiB).
    pub cell_limit: usize,
    /// Columns [`Broker::schema`] describes at most, apart from the row limit; more set
    /// [`Schema::truncated`] (default 10,000).
    pub schema_limit: usize,
    /// How long connecting may take (default 10 s).
    pub connect_timeout: Duration,
    /// How often the reaper looks for idle and old ids (default 30 s).
    pub reap_interval: Duration,
    /// With a registry: how long an id opened here is used before the registry is asked
    /// again whether it still exists, so a disconnect on another instance takes effect
    /// here within this time (default 5 s).
    pub registry_recheck: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pool_size: 4,
            idle_timeout: Duration::from_secs(15 * 60),
            max_lifetime: Duration::from_secs(8 * 3600),
            max_per_owner: 16,
            statement_timeout: Duration::from_secs(30),
            row_limit: 1000,
            byte_limit: 16 << 20,
            cell_limit: 1 << 20,
            schema_limit: 10_000,
            connect_timeout: Duration::from_secs(10),
            reap_interval: Duration::from_secs(30),
            registry_recheck: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The byte limit of a call on `params`: its own, or [`Limits::byte_limit`].
    fn byte_limit_of(&self, params: &ConnectionParams) -> usize {
        params.max_result_bytes.unwrap_or(self.byte_limit)
    }
}

/// An opaque connection id: 128 random bits, printable (`conn_` and 32 hex digits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(String);

impl ConnectionId {
    fn random() -> Self {
        Self(format!("conn_{}", hex::encode(rand::random::<[u8; 16]>())))
    }

    /// An id as an agent hands it back (any text; unknown ids are simply not found).
    pub fn from_string(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell ids apart in logs, not enough to use one.
        write!(f, "ConnectionId({}…)", &self.0[..self.0.len().min(9)])
    }
}

/// What [`Broker::info`] tells about a connection: never a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The id.
    pub id: ConnectionId,
    /// The configured name, for named connections.
    pub name: Option<String>,
    /// The database kind.
    #[serde(rename = "type")]
    pub kind: DbKind,
    /// The host (servers).
    pub host: Option<String>,
    /// The port (servers).
    pub port: Option<u16>,
    /// The database name (servers) or file (SQLite).
    pub database: Option<String>,
    /// The user (servers).
    pub user: Option<String>,
    /// What calls may do.
    pub mode: Mode,
    /// When it was connected.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used_at: DateTime<Utc>,
}

impl ConnectionInfo {
    fn of(
        id: &ConnectionId,
        name: Option<String>,
        params: &ConnectionParams,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: id.clone(),
            name,
            kind: params.kind,
            host: params.host.clone(),
            port: params.port,
            database: params
                .database
                .clone()
                .or_else(|| params.path.as_ref().map(|p| p.display().to_string())),
            user: params.user.clone(),
            mode: params.mode,
            created_at,
            last_used_at: Utc::now(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MysqlFlavor {
    Mysql,
    Mariadb,
}

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
            Self::Sqlite(_) => Dialect::of(DbKind::Sqlite),
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
        macro_rules! options {
            ($db:ty) => {
                sqlx::pool::PoolOptions::<$db>::new()
                    .max_connections(size)
                    .min_connections(0)
                    .acquire_timeout(limits.connect_timeout)
                    .idle_timeout(Some(limits.idle_timeout))
                    .max_lifetime(Some(limits.max_lifetime))
                    // No liveness ping before each call: on Postgres and MySQL the call's
                    // first statement (opening its transaction) is the check, and a
                    // connection that fails it is discarded and the call retried once
                    // (see `ready!`); a SQLite file has no server to lose.
                    .test_before_acquire(false)
            };
        }
        let guarded = params.mode == Mode::ReadOnly && !params.allow_privileged;
        let user = params.user.as_deref().unwrap_or_default();
        let mut guard = None;
        let pool = match params.kind {
            DbKind::Postgres => {
                let target = params.pg_target()?;
                guard = target.guard().cloned();
                let pool = options!(sqlx::Postgres)
                    .connect_with(target.options().clone())
                    .await
                    .map_err(|e| connect_error(&target, e, &secrets))?;
                let probed = async {
                    let (standard,): (String,) = sqlx::query_as(
                        "SELECT current_setting('standard_conforming_strings')::text",
                    )
                    .fetch_one(&pool)
                    .await?;
                    let escapes = if guarded {
                        let f: (bool, bool, bool, bool, bool, bool, bool) =
                            sqlx::query_as(privileges::PG_QUERY)
                                .fetch_one(&pool)
                                .await?;
                        privileges::pg_escapes(&[f.0, f.1, f.2, f.3, f.4, f.5, f.6])
                    } else {
                        Vec::new()
                    };
                    Ok::<_, sqlx::Error>((standard, escapes))
                }
                .await;
                let standard =
                    accept_probe(&pool, probed, DbKind::Postgres, user, &secrets).await?;
                let dialect = Dialect {
                    kind: DbKind::Postgres,
                    backslash_escapes: standard != "on",
                };
                Pool::Pg(pool, dialect)
            }
            DbKind::Mysql => {
                let target = params.mysql_target()?;
                guard = target.guard().cloned();
                let pool = options!(sqlx::MySql)
                    .connect_with(target.options().clone())
                    .await
                    .map_err(|e| connect_error(&target, e, &secrets))?;
                let probed = async {
                    let (version, sql_mode): (String, String) =
                        sqlx::query_as("SELECT VERSION(), CAST(@@SESSION.sql_mode AS CHAR)")
                            .fetch_one(&pool)
                            .await?;
                    let escapes = if guarded {
                        let rows = sqlx::raw_sql("SHOW GRANTS").fetch_all(&pool).await?;
                        let lines: Vec<String> = rows
                            .iter()
                            .filter_map(|r| sqlx::Row::try_get::<String, _>(r, 0).ok())
                            .collect();
                        privileges::mysql_escapes(&lines)
                    } else {
                        Vec::new()
                    };
                    Ok::<_, sqlx::Error>(((version, sql_mode), escapes))
                }
                .await;
                let (version, sql_mode) =
                    accept_probe(&pool, probed, DbKind::Mysql, user, &secrets).await?;
                let flavor = if version.to_ascii_lowercase().contains("mariadb") {
                    MysqlFlavor::Mariadb
                } else {
                    MysqlFlavor::Mysql
                };
                let dialect = Dialect {
                    kind: DbKind::Mysql,
                    backslash_escapes: !sql_mode
                        .to_ascii_uppercase()
                        .contains("NO_BACKSLASH_ESCAPES"),
                };
                Pool::Mysql(pool, flavor, dialect)
            }
            DbKind::Sqlite => Pool::Sqlite(Arc::new(
                SqlitePool::open(
                    params.path.clone().unwrap_or_default(),
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
        tracing::info!(owner, kind = %conn.params.kind, "connected");
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
        let queries = schema::queries(conn.params.kind);
        let columns = run.guarded(run.query(queries.columns, &[])).await?;
        let keys = run.guarded(run.query(queries.keys, &[])).await?;
        let indexes = run.guarded(run.query(queries.indexes, &[])).await?;
        Ok(schema::assemble(
            conn.params.kind,
            &columns,
            &keys,
            &indexes,
            limits.schema_limit,
        ))
    }
}

/// The answer of a new pool's connect-time probe (the server's settings, and the role's
/// escapes from a read-only transaction): the settings, or the pool closed and the error
/// or the refusal naming the escapes.
async fn accept_probe<DB: sqlx::Database, T, E: AsRef<str>>(
    pool: &sqlx::Pool<DB>,
    probed: std::result::Result<(T, Vec<E>), sqlx::Error>,
    kind: DbKind,
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

/// Takes a connection from `$pool` and runs `$setup` on it: the statements that open the
/// call's transaction and set its limits. That first round trip doubles as the liveness
/// check the pool does not make: a connection that fails it (closed by the server, cut by
/// a restart or the network) is discarded and the setup tried once more on another, which
/// the pool opens anew if it has to. Nothing of the caller's has run at that point, so the
/// retry is safe; a setup that fails twice is the call's error. A connection whose setup
/// failed is never returned to the pool, so none is reused half inside a transaction.
macro_rules! ready {
    ($call:expr, $pool:expr, $setup:expr) => {{
        let setup: String = $setup;
        let mut retried = false;
        loop {
            let mut c = $pool.acquire().await.map_err(|e| $call.err(e))?;
            match sqlx::raw_sql(sqlx::AssertSqlSafe(setup.as_str()))
                .execute(&mut *c)
                .await
            {
                Ok(_) => break c,
                Err(e) => {
                    c.close_on_drop();
                    if retried {
                        return Err($call.err(e));
                    }
                    tracing::debug!(
                        kind = %$call.conn.params.kind,
                        "broker: a pooled connection failed its setup; retrying on another"
                    );
                    retried = true;
                }
            }
        }
    }};
}

/// Fetches at most `limit` rows and the call's byte budget of `sql` on connection `c`,
/// converting each with `$row` (which cuts cells at the cell limit);
/// `$persistent` keeps the prepared statement in the connection's cache (MySQL only, see
/// [`recycle_when_cache_full`]).
macro_rules! fetch_rows {
    ($call:expr, $c:expr, $sql:expr, $params:expr, $limit:expr, $mode:expr, $persistent:expr, $row:path, $cols:path) => {{
        async {
            let mut columns = None;
            let mut rows = Vec::new();
            let mut truncated = false;
            let mut discard = false;
            let mut budget = Budget::new($call.bytes, $call.cells);
            {
                let q = bind_json!(
                    sqlx::query(sqlx::AssertSqlSafe($sql)).persistent($persistent),
                    $params
                );
                let mut stream = q.fetch(&mut *$c);
                while let Some(row) = stream.try_next().await.map_err(|e| $call.err(e))? {
                    let kept = rows.len() < $limit && !budget.exhausted() && {
                        let values = $row(&row, &mut budget)?;
                        budget.take_row(&values) && {
                            rows.push(values);
                            true
                        }
                    };
                    if !kept {
                        truncated = true;
                        if $mode == Mode::ReadOnly {
                            // Stop the server's work by closing the connection.
                            discard = true;
                            break;
                        }
                        // A writing statement runs to its end, so what it did commits
                        // whole; the rows past the limit are dropped.
                        continue;
                    }
                    if columns.is_none() {
                        columns = Some($cols(&row));
                    }
                }
            }
            let columns = match columns {
                Some(c) => c,
                None => match (&mut *$c)
                    .describe(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe($sql)))
                    .await
                {
                    Ok(d) => d
                        .columns()
                        .iter()
                        .map(|col| value::Column {
                            name: col.name().to_owned(),
                            type_name: col.type_info().name().to_owned(),
                        })
                        .collect(),
                    Err(_) => Vec::new(),
                },
            };
            // A read-only connection that carried a cell past the cell limit holds a read
            // buffer that large: close it rather than keep the memory pooled (nothing is
            // lost; a read-write one must still commit).
            let discard = discard || ($mode == Mode::ReadOnly && budget.truncated_cells() > 0);
            Ok::<_, BrokerError>(Collected {
                result: QueryResult {
                    columns,
                    rows,
                    truncated,
                    truncated_cells: budget.truncated_cells(),
                },
                discard,
            })
        }
        .await
    }};
}

/// Ends a call on a server connection: on success the transaction ends (rolled back when
/// read-only, committed otherwise) and `$reset` clears the one piece of session state a
/// statement can leave behind (advisory or named locks); a call that stopped half-way or
/// failed closes the connection instead, which also ends the server's work.
macro_rules! finish {
    ($call:expr, $c:expr, $collected:expr, $mode:expr, $reset:expr) => {{
        let mut c = $c;
        match $collected {
            Ok(Collected {
                result,
                discard: false,
            }) => {
                let end = match $mode {
                    Mode::ReadOnly => "ROLLBACK",
                    Mode::ReadWrite => "COMMIT",
                };
                let reset = format!("{end}; {}", $reset);
                match sqlx::raw_sql(sqlx::AssertSqlSafe(reset))
                    .execute(&mut *c)
                    .await
                {
                    Ok(_) => {
                        if $call.close_after {
                            c.close_on_drop();
                        }
                        Ok(result)
                    }
                    Err(e) => {
                        c.close_on_drop();
                        Err($call.err(e))
                    }
                }
            }
            Ok(Collected {
                result,
                discard: true,
            }) => {
                c.close_on_drop();
                Ok(result)
            }
            Err(e) => {
                c.close_on_drop();
                Err(e)
            }
        }
    }};
}

/// MySQL connections keep their callers' prepared statements ([`MYSQL_STATEMENT_CACHE`]
/// per connection) instead of closing each one after use: sqlx 0.9 sends
/// `COM_STMT_CLOSE`, which the server never answers, on a socket without `TCP_NODELAY`,
/// so the next command waited for the server's delayed ACK, about 40 ms per call
/// (sqlx issue #4335). Evicting from a full cache would send the same unanswered close,
/// so a connection whose cache is full is closed after its call instead: the pool opens
/// a fresh one, which costs a login once per that many distinct statements.
fn recycle_when_cache_full(c: &mut sqlx::pool::PoolConnection<sqlx::MySql>) {
    if sqlx::Connection::cached_statements_size(&**c) >= MYSQL_STATEMENT_CACHE {
        c.close_on_drop();
    }
}

/// What a read-write Postgres call's statement may have left on the session, cleared after
/// its commit in the same round trip: `DISCARD ALL` but for the parts that cannot run in a
/// batch (prepared statements stay unnamed here, and cursors cannot be declared).
macro_rules! pg_read_write_reset {
    () => {
        "RESET ALL; RESET ROLE; RESET SESSION AUTHORIZATION; UNLISTEN *; DISCARD TEMP; \
         DISCARD SEQUENCES; SELECT pg_advisory_unlock_all()"
    };
}
const PG_READ_WRITE_RESET: &str = pg_read_write_reset!();

/// How a read-write Postgres `execute` ends: the commit, then [`PG_READ_WRITE_RESET`].
const PG_READ_WRITE_END: &str = concat!("COMMIT; ", pg_read_write_reset!());

/// One call on one connection.
struct Call<'a> {
    conn: &'a Conn,
    limits: &'a Limits,
    /// Close the database connection after the call instead of reusing it.
    close_after: bool,
    /// Rows the call returns at most.
    rows: usize,
    /// Bytes the call returns at most.
    bytes: usize,
    /// Bytes of one cell at most.
    cells: usize,
}

/// What a fetch loop collects.
struct Collected {
    result: QueryResult,
    /// The connection cannot be reused (a fetch stopped half-way, a timeout, an error
    /// mid-transaction): close it instead of returning it to the pool.
    discard: bool,
}

impl<'a> Call<'a> {
    fn new(conn: &'a Conn, limits: &'a Limits, close_after: bool) -> Self {
        Self {
            conn,
            limits,
            close_after,
            rows: limits.row_limit,
            bytes: limits.byte_limit_of(&conn.params),
            cells: limits.cell_limit,
        }
    }

    fn sqlite_limits(&self) -> CallLimits {
        CallLimits {
            timeout: self.limits.statement_timeout,
            row_limit: self.rows,
            byte_limit: self.bytes,
            cell_limit: self.cells,
        }
    }

    fn secrets(&self) -> Vec<&str> {
        self.conn.params.secrets()
    }

    fn err(&self, e: sqlx::Error) -> BrokerError {
        let timeout_ms =
            u64::try_from(self.limits.statement_timeout.as_millis()).unwrap_or(u64::MAX);
        if let sqlx::Error::Database(db) = &e {
            let code = db.code();
            // Postgres query_canceled, MariaDB/MySQL max statement/execution time,
            // SQLite interrupted.
            if matches!(
                code.as_deref(),
                Some("57014" | "70100" | "1969" | "3024" | "9")
            ) {
                return BrokerError::Timeout { timeout_ms };
            }
        }
        from_sqlx(e, &self.secrets())
    }

    /// Runs `fut` with a client-side deadline a little after the server-side one, so a
    /// server that ignores its timeout cannot hold the call forever.
    async fn guarded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
        let backstop = self.limits.statement_timeout + Duration::from_secs(5);
        match tokio::time::timeout(backstop, fut).await {
            Ok(r) => r,
            Err(_) => Err(BrokerError::Timeout {
                timeout_ms: u64::try_from(self.limits.statement_timeout.as_millis())
                    .unwrap_or(u64::MAX),
            }),
        }
    }

    fn timeout_ms(&self) -> u128 {
        self.limits.statement_timeout.as_millis().max(1)
    }

    /// The session setting that bounds a statement's time: MariaDB's in seconds, MySQL's
    /// in milliseconds.
    fn mysql_timeout(&self, flavor: MysqlFlavor) -> String {
        match flavor {
            MysqlFlavor::Mariadb => format!(
                "SET SESSION max_statement_time = {}",
                self.timeout_ms() as f64 / 1000.0
            ),
            MysqlFlavor::Mysql => {
                format!("SET SESSION max_execution_time = {}", self.timeout_ms())
            }
        }
    }

    async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult> {
        let mode = self.conn.params.mode;
        let limit = self.rows;
        match &self.conn.pool {
            Pool::Pg(pool, _) => {
                let begin = match mode {
                    Mode::ReadOnly => "BEGIN READ ONLY",
                    Mode::ReadWrite => "BEGIN",
                };
                // SELECT 1 takes the snapshot: from then on the transaction's read-only
                // mode can no longer be changed.
                let mut c = ready!(
                    self,
                    pool,
                    format!(
                        "{begin}; SET LOCAL statement_timeout = {}; SELECT 1",
                        self.timeout_ms()
                    )
                );
                let collected = fetch_rows!(
                    self,
                    c,
                    sql,
                    params,
                    limit,
                    mode,
                    false,
                    value::pg_row,
                    value::pg_columns
                );
                // What a statement can leave on a session outside its transaction:
                // advisory locks; after a commit also settings (`set_config`), the role,
                // LISTENs, temp tables and sequences' state. A read-only call's settings
                // went with its rollback. (`DISCARD ALL` cannot run in this batch.)
                let reset = match mode {
                    Mode::ReadOnly => "SELECT pg_advisory_unlock_all()",
                    Mode::ReadWrite => PG_READ_WRITE_RESET,
                };
                finish!(self, c, collected, mode, reset)
            }
            Pool::Mysql(pool, flavor, _) => {
                let timeout = self.mysql_timeout(*flavor);
                let begin = match mode {
                    Mode::ReadOnly => "START TRANSACTION READ ONLY",
                    Mode::ReadWrite => "START TRANSACTION",
                };
                let mut c = ready!(self, pool, format!("{timeout}; {begin}"));
                let collected = fetch_rows!(
                    self,
                    c,
                    sql,
                    params,
                    limit,
                    mode,
                    true,
                    value::mysql_row,
                    value::mysql_columns
                );
                recycle_when_cache_full(&mut c);
                finish!(self, c, collected, mode, "DO RELEASE_ALL_LOCKS()")
            }
            Pool::Sqlite(pool) => pool.query(sql, params, self.sqlite_limits()).await,
        }
    }

    async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        macro_rules! run {
            ($pool:expr, $setup:expr, $end:expr, $persistent:expr, $after:expr) => {{
                let mut c = ready!(self, $pool, $setup);
                let q = bind_json!(
                    sqlx::query(sqlx::AssertSqlSafe(sql)).persistent($persistent),
                    params
                );
                let done = q.execute(&mut *c).await;
                $after(&mut c);
                match done {
                    Ok(done) => {
                        if let Err(e) = sqlx::raw_sql($end).execute(&mut *c).await {
                            c.close_on_drop();
                            return Err(self.err(e));
                        }
                        if self.close_after {
                            c.close_on_drop();
                        }
                        Ok(done.rows_affected())
                    }
                    Err(e) => {
                        c.close_on_drop();
                        Err(self.err(e))
                    }
                }
            }};
        }
        match &self.conn.pool {
            Pool::Pg(pool, _) => run!(
                pool,
                format!("BEGIN; SET LOCAL statement_timeout = {}", self.timeout_ms()),
                PG_READ_WRITE_END,
                false,
                |_| ()
            ),
            Pool::Mysql(pool, flavor, _) => {
                let timeout = self.mysql_timeout(*flavor);
                run!(
                    pool,
                    format!("{timeout}; START TRANSACTION"),
                    "COMMIT",
                    true,
                    recycle_when_cache_full
                )
            }
            Pool::Sqlite(pool) => pool.execute(sql, params, self.sqlite_limits()).await,
        }
    }
}
