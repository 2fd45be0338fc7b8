//! Where a database is and how to log in to it: the one model of connection parameters
//! that coffer-env (the `DATABASE_URL` it hands a child) and coffer-broker (the
//! connections an agent registers) share.
//!
//! A [`DatabaseUrl`] is built from parts or parsed from a URL. Either way the same rules
//! hold: the user, the password and the database name are percent-encoded and decoded
//! (a password holding `@ : / ? # %` survives the trip), the host is a name or an IP
//! address and nothing else, a SQLite file takes no credentials, and TLS parameters go
//! through [`TlsOptions`] (a misspelt one is an error, never passed on).

use std::fmt;
use std::path::{Path, PathBuf};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use super::{Protocol, TlsMode, TlsOptions, is_local};

/// Everything but RFC 3986's unreserved characters (`A-Z a-z 0-9 - . _ ~`) is encoded in
/// users, passwords and database names: `@ : / ? # %` and the rest can never end a part
/// early or be read as an escape.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The same, but `/` kept: for SQLite file paths.
const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// The longest host name DNS allows.
const MAX_HOST_LEN: usize = 253;

/// The kind of database a [`DatabaseUrl`] points at.
///
/// In configuration files it is written `postgres` (or `postgresql`), `mysql` (or
/// `mariadb`), `mongodb` or `sqlite`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DatabaseKind {
    /// PostgreSQL: `postgresql://`, port 5432.
    #[serde(alias = "postgresql")]
    Postgres,
    /// MySQL or MariaDB: `mysql://`, port 3306.
    #[serde(alias = "mariadb")]
    Mysql,
    /// MongoDB: `mongodb://`, port 27017.
    Mongodb,
    /// SQLite: `sqlite://PATH`, a file on this machine.
    Sqlite,
}

impl DatabaseKind {
    /// The short name used in configuration and in reports: `postgres`, `mysql`,
    /// `mongodb`, `sqlite` (also what [`Display`](fmt::Display) writes).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
            Self::Mongodb => "mongodb",
            Self::Sqlite => "sqlite",
        }
    }

    /// The URL scheme [`DatabaseUrl::to_url`] writes: `postgresql`, `mysql`, `mongodb`,
    /// `sqlite`.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Postgres => "postgresql",
            other => other.as_str(),
        }
    }

    /// The kind a URL scheme names, in any case: `postgres`, `postgresql`, `mysql`,
    /// `mariadb`, `mongodb`, `sqlite`.
    pub fn from_scheme(scheme: &str) -> Option<Self> {
        [
            ("postgres", Self::Postgres),
            ("postgresql", Self::Postgres),
            ("mysql", Self::Mysql),
            ("mariadb", Self::Mysql),
            ("mongodb", Self::Mongodb),
            ("sqlite", Self::Sqlite),
        ]
        .into_iter()
        .find(|(name, _)| scheme.eq_ignore_ascii_case(name))
        .map(|(_, kind)| kind)
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

    /// How this kind spells its TLS parameters, for the kinds coffer's TLS rule covers
    /// (Postgres and MySQL).
    pub fn protocol(self) -> Option<Protocol> {
        match self {
            Self::Postgres => Some(Protocol::Postgres),
            Self::Mysql => Some(Protocol::Mysql),
            Self::Mongodb | Self::Sqlite => None,
        }
    }
}

impl fmt::Display for DatabaseKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was wrong with a [`DatabaseUrl`]: the part (`url`, `host`, `path`, `password`,
/// `params`, …) and why. It never holds the password or the URL.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DatabaseUrlError {
    /// The part that was wrong.
    pub field: &'static str,
    /// Why, in words.
    pub reason: String,
}

impl DatabaseUrlError {
    fn new(field: &'static str, reason: impl Into<String>) -> Self {
        Self {
            field,
            reason: reason.into(),
        }
    }
}

impl fmt::Display for DatabaseUrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.reason)
    }
}

impl std::error::Error for DatabaseUrlError {}

