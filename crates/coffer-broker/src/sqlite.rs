//! SQLite connections, held so that the engine itself refuses what a call may not do.
//!
//! The statement check (`crate::statement`) reads the text; this module makes the
//! answer not depend on it. Every broker SQLite connection is a rusqlite connection with:
//!
//! - an **authorizer** (`sqlite3_set_authorizer`), consulted by SQLite as it compiles
//!   each statement, that denies `ATTACH` and `DETACH`, every `PRAGMA` but the few that
//!   only describe tables, temp tables, views, triggers and indexes, transaction and
//!   savepoint control (the broker owns the transaction), `load_extension` and the
//!   file functions, and on read-only connections every write of any kind;
//! - **limits**: `SQLITE_LIMIT_ATTACHED = 0` (so `VACUUM INTO`, which attaches its
//!   target, fails too) and `SQLITE_LIMIT_LENGTH` at the call's byte limit, so no single
//!   value larger than what a call may return is ever built in memory;
//! - `SQLITE_DBCONFIG_DEFENSIVE` (no `writable_schema`, no shadow-table writes) and
//!   `SQLITE_DBCONFIG_TRUSTED_SCHEMA` off (views and triggers of the file cannot call
//!   functions with side effects);
//! - on read-only connections, a file opened `SQLITE_OPEN_READ_ONLY` with
//!   `PRAGMA query_only = ON`;
//! - a progress handler that stops a statement at its deadline.
//!
//! Why rusqlite and not sqlx here: sqlx-sqlite has no safe way to install an
//! authorizer or change limits, and the workspace forbids `unsafe` code; rusqlite's
//! `authorizer`, `set_limit` and `progress_handler` are safe. Both link the same
//! `libsqlite3-sys`, so one SQLite is in the binary. Calls run on Tokio's blocking pool,
//! one connection each; a call abandoned at its deadline finishes there (the progress
//! handler stops it) and its connection is closed, never reused.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::hooks::{AuthAction, AuthContext, Authorization};
use rusqlite::limits::Limit;
use rusqlite::types::ValueRef;
use rusqlite::{OpenFlags, config::DbConfig};
use serde_json::Value;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::statement::SQLITE_DENIED_FUNCTIONS;
use crate::value::{Budget, Column, Param, QueryResult};
use crate::{BrokerError, Mode, Result};

/// What the authorizer lets through, switched per phase of a call.
const POLICY_BROKER: u8 = 0;
const POLICY_READ_ONLY: u8 = 1;
const POLICY_READ_WRITE: u8 = 2;

/// Pragmas that only describe a table or index (and their table-valued forms,
/// `pragma_table_info(…)`): allowed on every connection, with or without an argument.
const DESCRIBING_PRAGMAS: &[&str] = &[
    "table_info",
    "table_xinfo",
    "table_list",
    "index_list",
    "index_info",
    "index_xinfo",
    "foreign_key_list",
];

/// The authorizer's answer for `ctx` under `policy`.
fn authorize(policy: u8, ctx: &AuthContext<'_>) -> Authorization {
    use AuthAction as A;
    if policy == POLICY_BROKER {
        return Authorization::Allow;
    }
    let read_write = policy == POLICY_READ_WRITE;
    let allowed = match ctx.action {
        A::Select | A::Read { .. } | A::Recursive => true,
        // The statement check's list, refused here whatever the text looked like.
        A::Function { function_name } => !SQLITE_DENIED_FUNCTIONS
            .iter()
            .any(|f| f.eq_ignore_ascii_case(function_name)),
        A::Pragma { pragma_name, .. } => DESCRIBING_PRAGMAS
            .iter()
            .any(|p| p.eq_ignore_ascii_case(pragma_name)),
        // Writes and schema changes in the main database, on read-write connections.
        A::Insert { .. }
        | A::Update { .. }
        | A::Delete { .. }
        | A::CreateTable { .. }
        | A::CreateIndex { .. }
        | A::CreateView { .. }
        | A::CreateTrigger { .. }
        | A::DropTable { .. }
        | A::DropIndex { .. }
        | A::DropView { .. }
        | A::DropTrigger { .. }
        | A::AlterTable { .. }
        | A::Reindex { .. }
        | A::Analyze { .. } => read_write && ctx.database_name.is_none_or(|d| d == "main"),
        // ATTACH, DETACH, temp objects (they would outlive the call on the connection),
        // transactions and savepoints (the broker's), virtual tables, and whatever a
        // newer SQLite adds.
        _ => false,
    };
    if allowed {
        Authorization::Allow
    } else {
        Authorization::Deny
    }
}

