//! The call protocol: one statement on one pooled server connection, from the setup
//! round trip (which doubles as the liveness check) through the bounded fetch to the
//! end of the transaction and the session reset.

use std::time::Duration;

use futures::TryStreamExt as _;
use serde_json::Value;
use sqlx::pool::PoolConnection;

use crate::error::from_sqlx;
use crate::sqlite::CallLimits;
use crate::value::{Budget, QueryResult};
use crate::{BrokerError, Mode, Result};

use super::server::Server;
use super::{Conn, Limits, Pool};

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

/// What a statement gave: its rows or its count.
struct Collected<T> {
    result: T,
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

    pub(super) async fn query(&self, sql: &str, params: &[Value]) -> Result<QueryResult> {
        let mode = self.conn.params.mode;
        match &self.conn.pool {
            Pool::Pg(pool, _) => self.server_query(pool, (), mode, sql, params).await,
            Pool::Mysql(pool, flavor, _) => {
                self.server_query(pool, *flavor, mode, sql, params).await
            }
            Pool::Sqlite(pool) => pool.query(sql, params, self.sqlite_limits()).await,
        }
    }

    pub(super) async fn execute(&self, sql: &str, params: &[Value]) -> Result<u64> {
        match &self.conn.pool {
            Pool::Pg(pool, _) => self.server_execute(pool, (), sql, params).await,
            Pool::Mysql(pool, flavor, _) => self.server_execute(pool, *flavor, sql, params).await,
            Pool::Sqlite(pool) => pool.execute(sql, params, self.sqlite_limits()).await,
        }
    }

    async fn server_query<S: Server>(
        &self,
        pool: &sqlx::Pool<S>,
        flavor: S::Flavor,
        mode: Mode,
        sql: &str,
        params: &[Value],
    ) -> Result<QueryResult> {
        let mut c = self
            .ready(pool, &S::begin(flavor, mode, self.timeout_ms()))
            .await?;
        let collected = self.fetch_rows::<S>(&mut c, sql, params, mode).await;
        S::after_statement(&mut c);
        self.finish(c, collected, mode).await
    }

    /// A writing statement: the call's transaction is read-write, and what it changed
    /// commits with the end of the call.
    async fn server_execute<S: Server>(
        &self,
        pool: &sqlx::Pool<S>,
        flavor: S::Flavor,
        sql: &str,
        params: &[Value],
    ) -> Result<u64> {
        let mode = Mode::ReadWrite;
        let mut c = self
            .ready(pool, &S::begin(flavor, mode, self.timeout_ms()))
            .await?;
        let done = S::execute(&mut c, sql, params, S::PERSISTENT).await;
        S::after_statement(&mut c);
        let collected = done
            .map(|n| Collected {
                result: n,
                discard: false,
            })
            .map_err(|e| self.err(e));
        self.finish(c, collected, mode).await
    }

    /// Takes a connection from `pool` and runs `setup` on it: the statements that open
    /// the call's transaction and set its limits. That first round trip doubles as the
    /// liveness check the pool does not make: a connection that fails it (closed by the
    /// server, cut by a restart or the network) is discarded and the setup tried once
    /// more on another, which the pool opens anew if it has to. Nothing of the caller's
    /// has run at that point, so the retry is safe; a setup that fails twice is the
    /// call's error. A connection whose setup failed is never returned to the pool, so
    /// none is reused half inside a transaction.
    async fn ready<S: Server>(
        &self,
        pool: &sqlx::Pool<S>,
        setup: &str,
    ) -> Result<PoolConnection<S>> {
        let mut retried = false;
        loop {
            let mut c = pool.acquire().await.map_err(|e| self.err(e))?;
            match S::batch(&mut c, setup).await {
                Ok(()) => return Ok(c),
                Err(e) => {
                    c.close_on_drop();
                    if retried {
                        return Err(self.err(e));
                    }
                    tracing::debug!(
                        kind = %self.conn.params.engine,
                        "broker: a pooled connection failed its setup; retrying on another"
                    );
                    retried = true;
                }
            }
        }
    }

    /// Fetches at most the call's rows and bytes of `sql` on `c`, converting each row
    /// with [`Server::row`] (which cuts cells at the cell limit).
    async fn fetch_rows<S: Server>(
        &self,
        c: &mut PoolConnection<S>,
        sql: &str,
        params: &[Value],
        mode: Mode,
    ) -> Result<Collected<QueryResult>> {
        let mut columns = None;
        let mut rows = Vec::new();
        let mut truncated = false;
        let mut discard = false;
        let mut budget = Budget::new(self.bytes, self.cells);
        {
            let mut stream = S::fetch(c, sql, params, S::PERSISTENT);
            while let Some(row) = stream.try_next().await.map_err(|e| self.err(e))? {
                let kept = rows.len() < self.rows && !budget.exhausted() && {
                    let values = S::row(&row, &mut budget)?;
                    budget.take_row(&values) && {
                        rows.push(values);
                        true
                    }
                };
                if !kept {
                    truncated = true;
                    if mode == Mode::ReadOnly {
                        // Stop the server's work by closing the connection.
                        discard = true;
                        break;
                    }
                    // A writing statement runs to its end, so what it did commits whole;
                    // the rows past the limit are dropped.
                    continue;
                }
                if columns.is_none() {
                    columns = Some(crate::value::columns(&row));
                }
            }
        }
        let columns = match columns {
            Some(c) => c,
            None => S::describe_columns(c, sql).await,
        };
        // A read-only connection that carried a cell past the cell limit holds a read
        // buffer that large: close it rather than keep the memory pooled (nothing is
        // lost; a read-write one must still commit).
        let discard = discard || (mode == Mode::ReadOnly && budget.truncated_cells() > 0);
        Ok(Collected {
            result: QueryResult {
                columns,
                rows,
                truncated,
                truncated_cells: budget.truncated_cells(),
            },
            discard,
        })
    }

    /// Ends a call on a server connection: on success [`Server::end`] ends the
    /// transaction and clears what a statement can leave on the session; a call that
    /// stopped half-way or failed closes the connection instead, which also ends the
    /// server's work.
    async fn finish<S: Server, T>(
        &self,
        mut c: PoolConnection<S>,
        collected: Result<Collected<T>>,
        mode: Mode,
    ) -> Result<T> {
        match collected {
            Ok(Collected {
                result,
                discard: false,
            }) => match S::batch(&mut c, S::end(mode)).await {
                Ok(()) => {
                    if self.close_after {
                        c.close_on_drop();
                    }
                    Ok(result)
                }
                Err(e) => {
                    c.close_on_drop();
                    Err(self.err(e))
                }
            },
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
    }
}
