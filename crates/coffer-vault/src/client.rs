//! The authenticated connection: token handling (renewal, AppRole re-login), timeouts,
//! bounded retries and error classification. No token ever leaves this module in a
//! `Debug`, an error or a log line.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use secrecy::ExposeSecret as _;
use tokio::sync::RwLock;
use vaultrs::client::{Client as _, VaultClient, VaultClientSettingsBuilder};
use vaultrs::error::ClientError;

use crate::config::{Auth, VaultConfig};

pub(crate) const BACKEND: &str = "vault";

/// What a failed request means to the store.
#[derive(Debug)]
pub(crate) enum Failure {
    /// 404.
    NotFound,
    /// 403 (after a fresh login, for AppRole).
    Denied(String),
    /// 400 from a `cas` that did not match.
    CasMismatch,
    /// Sealed, unreachable, timed out, overloaded: transient.
    Unavailable(String),
    /// Anything else.
    Other(String),
}

impl Failure {
    pub(crate) fn into_error(self, what: &str) -> coffer_store::Error {
        use coffer_store::Error;
        match self {
            Failure::NotFound => Error::backend(BACKEND, format!("{what}: not found")),
            Failure::Denied(m) => Error::PermissionDenied {
                backend: BACKEND,
                message: format!("{what}: {m}"),
            },
            Failure::CasMismatch => {
                Error::backend(BACKEND, format!("{what}: check-and-set mismatch"))
            }
            Failure::Unavailable(m) => Error::Unavailable {
                backend: BACKEND,
                message: format!("{what}: {m}"),
                source: None,
            },
            Failure::Other(m) => Error::backend(BACKEND, format!("{what}: {m}")),
        }
    }
}

/// What a KV v2 mount says while it upgrades its storage.
const UPGRADING: &str = "Upgrading from non-versioned to versioned data";

fn by_status(code: u16, errors: &[String]) -> Failure {
    let message = if errors.is_empty() {
        format!("HTTP {code}")
    } else {
        format!("HTTP {code}: {}", errors.join("; "))
    };
    match code {
        404 => Failure::NotFound,
        403 => Failure::Denied(message),
        400 if errors.iter().any(|m| m.contains("check-and-set")) => Failure::CasMismatch,
        // A KV v2 mount upgrading its storage (just enabled, or moved up from v1) answers
        // 400 "Upgrading from non-versioned to versioned data ... will resume service
        // shortly" until it is done: transient, so retried like a sealed server.
        400 if errors.iter().any(|m| m.contains(UPGRADING)) => Failure::Unavailable(message),
        429 | 500 | 502 | 503 | 504 => Failure::Unavailable(message),
        _ => Failure::Other(message),
    }
}

fn classify(e: &ClientError) -> Failure {
    use rustify::errors::ClientError as Rest;
    match e {
        ClientError::APIError { code, errors } => by_status(*code, errors),
        ClientError::RestClientError { source } => match source {
            // An error status whose body vaultrs did not turn into an APIError (a 404 with
            // metadata for a deleted version, for one).
            Rest::ServerResponseError { code, content } => {
                let errors: Vec<String> = content
                    .as_deref()
                    .and_then(|c| serde_json::from_str::<serde_json::Value>(c).ok())
                    .and_then(|v| v.get("errors").cloned())
                    .and_then(|v| serde_json::from_value(v).ok())
                    .unwrap_or_default();
                by_status(*code, &errors)
            }
            // Connection refused, reset, timed out: the request never got an answer.
            Rest::RequestError { .. } | Rest::ResponseError { .. } => Failure::Unavailable(
                tls_failure(e).unwrap_or_else(|| "cannot reach the server".to_owned()),
            ),
            other => Failure::Other(other.to_string()),
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => Failure::NotFound,
        other => Failure::Other(other.to_string()),
    }
}

/// A TLS failure in words a person can act on, naming the variable that fixes it.
fn tls_failure(e: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut text = String::new();
    let mut next = Some(e);
    while let Some(err) = next {
        text.push_str(&err.to_string().to_ascii_lowercase());
        text.push(' ');
        next = err.source();
    }
    let why = if text.contains("unknownissuer") || text.contains("unknown issuer") {
        "the server's certificate is signed by a CA coffer does not trust; set VAULT_CACERT \
         (or VAULT_CAPATH) to the CA's PEM file"
    } else if text.contains("notvalidforname") || text.contains("not valid for name") {
        "the server's certificate is not for this host name; connect by a name it lists, or \
         set VAULT_TLS_SERVER_NAME"
    } else if text.contains("expired") {
        "the server's certificate is expired"
    } else if text.contains("certificaterequired")
        || text.contains("certificate required")
        || text.contains("badcertificate")
    {
        "the server refused the client certificate (or needs one); set VAULT_CLIENT_CERT and \
         VAULT_CLIENT_KEY"
    } else if text.contains("invalidcontenttype")
        || text.contains("wrong version number")
        || text.contains("corrupt message")
    {
        "the server does not speak TLS at this address; use http:// for a server without TLS"
    } else if text.contains("certificate") || text.contains("tls") {
        "the TLS handshake failed"
    } else {
        return None;
    };
    Some(format!("TLS: {why}"))
}

/// A boxed request future borrowing the client.
pub(crate) type Call<'a, T> = Pin<Box<dyn Future<Output = Result<T, ClientError>> + Send + 'a>>;

struct State {
    client: VaultClient,
    /// When the token should be renewed or replaced (AppRole only).
    refresh_at: Option<Instant>,
    renewable: bool,
}

pub(crate) struct Connection {
    config: VaultConfig,
    state: RwLock<State>,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("address", &self.config.address)
            .field("auth", &self.config.auth)
            .finish_non_exhaustive()
    }
}

