#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod audit;
mod common;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod dialect;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod driver;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod keyring;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod row;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod store;
pub mod support;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod tls;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use audit::{AuditDurability, AuditQuery, SqlAuditSink};
pub use coffer_store::Change;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use dialect::Dialect;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use keyring::SqlKeyring;
#[cfg(feature = "postgres")]
pub use postgres::{
    NOTIFY_CHANNEL, PgDialect, PgOpener, PgOptions, PgStore, RLS_URL_PARAM, WatchEvent,
};
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteDialect, SqliteOpener, SqliteStore};
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use store::SqlStore;
