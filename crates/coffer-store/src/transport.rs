//! How coffer reaches a database server: one TLS rule for every crate.
//!
//! Every Postgres and MySQL/MariaDB connection coffer makes (the Postgres and Supabase
//! stores, the SQL audit sink, the broker, and the `DATABASE_URL` coffer-env hands a
//! child) takes its TLS settings through [`TlsOptions`] and [`TlsOptions::resolve`]:
//!
//! - **libpq's and MySQL's own parameters**: Postgres `sslmode` (`disable`, `allow`,
//!   `prefer`, `require`, `verify-ca`, `verify-full`), `sslrootcert`, `sslcert`,
//!   `sslkey`; MySQL `ssl-mode` (`DISABLED`, `PREFERRED`, `REQUIRED`, `VERIFY_CA`,
//!   `VERIFY_IDENTITY`), `ssl-ca`, `ssl-cert`, `ssl-key`. A misspelt name or an unknown
//!   value is an error, never dropped.
//! - **Secure by default, beyond libpq**: to a host that is not loopback (`127.0.0.0/8`,
//!   `::1`, `localhost`) or a Unix socket, an unspecified mode is `verify-full` /
//!   `VERIFY_IDENTITY`. A weaker mode must be written out; `disable` to such a host logs
//!   a warning each time it is resolved. Loopback keeps libpq's default, `prefer`.
//! - **No cleartext password without TLS** (libpq's `require_auth` idea): where the mode
//!   does not guarantee TLS (`disable`, `allow`, `prefer`) and a password is set, the
//!   connection goes through a guard ([`guard`], feature `guard`) that refuses a server
//!   asking for the password in cleartext before the client can answer, on loopback too.
//!   `allow_cleartext_password=true` opts out.
//!
//! Where a database is and how to log in to it is one model too, [`DatabaseUrl`] (with
//! [`DatabaseKind`]): coffer-env builds the `DATABASE_URL` it hands a child from it, and
//! coffer-broker's `ConnectionParams` holds one, so a URL the one writes the other reads
//! back part for part.
//!
//! ```
//! use coffer_store::transport::{Protocol, TlsMode, TlsOptions};
//!
//! let mut tls = TlsOptions::default();
//! assert!(tls.take_param(Protocol::Postgres, "sslmode", "require")?);
//! assert!(!tls.take_param(Protocol::Postgres, "application_name", "app")?);
//! assert!(tls.take_param(Protocol::Postgres, "ssl_mode", "require").is_err());
//!
//! // Unspecified to a remote host: verify-full. To loopback: prefer.
//! let remote = TlsOptions::default().resolve(Protocol::Postgres, "db.example.com", true)?;
//! assert_eq!(remote.mode, TlsMode::VerifyFull);
//! let local = TlsOptions::default().resolve(Protocol::Postgres, "127.0.0.1", true)?;
//! assert_eq!(local.mode, TlsMode::Prefer);
//! assert!(local.guard_cleartext); // a password over a connection that may be plaintext
//! # Ok::<(), coffer_store::transport::TlsParamError>(())
//! ```

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

mod database;
#[cfg(feature = "guard")]
pub mod guard;

pub use database::{DatabaseKind, DatabaseUrl, DatabaseUrlError};

/// The wire protocol of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// PostgreSQL (and Supabase, PgBouncer, Supavisor).
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Protocol {
    /// `postgres` or `mysql`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Mysql => "mysql",
        }
    }

    /// The parameter names this protocol takes for TLS, in the order
    /// mode, root CA, client certificate, client key, then the cleartext opt-out.
    pub fn param_names(self) -> [&'static str; 5] {
        match self {
            Self::Postgres => [
                "sslmode",
                "sslrootcert",
                "sslcert",
                "sslkey",
                CLEARTEXT_PARAM,
            ],
            Self::Mysql => ["ssl-mode", "ssl-ca", "ssl-cert", "ssl-key", CLEARTEXT_PARAM],
        }
    }

    fn mode_param(self) -> &'static str {
        self.param_names()[0]
    }

    fn ca_param(self) -> &'static str {
        self.param_names()[1]
    }

    fn cert_param(self) -> &'static str {
        self.param_names()[2]
    }

    fn key_param(self) -> &'static str {
        self.param_names()[3]
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The parameter that lets a server without TLS receive the password in cleartext.
pub const CLEARTEXT_PARAM: &str = "allow_cleartext_password";

