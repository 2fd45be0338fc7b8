//! Key-encryption keys: what seals a whole [`Keyring`] so that the keyring can be kept
//! somewhere others can read (a database table, a KV path) and shared by every instance
//! that holds the KEK.
//!
//! A sealed keyring is a small JSON document:
//!
//! ```text
//! {"format":"coffer-keyring/v1","kek":"key","check":"…","nonce":"…","ciphertext":"…"}
//! ```
//!
//! `ciphertext` is AES-256-GCM under HKDF-SHA256(KEK, "coffer/v1 keyring") of the keyring
//! in the keyring file's JSON form (every key as raw bytes), with the document's other
//! fields as associated data. `check` is the KEK's check value, so a wrong KEK is named
//! as such before any decryption is tried. A passphrase KEK keeps its PBKDF2 salt and
//! iteration count in a `kdf` field.

use std::path::{Path, PathBuf};

use aes_gcm::aead::{Aead as _, KeyInit as _, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::Rng as _;
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, KdfParams, Keyring, MASTER_KEY_ENV, MasterKey, Result, read_private};

/// The environment variable holding a passphrase KEK.
pub const PASSPHRASE_ENV: &str = "COFFER_PASSPHRASE";

/// The environment variable naming a key file that holds the KEK.
pub const KEK_FILE_ENV: &str = "COFFER_KEK_FILE";

/// The `format` of a sealed keyring document.
pub const SEALED_KEYRING_FORMAT: &str = "coffer-keyring/v1";

/// The HKDF label of the key that seals a keyring, and the AEAD's domain.
const KEYRING_LABEL: &[u8] = b"coffer/v1 keyring";

/// A key-encryption key: seals and opens a [`Keyring`] as a whole.
///
/// ```
/// use coffer_envelope::{Kek, Keyring, MasterKey};
/// let kek = Kek::from_key(MasterKey::generate());
/// let mut keyring = Keyring::new(MasterKey::generate());
/// keyring.rotate();
/// let sealed = kek.seal_keyring(&keyring)?;
/// let opened = kek.open_keyring(&sealed)?;
/// assert_eq!(opened.primary_id(), 2);
/// assert!(Kek::from_key(MasterKey::generate()).open_keyring(&sealed).is_err());
/// # Ok::<(), coffer_envelope::Error>(())
/// ```
pub struct Kek {
    source: KekSource,
    secret: KekSecret,
    /// The key last derived from the passphrase, with its parameters: a store that
    /// reloads its keyring (another instance rotated) pays PBKDF2 once per salt, not once
    /// per reload, and a seal reuses the salt.
    derived: std::sync::Mutex<Option<(KdfParams, MasterKey)>>,
}

/// Where a [`Kek`] came from, named in its errors.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KekSource {
    /// A key in this environment variable (`COFFER_MASTER_KEY`).
    Env(String),
    /// A passphrase, from this environment variable (`COFFER_PASSPHRASE`) or from code.
    Passphrase(Option<String>),
    /// A key file.
    KeyFile(PathBuf),
    /// A key given in code.
    Key,
}

impl std::fmt::Display for KekSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Env(var) => f.write_str(var),
            Self::Passphrase(Some(var)) => write!(f, "the passphrase in {var}"),
            Self::Passphrase(None) => f.write_str("the passphrase"),
            Self::KeyFile(path) => write!(f, "the key file {}", path.display()),
            Self::Key => f.write_str("the key-encryption key"),
        }
    }
}

enum KekSecret {
    Key(MasterKey),
    Passphrase(SecretString),
}

impl std::fmt::Debug for Kek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kek")
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Sealed {
    format: String,
    /// `key` or `passphrase`.
    kek: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    kdf: Option<KdfParams>,
    /// The check value of the key that seals (derived from the passphrase for `passphrase`).
    check: String,
    nonce: String,
    ciphertext: String,
}

impl Sealed {
    /// What the AEAD authenticates besides the ciphertext: every other field.
    fn associated_data(&self) -> Result<Vec<u8>> {
        let header = serde_json::json!({
            "format": self.format,
            "kek": self.kek,
            "kdf": self.kdf,
            "check": self.check,
        });
        serde_json::to_vec(&header).map_err(|e| Error::keyring(None, e.to_string()))
    }
}

impl Kek {
    /// A KEK of 32 raw bytes.
    pub fn from_key(key: MasterKey) -> Self {
        Self::new(KekSource::Key, KekSecret::Key(key))
    }

