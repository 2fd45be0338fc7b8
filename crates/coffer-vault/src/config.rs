//! Configuration: Vault's own conventions (`VAULT_ADDR`, `VAULT_TOKEN`,
//! `VAULT_NAMESPACE`, `VAULT_CACERT`) and `vault+http(s)://` URLs.

use std::path::PathBuf;
use std::time::Duration;

use coffer_envelope::KeyringHandle;
use coffer_store::{Error, Result};
use secrecy::SecretString;

/// How the store authenticates.
#[derive(Clone)]
#[non_exhaustive]
pub enum Auth {
    /// A fixed token (`VAULT_TOKEN`). When it expires the store cannot log in again.
    Token(SecretString),
    /// AppRole: the store logs in, renews its token before it expires, and logs in
    /// again when the token is expired or revoked, without failing the caller's request.
    AppRole {
        /// The auth mount (`approle` by default).
        mount: String,
        /// The role id (not secret on its own).
        role_id: String,
        /// The secret id.
        secret_id: SecretString,
    },
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auth::Token(_) => f.write_str("Token([REDACTED])"),
            Auth::AppRole { mount, role_id, .. } => f
                .debug_struct("AppRole")
                .field("mount", mount)
                .field("role_id", role_id)
                .field("secret_id", &"[REDACTED]")
                .finish(),
        }
    }
}

/// The AppRole auth mount when none is named.
pub const APPROLE_MOUNT: &str = "approle";

impl Auth {
    /// The credentials the environment gives, as Vault's own tools look for them:
    /// `VAULT_TOKEN`; else AppRole from `VAULT_ROLE_ID` (or `VAULT_ROLE_ID_FILE`) and
    /// `VAULT_SECRET_ID` (or `VAULT_SECRET_ID_FILE`), logging in at `approle_mount`;
    /// else the token the Vault CLI saved in `~/.vault-token` after `vault login`.
    pub fn from_env(approle_mount: &str) -> Result<Self> {
        if let Some(token) = env("VAULT_TOKEN") {
            return Ok(Auth::Token(SecretString::from(token)));
        }
        let role_id = env_or_file("VAULT_ROLE_ID")?;
        let secret_id = env_or_file("VAULT_SECRET_ID")?;
        match (role_id, secret_id) {
            (Some(role_id), Some(secret_id)) => {
                return Ok(Auth::AppRole {
                    mount: approle_mount.to_owned(),
                    role_id,
                    secret_id: SecretString::from(secret_id),
                });
            }
            (Some(_), None) | (None, Some(_)) => {
                return Err(Error::config(
                    "vault: AppRole needs both VAULT_ROLE_ID (or VAULT_ROLE_ID_FILE) and \
                     VAULT_SECRET_ID (or VAULT_SECRET_ID_FILE)",
                ));
            }
            (None, None) => {}
        }
        if let Some(home) = std::env::var_os("HOME") {
            let path = PathBuf::from(home).join(".vault-token");
            match std::fs::read_to_string(&path) {
                Ok(token) if !token.trim().is_empty() => {
                    return Ok(Auth::Token(SecretString::from(token.trim().to_owned())));
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(Error::config(format!(
                        "vault: cannot read {}: {}",
                        path.display(),
                        e.kind()
                    )));
                }
            }
        }
        Err(Error::config(
            "vault: no credentials: set VAULT_TOKEN, or VAULT_ROLE_ID and VAULT_SECRET_ID \
             (AppRole; _FILE variants read them from files), or log in with `vault login` \
             (~/.vault-token)",
        ))
    }
}

/// A variable's value, or the trimmed contents of the file its `_FILE` variant names.
fn env_or_file(name: &str) -> Result<Option<String>> {
    if let Some(value) = env(name) {
        return Ok(Some(value));
    }
    let Some(path) = env(&format!("{name}_FILE")) else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(&path).map_err(|e| {
        Error::config(format!(
            "vault: cannot read {name}_FILE {path}: {}",
            e.kind()
        ))
    })?;
    let text = text.trim().to_owned();
    if text.is_empty() {
        return Err(Error::config(format!("vault: {name}_FILE {path} is empty")));
    }
    Ok(Some(text))
}

/// Where secrets live under a mount: `{before}{scope}{after}{name}`, from a template
/// such as `apps/{scope}/{name}` ([`VaultConfig::layout`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// The folder that holds one folder per scope (empty or ending in `/`).
    pub(crate) before: String,
    /// Between the scope and the name (starts and ends with `/`).
    pub(crate) after: String,
}