/// The HTTP client, built here rather than by vaultrs so that every TLS setting the
/// Vault CLI takes is honored (vaultrs has no server-name override, and reads
/// `VAULT_*` itself, panicking on a `VAULT_CAPATH` entry that is not UTF-8).
fn build_client(config: &VaultConfig, token: &str) -> Result<VaultClient, coffer_store::Error> {
    use coffer_store::Error;
    let mut address = config.check_transport()?;
    let mut http = reqwest::Client::builder()
        .tls_backend_rustls()
        .timeout(config.timeout);
    if address.scheme() == "https" {
        let mut files = Vec::new();
        files.extend(config.ca_cert.clone());
        if let Some(dir) = &config.ca_path {
            let entries = std::fs::read_dir(dir).map_err(|e| {
                Error::config(format!(
                    "vault: VAULT_CAPATH {}: {}",
                    dir.display(),
                    e.kind()
                ))
            })?;
            let mut found: Vec<_> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect();
            found.sort();
            files.extend(found);
        }
        for file in &files {
            let pem = read(file, "CA certificate")?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|_| {
                Error::config(format!(
                    "vault: {} holds no PEM certificate",
                    file.display()
                ))
            })?;
            http = http.tls_certs_merge(certs);
        }
        if let (Some(cert), Some(key)) = (&config.client_cert, &config.client_key) {
            let mut pem = zeroize::Zeroizing::new(read(cert, "client certificate")?);
            pem.extend_from_slice(b"\n");
            pem.extend_from_slice(&zeroize::Zeroizing::new(read(key, "client key")?));
            let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
                Error::config("vault: VAULT_CLIENT_CERT and VAULT_CLIENT_KEY are not a PEM certificate and key")
            })?;
            http = http.identity(identity);
        }
        if config.skip_verify {
            http = http.tls_danger_accept_invalid_certs(true);
        }
        if let Some(name) = &config.tls_server_name {
            // Connect to the address's host, but verify (and send SNI for) `name`.
            let host = address
                .host_str()
                .unwrap_or_default()
                .trim_matches(['[', ']'])
                .to_owned();
            let port = address.port_or_known_default().unwrap_or(8200);
            let addrs: Vec<std::net::SocketAddr> =
                std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
                    .map_err(|e| {
                        Error::config(format!("vault: cannot resolve {host}: {}", e.kind()))
                    })?
                    .collect();
            address
                .set_host(Some(name))
                .map_err(|_| Error::config("vault: VAULT_TLS_SERVER_NAME is not a host name"))?;
            http = http.resolve_to_addrs(name, &addrs);
        }
    } else {
        // reqwest#2988: building rustls's platform verifier is not needed for http.
        http = http.tls_certs_only(Vec::new());
    }
    let http = http
        .build()
        .map_err(|e| Error::config(format!("vault: cannot build the HTTP client: {e}")))?;
    let mut settings = VaultClientSettingsBuilder::default();
    settings
        .address(address.as_str())
        .token(token)
        .timeout(Some(config.timeout))
        .ca_certs(Vec::new())
        .identity(None)
        .verify(!config.skip_verify);
    if let Some(ns) = &config.namespace {
        settings.set_namespace(ns.clone());
    }
    let settings = settings
        .build()
        .map_err(|e| Error::config(format!("vault: invalid settings: {e}")))?;
    Ok(VaultClient {
        http: rustify::clients::reqwest::Client::new(settings.address.as_str(), http),
        middle: vaultrs::api::EndpointMiddleware {
            token: settings.token.clone(),
            version: format!("v{}", settings.version),
            wrap: None,
            namespace: settings.namespace.clone(),
        },
        settings,
    })
}

fn read(file: &std::path::Path, what: &str) -> Result<Vec<u8>, coffer_store::Error> {
    std::fs::read(file).map_err(|e| {
        coffer_store::Error::config(format!("vault: {what} {}: {}", file.display(), e.kind()))
    })
}

impl Connection {
    pub(crate) async fn new(config: VaultConfig) -> Result<Self, coffer_store::Error> {
        let token = match &config.auth {
            Auth::Token(t) => t.expose_secret().to_owned(),
            Auth::AppRole { .. } => String::new(),
        };
        if config.skip_verify {
            tracing::warn!(
                address = %config.address,
                "VAULT_SKIP_VERIFY is set: the Vault server's certificate is not checked, so \
                 anyone in the path can read the token and every secret"
            );
        }
        let client = build_client(&config, &token)?;
        let connection = Self {
            state: RwLock::new(State {
                client,
                refresh_at: None,
                renewable: false,
            }),
            config,
        };
        if matches!(connection.config.auth, Auth::AppRole { .. }) {
            connection
                .login()
                .await
                .map_err(|f| f.into_error("AppRole login"))?;
        }
        Ok(connection)
    }

