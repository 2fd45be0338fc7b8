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
    /// Metadata edited without a new version (`update_attributes`).
    Attributes,
    /// A soft-deleted secret brought back (`restore`).
    Restore,
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
    /// The keyring kept in the store ([`SharedKeyring`](crate::keys::SharedKeyring)) was
    /// written (rotated, retired, re-keyed), now at `generation`. Postgres sends it as
    /// `{"keyring":{"generation":…}}` on the same channel.
    KeyringChanged {
        /// The generation written.
        generation: u64,
    },
}

/// The payload that announces a keyring change on a store's notification channel
/// ([`WatchEvent::KeyringChanged`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringNotice {
    /// The keyring document's new generation.
    pub keyring: KeyringGeneration,
}

/// The body of a [`KeyringNotice`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyringGeneration {
    /// The generation written.
    pub generation: u64,
}
