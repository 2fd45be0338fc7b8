//! What the SQL store needs of a database driver, in the store's own terms: a
//! [`Statement`] run with [`Param`]s, and rows read through [`Columns`] into the row types
//! of [`crate::row`].
//!
//! sqlx's generic API asks every generic caller to repeat a dozen bounds (an executor for
//! `&mut Connection`, `Encode + Type` per bound type, `Decode` per column type). Here
//! they are written once, on the blanket [`Driver`] impl for every sqlx database that
//! meets them, so the store is generic over `D: Dialect` with no `where` clause of its
//! own. A driver that is not sqlx (rusqlite, for an authorizer) would implement the same
//! three methods.

use async_trait::async_trait;
use futures::TryStreamExt as _;
use sqlx::{ColumnIndex, Database, Decode, Encode, Executor, IntoArguments, Row, Type};

use crate::support::RowsAffected;

/// One SQL statement with numbered parameters `$1 … $N`, and what each one is (by
/// position: `params[0]` is `$1`). The test in [`crate::sql`] checks that the text uses
/// exactly `$1 … $N` for N names.
#[derive(Debug, Clone, Copy)]
pub struct Statement {
    /// The SQL text.
    pub sql: &'static str,
    /// What `$1`, `$2`, … stand for, in order.
    pub params: &'static [&'static str],
}

/// One bound parameter value.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    /// `TEXT`.
    Text(&'a str),
    /// `TEXT` or `NULL`.
    OptText(Option<&'a str>),
    /// `BIGINT`.
    Int(i64),
    /// `BIGINT` or `NULL`.
    OptInt(Option<i64>),
    /// `BOOLEAN`.
    Bool(bool),
    /// `BYTEA` / `BLOB`.
    Blob(&'a [u8]),
    /// `BYTEA` / `BLOB` or `NULL`.
    OptBlob(Option<&'a [u8]>),
}

/// Typed reads of one result row's columns, by name.
pub trait Columns {
    /// A `TEXT` column.
    fn text(&self, column: &str) -> Result<String, sqlx::Error>;
    /// A nullable `TEXT` column.
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error>;
    /// A `BIGINT` column.
    fn int(&self, column: &str) -> Result<i64, sqlx::Error>;
    /// A nullable `BIGINT` column.
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error>;
    /// A `BOOLEAN` column.
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error>;
    /// A `BYTEA` / `BLOB` column.
    fn blob(&self, column: &str) -> Result<Vec<u8>, sqlx::Error>;
    /// A `BYTEA` / `BLOB` column that may be `NULL`.
    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error>;
}

/// A row type of the store, read from any driver's row.
pub trait FromColumns: Sized + Send {
    /// Reads one row.
    fn from_columns(row: &impl Columns) -> Result<Self, sqlx::Error>;
}

/// Runs [`Statement`]s on a connection of this database.
#[async_trait]
pub trait Driver: Database {
    /// Runs `statement`; the number of rows it changed.
    async fn execute(
        conn: &mut Self::Connection,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<u64, sqlx::Error>;

    /// Runs `statement`; every row it returned.
    async fn fetch_all<R: FromColumns>(
        conn: &mut Self::Connection,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<R>, sqlx::Error>;
}

/// The first of `rows`, for statements that return at most one.
pub(crate) fn first<R>(rows: Vec<R>) -> Option<R> {
    rows.into_iter().next()
}

/// A [`Statement`] with its [`Param`]s bound, as a sqlx query of this database.
pub trait Bind: Database {
    /// The query.
    fn query(
        statement: &Statement,
        params: &[Param<'_>],
    ) -> sqlx::query::Query<'static, Self, Self::Arguments>;
}

impl<DB> Bind for DB
where
    DB: Database,
    for<'a> &'a str: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a str>: Encode<'a, DB> + Type<DB>,
    for<'a> i64: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> bool: Encode<'a, DB> + Type<DB>,
    for<'a> &'a [u8]: Encode<'a, DB> + Type<DB>,
    for<'a> Option<&'a [u8]>: Encode<'a, DB> + Type<DB>,
{
    fn query(
        statement: &Statement,
        params: &[Param<'_>],
    ) -> sqlx::query::Query<'static, DB, DB::Arguments> {
        debug_assert_eq!(
            params.len(),
            statement.params.len(),
            "parameters bound to {}",
            statement.sql
        );
        params
            .iter()
            .fold(sqlx::query(statement.sql), |q, p| match *p {
                Param::Text(v) => q.bind(v),
                Param::OptText(v) => q.bind(v),
                Param::Int(v) => q.bind(v),
                Param::OptInt(v) => q.bind(v),
                Param::Bool(v) => q.bind(v),
                Param::Blob(v) => q.bind(v),
                Param::OptBlob(v) => q.bind(v),
            })
    }
}

#[async_trait]
impl<DB> Driver for DB
where
    DB: Bind,
    DB::Arguments: IntoArguments<DB>,
    DB::Row: Columns,
    DB::QueryResult: RowsAffected,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    async fn execute(
        conn: &mut Self::Connection,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<u64, sqlx::Error> {
        Ok(DB::query(statement, params)
            .execute(conn)
            .await?
            .rows_affected())
    }

    async fn fetch_all<R: FromColumns>(
        conn: &mut Self::Connection,
        statement: &Statement,
        params: &[Param<'_>],
    ) -> Result<Vec<R>, sqlx::Error> {
        DB::query(statement, params)
            .fetch(conn)
            .and_then(|row| futures::future::ready(R::from_columns(&row)))
            .try_collect()
            .await
    }
}

impl<R> Columns for R
where
    R: Row,
    for<'a> &'a str: ColumnIndex<R>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> bool: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Vec<u8>: Decode<'r, R::Database> + Type<R::Database>,
{
    fn text(&self, column: &str) -> Result<String, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_text(&self, column: &str) -> Result<Option<String>, sqlx::Error> {
        self.try_get(column)
    }
    fn int(&self, column: &str) -> Result<i64, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_int(&self, column: &str) -> Result<Option<i64>, sqlx::Error> {
        self.try_get(column)
    }
    fn flag(&self, column: &str) -> Result<bool, sqlx::Error> {
        self.try_get(column)
    }
    fn blob(&self, column: &str) -> Result<Vec<u8>, sqlx::Error> {
        self.try_get(column)
    }
    fn opt_blob(&self, column: &str) -> Result<Option<Vec<u8>>, sqlx::Error> {
        self.try_get(column)
    }
}
