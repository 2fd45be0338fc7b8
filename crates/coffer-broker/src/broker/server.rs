//! What the call protocol needs of a database server reached through sqlx (Postgres,
//! MySQL/MariaDB): [`Wire`], sqlx's generic API with its bounds written once, and
//! [`Server`], the SQL by which a call's transaction opens and ends there and how its
//! rows become JSON. SQLite goes through rusqlite and its authorizer (`crate::sqlite`).

use async_trait::async_trait;
use futures::stream::BoxStream;
use serde_json::Value;
use sqlx::database::HasStatementCache;
use sqlx::pool::{PoolConnection, PoolOptions};
use sqlx::{Column as _, Database, Encode, Executor, IntoArguments, Type, TypeInfo as _};

use coffer_sql::support::RowsAffected;

use crate::value::{self, Budget, Param};
use crate::{Mode, Result};

use super::Limits;

/// sqlx's API as the call protocol uses it, on any database that has it.
#[async_trait]
pub(crate) trait Wire: Database + HasStatementCache {
    /// Runs `sql`, which may hold several statements, without parameters.
    async fn batch(conn: &mut Self::Connection, sql: &str) -> Result<(), sqlx::Error>;

    /// The rows of `sql` with `params` bound, as they arrive; `persistent` keeps the
    /// prepared statement in the connection's cache.
    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Value],
        persistent: bool,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>>;

    /// Runs `sql` with `params` bound; the number of rows it changed.
    async fn execute(
        conn: &mut Self::Connection,
        sql: &str,
        params: &[Value],
        persistent: bool,
    ) -> Result<u64, sqlx::Error>;

    /// The columns `sql` returns, as the server describes them (for a result without rows).
    async fn describe_columns(conn: &mut Self::Connection, sql: &str) -> Vec<value::Column>;
}

/// JSON parameters bound to a statement of this database (see [`Param`]).
pub(crate) trait BindJson: Database + HasStatementCache {
    /// `sql` with `params` bound; `persistent` keeps the prepared statement cached.
    fn bound(
        sql: &str,
        params: &[Value],
        persistent: bool,
    ) -> sqlx::query::Query<'static, Self, Self::Arguments>;
}

impl<DB> BindJson for DB
where
    DB: Database + HasStatementCache,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> f64: Encode<'a, DB> + Type<DB>,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> String: Encode<'a, DB> + Type<DB>,
    for<'a> sqlx::types::Json<Value>: Encode<'a, DB> + Type<DB>,
{
    fn bound(
        sql: &str,
        params: &[Value],
        persistent: bool,
    ) -> sqlx::query::Query<'static, DB, DB::Arguments> {
        let q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned())).persistent(persistent);
        params.iter().fold(q, |q, p| match Param::of(p) {
            Param::Null => q.bind(None::<String>),
            Param::Bool(b) => q.bind(b),
            Param::Int(i) => q.bind(i),
            Param::Float(f) => q.bind(f),
            Param::Text(s) => q.bind(s),
            Param::Digits(d) => q.bind(d),
            Param::Json(j) => q.bind(sqlx::types::Json(j.clone())),
        })
    }
}

#[async_trait]
impl<DB> Wire for DB
where
    DB: BindJson,
    DB::Arguments: IntoArguments<DB>,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn batch(conn: &mut Self::Connection, sql: &str) -> Result<(), sqlx::Error> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(conn)
            .await
            .map(drop)
    }

    fn fetch<'c>(
        conn: &'c mut Self::Connection,
        sql: &'c str,
        params: &'c [Value],
        persistent: bool,
    ) -> BoxStream<'c, Result<Self::Row, sqlx::Error>> {
        DB::bound(sql, params, persistent).fetch(conn)
    }

    async fn execute(
        conn: &mut Self::Connection,
        sql: &str,
        params: &[Value],
        persistent: bool,
    ) -> Result<u64, sqlx::Error> {
        let done = DB::bound(sql, params, persistent).execute(conn).await?;
        Ok(done.rows_affected())
    }

    async fn describe_columns(conn: &mut Self::Connection, sql: &str) -> Vec<value::Column> {
        match conn
            .describe(sqlx::SqlSafeStr::into_sql_str(sqlx::AssertSqlSafe(
                sql.to_owned(),
            )))
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
        }
    }
}

/// One server's side of the call protocol: the statements that open and end a call's
/// transaction, and its rows as JSON. `Flavor` is what the connect-time probe learnt that
/// changes them (MariaDB or MySQL).
pub(crate) trait Server: Wire {
    /// What the probe learnt that shapes the SQL.
    type Flavor: Copy + Send + Sync;

    /// Keep prepared statements in the connection's cache.
    const PERSISTENT: bool;

    /// The batch that opens a call's transaction in `mode` with a statement timeout: the
    /// call's first round trip, and its liveness check.
    fn begin(flavor: Self::Flavor, mode: Mode, timeout_ms: u128) -> String;

    /// The batch that ends a successful call in `mode` (rolled back when read-only,
    /// committed otherwise) and clears what a statement can leave on the session.
    fn end(mode: Mode) -> &'static str;

    /// One row as JSON values, cells cut at the budget's cell limit.
    fn row(row: &Self::Row, budget: &mut Budget) -> Result<Vec<Value>>;

    /// After the statement ran, before the call ends.
    fn after_statement(_conn: &mut PoolConnection<Self>) {}
}

/// The pool of one connection id: no liveness ping before each call, since the call's
/// first batch ([`Server::begin`]) is the check, and a connection that fails it is
/// discarded and the call retried once.
pub(crate) fn pool_options<DB: Database>(limits: &Limits, size: u32) -> PoolOptions<DB> {
    PoolOptions::<DB>::new()
        .max_connections(size)
        .min_connections(0)
        .acquire_timeout(limits.connect_timeout)
        .idle_timeout(Some(limits.idle_timeout))
        .max_lifetime(Some(limits.max_lifetime))
        .test_before_acquire(false)
}
