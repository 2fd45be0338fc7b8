//! The row codec: a Vault secret's name from a coffer (scope, name), and a row of
//! `vault.secrets` joined with coffer's metadata table into [`SecretMeta`].

use coffer_envelope::Keyring;
use coffer_store::backend::verify_head;
use coffer_store::{Error, Result, Scope, SecretKind, SecretMeta, SecretName};

use crate::BACKEND;

/// The Vault secret name of a coffer secret: `{scope}/{name}`.
///
/// Scopes cannot contain `/`, so the first `/` always separates the two and the mapping
/// is one to one.
///
/// ```
/// use coffer_store::{Scope, SecretName};
/// let n = coffer_supabase::vault_name(&Scope::new("tenant-a")?, &SecretName::new("llm/openai")?);
/// assert_eq!(n, "tenant-a/llm/openai");
/// # Ok::<(), coffer_store::Error>(())
/// ```
pub fn vault_name(scope: &Scope, name: &SecretName) -> String {
    format!("{scope}/{name}")
}

/// How coffer's (scope, name) map onto Vault secret names in one store: `{scope}/{name}`
/// ([`vault_name`]), except in the scope configured to hold the project's secrets whose
/// names have no `/` (`?unscoped=SCOPE`, [`SupabaseOptions::unscoped`](crate::SupabaseOptions::unscoped)),
/// where the Vault name is the coffer name itself.
#[derive(Debug, Clone, Default)]
pub(crate) struct Naming {
    pub(crate) unscoped: Option<Scope>,
}

impl Naming {
    /// Whether `scope` is the one holding names without a `/`.
    pub(crate) fn is_bare(&self, scope: &Scope) -> bool {
        self.unscoped.as_ref() == Some(scope)
    }

    /// What every Vault name of `scope` starts with.
    pub(crate) fn prefix(&self, scope: &Scope) -> String {
        if self.is_bare(scope) {
            String::new()
        } else {
            format!("{scope}/")
        }
    }

    /// The Vault name of (scope, name); in the unscoped scope a name with a `/` (it would
    /// read as another scope's) and the keyring's secret are refused.
    pub(crate) fn vault_name(&self, scope: &Scope, name: &SecretName) -> Result<String> {
        if !self.is_bare(scope) {
            return Ok(vault_name(scope, name));
        }
        if name.as_str().contains('/') {
            return Err(Error::InvalidInput {
                field: "name",
                reason: format!(
                    "scope {scope} holds the project's Vault secrets without a scope \
                     (?unscoped={scope}), whose names have no '/'; {name:?} would be \
                     scope {:?}'s",
                    name.as_str().split('/').next().unwrap_or_default()
                ),
            });
        }
        if name.as_str() == crate::KEYRING_SECRET_NAME {
            return Err(Error::InvalidInput {
                field: "name",
                reason: format!(
                    "{:?} is the Vault secret that keeps coffer's keyring",
                    crate::KEYRING_SECRET_NAME
                ),
            });
        }
        Ok(name.as_str().to_owned())
    }
}

/// Takes the transaction-scoped lock on the Vault secret named `vault_name`, held until
/// the transaction ends: writers of one name (coffer's writes, rewraps and keyring
/// updates) run one at a time, and each reads the previous one's commit after it.
///
/// An advisory lock, not `SELECT … FOR UPDATE`: row locks need the UPDATE privilege on
/// `vault.secrets`, which Supabase does not give its `postgres` role (only SELECT and
/// DELETE; values change through `vault.update_secret`). It also covers a name that has
/// no row yet, so two creators queue instead of one failing on the unique index. Writers
/// outside coffer (the dashboard, plain SQL) do not take it; see the crate docs.
pub(crate) async fn lock_name(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    vault_name: &str,
) -> Result<()> {
    // One key space of its own: 64 bits of hashtextextended of the name, seeded.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 7213))")
        .bind(vault_name)
        .execute(&mut **tx)
        .await
        .map(drop)
        .map_err(|e| coffer_sql::support::map_sqlx(BACKEND, e))
}

