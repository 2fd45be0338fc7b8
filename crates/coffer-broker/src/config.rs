//! Named connections from a configuration file.

use std::collections::BTreeMap;
use std::path::Path;

use coffer_store::{Scope, SecretName, SecretStore};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};

use coffer_store::transport::{TlsMode, TlsOptions};

use crate::{BrokerError, ConnectionParams, DatabaseKind, Engine, Mode, Result};

/// One configured connection, as written in the file. Exactly one credential source:
/// `credentialsEnv` or `credentialsSecret` (`username:password`), or `urlEnv` or
/// `urlSecret` (a whole URL). SQLite takes `path` and no credentials.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
#[non_exhaustive]
pub struct NamedConnection {
    /// `postgresql` (or `postgres`), `mysql` (or `mariadb`), `sqlite`.
    #[serde(rename = "type")]
    pub kind: DatabaseKind,
    /// The server's host.
    #[serde(default)]
    pub host: Option<String>,
    /// The server's port.
    #[serde(default)]
    pub port: Option<u16>,
    /// The database name.
    #[serde(default)]
    pub database: Option<String>,
    /// The SQLite file.
    #[serde(default)]
    pub path: Option<String>,
    /// An environment variable holding `username:password`.
    #[serde(default)]
    pub credentials_env: Option<String>,
    /// A secret (in the owner's scope) holding `username:password`.
    #[serde(default)]
    pub credentials_secret: Option<String>,
    /// An environment variable holding the whole connection URL.
    #[serde(default)]
    pub url_env: Option<String>,
    /// A secret (in the owner's scope) holding the whole connection URL.
    #[serde(default)]
    pub url_secret: Option<String>,
    /// `read_only` (the default) or `read_write`.
    #[serde(default)]
    pub mode: Mode,
    /// Free text for people and agents.
    #[serde(default)]
    pub description: Option<String>,
    /// Accept a read-only connection whose role holds privileges that reach past a
    /// read-only transaction (see [`ConnectionParams::allow_privileged`]); default false.
    #[serde(default, alias = "allow_privileged")]
    pub allow_privileged: bool,
    /// Bytes one query on this connection returns at most, instead of the broker's
    /// [`Limits::byte_limit`](crate::Limits::byte_limit).
    #[serde(default, alias = "max_result_bytes")]
    pub max_result_bytes: Option<usize>,
    /// The TLS mode, in the kind's own spelling (`verify-full` for Postgres,
    /// `VERIFY_IDENTITY` for MySQL; see [`coffer_store::transport`]). Unset: verified TLS
    /// to a host off loopback.
    #[serde(default, alias = "ssl-mode", alias = "sslMode")]
    pub sslmode: Option<String>,
    /// The seed format's switch: `true` is `verify-full` / `VERIFY_IDENTITY`, `false` is
    /// `disable` / `DISABLED`. Conflicts with `sslmode`.
    #[serde(default)]
    pub ssl: Option<bool>,
    /// A PEM file of CAs to trust besides the Mozilla roots.
    #[serde(default, alias = "ssl-ca", alias = "sslRootCert")]
    pub sslrootcert: Option<String>,
    /// A PEM client certificate.
    #[serde(default, alias = "ssl-cert", alias = "sslCert")]
    pub sslcert: Option<String>,
    /// The client certificate's PEM key.
    #[serde(default, alias = "ssl-key", alias = "sslKey")]
    pub sslkey: Option<String>,
    /// Lets a server without TLS receive the password in cleartext (default false).
    #[serde(default, alias = "allowCleartextPassword")]
    pub allow_cleartext_password: bool,
}

impl NamedConnection {
    /// The TLS settings the entry writes, on top of those of its URL (if it has one).
    fn tls(&self, name: &str, base: &TlsOptions) -> Result<TlsOptions> {
        let protocol = Engine::of(self.kind)?.protocol();
        let [mode_param, ca, cert, key, cleartext] = protocol.param_names();
        let mode = match (self.ssl, &self.sslmode) {
            (Some(_), Some(_)) => {
                return Err(config_error(
                    name,
                    "ssl",
                    "conflicts with sslmode: give one",
                ));
            }
            (Some(true), None) => Some(TlsMode::VerifyFull.name(protocol).to_owned()),
            (Some(false), None) => Some(TlsMode::Disable.name(protocol).to_owned()),
            (None, m) => m.clone(),
        };
        let mut tls = base.clone();
        let flag = self.allow_cleartext_password.then(|| "true".to_owned());
        for (entry_key, param, value) in [
            ("sslmode", mode_param, &mode),
            ("sslrootcert", ca, &self.sslrootcert),
            ("sslcert", cert, &self.sslcert),
            ("sslkey", key, &self.sslkey),
            ("allowCleartextPassword", cleartext, &flag),
        ] {
            if let Some(v) = value {
                tls.take_param(protocol, param, v)
                    .map_err(|e| config_error(name, entry_key, e.reason))?;
            }
        }
        Ok(tls)
    }
}