/// A database connection: kind, host and port (or a SQLite file), database, user,
/// password and query parameters. The password lives in a [`SecretString`]; `Debug`
/// never shows it, and [`to_url`](Self::to_url) returns the URL as a secret too.
///
/// ```
/// use coffer_store::transport::{DatabaseKind, DatabaseUrl};
/// use secrecy::{ExposeSecret, SecretString};
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
/// // And back: the same parts, the password decoded.
/// let parsed = DatabaseUrl::parse(&url)?;
/// assert_eq!(parsed.kind(), DatabaseKind::Postgres);
/// assert_eq!(parsed.get_user(), Some("app_rw"));
/// assert_eq!(parsed.get_password().map(|p| p.expose_secret()), Some("p@ss:w/rd?#%"));
/// assert!(!format!("{parsed:?}").contains("p@ss"));
///
/// // To a host off loopback, with no mode given, the URL says to verify.
/// let url = DatabaseUrl::mysql("db.internal").user("app").to_url()?;
/// assert_eq!(url.expose_secret(), "mysql://app@db.internal:3306/?ssl-mode=VERIFY_IDENTITY");
/// assert!(DatabaseUrl::postgres("db").param("ssl_mode", "require").to_url().is_err());
/// # Ok::<(), coffer_store::transport::DatabaseUrlError>(())
/// ```
#[derive(Clone)]
pub struct DatabaseUrl {
    kind: DatabaseKind,
    host: Option<String>,
    path: Option<PathBuf>,
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
            .field("path", &self.path)
            .field("port", &self.port)
            .field("database", &self.database)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("params", &self.params)
            .finish()
    }
}

