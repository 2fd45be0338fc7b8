//! Database connection URLs built from parts, with user and password percent-encoded.

use std::fmt;

use coffer_store::transport::{Protocol, TlsMode, TlsOptions, is_local};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use secrecy::{ExposeSecret as _, SecretString};

use crate::{Error, Result};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded in
/// users, passwords and database names: `@ : / ? # %` and the rest can never end a part
/// early or be read as an escape.
pub(crate) const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same, but `/` kept: for SQLite file paths.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// The kind of database a [`DatabaseUrl`] points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DatabaseKind {
    /// PostgreSQL: `postgresql://`, port 5432.
    Postgres,
    /// MySQL or MariaDB: `mysql://`, port 3306.
    Mysql,
    /// MongoDB: `mongodb://`, port 27017.
    Mongodb,
    /// SQLite: `sqlite://PATH`.
    Sqlite,
}

impl DatabaseKind {
    /// The URL scheme.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            Self::Mysql => "mysql",
            Self::Mongodb => "mongodb",
            Self::Sqlite => "sqlite",
        }
    }

    /// The name that goes in `DATABASE_TYPE` (the scheme).
    pub fn type_name(self) -> &'static str {
        self.scheme()
    }

    /// The server's usual port (`None` for SQLite).
    pub fn default_port(self) -> Option<u16> {
        match self {
            Self::Postgres => Some(5432),
            Self::Mysql => Some(3306),
            Self::Mongodb => Some(27017),
            Self::Sqlite => None,
        }
    }
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.scheme())
    }
}

/// A database connection URL from its parts. [`to_url`](Self::to_url) percent-encodes the
/// user, the password and the database name, so a password holding `@ : / ? # %` reads
/// back exactly through sqlx's (and any RFC 3986) URL parsing.
///
/// ```
/// use coffer_env::DatabaseUrl;
/// use secrecy::ExposeSecret;
///
/// let url = DatabaseUrl::postgres("db.internal")
///     .database("app")
///     .user("app_rw")
///     .password("p@ss:w/rd?#%".into())
///     .param("sslmode", "require")
///     .to_url()?;
/// assert_eq!(
///     url.expose_secret(),
///     "postgresql://app_rw:p%40ss%3Aw%2Frd%3F%23%25@db.internal:5432/app?sslmode=require"
/// );
///
/// // To a host off loopback, with no mode given, the child is told to verify.
/// let url = DatabaseUrl::mysql("db.internal").user("app").to_url()?;
/// assert_eq!(url.expose_secret(), "mysql://app@db.internal:3306/?ssl-mode=VERIFY_IDENTITY");
/// assert!(DatabaseUrl::postgres("db").param("ssl_mode", "require").to_url().is_err());
/// # Ok::<(), coffer_env::Error>(())
/// ```
#[derive(Clone)]
pub struct DatabaseUrl {
    kind: DatabaseKind,
    host: String,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
    password: Option<SecretString>,
    params: Vec<(String, String)>,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseUrl")
            .field("kind", &self.kind)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("params", &self.params)
            .finish()
    }
}

impl DatabaseUrl {
    /// A URL of `kind` to `host` (for SQLite, the file's path).
    pub fn new(kind: DatabaseKind, host: impl Into<String>) -> Self {
        Self {
            kind,
            host: host.into(),
            port: None,
            database: None,
            user: None,
            password: None,
            params: Vec::new(),
        }
    }

    /// A PostgreSQL server.
    pub fn postgres(host: impl Into<String>) -> Self {
        Self::new(DatabaseKind::Postgres, host)
    }

    /// A MySQL or MariaDB server.
    pub fn mysql(host: impl Into<String>) -> Self {
        Self::new(DatabaseKind::Mysql, host)
    }

    /// A MongoDB server.
    pub fn mongodb(host: impl Into<String>) -> Self {
        Self::new(DatabaseKind::Mongodb, host)
    }

    /// A SQLite file.
    pub fn sqlite(path: impl Into<String>) -> Self {
        Self::new(DatabaseKind::Sqlite, path)
    }

    /// The port (default: the kind's usual one).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }

    /// The database name.
    #[must_use]
    pub fn database(mut self, database: impl Into<String>) -> Self {
        self.database = Some(database.into());
        self
    }

    /// The user.
    #[must_use]
    pub fn user(mut self, user: impl Into<String>) -> Self {
        self.user = Some(user.into());
        self
    }