impl Layout {
    /// Parses a template: `{scope}` once, as a whole segment, and `{name}` at the end.
    pub(crate) fn parse(template: &str) -> Result<Self> {
        let bad = |why: &str| {
            Error::config(format!(
                "vault: layout {template:?} {why}; e.g. apps/{{scope}}/{{name}} or \
                 {{scope}}/llm/{{name}}"
            ))
        };
        let template = template.trim_start_matches('/');
        let Some(rest) = template.strip_suffix("{name}") else {
            return Err(bad("must end with {name}"));
        };
        let (before, after) = rest
            .split_once("{scope}")
            .ok_or_else(|| bad("must hold {scope}"))?;
        if after.contains("{scope}") || rest.contains("{name}") {
            return Err(bad("must hold {scope} and {name} once each"));
        }
        if !(before.is_empty() || before.ends_with('/'))
            || !after.starts_with('/')
            || !after.ends_with('/')
        {
            return Err(bad(
                "must have {scope} as a whole path segment before {name}",
            ));
        }
        if before.contains("//")
            || after.contains("//")
            || before.contains('{')
            || after.contains('{')
        {
            return Err(bad("has an empty segment or an unknown placeholder"));
        }
        Ok(Self {
            before: before.to_owned(),
            after: after.to_owned(),
        })
    }

    /// `{prefix}/{scope}/{name}`.
    pub(crate) fn under_prefix(prefix: &str) -> Self {
        Self {
            before: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            after: "/".to_owned(),
        }
    }

    /// The layout a configuration says.
    pub(crate) fn of(config: &VaultConfig) -> Result<Self> {
        match &config.layout {
            Some(t) => Self::parse(t),
            None => Ok(Self::under_prefix(&config.prefix)),
        }
    }

    /// The folder of one scope's secrets.
    pub(crate) fn scope_dir(&self, scope: &str) -> String {
        format!("{}{scope}{}", self.before, self.after)
    }
}

/// Which KV secrets engine version the mount runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KvVersion {
    /// KV v1: no versions, no check-and-set, no metadata endpoint.
    V1,
    /// KV v2 (the default): versions, `cas`, soft delete, `custom_metadata`.
    V2,
}

/// Everything a [`VaultStore`](crate::VaultStore) needs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VaultConfig {
    /// The server, e.g. `http://127.0.0.1:8200`.
    pub address: String,
    /// How to authenticate.
    pub auth: Auth,
    /// `X-Vault-Namespace` (Vault Enterprise / OpenBao namespaces).
    pub namespace: Option<String>,
    /// A PEM CA bundle to trust for `https` (`VAULT_CACERT`), besides the system's.
    pub ca_cert: Option<PathBuf>,
    /// A directory of PEM CA files to trust (`VAULT_CAPATH`).
    pub ca_path: Option<PathBuf>,
    /// A PEM client certificate for TLS client authentication (`VAULT_CLIENT_CERT`).
    pub client_cert: Option<PathBuf>,
    /// Its PEM private key (`VAULT_CLIENT_KEY`).
    pub client_key: Option<PathBuf>,
    /// The name the server's certificate must carry, when it differs from the host in
    /// the address (`VAULT_TLS_SERVER_NAME`).
    pub tls_server_name: Option<String>,
    /// Accept any server certificate (`VAULT_SKIP_VERIFY`): logged as a warning at every
    /// start, for test servers only.
    pub skip_verify: bool,
    /// Allow `http://` to a host off loopback (`?insecure_http=true`): the token and
    /// every value then cross the network in the clear.
    pub insecure_http: bool,
    /// The KV mount (`secret` by default).
    pub mount: String,
    /// The KV engine version of the mount.
    pub kv_version: KvVersion,
    /// Path prefix under the mount (`coffer` by default): secrets live at
    /// `{mount}/{prefix}/{scope}/{name}`, unless [`layout`](Self::layout) says otherwise.
    pub prefix: String,
    /// Where a secret lives under the mount, as a template holding `{scope}` once, as a
    /// whole path segment, and ending in `{name}`: `apps/{scope}/{name}`,
    /// `{scope}/llm/{name}`, … (`?layout=`). `None`: `{prefix}/{scope}/{name}`.
    pub layout: Option<String>,
    /// The data field that holds the value (`value` by default, `?field=`): what
    /// `vault kv get -field=…` prints. Other fields of a secret written elsewhere are
    /// left alone on read.
    pub field: String,
    /// Whether the URL asked for client-side sealing (`?seal=true`): then
    /// [`VaultStore::connect_url`](crate::VaultStore::connect_url) requires a keyring.
    /// Off by default: Vault encrypts at rest, and other Vault clients read the values.
    pub seal: bool,
    /// Timeout of every request.
    pub timeout: Duration,
    /// Retries of a request that failed as `Unavailable` (sealed, refused, timed out).
    pub retries: u32,
    /// Seal values with this keyring before they reach Vault (off by default).
    pub sealing: Option<KeyringHandle>,
    /// The KV v2 path under the mount where the keyring kept in the store lives
    /// ([`VaultKeyring`](crate::VaultKeyring); `coffer-keyring` by default, outside the
    /// secrets' prefix, so no scope can name it).
    pub keyring_path: String,
}

