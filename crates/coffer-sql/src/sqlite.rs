//! The SQLite store.

use std::path::Path;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use coffer_envelope::Keyring;
use coffer_store::open::{OpenOptions, StoreOpener};
use coffer_store::{
    Capabilities, DeleteMode, DynSecretStore, Error, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, check_condition, now, page_of,
    validate_value,
};
use secrecy::{ExposeSecret as _, SecretString};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row as _, SqlitePool};

use crate::common::{MetaRow, context, map_sqlx, ms, select_meta, to_i64, verify_checks};

const BACKEND: &str = "sqlite";

/// How often a write retries after losing an optimistic race to another writer before
/// it gives up with `Unavailable`. Only blind writes retry in practice: a conditional
/// write that loses a race fails its condition on the next read.
const MAX_WRITE_ATTEMPTS: usize = 64;

/// A [`SecretStore`] in a SQLite file: the embedded default, no server needed.
///
/// Values are sealed with [`coffer_envelope`] under the context (scope, name, version)
/// and stored as BLOBs; the schema comes from embedded migrations; the database runs
/// in WAL mode with `synchronous = FULL`, so an acknowledged write survives a crash.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// use std::sync::Arc;
/// use coffer_envelope::{Keyring, MasterKey};
/// use coffer_sql::SqliteStore;
/// use coffer_store::{PutOptions, Scope, SecretName, SecretStore};
///
/// let dir = tempfile::tempdir().unwrap();
/// let keyring = Arc::new(Keyring::new(MasterKey::generate()));
/// let store = SqliteStore::open(&dir.path().join("secrets.db"), keyring).await?;
/// let (scope, name) = (Scope::new("tenant")?, SecretName::new("api_key")?);
/// store.put(&scope, &name, &"sk-example".into(), &PutOptions::new()).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("keyring", &self.keyring)
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database file at `path`.
    pub async fn open(path: &Path, keyring: Arc<Keyring>) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::with_options(options, keyring).await
    }

    /// Opens a `sqlite://PATH` or `sqlite:PATH` URL (`?mode=ro` and other sqlx options apply).
    pub async fn connect(url: &str, keyring: Arc<Keyring>) -> Result<Self> {
        let options = SqliteConnectOptions::from_str(url).map_err(|_| {
            Error::config(format!(
                "invalid SQLite URL {}",
                coffer_store::open::redact_url(url)
            ))
        })?;
        Self::with_options(options, keyring).await
    }

    /// Opens with explicit sqlx options; WAL, `synchronous = FULL`, foreign keys and a
    /// busy timeout are set on top, and the migrations run.
    pub async fn with_options(
        options: SqliteConnectOptions,
        keyring: Arc<Keyring>,
    ) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| map_sqlx(BACKEND, e))?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|e| Error::backend(BACKEND, e))?;
        let store = Self { pool, keyring };
        store.check_keys().await?;
        Ok(store)
    }

    /// The sqlx pool (for tests and for tables of other coffer crates in the same file).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The keyring values are sealed with.
    pub fn keyring(&self) -> &Arc<Keyring> {
        &self.keyring
    }

    async fn check_keys(&self) -> Result<()> {
        let recorded: Vec<(i64, String)> =
            sqlx::query_as("SELECT key_id, check_value FROM coffer_key_checks")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| map_sqlx(BACKEND, e))?;
        verify_checks(BACKEND, &self.keyring, &recorded)?;
        self.record_primary_check().await
    }

    async fn record_primary_check(&self) -> Result<()> {
        let primary = self.keyring.primary_id();
        if let Some(check) = self.keyring.check_value(primary) {
            sqlx::query("INSERT INTO coffer_key_checks (key_id, check_value) VALUES ($1, $2) ON CONFLICT (key_id) DO NOTHING")
                .bind(i64::from(primary))
                .bind(check)
                .execute(&self.pool)
                .await
                .map_err(|e| map_sqlx(BACKEND, e))?;
        }
        Ok(())
    }

    async fn head(&self, scope: &Scope, name: &SecretName) -> Result<Option<MetaRow>> {
        sqlx::query_as::<_, MetaRow>(concat!(
            select_meta!(),
            "WHERE s.scope = $1 AND s.name = $2"
        ))
        .bind(scope.as_str())
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))
    }

    /// One optimistic attempt at a write; `Ok(None)` means another writer got there first.
    async fn try_put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<Option<SecretMeta>> {
        let head = self.head(scope, name).await?;
        let live = head
            .as_ref()
            .filter(|h| !h.deleted)
            .map(|h| h.version as u64);
        check_condition(scope, name, options.condition, live)?;

        let (old, mut meta) = match head {
            Some(h) => {
                let old = (h.version, h.deleted);
                let mut meta = h.into_meta(BACKEND)?;
                meta.version += 1;
                meta.updated_at = now();
                options.attributes.apply(&mut meta);
                (Some(old), meta)
            }
            None => (
                None,
                SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
            ),
        };
        meta.key_id = Some(self.keyring.primary_id());
        let sealed = self.keyring.seal(
            value.expose_secret().as_bytes(),
            &context(scope.as_str(), name.as_str(), meta.version),
        );

        let mut tx = self.pool.begin().await.map_err(|e| map_sqlx(BACKEND, e))?;
        let tags = serde_json::to_string(&meta.tags).map_err(|e| Error::backend(BACKEND, e))?;
        let head_written = match old {
            None => sqlx::query(
                "INSERT INTO coffer_secrets (scope, name, version, deleted, provider, kind, description, tags, \
                 env_name, expires_at, active, created_at, updated_at) \
                 VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8, $9, $10, $11, $12) ON CONFLICT (scope, name) DO NOTHING",
            )
            .bind(scope.as_str())
            .bind(name.as_str())
            .bind(to_i64(meta.version))
            .bind(&meta.provider)
            .bind(meta.kind.as_str())
            .bind(&meta.description)
            .bind(&tags)
            .bind(&meta.env_name)
            .bind(meta.expires_at.map(ms))
            .bind(meta.active)
            .bind(ms(meta.created_at))
            .bind(ms(meta.updated_at))
            .execute(&mut *tx)
            .await,
            Some((old_version, old_deleted)) => sqlx::query(
                "UPDATE coffer_secrets SET version = $1, deleted = 0, provider = $2, kind = $3, description = $4, \
                 tags = $5, env_name = $6, expires_at = $7, active = $8, updated_at = $9 \
                 WHERE scope = $10 AND name = $11 AND version = $12 AND deleted = $13",
            )
            .bind(to_i64(meta.version))
            .bind(&meta.provider)
            .bind(meta.kind.as_str())
            .bind(&meta.description)
            .bind(&tags)
            .bind(&meta.env_name)
            .bind(meta.expires_at.map(ms))
            .bind(meta.active)
            .bind(ms(meta.updated_at))
            .bind(scope.as_str())
            .bind(name.as_str())
            .bind(old_version)
            .bind(old_deleted)
            .execute(&mut *tx)
            .await,
        }
        .map_err(|e| map_sqlx(BACKEND, e))?;
        if head_written.rows_affected() == 0 {
            return Ok(None);
        }
        sqlx::query(
            "INSERT INTO coffer_secret_versions (scope, name, version, key_id, ciphertext, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(scope.as_str())
        .bind(name.as_str())
        .bind(to_i64(meta.version))
        .bind(i64::from(self.keyring.primary_id()))
        .bind(&sealed)
        .bind(ms(meta.updated_at))
        .execute(&mut *tx)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))?;
        tx.commit().await.map_err(|e| map_sqlx(BACKEND, e))?;
        Ok(Some(meta))
    }
}