/// One open connection and the switches its hooks read.
struct Handle {
    conn: rusqlite::Connection,
    policy: Arc<AtomicU8>,
    deadline: Arc<Mutex<Option<Instant>>>,
}

impl Handle {
    fn open(path: &std::path::Path, mode: Mode, max_value: usize) -> rusqlite::Result<Self> {
        let read_only = mode == Mode::ReadOnly;
        // No URI filenames (they could name another VFS or options), no creating files.
        let flags = OpenFlags::SQLITE_OPEN_NO_MUTEX
            | if read_only {
                OpenFlags::SQLITE_OPEN_READ_ONLY
            } else {
                OpenFlags::SQLITE_OPEN_READ_WRITE
            };
        let conn = rusqlite::Connection::open_with_flags(path, flags)?;
        conn.set_limit(Limit::SQLITE_LIMIT_ATTACHED, 0)?;
        conn.set_limit(
            Limit::SQLITE_LIMIT_LENGTH,
            i32::try_from(max_value).unwrap_or(i32::MAX),
        )?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)?;
        conn.set_db_config(DbConfig::SQLITE_DBCONFIG_TRUSTED_SCHEMA, false)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        if read_only {
            conn.pragma_update(None, "query_only", true)?;
        }
        let policy = Arc::new(AtomicU8::new(POLICY_BROKER));
        let seen = policy.clone();
        conn.authorizer(Some(move |ctx: AuthContext<'_>| {
            authorize(seen.load(Ordering::Relaxed), &ctx)
        }))?;
        let deadline: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
        let until = deadline.clone();
        conn.progress_handler(
            1000,
            Some(move || {
                until
                    .lock()
                    .map(|d| d.is_some_and(|d| Instant::now() >= d))
                    .unwrap_or(true)
            }),
        )?;
        Ok(Self {
            conn,
            policy,
            deadline,
        })
    }

    fn set_deadline(&self, at: Option<Instant>) {
        if let Ok(mut d) = self.deadline.lock() {
            *d = at;
        }
    }

    /// Runs broker-owned SQL (transaction control) with every action allowed.
    fn broker_exec(&self, sql: &str) -> rusqlite::Result<()> {
        self.policy.store(POLICY_BROKER, Ordering::Relaxed);
        self.conn.execute_batch(sql)
    }
}

/// What one call asks of a connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CallLimits {
    pub(crate) timeout: Duration,
    pub(crate) row_limit: usize,
    pub(crate) byte_limit: usize,
    pub(crate) cell_limit: usize,
}

/// A pool of broker SQLite connections to one file.
pub(crate) struct SqlitePool {
    path: PathBuf,
    mode: Mode,
    max_value: usize,
    idle: Mutex<Vec<Handle>>,
    permits: Arc<Semaphore>,
    acquire_timeout: Duration,
    closed: AtomicBool,
}

impl std::fmt::Debug for SqlitePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlitePool")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

fn blocking_failed() -> BrokerError {
    BrokerError::Database {
        code: None,
        message: "the SQLite call stopped unexpectedly".into(),
    }
}

