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
            Rest::RequestError { .. } | Rest::ResponseError { .. } => {
                Failure::Unavailable("cannot reach the server".to_owned())
            }
            other => Failure::Other(other.to_string()),
        },
        ClientError::ResponseEmptyError | ClientError::ResponseDataEmptyError => Failure::NotFound,
        other => Failure::Other(other.to_string()),
    }
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

fn build_client(config: &VaultConfig, token: &str) -> Result<VaultClient, coffer_store::Error> {
    let mut settings = VaultClientSettingsBuilder::default();
    settings
        .address(&config.address)
        .token(token)
        .timeout(Some(config.timeout));
    if let Some(ns) = &config.namespace {
        settings.set_namespace(ns.clone());
    }
    if let Some(ca) = &config.ca_cert {
        settings.ca_certs(vec![ca.display().to_string()]);
    }
    let settings = settings
        .build()
        .map_err(|e| coffer_store::Error::config(format!("vault: invalid settings: {e}")))?;
    VaultClient::new(settings)
        .map_err(|e| coffer_store::Error::config(format!("vault: cannot build the client: {e}")))
}

impl Connection {
    pub(crate) async fn new(config: VaultConfig) -> Result<Self, coffer_store::Error> {
        let token = match &config.auth {
            Auth::Token(t) => t.expose_secret().to_owned(),
            Auth::AppRole { .. } => String::new(),
        };
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
