//! The broker's public value types: its [`Limits`], the opaque [`ConnectionId`] and
//! what [`ConnectionInfo`] says about a connection.

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{ConnectionParams, DatabaseKind, Mode};

/// The broker's limits. Start from [`Limits::default`] and change what you need.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Limits {
    /// Database connections per connection id (default 4).
    pub pool_size: u32,
    /// A connection id unused this long is closed and forgotten (default 15 minutes).
    pub idle_timeout: Duration,
    /// A connection id older than this is closed and forgotten (default 8 hours).
    pub max_lifetime: Duration,
    /// Connection ids one owner may hold at once (default 16).
    pub max_per_owner: usize,
    /// How long one statement may run (default 30 s).
    pub statement_timeout: Duration,
    /// Rows one query returns at most; more set `truncated` (default 1,000).
    pub row_limit: usize,
    /// Bytes one query returns at most, counted as the JSON its rows become, enforced as
    /// rows arrive; more set `truncated` (default 16 MiB). A connection may set its own
    /// ([`ConnectionParams::max_result_bytes`]). On SQLite it also bounds the largest
    /// value the engine may build, so memory stays bounded inside the engine too.
    pub byte_limit: usize,
    /// Bytes of one cell (text, or bytes before base64) at most; a longer cell is cut
    /// and ends with [`CELL_MARKER`](crate::CELL_MARKER) (default 1 MiB).
    pub cell_limit: usize,
    /// Columns [`Broker::schema`](crate::Broker::schema) describes at most, apart from the row limit; more set
    /// [`Schema::truncated`](crate::Schema::truncated) (default 10,000).
    pub schema_limit: usize,
    /// How long connecting may take (default 10 s).
    pub connect_timeout: Duration,
    /// How often the reaper looks for idle and old ids (default 30 s).
    pub reap_interval: Duration,
    /// With a registry: how long an id opened here is used before the registry is asked
    /// again whether it still exists, so a disconnect on another instance takes effect
    /// here within this time (default 5 s).
    pub registry_recheck: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            pool_size: 4,
            idle_timeout: Duration::from_secs(15 * 60),
            max_lifetime: Duration::from_secs(8 * 3600),
            max_per_owner: 16,
            statement_timeout: Duration::from_secs(30),
            row_limit: 1000,
            byte_limit: 16 << 20,
            cell_limit: 1 << 20,
            schema_limit: 10_000,
            connect_timeout: Duration::from_secs(10),
            reap_interval: Duration::from_secs(30),
            registry_recheck: Duration::from_secs(5),
        }
    }
}

impl Limits {
    /// The byte limit of a call on `params`: its own, or [`Limits::byte_limit`].
    pub(super) fn byte_limit_of(&self, params: &ConnectionParams) -> usize {
        params.max_result_bytes.unwrap_or(self.byte_limit)
    }
}

/// An opaque connection id: 128 random bits, printable (`conn_` and 32 hex digits).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ConnectionId(pub(super) String);

impl ConnectionId {
    pub(super) fn random() -> Self {
        Self(format!("conn_{}", hex::encode(rand::random::<[u8; 16]>())))
    }

    /// An id as an agent hands it back (any text; unknown ids are simply not found).
    pub fn from_string(id: impl Into<String>) -> Self {
        Self(id.into())
    }

    /// The id's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ConnectionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Enough to tell ids apart in logs, not enough to use one.
        write!(f, "ConnectionId({}…)", &self.0[..self.0.len().min(9)])
    }
}

/// What [`Broker::info`](crate::Broker::info) tells about a connection: never a password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The id.
    pub id: ConnectionId,
    /// The configured name, for named connections.
    pub name: Option<String>,
    /// The database kind.
    #[serde(rename = "type")]
    pub kind: DatabaseKind,
    /// The host (servers).
    pub host: Option<String>,
    /// The port (servers).
    pub port: Option<u16>,
    /// The database name (servers) or file (SQLite).
    pub database: Option<String>,
    /// The user (servers).
    pub user: Option<String>,
    /// What calls may do.
    pub mode: Mode,
    /// When it was connected.
    pub created_at: DateTime<Utc>,
    /// When it was last used.
    pub last_used_at: DateTime<Utc>,
}

impl ConnectionInfo {
    pub(super) fn of(
        id: &ConnectionId,
        name: Option<String>,
        params: &ConnectionParams,
        created_at: DateTime<Utc>,
    ) -> Self {
        let a = &params.address;
        Self {
            id: id.clone(),
            name,
            kind: params.kind(),
            host: a.get_host().map(ToOwned::to_owned),
            port: a.get_port(),
            database: a
                .get_database()
                .map(ToOwned::to_owned)
                .or_else(|| a.get_path().map(|p| p.display().to_string())),
            user: a.get_user().map(ToOwned::to_owned),
            mode: params.mode,
            created_at,
            last_used_at: Utc::now(),
        }
    }
}