/// Where the keyring kept in the store lives under the mount by default.
pub const DEFAULT_KEYRING_PATH: &str = "coffer-keyring";

/// The default request timeout.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

impl VaultConfig {
    /// A configuration for `address` with `auth` and the defaults: mount `secret`
    /// (KV v2), prefix `coffer`, 5 s timeout, 2 retries, no sealing.
    pub fn new(address: impl Into<String>, auth: Auth) -> Self {
        Self {
            address: address.into(),
            auth,
            namespace: None,
            ca_cert: None,
            ca_path: None,
            client_cert: None,
            client_key: None,
            tls_server_name: None,
            skip_verify: false,
            insecure_http: false,
            mount: "secret".to_owned(),
            kv_version: KvVersion::V2,
            prefix: "coffer".to_owned(),
            layout: None,
            field: crate::VALUE_FIELD.to_owned(),
            seal: false,
            timeout: DEFAULT_TIMEOUT,
            retries: 2,
            sealing: None,
            keyring_path: DEFAULT_KEYRING_PATH.to_owned(),
        }
    }

    /// From Vault's environment variables, as the Vault CLI reads them: `VAULT_ADDR`
    /// (required), the credentials as [`Auth::from_env`] finds them, `VAULT_NAMESPACE`,
    /// and TLS: `VAULT_CACERT`, `VAULT_CAPATH`, `VAULT_CLIENT_CERT`, `VAULT_CLIENT_KEY`,
    /// `VAULT_TLS_SERVER_NAME`, `VAULT_SKIP_VERIFY`.
    pub fn from_env() -> Result<Self> {
        let address = env("VAULT_ADDR").ok_or_else(|| Error::config("VAULT_ADDR is not set"))?;
        let mut config = Self::new(address, Auth::from_env(APPROLE_MOUNT)?);
        config.namespace = env("VAULT_NAMESPACE");
        config.tls_from_env()?;
        Ok(config)
    }

    /// Reads the TLS variables (`VAULT_CACERT`, `VAULT_CAPATH`, `VAULT_CLIENT_CERT`,
    /// `VAULT_CLIENT_KEY`, `VAULT_TLS_SERVER_NAME`, `VAULT_SKIP_VERIFY`) into this
    /// configuration. A `VAULT_SKIP_VERIFY` that is not a boolean is an error.
    pub fn tls_from_env(&mut self) -> Result<()> {
        self.ca_cert = env("VAULT_CACERT").map(PathBuf::from);
        self.ca_path = env("VAULT_CAPATH").map(PathBuf::from);
        self.client_cert = env("VAULT_CLIENT_CERT").map(PathBuf::from);
        self.client_key = env("VAULT_CLIENT_KEY").map(PathBuf::from);
        self.tls_server_name = env("VAULT_TLS_SERVER_NAME");
        self.skip_verify = match env("VAULT_SKIP_VERIFY").as_deref() {
            None => false,
            // Go's strconv.ParseBool, which the Vault CLI uses.
            Some("1" | "t" | "T" | "true" | "TRUE" | "True") => true,
            Some("0" | "f" | "F" | "false" | "FALSE" | "False") => false,
            Some(_) => return Err(Error::config("VAULT_SKIP_VERIFY must be true or false")),
        };
        Ok(())
    }

    /// Checks the transport settings without connecting: `http://` only to loopback
    /// unless [`insecure_http`](Self::insecure_http), and a client certificate with its
    /// key. [`VaultStore::connect`](crate::VaultStore::connect) runs it too.
    ///
    /// ```
    /// use coffer_vault::{Auth, VaultConfig};
    /// let remote = VaultConfig::new("http://vault.example.com:8200", Auth::Token("t".to_owned().into()));
    /// assert!(remote.check().is_err());
    /// ```
    pub fn check(&self) -> Result<()> {
        self.check_transport().map(|_| ())
    }

