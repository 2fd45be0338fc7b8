use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use rand::{Rng as _, TryRng as _};
use secrecy::{ExposeSecret, SecretBox, SecretString};
use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::{Error, Result};

/// Length of a master key in bytes.
pub const KEY_LEN: usize = 32;

/// The environment variable [`MasterKey::from_env`] reads.
pub const MASTER_KEY_ENV: &str = "COFFER_MASTER_KEY";

/// The fewest PBKDF2 iterations [`MasterKey::from_passphrase`] accepts (OWASP 2023
/// guidance for PBKDF2-HMAC-SHA256).
pub const MIN_PBKDF2_ITERATIONS: u32 = 600_000;

/// Length of the random salt [`KdfParams::generate`] draws.
pub const PBKDF2_SALT_LEN: usize = 16;

/// A 256-bit key of a [`Keyring`](crate::Keyring).
///
/// The bytes live in a [`SecretBox`]: zeroized on drop, never printed by `Debug`.
/// There is no way to read them back out of the crate except through a keyring file.
///
/// ```
/// use coffer_envelope::MasterKey;
/// let key = MasterKey::from_hex(&"11".repeat(32))?;
/// assert_eq!(format!("{key:?}"), "MasterKey([REDACTED])");
/// # Ok::<(), coffer_envelope::Error>(())
/// ```
pub struct MasterKey {
    bytes: SecretBox<[u8; KEY_LEN]>,
}

impl MasterKey {
    /// A fresh random key from the operating system's CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = Box::new([0u8; KEY_LEN]);
        // Long-lived keys come straight from the OS; the thread RNG (itself seeded from
        // the OS) is the fallback should the syscall fail.
        if rand::rngs::SysRng.try_fill_bytes(bytes.as_mut()).is_err() {
            rand::rng().fill_bytes(bytes.as_mut());
        }
        Self {
            bytes: SecretBox::new(bytes),
        }
    }

    /// A key from exactly 32 bytes. The array passed in is zeroized.
    pub fn from_bytes(mut bytes: [u8; KEY_LEN]) -> Self {
        let key = Self {
            bytes: SecretBox::new(Box::new(bytes)),
        };
        bytes.zeroize();
        key
    }

    /// A key from a slice that must be exactly 32 bytes long.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        let array: [u8; KEY_LEN] = bytes.try_into().map_err(|_| {
            Error::invalid_key(format!(
                "a master key is {KEY_LEN} bytes, got {}",
                bytes.len()
            ))
        })?;
        Ok(Self::from_bytes(array))
    }

    /// A key from base64 (standard or URL-safe alphabet, padded or not) of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self> {
        let text = text.trim();
        let decoded = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .map(Zeroizing::new)
            .ok_or_else(|| Error::invalid_key("not valid base64"))?;
        Self::from_slice(&decoded)
    }

    /// A key from 64 hexadecimal digits.
    pub fn from_hex(text: &str) -> Result<Self> {
        let decoded = hex::decode(text.trim())
            .map(Zeroizing::new)
            .map_err(|_| Error::invalid_key("not valid hexadecimal"))?;
        Self::from_slice(&decoded)
    }

    /// A key from text that is either 64 hex digits or base64 of 32 bytes.
    pub fn parse(text: &str) -> Result<Self> {
        let trimmed = text.trim();
        if trimmed.len() == 2 * KEY_LEN && trimmed.bytes().all(|b| b.is_ascii_hexdigit()) {
            Self::from_hex(trimmed)
        } else {
            Self::from_base64(trimmed).map_err(|_| {
                Error::invalid_key("expected base64 of 32 bytes or 64 hexadecimal digits")
            })
        }
    }

    /// The key in [`MASTER_KEY_ENV`] (`COFFER_MASTER_KEY`), base64 or hex; `Ok(None)` when unset.
    pub fn from_env() -> Result<Option<Self>> {
        match std::env::var(MASTER_KEY_ENV) {
            Ok(value) => {
                let value = Zeroizing::new(value);
                Self::parse(&value)
                    .map(Some)
                    .map_err(|e| Error::invalid_key(format!("{MASTER_KEY_ENV}: {}", reason_of(&e))))
            }
            Err(std::env::VarError::NotPresent) => Ok(None),
            Err(std::env::VarError::NotUnicode(_)) => Err(Error::invalid_key(format!(
                "{MASTER_KEY_ENV} is not valid UTF-8"
            ))),
        }
    }

    /// A key derived from a passphrase with PBKDF2-HMAC-SHA256.
    ///
    /// `params` holds the salt and iteration count, which must be stored beside whatever
    /// the key protects (a [`Keyring`](crate::Keyring) file does this).
    ///
    /// ```
    /// use coffer_envelope::{KdfParams, MasterKey};
    /// let params = KdfParams::generate();
    /// let passphrase = "correct horse battery staple".into();
    /// let a = MasterKey::from_passphrase(&passphrase, &params)?;
    /// let b = MasterKey::from_passphrase(&passphrase, &params)?;
    /// assert_eq!(a.check_value(), b.check_value());
    /// # Ok::<(), coffer_envelope::Error>(())
    /// ```
    pub fn from_passphrase(passphrase: &SecretString, params: &KdfParams) -> Result<Self> {
        params.validate()?;
        if passphrase.expose_secret().is_empty() {
            return Err(Error::invalid_key("the passphrase is empty"));
        }
        let mut out = Box::new([0u8; KEY_LEN]);
        pbkdf2::pbkdf2_hmac::<sha2::Sha256>(
            passphrase.expose_secret().as_bytes(),
            &params.salt,
            params.iterations,
            out.as_mut(),
        );
        Ok(Self {
            bytes: SecretBox::new(out),
        })
    }

    /// A short, non-secret fingerprint of the key (HKDF-SHA256 of the key with a fixed
    /// label, 8 bytes in hex). Keyring files store it to detect a wrong passphrase or
    /// a damaged key before anything is decrypted with it.
    pub fn check_value(&self) -> String {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, self.expose());
        let mut out = [0u8; 8];
        // 8 bytes is far below HKDF's 255 * 32 limit.
        let _ = hk.expand(b"coffer/v1 key check", &mut out);
        hex::encode(out)
    }

    /// 32 bytes derived from this key for one purpose (HKDF-SHA256 expand, `label` as info).
    pub(crate) fn derive(&self, label: &[u8]) -> Zeroizing<[u8; 32]> {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(None, self.expose());
        let mut out = Zeroizing::new([0u8; 32]);
        // 32 bytes is far below HKDF's 255 * 32 limit.
        let _ = hk.expand(label, out.as_mut());
        out
    }

    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        self.bytes.expose_secret()
    }

    pub(crate) fn to_base64(&self) -> Zeroizing<String> {
        Zeroizing::new(STANDARD.encode(self.expose()))
    }
}

