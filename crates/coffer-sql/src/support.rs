//! What a coffer store built on sqlx needs beside this crate's stores: the driver-error
//! mapping, prefix ranges that need no `LIKE`, key-check verification at open, and
//! migrations under a history table of the store's own. The Supabase Vault store uses
//! them; this crate's SQLite and Postgres stores do too.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use coffer_envelope::Keyring;
use coffer_store::Error;

/// The names starting with `prefix` are exactly those in `[prefix, upper)`, where
/// `upper` is the prefix with its last byte incremented (names are ASCII; `None`: no
/// upper bound). Comparisons are bytewise (SQLite's BINARY, Postgres' "C" collation),
/// so no `LIKE` wildcard or locale applies.
pub fn prefix_range(prefix: &str) -> (String, Option<String>) {
    let mut upper = prefix.as_bytes().to_vec();
    while let Some(last) = upper.pop() {
        if last < 0x7f {
            upper.push(last + 1);
            return (prefix.to_owned(), String::from_utf8(upper).ok());
        }
    }
    (prefix.to_owned(), None)
}

/// How long a pooled connection may sit idle before it is pinged on acquire.
pub const IDLE_PING_AFTER: Duration = Duration::from_secs(1);

/// The liveness policy of a store's pool: no ping before each acquire, as sqlx does by
/// default (a round trip in front of every call), since the call's first statement
/// shows whether its connection is alive. sqlx pings a connection when it is released,
/// so an idle connection was alive when it went idle; it can only have died while
/// idle. So a connection is pinged on acquire only when that is likely: it has been
/// idle longer than [`IDLE_PING_AFTER`] (a server restarted overnight, a proxy that
/// drops idle connections), or it went idle before this pool last saw a connection
/// lost ([`Liveness::lost`]), when its neighbours may be gone too. A call whose
/// statement finds its connection gone is retried once where that is safe (see
/// [`connection_lost`]); its retry then meets only pinged connections or new ones.
///
/// Cloning shares the record.
#[derive(Debug, Clone)]
pub struct Liveness {
    epoch: Instant,
    /// When a connection was last seen lost, in nanoseconds after `epoch` (0: never).
    lost_at: Arc<AtomicU64>,
}

impl Default for Liveness {
    fn default() -> Self {
        Self {
            epoch: Instant::now(),
            lost_at: Arc::new(AtomicU64::new(0)),
        }
    }
}

impl Liveness {
    /// A policy that has seen no lost connection.
    pub fn new() -> Self {
        Self::default()
    }