/// The columns of a Vault secret joined with coffer's metadata.
#[derive(sqlx::FromRow)]
pub(crate) struct VaultRow {
    pub(crate) vault_name: String,
    pub(crate) description: String,
    pub(crate) v_created: i64,
    pub(crate) v_updated: i64,
    pub(crate) version: Option<i64>,
    pub(crate) provider: Option<String>,
    pub(crate) kind: Option<String>,
    pub(crate) tags: Option<String>,
    pub(crate) env_name: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) active: Option<bool>,
    pub(crate) m_created: Option<i64>,
    pub(crate) m_updated: Option<i64>,
    pub(crate) last_used_at: Option<i64>,
    pub(crate) usage_count: Option<i64>,
    pub(crate) key_id: Option<i64>,
    pub(crate) mac: Option<Vec<u8>>,
}

/// `SELECT` of [`VaultRow`] (and `$extra` columns) from `$from s` (vault.secrets or
/// vault.decrypted_secrets) joined with coffer's metadata.
macro_rules! select_row {
    ($from:literal $(, $extra:literal)?) => {
        concat!(
            "SELECT s.name AS vault_name, s.description, \
             (extract(epoch FROM s.created_at) * 1000)::bigint AS v_created, \
             (extract(epoch FROM s.updated_at) * 1000)::bigint AS v_updated, \
             m.version, m.provider, m.kind, m.tags, m.env_name, m.expires_at, m.active, \
             m.created_at AS m_created, m.updated_at AS m_updated, m.last_used_at, m.usage_count, m.key_id, m.mac ",
            $($extra,)?
            " FROM ",
            $from,
            " s LEFT JOIN coffer_vault_meta m ON m.vault_id = s.id "
        )
    };
}

pub(crate) fn millis(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

impl VaultRow {
    /// The metadata, checked against its MAC when values are sealed (`keyring`): a row
    /// changed, removed or written without the key is [`Error::Tampered`].
    pub(crate) fn into_checked(
        self,
        scope: Scope,
        name: SecretName,
        keyring: Option<&Keyring>,
    ) -> Result<SecretMeta> {
        let mac = self.mac.clone();
        let meta = self.into_meta(scope, name)?;
        if let Some(keyring) = keyring {
            verify_head(keyring, &meta, false, mac.as_deref())?;
        }
        Ok(meta)
    }

    pub(crate) fn into_meta(self, scope: Scope, name: SecretName) -> Result<SecretMeta> {
        let corrupt = |column: &str| {
            Error::backend(
                BACKEND,
                format!("metadata of {scope}/{name} has an invalid {column}"),
            )
        };
        let mut meta = SecretMeta::new(scope.clone(), name.clone(), &Default::default());
        meta.description = Some(self.description).filter(|d| !d.is_empty());
        meta.created_at = millis(self.m_created.unwrap_or(self.v_created));
        meta.updated_at = millis(self.m_updated.unwrap_or(self.v_updated));
        if let Some(version) = self.version {
            meta.version = u64::try_from(version).map_err(|_| corrupt("version"))?;
            meta.provider = self.provider;
            meta.kind = match self.kind {
                Some(k) => k.parse::<SecretKind>().map_err(|_| corrupt("kind"))?,
                None => SecretKind::Other,
            };
            meta.tags = match self.tags {
                Some(t) => serde_json::from_str(&t).map_err(|_| corrupt("tags"))?,
                None => Vec::new(),
            };
            meta.env_name = self.env_name;
            meta.expires_at = self.expires_at.map(millis);
            meta.active = self.active.unwrap_or(true);
            meta.last_used_at = self.last_used_at.map(millis);
            meta.usage_count = self
                .usage_count
                .and_then(|c| u64::try_from(c).ok())
                .unwrap_or(0);
            meta.key_id = self.key_id.and_then(|k| u32::try_from(k).ok());
        }
        Ok(meta)
    }
}

pub(crate) use select_row;
