//! What the SQL stores share: row mapping, sealing contexts, error mapping, migrations.
//! The public items are for other coffer crates on sqlx (the Supabase store).

use chrono::{DateTime, Utc};
use coffer_envelope::{Context, Keyring};
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
            scope: self.scope.to_string(),
            name: self.name.to_string(),
            version: self.meta.version,
            op: "put".to_owned(),
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