    /// The password.
    #[must_use]
    pub fn password(mut self, password: SecretString) -> Self {
        self.password = Some(password);
        self
    }

    /// A query parameter (`sslmode=require`, `authSource=admin`, `mode=ro`, …).
    #[must_use]
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((key.into(), value.into()));
        self
    }

    /// The kind.
    pub fn kind(&self) -> DatabaseKind {
        self.kind
    }

    /// The URL. It holds the password, so it is a secret too.
    pub fn to_url(&self) -> Result<SecretString> {
        let invalid = |field, reason: &str| Error::InvalidDatabase {
            field,
            reason: reason.to_owned(),
        };
        let mut url = String::with_capacity(64);
        url.push_str(self.kind.scheme());
        url.push_str("://");
        if self.kind == DatabaseKind::Sqlite {
            if self.host.is_empty() {
                return Err(invalid("path", "is empty"));
            }
            if self.user.is_some() || self.password.is_some() || self.database.is_some() {
                return Err(invalid(
                    "user, password or database",
                    "has no place in a SQLite URL",
                ));
            }
            url.extend(utf8_percent_encode(&self.host, PATH));
        } else {
            if let Some(user) = &self.user {
                url.extend(utf8_percent_encode(user, COMPONENT));
                if let Some(password) = &self.password {
                    url.push(':');
                    url.extend(utf8_percent_encode(password.expose_secret(), COMPONENT));
                }
                url.push('@');
            } else if self.password.is_some() {
                return Err(invalid("password", "is given without a user"));
            }
            self.push_host(&mut url)?;
            url.push('/');
            if let Some(db) = &self.database {
                url.extend(utf8_percent_encode(db, COMPONENT));
            }
        }
        let params = self.params_with_tls()?;
        if !params.is_empty() {
            url.push('?');
            url.push_str(
                &url::form_urlencoded::Serializer::new(String::new())
                    .extend_pairs(&params)
                    .finish(),
            );
        }
        Ok(SecretString::from(url))
    }

    /// The query parameters, with coffer's TLS rule applied for Postgres and MySQL
    /// ([`coffer_store::transport`]): a misspelt TLS parameter or a bad mode is an error,
    /// and to a host off loopback with no mode given the URL says `sslmode=verify-full`
    /// (`ssl-mode=VERIFY_IDENTITY`), so the child does not fall back to libpq's `prefer`.
    fn params_with_tls(&self) -> Result<Vec<(String, String)>> {
        let protocol = match self.kind {
            DatabaseKind::Postgres => Protocol::Postgres,
            DatabaseKind::Mysql => Protocol::Mysql,
            DatabaseKind::Mongodb | DatabaseKind::Sqlite => return Ok(self.params.clone()),
        };
        let mut tls = TlsOptions::default();
        let mut params = Vec::with_capacity(self.params.len() + 1);
        for (key, value) in &self.params {
            let taken =
                tls.take_param(protocol, key, value)
                    .map_err(|e| Error::InvalidDatabase {
                        field: "params",
                        reason: e.to_string(),
                    })?;
            if !taken || key != protocol.param_names()[0] {
                params.push((key.clone(), value.clone()));
            }
        }
        if let Some(mode) = tls.mode {
            params.insert(
                0,
                (
                    protocol.param_names()[0].to_owned(),
                    mode.name(protocol).to_owned(),
                ),
            );
        } else if !is_local(&self.host) {
            params.insert(
                0,
                (
                    protocol.param_names()[0].to_owned(),
                    TlsMode::VerifyFull.name(protocol).to_owned(),
                ),
            );
        }
        Ok(params)
    }

    fn push_host(&self, url: &mut String) -> Result<()> {
        let host = self.host.as_str();
        let bad = |reason: &str| Error::InvalidDatabase {
            field: "host",
            reason: format!("{:?} {reason}", host.chars().take(80).collect::<String>()),
        };
        if host.is_empty() {
            return Err(bad("is empty"));
        }
        let bare = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        if bare.parse::<std::net::Ipv6Addr>().is_ok() {
            url.push('[');
            url.push_str(bare);
            url.push(']');
        } else if host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            url.push_str(host);
        } else {
            return Err(bad(
                "is not a host name or IP address (letters, digits, - . _ or an IPv6 address)",
            ));
        }
        if let Some(port) = self.port.or(self.kind.default_port()) {
            url.push(':');
            url.push_str(&port.to_string());
        }
        Ok(())
    }
}
