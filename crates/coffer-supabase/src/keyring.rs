//! [`SupabaseKeyring`]: the keyring kept in the project, as one vault secret.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_sql::support::map_sqlx;
use coffer_sql::tls::CleartextGuard;
use coffer_store::keys::{KeyringStorage, StoredKeyring};
use coffer_store::{Error, Result};
use sqlx::PgPool;

use crate::BACKEND;

/// The name of the vault secret that holds the keyring kept in the project. It has no
/// `/`, so no `scope/name` of a secret can be it.
pub const KEYRING_SECRET_NAME: &str = "coffer-keyring";

/// What the keyring secret's description starts with; the generation follows.
const GENERATION_PREFIX: &str = "coffer keyring, generation ";

/// The sealed keyring of a Supabase store, as the vault secret [`KEYRING_SECRET_NAME`]:
/// the document (base64) is the secret, so Supabase Vault encrypts it at rest as well,
/// and its description holds the generation. A write takes a transaction-scoped lock on
/// the secret's name and checks the generation first, so of two instances rotating at
/// once exactly one wins.
pub struct SupabaseKeyring {
    pool: PgPool,
    _guard: Option<Arc<CleartextGuard>>,
}

impl std::fmt::Debug for SupabaseKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseKeyring")
            .field("secret", &KEYRING_SECRET_NAME)
            .finish_non_exhaustive()
    }
}

impl SupabaseKeyring {
    /// The keyring secret of the project behind `pool` (keeping `guard`, the relay the
    /// pool may connect through, alive as long as the pool).
    pub(crate) fn new(pool: PgPool, guard: Option<Arc<CleartextGuard>>) -> Self {
        Self {
            pool,
            _guard: guard,
        }
    }

    /// Connects to a Supabase store URL (as `SupabaseVaultStore::connect`).
    pub async fn connect_url(url: &str) -> Result<Self> {
        let connected = crate::store::connect_pool(url).await?;
        Ok(Self::new(connected.pool, connected.guard))
    }
}

fn generation_of(description: &str) -> Result<u64> {
    description
        .strip_prefix(GENERATION_PREFIX)
        .and_then(|g| g.parse().ok())
        .ok_or_else(|| {
            Error::config(format!(
                "supabase: the vault secret {KEYRING_SECRET_NAME:?} was not written by coffer \
                 (its description names no generation)"
            ))
        })
}

fn sql(e: sqlx::Error) -> Error {
    map_sqlx(BACKEND, e)
}

#[async_trait]
impl KeyringStorage for SupabaseKeyring {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn read_keyring(&self) -> Result<Option<StoredKeyring>> {
        let row: Option<(Option<String>, String)> = sqlx::query_as(
            "SELECT decrypted_secret, description FROM vault.decrypted_secrets WHERE name = $1",
        )
        .bind(KEYRING_SECRET_NAME)
        .fetch_optional(&self.pool)
        .await
        .map_err(sql)?;
        let Some((secret, description)) = row else {
            return Ok(None);
        };
        let document = secret
            .and_then(|s| STANDARD.decode(s.trim()).ok())
            .ok_or_else(|| {
                Error::config(format!(
                    "supabase: the vault secret {KEYRING_SECRET_NAME:?} does not decrypt to a \
                     keyring document"
                ))
            })?;
        Ok(Some(StoredKeyring {
            document,
            generation: generation_of(&description)?,
        }))
    }

    async fn write_keyring(&self, document: &[u8], expected: Option<u64>) -> Result<u64> {
        let encoded = STANDARD.encode(document);
        let mut tx = self.pool.begin().await.map_err(sql)?;
        crate::row::lock_name(&mut tx, KEYRING_SECRET_NAME).await?;
        let current: Option<(String, String)> =
            sqlx::query_as("SELECT id::text, description FROM vault.secrets WHERE name = $1")
                .bind(KEYRING_SECRET_NAME)
                .fetch_optional(&mut *tx)
                .await
                .map_err(sql)?;
        let found = current
            .as_ref()
            .map(|(_, d)| generation_of(d))
            .transpose()?;
        if found != expected {
            return Err(Error::KeyringConflict {
                backend: BACKEND,
                found,
            });
        }
        let generation = found.unwrap_or(0) + 1;
        let description = format!("{GENERATION_PREFIX}{generation}");
        match current {
            Some((id, _)) => {
                sqlx::query("SELECT vault.update_secret($1::uuid, $2, NULL, $3)")
                    .bind(&id)
                    .bind(&encoded)
                    .bind(&description)
                    .execute(&mut *tx)
                    .await
                    .map_err(sql)?;
            }
            None => {
                let created = sqlx::query("SELECT vault.create_secret($1, $2, $3)")
                    .bind(&encoded)
                    .bind(KEYRING_SECRET_NAME)
                    .bind(&description)
                    .execute(&mut *tx)
                    .await;
                match created {
                    Ok(_) => {}
                    Err(sqlx::Error::Database(db)) if db.code().as_deref() == Some("23505") => {
                        drop(tx);
                        return Err(Error::KeyringConflict {
                            backend: BACKEND,
                            found: self.read_keyring().await?.map(|k| k.generation),
                        });
                    }
                    Err(e) => return Err(sql(e)),
                }
            }
        }
        tx.commit().await.map_err(sql)?;
        Ok(generation)
    }
}