/// The named connections of a configuration file:
/// `{"connections": {"main_db": {"type": "postgresql", "host": "…", "database": "…",
/// "port": 5432, "credentialsEnv": "MAIN_DB_CREDENTIALS"}}}`.
///
/// ```
/// use coffer_broker::NamedConnections;
///
/// let config = NamedConnections::from_json(r#"{"connections": {
///     "main_db": {"type": "postgresql", "host": "db.internal", "database": "shop",
///                 "credentialsEnv": "MAIN_DB_CREDENTIALS"},
///     "typo_db": {"type": "postgresql", "hots": "db.internal"}}}"#);
/// let err = config.unwrap_err().to_string();
/// assert!(err.contains("typo_db") && err.contains("hots"), "{err}");
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamedConnections {
    connections: BTreeMap<String, NamedConnection>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    connections: BTreeMap<String, serde_json::Value>,
}

fn config_error(name: &str, key: &str, reason: impl Into<String>) -> BrokerError {
    BrokerError::Config {
        name: name.to_owned(),
        key: key.to_owned(),
        reason: reason.into(),
    }
}

impl NamedConnections {
    /// Parses the JSON text of a configuration file. Unknown keys, missing credential
    /// sources and conflicting ones are errors naming the connection and the key.
    pub fn from_json(text: &str) -> Result<Self> {
        let file: File = serde_json::from_str(text)
            .map_err(|e| config_error("(file)", "connections", e.to_string()))?;
        let mut connections = BTreeMap::new();
        for (name, value) in file.connections {
            let conn: NamedConnection = serde_json::from_value(value).map_err(|e| {
                let text = e.to_string();
                let key = text.split('`').nth(1).unwrap_or("(entry)").to_owned();
                config_error(&name, &key, text)
            })?;
            if let Err(BrokerError::InvalidParams { reason, .. }) = Engine::of(conn.kind) {
                return Err(config_error(&name, "type", reason));
            }
            let sources = [
                ("credentialsEnv", conn.credentials_env.is_some()),
                ("credentialsSecret", conn.credentials_secret.is_some()),
                ("urlEnv", conn.url_env.is_some()),
                ("urlSecret", conn.url_secret.is_some()),
            ];
            let given: Vec<&str> = sources.iter().filter(|s| s.1).map(|s| s.0).collect();
            match (conn.kind, given.len()) {
                (DatabaseKind::Sqlite, 0) if conn.path.is_some() => {}
                (DatabaseKind::Sqlite, _) if conn.path.is_some() => {
                    return Err(config_error(&name, given[0], "SQLite takes no credentials"));
                }
                (DatabaseKind::Sqlite, _) => {
                    return Err(config_error(&name, "path", "is required for SQLite"));
                }
                (_, 0) => {
                    return Err(config_error(
                        &name,
                        "credentialsEnv",
                        "one of credentialsEnv, credentialsSecret, urlEnv or urlSecret is required",
                    ));
                }
                (_, 1) => {}
                (_, _) => {
                    return Err(config_error(
                        &name,
                        given[1],
                        format!("conflicts with {}: give one credential source", given[0]),
                    ));
                }
            }
            if conn.kind == DatabaseKind::Sqlite {
                for (key, given) in [
                    ("sslmode", conn.sslmode.is_some()),
                    ("ssl", conn.ssl.is_some()),
                    ("sslrootcert", conn.sslrootcert.is_some()),
                    ("sslcert", conn.sslcert.is_some()),
                    ("sslkey", conn.sslkey.is_some()),
                    ("allowCleartextPassword", conn.allow_cleartext_password),
                ] {
                    if given {
                        return Err(config_error(&name, key, "has no meaning for a SQLite file"));
                    }
                }
            }
            if conn.credentials_env.is_some() || conn.credentials_secret.is_some() {
                for (key, v) in [("host", &conn.host), ("database", &conn.database)] {
                    if v.is_none() {
                        return Err(config_error(&name, key, "is required"));
                    }
                }
            }
            connections.insert(name, conn);
        }
        Ok(Self { connections })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| config_error("(file)", &path.display().to_string(), e.to_string()))?;
        Self::from_json(&text)
    }

    /// The names and their (credential-free) settings.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &NamedConnection)> {
        self.connections.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// One connection's settings.
    pub fn get(&self, name: &str) -> Option<&NamedConnection> {
        self.connections.get(name)
    }

    /// Sets the mode of `name` (e.g. from a command-line `--allow-writes NAME`).
    pub fn set_mode(&mut self, name: &str, mode: Mode) -> Result<()> {
        let conn = self
            .connections
            .get_mut(name)
            .ok_or_else(|| config_error(name, "(name)", "no such connection is configured"))?;
        conn.mode = mode;
        Ok(())
    }

    /// The parameters of `name`, reading credentials from the environment or from
    /// `store` in `scope`.
    pub async fn resolve(
        &self,
        name: &str,
        store: Option<(&dyn SecretStore, &Scope)>,
    ) -> Result<ConnectionParams> {
        let conn = self
            .connections
            .get(name)
            .ok_or_else(|| config_error(name, "(name)", "no such connection is configured"))?;
        let secret = |key: &str, secret_name: &str| {
            let key = key.to_owned();
            let secret_name = secret_name.to_owned();
            async move {
                let (store, scope) = store.ok_or_else(|| {
                    config_error(name, &key, "needs a secret store, and none is configured")
                })?;
                let n = SecretName::new(secret_name.clone())
                    .map_err(|e| config_error(name, &key, e.to_string()))?;
                let s = store
                    .get(scope, &n, None)
                    .await
                    .map_err(|e| config_error(name, &key, format!("secret {secret_name}: {e}")))?;
                Ok::<SecretString, BrokerError>(s.value)
            }
        };
        let env = |key: &str, var: &str| {
            std::env::var(var).map(SecretString::from).map_err(|_| {
                config_error(name, key, format!("environment variable {var} is not set"))
            })
        };
        let mut params = if let Some(path) = &conn.path
            && conn.kind == DatabaseKind::Sqlite
        {
            ConnectionParams::sqlite(path)
        } else if let Some(var) = &conn.url_env {
            url_params(name, "urlEnv", &env("urlEnv", var)?, conn.kind)?
        } else if let Some(s) = &conn.url_secret {
            url_params(name, "urlSecret", &secret("urlSecret", s).await?, conn.kind)?
        } else {
            let (key, creds) = if let Some(var) = &conn.credentials_env {
                ("credentialsEnv", env("credentialsEnv", var)?)
            } else {
                let s = conn.credentials_secret.as_deref().unwrap_or_default();
                ("credentialsSecret", secret("credentialsSecret", s).await?)
            };
            let (user, password) = creds.expose_secret().split_once(':').ok_or_else(|| {
                config_error(name, key, "must hold username:password (no ':' found)")
            })?;
            let host = conn.host.as_deref().unwrap_or_default();
            let database = conn.database.as_deref().unwrap_or_default();
            let password = SecretString::from(password.to_owned());
            match conn.kind {
                DatabaseKind::Mysql => ConnectionParams::mysql(host, database, user, password),
                _ => ConnectionParams::postgres(host, database, user, password),
            }
        };
        if let Some(port) = conn.port {
            params = params.port(port);
        }
        if let Some(bytes) = conn.max_result_bytes {
            params = params.max_result_bytes(bytes);
        }
        if conn.kind != DatabaseKind::Sqlite {
            let tls = conn.tls(name, params.tls_options())?;
            params = params.tls(tls);
        }
        Ok(params
            .with_mode(conn.mode)
            .allow_privileged(conn.allow_privileged))
    }
}

fn url_params(
    name: &str,
    key: &str,
    url: &SecretString,
    kind: DatabaseKind,
) -> Result<ConnectionParams> {
    let params =
        ConnectionParams::from_url(url).map_err(|e| config_error(name, key, e.to_string()))?;
    if params.kind() != kind {
        return Err(config_error(
            name,
            key,
            format!("holds a {} URL, but the type is {kind}", params.kind()),
        ));
    }
    Ok(params)
}
