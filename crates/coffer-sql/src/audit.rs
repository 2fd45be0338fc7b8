//! The `secret_access_log` table: an audit sink and its reader.

use std::fmt;
use std::net::IpAddr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use coffer_store::layer::{AuditEvent, AuditSink, CallerContext, Operation, Outcome};
use coffer_store::{BoxError, Error, Result, Scope, SecretName};

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
/// Each event is one `INSERT`, committed before the audited operation proceeds.
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
        Self {
            pool: LogPool::Sqlite(store.pool().clone()),
        }
    }

    /// Writes into the database of a Postgres store.
    #[cfg(feature = "postgres")]
    pub fn postgres(store: &crate::PgStore) -> Self {
        Self {
            pool: LogPool::Postgres(store.pool().clone()),
        }
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

    fn backend(&self) -> &'static str {
        match self.pool {
            #[cfg(feature = "sqlite")]
            LogPool::Sqlite(_) => "sqlite",
            #[cfg(feature = "postgres")]
            LogPool::Postgres(_) => "postgres",
        }
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
        const SQL: &str = "INSERT INTO secret_access_log (at, scope, name, version, operation, \
             outcome, error_kind, actor, workflow_id, node_id, ip, user_agent) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
        let c = &event.context;
        on_pool!(&self.pool, |p| sqlx::query(SQL)
            .bind(ms(event.time))
            .bind(event.scope.as_ref().map(Scope::as_str))
            .bind(event.name.as_ref().map(SecretName::as_str))
            .bind(event.version.and_then(|v| i64::try_from(v).ok()))
            .bind(event.operation.as_str())
            .bind(event.outcome.as_str())
            .bind(event.error_kind.as_deref())
            .bind(c.actor.as_deref())
            .bind(c.workflow_id.as_deref())
            .bind(c.node_id.as_deref())
            .bind(c.ip.map(|ip| ip.to_string()))
            .bind(c.user_agent.as_deref())
            .execute(p)
            .await
            .map(drop)
            .map_err(|e| Box::new(map_sqlx(self.backend(), e)) as BoxError))
    }
}
