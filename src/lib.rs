#![doc = include_str!("../README.md")]
//!
//! # Opening stores
//!
//! This crate re-exports the coffer crates behind features ([`envelope`], [`store`],
//! and [`sql`] with `sqlite`, the default) and opens any store this build has a feature
//! for from a URL with [`open`]:
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer::store::Result<()> {
//! use std::sync::Arc;
//! use coffer::{Keyring, MasterKey, OpenOptions, PutOptions, Scope, SecretName};
//! use coffer::secrecy::ExposeSecret;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let keyring = Arc::new(Keyring::new(MasterKey::generate()));
//! let url = format!("sqlite://{}", dir.path().join("secrets.db").display());
//! let store = coffer::open(&url, &OpenOptions::new().keyring(keyring)).await?;
//!
//! let (tenant, name) = (Scope::new("tenant-42")?, SecretName::new("openai_api_key")?);
//! store.put(&tenant, &name, &"sk-example".into(), &PutOptions::create_only()).await?;
//! assert_eq!(store.get(&tenant, &name, None).await?.value.expose_secret(), "sk-example");
//! # Ok(()) }
//! ```
#![forbid(unsafe_code)]
#![deny(missing_docs)]

use std::sync::Arc;

#[cfg(feature = "env")]
pub use coffer_env as env;
pub use coffer_envelope as envelope;
#[cfg(any(feature = "sqlite", feature = "postgres"))]
pub use coffer_sql as sql;
pub use coffer_store as store;
#[cfg(feature = "supabase")]
pub use coffer_supabase as supabase;
#[cfg(feature = "vault")]
pub use coffer_vault as vault;

pub use coffer_envelope::{Context, Keyring, MasterKey};
pub use coffer_store::open::{OpenOptions, Registry};
pub use coffer_store::secrecy;
pub use coffer_store::{
    AttributeUpdate, DeleteMode, DynSecretStore, Error, KeyUsage, ListOptions, PutOptions, Result,
    Scope, Secret, SecretKind, SecretMeta, SecretName, SecretStore, SecretStoreExt, VersionInfo,
    VersionState,
};

/// A [`Registry`] that opens every store this build has a feature for:
/// `memory://` always, `sqlite://` with `sqlite`, `postgres://` with `postgres`,
/// `supabase+postgres://` with `supabase`, `vault+http(s)://` with `vault`.
pub fn registry() -> Registry {
    let registry = Registry::new();
    #[cfg(feature = "sqlite")]
    let registry = registry.with(coffer_sql::SqliteOpener);
    #[cfg(feature = "postgres")]
    let registry = registry.with(coffer_sql::PgOpener);
    #[cfg(feature = "supabase")]
    let registry = registry.with(coffer_supabase::SupabaseOpener);
    #[cfg(feature = "vault")]
    let registry = registry.with(coffer_vault::VaultOpener);
    registry
}

/// Opens the store at `url` with the [`registry`] of this build.
pub async fn open(url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
    registry().open(url, options).await
}
