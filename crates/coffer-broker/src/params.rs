//! Connection parameters: what an agent's user hands over once.

use std::fmt;
use std::path::PathBuf;

use coffer_sql::tls::{MySqlTarget, PgTarget};
use coffer_store::transport::{Protocol, TlsOptions, TlsParamError};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

/// Prepared statements a broker MySQL connection keeps before it is replaced.
pub(crate) const MYSQL_STATEMENT_CACHE: usize = 100;

/// The database kinds the broker speaks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DbKind {
    /// PostgreSQL.
    #[serde(alias = "postgresql")]
    Postgres,
    /// MySQL or MariaDB.
    #[serde(alias = "mariadb")]
    Mysql,
    /// SQLite (a file on the broker's machine).
    Sqlite,
}

impl DbKind {
    /// The name used in info and configuration (`postgres`, `mysql`, `sqlite`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Sqlite => "sqlite",
        }
    }
}

impl fmt::Display for DbKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What calls on a connection may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Mode {
    /// Reading statements only, each in a read-only transaction (the default).
    #[default]
    ReadOnly,
    /// Writes too, one statement per call, each in its own transaction.
    ReadWrite,
}

impl Mode {
    /// `read_only` or `read_write`, by this mode.
    pub(crate) fn pick<T>(self, read_only: T, read_write: T) -> T {
        match self {
            Self::ReadOnly => read_only,
            Self::ReadWrite => read_write,
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::ReadOnly => "read_only",
            Self::ReadWrite => "read_write",
        })
    }
}

/// A database to connect to. The password lives in a [`SecretString`]; `Debug` never
/// shows it.
///
/// ```
/// use coffer_broker::{ConnectionParams, Mode};
///
/// let params = ConnectionParams::postgres("127.0.0.1", "app", "agent_ro", "pa:ss@word".into());
/// assert_eq!(params.mode(), Mode::ReadOnly);
/// assert!(!format!("{params:?}").contains("pa:ss@word"));
///
/// let from_url = ConnectionParams::from_url(&"mysql://u:p%40ss@db:3306/shop".into())?;
/// assert_eq!(from_url.user(), Some("u"));
/// # Ok::<(), coffer_broker::BrokerError>(())
/// ```
#[derive(Clone)]
pub struct ConnectionParams {
    pub(crate) kind: DbKind,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) database: Option<String>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<SecretString>,
    pub(crate) path: Option<PathBuf>,
    pub(crate) mode: Mode,
    pub(crate) allow_privileged: bool,
    pub(crate) max_result_bytes: Option<usize>,
    pub(crate) tls: TlsOptions,
}

impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionParams")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("path", &self.path)
            .field("mode", &self.mode)
            .field("allow_privileged", &self.allow_privileged)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConnectionParams {
    fn server(
        kind: DbKind,
        host: &str,
        database: &str,
        user: &str,
        password: SecretString,
    ) -> Self {
        Self {
            kind,
            host: Some(host.to_owned()),
            port: None,
            database: Some(database.to_owned()),
            user: Some(user.to_owned()),
            password: Some(password),
            path: None,
            mode: Mode::ReadOnly,
            allow_privileged: false,
            max_result_bytes: None,
            tls: TlsOptions::default(),
        }
    }

    /// A Postgres database.
    pub fn postgres(host: &str, database: &str, user: &str, password: SecretString) -> Self {
        Self::server(DbKind::Postgres, host, database, user, password)
    }

    /// A MySQL or MariaDB database.
    pub fn mysql(host: &str, database: &str, user: &str, password: SecretString) -> Self {
        Self::server(DbKind::Mysql, host, database, user, password)
    }

    /// A SQLite file.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            kind: DbKind::Sqlite,
            host: None,
            port: None,
            database: None,
            user: None,
            password: None,
            path: Some(path.into()),
            mode: Mode::ReadOnly,
            allow_privileged: false,
            max_result_bytes: None,
            tls: TlsOptions::default(),
        }
    }

    /// Parameters from a URL (`postgres://`, `postgresql://`, `mysql://`, `mariadb://`,
    /// `sqlite://PATH`), with user and password percent-decoded. The URL is a secret.
    pub fn from_url(url: &SecretString) -> Result<Self> {
        let text = url.expose_secret();
        let invalid = |reason: &str| BrokerError::params("url", reason);
        let scheme = text
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if scheme == "sqlite" {
            let rest = text
                .strip_prefix("sqlite://")
                .or_else(|| text.strip_prefix("sqlite:"))
                .unwrap_or_default();
            let path = rest.split('?').next().unwrap_or_default();
            let path = percent_encoding::percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| invalid("holds a path that is not UTF-8"))?;
            if path.is_empty() {
                return Err(invalid("names no SQLite file"));
            }
            return Ok(Self::sqlite(path.into_owned()));
        }
        let kind = match scheme.as_str() {
            "postgres" | "postgresql" => DbKind::Postgres,
            "mysql" | "mariadb" => DbKind::Mysql,
            _ => {
                return Err(invalid(
                    "must start with postgres://, postgresql://, mysql://, mariadb:// or sqlite://",
                ));
            }
        };
        // Parsed without echoing the URL anywhere.
        let parsed = url::Url::parse(text).map_err(|_| invalid("is not a valid URL"))?;
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid("holds a user or password that is not UTF-8"))
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("names no host"))?;
        let user = (!parsed.username().is_empty())
            .then(|| decode(parsed.username()))
            .transpose()?;
        let password = parsed
            .password()
            .map(decode)
            .transpose()?
            .map(SecretString::from);
        let database = parsed
            .path()
            .strip_prefix('/')
            .filter(|d| !d.is_empty())
            .map(decode)
            .transpose()?;
        let protocol = protocol_of(kind);
        let mut tls = TlsOptions::default();
        for (key, value) in parsed.query_pairs() {
            if !tls.take_param(protocol, &key, &value).map_err(tls_error)? {
                let [mode, ca, cert, key_param, cleartext] = protocol.param_names();
                return Err(BrokerError::params(
                    "url",
                    format!(
                        "has the unknown parameter {:?}; a {kind} URL takes {mode}, {ca}, \
                         {cert}, {key_param} and {cleartext}",
                        key.chars().take(64).collect::<String>()
                    ),
                ));
            }
        }
        Ok(Self {
            kind,
            host: Some(host.trim_matches(['[', ']']).to_owned()),
            port: parsed.port(),
            database,
            user,
            password,
            path: None,
            mode: Mode::ReadOnly,
            allow_privileged: false,
            max_result_bytes: None,
            tls,
        })
    }

    /// The port (default: the server's usual one).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// What calls may do (default [`Mode::ReadOnly`]).
    #[must_use]
    pub fn with_mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self
    }

    /// Accepts a read-only Postgres or MySQL connection whose role holds privileges
    /// that reach past a read-only transaction (superuser, server files, other sessions,
    /// `FILE`, …), which `connect` otherwise refuses. Default `false`: give the broker a
    /// role that can only read instead.
    #[must_use]
    pub fn allow_privileged(mut self, allow: bool) -> Self {
        self.allow_privileged = allow;
        self
    }

    /// This connection's byte limit per query, instead of [`Limits::byte_limit`].
    ///
    /// [`Limits::byte_limit`]: crate::Limits::byte_limit
    #[must_use]
    pub fn max_result_bytes(mut self, bytes: usize) -> Self {
        self.max_result_bytes = Some(bytes);
        self
    }

    /// TLS settings for a Postgres or MySQL server (see [`coffer_store::transport`]):
    /// unset, the mode is `verify-full` / `VERIFY_IDENTITY` to a host off loopback.
    #[must_use]
    pub fn tls(mut self, tls: TlsOptions) -> Self {
        self.tls = tls;
        self
    }

    /// The TLS settings as written.
    pub fn tls_options(&self) -> &TlsOptions {
        &self.tls
    }

    /// The database kind.
    pub fn kind(&self) -> DbKind {
        self.kind
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The user, if any.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The strings that must never appear in output: the password.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.password
            .as_ref()
            .map(|p| p.expose_secret())
            .into_iter()
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match self.kind {
            DbKind::Sqlite => {
                if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                    return Err(BrokerError::params("path", "is required for SQLite"));
                }
            }
            DbKind::Postgres | DbKind::Mysql => {
                let host = self.host.as_deref().unwrap_or_default();
                if host.is_empty() || host.len() > 253 || host.contains(['/', '?', '#', '@', ' ']) {
                    return Err(BrokerError::params(
                        "host",
                        "must be a host name or IP address",
                    ));
                }
                if self.user.as_deref().is_none_or(str::is_empty) {
                    return Err(BrokerError::params("user", "is required"));
                }
            }
        }
        Ok(())
    }

    /// Postgres statements stay unnamed (no statement cache): an agent's database is often
    /// behind a transaction pooler (PgBouncer, Supavisor) that keeps no prepared statements
    /// between transactions, and a cached `SELECT *` fails with "cached plan must not change
    /// result type" once its table changes. It costs one round trip per call.
    pub(crate) fn pg_target(&self) -> Result<PgTarget> {
        let mut o = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host(self.host.as_deref().unwrap_or("localhost"))
            .port(self.port.unwrap_or(5432))
            .username(self.user.as_deref().unwrap_or_default())
            .application_name("coffer-broker")
            .statement_cache_capacity(0);
        if let Some(db) = &self.database {
            o = o.database(db);
        }
        if let Some(p) = &self.password {
            o = o.password(p.expose_secret());
        }
        // sqlx also takes a password from PGPASSWORD.
        let has_password = self.password.is_some() || std::env::var_os("PGPASSWORD").is_some();
        PgTarget::new(o, &self.tls, has_password).map_err(target_error)
    }

    /// MySQL keeps prepared statements per connection (see `broker::recycle_when_cache_full`).
    pub(crate) fn mysql_target(&self) -> Result<MySqlTarget> {
        let mut o = sqlx::mysql::MySqlConnectOptions::new()
            .host(self.host.as_deref().unwrap_or("localhost"))
            .port(self.port.unwrap_or(3306))
            .username(self.user.as_deref().unwrap_or_default())
            .statement_cache_capacity(MYSQL_STATEMENT_CACHE);
        if let Some(db) = &self.database {
            o = o.database(db);
        }
        if let Some(p) = &self.password {
            o = o.password(p.expose_secret());
        }
        MySqlTarget::new(o, &self.tls, self.password.is_some()).map_err(target_error)
    }
}

/// The TLS parameter spelling of `kind` (Postgres's or MySQL's).
pub(crate) fn protocol_of(kind: DbKind) -> Protocol {
    match kind {
        DbKind::Mysql => Protocol::Mysql,
        _ => Protocol::Postgres,
    }
}

/// A TLS parameter error as the broker reports it.
pub(crate) fn tls_error(e: TlsParamError) -> BrokerError {
    BrokerError::InvalidParams {
        field: "tls",
        reason: e.to_string(),
    }
}

fn target_error(e: coffer_store::Error) -> BrokerError {
    match e {
        coffer_store::Error::Config { message, .. } => BrokerError::params("tls", message),
        other => BrokerError::params("tls", other.to_string()),
    }
}
