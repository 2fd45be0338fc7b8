//! [`TransitKek`]: a key-encryption key that never leaves Vault/OpenBao Transit.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_envelope::{BoxFuture, Keyring, KeyringKek, SEALED_KEYRING_FORMAT};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::client::{Connection, Failure};
use crate::config::VaultConfig;

/// Seals a whole keyring with Vault/OpenBao Transit (`{mount}/encrypt/{key}` and
/// `{mount}/decrypt/{key}`): the KEK is the Transit key, which never leaves Vault, so a
/// copy of the store and of every machine's disk opens nothing without a token allowed
/// to decrypt with it. Use it with a keyring kept in the store
/// ([`SharedKeyring`](coffer_store::keys::SharedKeyring)); the keyring is decrypted once
/// at open and at each reload, never per secret.
///
/// The document is `{"format":"coffer-keyring/v1","kek":"transit","transit_mount":…,
/// "transit_key":…,"ciphertext":"vault:vN:…"}`. Rotating the Transit key does not
/// break it (Transit decrypts every version it keeps); a re-key
/// ([`SharedKeyring::rekey`](coffer_store::keys::SharedKeyring::rekey)) with the same
/// `TransitKek` re-encrypts it under the newest version.
pub struct TransitKek {
    conn: Connection,
    mount: String,
    key: String,
}

impl std::fmt::Debug for TransitKek {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitKek")
            .field("mount", &self.mount)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Document {
    format: String,
    kek: String,
    transit_mount: String,
    transit_key: String,
    ciphertext: String,
}

fn err(reason: impl Into<String>) -> coffer_envelope::Error {
    coffer_envelope::Error::Keyring {
        path: None,
        reason: reason.into(),
    }
}

impl TransitKek {
    /// Transit key `key` on `mount` (e.g. `transit`), reached with `config`'s address,
    /// TLS and authentication (its KV settings are not used).
    pub async fn connect(
        config: VaultConfig,
        mount: impl Into<String>,
        key: impl Into<String>,
    ) -> coffer_store::Result<Self> {
        Ok(Self {
            conn: Connection::new(config).await?,
            mount: mount.into(),
            key: key.into(),
        })
    }

    fn failed(&self, what: &str, f: Failure) -> coffer_envelope::Error {
        let why = match f {
            Failure::NotFound => "no such key or mount".to_owned(),
            Failure::Denied(m) => format!("permission denied ({m})"),
            f => f.into_error("transit").to_string(),
        };
        err(format!(
            "{} could not {what} the keyring: {why}",
            self.describe()
        ))
    }

    async fn seal(&self, keyring: &Keyring) -> coffer_envelope::Result<Vec<u8>> {
        let plaintext = keyring.to_json_raw()?;
        let encoded = Zeroizing::new(STANDARD.encode(plaintext.as_bytes()));
        let (mount, key) = (self.mount.clone(), self.key.clone());
        let ciphertext = self
            .conn
            .run(move |c| {
                let (mount, key, encoded) = (mount.clone(), key.clone(), encoded.clone());
                Box::pin(async move {
                    vaultrs::transit::data::encrypt(c, &mount, &key, &encoded, None).await
                })
            })
            .await
            .map_err(|f| self.failed("encrypt", f))?
            .ciphertext;
        let doc = Document {
            format: SEALED_KEYRING_FORMAT.to_owned(),
            kek: "transit".to_owned(),
            transit_mount: self.mount.clone(),
            transit_key: self.key.clone(),
            ciphertext,
        };
        serde_json::to_vec(&doc).map_err(|e| err(e.to_string()))
    }

    async fn open(&self, sealed: &[u8]) -> coffer_envelope::Result<Keyring> {
        let doc: Document =
            serde_json::from_slice(sealed).map_err(|_| match coffer_envelope::sealed_kek_kind(
                sealed,
            )
            .as_deref()
            {
                Some(kind @ ("key" | "passphrase")) => err(format!(
                    "sealed keyring: it is sealed with a {kind} (COFFER_MASTER_KEY, \
                     COFFER_KEK_FILE or COFFER_PASSPHRASE), not {}",
                    self.describe()
                )),
                _ => err("sealed keyring: not a Transit-sealed keyring document"),
            })?;
        if doc.format != SEALED_KEYRING_FORMAT || doc.kek != "transit" {
            return Err(err(format!(
                "sealed keyring: unknown format {:?} / kek {:?}",
                doc.format, doc.kek
            )));
        }
        if doc.transit_mount != self.mount || doc.transit_key != self.key {
            return Err(err(format!(
                "sealed keyring: it is sealed with transit key {} on {}/, not {}",
                doc.transit_key,
                doc.transit_mount,
                self.describe()
            )));
        }
        let encoded = crate::transit::decrypt(&self.conn, &self.mount, &self.key, &doc.ciphertext)
            .await
            .map_err(|f| self.failed("decrypt", f))?;
        let plaintext = Zeroizing::new(
            STANDARD
                .decode(encoded.as_bytes())
                .map_err(|_| err("transit returned a keyring that is not base64"))?,
        );
        let text = std::str::from_utf8(&plaintext)
            .map_err(|_| err("transit returned a keyring that is not UTF-8"))?;
        Keyring::from_json_raw(text)
    }
}

impl KeyringKek for TransitKek {
    fn describe(&self) -> String {
        format!("transit key {} on {}/", self.key, self.mount)
    }

    fn seal_keyring<'a>(
        &'a self,
        keyring: &'a Keyring,
    ) -> BoxFuture<'a, coffer_envelope::Result<Vec<u8>>> {
        Box::pin(self.seal(keyring))
    }

    fn open_keyring<'a>(
        &'a self,
        sealed: &'a [u8],
    ) -> BoxFuture<'a, coffer_envelope::Result<Keyring>> {
        Box::pin(self.open(sealed))
    }
}
