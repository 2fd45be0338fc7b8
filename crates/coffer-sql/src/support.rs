//! What a coffer store built on sqlx needs beside this crate's stores: the driver-error
//! mapping, prefix ranges that need no `LIKE`, key-check verification at open, and
//! migrations under a history table of the store's own. The Supabase Vault store uses
//! them; this crate's SQLite and Postgres stores do too.

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

/// SQLite BUSY/LOCKED (5, 6 and their extended codes), Postgres admin shutdown,
/// cannot-connect-now and serialization failure.
fn is_busy(code: Option<&str>) -> bool {
    match code {
        Some(c) => {
            matches!(c, "5" | "6" | "57P01" | "57P03" | "40001" | "40P01")
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