    pub(crate) fn config(&self) -> &VaultConfig {
        &self.config
    }

    /// Logs in with AppRole and installs the new token.
    async fn login(&self) -> Result<(), Failure> {
        let Auth::AppRole {
            mount,
            role_id,
            secret_id,
        } = &self.config.auth
        else {
            return Ok(());
        };
        let mut state = self.state.write().await;
        let info = tokio::time::timeout(
            self.config.timeout,
            vaultrs::auth::approle::login(&state.client, mount, role_id, secret_id.expose_secret()),
        )
        .await
        .map_err(|_| Failure::Unavailable("AppRole login timed out".to_owned()))?
        .map_err(|e| classify(&e))?;
        state.client.set_token(&info.client_token);
        state.refresh_at = refresh_time(info.lease_duration);
        state.renewable = info.renewable;
        tracing::debug!(ttl_s = info.lease_duration, "vault: logged in with AppRole");
        Ok(())
    }

    /// Renews (or, if it cannot, replaces) an AppRole token that is two thirds through
    /// its lifetime.
    async fn refresh_if_due(&self) {
        let (due, renewable) = {
            let state = self.state.read().await;
            (
                state.refresh_at.is_some_and(|at| Instant::now() >= at),
                state.renewable,
            )
        };
        if !due {
            return;
        }
        if renewable {
            let mut state = self.state.write().await;
            if state.refresh_at.is_some_and(|at| Instant::now() >= at) {
                match tokio::time::timeout(
                    self.config.timeout,
                    vaultrs::token::renew_self(&state.client, None),
                )
                .await
                {
                    Ok(Ok(info)) if info.lease_duration > 0 => {
                        state.refresh_at = refresh_time(info.lease_duration);
                        tracing::debug!(ttl_s = info.lease_duration, "vault: renewed the token");
                        return;
                    }
                    _ => tracing::debug!("vault: token renewal failed; logging in again"),
                }
            } else {
                return;
            }
        }
        if let Err(f) = self.login().await {
            tracing::warn!(error = ?f, "vault: AppRole login failed");
        }
    }

    /// Runs `call` with the current token: refreshes an AppRole token that is due, logs
    /// in again once on 403 (expired or revoked token), retries `Unavailable` with
    /// backoff up to the configured count, and bounds every attempt by the timeout.
    pub(crate) async fn run<T, F>(&self, call: F) -> Result<T, Failure>
    where
        F: for<'a> Fn(&'a VaultClient) -> Call<'a, T>,
    {
        let approle = matches!(self.config.auth, Auth::AppRole { .. });
        let mut relogged = false;
        let mut unavailable_tries = 0;
        let mut backoff = Duration::from_millis(100);
        loop {
            self.refresh_if_due().await;
            let result = {
                let state = self.state.read().await;
                tokio::time::timeout(self.config.timeout, call(&state.client)).await
            };
            let failure = match result {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(e)) => classify(&e),
                Err(_) => {
                    Failure::Unavailable(format!("no answer within {:?}", self.config.timeout))
                }
            };
            match failure {
                Failure::Denied(_) if approle && !relogged => {
                    relogged = true;
                    self.login().await?;
                }
                Failure::Unavailable(m) => {
                    if unavailable_tries >= self.config.retries {
                        return Err(Failure::Unavailable(m));
                    }
                    unavailable_tries += 1;
                    tokio::time::sleep(backoff).await;
                    backoff *= 2;
                }
                other => return Err(other),
            }
        }
    }
}

fn refresh_time(lease_seconds: u64) -> Option<Instant> {
    (lease_seconds > 0)
        .then(|| Instant::now() + Duration::from_millis(lease_seconds * 1000 * 2 / 3))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(code: u16, message: &str) -> Failure {
        by_status(code, &[message.to_owned()])
    }

    #[test]
    fn statuses_map_to_what_the_store_reports() {
        assert!(matches!(status(404, ""), Failure::NotFound));
        assert!(matches!(
            status(403, "permission denied"),
            Failure::Denied(_)
        ));
        assert!(matches!(
            status(
                400,
                "check-and-set parameter did not match the current version"
            ),
            Failure::CasMismatch
        ));
        assert!(matches!(
            status(
                400,
                "Upgrading from non-versioned to versioned data. This backend will be \
                 unavailable for a brief period and will resume service shortly."
            ),
            Failure::Unavailable(_)
        ));
        for code in [429, 500, 502, 503, 504] {
            assert!(
                matches!(status(code, "x"), Failure::Unavailable(_)),
                "{code}"
            );
        }
        assert!(matches!(status(400, "invalid path"), Failure::Other(_)));
    }
}