    fn nanos_since_epoch(&self, at: Instant) -> u64 {
        u64::try_from(at.saturating_duration_since(self.epoch).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// `options` with this policy: sqlx's ping before each acquire off, a ping only for
    /// the connections described above.
    pub fn apply<DB: sqlx::Database>(
        &self,
        options: sqlx::pool::PoolOptions<DB>,
    ) -> sqlx::pool::PoolOptions<DB> {
        let this = self.clone();
        options
            .test_before_acquire(false)
            .before_acquire(move |conn, meta| {
                let suspect = meta.idle_for > IDLE_PING_AFTER || {
                    let lost = this.lost_at.load(Ordering::Acquire);
                    let idle_since = Instant::now()
                        .checked_sub(meta.idle_for)
                        .unwrap_or(this.epoch);
                    lost != 0 && this.nanos_since_epoch(idle_since) <= lost
                };
                Box::pin(async move {
                    if suspect {
                        // A failed ping makes sqlx close the connection and take
                        // another (or open one).
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            })
    }

    /// Whether `e` says the call's connection was lost (see [`connection_lost`]); if so,
    /// records it, so that every connection idle since then is pinged before its next
    /// use.
    pub fn lost(&self, e: &Error) -> bool {
        let lost = connection_lost(e);
        if lost {
            self.lost_at
                .fetch_max(self.nanos_since_epoch(Instant::now()), Ordering::AcqRel);
        }
        lost
    }
}

/// Whether a store error says its connection was gone rather than that the statement
/// failed: an I/O error (reset, closed, end of stream), or the server's word that it
/// ended the session (Postgres `57P01` admin shutdown, `57P02` crash shutdown, `57P03`
/// cannot connect now, class `08` connection exception). A call that only reads is
/// safe to run again after such an error; a write is not (the statement may have run
/// before the connection broke), unless the statement that failed was the call's first.
pub fn connection_lost(e: &Error) -> bool {
    let Error::Unavailable {
        source: Some(source),
        ..
    } = e
    else {
        return false;
    };
    match source.downcast_ref::<sqlx::Error>() {
        Some(sqlx::Error::Io(_)) => true,
        Some(sqlx::Error::Database(db)) => is_gone(db.code().as_deref()),
        _ => false,
    }
}

/// Maps a driver error to the store error. Connection trouble is `Unavailable`
/// (transient); everything else is `Backend`. sqlx's configuration errors can quote
/// the connection URL, so their text is replaced.
pub fn map_sqlx(backend: &'static str, e: sqlx::Error) -> Error {
    use sqlx::Error as E;
    match e {
        E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
            Error::Unavailable {
                backend,
                message: "cannot reach the database".to_owned(),
                source: Some(Box::new(e)),
            }
        }
        E::Database(db) if is_gone(db.code().as_deref()) => Error::Unavailable {
            backend,
            message: "the database ended the connection".to_owned(),
            source: Some(Box::new(E::Database(db))),
        },
        E::Database(db) if is_busy(db.code().as_deref()) => Error::Unavailable {
            backend,
            message: "the database is busy".to_owned(),
            source: Some(Box::new(E::Database(db))),
        },
        E::Configuration(_) => Error::config(format!("{backend}: invalid connection options")),
        // The retired-key triggers (migration `*_retired_keys`).
        E::Database(db) if db.message().contains("coffer: key retired") => {
            Error::KeyringOutOfDate {
                backend,
                message: "this keyring is out of date: a key it writes with was retired from \
                          this store; load the current keyring (another instance rotated and \
                          retired it)"
                    .to_owned(),
            }
        }
        other => Error::backend(backend, other),
    }
}

/// Postgres admin shutdown, crash shutdown, cannot-connect-now and the connection
/// exceptions (class `08`): the server ended the session or would not start one.
fn is_gone(code: Option<&str>) -> bool {
    code.is_some_and(|c| matches!(c, "57P01" | "57P02" | "57P03") || c.starts_with("08"))
}

/// SQLite BUSY/LOCKED (5, 6 and their extended codes), Postgres serialization failure
/// and deadlock.
fn is_busy(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            matches!(c, "5" | "6" | "40001" | "40P01")
                || c.parse::<i32>()
                    .is_ok_and(|n| n & 0xff == 5 || n & 0xff == 6)
        }
        None => false,
    }
}

/// Verifies the key check values recorded in a store against the keyring, so a wrong
/// key fails when the store opens, with advice, instead of at the first read.
pub fn verify_checks(
    backend: &'static str,
    keyring: &Keyring,
    recorded: &[(i64, String)],
) -> Result<(), Error> {
    for (id, check) in recorded {
        let Ok(id) = u32::try_from(*id) else { continue };
        if keyring
            .check_value(id)
            .is_some_and(|actual| &actual != check)
        {
            return Err(Error::config(format!(
                "{backend}: keyring key {id} is not the key this store was sealed with \
                 (wrong COFFER_MASTER_KEY or keyring file?)"
            )));
        }
    }
    Ok(())
}

/// Runs `migrator` recording its history in `table` instead of sqlx's shared
/// `_sqlx_migrations`, mapping failures to a store error.
pub async fn run_migrations_in<'a, A>(
    backend: &'static str,
    mut migrator: sqlx::migrate::Migrator,
    table: &'static str,
    conn: A,
) -> Result<(), Error>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    migrator.dangerous_set_table_name(table);
    migrator
        .run(conn)
        .await
        .map_err(|e| Error::backend(backend, e))
}

/// How many rows a statement changed, on every sqlx database coffer uses (sqlx has no
/// trait for it), for code generic over the database.
pub trait RowsAffected {
    /// The number of rows changed.
    fn rows_affected(&self) -> u64;
}

#[cfg(feature = "sqlite")]
impl RowsAffected for sqlx::sqlite::SqliteQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "postgres")]
impl RowsAffected for sqlx::postgres::PgQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}

#[cfg(feature = "mysql")]
impl RowsAffected for sqlx::mysql::MySqlQueryResult {
    fn rows_affected(&self) -> u64 {
        self.rows_affected()
    }
}
