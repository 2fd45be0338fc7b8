//! The `secret_access_log` table: an audit sink and its reader.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coffer_store::layer::{AuditEvent, AuditSink, CallerContext, Operation, Outcome};
use coffer_store::{BoxError, Error, Result, Scope, SecretName};

use sqlx::QueryBuilder;
use tokio::sync::{mpsc, oneshot};

use crate::common::{map_sqlx, ms};

#[derive(Clone)]
enum LogPool {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs the same query text on whichever pool the sink has.
macro_rules! on_pool {
    ($pool:expr, |$p:ident| $body:expr) => {
        match $pool {
            #[cfg(feature = "sqlite")]
            LogPool::Sqlite($p) => $body,
            #[cfg(feature = "postgres")]
            LogPool::Postgres($p) => $body,
        }
    };
}

/// An [`AuditSink`] writing each event as a row of `secret_access_log` in the store's
/// own database (the table comes with the store's migrations), and the reader behind
/// `coffer audit`.
///
/// **Group commit.** One writer per sink, on a connection of its own, inserts the
/// events that arrive while it writes as one multi-row `INSERT`, one commit for all of
/// them; each caller waits for the commit that holds its event, so an audited call
/// still returns only after its event is accepted (fail-closed), and concurrent calls
/// share the commit instead of queueing for one each.
///
/// **Durability** ([`AuditDurability`]): by default an accepted event is committed (in
/// the database, visible to every reader, surviving a crash of the application or of
/// coffer) but not flushed to disk per event, as Vault's file audit device writes each
/// entry and fails the request if the write fails, without an fsync per entry. SQLite
/// runs the writer's connection with `synchronous = NORMAL` (WAL: a power loss or OS
/// crash can lose the last commits, never corrupt the file); Postgres with
/// `synchronous_commit = off` (a crash of the database server can lose the commits of
/// its last `3 × wal_writer_delay`, 600 ms by default). [`AuditDurability::Flushed`]
/// waits for the flush, as the store's own writes do.
///
/// ```no_run
/// use std::sync::Arc;
/// use coffer_sql::{SqlAuditSink, SqliteStore};
/// use coffer_store::layer::AuditStore;
/// # async fn f(store: SqliteStore) {
/// let sink = SqlAuditSink::sqlite(&store);
/// let audited = AuditStore::new(store, vec![Arc::new(sink)]);
/// # }
/// ```
#[derive(Clone)]
pub struct SqlAuditSink {
    pool: LogPool,
    durability: AuditDurability,
    /// The queue of the writer task, started on the first event (and again if the
    /// runtime it ran on has gone).
    writer: Arc<Mutex<Option<mpsc::Sender<Pending>>>>,
}

/// How far an event has gone when [`SqlAuditSink`] accepts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AuditDurability {
    /// Committed: in the database and visible to readers, not flushed to disk per
    /// event (see [`SqlAuditSink`]). The default.
    #[default]
    Committed,
    /// Committed and flushed to disk (`synchronous = FULL`, `synchronous_commit = on`).
    Flushed,
}

/// The most events one commit carries (12 bound parameters each).
const MAX_BATCH: usize = 256;

/// One event waiting for its commit.
struct Pending {
    event: AuditEvent,
    done: oneshot::Sender<std::result::Result<(), BatchFailed>>,
}

/// Why a batch of events was not committed, shared by every caller whose event it held.
#[derive(Debug, Clone)]
struct BatchFailed(Arc<Error>);

impl fmt::Display for BatchFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl std::error::Error for BatchFailed {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.0)
    }
}

/// The writer's own connection.
enum LogConn {
    #[cfg(feature = "sqlite")]
    Sqlite(sqlx::SqliteConnection),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgConnection),
}

const INSERT_PREFIX: &str = "INSERT INTO secret_access_log (at, scope, name, version, operation, \
     outcome, error_kind, actor, workflow_id, node_id, ip, user_agent) ";

