//! [`SupabaseOptions`]: what a [`SupabaseVaultStore`](crate::SupabaseVaultStore) does
//! beyond storing values in Vault.

use coffer_envelope::KeyringHandle;
use coffer_store::Scope;

/// Options of a [`SupabaseVaultStore`](crate::SupabaseVaultStore).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SupabaseOptions {
    /// Seal values with this keyring before they reach Vault (off by default, so Edge
    /// Functions and SQL keep reading plain values from `decrypted_secret`).
    pub sealing: Option<KeyringHandle>,
    /// Create coffer's metadata table at connect (the default).
    pub migrate: bool,
    /// The scope that holds the project's Vault secrets whose names have no `/` (how
    /// projects name secrets made with `vault.create_secret('…', 'github_token')`):
    /// in it, coffer's name is the Vault name. `None` (the default): they are not
    /// reachable, and every coffer secret is `{scope}/{name}`.
    pub unscoped: Option<Scope>,
}

impl Default for SupabaseOptions {
    fn default() -> Self {
        Self {
            sealing: None,
            migrate: true,
            unscoped: None,
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

    /// Makes `scope` the one that holds the project's Vault secrets without a `/` in
    /// their name (URL: `?unscoped=SCOPE`). Names with a `/` are refused in it, and
    /// its `SCOPE/…` Vault names are no longer reached.
    #[must_use]
    pub fn unscoped(mut self, scope: Scope) -> Self {
        self.unscoped = Some(scope);
        self
    }

    /// Turns the metadata-table migration at connect on or off.
    #[must_use]
    pub fn migrate(mut self, on: bool) -> Self {
        self.migrate = on;
        self
    }
}
