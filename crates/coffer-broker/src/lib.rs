#![doc = include_str!("../README.md")]
//!
//! # Safety policy
//!
//! The boundary holds at the deepest layer that can enforce it; the statement check is
//! the second layer, never the only one.
//!
//! - **The engine.** SQLite connections (rusqlite) run under an authorizer that refuses
//!   `ATTACH`/`DETACH`, every `PRAGMA` but those that describe tables, temp tables,
//!   views, triggers and indexes, transaction control, `load_extension` and file
//!   functions, and on read-only connections every write; `SQLITE_LIMIT_ATTACHED = 0`
//!   (so `VACUUM INTO` fails), `SQLITE_LIMIT_LENGTH` at the byte limit, defensive mode,
//!   an untrusted schema, and a read-only, `query_only` file for read-only connections.
//!   Postgres and MySQL calls run in a transaction that is `READ ONLY` for read-only
//!   connections, as a role checked at `connect`: a read-only connection whose role can
//!   escape that transaction (Postgres superuser, `BYPASSRLS`, `pg_read_server_files`,
//!   `pg_write_server_files`, `pg_execute_server_program`, `pg_signal_backend`, executable
//!   `dblink`; MySQL `FILE`, `SUPER`, `PROCESS`, `SHUTDOWN`, `CONNECTION ADMIN`, a grant
//!   option, `SELECT` on `*.*` or `mysql.*`) is refused with
//!   [`BrokerError::Privileged`], unless its parameters say
//!   [`allow_privileged`](ConnectionParams::allow_privileged). Statements are bound as
//!   prepared statements (one statement each, never the simple protocol that runs
//!   several), with a statement timeout.
//! - **The check.** One statement, no transaction or session control, no server-side
//!   programs or files; in read-only mode only `SELECT`, `WITH`, `VALUES`, `TABLE`,
//!   `SHOW`, `EXPLAIN`, `DESCRIBE`; a deny list of functions that reach past the
//!   connection (`dblink*`, `pg_terminate_backend`, `pg_read_file`, `lo_*`,
//!   `pg_stat_reset*`, `set_config` when read-only; MySQL `LOAD_FILE`, `PASSWORD()`,
//!   `SHOW GRANTS`, the `mysql` schema). Its lexer reads text as each server does
//!   (SQLite `[…]`, MariaDB `/*M! … */`, MySQL `--1`, Postgres `E'…'`, the server's
//!   backslash-escape setting).
//! - **Bounded answers.** At most [`Limits::row_limit`] rows and [`Limits::byte_limit`]
//!   bytes per call (`truncated`), each cell at most [`Limits::cell_limit`] bytes (cut,
//!   ending in [`CELL_MARKER`]). On SQLite the engine builds no value over the byte
//!   limit; Postgres and MySQL drivers hold one row at a time, so a single huge row
//!   costs its size once while it is cut.
//! - **No state survives a call.** The transaction is rolled back (read-only) or
//!   committed; then advisory locks are released, and on read-write Postgres settings,
//!   role, `LISTEN`s, temp tables and sequence state are reset; a MySQL connection that
//!   used a user variable is closed; a call that stops half-way closes its connection.
//!   SQLite connections can hold no attached database or temp object at all.
//!
//! Give the broker a role that can only read for read-only connections, e.g.
//! `CREATE ROLE agent_ro LOGIN PASSWORD '…'; GRANT USAGE ON SCHEMA public TO agent_ro;
//! GRANT SELECT ON ALL TABLES IN SCHEMA public TO agent_ro` (Postgres) or
//! `CREATE USER 'agent_ro'@'%' IDENTIFIED BY '…'; GRANT SELECT ON app.* TO 'agent_ro'@'%'`
//! (MySQL / MariaDB).
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod broker;
mod config;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod params;
mod privileges;
mod registry;
mod schema;
mod sqlite;
mod statement;
mod value;

pub use broker::{Broker, ConnectionId, ConnectionInfo, Limits};
pub use coffer_store::transport::{DatabaseKind, DatabaseUrl};
pub use config::{NamedConnection, NamedConnections};
pub use error::{BrokerError, Result};
pub(crate) use params::Engine;
pub use params::{ConnectionParams, Mode};
pub use registry::ConnectionRegistry;
pub use schema::{ForeignKey, Index, Schema, Table, TableColumn};
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use sqlite::SessionState;
pub use value::{CELL_MARKER, Column, QueryResult};
