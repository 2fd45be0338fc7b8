#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod client;
mod config;
mod keyring;
mod kv;
mod transit;
mod transit_kek;

use std::sync::Arc;

use async_trait::async_trait;
use coffer_store::keys::KeyringStorage;
use coffer_store::open::{OpenOptions, StoreOpener};
use coffer_store::{DynSecretStore, Result};

pub use config::{
    APPROLE_MOUNT, Auth, DEFAULT_KEYRING_PATH, DEFAULT_TIMEOUT, KvVersion, VaultConfig,
};
pub use keyring::VaultKeyring;
pub use kv::{VALUE_FIELD, VaultStore};
pub use transit::TransitKeyProvider;
pub use transit_kek::TransitKek;

/// Opens `vault+http://host:port/mount?prefix=…&kv=1` and `vault+https://…` URLs, with
/// the token from `VAULT_TOKEN`. `?seal=true` is not a URL option: pass a keyring in
/// [`OpenOptions`] and the store seals values with it.
#[derive(Debug, Clone, Copy, Default)]
pub struct VaultOpener;

#[async_trait]
impl StoreOpener for VaultOpener {
    fn schemes(&self) -> &'static [&'static str] {
        &["vault+http", "vault+https"]
    }

    async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        Ok(Arc::new(
            VaultStore::connect_url(url, options.keyring.clone()).await?,
        ))
    }

    async fn keyring_storage(&self, url: &str) -> Result<Arc<dyn KeyringStorage>> {
        Ok(Arc::new(VaultKeyring::connect_url(url).await?))
    }
}