impl Clone for MasterKey {
    fn clone(&self) -> Self {
        Self {
            bytes: SecretBox::new(Box::new(*self.expose())),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey([REDACTED])")
    }
}

fn reason_of(e: &Error) -> String {
    match e {
        Error::InvalidKey { reason } => reason.clone(),
        other => other.to_string(),
    }
}

/// Parameters of a passphrase-derived key: PBKDF2-HMAC-SHA256 with a random salt.
///
/// Not secret; stored beside the data the derived key protects.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KdfParams {
    /// Always `pbkdf2-hmac-sha256` in this version.
    pub algorithm: String,
    /// PBKDF2 iterations; at least [`MIN_PBKDF2_ITERATIONS`].
    pub iterations: u32,
    /// The random salt.
    #[serde(with = "b64")]
    pub salt: Vec<u8>,
}

/// The one KDF algorithm name [`KdfParams`] accepts.
pub const PBKDF2_ALGORITHM: &str = "pbkdf2-hmac-sha256";

impl KdfParams {
    /// Fresh parameters: [`MIN_PBKDF2_ITERATIONS`] iterations and a random 16-byte salt.
    pub fn generate() -> Self {
        let mut salt = vec![0u8; PBKDF2_SALT_LEN];
        rand::rng().fill_bytes(&mut salt);
        Self {
            algorithm: PBKDF2_ALGORITHM.to_owned(),
            iterations: MIN_PBKDF2_ITERATIONS,
            salt,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.algorithm != PBKDF2_ALGORITHM {
            return Err(Error::invalid_key(format!(
                "unknown key derivation {:?}; expected {PBKDF2_ALGORITHM}",
                self.algorithm
            )));
        }
        if self.iterations < MIN_PBKDF2_ITERATIONS {
            return Err(Error::invalid_key(format!(
                "PBKDF2 needs at least {MIN_PBKDF2_ITERATIONS} iterations, got {}",
                self.iterations
            )));
        }
        if self.salt.len() < PBKDF2_SALT_LEN {
            return Err(Error::invalid_key(format!(
                "PBKDF2 salt must be at least {PBKDF2_SALT_LEN} bytes, got {}",
                self.salt.len()
            )));
        }
        Ok(())
    }
}

pub(crate) mod b64 {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD
            .decode(text)
            .map_err(|_| serde::de::Error::custom("not valid base64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_accepts_hex_and_base64_and_rejects_other_lengths() {
        let hex_text = "ab".repeat(32);
        let a = MasterKey::parse(&hex_text).unwrap();
        let b = MasterKey::parse(&STANDARD.encode([0xab; 32])).unwrap();
        let c = MasterKey::parse(&URL_SAFE_NO_PAD.encode([0xab; 32])).unwrap();
        assert_eq!(a.expose(), b.expose());
        assert_eq!(a.expose(), c.expose());
        let err = MasterKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err();
        assert!(err.to_string().contains("base64 of 32 bytes"), "{err}");
        assert!(MasterKey::from_hex("zz").is_err());
        assert!(
            MasterKey::from_slice(&[0; 31])
                .unwrap_err()
                .to_string()
                .contains("got 31")
        );
    }

    #[test]
    fn kdf_params_are_validated() {
        let mut p = KdfParams::generate();
        p.iterations = 1000;
        let e = MasterKey::from_passphrase(&"pw".into(), &p).unwrap_err();
        assert!(e.to_string().contains("600000"), "{e}");
        let mut p = KdfParams::generate();
        p.algorithm = "md5".into();
        assert!(MasterKey::from_passphrase(&"pw".into(), &p).is_err());
        let p = KdfParams::generate();
        assert!(MasterKey::from_passphrase(&"".into(), &p).is_err());
    }
}