    /// A KEK derived from a passphrase with PBKDF2-HMAC-SHA256 (600,000 iterations and a
    /// fresh salt for each seal; the salt is kept in the sealed document).
    pub fn from_passphrase(passphrase: SecretString) -> Self {
        Self::new(
            KekSource::Passphrase(None),
            KekSecret::Passphrase(passphrase),
        )
    }

    /// The KEK in a key file (base64 or hex of 32 bytes), which must be private (0600).
    pub fn from_key_file(path: &Path) -> Result<Self> {
        let text = read_private(path)?;
        let key = MasterKey::parse(text.trim())
            .map_err(|e| Error::keyring(Some(path), format!("not a key file: {e}")))?;
        Ok(Self::new(
            KekSource::KeyFile(path.to_owned()),
            KekSecret::Key(key),
        ))
    }

    /// The KEK from the environment: `COFFER_MASTER_KEY` (base64 or hex of 32 bytes),
    /// else the key file named by `COFFER_KEK_FILE`, else `COFFER_PASSPHRASE`; `Ok(None)`
    /// when none is set.
    pub fn from_env() -> Result<Option<Self>> {
        Self::from_vars(MASTER_KEY_ENV, KEK_FILE_ENV, PASSPHRASE_ENV)
    }

    /// The KEK from the first of three environment variables that is set: a key (base64
    /// or hex), a key file's path, a passphrase. [`from_env`](Self::from_env) uses the
    /// standard names; a re-key reads the new KEK from others.
    pub fn from_vars(key_var: &str, file_var: &str, passphrase_var: &str) -> Result<Option<Self>> {
        if let Some(text) = var(key_var)? {
            let text = Zeroizing::new(text);
            let key = MasterKey::parse(&text).map_err(|_| {
                Error::invalid_key(format!(
                    "{key_var}: expected base64 of 32 bytes or 64 hexadecimal digits"
                ))
            })?;
            return Ok(Some(Self::new(
                KekSource::Env(key_var.to_owned()),
                KekSecret::Key(key),
            )));
        }
        if let Some(path) = var(file_var)? {
            return Self::from_key_file(Path::new(&path)).map(Some);
        }
        match var(passphrase_var)? {
            Some(p) if p.is_empty() => {
                Err(Error::invalid_key(format!("{passphrase_var} is empty")))
            }
            Some(p) => Ok(Some(Self::new(
                KekSource::Passphrase(Some(passphrase_var.to_owned())),
                KekSecret::Passphrase(p.into()),
            ))),
            None => Ok(None),
        }
    }

    /// Whether `bytes` is a sealed keyring document (by its `format` field), as opposed
    /// to a plain keyring file.
    pub fn is_sealed(bytes: &[u8]) -> bool {
        #[derive(Deserialize)]
        struct Probe {
            format: Option<String>,
        }
        serde_json::from_slice::<Probe>(bytes)
            .ok()
            .and_then(|p| p.format)
            .is_some_and(|f| f.starts_with("coffer-keyring/"))
    }

    /// Where this KEK came from.
    pub fn source(&self) -> &KekSource {
        &self.source
    }

