#![doc = include_str!("../README.md")]
//!
//! # Safety policy
//!
//! Every call runs exactly one statement, checked before it reaches the database (one
//! statement, no transaction or session control, no server-side programs or files; in
//! read-only mode only `SELECT`, `WITH`, `VALUES`, `TABLE`, `SHOW`, `EXPLAIN`,
//! `DESCRIBE`), bound as a prepared statement on the extended protocol (never the simple
//! protocol that runs several), inside a transaction that is `READ ONLY` for read-only
//! connections (`START TRANSACTION READ ONLY` on MySQL; a read-only, `query_only`
//! connection on SQLite), with a statement timeout and a row limit. After each call the
//! transaction is rolled back (read-only) or committed, and session state is reset;
//! a call that stops half-way closes its database connection instead of returning it.
//!
//! The strongest protection is still a database role that can only read: give the broker
//! one for read-only connections.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod broker;
mod config;
mod error;
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
pub use config::{NamedConnection, NamedConnections};
pub use error::{BrokerError, Result};
pub use params::{ConnectionParams, DbKind, Mode};
pub use registry::Registry;
#[cfg(feature = "testing")]
#[doc(hidden)]
pub use sqlite::SessionState;
pub use schema::{ForeignKey, Index, Schema, Table, TableColumn};
pub use value::{CELL_MARKER, Column, QueryResult};