/// How much TLS a connection insists on: libpq's `sslmode`, onto which MySQL's
/// `ssl-mode` maps (`DISABLED` = `Disable`, `PREFERRED` = `Prefer`, `REQUIRED` =
/// `Require`, `VERIFY_CA` = `VerifyCa`, `VERIFY_IDENTITY` = `VerifyFull`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TlsMode {
    /// No TLS.
    Disable,
    /// Plaintext, TLS only if the server insists (sqlx connects as `disable` does).
    Allow,
    /// TLS if the server offers it, else plaintext. libpq's default; coffer's on loopback.
    Prefer,
    /// TLS, certificate not checked.
    Require,
    /// TLS, certificate checked against the trusted CAs, host name not.
    VerifyCa,
    /// TLS, certificate and host name checked. coffer's default off loopback.
    VerifyFull,
}

impl TlsMode {
    /// Parses a mode as `protocol` spells it (Postgres lower-case with `-`, MySQL
    /// upper-case with `_`; either case is accepted).
    pub fn parse(protocol: Protocol, value: &str) -> Result<Self, TlsParamError> {
        let v = value.to_ascii_lowercase();
        let mode = match (protocol, v.as_str()) {
            (Protocol::Postgres, "disable") | (Protocol::Mysql, "disabled") => Self::Disable,
            (Protocol::Postgres, "allow") => Self::Allow,
            (Protocol::Postgres, "prefer") | (Protocol::Mysql, "preferred") => Self::Prefer,
            (Protocol::Postgres, "require") | (Protocol::Mysql, "required") => Self::Require,
            (Protocol::Postgres, "verify-ca") | (Protocol::Mysql, "verify_ca") => Self::VerifyCa,
            (Protocol::Postgres, "verify-full") | (Protocol::Mysql, "verify_identity") => {
                Self::VerifyFull
            }
            _ => {
                let expected = match protocol {
                    Protocol::Postgres => {
                        "disable, allow, prefer, require, verify-ca or verify-full"
                    }
                    Protocol::Mysql => {
                        "DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
                    }
                };
                return Err(TlsParamError::new(
                    protocol.mode_param(),
                    format!("must be one of {expected}, not {:?}", clip(value)),
                ));
            }
        };
        Ok(mode)
    }

    /// The mode as `protocol` spells it (`verify-full`, `VERIFY_IDENTITY`, …).
    pub fn name(self, protocol: Protocol) -> &'static str {
        match (protocol, self) {
            (Protocol::Postgres, Self::Disable) => "disable",
            (Protocol::Postgres, Self::Allow) => "allow",
            (Protocol::Postgres, Self::Prefer) => "prefer",
            (Protocol::Postgres, Self::Require) => "require",
            (Protocol::Postgres, Self::VerifyCa) => "verify-ca",
            (Protocol::Postgres, Self::VerifyFull) => "verify-full",
            (Protocol::Mysql, Self::Disable | Self::Allow) => "DISABLED",
            (Protocol::Mysql, Self::Prefer) => "PREFERRED",
            (Protocol::Mysql, Self::Require) => "REQUIRED",
            (Protocol::Mysql, Self::VerifyCa) => "VERIFY_CA",
            (Protocol::Mysql, Self::VerifyFull) => "VERIFY_IDENTITY",
        }
    }

    /// Whether every connection in this mode is encrypted (`require` and stricter).
    pub fn guarantees_tls(self) -> bool {
        self >= Self::Require
    }
}

/// A TLS parameter that was wrong: which one and why. Never holds a password.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsParamError {
    /// The parameter (`sslmode`, `ssl-ca`, …).
    pub param: String,
    /// What was wrong with it.
    pub reason: String,
}

impl TlsParamError {
    fn new(param: &str, reason: impl Into<String>) -> Self {
        Self {
            param: param.to_owned(),
            reason: reason.into(),
        }
    }
}

impl fmt::Display for TlsParamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.param, self.reason)
    }
}

impl std::error::Error for TlsParamError {}

impl From<TlsParamError> for crate::Error {
    fn from(e: TlsParamError) -> Self {
        crate::Error::config(e.to_string())
    }
}

