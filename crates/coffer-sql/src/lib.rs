#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

#[cfg(any(feature = "sqlite", feature = "postgres"))]
mod audit;
mod common;
#[cfg(feature = "postgres")]
mod postgres;
mod sql_store;
#[cfg(feature = "sqlite")]
mod sqlite;
pub mod support;
#[cfg(feature = "testing")]
pub mod testing;
#[cfg(any(feature = "postgres", feature = "mysql"))]
pub mod tls;

#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use audit::{AuditQuery, SqlAuditSink};
#[cfg(feature = "postgres")]
pub use postgres::{NOTIFY_CHANNEL, PgOpener, PgOptions, PgStore, RLS_URL_PARAM, WatchEvent};
pub use sql_store::Change;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteOpener, SqliteStore};
