//! What the two SQL stores of this crate share: row mapping, sealing contexts, the put
//! statements. What other coffer crates on sqlx need too is in [`crate::support`].

use chrono::{DateTime, Utc};
use coffer_envelope::Context;

pub(crate) use crate::support::{map_sqlx, prefix_range, run_migrations_in, verify_checks};
use coffer_store::{Error, Scope, SecretKind, SecretMeta, SecretName};

/// The head row of a secret, as both dialects return it.
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct MetaRow {
    pub(crate) scope: String,
    pub(crate) name: String,
    pub(crate) version: i64,
    pub(crate) deleted: bool,
    pub(crate) provider: Option<String>,
    pub(crate) kind: String,
    pub(crate) description: Option<String>,
    pub(crate) tags: String,
    pub(crate) env_name: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) active: bool,
    pub(crate) created_at: i64,
    pub(crate) updated_at: i64,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) usage_count: i64,
    pub(crate) key_id: Option<i64>,
}

/// `SELECT` of the [`MetaRow`] columns from `coffer_secrets s` joined with its latest
/// version `v`; callers append `WHERE …` with `concat!`, so every query stays a
/// `&'static str`.
macro_rules! select_meta {
    () => {
        "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, s.tags, \
         s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, s.last_used_at, \
         s.usage_count, v.key_id FROM coffer_secrets s LEFT JOIN coffer_secret_versions v \
         ON v.scope = s.scope AND v.name = s.name AND v.version = s.version "
    };
}
pub(crate) use select_meta;

fn millis(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl MetaRow {
    /// The metadata this row describes. A row the store did not write (edited by hand)
    /// is reported as a backend error naming the column, never a panic.
    pub(crate) fn into_meta(self, backend: &'static str) -> Result<SecretMeta, Error> {
        let corrupt = |column: &str| {
            Error::backend(
                backend,
                format!("row {}/{} has an invalid {column}", self.scope, self.name),
            )
        };
        let scope = Scope::new(self.scope.clone()).map_err(|_| corrupt("scope"))?;
        let name = SecretName::new(self.name.clone()).map_err(|_| corrupt("name"))?;
        let kind: SecretKind = self.kind.parse().map_err(|_| corrupt("kind"))?;
        let tags: Vec<String> = serde_json::from_str(&self.tags).map_err(|_| corrupt("tags"))?;
        let mut meta = SecretMeta::new(scope, name, &Default::default());
        meta.provider = self.provider;
        meta.kind = kind;
        meta.description = self.description;
        meta.tags = tags;
        meta.env_name = self.env_name;
        meta.expires_at = self.expires_at.map(millis);
        meta.active = self.active;
        meta.version = u64::try_from(self.version).map_err(|_| corrupt("version"))?;
        meta.created_at = millis(self.created_at);
        meta.updated_at = millis(self.updated_at);
        meta.last_used_at = self.last_used_at.map(millis);
        meta.usage_count = u64::try_from(self.usage_count).unwrap_or(0);
        meta.key_id = self.key_id.and_then(|k| u32::try_from(k).ok());
        Ok(meta)
    }
}

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

/// What one put writes: the new head row of a secret and its new version.
pub(crate) struct PutWrite<'a> {
    pub(crate) scope: &'a Scope,
    pub(crate) name: &'a SecretName,
    pub(crate) meta: &'a SecretMeta,
    /// `meta.tags` as JSON text.
    pub(crate) tags: String,
    /// The head this put replaces, `(version, deleted)`, checked and set atomically
    /// (`None`: the name is new, and the put loses if another writer creates it first).
    pub(crate) old: Option<(i64, bool)>,
    pub(crate) key_id: i64,
    pub(crate) sealed: Vec<u8>,
}

impl PutWrite<'_> {
    /// The change this put announces to other instances.
    pub(crate) fn change(&self) -> coffer_store::Change {
        coffer_store::Change {
            scope: self.scope.clone(),
            name: self.name.clone(),
            version: self.meta.version,
            op: coffer_store::ChangeOp::Put,
        }
    }
}

/// Writes the head row of a new name ($1–$12), or nothing if it exists.
macro_rules! insert_head {
    () => {
        "INSERT INTO coffer_secrets (scope, name, version, deleted, provider, kind, description, \
         tags, env_name, expires_at, active, created_at, updated_at) \
         VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (scope, name) DO NOTHING"
    };
}
pub(crate) use insert_head;

/// Replaces the head row ($1–$9) if it is still at the version and deletion state the
/// put read ($10–$13).
macro_rules! update_head {
    () => {
        "UPDATE coffer_secrets SET version = $1, deleted = FALSE, provider = $2, kind = $3, \
         description = $4, tags = $5, env_name = $6, expires_at = $7, active = $8, updated_at = $9 \
         WHERE scope = $10 AND name = $11 AND version = $12 AND deleted = $13"
    };
}
pub(crate) use update_head;

/// `sqlx::query($insert)` or `sqlx::query($update)` with a [`PutWrite`]'s head
/// parameters bound in the order of [`insert_head!`] or [`update_head!`]; statements
/// that start with those may bind more parameters after them.
macro_rules! bind_head {
    ($w:expr, $insert:expr, $update:expr) => {{
        use $crate::common::{ms, to_i64};
        let w = $w;
        match w.old {
            None => sqlx::query($insert)
                .bind(w.scope.as_str())
                .bind(w.name.as_str())
                .bind(to_i64(w.meta.version))
                .bind(&w.meta.provider)
                .bind(w.meta.kind.as_str())
                .bind(&w.meta.description)
                .bind(&w.tags)
                .bind(&w.meta.env_name)
                .bind(w.meta.expires_at.map(ms))
                .bind(w.meta.active)
                .bind(ms(w.meta.created_at))
                .bind(ms(w.meta.updated_at)),
            Some((old_version, old_deleted)) => sqlx::query($update)
                .bind(to_i64(w.meta.version))
                .bind(&w.meta.provider)
                .bind(w.meta.kind.as_str())
                .bind(&w.meta.description)
                .bind(&w.tags)
                .bind(&w.meta.env_name)
                .bind(w.meta.expires_at.map(ms))
                .bind(w.meta.active)
                .bind(ms(w.meta.updated_at))
                .bind(w.scope.as_str())
                .bind(w.name.as_str())
                .bind(old_version)
                .bind(old_deleted),
        }
    }};
}
pub(crate) use bind_head;
