//! Connection parameters: what an agent's user hands over once.

use std::fmt;
use std::path::PathBuf;

use coffer_sql::tls::{MySqlTarget, PgTarget};
use coffer_store::transport::{DatabaseKind, DatabaseUrl, Protocol, TlsOptions, TlsParamError};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use crate::{BrokerError, Result};

/// Prepared statements a broker MySQL connection keeps before it is replaced.
pub(crate) const MYSQL_STATEMENT_CACHE: usize = 100;

/// The database kinds the broker speaks: [`DatabaseKind`] without MongoDB, so that the
/// broker's own matches on a kind stay exhaustive. [`ConnectionParams`] of another kind
/// cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Engine {
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
    /// SQLite (a file on the broker's machine).
    Sqlite,
}

impl Engine {
    /// The engine of `kind`, or the refusal of a kind the broker does not speak.
    pub(crate) fn of(kind: DatabaseKind) -> Result<Self> {
        match kind {
            DatabaseKind::Postgres => Ok(Self::Postgres),
            DatabaseKind::Mysql => Ok(Self::Mysql),
            DatabaseKind::Sqlite => Ok(Self::Sqlite),
            other => Err(BrokerError::params(
                "type",
                format!("{other} is not a database the broker speaks (postgres, mysql, sqlite)"),
            )),
        }
    }

    /// The public kind.
    pub(crate) fn kind(self) -> DatabaseKind {
        match self {
            Self::Postgres => DatabaseKind::Postgres,
            Self::Mysql => DatabaseKind::Mysql,
            Self::Sqlite => DatabaseKind::Sqlite,
        }
    }

    /// How its TLS parameters are spelt (Postgres's for SQLite, which takes none).
    pub(crate) fn protocol(self) -> Protocol {
        match self {
            Self::Mysql => Protocol::Mysql,
            Self::Postgres | Self::Sqlite => Protocol::Postgres,
        }
    }
}

impl fmt::Display for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.kind(), f)
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

/// A database to connect to: where it is and how to log in (a [`DatabaseUrl`], the model
/// coffer-env shares), its TLS settings, and what calls on it may do. The password lives
/// in a [`SecretString`]; `Debug` never shows it.
///
/// ```
/// use coffer_broker::{ConnectionParams, DatabaseKind, Mode};
///
/// let params = ConnectionParams::postgres("127.0.0.1", "app", "agent_ro", "pa:ss@word".into());
/// assert_eq!(params.mode(), Mode::ReadOnly);
/// assert!(!format!("{params:?}").contains("pa:ss@word"));
///
/// let from_url = ConnectionParams::from_url(&"mysql://u:p%40ss@db:3306/shop".into())?;
/// assert_eq!((from_url.kind(), from_url.user()), (DatabaseKind::Mysql, Some("u")));
///
/// // MongoDB is a kind of the shared model, but not one the broker speaks.
/// assert!(ConnectionParams::from_url(&"mongodb://u:p@db/app".into()).is_err());
/// # Ok::<(), coffer_broker::BrokerError>(())
/// ```
#[derive(Clone)]
pub struct ConnectionParams {
    /// Where and who, without query parameters (TLS is in `tls`).
    pub(crate) address: DatabaseUrl,
    pub(crate) engine: Engine,
    pub(crate) mode: Mode,
    pub(crate) allow_privileged: bool,
    pub(crate) max_result_bytes: Option<usize>,
    pub(crate) tls: TlsOptions,
}