impl DatabaseUrl {
    /// A database of `kind` at `host` (for SQLite, `host` is the file's path).
    pub fn new(kind: DatabaseKind, host: impl Into<String>) -> Self {
        let host = host.into();
        let (host, path) = if kind == DatabaseKind::Sqlite {
            (None, Some(PathBuf::from(host)))
        } else {
            (Some(host), None)
        };
        Self {
            kind,
            host,
            path,
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
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self {
            path: Some(path.into()),
            ..Self::new(DatabaseKind::Sqlite, "")
        }
    }

    /// Parts from a URL (`postgres://` or `postgresql://`, `mysql://` or `mariadb://`,
    /// `mongodb://`, `sqlite://PATH`), with the user, the password, the database name
    /// and the path percent-decoded and every query parameter kept in order. The URL is
    /// a secret: no error quotes it.
    pub fn parse(url: &SecretString) -> Result<Self, DatabaseUrlError> {
        let text = url.expose_secret();
        let invalid = |reason: &str| DatabaseUrlError::new("url", reason);
        let scheme = text.split(':').next().unwrap_or_default();
        let kind = DatabaseKind::from_scheme(scheme).ok_or_else(|| {
            invalid(
                "must start with postgres://, postgresql://, mysql://, mariadb://, mongodb:// \
                 or sqlite://",
            )
        })?;
        if kind == DatabaseKind::Sqlite {
            let rest = text
                .get(scheme.len() + 1..)
                .map(|r| r.strip_prefix("//").unwrap_or(r))
                .unwrap_or_default();
            let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
            let path = percent_decode_str(path)
                .decode_utf8()
                .map_err(|_| invalid("holds a path that is not UTF-8"))?;
            if path.is_empty() {
                return Err(invalid("names no SQLite file"));
            }
            let mut parsed = Self::sqlite(path.into_owned());
            parsed.params = url::form_urlencoded::parse(query.as_bytes())
                .into_owned()
                .collect();
            return Ok(parsed);
        }
        let parsed = url::Url::parse(text).map_err(|_| invalid("is not a valid URL"))?;
        let decode = |s: &str| {
            percent_decode_str(s)
                .decode_utf8()
                .map(|c| c.into_owned())
                .map_err(|_| invalid("holds a user, password or database that is not UTF-8"))
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| invalid("names no host"))?;
        let mut out = Self::new(kind, host.trim_matches(['[', ']']));
        out.port = parsed.port();
        out.user = (!parsed.username().is_empty())
            .then(|| decode(parsed.username()))
            .transpose()?;
        out.password = parsed
            .password()
            .map(decode)
            .transpose()?
            .map(SecretString::from);
        out.database = parsed
            .path()
            .strip_prefix('/')
            .filter(|d| !d.is_empty())
            .map(decode)
            .transpose()?;
        out.params = parsed.query_pairs().into_owned().collect();
        out.check()?;
        Ok(out)
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

    /// The server's host (`None` for SQLite).
    pub fn get_host(&self) -> Option<&str> {
        self.host.as_deref()
    }

    /// The SQLite file (`None` for a server).
    pub fn get_path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The port as given (`None`: the kind's usual one, see [`port_or_default`]).
    ///
    /// [`port_or_default`]: Self::port_or_default
    pub fn get_port(&self) -> Option<u16> {
        self.port
    }

    /// The port as given, else the kind's usual one (`None` for SQLite).
    pub fn port_or_default(&self) -> Option<u16> {
        self.port.or(self.kind.default_port())
    }

    /// The database name, if any.
    pub fn get_database(&self) -> Option<&str> {
        self.database.as_deref()
    }

    /// The user, if any.
    pub fn get_user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The password, if any.
    pub fn get_password(&self) -> Option<&SecretString> {
        self.password.as_ref()
    }

    /// The query parameters, in order.
    pub fn get_params(&self) -> &[(String, String)] {
        &self.params
    }

    /// Takes the kind's TLS parameters out of the query parameters ([`TlsOptions::take_param`]:
    /// a misspelt one or a bad value is an error) and leaves the others. Kinds without
    /// coffer's TLS rule (MongoDB, SQLite) keep every parameter.
    pub fn take_tls(&mut self) -> Result<TlsOptions, DatabaseUrlError> {
        let mut tls = TlsOptions::default();
        let Some(protocol) = self.kind.protocol() else {
            return Ok(tls);
        };
        let mut rest = Vec::with_capacity(self.params.len());
        for (key, value) in std::mem::take(&mut self.params) {
            let taken = tls
                .take_param(protocol, &key, &value)
                .map_err(|e| DatabaseUrlError::new("params", e.to_string()))?;
            if !taken {
                rest.push((key, value));
            }
        }
        self.params = rest;
        Ok(tls)
    }

    /// Checks the parts without building anything: a host that is a name or an IP
    /// address; for SQLite a path and no user, password or database; no password
    /// without a user.
    pub fn check(&self) -> Result<(), DatabaseUrlError> {
        if self.kind == DatabaseKind::Sqlite {
            if self.path.as_ref().is_none_or(|p| p.as_os_str().is_empty()) {
                return Err(DatabaseUrlError::new("path", "is empty"));
            }
            if self.user.is_some() || self.password.is_some() || self.database.is_some() {
                return Err(DatabaseUrlError::new(
                    "user, password or database",
                    "has no place in a SQLite URL",
                ));
            }
            return Ok(());
        }
        if self.password.is_some() && self.user.is_none() {
            return Err(DatabaseUrlError::new("password", "is given without a user"));
        }
        let host = self.host.as_deref().unwrap_or_default();
        let bad = |reason: &str| {
            DatabaseUrlError::new(
                "host",
                format!("{:?} {reason}", host.chars().take(80).collect::<String>()),
            )
        };
        if host.is_empty() {
            return Err(bad("is empty"));
        }
        if host.len() > MAX_HOST_LEN {
            return Err(bad("is longer than a host name can be"));
        }
        if ipv6(host).is_none()
            && !host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'))
        {
            return Err(bad(
                "is not a host name or IP address (letters, digits, - . _ or an IPv6 address)",
            ));
        }
        Ok(())
    }

    /// The URL. It holds the password, so it is a secret too.
    ///
    /// For Postgres and MySQL, coffer's TLS rule ([`crate::transport`]) is applied: a
    /// misspelt TLS parameter or a bad mode is an error, and to a host off loopback with
    /// no mode given the URL says `sslmode=verify-full` (`ssl-mode=VERIFY_IDENTITY`), so
    /// a client does not fall back to libpq's `prefer`.
    pub fn to_url(&self) -> Result<SecretString, DatabaseUrlError> {
        self.check()?;
        let mut url = String::with_capacity(64);
        url.push_str(self.kind.scheme());
        url.push_str("://");
        if let Some(path) = &self.path {
            let path = path
                .to_str()
                .ok_or_else(|| DatabaseUrlError::new("path", "is not UTF-8"))?;
            url.extend(utf8_percent_encode(path, PATH));
        } else {
            if let Some(user) = &self.user {
                url.extend(utf8_percent_encode(user, COMPONENT));
                if let Some(password) = &self.password {
                    url.push(':');
                    url.extend(utf8_percent_encode(password.expose_secret(), COMPONENT));
                }
                url.push('@');
            }
            let host = self.host.as_deref().unwrap_or_default();
            match ipv6(host) {
                Some(bare) => {
                    url.push('[');
                    url.push_str(bare);
                    url.push(']');
                }
                None => url.push_str(host),
            }
            if let Some(port) = self.port_or_default() {
                url.push(':');
                url.push_str(&port.to_string());
            }
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

    /// The query parameters as [`to_url`](Self::to_url) writes them: the TLS mode first
    /// (as written, or `verify-full` off loopback), then the rest in order.
    fn params_with_tls(&self) -> Result<Vec<(String, String)>, DatabaseUrlError> {
        let Some(protocol) = self.kind.protocol() else {
            return Ok(self.params.clone());
        };
        let mut rest = self.clone();
        let tls = rest.take_tls()?;
        let remote = !is_local(self.host.as_deref().unwrap_or_default());
        let effective = remote.then_some(TlsMode::VerifyFull);
        let mut params = tls.to_params(protocol, effective);
        params.append(&mut rest.params);
        Ok(params)
    }
}

/// The address inside `host` (bare or in brackets) if it is an IPv6 address.
fn ipv6(host: &str) -> Option<&str> {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse::<std::net::Ipv6Addr>().is_ok().then_some(bare)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> SecretString {
        SecretString::from(text.to_owned())
    }

    #[test]
    fn parts_survive_a_round_trip() {
        let password = "p@ss:w/rd?#% é";
        let built = DatabaseUrl::mysql("::1")
            .port(3307)
            .database("shop/db")
            .user("u:1")
            .password(password.into())
            .param("ssl-mode", "REQUIRED")
            .param("charset", "utf8mb4");
        let parsed = DatabaseUrl::parse(&built.to_url().unwrap()).unwrap();
        assert_eq!(parsed.kind(), DatabaseKind::Mysql);
        assert_eq!(parsed.get_host(), Some("::1"));
        assert_eq!(parsed.get_port(), Some(3307));
        assert_eq!(parsed.get_database(), Some("shop/db"));
        assert_eq!(parsed.get_user(), Some("u:1"));
        assert_eq!(
            parsed.get_password().map(|p| p.expose_secret()),
            Some(password)
        );
        assert_eq!(
            parsed.get_params(),
            [
                ("ssl-mode".to_owned(), "REQUIRED".to_owned()),
                ("charset".to_owned(), "utf8mb4".to_owned())
            ]
        );
    }

    #[test]
    fn schemes_name_kinds_in_any_case() {
        for (scheme, kind) in [
            ("postgres", DatabaseKind::Postgres),
            ("PostgreSQL", DatabaseKind::Postgres),
            ("mariadb", DatabaseKind::Mysql),
            ("mongodb", DatabaseKind::Mongodb),
            ("SQLITE", DatabaseKind::Sqlite),
        ] {
            assert_eq!(DatabaseKind::from_scheme(scheme), Some(kind), "{scheme}");
        }
        assert_eq!(DatabaseKind::from_scheme("redis"), None);
        let parsed = DatabaseUrl::parse(&url("sqlite:///var/lib/a%20b.db?mode=ro")).unwrap();
        assert_eq!(parsed.get_path(), Some(Path::new("/var/lib/a b.db")));
        assert_eq!(parsed.get_params(), [("mode".to_owned(), "ro".to_owned())]);
        assert_eq!(
            DatabaseUrl::parse(&url("sqlite:app.db"))
                .unwrap()
                .get_path(),
            Some(Path::new("app.db"))
        );
    }

    #[test]
    fn bad_urls_name_the_part_and_never_the_password() {
        for (text, field) in [
            ("redis://h/0", "url"),
            ("postgres://u:hunter2-canary@/db", "url"),
            ("mysql://u:hunter2-canary@evil.com%2Fx/db", "host"),
            ("postgres://u:hunter2-canary@h%2520/db", "host"),
            ("sqlite://", "url"),
            ("not a url hunter2-canary", "url"),
        ] {
            let e = DatabaseUrl::parse(&url(text)).unwrap_err();
            assert_eq!(e.field, field, "{text}: {e}");
            assert!(!e.to_string().contains("hunter2"), "{e}");
        }
    }

    #[test]
    fn take_tls_leaves_the_other_parameters() {
        let mut parsed = DatabaseUrl::parse(&url(
            "postgres://u@db/app?application_name=x&sslmode=verify-ca&sslrootcert=/ca.pem",
        ))
        .unwrap();
        let tls = parsed.take_tls().unwrap();
        assert_eq!(tls.mode, Some(TlsMode::VerifyCa));
        assert_eq!(tls.root_cert.as_deref(), Some(Path::new("/ca.pem")));
        assert_eq!(
            parsed.get_params(),
            [("application_name".to_owned(), "x".to_owned())]
        );
        let mut misspelt = DatabaseUrl::postgres("db").param("ssl_mode", "require");
        assert_eq!(misspelt.take_tls().unwrap_err().field, "params");
        let mut mongo = DatabaseUrl::mongodb("db").param("tls", "true");
        assert_eq!(mongo.take_tls().unwrap(), TlsOptions::default());
        assert_eq!(mongo.get_params().len(), 1);
    }
}
