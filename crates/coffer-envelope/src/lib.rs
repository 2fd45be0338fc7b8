#![doc = include_str!("../README.md")]
//!
//! # Format (v1)
//!
//! | bytes | field |
//! |---|---|
//! | 1 | format version = `0x01` |
//! | 4 | key id (big-endian): the keyring key that sealed it |
//! | 16 | salt: random per envelope |
//! | 32 | commitment |
//! | 12 | nonce: random |
//! | n + 16 | AES-256-GCM ciphertext and tag |
//!
//! `HKDF-SHA256(ikm = keyring key, salt = salt, info = "coffer/v1" || context)` yields 64
//! bytes: the envelope's AES-256 key and a 32-byte commitment. [`Keyring::open`] compares
//! the commitment in constant time before decrypting, so one ciphertext can never open
//! under two keys. The AES-GCM associated data is the 65 header bytes followed by the
//! [`Context`] encoding: an envelope moved to another tenant, name or version does not open.
//! A fresh AES key per envelope lifts AES-GCM's 2^32-messages-per-key limit.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod context;
mod envelope;
mod error;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod kek;
mod key;
mod keyring;
mod shared;

pub use context::Context;
pub use envelope::{
    COMMITMENT_LEN, FORMAT_VERSION, HEADER_LEN, HKDF_LABEL, Header, KEY_ID_LEN, NONCE_LEN,
    OVERHEAD, SALT_LEN, TAG_LEN, TEXT_PREFIX, from_text, to_text,
};
pub use error::{Error, Result};
pub use kek::{
    KEK_FILE_ENV, Kek, KekSource, PASSPHRASE_ENV, SEALED_KEYRING_FORMAT, sealed_kek_kind,
};
pub use key::{
    KEY_LEN, KdfParams, MASTER_KEY_ENV, MIN_PBKDF2_ITERATIONS, MasterKey, PBKDF2_ALGORITHM,
    PBKDF2_SALT_LEN,
};
pub use keyring::{
    KEYRING_FILE_VERSION, KeyProvider, Keyring, KeyringFile, METADATA_TAG_LEN, read_private,
    write_private,
};
pub use shared::{BoxFuture, KeyringHandle, KeyringKek};

/// Re-exported so callers can name the secret types this crate returns.
pub use secrecy;
/// Re-exported so callers can name [`zeroize::Zeroizing`], which [`Keyring::open`] returns.
pub use zeroize;