impl fmt::Debug for ConnectionParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionParams")
            .field("address", &self.address)
            .field("mode", &self.mode)
            .field("allow_privileged", &self.allow_privileged)
            .field("max_result_bytes", &self.max_result_bytes)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConnectionParams {
    /// Parameters for `address`, of a kind the broker speaks (Postgres, MySQL/MariaDB,
    /// SQLite). Its TLS parameters become the [`tls`](Self::tls) settings; any other
    /// query parameter is refused, since the broker sets the session up itself.
    pub fn new(mut address: DatabaseUrl) -> Result<Self> {
        let engine = Engine::of(address.kind())?;
        let tls = address.take_tls()?;
        if let Some((key, _)) = address.get_params().first() {
            let reason = match address.kind().protocol() {
                Some(protocol) => {
                    let [mode, ca, cert, key_param, cleartext] = protocol.param_names();
                    format!(
                        "has the unknown parameter {:?}; a {engine} URL takes {mode}, {ca}, \
                         {cert}, {key_param} and {cleartext}",
                        key.chars().take(64).collect::<String>()
                    )
                }
                None => format!(
                    "has the parameter {:?}; a {engine} URL takes none",
                    key.chars().take(64).collect::<String>()
                ),
            };
            return Err(BrokerError::params("url", reason));
        }
        Ok(Self {
            tls,
            ..Self::of(engine, address)
        })
    }

    /// Parameters with the defaults: read-only, TLS by coffer's rule.
    fn of(engine: Engine, address: DatabaseUrl) -> Self {
        Self {
            address,
            engine,
            mode: Mode::ReadOnly,
            allow_privileged: false,
            max_result_bytes: None,
            tls: TlsOptions::default(),
        }
    }

    fn server(
        engine: Engine,
        host: &str,
        database: &str,
        user: &str,
        password: SecretString,
    ) -> Self {
        let address = DatabaseUrl::new(engine.kind(), host)
            .database(database)
            .user(user)
            .password(password);
        Self::of(engine, address)
    }

    /// A Postgres database.
    pub fn postgres(host: &str, database: &str, user: &str, password: SecretString) -> Self {
        Self::server(Engine::Postgres, host, database, user, password)
    }

    /// A MySQL or MariaDB database.
    pub fn mysql(host: &str, database: &str, user: &str, password: SecretString) -> Self {
        Self::server(Engine::Mysql, host, database, user, password)
    }

    /// A SQLite file.
    pub fn sqlite(path: impl Into<PathBuf>) -> Self {
        Self::of(Engine::Sqlite, DatabaseUrl::sqlite(path))
    }

    /// Parameters from a URL (`postgres://`, `postgresql://`, `mysql://`, `mariadb://`,
    /// `sqlite://PATH`), with user and password percent-decoded ([`DatabaseUrl::parse`]),
    /// then as [`new`](Self::new). The URL is a secret: no error quotes it.
    pub fn from_url(url: &SecretString) -> Result<Self> {
        Self::new(DatabaseUrl::parse(url)?)
    }

    /// The port (default: the server's usual one).
    #[must_use]
    pub fn port(mut self, port: u16) -> Self {
        self.address = self.address.port(port);
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
    pub fn kind(&self) -> DatabaseKind {
        self.engine.kind()
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The user, if any.
    pub fn user(&self) -> Option<&str> {
        self.address.get_user()
    }

    /// The strings that must never appear in output: the password.
    pub(crate) fn secrets(&self) -> Vec<&str> {
        self.address
            .get_password()
            .map(|p| p.expose_secret())
            .into_iter()
            .collect()
    }

    pub(crate) fn validate(&self) -> Result<()> {
        self.address.check()?;
        if self.engine != Engine::Sqlite && self.user().is_none_or(str::is_empty) {
            return Err(BrokerError::params("user", "is required"));
        }
        Ok(())
    }

    /// Postgres statements stay unnamed (no statement cache): an agent's database is often
    /// behind a transaction pooler (PgBouncer, Supavisor) that keeps no prepared statements
    /// between transactions, and a cached `SELECT *` fails with "cached plan must not change
    /// result type" once its table changes. It costs one round trip per call.
    pub(crate) fn pg_target(&self) -> Result<PgTarget> {
        let a = &self.address;
        let mut o = sqlx::postgres::PgConnectOptions::new_without_pgpass()
            .host(a.get_host().unwrap_or("localhost"))
            .port(a.port_or_default().unwrap_or(5432))
            .username(a.get_user().unwrap_or_default())
            .application_name("coffer-broker")
            .statement_cache_capacity(0);
        if let Some(db) = a.get_database() {
            o = o.database(db);
        }
        if let Some(p) = a.get_password() {
            o = o.password(p.expose_secret());
        }
        // sqlx also takes a password from PGPASSWORD.
        let has_password = a.get_password().is_some() || std::env::var_os("PGPASSWORD").is_some();
        PgTarget::new(o, &self.tls, has_password).map_err(target_error)
    }

    /// MySQL keeps prepared statements per connection (see `broker::recycle_when_cache_full`).
    pub(crate) fn mysql_target(&self) -> Result<MySqlTarget> {
        let a = &self.address;
        let mut o = sqlx::mysql::MySqlConnectOptions::new()
            .host(a.get_host().unwrap_or("localhost"))
            .port(a.port_or_default().unwrap_or(3306))
            .username(a.get_user().unwrap_or_default())
            .statement_cache_capacity(MYSQL_STATEMENT_CACHE);
        if let Some(db) = a.get_database() {
            o = o.database(db);
        }
        if let Some(p) = a.get_password() {
            o = o.password(p.expose_secret());
        }
        MySqlTarget::new(o, &self.tls, a.get_password().is_some()).map_err(target_error)
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

#[cfg(test)]
mod tests {
    use coffer_store::transport::TlsMode;

    use super::*;

    #[test]
    fn new_takes_tls_from_the_shared_model_and_refuses_the_rest() {
        let address = DatabaseUrl::postgres("db.internal")
            .database("app")
            .user("agent")
            .password("pa:ss@w/rd".into())
            .param("sslmode", "verify-ca");
        let params = ConnectionParams::new(address.clone()).unwrap();
        assert_eq!(params.tls_options().mode, Some(TlsMode::VerifyCa));
        assert_eq!(params.kind(), DatabaseKind::Postgres);
        params.validate().unwrap();
        // The URL coffer-env would hand a child reads back as the same connection.
        let again = ConnectionParams::from_url(&address.to_url().unwrap()).unwrap();
        assert_eq!(again.secrets(), ["pa:ss@w/rd"]);
        assert_eq!(again.tls_options(), params.tls_options());

        let e = ConnectionParams::new(address.param("application_name", "x")).unwrap_err();
        assert!(
            e.to_string()
                .contains("unknown parameter \"application_name\""),
            "{e}"
        );
        let e = ConnectionParams::new(DatabaseUrl::mongodb("db").user("u")).unwrap_err();
        assert!(
            matches!(e, BrokerError::InvalidParams { field: "type", .. }),
            "{e}"
        );
        let e = ConnectionParams::postgres("db", "app", "", "p".into())
            .validate()
            .unwrap_err();
        assert!(
            matches!(e, BrokerError::InvalidParams { field: "user", .. }),
            "{e}"
        );
    }
}
