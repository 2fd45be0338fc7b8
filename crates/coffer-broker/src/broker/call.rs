//! The call protocol: one statement on one pooled server connection, from the setup
//! round trip (which doubles as the liveness check) through the bounded fetch to the
//! end of the transaction and the session reset.

use std::time::Duration;

use futures::TryStreamExt as _;
use serde_json::Value;
use sqlx::{Column as _, Executor as _, TypeInfo as _};

use crate::error::from_sqlx;
use crate::params::MYSQL_STATEMENT_CACHE;
use crate::sqlite::CallLimits;
use crate::value::{self, Budget, QueryResult, bind_json};
use crate::{BrokerError, Mode, Result};

use super::{Conn, Limits, MysqlFlavor, Pool};

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
pub(super) struct Call<'a> {
    conn: &'a Conn,
    limits: &'a Limits,
    /// Close the database connection after the call instead of reusing it.
    close_after: bool,
    /// Rows the call returns at most.
    pub(super) rows: usize,
    /// Bytes the call returns at most.
    pub(super) bytes: usize,
    /// Bytes of one cell at most.
    pub(super) cells: usize,
}

/// What a fetch loop collects.
struct Collected {
    result: QueryResult,
    /// The connection cannot be reused (a fetch stopped half-way, a timeout, an error
    /// mid-transaction): close it instead of returning it to the pool.
    discard: bool,
}

impl<'a> Call<'a> {
    pub(super) fn new(conn: &'a Conn, limits: &'a Limits, close_after: bool) -> Self {
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
    pub(super) async fn guarded<T>(&self, fut: impl Future<Output = Result<T>>) -> Result<T> {
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

    pub(super) async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult> {
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

    pub(super) async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
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
