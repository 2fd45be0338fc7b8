use std::path::PathBuf;

/// Everything that can go wrong in `coffer-envelope`.
///
/// Messages name what was wrong and never contain key material or plaintext.
/// Every failure to authenticate an envelope is the single opaque
/// [`Error::DecryptionFailed`]: a wrong key, a wrong context, a flipped bit and a
/// forged tag are indistinguishable to the caller.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The envelope could not be authenticated (wrong key, wrong context, or tampered bytes).
    #[error("decryption failed")]
    DecryptionFailed,
    /// A metadata tag does not match the metadata ([`crate::Keyring::verify_metadata`]):
    /// the metadata or its tag was changed by someone without the key.
    #[error("metadata authentication failed")]
    MetadataMismatch,
    /// The envelope is structurally invalid (too short, bad text form).
    #[error("malformed envelope: {reason}")]
    Malformed {
        /// What was wrong.
        reason: &'static str,
    },
    /// The envelope's format version byte is not one this crate knows.
    #[error("unsupported envelope format version {version}")]
    UnsupportedVersion {
        /// The version byte found.
        version: u8,
    },
    /// The envelope names a key id that the keyring does not hold.
    #[error("envelope was sealed with key {key_id}, which is not in the keyring")]
    UnknownKey {
        /// The key id found in the envelope header.
        key_id: u32,
    },
    /// A key could not be built from the given material.
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// What was wrong (never the key itself).
        reason: String,
    },
    /// A keyring is inconsistent or its file is invalid.
    #[error("invalid keyring{}: {reason}", path.as_ref().map(|p| format!(" {}", p.display())).unwrap_or_default())]
    Keyring {
        /// The keyring file, when one was involved.
        path: Option<PathBuf>,
        /// What was wrong.
        reason: String,
    },
    /// Reading or writing a keyring file failed.
    #[error("keyring file {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn keyring(path: Option<&std::path::Path>, reason: impl Into<String>) -> Self {
        Error::Keyring {
            path: path.map(ToOwned::to_owned),
            reason: reason.into(),
        }
    }

    pub(crate) fn invalid_key(reason: impl Into<String>) -> Self {
        Error::InvalidKey {
            reason: reason.into(),
        }
    }
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
