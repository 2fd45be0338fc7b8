//! Keyring keys that are Vault/OpenBao Transit data keys.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use coffer_envelope::{KeyProvider, Keyring, MasterKey, read_private, write_private};
use serde::{Deserialize, Serialize};
use vaultrs::api::transit::requests::DataKeyType;
use zeroize::Zeroizing;

use crate::client::{Connection, Failure};
use crate::config::VaultConfig;

const FILE_VERSION: u32 = 1;

/// A coffer [`Keyring`] whose keys are Transit data keys
/// (`{mount}/datakey/wrapped/{key}`).
///
/// Only the wrapped form of each key is stored, in a file of its own (mode 0600); the
/// keys are unwrapped through Transit once, by [`load`](KeyProvider::load), and then held
/// in memory by the keyring. Rotating the Transit key and calling
/// [`rewrap_stored_keys`](Self::rewrap_stored_keys) re-wraps the stored data keys under
/// the new Transit key version without touching any sealed secret: the data keys
/// themselves do not change. [`add_key`](Self::add_key) adds a new data key as the
/// keyring's primary, for coffer's own rotation (then rewrap the store).
pub struct TransitKeyProvider {
    conn: Connection,
    mount: String,
    key: String,
    path: PathBuf,
}

impl std::fmt::Debug for TransitKeyProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransitKeyProvider")
            .field("conn", &self.conn)
            .field("mount", &self.mount)
            .field("key", &self.key)
            .field("path", &self.path)
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedFile {
    version: u32,
    transit_mount: String,
    transit_key: String,
    primary: u32,
    #[serde(default)]
    rotation_pending: bool,
    keys: Vec<WrappedKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WrappedKey {
    id: u32,
    /// `vault:vN:…`, the Transit ciphertext of the 32 key bytes.
    wrapped: String,
    /// The key's check value, verified after unwrapping.
    check: String,
}

fn err(reason: impl Into<String>) -> coffer_envelope::Error {
    coffer_envelope::Error::Keyring {
        path: None,
        reason: reason.into(),
    }
}

fn failed(what: &str, f: Failure) -> coffer_envelope::Error {
    err(format!("transit {what}: {}", f.into_error("transit")))
}

/// `{mount}/decrypt/{key}` of a Transit ciphertext (`vault:vN:…`): the base64 of the
/// plaintext, wiped when dropped.
pub(crate) async fn decrypt(
    conn: &Connection,
    mount: &str,
    key: &str,
    ciphertext: &str,
) -> Result<Zeroizing<String>, Failure> {
    let (mount, key, ct) = (mount.to_owned(), key.to_owned(), ciphertext.to_owned());
    conn.run(move |c| {
        let (mount, key, ct) = (mount.clone(), key.clone(), ct.clone());
        Box::pin(async move { vaultrs::transit::data::decrypt(c, &mount, &key, &ct, None).await })
    })
    .await
    .map(|r| Zeroizing::new(r.plaintext))
}

impl TransitKeyProvider {
    /// A provider using Transit key `key` on `mount` (e.g. `transit`), keeping the wrapped
    /// keys in the file `path`.
    pub async fn connect(
        config: VaultConfig,
        mount: impl Into<String>,
        key: impl Into<String>,
        path: impl Into<PathBuf>,
    ) -> coffer_store::Result<Self> {
        Ok(Self {
            conn: Connection::new(config).await?,
            mount: mount.into(),
            key: key.into(),
            path: path.into(),
        })
    }

    /// The wrapped-key file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    async fn new_data_key(&self) -> coffer_envelope::Result<(MasterKey, String)> {
        let (mount, key) = (self.mount.clone(), self.key.clone());
        let wrapped = self
            .conn
            .run(move |c| {
                let (mount, key) = (mount.clone(), key.clone());
                Box::pin(async move {
                    vaultrs::transit::generate::data_key(
                        c,
                        &mount,
                        &key,
                        DataKeyType::Wrapped,
                        None,
                    )
                    .await
                })
            })
            .await
            .map_err(|f| failed("datakey", f))?
            .ciphertext;
        let master = self.unwrap_key(&wrapped).await?;
        Ok((master, wrapped))
    }

    async fn unwrap_key(&self, wrapped: &str) -> coffer_envelope::Result<MasterKey> {
        let plaintext = decrypt(&self.conn, &self.mount, &self.key, wrapped)
            .await
            .map_err(|f| failed("decrypt", f))?;
        let bytes = Zeroizing::new(
            STANDARD
                .decode(plaintext.as_bytes())
                .map_err(|_| err("transit returned a key that is not base64"))?,
        );
        MasterKey::from_slice(&bytes)
    }

    fn read(&self) -> coffer_envelope::Result<Option<WrappedFile>> {
        if !self.path.exists() {
            return Ok(None);
        }
        let text = read_private(&self.path)?;
        let file: WrappedFile = serde_json::from_str(&text).map_err(|_| {
            err(format!(
                "{} is not a wrapped keyring file",
                self.path.display()
            ))
        })?;
        if file.version != FILE_VERSION
            || file.transit_mount != self.mount
            || file.transit_key != self.key
        {
            return Err(err(format!(
                "{} belongs to transit key {}/{} (format {}), not {}/{}",
                self.path.display(),
                file.transit_mount,
                file.transit_key,
                file.version,
                self.mount,
                self.key
            )));
        }
        Ok(Some(file))
    }

    fn write(&self, file: &WrappedFile) -> coffer_envelope::Result<()> {
        let text = serde_json::to_string_pretty(file).map_err(|e| err(e.to_string()))?;
        write_private(&self.path, text.as_bytes())
    }

    /// Creates the wrapped-key file with one new data key, unless it exists; returns the keyring.
    pub async fn init(&self) -> coffer_envelope::Result<Keyring> {
        if self.read()?.is_none() {
            let (master, wrapped) = self.new_data_key().await?;
            let file = WrappedFile {
                version: FILE_VERSION,
                transit_mount: self.mount.clone(),
                transit_key: self.key.clone(),
                primary: 1,
                rotation_pending: false,
                keys: vec![WrappedKey {
                    id: 1,
                    wrapped,
                    check: master.check_value(),
                }],
            };
            self.write(&file)?;
        }
        self.load().await
    }

    /// Adds a new data key as the primary of `keyring` and of the stored file; returns its id.
    pub async fn add_key(&self, keyring: &mut Keyring) -> coffer_envelope::Result<u32> {
        let mut file = self.read()?.ok_or_else(|| {
            err(format!(
                "{} does not exist: init first",
                self.path.display()
            ))
        })?;
        let (master, wrapped) = self.new_data_key().await?;
        let check = master.check_value();
        let id = keyring.add(master);
        keyring.set_primary(id)?;
        file.keys.push(WrappedKey { id, wrapped, check });
        file.primary = id;
        self.write(&file)?;
        Ok(id)
    }

    /// Re-wraps every stored data key under the latest version of the Transit key (after
    /// `transit/keys/{key}/rotate`). The data keys, and so every sealed secret, stay as
    /// they are. Returns how many were re-wrapped.
    pub async fn rewrap_stored_keys(&self) -> coffer_envelope::Result<usize> {
        let mut file = self
            .read()?
            .ok_or_else(|| err(format!("{} does not exist", self.path.display())))?;
        for stored in &mut file.keys {
            let (mount, key, ct) = (self.mount.clone(), self.key.clone(), stored.wrapped.clone());
            stored.wrapped = self
                .conn
                .run(move |c| {
                    let (mount, key, ct) = (mount.clone(), key.clone(), ct.clone());
                    Box::pin(async move {
                        vaultrs::transit::data::rewrap(c, &mount, &key, &ct, None).await
                    })
                })
                .await
                .map_err(|f| failed("rewrap", f))?
                .ciphertext;
        }
        self.write(&file)?;
        Ok(file.keys.len())
    }
}

impl KeyProvider for TransitKeyProvider {
    async fn load(&self) -> coffer_envelope::Result<Keyring> {
        let file = self.read()?.ok_or_else(|| {
            err(format!(
                "{} does not exist: init first",
                self.path.display()
            ))
        })?;
        let mut keys = Vec::with_capacity(file.keys.len());
        for stored in &file.keys {
            let master = self.unwrap_key(&stored.wrapped).await?;
            if master.check_value() != stored.check {
                return Err(err(format!(
                    "data key {} does not match its check value",
                    stored.id
                )));
            }
            keys.push((stored.id, master));
        }
        let mut keyring = Keyring::from_keys(keys, file.primary)?;
        keyring.set_rotation_pending(file.rotation_pending);
        Ok(keyring)
    }
}
