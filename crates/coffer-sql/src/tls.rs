//! coffer's TLS rule ([`coffer_store::transport`]) applied to sqlx's connect options:
//! the one place every sqlx connection of the workspace (the Postgres and Supabase
//! stores, the SQL audit sink, the broker on Postgres and MySQL) gets its TLS mode,
//! its certificates and, where a password could cross without TLS, the
//! [`CleartextGuard`].
//!
//! sqlx is built with `tls-rustls-ring-webpki`: rustls (no OpenSSL), ring (no C
//! toolchain for aws-lc), and the Mozilla roots compiled in, so verification behaves
//! the same on every host and in a distroless container, and a CA the host's
//! administrator added does not widen what a secrets store trusts. A private CA (RDS,
//! Cloud SQL, Supabase's own) is named with `sslrootcert` / `ssl-ca`; sqlx trusts it
//! *besides* the Mozilla roots, not instead of them.

use std::sync::Arc;

pub use coffer_store::transport::guard::CleartextGuard;
use coffer_store::transport::{Protocol, ResolvedTls, TlsMode, TlsOptions, connect_failure};
use coffer_store::{Error, Result};

/// The query parameters sqlx's Postgres URL parser understands besides TLS ones.
const PG_URL_PARAMS: &[&str] = &[
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
    "statement-cache-capacity",
];

/// Where a connection goes and how: sqlx options with the TLS rule applied, and the
/// guard they connect through (if any), which must live as long as the pool.
#[derive(Debug, Clone)]
pub struct Target<O> {
    options: O,
    tls: ResolvedTls,
    guard: Option<Arc<CleartextGuard>>,
    host: String,
    port: u16,
}

impl<O> Target<O> {
    /// The sqlx connect options.
    pub fn options(&self) -> &O {
        &self.options
    }

    /// The effective TLS settings.
    pub fn tls(&self) -> &ResolvedTls {
        &self.tls
    }

    /// The guard the options connect through, which the pool's owner keeps.
    pub fn guard(&self) -> Option<&Arc<CleartextGuard>> {
        self.guard.as_ref()
    }

    /// What went wrong connecting, in words a person can act on (host, step, the
    /// parameter that fixes it); never a password or a URL.
    pub fn describe(&self, e: &sqlx::Error) -> String {
        let detail = match (self.guard.as_ref().and_then(|g| g.last_failure()), e) {
            (
                Some(failure),
                sqlx::Error::Io(_) | sqlx::Error::Protocol(_) | sqlx::Error::Database(_),
            ) => failure,
            _ => error_chain(e),
        };
        connect_failure(self.tls.protocol, &self.host, self.port, &detail)
    }

    /// The store error for a failed connect: a configuration error where the TLS
    /// settings or the server's answer to them are wrong, `Unavailable` where the
    /// server cannot be reached.
    pub fn connect_error(&self, backend: &'static str, e: sqlx::Error) -> Error {
        let message = self.describe(&e);
        match e {
            ref e if refused_by_transport(e) => Error::config(message),
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::Protocol(_) => {
                Error::Unavailable {
                    backend,
                    message,
                    source: None,
                }
            }
            other => crate::common::map_sqlx(backend, other),
        }
    }
}

/// What coffer's TLS rule needs from a driver's connect options: one implementation
/// per dialect, so the rule is applied in one place ([`Target::new`]).
pub trait TlsConnectOptions: Sized {
    /// The wire protocol.
    const PROTOCOL: Protocol;
    /// The host (or socket path) and port the options point at.
    fn endpoint(&self) -> (String, u16);
    /// The options with the effective mode and certificates of `tls`.
    fn with_tls(self, tls: &ResolvedTls) -> Self;
    /// The options connecting through `guard` instead of to the server.
    fn through(self, guard: &CleartextGuard) -> Self;
}

impl<O: TlsConnectOptions> Target<O> {
    /// From driver options built elsewhere and TLS settings as written (the broker's
    /// connection entries, or a URL's parameters). `has_password`: whether `options`
    /// carries one (then, where TLS is not guaranteed, it connects through the guard).
    pub fn new(options: O, tls: &TlsOptions, has_password: bool) -> Result<Self> {
        let (host, port) = options.endpoint();
        let resolved = tls.resolve(O::PROTOCOL, &host, has_password)?;
        if resolved.mode == TlsMode::VerifyCa {
            // sqlx builds its name-blind verifier on rustls's process-wide provider, which
            // rustls cannot pick when another crate (reqwest) also enables aws-lc-rs. Name
            // ring, the provider sqlx itself uses; a provider the application installed
            // first stays.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let mut options = options.with_tls(&resolved);
        let guard = if resolved.guard_cleartext {
            let guard = CleartextGuard::start(O::PROTOCOL, &host, port)
                .map(Arc::new)
                .map_err(|e| {
                    Error::config(format!(
                        "cannot start the cleartext-password guard: {}",
                        e.kind()
                    ))
                })?;
            options = options.through(&guard);
            Some(guard)
        } else {
            None
        };
        Ok(Self {
            options,
            tls: resolved,
            guard,
            host,
            port,
        })
    }
}

/// Whether a failed connect was refused over the transport rather than the credentials
/// or the database: the TLS handshake, the cleartext guard (28000, MySQL 08004), or a
/// server that takes only TLS connections (Postgres `pg_hba` 28000, MySQL 3159).
pub fn refused_by_transport(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => {
            matches!(db.code().as_deref(), Some("28000" | "08004" | "3159"))
        }
        _ => false,
    }
}

fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(feature = "postgres")]
mod postgres {
    use super::*;
    use sqlx::postgres::{PgConnectOptions, PgSslMode};
    use std::str::FromStr as _;

    fn pgpass_file() -> Option<std::path::PathBuf> {
        match std::env::var_os("PGPASSFILE") {
            Some(f) => Some(f.into()),
            None => std::env::var_os("HOME").map(|h| std::path::Path::new(&h).join(".pgpass")),
        }
    }

    /// A Postgres target.
    pub type PgTarget = Target<PgConnectOptions>;

    impl Target<PgConnectOptions> {
        /// From a `postgres://` URL: its TLS parameters (see [`coffer_store::transport`]),
        /// sqlx's own (`application_name`, `options`, `host`, `port`, …), and those `own`
        /// takes (returning `Ok(true)`, e.g. `row_level_security`). Any other parameter is
        /// an error naming it.
        pub fn from_url(
            url: &str,
            mut own: impl FnMut(&str, &str) -> Result<bool>,
        ) -> Result<Self> {
            let redacted = coffer_store::open::redact_url(url);
            let mut parsed = url::Url::parse(url)
                .map_err(|_| Error::config(format!("invalid Postgres URL {redacted}")))?;
            let mut tls = TlsOptions::default();
            let mut kept = Vec::new();
            let mut has_password = parsed.password().is_some_and(|p| !p.is_empty());
            for (key, value) in parsed.query_pairs() {
                if tls.take_param(Protocol::Postgres, &key, &value)? || own(&key, &value)? {
                    continue;
                }
                if !PG_URL_PARAMS.contains(&key.as_ref()) && !key.starts_with("options[") {
                    return Err(Error::config(format!(
                        "unknown Postgres URL parameter {:?} in {redacted}",
                        key.chars().take(64).collect::<String>()
                    )));
                }
                has_password |= key == "password";
                kept.push((key.into_owned(), value.into_owned()));
            }
            if kept.is_empty() {
                parsed.set_query(None);
            } else {
                parsed.query_pairs_mut().clear().extend_pairs(kept);
            }
            // sqlx also takes a password from PGPASSWORD or a pgpass file.
            has_password |= std::env::var_os("PGPASSWORD").is_some_and(|p| !p.is_empty())
                || pgpass_file().is_some_and(|f| f.is_file());
            let options = PgConnectOptions::from_str(parsed.as_str())
                .map_err(|_| Error::config(format!("invalid Postgres URL {redacted}")))?;
            Self::new(options, &tls, has_password)
        }
    }

    impl TlsConnectOptions for PgConnectOptions {
        const PROTOCOL: Protocol = Protocol::Postgres;

        fn endpoint(&self) -> (String, u16) {
            let host = match self.get_socket() {
                Some(dir) => dir.display().to_string(),
                None => self.get_host().to_owned(),
            };
            (host, self.get_port())
        }

        fn with_tls(self, tls: &ResolvedTls) -> Self {
            let mut options = self.ssl_mode(match tls.mode {
                TlsMode::Disable => PgSslMode::Disable,
                TlsMode::Allow => PgSslMode::Allow,
                TlsMode::Prefer => PgSslMode::Prefer,
                TlsMode::Require => PgSslMode::Require,
                TlsMode::VerifyCa => PgSslMode::VerifyCa,
                _ => PgSslMode::VerifyFull,
            });
            if let Some(ca) = &tls.root_cert {
                options = options.ssl_root_cert(ca);
            }
            if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
                options = options.ssl_client_cert(cert).ssl_client_key(key);
            }
            options
        }

        /// sqlx looks for `.s.PGSQL.{port}` in the directory.
        fn through(self, guard: &CleartextGuard) -> Self {
            self.socket(guard.socket_dir())
        }
    }
}

#[cfg(feature = "postgres")]
pub use postgres::PgTarget;

#[cfg(feature = "mysql")]
mod mysql {
    use super::*;
    use sqlx::mysql::{MySqlConnectOptions, MySqlSslMode};

    /// A MySQL / MariaDB target.
    pub type MySqlTarget = Target<MySqlConnectOptions>;

    impl TlsConnectOptions for MySqlConnectOptions {
        const PROTOCOL: Protocol = Protocol::Mysql;

        fn endpoint(&self) -> (String, u16) {
            let host = match self.get_socket() {
                Some(path) => path.display().to_string(),
                None => self.get_host().to_owned(),
            };
            (host, self.get_port())
        }

        fn with_tls(self, tls: &ResolvedTls) -> Self {
            let mut options = self.ssl_mode(match tls.mode {
                TlsMode::Disable | TlsMode::Allow => MySqlSslMode::Disabled,
                TlsMode::Prefer => MySqlSslMode::Preferred,
                TlsMode::Require => MySqlSslMode::Required,
                TlsMode::VerifyCa => MySqlSslMode::VerifyCa,
                _ => MySqlSslMode::VerifyIdentity,
            });
            if let Some(ca) = &tls.root_cert {
                options = options.ssl_ca(ca);
            }
            if let (Some(cert), Some(key)) = (&tls.client_cert, &tls.client_key) {
                options = options.ssl_client_cert(cert).ssl_client_key(key);
            }
            options
        }

        fn through(self, guard: &CleartextGuard) -> Self {
            self.socket(guard.socket_path())
        }
    }
}

#[cfg(feature = "mysql")]
pub use mysql::MySqlTarget;
