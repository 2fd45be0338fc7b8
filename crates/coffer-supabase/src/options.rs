//! [`SupabaseOptions`]: what a [`SupabaseVaultStore`](crate::SupabaseVaultStore) does
//! beyond storing values in Vault.

use coffer_envelope::KeyringHandle;

/// Options of a [`SupabaseVaultStore`](crate::SupabaseVaultStore).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupabaseOptions {
    /// Seal values with this keyring before they reach Vault (off by default, so Edge
    /// Functions and SQL keep reading plain values from `decrypted_secret`).
    pub sealing: Option<KeyringHandle>,
    /// Create coffer's metadata table at connect (the default).
    pub migrate: bool,
}

impl Default for SupabaseOptions {
    fn default() -> Self {
        Self {
            sealing: None,
            migrate: true,
        }
    }
}

impl SupabaseOptions {
    /// No sealing, migrations on.
    pub fn new() -> Self {
        Self::default()
    }

    /// Seals values with `keyring` on top of Vault's own encryption.
    #[must_use]
    pub fn sealing(mut self, keyring: impl Into<KeyringHandle>) -> Self {
        self.sealing = Some(keyring.into());
        self
    }

    /// Turns the metadata-table migration at connect on or off.
    #[must_use]
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }
}
