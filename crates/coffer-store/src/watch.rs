//! Change notifications between instances that share a store.

use serde::{Deserialize, Serialize};

/// What a write changed (never a value): published by stores that notify other
/// instances (Postgres: `NOTIFY coffer_secrets`), consumed by caches.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The scope.
    pub scope: String,
    /// The secret's name.
    pub name: String,
    /// The version written; 0 for a delete.
    pub version: u64,
    /// `put`, `delete` or `destroy`.
    pub op: String,
}

/// One item of a change stream, such as `PgStore::watch` in coffer-sql, which the
/// cache layer (`layer::CacheStore`, feature `cache`) follows.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WatchEvent {
    /// A write committed.
    Changed(Change),
    /// The notification connection dropped; changes may be missed until `Reconnected`.
    Disconnected,
    /// Listening again; changes between `Disconnected` and now were not seen.
    Reconnected,
}