    /// Seals `keyring` (every key, the primary, a pending rotation, retired ids).
    pub fn seal_keyring(&self, keyring: &Keyring) -> Result<Vec<u8>> {
        let (key, kind, kdf) = match &self.secret {
            KekSecret::Key(key) => (key.clone(), "key", None),
            KekSecret::Passphrase(p) => {
                let cached = self.cached().clone();
                let (params, key) = match cached {
                    Some(pair) => pair,
                    None => {
                        let params = KdfParams::generate();
                        let key = MasterKey::from_passphrase(p, &params)?;
                        *self.cached() = Some((params.clone(), key.clone()));
                        (params, key)
                    }
                };
                (key, "passphrase", Some(params))
            }
        };
        let mut nonce = [0u8; 12];
        rand::rng().fill_bytes(&mut nonce);
        let mut doc = Sealed {
            format: SEALED_KEYRING_FORMAT.to_owned(),
            kek: kind.to_owned(),
            kdf,
            check: key.check_value(),
            nonce: STANDARD.encode(nonce),
            ciphertext: String::new(),
        };
        let plaintext = keyring.to_json_raw()?;
        let aad = doc.associated_data()?;
        let ciphertext = cipher(&key)
            .encrypt(
                &Nonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: &aad,
                },
            )
            .map_err(|_| Error::keyring(None, "sealing the keyring failed"))?;
        doc.ciphertext = STANDARD.encode(ciphertext);
        serde_json::to_vec(&doc).map_err(|e| Error::keyring(None, e.to_string()))
    }

    /// Opens a keyring sealed by [`seal_keyring`](Self::seal_keyring) with this KEK. A
    /// wrong KEK, a damaged document and a document sealed another way are errors that
    /// name this KEK's source.
    pub fn open_keyring(&self, sealed: &[u8]) -> Result<Keyring> {
        let source = &self.source;
        let bad = |what: &str| Error::keyring(None, format!("sealed keyring: {what}"));
        if let Some(other) = foreign_kek(sealed) {
            return Err(bad(&format!("it is sealed with {other}, not {source}")));
        }
        let doc: Sealed =
            serde_json::from_slice(sealed).map_err(|_| bad("not a sealed keyring document"))?;
        if doc.format != SEALED_KEYRING_FORMAT {
            return Err(bad(&format!("unknown format {:?}", doc.format)));
        }
        let key = match (&self.secret, doc.kek.as_str(), &doc.kdf) {
            (KekSecret::Key(key), "key", None) => key.clone(),
            (KekSecret::Passphrase(p), "passphrase", Some(params)) => {
                let cached = self.cached().clone();
                match cached {
                    Some((known, key)) if known == *params => key,
                    _ => {
                        let key = MasterKey::from_passphrase(p, params)?;
                        if key.check_value() == doc.check {
                            *self.cached() = Some((params.clone(), key.clone()));
                        }
                        key
                    }
                }
            }
            (KekSecret::Key(_), "passphrase", _) => {
                return Err(bad(&format!(
                    "it is sealed with a passphrase ({PASSPHRASE_ENV}), not {source}"
                )));
            }
            (KekSecret::Passphrase(_), "key", _) => {
                return Err(bad(&format!(
                    "it is sealed with a key ({MASTER_KEY_ENV} or a key file), not {source}"
                )));
            }
            _ => return Err(bad("its kek and kdf fields do not match")),
        };
        if key.check_value() != doc.check {
            let what = match self.secret {
                KekSecret::Passphrase(_) => "wrong passphrase",
                KekSecret::Key(_) => "wrong key",
            };
            return Err(bad(&format!("{source} does not open it ({what})")));
        }
        let nonce: [u8; 12] = STANDARD
            .decode(&doc.nonce)
            .ok()
            .and_then(|n| n.try_into().ok())
            .ok_or_else(|| bad("invalid nonce"))?;
        let ciphertext = STANDARD
            .decode(&doc.ciphertext)
            .map_err(|_| bad("invalid ciphertext"))?;
        let aad = doc.associated_data()?;
        let plaintext = Zeroizing::new(
            cipher(&key)
                .decrypt(
                    &Nonce::from(nonce),
                    Payload {
                        msg: &ciphertext,
                        aad: &aad,
                    },
                )
                .map_err(|_| bad("it was changed after it was sealed"))?,
        );
        let text = std::str::from_utf8(&plaintext).map_err(|_| bad("not UTF-8 inside"))?;
        Keyring::from_json_raw(text)
    }
}

impl Kek {
    fn new(source: KekSource, secret: KekSecret) -> Self {
        Self {
            source,
            secret,
            derived: std::sync::Mutex::default(),
        }
    }

    fn cached(&self) -> std::sync::MutexGuard<'_, Option<(KdfParams, MasterKey)>> {
        self.derived
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The kind of KEK a sealed keyring document names: `key` and `passphrase` for a [`Kek`],
/// `transit` for Vault Transit; `None` when it is no such document.
pub fn sealed_kek_kind(sealed: &[u8]) -> Option<String> {
    #[derive(Deserialize)]
    struct Probe {
        kek: Option<String>,
    }
    serde_json::from_slice::<Probe>(sealed).ok()?.kek
}

fn foreign_kek(sealed: &[u8]) -> Option<String> {
    match sealed_kek_kind(sealed)?.as_str() {
        "key" | "passphrase" => None,
        "transit" => Some("Vault Transit".to_owned()),
        other => Some(format!("a KEK of kind {other:?}")),
    }
}

fn cipher(key: &MasterKey) -> Aes256Gcm {
    let k = key.derive(KEYRING_LABEL);
    Aes256Gcm::new(&aes_gcm::Key::<Aes256Gcm>::from(*k))
}

/// An environment variable's value; `Ok(None)` when unset.
fn var(name: &str) -> Result<Option<String>> {
    match std::env::var(name) {
        Ok(v) => Ok(Some(v)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::invalid_key(format!("{name} is not valid UTF-8")))
        }
    }
}