/// One multi-row `INSERT` of `events`.
fn insert_query<DB>(events: &[AuditEvent], ips: &[Option<String>]) -> QueryBuilder<DB>
where
    DB: sqlx::Database,
    for<'t> i64: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<i64>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> &'t str: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
    for<'t> Option<&'t str>: sqlx::Encode<'t, DB> + sqlx::Type<DB>,
{
    let mut q = QueryBuilder::new(INSERT_PREFIX);
    q.push_values(events.iter().zip(ips), |mut row, (event, ip)| {
        let c = &event.context;
        row.push_bind(ms(event.time))
            .push_bind(event.scope.as_ref().map(Scope::as_str))
            .push_bind(event.name.as_ref().map(SecretName::as_str))
            .push_bind(event.version.and_then(|v| i64::try_from(v).ok()))
            .push_bind(event.operation.as_str())
            .push_bind(event.outcome.as_str())
            .push_bind(event.error_kind.as_deref())
            .push_bind(c.actor.as_deref())
            .push_bind(c.workflow_id.as_deref())
            .push_bind(c.node_id.as_deref())
            .push_bind(ip.as_deref())
            .push_bind(c.user_agent.as_deref());
    });
    q
}

impl LogPool {
    fn backend(&self) -> &'static str {
        match self {
            #[cfg(feature = "sqlite")]
            LogPool::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            LogPool::Postgres(_) => "postgres",
        }
    }

    /// A connection of the writer's own, out of the pool (which opens a replacement),
    /// with the session setting `durability` asks for.
    async fn open(&self, durability: AuditDurability) -> Result<LogConn> {
        let relaxed = durability == AuditDurability::Committed;
        let map = |e| map_sqlx(self.backend(), e);
        Ok(match self {
            #[cfg(feature = "sqlite")]
            LogPool::Sqlite(p) => {
                let mut c = p.acquire().await.map_err(map)?.detach();
                if relaxed {
                    sqlx::raw_sql("PRAGMA synchronous = NORMAL")
                        .execute(&mut c)
                        .await
                        .map_err(map)?;
                }
                LogConn::Sqlite(c)
            }
            #[cfg(feature = "postgres")]
            LogPool::Postgres(p) => {
                let mut c = p.acquire().await.map_err(map)?.detach();
                if relaxed {
                    sqlx::raw_sql("SET synchronous_commit TO off")
                        .execute(&mut c)
                        .await
                        .map_err(map)?;
                }
                LogConn::Postgres(c)
            }
        })
    }
}

impl LogConn {
    async fn insert(&mut self, backend: &'static str, events: &[AuditEvent]) -> Result<()> {
        let ips: Vec<Option<String>> = events
            .iter()
            .map(|e| e.context.ip.map(|ip| ip.to_string()))
            .collect();
        let map = |e| map_sqlx(backend, e);
        match self {
            #[cfg(feature = "sqlite")]
            LogConn::Sqlite(c) => insert_query::<sqlx::Sqlite>(events, &ips)
                .build()
                .execute(&mut *c)
                .await
                .map(drop)
                .map_err(map),
            #[cfg(feature = "postgres")]
            LogConn::Postgres(c) => insert_query::<sqlx::Postgres>(events, &ips)
                .build()
                .execute(&mut *c)
                .await
                .map(drop)
                .map_err(map),
        }
    }
}

/// The writer: takes the first waiting event and every other already waiting (up to
/// [`MAX_BATCH`]), commits them in one statement and answers each caller. A batch
/// whose connection turns out to be gone is written once more on a new one (an event
/// may then be logged twice, never lost); any other failure fails the batch's calls.
async fn write_events(
    pool: LogPool,
    durability: AuditDurability,
    mut queue: mpsc::Receiver<Pending>,
) {
    let backend = pool.backend();
    let mut conn: Option<LogConn> = None;
    let mut batch: Vec<Pending> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let (events, answers): (Vec<AuditEvent>, Vec<_>) =
            batch.drain(..).map(|p| (p.event, p.done)).unzip();
        let mut result = Err(Error::backend(backend, "the audit writer did not run"));
        for attempt in 0..2 {
            let mut c = match conn.take() {
                Some(c) => c,
                None => match pool.open(durability).await {
                    Ok(c) => c,
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                },
            };
            result = c.insert(backend, &events).await;
            match &result {
                Ok(()) => {
                    conn = Some(c);
                    break;
                }
                Err(e) if attempt == 0 && crate::support::connection_lost(e) => {
                    tracing::debug!(
                        backend,
                        "the audit writer's connection was gone; reconnecting"
                    );
                }
                Err(_) => break,
            }
        }
        let result = result.map_err(|e| BatchFailed(Arc::new(e)));
        for answer in answers {
            let _ = answer.send(result.clone());
        }
    }
}

impl fmt::Debug for SqlAuditSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlAuditSink")
            .field("database", &self.backend())
            .finish()
    }
}

