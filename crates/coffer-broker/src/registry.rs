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

use crate::params::tls_error;
use crate::{
    BrokerError, ConnectionId, ConnectionParams, DatabaseKind, DatabaseUrl, Engine, Mode, Result,
};

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
    kind: DatabaseKind,
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
        let a = &params.address;
        let entry = Entry {
            kind: params.kind(),
            host: a.get_host().map(ToOwned::to_owned),
            port: a.get_port(),
            database: a.get_database().map(ToOwned::to_owned),
            user: a.get_user().map(ToOwned::to_owned),
            password: a.get_password().map(|p| p.expose_secret().to_owned()),
            path: a.get_path().map(|p| p.display().to_string()),
            mode: params.mode,
            allow_privileged: params.allow_privileged,
            max_result_bytes: params.max_result_bytes,
            tls: params.tls.to_params(params.engine.protocol(), None),
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
        let engine = Engine::of(entry.kind)?;
        let mut tls = coffer_store::transport::TlsOptions::default();
        for (key, value) in &entry.tls {
            tls.take_param(engine.protocol(), key, value)
                .map_err(tls_error)?;
        }
        let mut address = match &entry.path {
            Some(path) => DatabaseUrl::sqlite(path),
            None => DatabaseUrl::new(entry.kind, entry.host.clone().unwrap_or_default()),
        };
        if let Some(port) = entry.port {
            address = address.port(port);
        }
        if let Some(database) = &entry.database {
            address = address.database(database);
        }
        if let Some(user) = &entry.user {
            address = address.user(user);
        }
        if let Some(password) = &entry.password {
            address = address.password(SecretString::from(password.clone()));
        }
        let mut params = ConnectionParams::new(address)?
            .with_mode(entry.mode)
            .allow_privileged(entry.allow_privileged)
            .tls(tls);
        params.max_result_bytes = entry.max_result_bytes;
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
