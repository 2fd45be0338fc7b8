/// Everything the broker can fail with.
///
/// No message ever holds a password or a connection URL: driver errors are rewritten
/// (see [`BrokerError::Database`]) and every credential the broker knows is scrubbed from
/// them before they leave.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BrokerError {
    /// No such connection for this owner: never existed, another owner's, disconnected,
    /// expired, or not an id at all. All the same on purpose.
    #[error("connection not found")]
    NotFound,
    /// Connection parameters that cannot work.
    #[error("connection parameters: {field} {reason}")]
    InvalidParams {
        /// The parameter.
        field: &'static str,
        /// What was wrong.
        reason: String,
    },
    /// The statement was refused by the connection's safety policy before it ran.
    #[error("statement refused: {reason}")]
    Rejected {
        /// Why.
        reason: String,
    },
    /// A read-only connection was refused at connect: its role holds a privilege that
    /// reaches past a read-only transaction (superuser, server files, other sessions,
    /// `FILE`, …). `reason` names it and shows how to make a role that only reads.
    #[error("connection refused: {reason}")]
    Privileged {
        /// Which privilege, and what to do.
        reason: String,
    },
    /// The statement ran longer than the timeout and was stopped.
    #[error("the statement was stopped after the {timeout_ms} ms timeout")]
    Timeout {
        /// The timeout.
        timeout_ms: u64,
    },
    /// The database refused or failed the statement; `message` is the server's message
    /// with credentials scrubbed.
    #[error("database error{}: {message}", code.as_deref().map(|c| format!(" {c}")).unwrap_or_default())]
    Database {
        /// The SQLSTATE or driver code, where there is one.
        code: Option<String>,
        /// The scrubbed message.
        message: String,
    },
    /// The database could not be reached.
    #[error("cannot connect: {message}")]
    Unavailable {
        /// The scrubbed reason.
        message: String,
    },
    /// A limit of the broker (connections per owner, …) was reached.
    #[error("limit reached: {reason}")]
    Limit {
        /// Which limit.
        reason: String,
    },
    /// A named connection's configuration is wrong.
    #[error("connection {name:?}: {key}: {reason}")]
    Config {
        /// The connection's name.
        name: String,
        /// The key (`host`, `credentialsEnv`, …).
        key: String,
        /// What was wrong.
        reason: String,
    },
    /// The secret store failed (named connections from secrets, the registry).
    #[error(transparent)]
    Store(#[from] coffer_store::Error),
    /// The broker is shutting down.
    #[error("the broker is shut down")]
    ShutDown,
}

impl BrokerError {
    pub(crate) fn params(field: &'static str, reason: impl Into<String>) -> Self {
        Self::InvalidParams {
            field,
            reason: reason.into(),
        }
    }
}

impl From<coffer_store::transport::DatabaseUrlError> for BrokerError {
    fn from(e: coffer_store::transport::DatabaseUrlError) -> Self {
        Self::InvalidParams {
            field: e.field,
            reason: e.reason,
        }
    }
}

/// `Result` with [`BrokerError`].
pub type Result<T, E = BrokerError> = std::result::Result<T, E>;

/// A failed connect, in words a person can act on where TLS or the cleartext guard was
/// the cause (host, step, the parameter that fixes it); other database errors (a wrong
/// password, an unknown database) as the server said them. No secret survives.
pub(crate) fn connect_error<O>(
    target: &coffer_sql::tls::Target<O>,
    e: sqlx::Error,
    secrets: &[&str],
) -> BrokerError {
    let transport = coffer_sql::tls::refused_by_transport(&e)
        || matches!(
            e,
            sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::PoolTimedOut
        );
    if transport {
        BrokerError::Unavailable {
            message: scrub(target.describe(&e), secrets),
        }
    } else {
        from_sqlx(e, secrets)
    }
}

/// Rewrites a driver error so that none of `secrets` (and no URL) survives in it.
pub(crate) fn from_sqlx(e: sqlx::Error, secrets: &[&str]) -> BrokerError {
    let scrub = |text: String| scrub(text, secrets);
    match e {
        sqlx::Error::Database(db) => BrokerError::Database {
            code: db.code().map(|c| c.into_owned()),
            message: scrub(db.message().to_owned()),
        },
        sqlx::Error::Io(io) => BrokerError::Unavailable {
            message: scrub(io.to_string()),
        },
        sqlx::Error::Tls(_) => BrokerError::Unavailable {
            message: "TLS handshake failed".into(),
        },
        sqlx::Error::PoolTimedOut => BrokerError::Unavailable {
            message: "timed out waiting for a connection".into(),
        },
        sqlx::Error::PoolClosed => BrokerError::ShutDown,
        sqlx::Error::Protocol(m) => BrokerError::Database {
            code: None,
            message: scrub(format!("protocol error: {m}")),
        },
        sqlx::Error::Configuration(_) => BrokerError::params(
            "url",
            "is not a valid connection configuration (details withheld: they may hold credentials)",
        ),
        sqlx::Error::ColumnDecode { index, .. } => BrokerError::Database {
            code: None,
            message: scrub(format!("cannot decode column {index}")),
        },
        other => BrokerError::Database {
            code: None,
            message: scrub(other.to_string()),
        },
    }
}

/// `text` with every non-empty secret, and its percent-encoded form, replaced.
pub(crate) fn scrub(mut text: String, secrets: &[&str]) -> String {
    for s in secrets.iter().filter(|s| s.len() >= 3) {
        if text.contains(s) {
            text = text.replace(s, "[REDACTED]");
        }
        let encoded = percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC)
            .to_string();
        if text.contains(&encoded) {
            text = text.replace(&encoded, "[REDACTED]");
        }
    }
    // URLs with credentials: drop the userinfo wherever one appears.
    for scheme in [
        "postgres://",
        "postgresql://",
        "mysql://",
        "mariadb://",
        "sqlite:",
    ] {
        while let Some(at) = text.find(scheme) {
            let end = text[at..]
                .find(char::is_whitespace)
                .map_or(text.len(), |e| at + e);
            text.replace_range(at..end, "[URL]");
        }
    }
    text
}