/// Which rows [`SqlAuditSink::query`] returns.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct AuditQuery {
    /// Only this scope.
    pub scope: Option<Scope>,
    /// Only this secret.
    pub name: Option<SecretName>,
    /// Only events at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// At most this many rows, newest first (default 100).
    pub limit: Option<u32>,
}

impl AuditQuery {
    /// The newest 100 events of every scope.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `scope`.
    #[must_use]
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }

    /// Only `name`.
    #[must_use]
    pub fn name(mut self, name: SecretName) -> Self {
        self.name = Some(name);
        self
    }

    /// Only events since `since`.
    #[must_use]
    pub fn since(mut self, since: DateTime<Utc>) -> Self {
        self.since = Some(since);
        self
    }

    /// At most `limit` rows.
    #[must_use]
    pub fn limit(mut self, limit: u32) -> Self {
        self.limit = Some(limit);
        self
    }
}

#[derive(sqlx::FromRow)]
struct Row {
    at: i64,
    scope: Option<String>,
    name: Option<String>,
    version: Option<i64>,
    operation: String,
    outcome: String,
    error_kind: Option<String>,
    actor: Option<String>,
    workflow_id: Option<String>,
    node_id: Option<String>,
    ip: Option<String>,
    user_agent: Option<String>,
}

fn parse<T: serde::de::DeserializeOwned>(field: &'static str, text: &str) -> Result<T> {
    serde_json::from_value(serde_json::Value::String(text.to_owned())).map_err(|_| {
        Error::InvalidInput {
            field,
            reason: format!("unknown value {text:?} in secret_access_log"),
        }
    })
}

impl Row {
    fn into_event(self) -> Result<AuditEvent> {
        let operation: Operation = parse("operation", &self.operation)?;
        let outcome: Outcome = parse("outcome", &self.outcome)?;
        let mut event = AuditEvent::new(
            self.scope.map(Scope::new).transpose()?,
            self.name.map(SecretName::new).transpose()?,
            operation,
            outcome,
        );
        event.time = DateTime::from_timestamp_millis(self.at).unwrap_or_default();
        event.version = self.version.and_then(|v| u64::try_from(v).ok());
        event.error_kind = self.error_kind;
        let mut context = CallerContext::new();
        context.actor = self.actor;
        context.workflow_id = self.workflow_id;
        context.node_id = self.node_id;
        context.ip = self.ip.and_then(|ip| ip.parse::<IpAddr>().ok());
        context.user_agent = self.user_agent;
        event.context = context;
        Ok(event)
    }
}

impl SqlAuditSink {
    /// Writes into the database of a SQLite store.
    #[cfg(feature = "sqlite")]
    pub fn sqlite(store: &crate::SqliteStore) -> Self {
        Self::on(LogPool::Sqlite(store.pool().clone()))
    }

    /// Writes into the database of a Postgres store.
    #[cfg(feature = "postgres")]
    pub fn postgres(store: &crate::PgStore) -> Self {
        Self::on(LogPool::Postgres(store.pool().clone()))
    }

    /// Connects to the database of a `sqlite://` or `postgres://` store URL, opening the
    /// store there first (so its migrations, which make the table, have run and the
    /// keyring matches).
    pub async fn connect(
        url: &str,
        keyring: impl Into<coffer_envelope::KeyringHandle>,
    ) -> Result<Self> {
        Ok(Self::open_with_store(url, keyring).await?.1)
    }

