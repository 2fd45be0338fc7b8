use std::error::Error as StdError;

use chrono::{DateTime, Utc};

/// A boxed error from a backend or a driver.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// Everything a [`SecretStore`](crate::SecretStore) can fail with.
///
/// Messages name the scope, the secret and what went wrong; they never contain a secret
/// value, a password, a token or a full connection URL. Backends keep private error
/// types and convert them into this one (object_store's pattern).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// No live secret (or no such version) exists.
    #[error("secret {scope}/{name}{} not found", version.map(|v| format!(" version {v}")).unwrap_or_default())]
    NotFound {
        /// The scope asked for.
        scope: String,
        /// The name asked for.
        name: String,
        /// The version asked for, if any.
        version: Option<u64>,
    },
    /// A create-only write found a live secret.
    #[error("secret {scope}/{name} already exists")]
    AlreadyExists {
        /// The scope.
        scope: String,
        /// The name.
        name: String,
    },
    /// A check-and-set write expected another version.
    #[error("secret {scope}/{name}: expected version {expected}, found {}", match actual { Some(v) => format!("version {v}"), None => "no live secret".to_owned() })]
    Conflict {
        /// The scope.
        scope: String,
        /// The name.
        name: String,
        /// The version the write expected.
        expected: u64,
        /// The current latest live version, if any.
        actual: Option<u64>,
    },
    /// The secret's `expires_at` has passed; `get` refuses to return it.
    #[error("secret {scope}/{name} expired at {expired_at}")]
    Expired {
        /// The scope.
        scope: String,
        /// The name.
        name: String,
        /// When it expired.
        expired_at: DateTime<Utc>,
    },
    /// The secret is marked inactive; `get` refuses to return it.
    #[error("secret {scope}/{name} is inactive")]
    Inactive {
        /// The scope.
        scope: String,
        /// The name.
        name: String,
    },
    /// A lookup that must find one secret found none ([`SecretStoreExt::find`](crate::SecretStoreExt::find)).
    #[error("scope {scope}: no active secret matches {what}")]
    NoMatch {
        /// The scope searched.
        scope: String,
        /// What was looked for (`provider openai, kind api_key`).
        what: String,
    },
    /// A lookup that must find one secret found several ([`SecretStoreExt::find`](crate::SecretStoreExt::find)).
    #[error("scope {scope}: {} active secrets match {what}: {}; deactivate all but one, or name the one to use", names.len(), names.join(", "))]
    Ambiguous {
        /// The scope searched.
        scope: String,
        /// What was looked for (`provider openai, kind api_key`).
        what: String,
        /// The names that matched.
        names: Vec<String>,
    },
    /// A scope, name or prefix breaks a naming rule.
    #[error("invalid {what} {value:?}: {rule}")]
    InvalidName {
        /// `"scope"`, `"secret name"` or `"prefix"`.
        what: &'static str,
        /// The rejected text (a name, never a value), cut to 80 characters.
        value: String,
        /// The rule it breaks.
        rule: &'static str,
    },
    /// A value or a metadata field is not acceptable.
    #[error("invalid {field}: {reason}")]
    InvalidInput {
        /// The field (`value`, `tags`, `env_name`, …).
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The backend refused the caller's credentials for this operation.
    #[error("{backend}: permission denied{}", detail(message))]
    PermissionDenied {
        /// The backend.
        backend: &'static str,
        /// What was refused.
        message: String,
    },
    /// The backend cannot be reached or is not ready (sealed, restarting, timed out).
    /// Transient: a retry may help.
    #[error("{backend} unavailable{}", detail(message))]
    Unavailable {
        /// The backend.
        backend: &'static str,
        /// What happened.
        message: String,
        /// The underlying error, already stripped of credentials.
        #[source]
        source: Option<BoxError>,
    },
    /// The stored envelope did not open (wrong key, moved row, tampering) or a key is missing.
    #[error("secret {scope}/{name} could not be decrypted: {source}")]
    Crypto {
        /// The scope.
        scope: String,
        /// The name.
        name: String,
        /// The envelope error (opaque for authentication failures).
        #[source]
        source: coffer_envelope::Error,
    },
    /// The stored metadata that decides what a read returns (latest version, deleted,
    /// active, expiry, where it lives) failed its MAC: someone changed the row without the
    /// key, or it was written before coffer authenticated metadata. No value is returned.
    #[error(
        "secret {scope}/{name}: stored metadata failed its integrity check ({reason}); no value was returned"
    )]
    Tampered {
        /// The scope.
        scope: String,
        /// The name.
        name: String,
        /// What did not match, and what to do about it (never a value).
        reason: String,
    },
    /// The keyring kept in the store ([`SharedKeyring`](crate::keys::SharedKeyring)) was
    /// changed by another instance since this one read it: its change was not written.
    /// This instance has reloaded the keyring; look at it again before retrying.
    #[error("{backend}: the keyring kept in this store changed while this change was made (another instance rotated, retired or re-keyed it); reloaded generation {}, nothing was written", found.map(|g| g.to_string()).unwrap_or_else(|| "none".to_owned()))]
    KeyringConflict {
        /// The backend that keeps the keyring.
        backend: &'static str,
        /// The generation found in the store, if any keyring is kept there.
        found: Option<u64>,
    },
    /// The store refused a write under a key it has retired: this instance's keyring is
    /// older than the store's (another instance rotated and retired). The layer
    /// [`KeyringReload`](crate::keys::KeyringReload) reloads and retries once.
    #[error("{backend}: {message}")]
    KeyringOutOfDate {
        /// The backend.
        backend: &'static str,
        /// What was refused, and how to fix it.
        message: String,
    },
    /// The store is misconfigured (bad URL, missing keyring, unknown scheme).
    #[error("configuration: {message}")]
    Config {
        /// What is wrong and, where possible, how to fix it.
        message: String,
    },
    /// The backend lacks the operation (see [`Capabilities`](crate::Capabilities)).
    #[error("{backend} does not support {operation}")]
    Unsupported {
        /// The backend.
        backend: &'static str,
        /// The operation.
        operation: &'static str,
    },
    /// A rate limit on the scope (`layer::RateLimitStore`, feature `rate-limit`) refused the call.
    /// Transient: retry after `retry_after`.
    #[error("scope {scope}: rate limit exceeded, retry in {} ms", retry_after.as_millis())]
    RateLimited {
        /// The scope over its limit.
        scope: String,
        /// How long until a call would be let through.
        retry_after: std::time::Duration,
    },
    /// No audit sink (`layer::AuditSink`, feature `audit`) recorded the operation, so it was refused
    /// (fail-closed): a read returns no value; a write was not attempted.
    #[error("{operation} on {scope}/{name} refused: the audit event was not recorded ({message})")]
    Audit {
        /// The operation (`get`, `put`, …).
        operation: &'static str,
        /// The scope.
        scope: String,
        /// The secret, or `*` for a listing.
        name: String,
        /// Why the sinks failed.
        message: String,
    },
    /// Any other backend failure.
    #[error("{backend} error: {source}")]
    Backend {
        /// The backend.
        backend: &'static str,
        /// The underlying error, already stripped of credentials.
        #[source]
        source: BoxError,
    },
}

