#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![deny(missing_docs)]

pub mod backend;
pub mod copy;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod keys;
pub mod layer;
mod memory;
mod name;
pub mod open;
mod store;
pub mod transport;
mod types;
mod watch;

pub use error::{BoxError, Error, Result};
pub use memory::MemoryStore;
pub use name::{MAX_NAME_LEN, MAX_SCOPE_LEN, Scope, SecretName, derive_env_name};
pub use store::{DynSecretStore, SecretStore, SecretStoreExt};
pub use types::{
    AttributeUpdate, Attributes, Capabilities, DEFAULT_PAGE_SIZE, DeleteMode, KeyUsage,
    ListOptions, ListPage, MAX_PAGE_SIZE, MAX_TAGS, MAX_VALUE_LEN, PutOptions, RewrapBatch, Secret,
    SecretKind, SecretMeta, Usage, VersionInfo, VersionState, WriteCondition,
};
pub use watch::{Change, ChangeOp, KeyringGeneration, KeyringNotice, WatchEvent};

pub use async_trait::async_trait;
/// Re-exported: the crate's values are [`secrecy::SecretString`]s.
pub use secrecy;