    /// Opens the `sqlite://` or `postgres://` store at `url` and a sink writing to its
    /// database through the same connection pool: what an audited store needs, with one
    /// pool, one migration run and one key check.
    ///
    /// ```no_run
    /// # async fn demo(keyring: std::sync::Arc<coffer_envelope::Keyring>) -> coffer_store::Result<()> {
    /// use std::sync::Arc;
    /// use coffer_store::layer::AuditStore;
    ///
    /// let (store, sink) = coffer_sql::SqlAuditSink::open_with_store("sqlite://coffer.db", keyring).await?;
    /// let audited = AuditStore::new(store, vec![Arc::new(sink)]);
    /// # Ok(()) }
    /// ```
    pub async fn open_with_store(
        url: &str,
        keyring: impl Into<coffer_envelope::KeyringHandle>,
    ) -> Result<(std::sync::Arc<coffer_store::DynSecretStore>, Self)> {
        let keyring = keyring.into();
        match coffer_store::open::scheme_of(url)
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            #[cfg(feature = "sqlite")]
            Some("sqlite") => {
                let store = crate::SqliteStore::connect(url, keyring).await?;
                let sink = Self::sqlite(&store);
                Ok((std::sync::Arc::new(store), sink))
            }
            #[cfg(feature = "postgres")]
            Some("postgres" | "postgresql") => {
                let store = crate::PgStore::connect(url, keyring).await?;
                let sink = Self::postgres(&store);
                Ok((std::sync::Arc::new(store), sink))
            }
            _ => Err(Error::config(format!(
                "the access log lives in a SQL store's database (sqlite://, postgres://); {} has none",
                coffer_store::open::redact_url(url)
            ))),
        }
    }

    fn on(pool: LogPool) -> Self {
        Self {
            pool,
            durability: AuditDurability::default(),
            writer: Arc::new(Mutex::new(None)),
        }
    }

    /// How far an event must have gone before it is accepted (default
    /// [`AuditDurability::Committed`]).
    #[must_use]
    pub fn durability(mut self, durability: AuditDurability) -> Self {
        self.durability = durability;
        self.writer = Arc::new(Mutex::new(None));
        self
    }

    fn backend(&self) -> &'static str {
        self.pool.backend()
    }

    /// Hands `pending` to the writer task, starting one on this runtime if there is
    /// none or the one there was has stopped (its runtime shut down).
    async fn enqueue(&self, pending: Pending) -> std::result::Result<(), Error> {
        let current = self.lock_writer().clone();
        let pending = match current {
            Some(sender) => match sender.send(pending).await {
                Ok(()) => return Ok(()),
                Err(mpsc::error::SendError(pending)) => pending,
            },
            None => pending,
        };
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            Error::backend(
                self.backend(),
                "the SQL audit sink records events inside a Tokio runtime",
            )
        })?;
        let sender = {
            let mut writer = self.lock_writer();
            match writer.as_ref() {
                Some(sender) if !sender.is_closed() => sender.clone(),
                _ => {
                    let (sender, queue) = mpsc::channel(MAX_BATCH * 4);
                    handle.spawn(write_events(self.pool.clone(), self.durability, queue));
                    *writer = Some(sender.clone());
                    sender
                }
            }
        };
        sender
            .send(pending)
            .await
            .map_err(|_| Error::backend(self.backend(), "the audit writer stopped"))
    }

    fn lock_writer(&self) -> std::sync::MutexGuard<'_, Option<mpsc::Sender<Pending>>> {
        self.writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The events `query` selects, newest first.
    pub async fn query(&self, query: &AuditQuery) -> Result<Vec<AuditEvent>> {
        const SQL: &str = "SELECT at, scope, name, version, operation, outcome, error_kind, actor, \
             workflow_id, node_id, ip, user_agent FROM secret_access_log \
             WHERE ($1 IS NULL OR scope = $1) AND ($2 IS NULL OR name = $2) AND at >= $3 \
             ORDER BY at DESC, id DESC LIMIT $4";
        let scope = query.scope.as_ref().map(|s| s.as_str().to_owned());
        let name = query.name.as_ref().map(|n| n.as_str().to_owned());
        let since = query.since.map_or(i64::MIN, ms);
        let limit = i64::from(query.limit.unwrap_or(100));
        let rows: Vec<Row> = on_pool!(&self.pool, |p| sqlx::query_as(SQL)
            .bind(scope)
            .bind(name)
            .bind(since)
            .bind(limit)
            .fetch_all(p)
            .await
            .map_err(|e| map_sqlx(self.backend(), e))?);
        rows.into_iter().map(Row::into_event).collect()
    }

    /// Deletes events older than `before`; returns how many.
    pub async fn prune(&self, before: DateTime<Utc>) -> Result<u64> {
        const SQL: &str = "DELETE FROM secret_access_log WHERE at < $1";
        on_pool!(&self.pool, |p| sqlx::query(SQL)
            .bind(ms(before))
            .execute(p)
            .await
            .map(|r| r.rows_affected())
            .map_err(|e| map_sqlx(self.backend(), e)))
    }
}

#[async_trait]
impl AuditSink for SqlAuditSink {
    fn name(&self) -> &'static str {
        "sql"
    }

    async fn record(&self, event: &AuditEvent) -> std::result::Result<(), BoxError> {
        let (done, accepted) = oneshot::channel();
        self.enqueue(Pending {
            event: event.clone(),
            done,
        })
        .await?;
        match accepted.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(failed)) => Err(Box::new(failed)),
            Err(_) => Err(Box::new(Error::backend(
                self.backend(),
                "the audit writer stopped before committing the event",
            ))),
        }
    }
}