impl SqlitePool {
    /// Opens one connection to check the file, and keeps it.
    pub(crate) async fn open(
        path: PathBuf,
        mode: Mode,
        size: u32,
        max_value: usize,
        acquire_timeout: Duration,
    ) -> Result<Self> {
        let pool = Self {
            path,
            mode,
            max_value,
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(usize::try_from(size.max(1)).unwrap_or(1))),
            acquire_timeout,
            closed: AtomicBool::new(false),
        };
        let (path, mode, max) = (pool.path.clone(), mode, max_value);
        let first = tokio::task::spawn_blocking(move || Handle::open(&path, mode, max))
            .await
            .map_err(|_| blocking_failed())?
            .map_err(|e| open_error(&e))?;
        pool.idle.lock().expect("not poisoned").push(first);
        Ok(pool)
    }

    /// Closes the idle connections; connections in use close when their call ends.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        self.permits.close();
        self.idle.lock().expect("not poisoned").clear();
    }

    async fn take(&self) -> Result<(Option<Handle>, OwnedSemaphorePermit)> {
        if self.closed.load(Ordering::SeqCst) {
            return Err(BrokerError::ShutDown);
        }
        let permit =
            tokio::time::timeout(self.acquire_timeout, self.permits.clone().acquire_owned())
                .await
                .map_err(|_| BrokerError::Unavailable {
                    message: "timed out waiting for a connection".into(),
                })?
                .map_err(|_| BrokerError::ShutDown)?;
        let handle = self.idle.lock().expect("not poisoned").pop();
        Ok((handle, permit))
    }

    /// Runs one checked statement: its rows (read-only and read-write `query`).
    pub(crate) async fn query(
        &self,
        sql: &str,
        params: &[Value],
        limits: CallLimits,
    ) -> Result<QueryResult> {
        let (sql, params, mode) = (sql.to_owned(), params.to_vec(), self.mode);
        self.call(move |h| {
            in_call(h, mode, limits, |conn| {
                let mut stmt = prepared(conn, &sql, &params, limits)?;
                rows(&mut stmt, mode == Mode::ReadWrite, limits)
            })
        })
        .await
    }

    /// Runs one checked writing statement and returns the rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        limits: CallLimits,
    ) -> Result<u64> {
        let (sql, params, mode) = (sql.to_owned(), params.to_vec(), self.mode);
        self.call(move |h| {
            in_call(h, mode, limits, |conn| {
                let n = prepared(conn, &sql, &params, limits)?
                    .raw_execute()
                    .map_err(|e| call_error(&e, limits))?;
                Ok(u64::try_from(n).unwrap_or(u64::MAX))
            })
        })
        .await
    }

    /// Runs `work` on a connection of the pool on Tokio's blocking pool. The connection
    /// goes back only when the work ended cleanly.
    async fn call<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Handle) -> Result<T> + Send + 'static,
    ) -> Result<T> {
        let (handle, permit) = self.take().await?;
        let (path, mode, max_value) = (self.path.clone(), self.mode, self.max_value);
        let (handle, outcome) = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let handle = match handle.map_or_else(|| Handle::open(&path, mode, max_value), Ok) {
                Ok(h) => h,
                Err(e) => return (None, Err(open_error(&e))),
            };
            let outcome = work(&handle);
            (outcome.is_ok().then_some(handle), outcome)
        })
        .await
        .map_err(|_| blocking_failed())?;
        if let Some(h) = handle
            && !self.closed.load(Ordering::SeqCst)
        {
            self.idle.lock().expect("not poisoned").push(h);
        }
        outcome
    }
}

/// What a SQLite connection carries between calls (see `Broker::sqlite_session_state`).
#[cfg(feature = "testing")]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionState {
    /// `PRAGMA query_only`.
    pub query_only: bool,
    /// Databases attached beside `main` and `temp`.
    pub attached: i64,
    /// Objects in the `temp` schema.
    pub temp_objects: i64,
}

#[cfg(feature = "testing")]
impl SqlitePool {
    pub(crate) fn session_state(&self) -> Result<Vec<SessionState>> {
        let idle = self.idle.lock().expect("not poisoned");
        idle.iter()
            .map(|h| {
                h.policy.store(POLICY_BROKER, Ordering::Relaxed);
                let one = |sql: &str| h.conn.query_row(sql, [], |r| r.get::<_, i64>(0));
                let state = (|| {
                    Ok(SessionState {
                        query_only: one("PRAGMA query_only")? != 0,
                        attached: one("SELECT count(*) FROM pragma_database_list \
                             WHERE name NOT IN ('main', 'temp')")?,
                        temp_objects: one("SELECT count(*) FROM temp.sqlite_master")?,
                    })
                })();
                state.map_err(|e: rusqlite::Error| BrokerError::Database {
                    code: None,
                    message: e.to_string(),
                })
            })
            .collect()
    }
}