#[async_trait]
impl SecretStore for SqliteStore {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        validate_value(value.expose_secret())?;
        options.attributes.validate()?;
        for _ in 0..MAX_WRITE_ATTEMPTS {
            if let Some(meta) = self.try_put(scope, name, value, options).await? {
                return Ok(meta);
            }
            tokio_yield().await;
        }
        Err(Error::Unavailable {
            backend: BACKEND,
            message: format!("{scope}/{name}: too many concurrent writers, try again"),
            source: None,
        })
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let row = sqlx::query(
            "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, s.tags, \
             s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, s.last_used_at, \
             s.usage_count, v.key_id, v.version AS v_version, v.ciphertext FROM coffer_secrets s \
             JOIN coffer_secret_versions v ON v.scope = s.scope AND v.name = s.name \
             AND v.version = COALESCE($1, s.version) \
             WHERE s.scope = $2 AND s.name = $3 AND s.deleted = 0",
        )
        .bind(version.map(to_i64))
        .bind(scope.as_str())
        .bind(name.as_str())
        .fetch_optional(&self.pool)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))?
        .ok_or_else(|| Error::NotFound {
            scope: scope.to_string(),
            name: name.to_string(),
            version,
        })?;
        let v_version: i64 = row.try_get("v_version").map_err(|e| map_sqlx(BACKEND, e))?;
        let ciphertext: Vec<u8> = row
            .try_get("ciphertext")
            .map_err(|e| map_sqlx(BACKEND, e))?;
        let mut meta = <MetaRow as sqlx::FromRow<_>>::from_row(&row)
            .map_err(|e| map_sqlx(BACKEND, e))?
            .into_meta(BACKEND)?;
        meta.check_readable()?;
        meta.version = v_version as u64;
        meta.key_id = self.keyring.key_id_of(&ciphertext).ok();
        let value = self
            .keyring
            .open_string(
                &ciphertext,
                &context(scope.as_str(), name.as_str(), meta.version),
            )
            .map_err(|source| Error::Crypto {
                scope: scope.to_string(),
                name: name.to_string(),
                source,
            })?;
        Ok(Secret { value, meta })
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        match self.head(scope, name).await? {
            Some(h) if !h.deleted => h.into_meta(BACKEND),
            _ => Err(Error::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
                version: None,
            }),
        }
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let limit = options.page_size()?;
        let (lower, upper) = prefix_range(options.prefix.as_deref().unwrap_or(""));
        let after = match (&options.cursor, lower) {
            (Some(c), l) if c.as_str() >= l.as_str() => (c.clone(), false),
            (_, l) => (l, true),
        };
        let rows: Vec<MetaRow> = sqlx::query_as(concat!(
            select_meta!(),
            "WHERE s.scope = $1 AND s.deleted = 0 AND (s.name > $2 OR ($3 AND s.name = $2)) \
             AND ($4 IS NULL OR s.name < $4) ORDER BY s.name LIMIT $5"
        ))
        .bind(scope.as_str())
        .bind(&after.0)
        .bind(after.1)
        .bind(upper)
        .bind(to_i64(limit as u64 + 1))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))?;
        let mut items = rows
            .into_iter()
            .map(|r| r.into_meta(BACKEND))
            .collect::<Result<Vec<_>>>()?;
        Ok(page_of(&mut items, limit))
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let affected = match mode {
            DeleteMode::Soft => sqlx::query(
                "UPDATE coffer_secrets SET deleted = 1, updated_at = $1 WHERE scope = $2 AND name = $3 AND deleted = 0",
            )
            .bind(ms(now()))
            .bind(scope.as_str())
            .bind(name.as_str())
            .execute(&self.pool)
            .await
            .map_err(|e| map_sqlx(BACKEND, e))?
            .rows_affected(),
            DeleteMode::Destroy => {
                let mut tx = self.pool.begin().await.map_err(|e| map_sqlx(BACKEND, e))?;
                sqlx::query("DELETE FROM coffer_secret_versions WHERE scope = $1 AND name = $2")
                    .bind(scope.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_sqlx(BACKEND, e))?;
                let n = sqlx::query("DELETE FROM coffer_secrets WHERE scope = $1 AND name = $2")
                    .bind(scope.as_str())
                    .bind(name.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(|e| map_sqlx(BACKEND, e))?
                    .rows_affected();
                tx.commit().await.map_err(|e| map_sqlx(BACKEND, e))?;
                n
            }
            _ => {
                return Err(Error::Unsupported {
                    backend: BACKEND,
                    operation: "this delete mode",
                });
            }
        };
        if affected == 0 {
            return Err(Error::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
                version: None,
            });
        }
        Ok(())
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        self.record_primary_check().await?;
        let primary = i64::from(self.keyring.primary_id());
        let rows: Vec<(String, String, i64, Vec<u8>)> = sqlx::query_as(
            "SELECT scope, name, version, ciphertext FROM coffer_secret_versions WHERE key_id <> $1 LIMIT $2",
        )
        .bind(primary)
        .bind(to_i64(limit.max(1) as u64))
        .fetch_all(&self.pool)
        .await
        .map_err(|e| map_sqlx(BACKEND, e))?;

        let mut tx = self.pool.begin().await.map_err(|e| map_sqlx(BACKEND, e))?;
        let mut rewrapped = 0;
        for (scope, name, version, ciphertext) in rows {
            let moved = self
                .keyring
                .rewrap(&ciphertext, &context(&scope, &name, version as u64))
                .map_err(|source| Error::Crypto {
                    scope: scope.clone(),
                    name: format!("{name} (version {version})"),
                    source,
                })?;
            // Check-and-set on the old envelope: a row changed since it was read is left
            // for the next batch rather than overwritten.
            rewrapped += sqlx::query(
                "UPDATE coffer_secret_versions SET ciphertext = $1, key_id = $2 \
                 WHERE scope = $3 AND name = $4 AND version = $5 AND ciphertext = $6",
            )
            .bind(&moved)
            .bind(primary)
            .bind(&scope)
            .bind(&name)
            .bind(version)
            .bind(&ciphertext)
            .execute(&mut *tx)
            .await
            .map_err(|e| map_sqlx(BACKEND, e))?
            .rows_affected();
        }
        tx.commit().await.map_err(|e| map_sqlx(BACKEND, e))?;
        let remaining: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM coffer_secret_versions WHERE key_id <> $1")
                .bind(primary)
                .fetch_one(&self.pool)
                .await
                .map_err(|e| map_sqlx(BACKEND, e))?;
        Ok(RewrapBatch::new(rewrapped, remaining as u64))
    }
}

/// The names starting with `prefix` are exactly those in `[prefix, upper)`, where
/// `upper` is the prefix with its last byte incremented (names are ASCII; `None`: no
/// upper bound). Comparisons are bytewise, so no `LIKE` wildcard or collation applies.
pub(crate) fn prefix_range(prefix: &str) -> (String, Option<String>) {
    let mut upper = prefix.as_bytes().to_vec();
    while let Some(last) = upper.pop() {
        if last < 0x7f {
            upper.push(last + 1);
            return (prefix.to_owned(), String::from_utf8(upper).ok());
        }
    }
    (prefix.to_owned(), None)
}

async fn tokio_yield() {
    futures::future::ready(()).await;
}

/// Opens `sqlite://PATH` (and `sqlite:PATH`) URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SqliteOpener;

#[async_trait]
impl StoreOpener for SqliteOpener {
    fn schemes(&self) -> &'static [&'static str] {
        &["sqlite"]
    }

    async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        let keyring = options.require_keyring("sqlite")?;
        Ok(Arc::new(SqliteStore::connect(url, keyring).await?))
    }
}