fn detail(message: &str) -> String {
    if message.is_empty() {
        String::new()
    } else {
        format!(": {message}")
    }
}

impl Error {
    /// Whether a retry may succeed (OpenDAL's `is_temporary`): [`Error::Unavailable`]
    /// and [`Error::RateLimited`].
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Unavailable { .. } | Error::RateLimited { .. })
    }

    /// Whether this is [`Error::NotFound`] (or [`Error::NoMatch`], a lookup that found nothing).
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. } | Error::NoMatch { .. })
    }

    /// A short stable name of the variant, for logs, metrics and audit events.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "not_found",
            Error::AlreadyExists { .. } => "already_exists",
            Error::Conflict { .. } => "conflict",
            Error::Expired { .. } => "expired",
            Error::Inactive { .. } => "inactive",
            Error::NoMatch { .. } => "no_match",
            Error::Ambiguous { .. } => "ambiguous",
            Error::InvalidName { .. } => "invalid_name",
            Error::InvalidInput { .. } => "invalid_input",
            Error::PermissionDenied { .. } => "permission_denied",
            Error::Unavailable { .. } => "unavailable",
            Error::Crypto { .. } => "crypto",
            Error::Tampered { .. } => "tampered",
            Error::KeyringConflict { .. } => "keyring_conflict",
            Error::KeyringOutOfDate { .. } => "keyring_out_of_date",
            Error::Config { .. } => "config",
            Error::Unsupported { .. } => "unsupported",
            Error::RateLimited { .. } => "rate_limited",
            Error::Audit { .. } => "audit",
            Error::Backend { .. } => "backend",
        }
    }

    /// Whether this error may come from a keyring older than the store's: an envelope or a
    /// head MAC under a key this keyring does not hold, a write refused under a retired
    /// key. [`KeyringReload`](crate::keys::KeyringReload) reloads the keyring kept in the
    /// store on these (rate-limited) and retries once.
    pub fn may_be_stale_keyring(&self) -> bool {
        match self {
            Error::Crypto { source, .. } => {
                matches!(source, coffer_envelope::Error::UnknownKey { .. })
            }
            Error::Tampered { .. } | Error::KeyringOutOfDate { .. } => true,
            _ => false,
        }
    }

    /// A [`Error::Config`] with `message`.
    pub fn config(message: impl Into<String>) -> Self {
        Error::Config {
            message: message.into(),
        }
    }

    /// A [`Error::Backend`] wrapping `source`.
    pub fn backend(backend: &'static str, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            backend,
            source: source.into(),
        }
    }
}

/// `Result` with the store [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