fn open_error(e: &rusqlite::Error) -> BrokerError {
    BrokerError::Unavailable {
        message: format!("cannot open the SQLite file: {}", sqlite_message(e)),
    }
}

/// The SQLite message of `e`, without the SQL text.
fn sqlite_message(e: &rusqlite::Error) -> String {
    match e {
        rusqlite::Error::SqliteFailure(f, Some(m)) => format!("{m} ({})", f.extended_code),
        rusqlite::Error::SqliteFailure(f, None) => format!("{f}"),
        rusqlite::Error::MultipleStatement => "exactly one statement per call".into(),
        other => other.to_string(),
    }
}

fn call_error(e: &rusqlite::Error, limits: CallLimits) -> BrokerError {
    if let rusqlite::Error::SqliteFailure(f, m) = e {
        match f.code {
            rusqlite::ErrorCode::OperationInterrupted => {
                return BrokerError::Timeout {
                    timeout_ms: u64::try_from(limits.timeout.as_millis()).unwrap_or(u64::MAX),
                };
            }
            rusqlite::ErrorCode::AuthorizationForStatementDenied => {
                return BrokerError::Rejected {
                    reason: "the SQLite engine refused it: the connection may not do that \
                             (attach, pragmas, temp objects, transactions, or writes on a \
                             read-only connection)"
                        .into(),
                };
            }
            rusqlite::ErrorCode::TooBig => {
                return BrokerError::Limit {
                    reason: format!(
                        "a value would be larger than the call's {} byte limit; select a \
                         part of it (substr) or its length instead",
                        limits.byte_limit
                    ),
                };
            }
            _ => {
                return BrokerError::Database {
                    code: Some(f.extended_code.to_string()),
                    message: m.clone().unwrap_or_else(|| f.to_string()),
                };
            }
        }
    }
    BrokerError::Database {
        code: None,
        message: sqlite_message(e),
    }
}

fn bind(stmt: &mut rusqlite::Statement<'_>, params: &[Value]) -> rusqlite::Result<()> {
    for (i, p) in params.iter().enumerate() {
        let at = i + 1;
        match Param::of(p) {
            Param::Null => stmt.raw_bind_parameter(at, rusqlite::types::Null)?,
            Param::Bool(b) => stmt.raw_bind_parameter(at, b)?,
            Param::Int(v) => stmt.raw_bind_parameter(at, v)?,
            Param::Float(v) => stmt.raw_bind_parameter(at, v)?,
            Param::Text(s) => stmt.raw_bind_parameter(at, s)?,
            Param::Digits(d) => stmt.raw_bind_parameter(at, d)?,
            Param::Json(j) => stmt.raw_bind_parameter(at, j.to_string())?,
        }
    }
    Ok(())
}

fn storage_class(v: ValueRef<'_>) -> &'static str {
    match v {
        ValueRef::Null => "NULL",
        ValueRef::Integer(_) => "INTEGER",
        ValueRef::Real(_) => "REAL",
        ValueRef::Text(_) => "TEXT",
        ValueRef::Blob(_) => "BLOB",
    }
}

fn cell(v: ValueRef<'_>, budget: &mut Budget) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => i.into(),
        ValueRef::Real(f) => crate::value::float(f),
        ValueRef::Text(t) => budget.text(&String::from_utf8_lossy(t)),
        ValueRef::Blob(b) => budget.blob(b),
    }
}

/// Runs `work` on `h` as one call, on this (blocking) thread: under the call's deadline,
/// inside a transaction on read-write connections, and with the agent's authorizer
/// policy while `work` prepares and steps its statement.
fn in_call<T>(
    h: &Handle,
    mode: Mode,
    limits: CallLimits,
    work: impl FnOnce(&rusqlite::Connection) -> Result<T>,
) -> Result<T> {
    let err = |e: rusqlite::Error| call_error(&e, limits);
    h.set_deadline(Some(Instant::now() + limits.timeout));
    let write = mode == Mode::ReadWrite;
    if write {
        h.broker_exec("BEGIN IMMEDIATE").map_err(err)?;
    }
    let policy = if write {
        POLICY_READ_WRITE
    } else {
        POLICY_READ_ONLY
    };
    h.policy.store(policy, Ordering::Relaxed);
    let result = work(&h.conn);
    h.policy.store(POLICY_BROKER, Ordering::Relaxed);
    let ended = match (&result, write) {
        (_, false) => Ok(()),
        (Ok(_), true) => h.broker_exec("COMMIT"),
        (Err(_), true) => h.broker_exec("ROLLBACK"),
    };
    h.set_deadline(None);
    let outcome = result?;
    ended.map_err(err)?;
    if !h.conn.is_autocommit() {
        // Never pooled inside a transaction.
        return Err(BrokerError::Database {
            code: None,
            message: "the SQLite transaction did not end".into(),
        });
    }
    Ok(outcome)
}

