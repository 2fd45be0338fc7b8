//! [`SupabaseOpener`]: `supabase+postgres://` URLs for [`coffer_store::open`].

use std::sync::Arc;

use async_trait::async_trait;
use coffer_store::keys::KeyringStorage;
use coffer_store::open::{OpenOptions, StoreOpener};
use coffer_store::{DynSecretStore, Result};

use crate::{SupabaseKeyring, SupabaseVaultStore};

/// Opens `supabase+postgres://` and `supabase+postgresql://` URLs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupabaseOpener;

#[async_trait]
impl StoreOpener for SupabaseOpener {
    fn schemes(&self) -> &'static [&'static str] {
        &["supabase+postgres", "supabase+postgresql"]
    }

    async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        Ok(Arc::new(
            SupabaseVaultStore::connect(url, options.keyring.clone()).await?,
        ))
    }

    async fn keyring_storage(&self, url: &str) -> Result<Arc<dyn KeyringStorage>> {
        Ok(Arc::new(SupabaseKeyring::connect_url(url).await?))
    }
}
