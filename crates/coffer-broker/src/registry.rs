//! The opt-in registry: each connection's parameters sealed with coffer-envelope in a
//! coffer `SecretStore`, so an id survives a restart and resolves on every broker that
//! shares the store and the keyring.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use coffer_envelope::{Context, Keyring};
use coffer_store::{DeleteMode, PutOptions, Scope, SecretKind, SecretName, SecretStore};
use secrecy::{ExposeSecret as _, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::params::{protocol_of, tls_error};
use crate::{BrokerError, ConnectionId, ConnectionParams, DbKind, Mode, Result};

/// Where registry entries live in each owner's scope.
pub(crate) const PREFIX: &str = "coffer-broker/connections/";

/// Keeps connection parameters for [`Broker::with_registry`](crate::Broker::with_registry):
/// a store (any coffer backend) and the keyring that seals the entries.
#[derive(Clone)]
pub struct ConnectionRegistry {
    store: Arc<dyn SecretStore>,
    keyring: Arc<Keyring>,
}

impl std::fmt::Debug for ConnectionRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionRegistry")
            .field("store", &self.store.backend())
            .finish_non_exhaustive()
    }
}

/// What is sealed per connection.
#[derive(Serialize, Deserialize)]
struct Entry {
    kind: DbKind,
    host: Option<String>,
    port: Option<u16>,
    database: Option<String>,
    user: Option<String>,
    password: Option<String>,
    path: Option<String>,
    mode: Mode,
    #[serde(default)]
    allow_privileged: bool,
    #[serde(default)]
    max_result_bytes: Option<usize>,
    /// TLS parameters as the kind's URL spells them (`sslmode`, `ssl-ca`, …).
    #[serde(default)]
    tls: Vec<(String, String)>,
    name: Option<String>,
    created_at: DateTime<Utc>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        if let Some(p) = &mut self.password {
            zeroize::Zeroize::zeroize(p);
        }
    }
}

impl ConnectionRegistry {
    /// A registry in `store`, sealing entries with `keyring`.
    pub fn new(store: Arc<dyn SecretStore>, keyring: Arc<Keyring>) -> Self {
        Self { store, keyring }
    }

    fn locate(owner: &str, id: &ConnectionId) -> Result<(Scope, SecretName)> {
        let scope = Scope::new(owner.to_owned())?;
        // Anything that is not a well-formed id cannot be in the registry.
        let hex = id.as_str().strip_prefix("conn_").unwrap_or_default();
        if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(BrokerError::NotFound);
        }
        let name = SecretName::new(format!("{PREFIX}{}", id.as_str()))?;
        Ok((scope, name))
    }

    pub(crate) async fn save(
        &self,
        owner: &str,
        id: &ConnectionId,
        params: &ConnectionParams,
        name: Option<&str>,
        created_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        let (scope, secret_name) = Self::locate(owner, id)?;
        let entry = Entry {
            kind: params.kind,
            host: params.host.clone(),
            port: params.port,
            database: params.database.clone(),
            user: params.user.clone(),
            password: params
                .password
                .as_ref()
                .map(|p| p.expose_secret().to_owned()),
            path: params.path.as_ref().map(|p| p.display().to_string()),
            mode: params.mode,
            allow_privileged: params.allow_privileged,
            max_result_bytes: params.max_result_bytes,
            tls: params.tls.to_params(protocol_of(params.kind), None),
            name: name.map(ToOwned::to_owned),
            created_at,
        };
        let json =
            Zeroizing::new(
                serde_json::to_vec(&entry).map_err(|e| BrokerError::Database {
                    code: None,
                    message: format!("cannot encode a registry entry: {e}"),
                })?,
            );
        let sealed = self
            .keyring
            .seal(&json, &Context::new(scope.as_str(), secret_name.as_str()));
        let text = SecretString::from(coffer_envelope::to_text(&sealed));
        let options = PutOptions::create_only()
            .kind(SecretKind::ConnectionString)
            .description("coffer-broker connection (sealed parameters)")
            .expires_at(expires_at);
        self.store
            .put(&scope, &secret_name, &text, &options)
            .await?;
        Ok(())
    }

    /// The parameters, name and creation time of `id`, if `owner` registered it.
    pub(crate) async fn load(
        &self,
        owner: &str,
        id: &ConnectionId,
    ) -> Result<(ConnectionParams, Option<String>, DateTime<Utc>)> {
        let (scope, secret_name) = Self::locate(owner, id)?;
        let secret = match self.store.get(&scope, &secret_name, None).await {
            Ok(s) => s,
            Err(
                coffer_store::Error::NotFound { .. }
                | coffer_store::Error::Expired { .. }
                | coffer_store::Error::Inactive { .. },
            ) => return Err(BrokerError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let sealed = coffer_envelope::from_text(secret.value.expose_secret())
            .map_err(|_| BrokerError::NotFound)?;
        let json = self
            .keyring
            .open(&sealed, &Context::new(scope.as_str(), secret_name.as_str()))
            .map_err(|_| BrokerError::NotFound)?;
        let entry: Entry = serde_json::from_slice(&json).map_err(|_| BrokerError::NotFound)?;
        let mut tls = coffer_store::transport::TlsOptions::default();
        for (key, value) in &entry.tls {
            tls.take_param(protocol_of(entry.kind), key, value)
                .map_err(tls_error)?;
        }
        let params = ConnectionParams {
            kind: entry.kind,
            host: entry.host.clone(),
            port: entry.port,
            database: entry.database.clone(),
            user: entry.user.clone(),
            password: entry.password.clone().map(SecretString::from),
            path: entry.path.clone().map(Into::into),
            mode: entry.mode,
            allow_privileged: entry.allow_privileged,
            max_result_bytes: entry.max_result_bytes,
            tls,
        };
        Ok((params, entry.name.clone(), entry.created_at))
    }

    pub(crate) async fn remove(&self, owner: &str, id: &ConnectionId) -> Result<()> {
        let (scope, secret_name) = Self::locate(owner, id)?;
        match self
            .store
            .delete(&scope, &secret_name, DeleteMode::Destroy)
            .await
        {
            Ok(()) | Err(coffer_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
