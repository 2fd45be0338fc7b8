#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]
//!
//! # Layout
//!
//! As OpenDAL lays out a service: [`SupabaseOptions`] (`options`), the row codec
//! between Vault rows and coffer metadata (`row`, [`vault_name`]), the store
//! ([`SupabaseVaultStore`], `store`) and its URL opener ([`SupabaseOpener`], `opener`).

mod keyring;
mod opener;
mod options;
mod row;
mod store;

pub use keyring::{KEYRING_SECRET_NAME, SupabaseKeyring};
pub use opener::SupabaseOpener;
pub use options::SupabaseOptions;
pub use row::vault_name;
pub use store::SupabaseVaultStore;

const BACKEND: &str = "supabase";

/// The table that records this crate's applied migrations (its own, so it never
/// collides with the application's or coffer-sql's).
pub const MIGRATIONS_TABLE: &str = "_coffer_supabase_migrations";

/// The URL query parameter that turns on client-side sealing (`?seal=true`).
pub const SEAL_URL_PARAM: &str = "seal";

/// The URL query parameter that names the scope of the Vault secrets without a `/`
/// (`?unscoped=SCOPE`, [`SupabaseOptions::unscoped`]).
pub const UNSCOPED_URL_PARAM: &str = "unscoped";
