//! [`VaultKeyring`]: the keyring kept in the store, at a KV v2 path of the mount.

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_store::keys::{KeyringStorage, StoredKeyring};
use coffer_store::{Error, Result};
use serde_json::Value;
use vaultrs::api::kv2::requests::{ReadSecretRequest, SetSecretRequestOptions};
use vaultrs::api::kv2::responses::ReadSecretResponse;

use crate::client::{BACKEND, Connection, Failure};
use crate::config::{KvVersion, VaultConfig};

/// The field of the keyring's KV secret that holds the sealed document (base64).
const DOCUMENT_FIELD: &str = "coffer_keyring";

/// The sealed keyring of a Vault store, as one KV v2 secret at
/// `{mount}/{keyring_path}` ([`VaultConfig::keyring_path`], `coffer-keyring` by
/// default). Its generation is the KV version, and a write is a KV v2 check-and-set on
/// it (`cas`), so of two instances rotating at once exactly one wins. KV v1 has no
/// check-and-set and cannot keep the keyring. A Vault policy that lets the
/// application's token read but not write this path keeps rotation to an operator.
pub struct VaultKeyring {
    conn: Arc<Connection>,
    mount: String,
    path: String,
}

impl std::fmt::Debug for VaultKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultKeyring")
            .field("mount", &self.mount)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl VaultKeyring {
    /// Connects with `config` (its KV mount must be version 2).
    pub async fn connect(config: VaultConfig) -> Result<Self> {
        if config.kv_version != KvVersion::V2 {
            return Err(Error::Unsupported {
                backend: BACKEND,
                operation: "keeping the keyring on a KV v1 mount (it has no check-and-set)",
            });
        }
        let (mount, path) = (config.mount.clone(), config.keyring_path.clone());
        Ok(Self {
            conn: Arc::new(Connection::new(config).await?),
            mount,
            path,
        })
    }

    /// From a `vault+http(s)://…` store URL and the `VAULT_*` variables.
    pub async fn connect_url(url: &str) -> Result<Self> {
        Self::connect(VaultConfig::from_url(url)?).await
    }

    fn what(&self) -> String {
        format!("the keyring at {}/{}", self.mount, self.path)
    }
}

#[async_trait]
impl KeyringStorage for VaultKeyring {
    fn backend(&self) -> &'static str {
        BACKEND
    }

    async fn read_keyring(&self) -> Result<Option<StoredKeyring>> {
        let (mount, path) = (self.mount.clone(), self.path.clone());
        let read: Result<ReadSecretResponse, Failure> = self
            .conn
            .run(move |c| {
                let (mount, path) = (mount.clone(), path.clone());
                Box::pin(async move {
                    let mut req = ReadSecretRequest::builder();
                    req.mount(mount).path(path);
                    let endpoint = req
                        .build()
                        .map_err(|_| vaultrs::error::ClientError::InvalidLoginMethodError)?;
                    vaultrs::api::exec_with_result(c, endpoint).await
                })
            })
            .await;
        let res = match read {
            Ok(res) => res,
            Err(Failure::NotFound) => return Ok(None),
            Err(f) => return Err(f.into_error(&self.what())),
        };
        let document = res
            .data
            .get(DOCUMENT_FIELD)
            .and_then(Value::as_str)
            .and_then(|text| STANDARD.decode(text).ok())
            .ok_or_else(|| {
                Error::config(format!(
                    "vault: {} has no {DOCUMENT_FIELD:?} field of base64: it was not written by coffer",
                    self.what()
                ))
            })?;
        Ok(Some(StoredKeyring {
            document,
            generation: res.metadata.version,
        }))
    }

    async fn write_keyring(&self, document: &[u8], expected: Option<u64>) -> Result<u64> {
        let cas = u32::try_from(expected.unwrap_or(0))
            .map_err(|_| Error::backend(BACKEND, "keyring generation beyond Vault's cas range"))?;
        let data = serde_json::json!({ DOCUMENT_FIELD: STANDARD.encode(document) });
        let (mount, path) = (self.mount.clone(), self.path.clone());
        let written = self
            .conn
            .run(move |c| {
                let (mount, path, data) = (mount.clone(), path.clone(), data.clone());
                Box::pin(async move {
                    vaultrs::kv2::set_with_options(
                        c,
                        &mount,
                        &path,
                        &data,
                        SetSecretRequestOptions { cas },
                    )
                    .await
                })
            })
            .await;
        match written {
            Ok(v) => Ok(v.version),
            Err(Failure::CasMismatch) => Err(Error::KeyringConflict {
                backend: BACKEND,
                found: self.read_keyring().await?.map(|k| k.generation),
            }),
            Err(f) => Err(f.into_error(&self.what())),
        }
    }
}