    pub(crate) fn check_transport(&self) -> Result<url::Url> {
        let redacted = coffer_store::open::redact_url(&self.address);
        let address = url::Url::parse(&self.address)
            .map_err(|_| Error::config(format!("invalid Vault address {redacted}")))?;
        let host = address.host_str().unwrap_or_default();
        match address.scheme() {
            "https" => {}
            "http" if self.insecure_http || coffer_store::transport::is_local(host) => {}
            "http" => {
                return Err(Error::config(format!(
                    "vault: http:// to {host}, a host off loopback, would send the token and \
                     every secret in the clear; use https:// (vault+https://), or add \
                     ?insecure_http=true if the network is trusted"
                )));
            }
            _ => {
                return Err(Error::config(format!(
                    "Vault address must be http(s): {redacted}"
                )));
            }
        }
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(Error::config(
                "vault: VAULT_CLIENT_CERT and VAULT_CLIENT_KEY go together",
            ));
        }
        Ok(address)
    }

    /// From a `vault+http://host:port/mount?prefix=…&kv=1&timeout_ms=…` (or `vault+https`)
    /// URL; the credentials come from the environment as [`Auth::from_env`] finds them
    /// (`?approle_mount=` names AppRole's mount), the namespace and TLS settings from the
    /// other `VAULT_*` variables ([`tls_from_env`](Self::tls_from_env)). Parameters:
    /// `prefix`, `layout` ([`layout`](Self::layout)), `field`, `seal`, `kv`,
    /// `keyring_path`, `timeout_ms`, `namespace`, `insecure_http`, `approle_mount`.
    /// `vault+http://` to a host off loopback is refused unless `?insecure_http=true`. A
    /// token in the URL is refused (URLs end up in logs).
    pub fn from_url(url: &str) -> Result<Self> {
        let redacted = coffer_store::open::redact_url(url);
        let rest = url
            .strip_prefix("vault+")
            .ok_or_else(|| Error::config(format!("not a vault+http(s) URL: {redacted}")))?;
        let parsed = url::Url::parse(rest)
            .map_err(|_| Error::config(format!("invalid Vault URL {redacted}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(Error::config(format!(
                "Vault URL must be vault+http or vault+https: {redacted}"
            )));
        }
        if !parsed.username().is_empty() || parsed.password().is_some() {
            return Err(Error::config(
                "put the Vault token in VAULT_TOKEN, not in the URL",
            ));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| Error::config(format!("Vault URL has no host: {redacted}")))?;
        let address = match parsed.port() {
            Some(port) => format!("{}://{host}:{port}", parsed.scheme()),
            None => format!("{}://{host}", parsed.scheme()),
        };
        let approle_mount = parsed
            .query_pairs()
            .find(|(k, _)| k == "approle_mount")
            .map_or_else(|| APPROLE_MOUNT.to_owned(), |(_, v)| v.into_owned());
        let mut config = Self::new(address, Auth::from_env(&approle_mount)?);
        config.namespace = env("VAULT_NAMESPACE");
        config.tls_from_env()?;
        let mount = parsed.path().trim_matches('/');
        if !mount.is_empty() {
            config.mount = mount.to_owned();
        }
        for (key, value) in parsed.query_pairs() {
            match key.as_ref() {
                "prefix" => config.prefix = value.trim_matches('/').to_owned(),
                "layout" => {
                    Layout::parse(&value)?;
                    config.layout = Some(value.into_owned());
                }
                "field" => {
                    if value.is_empty() || value.starts_with("coffer_") {
                        return Err(Error::config(
                            "field must name a data field, not empty and not coffer_*",
                        ));
                    }
                    config.field = value.into_owned();
                }
                "seal" => config.seal = coffer_store::open::parse_flag("seal", &value)?,
                "approle_mount" => {}
                "keyring_path" => {
                    let path = value.trim_matches('/');
                    if path.is_empty() {
                        return Err(Error::config("keyring_path must not be empty"));
                    }
                    config.keyring_path = path.to_owned();
                }
                "kv" => {
                    config.kv_version = match value.as_ref() {
                        "1" => KvVersion::V1,
                        "2" => KvVersion::V2,
                        other => {
                            return Err(Error::config(format!("kv must be 1 or 2, got {other:?}")));
                        }
                    }
                }
                "timeout_ms" => {
                    let ms: u64 = value
                        .parse()
                        .map_err(|_| Error::config("timeout_ms must be a number"))?;
                    config.timeout = Duration::from_millis(ms);
                }
                "namespace" => config.namespace = Some(value.into_owned()),
                "insecure_http" => {
                    config.insecure_http = coffer_store::open::parse_flag("insecure_http", &value)?;
                }
                other => {
                    return Err(Error::config(format!(
                        "unknown Vault URL parameter {other:?}"
                    )));
                }
            }
        }
        Ok(config)
    }

    /// Sets the mount and its KV version.
    #[must_use]
    pub fn mount(mut self, mount: impl Into<String>, version: KvVersion) -> Self {
        self.mount = mount.into();
        self.kv_version = version;
        self
    }

    /// Sets the path prefix under the mount (may be empty).
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into().trim_matches('/').to_owned();
        self
    }

    /// Sets the request timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Sets the retries of `Unavailable` requests.
    #[must_use]
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// Seals values with `keyring` before they reach Vault.
    #[must_use]
    pub fn sealing(mut self, keyring: impl Into<KeyringHandle>) -> Self {
        self.sealing = Some(keyring.into());
        self
    }

    /// Sets the namespace.
    #[must_use]
    pub fn namespace(mut self, namespace: impl Into<String>) -> Self {
        self.namespace = Some(namespace.into());
        self
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}