/// TLS settings as written in a URL or a connection entry, before the host is known.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct TlsOptions {
    /// The mode as written (`None`: the default for the host, see [`TlsOptions::resolve`]).
    pub mode: Option<TlsMode>,
    /// A PEM file of CAs to trust besides the Mozilla roots (`sslrootcert`, `ssl-ca`).
    pub root_cert: Option<PathBuf>,
    /// A PEM client certificate (`sslcert`, `ssl-cert`).
    pub client_cert: Option<PathBuf>,
    /// Its PEM private key (`sslkey`, `ssl-key`).
    pub client_key: Option<PathBuf>,
    /// Lets a server on a connection without TLS receive the password in cleartext.
    pub allow_cleartext_password: bool,
}

impl TlsOptions {
    /// Options with `mode` written out.
    pub fn with_mode(mode: TlsMode) -> Self {
        Self {
            mode: Some(mode),
            ..Self::default()
        }
    }

    /// Takes one query parameter if it is one of `protocol`'s TLS parameters
    /// (`Ok(true)`), leaves it (`Ok(false)`), or refuses a misspelling of one
    /// (`ssl_mode`, `sslmode` for MySQL, `ssl-rootcert`, …) or a bad value.
    pub fn take_param(
        &mut self,
        protocol: Protocol,
        key: &str,
        value: &str,
    ) -> Result<bool, TlsParamError> {
        let [mode, ca, cert, key_param, cleartext] = protocol.param_names();
        let path = |v: &str, param: &str| -> Result<PathBuf, TlsParamError> {
            if v.is_empty() {
                return Err(TlsParamError::new(param, "names no file"));
            }
            if v == "system" && param == ca {
                return Err(TlsParamError::new(
                    param,
                    "=system is not supported: coffer trusts the Mozilla roots by default; \
                     name a PEM file to trust a private CA as well",
                ));
            }
            Ok(PathBuf::from(v))
        };
        match key {
            k if k == mode => self.mode = Some(TlsMode::parse(protocol, value)?),
            k if k == ca => self.root_cert = Some(path(value, ca)?),
            k if k == cert => self.client_cert = Some(path(value, cert)?),
            k if k == key_param => self.client_key = Some(path(value, key_param)?),
            k if k == cleartext => {
                self.allow_cleartext_password = crate::open::flag_value(value)
                    .ok_or_else(|| TlsParamError::new(cleartext, "must be true or false"))?;
            }
            k if looks_like_tls_param(k) => {
                return Err(TlsParamError::new(
                    k,
                    format!(
                        "is not a {protocol} TLS parameter; {protocol} takes {}",
                        protocol.param_names().join(", ")
                    ),
                ));
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The one rule: the effective settings to `host` (a name, an IP address, or a
    /// Unix socket directory starting with `/`), with a password set or not.
    ///
    /// - Unspecified mode: `verify-full` off loopback, `prefer` on loopback or a socket.
    /// - `disable` to a host off loopback logs a warning.
    /// - `sslcert` and `sslkey` go together; every named file must be readable.
    /// - `guard_cleartext` is set where a password could reach a server without TLS.
    pub fn resolve(
        &self,
        protocol: Protocol,
        host: &str,
        has_password: bool,
    ) -> Result<ResolvedTls, TlsParamError> {
        let local = is_local(host);
        let mode = self.mode.unwrap_or(if local {
            TlsMode::Prefer
        } else {
            TlsMode::VerifyFull
        });
        if mode == TlsMode::Disable && !local {
            tracing::warn!(
                host = %clip(host),
                "{protocol} connection to a host off loopback without TLS ({}={}): \
                 passwords and secrets cross the network in the clear",
                protocol.mode_param(),
                mode.name(protocol),
            );
        }
        match (&self.client_cert, &self.client_key) {
            (Some(_), None) => {
                return Err(TlsParamError::new(
                    protocol.cert_param(),
                    format!(
                        "needs {} (the client certificate's key)",
                        protocol.key_param()
                    ),
                ));
            }
            (None, Some(_)) => {
                return Err(TlsParamError::new(
                    protocol.key_param(),
                    format!("needs {} (the client certificate)", protocol.cert_param()),
                ));
            }
            _ => {}
        }
        for (param, file) in [
            (protocol.ca_param(), &self.root_cert),
            (protocol.cert_param(), &self.client_cert),
            (protocol.key_param(), &self.client_key),
        ] {
            if let Some(file) = file {
                readable(param, file)?;
            }
        }
        if mode == TlsMode::Disable && (self.root_cert.is_some() || self.client_cert.is_some()) {
            return Err(TlsParamError::new(
                protocol.mode_param(),
                format!(
                    "={} contradicts the certificates also given",
                    mode.name(protocol)
                ),
            ));
        }
        Ok(ResolvedTls {
            protocol,
            mode,
            root_cert: self.root_cert.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            local,
            // A Unix socket is local IPC behind file permissions, not a network path.
            guard_cleartext: has_password
                && !mode.guarantees_tls()
                && !self.allow_cleartext_password
                && !host.starts_with('/'),
        })
    }

    /// The parameters as `protocol` writes them in a URL, for a mode written out or
    /// `effective` (the mode to write when none was).
    pub fn to_params(
        &self,
        protocol: Protocol,
        effective: Option<TlsMode>,
    ) -> Vec<(String, String)> {
        let [mode, ca, cert, key, cleartext] = protocol.param_names();
        let mut out = Vec::new();
        if let Some(m) = self.mode.or(effective) {
            out.push((mode.to_owned(), m.name(protocol).to_owned()));
        }
        for (name, file) in [
            (ca, &self.root_cert),
            (cert, &self.client_cert),
            (key, &self.client_key),
        ] {
            if let Some(f) = file {
                out.push((name.to_owned(), f.display().to_string()));
            }
        }
        if self.allow_cleartext_password {
            out.push((cleartext.to_owned(), "true".to_owned()));
        }
        out
    }
}

/// The effective TLS settings of one connection target (from [`TlsOptions::resolve`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedTls {
    /// The protocol.
    pub protocol: Protocol,
    /// The effective mode.
    pub mode: TlsMode,
    /// CAs to trust besides the Mozilla roots.
    pub root_cert: Option<PathBuf>,
    /// The client certificate.
    pub client_cert: Option<PathBuf>,
    /// The client key.
    pub client_key: Option<PathBuf>,
    /// The host is loopback or a Unix socket.
    pub local: bool,
    /// A password could reach a server without TLS: connect through
    /// [`guard::CleartextGuard`] so that a request for it in cleartext is refused.
    pub guard_cleartext: bool,
}

/// Whether `host` is loopback (`127.0.0.0/8`, `::1`, `localhost`) or a Unix socket
/// directory (`/…`). Every other host is remote, whatever network it is on.
pub fn is_local(host: &str) -> bool {
    let host = host.trim_matches(['[', ']']);
    if host.starts_with('/') || host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match host.parse::<IpAddr>() {
        Ok(IpAddr::V4(v4)) => v4.is_loopback(),
        Ok(IpAddr::V6(v6)) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}

/// What failed while connecting, in words a person can act on: the host, the step
/// (no TLS on the server, unknown CA, name mismatch, expired certificate, client
/// certificate refused, cleartext password refused) and the parameter that fixes it.
/// `detail` is the driver's error text (never holding a password); the result holds
/// no URL.
///
/// ```
/// use coffer_store::transport::{Protocol, connect_failure};
///
/// let m = connect_failure(Protocol::Postgres, "db.example.com", 5432,
///     "error occurred while attempting to establish a TLS connection: invalid peer certificate: UnknownIssuer");
/// assert!(m.contains("db.example.com:5432") && m.contains("sslrootcert"));
/// ```
pub fn connect_failure(protocol: Protocol, host: &str, port: u16, detail: &str) -> String {
    let [mode, ca, cert, key, _] = protocol.param_names();
    let verify = TlsMode::VerifyFull.name(protocol);
    let d = detail.to_ascii_lowercase();
    let why = if d.contains("coffer refused") {
        format!(
            "the server asked for the password in cleartext over a connection without TLS, \
             and coffer refused to send it; use {mode}={verify} (or {CLEARTEXT_PARAM}=true \
             if the network is trusted)"
        )
    } else if d.contains("does not support tls")
        || d.contains("server does not support ssl")
        || d.contains("tls upgrade required by connect options")
    {
        format!(
            "the server has no TLS; enable TLS on the server, or write {mode}=disable to connect in plaintext"
        )
    } else if d.contains("unknownissuer")
        || d.contains("unknown ca")
        || d.contains("invalid certificate") && d.contains("issuer")
    {
        format!(
            "the server's certificate is signed by a CA coffer does not trust; set {ca} to the CA's PEM file"
        )
    } else if d.contains("notvalidforname") || d.contains("not valid for name") {
        format!(
            "the server's certificate is not for the host name {host:?}; connect by a name the \
             certificate lists, or use {mode}={} to skip the name check",
            TlsMode::VerifyCa.name(protocol)
        )
    } else if d.contains("expired") || d.contains("notvalidyet") {
        "the server's certificate is expired or not yet valid".to_owned()
    } else if d.contains("certificaterequired")
        || d.contains("certificate required")
        || d.contains("badcertificate")
        || d.contains("bad certificate")
        || d.contains("unknownca") && d.contains("alert")
    {
        format!("the server refused the client certificate (or needs one); set {cert} and {key}")
    } else if (d.contains("pg_hba.conf") && d.contains("no encryption"))
        || d.contains("insecure transport")
        || d.contains("require_secure_transport")
    {
        format!("the server accepts only TLS connections; use {mode}={verify}")
    } else if d.contains("tls") || d.contains("certificate") || d.contains("handshake") {
        format!("the TLS handshake failed ({})", clip_long(detail))
    } else {
        format!("cannot connect ({})", clip_long(detail))
    };
    format!("{protocol} at {}:{port}: {why}", clip(host))
}

fn readable(param: &str, file: &Path) -> Result<(), TlsParamError> {
    match std::fs::metadata(file) {
        Ok(m) if m.is_file() => Ok(()),
        Ok(_) => Err(TlsParamError::new(
            param,
            format!("{} is not a file", file.display()),
        )),
        Err(e) => Err(TlsParamError::new(
            param,
            format!("cannot read {}: {}", file.display(), e.kind()),
        )),
    }
}

fn looks_like_tls_param(key: &str) -> bool {
    let k = key.to_ascii_lowercase().replace(['-', '_'], "");
    k.starts_with("ssl") || k.starts_with("tls") || k.contains("cleartext")
}

/// A driver's message as it may appear in an error: at most 240 characters.
fn clip_long(s: &str) -> String {
    s.chars().take(240).collect()
}

/// A value as it may appear in an error: at most 64 characters.
fn clip(s: &str) -> String {
    s.chars().take(64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resolve(protocol: Protocol, mode: Option<&str>, host: &str) -> ResolvedTls {
        let mut o = TlsOptions::default();
        if let Some(m) = mode {
            o.take_param(protocol, protocol.mode_param(), m).unwrap();
        }
        o.resolve(protocol, host, true).unwrap()
    }

    #[test]
    fn remote_hosts_default_to_verified_tls() {
        for host in [
            "db.example.com",
            "10.0.0.5",
            "192.168.1.1",
            "2001:db8::1",
            "[2001:db8::1]",
            "0.0.0.0",
            "localhost.evil.com",
            "128.0.0.1",
        ] {
            assert_eq!(
                resolve(Protocol::Postgres, None, host).mode,
                TlsMode::VerifyFull,
                "{host}"
            );
            assert_eq!(
                resolve(Protocol::Mysql, None, host).mode,
                TlsMode::VerifyFull,
                "{host}"
            );
            assert!(!resolve(Protocol::Postgres, None, host).guard_cleartext);
        }
    }

    #[test]
    fn loopback_and_sockets_default_to_prefer_behind_the_guard() {
        for host in [
            "127.0.0.1",
            "127.3.4.5",
            "::1",
            "[::1]",
            "localhost",
            "LOCALHOST",
            "/var/run/postgresql",
            "::ffff:127.0.0.1",
        ] {
            let r = resolve(Protocol::Postgres, None, host);
            assert_eq!(r.mode, TlsMode::Prefer, "{host}");
            assert!(r.local, "{host}");
            assert_eq!(r.guard_cleartext, !host.starts_with('/'), "{host}");
        }
    }

    #[test]
    fn weaker_modes_to_remote_hosts_are_taken_only_when_written() {
        let r = resolve(Protocol::Postgres, Some("disable"), "db.example.com");
        assert_eq!(r.mode, TlsMode::Disable);
        assert!(r.guard_cleartext);
        let r = resolve(Protocol::Postgres, Some("require"), "db.example.com");
        assert_eq!(r.mode, TlsMode::Require);
        assert!(!r.guard_cleartext);
        let r = resolve(Protocol::Mysql, Some("PREFERRED"), "db.example.com");
        assert_eq!(r.mode, TlsMode::Prefer);
        assert_eq!(
            resolve(Protocol::Mysql, Some("verify_identity"), "h").mode,
            TlsMode::VerifyFull
        );
    }

    #[test]
    fn the_cleartext_guard_is_off_without_a_password_or_with_the_opt_out() {
        let o = TlsOptions::default();
        assert!(
            !o.resolve(Protocol::Postgres, "127.0.0.1", false)
                .unwrap()
                .guard_cleartext
        );
        let mut o = TlsOptions::default();
        assert!(
            o.take_param(Protocol::Postgres, CLEARTEXT_PARAM, "true")
                .unwrap()
        );
        assert!(
            !o.resolve(Protocol::Postgres, "127.0.0.1", true)
                .unwrap()
                .guard_cleartext
        );
    }

    #[test]
    fn misspelt_or_foreign_parameters_are_refused() {
        let mut o = TlsOptions::default();
        for (protocol, key, value) in [
            (Protocol::Postgres, "ssl_mode", "require"),
            (Protocol::Postgres, "ssl-mode", "require"),
            (Protocol::Postgres, "sslrootcrt", "/x"),
            (Protocol::Postgres, "ssl", "true"),
            (Protocol::Mysql, "sslmode", "REQUIRED"),
            (Protocol::Mysql, "sslca", "/x"),
            (Protocol::Postgres, "sslmode", "verify_full"),
            (Protocol::Postgres, "sslmode", "VERIFY_IDENTITY"),
            (Protocol::Mysql, "ssl-mode", "verify-full"),
            (Protocol::Postgres, CLEARTEXT_PARAM, "maybe"),
            (Protocol::Postgres, "sslrootcert", "system"),
            (Protocol::Postgres, "sslrootcert", ""),
        ] {
            let e = o.take_param(protocol, key, value).unwrap_err();
            assert!(!e.param.is_empty(), "{key}={value}");
        }
        assert!(
            !o.take_param(Protocol::Postgres, "application_name", "x")
                .unwrap()
        );
        assert_eq!(o, TlsOptions::default());
    }

    #[test]
    fn certificate_files_must_exist_and_come_in_pairs() {
        let mut o = TlsOptions::default();
        o.take_param(Protocol::Postgres, "sslcert", "/nonexistent/c.pem")
            .unwrap();
        let e = o.resolve(Protocol::Postgres, "h", false).unwrap_err();
        assert_eq!(e.param, "sslcert");
        o.take_param(Protocol::Postgres, "sslkey", "/nonexistent/k.pem")
            .unwrap();
        let e = o.resolve(Protocol::Postgres, "h", false).unwrap_err();
        assert!(e.reason.contains("cannot read"), "{e}");
    }

    #[test]
    fn params_round_trip_as_each_protocol_spells_them() {
        let mut o = TlsOptions::default();
        o.take_param(Protocol::Mysql, "ssl-mode", "VERIFY_CA")
            .unwrap();
        o.take_param(Protocol::Mysql, "ssl-ca", "/ca.pem").unwrap();
        assert_eq!(
            o.to_params(Protocol::Mysql, None),
            [
                ("ssl-mode".to_owned(), "VERIFY_CA".to_owned()),
                ("ssl-ca".to_owned(), "/ca.pem".to_owned())
            ]
        );
        let none = TlsOptions::default();
        assert_eq!(
            none.to_params(Protocol::Postgres, Some(TlsMode::VerifyFull)),
            [("sslmode".to_owned(), "verify-full".to_owned())]
        );
    }

    #[test]
    fn connect_failures_name_the_host_the_step_and_the_fix() {
        let cases = [
            ("invalid peer certificate: UnknownIssuer", "sslrootcert"),
            ("invalid peer certificate: NotValidForName", "verify-ca"),
            ("server does not support TLS", "sslmode=disable"),
            ("received fatal alert: CertificateRequired", "sslcert"),
            ("invalid peer certificate: Expired", "expired"),
            ("coffer refused: cleartext password", CLEARTEXT_PARAM),
            (
                "no pg_hba.conf entry for host \"127.0.0.1\", user \"u\", database \"d\", no encryption",
                "verify-full",
            ),
        ];
        for (detail, fix) in cases {
            let m = connect_failure(Protocol::Postgres, "db.example.com", 5432, detail);
            assert!(m.starts_with("postgres at db.example.com:5432: "), "{m}");
            assert!(m.contains(fix), "{detail}: {m}");
        }
        let m = connect_failure(
            Protocol::Mysql,
            "h",
            3306,
            "Connections using insecure transport are prohibited while --require_secure_transport=ON.",
        );
        assert!(m.contains("ssl-mode=VERIFY_IDENTITY"), "{m}");
    }
}
