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

use crate::value::{Budget, Column, QueryResult};
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

/// Functions no call may use (most are not in the library; refused should a build
/// carry them).
const DENIED_FUNCTIONS: &[&str] = &[
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
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
        A::Function { function_name } => !DENIED_FUNCTIONS
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

/// A call's work on one connection: rows, or a count of changed rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Work {
    Query,
    Execute,
}

enum Outcome {
    Rows(QueryResult),
    Changed(u64),
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
        match self.call(sql, params, limits, Work::Query).await? {
            Outcome::Rows(r) => Ok(r),
            Outcome::Changed(_) => Err(blocking_failed()),
        }
    }

    /// Runs one checked writing statement and returns the rows it changed.
    pub(crate) async fn execute(
        &self,
        sql: &str,
        params: &[Value],
        limits: CallLimits,
    ) -> Result<u64> {
        match self.call(sql, params, limits, Work::Execute).await? {
            Outcome::Changed(n) => Ok(n),
            Outcome::Rows(_) => Err(blocking_failed()),
        }
    }

    async fn call(
        &self,
        sql: &str,
        params: &[Value],
        limits: CallLimits,
        work: Work,
    ) -> Result<Outcome> {
        let (handle, permit) = self.take().await?;
        let (path, mode, max_value) = (self.path.clone(), self.mode, self.max_value);
        let sql = sql.to_owned();
        let params = params.to_vec();
        let joined = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let handle = match handle {
                Some(h) => h,
                None => Handle::open(&path, mode, max_value).map_err(|e| open_error(&e))?,
            };
            let outcome = run(&handle, mode, &sql, &params, limits, work);
            // The connection goes back only when the call ended cleanly.
            Ok::<_, BrokerError>((outcome.as_ref().is_ok().then_some(handle), outcome))
        })
        .await
        .map_err(|_| blocking_failed())??;
        let (handle, outcome) = joined;
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
        match p {
            Value::Null => stmt.raw_bind_parameter(at, rusqlite::types::Null)?,
            Value::Bool(b) => stmt.raw_bind_parameter(at, *b)?,
            Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(v), _) => stmt.raw_bind_parameter(at, v)?,
                (None, Some(v)) => stmt.raw_bind_parameter(at, v)?,
                (None, None) => stmt.raw_bind_parameter(at, n.to_string())?,
            },
            Value::String(s) => stmt.raw_bind_parameter(at, s.as_str())?,
            other => stmt.raw_bind_parameter(at, other.to_string())?,
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

/// One call on `h`, on this (blocking) thread.
fn run(
    h: &Handle,
    mode: Mode,
    sql: &str,
    params: &[Value],
    limits: CallLimits,
    work: Work,
) -> Result<Outcome> {
    let err = |e: rusqlite::Error| call_error(&e, limits);
    h.set_deadline(Some(Instant::now() + limits.timeout));
    let write = mode == Mode::ReadWrite;
    if write {
        h.broker_exec("BEGIN IMMEDIATE").map_err(err)?;
    }
    h.policy.store(
        if write {
            POLICY_READ_WRITE
        } else {
            POLICY_READ_ONLY
        },
        Ordering::Relaxed,
    );
    let result = (|| {
        let mut stmt = h.conn.prepare(sql).map_err(err)?;
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
        if work == Work::Execute {
            let n = stmt.raw_execute().map_err(err)?;
            return Ok(Outcome::Changed(u64::try_from(n).unwrap_or(u64::MAX)));
        }
        let names: Vec<String> = stmt.column_names().into_iter().map(str::to_owned).collect();
        let mut types: Vec<Option<&'static str>> = vec![None; names.len()];
        let mut budget = Budget::new(limits.byte_limit, limits.cell_limit);
        let mut out = Vec::new();
        let mut truncated = false;
        let mut rows = stmt.raw_query();
        while let Some(row) = rows.next().map_err(err)? {
            if out.len() == limits.row_limit || budget.exhausted() {
                truncated = true;
                if write {
                    // A writing statement runs to its end so that what it did commits
                    // whole; the rows past the limit are dropped.
                    continue;
                }
                break;
            }
            let mut values = Vec::with_capacity(names.len());
            for (i, ty) in types.iter_mut().enumerate() {
                let v = row.get_ref(i).map_err(err)?;
                if ty.is_none() && !matches!(v, ValueRef::Null) {
                    *ty = Some(storage_class(v));
                }
                values.push(cell(v, &mut budget));
            }
            if !budget.take_row(&values) {
                truncated = true;
                if write {
                    continue;
                }
                break;
            }
            out.push(values);
        }
        let columns = names
            .into_iter()
            .zip(types)
            .map(|(name, ty)| Column {
                name,
                type_name: ty.unwrap_or("NULL").to_owned(),
            })
            .collect();
        Ok(Outcome::Rows(QueryResult {
            columns,
            rows: out,
            truncated,
            truncated_cells: budget.truncated_cells(),
        }))
    })();
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
