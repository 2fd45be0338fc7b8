//! Small helpers of the two SQL stores of this crate: sealing contexts, integer and time
//! conversions, the migrations table. What other coffer crates on sqlx need too is in [`crate::support`].

use chrono::{DateTime, Utc};
use coffer_envelope::Context;

pub(crate) use crate::support::{map_sqlx, prefix_range, run_migrations_in, verify_checks};
use coffer_store::Error;

/// The envelope context of one stored version: (scope, name, version).
pub(crate) fn context<'a>(scope: &'a str, name: &'a str, version: u64) -> Context<'a> {
    Context::new(scope, name).with_version(version)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn ms(t: DateTime<Utc>) -> i64 {
    t.timestamp_millis()
}

/// The table that records coffer-sql's applied migrations. It is not sqlx's default
/// `_sqlx_migrations`, so coffer's migrations and the application's own sqlx migrations
/// can share a database without either reporting the other's as missing.
pub(crate) const MIGRATIONS_TABLE: &str = "_coffer_sql_migrations";

/// Runs embedded migrations under coffer's own history table (sqlx takes its advisory
/// lock on Postgres, so concurrent starts are safe).
pub(crate) async fn run_migrations<'a, A>(
    backend: &'static str,
    migrator: sqlx::migrate::Migrator,
    conn: A,
) -> Result<(), Error>
where
    A: sqlx::Acquire<'a>,
    <A::Connection as std::ops::Deref>::Target: sqlx::migrate::Migrate,
{
    run_migrations_in(backend, migrator, MIGRATIONS_TABLE, conn).await
}
