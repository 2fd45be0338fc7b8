//! Change notifications between instances that share a store.

use serde::{Deserialize, Serialize};

use crate::{Scope, SecretName};

/// What a write changed (never a value): published by stores that notify other
/// instances (Postgres: `NOTIFY coffer_secrets`, as the JSON
/// `{"scope":…,"name":…,"version":…,"op":"put"}`), consumed by caches. A payload whose
/// scope or name is not valid does not parse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// The scope.
    pub scope: Scope,
    /// The secret's name.
    pub name: SecretName,
    /// The version written; 0 for a delete.
    pub version: u64,
    /// What the write did.
    pub op: ChangeOp,
}

/// What a [`Change`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum ChangeOp {
    /// A new version (`put`).
    Put,
    /// A soft delete (`delete`).
    Delete,
    /// Every version removed (`destroy`).
    Destroy,
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
