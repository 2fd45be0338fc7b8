#![doc = include_str!("../README.md")]
//!
//! # Parts
//!
//! - [`EnvMap`]: checked variable names and zeroized values, from a [`SecretStore`]
//!   selection ([`Selection`]) and literals; secrets map to variables by their
//!   `env_name` metadata or [`derive_env_name`] (one mapping, kept in coffer-store for
//!   its environment source too):
//!
//!   ```
//!   assert_eq!(coffer_env::derive_env_name("openai_api_key"), "OPENAI_API_KEY");
//!   assert_eq!(coffer_env::derive_env_name("providers/github/token.v2"), "PROVIDERS_GITHUB_TOKEN_V2");
//!   ```
//! - [`DatabaseUrl`]: `postgresql://`, `mysql://`, `mongodb://` and `sqlite://` URLs from
//!   parts, with user and password percent-encoded; [`EnvMap::insert_database`] maps
//!   them to `DATABASE_URL`/`DATABASE_TYPE`, `DATABASE_2_URL`/`DATABASE_2_TYPE`, ….
//! - [`EnvWriter`]: `.env` files that dotenvy, python-dotenv and bash read back exactly,
//!   shell `export` lines, JSON; files written atomically with mode 0600.
//! - [`EnvMap::apply`] and [`EnvMap::apply_clean`]: into a `std::process::Command` or
//!   (feature `tokio`) a `tokio::process::Command`.
//! - [`Redactor`]: masks values (and their percent-encoded, hex, base64 — also
//!   line-wrapped —, JSON-escaped and Python `repr` forms) in a child's output, also when
//!   a value is split across writes.
//! - [`import`]: `.env` files, JSON objects and the environment into a store, each
//!   variable a secret of the same name in lower case that keeps the variable's name.
//! - [`GUARDED_VARIABLES`]: the names that change what a program runs, where it connects
//!   or whom it trusts, refused unless allowed; [`CREDENTIAL_VARIABLES`]: coffer's own
//!   credentials, kept out of every child's environment.
//!
//! [`SecretStore`]: coffer_store::SecretStore
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod command;
mod error;
mod file;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod import;
mod map;
mod name;
mod output;
mod redact;

pub use coffer_store::derive_env_name;
pub use coffer_store::transport::{DatabaseKind, DatabaseUrl};
pub use command::{CLEAN_ENV_ALLOWLIST, CREDENTIAL_VARIABLES, CommandEnv};
pub use error::{Error, Result};
pub use file::{EXPORT_MARKER, EnvWriter, Format};
pub use map::{EnvMap, Selection, Source};
pub use name::{GUARDED_VARIABLES, Guarded, Risk, guarded, validate_env_name};
#[cfg(feature = "tokio")]
pub use redact::copy_redacted;
pub use redact::{MIN_MASK_LEN, RedactStream, RedactWriter, Redactor};