/// `sql` compiled (through the authorizer) with `params` bound.
fn prepared<'c>(
    conn: &'c rusqlite::Connection,
    sql: &str,
    params: &[Value],
    limits: CallLimits,
) -> Result<rusqlite::Statement<'c>> {
    let err = |e: rusqlite::Error| call_error(&e, limits);
    let mut stmt = conn.prepare(sql).map_err(err)?;
    if stmt.parameter_count() != params.len() {
        return Err(BrokerError::Rejected {
            reason: format!(
                "the statement takes {} parameters; {} were given",
                stmt.parameter_count(),
                params.len()
            ),
        });
    }
    bind(&mut stmt, params).map_err(err)?;
    Ok(stmt)
}

/// The rows of `stmt`, within the call's row and byte limits. A writing statement
/// (`write`) runs to its end so that what it did commits whole; the rows past the
/// limits are dropped.
fn rows(
    stmt: &mut rusqlite::Statement<'_>,
    write: bool,
    limits: CallLimits,
) -> Result<QueryResult> {
    let err = |e: rusqlite::Error| call_error(&e, limits);
    let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut types: Vec<Option<&'static str>> = vec![None; names.len()];
    let mut budget = Budget::new(limits.byte_limit, limits.cell_limit);
    let mut out = Vec::new();
    let mut truncated = false;
    let mut rows = stmt.raw_query();
    while let Some(row) = rows.next().map_err(err)? {
        let kept = out.len() < limits.row_limit && !budget.exhausted() && {
            let mut values = Vec::with_capacity(names.len());
            for (i, ty) in types.iter_mut().enumerate() {
                let v = row.get_ref(i).map_err(err)?;
                if ty.is_none() && !matches!(v, ValueRef::Null) {
                    *ty = Some(storage_class(v));
                }
                values.push(cell(v, &mut budget));
            }
            budget.take_row(&values) && {
                out.push(values);
                true
            }
        };
        if !kept {
            truncated = true;
            if !write {
                break;
            }
        }
    }
    let columns = names
        .into_iter()
        .zip(types)
        .map(|(name, ty)| Column {
            name,
            type_name: ty.unwrap_or("NULL").to_owned(),
        })
        .collect();
    Ok(QueryResult {
        columns,
        rows: out,
        truncated,
        truncated_cells: budget.truncated_cells(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_authorizer_denies_what_escapes_the_connection() {
        let ctx = |action| AuthContext {
            action,
            database_name: None,
            accessor: None,
        };
        let deny = [
            AuthAction::Attach { filename: "/tmp/x" },
            AuthAction::Detach { database_name: "x" },
            AuthAction::CreateTempView { view_name: "v" },
            AuthAction::Pragma {
                pragma_name: "query_only",
                pragma_value: Some("0"),
            },
            AuthAction::Function {
                function_name: "LOAD_EXTENSION",
            },
        ];
        for policy in [POLICY_READ_ONLY, POLICY_READ_WRITE] {
            for action in deny {
                assert_eq!(
                    authorize(policy, &ctx(action)),
                    Authorization::Deny,
                    "{action:?}"
                );
            }
        }
        let write = AuthAction::Insert { table_name: "t" };
        assert_eq!(
            authorize(POLICY_READ_ONLY, &ctx(write)),
            Authorization::Deny
        );
        assert_eq!(
            authorize(POLICY_READ_WRITE, &ctx(write)),
            Authorization::Allow
        );
    }
}
