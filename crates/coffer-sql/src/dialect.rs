//! What differs between the SQL databases of [`SqlStore`](crate::SqlStore): the
//! [`Dialect`] trait.

use async_trait::async_trait;
use coffer_store::{Change, Error, Result, Scope};
use sqlx::pool::PoolConnection;
use sqlx::{Database, Pool, Transaction};

use crate::driver::Driver;
use crate::row::PutWrite;

/// One SQL database as [`SqlStore`](crate::SqlStore) uses it: its driver, and the hooks
/// where it differs from the portable SQL of the store. Implemented by
/// [`SqliteDialect`](crate::SqliteDialect) and [`PgDialect`](crate::PgDialect); sealed.
///
/// The hooks are the whole difference between the two stores:
///
/// | hook | SQLite | Postgres |
/// |---|---|---|
/// | [`conn`](Dialect::conn) | a pooled connection | with row-level security, a transaction with the scope set |
/// | [`enter_scope`](Dialect::enter_scope) | nothing | with row-level security, `set_config('coffer.scope', …, true)` |
/// | [`on_write`](Dialect::on_write) | nothing | `pg_notify` of the [`Change`] in the write's transaction |
/// | [`write_put`](Dialect::write_put) | one `BEGIN IMMEDIATE … COMMIT` call | one statement of data-modifying CTEs |
#[async_trait]
pub trait Dialect: Send + Sync + Clone + 'static + sealed::Sealed {
    /// The sqlx database.
    type Db: Driver;

    /// The backend name in errors and `SecretStore::backend`.
    const BACKEND: &'static str;

    /// The store's type name in `Debug`.
    const STORE: &'static str;

    /// A connection for one call in `scope`.
    async fn conn(&self, pool: &Pool<Self::Db>, _scope: &Scope) -> Result<Scoped<Self::Db>> {
        pool.acquire()
            .await
            .map(Scoped::Pooled)
            .map_err(|e| crate::common::map_sqlx(Self::BACKEND, e))
    }

    /// Makes the rest of a transaction act for `scope`.
    async fn enter_scope(
        &self,
        _tx: &mut <Self::Db as Database>::Connection,
        _scope: &Scope,
    ) -> Result<()> {
        Ok(())
    }

    /// Runs inside each delete's transaction, before it commits.
    async fn on_write(
        &self,
        _tx: &mut <Self::Db as Database>::Connection,
        _change: &Change,
    ) -> Result<()> {
        Ok(())
    }

    /// Writes a put's head row and version atomically; `false` if the head changed since
    /// it was read.
    async fn write_put(&self, pool: &Pool<Self::Db>, write: &PutWrite<'_>) -> Result<bool>;

    /// Whether `e` says the call's connection was gone (so a read may run again), and
    /// if so, notes it for the pool's [`Liveness`](crate::support::Liveness).
    fn lost(&self, _e: &Error) -> bool {
        false
    }

    /// The fields of this dialect in the store's `Debug`.
    fn debug_fields(&self, _f: &mut std::fmt::DebugStruct<'_, '_>) {}
}

pub(crate) mod sealed {
    /// Only this crate's dialects implement [`Dialect`](super::Dialect).
    pub trait Sealed {}
}

/// A connection for one store call: pooled, or a transaction that sets per-call state
/// (and must be committed with [`Scoped::finish`]).
#[derive(Debug)]
pub enum Scoped<DB: Database> {
    /// A pooled connection.
    Pooled(PoolConnection<DB>),
    /// A transaction (row-level security).
    Tx(Transaction<'static, DB>),
}

impl<DB: Database> std::ops::Deref for Scoped<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        match self {
            Scoped::Pooled(c) => c,
            Scoped::Tx(t) => t,
        }
    }
}

impl<DB: Database> std::ops::DerefMut for Scoped<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        match self {
            Scoped::Pooled(c) => c,
            Scoped::Tx(t) => t,
        }
    }
}

impl<DB: Database> Scoped<DB> {
    /// Commits the transaction, if this is one.
    pub async fn finish(self) -> Result<(), sqlx::Error> {
        match self {
            Scoped::Pooled(_) => Ok(()),
            Scoped::Tx(t) => t.commit().await,
        }
    }
}
