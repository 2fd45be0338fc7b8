use std::collections::BTreeMap;
use std::fmt;
use std::io::Write as _;
use std::path::Path;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use hmac::{Hmac, KeyInit, Mac as _};
use sha2::Sha256;

use crate::envelope::{self, Header, KEY_ID_LEN};
use crate::{Context, Error, KdfParams, MasterKey, Result};

/// Length of a metadata tag ([`Keyring::tag_metadata`]): the key id, then HMAC-SHA256.
pub const METADATA_TAG_LEN: usize = KEY_ID_LEN + 32;

/// The HKDF label of the metadata MAC key, and the MAC's domain prefix.
const METADATA_MAC_LABEL: &[u8] = b"coffer/v1 metadata mac";

/// Version of the keyring file format.
pub const KEYRING_FILE_VERSION: u32 = 1;

/// Numbered master keys, one of them primary.
///
/// New envelopes are sealed with the primary key; any key in the ring opens the
/// envelopes it sealed. Rotation adds a key and makes it primary; [`rewrap`](Self::rewrap)
/// then moves old envelopes to it without handing the plaintext to the caller.
///
/// ```
/// use coffer_envelope::{Context, Keyring, MasterKey};
/// let mut keyring = Keyring::new(MasterKey::generate());
/// let ctx = Context::new("tenant-a", "openai_api_key").with_version(1);
/// let sealed = keyring.seal(b"sk-example", &ctx);
///
/// let new_id = keyring.rotate();
/// let moved = keyring.rewrap(&sealed, &ctx)?;
/// assert_eq!(keyring.key_id_of(&moved)?, new_id);
/// assert_eq!(&keyring.open(&moved, &ctx)?[..], b"sk-example");
/// # Ok::<(), coffer_envelope::Error>(())
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: BTreeMap<u32, Entry>,
    primary: u32,
    rotation_pending: bool,
    /// Ids of keys removed by [`Keyring::remove`]: never given out again.
    retired: Vec<u32>,
}

#[derive(Clone)]
struct Entry {
    key: MasterKey,
    kdf: Option<KdfParams>,
    /// The key that authenticates metadata ([`Keyring::tag_metadata`]), derived once.
    mac_key: Zeroizing<[u8; 32]>,
    /// When the key was added, in seconds since the Unix epoch (unknown for keys of files
    /// written before coffer recorded it).
    created: Option<u64>,
}

impl Entry {
    fn new(key: MasterKey, kdf: Option<KdfParams>) -> Self {
        let mac_key = key.derive(METADATA_MAC_LABEL);
        Self {
            key,
            kdf,
            mac_key,
            created: None,
        }
    }

    /// A key added now.
    fn fresh(key: MasterKey, kdf: Option<KdfParams>) -> Self {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .map(|d| d.as_secs());
        Self {
            created,
            ..Self::new(key, kdf)
        }
    }

    fn mac(&self, message: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; 32 bytes cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(self.mac_key.as_ref())
            .unwrap_or_else(|_| unreachable!("HMAC accepts a 32-byte key"));
        mac.update(METADATA_MAC_LABEL);
        mac.update(message);
        mac
    }
}

impl Keyring {
    /// A keyring holding `key` as key 1, the primary.
    pub fn new(key: MasterKey) -> Self {
        let mut keys = BTreeMap::new();
        keys.insert(1, Entry::fresh(key, None));
        Self {
            keys,
            primary: 1,
            rotation_pending: false,
            retired: Vec::new(),
        }
    }

    /// A keyring whose key 1 is derived from a passphrase (see
    /// [`MasterKey::from_passphrase`]); the salt and iteration count are saved with it.
    pub fn from_passphrase(passphrase: &SecretString, params: KdfParams) -> Result<Self> {
        let key = MasterKey::from_passphrase(passphrase, &params)?;
        let mut ring = Self::new(key);
        if let Some(entry) = ring.keys.get_mut(&1) {
            entry.kdf = Some(params);
        }
        Ok(ring)
    }

    /// A keyring from numbered keys; `primary` must be one of them and no id may be 0.
    pub fn from_keys(
        keys: impl IntoIterator<Item = (u32, MasterKey)>,
        primary: u32,
    ) -> Result<Self> {
        let mut map = BTreeMap::new();
        for (id, key) in keys {
            if id == 0 {
                return Err(Error::keyring(None, "key id 0 is reserved"));
            }
            if map.insert(id, Entry::new(key, None)).is_some() {
                return Err(Error::keyring(None, format!("key id {id} appears twice")));
            }
        }
        if !map.contains_key(&primary) {
            return Err(Error::keyring(
                None,
                format!("primary key {primary} is not in the keyring"),
            ));
        }
        Ok(Self {
            keys: map,
            primary,
            rotation_pending: false,
            retired: Vec::new(),
        })
    }

    /// Adds `key` under the next free id and returns that id. The primary is unchanged.
    /// Ids are never reused, not even those of removed keys.
    pub fn add(&mut self, key: MasterKey) -> u32 {
        let last = self
            .keys
            .keys()
            .chain(&self.retired)
            .copied()
            .max()
            .unwrap_or(0);
        let id = last + 1;
        self.keys.insert(id, Entry::fresh(key, None));
        id
    }

    /// Removes key `id` and its material (zeroized as it drops). Envelopes it sealed can
    /// no longer be opened by this keyring, so first check that none is left (coffer's
    /// stores count them: `SecretStore::key_usage`). The primary cannot be removed; the
    /// id is remembered and never given to a new key.
    ///
    /// ```
    /// use coffer_envelope::{Keyring, MasterKey};
    /// let mut keyring = Keyring::new(MasterKey::generate());
    /// let new_id = keyring.rotate();
    /// keyring.remove(1)?;
    /// assert_eq!(keyring.key_ids().collect::<Vec<_>>(), [new_id]);
    /// assert_eq!(keyring.retired_ids().collect::<Vec<_>>(), [1]);
    /// assert!(keyring.remove(new_id).is_err(), "the primary stays");
    /// # Ok::<(), coffer_envelope::Error>(())
    /// ```
    pub fn remove(&mut self, id: u32) -> Result<()> {
        if id == self.primary {
            return Err(Error::keyring(
                None,
                format!("key {id} is the primary: rotate to a new key first"),
            ));
        }
        if self.keys.remove(&id).is_none() {
            return Err(Error::keyring(
                None,
                format!("key {id} is not in the keyring"),
            ));
        }
        self.retired.push(id);
        self.retired.sort_unstable();
        Ok(())
    }

    /// Ids of keys removed with [`remove`](Self::remove), ascending.
    pub fn retired_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.retired.iter().copied()
    }

    /// When key `id` was added, in seconds since the Unix epoch; `None` for a key the
    /// ring does not hold and for keys of files written before coffer recorded it.
    pub fn created_at(&self, id: u32) -> Option<u64> {
        self.keys.get(&id).and_then(|e| e.created)
    }

    /// Makes key `id` the primary.
    pub fn set_primary(&mut self, id: u32) -> Result<()> {
        if !self.keys.contains_key(&id) {
            return Err(Error::keyring(
                None,
                format!("key {id} is not in the keyring"),
            ));
        }
        self.primary = id;
        Ok(())
    }

    /// Generates a new random key, makes it primary and returns its id.
    pub fn rotate(&mut self) -> u32 {
        let id = self.add(MasterKey::generate());
        self.primary = id;
        id
    }

    /// The primary key's id.
    pub fn primary_id(&self) -> u32 {
        self.primary
    }

    /// The ids of all keys, ascending.
    pub fn key_ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.keys.keys().copied()
    }

    /// The check value (a short one-way fingerprint, see [`MasterKey::check_value`]) of
    /// key `id`, if the ring holds it. Stores record it to detect a wrong key early.
    pub fn check_value(&self, id: u32) -> Option<String> {
        self.keys.get(&id).map(|e| e.key.check_value())
    }

    /// Whether the ring holds key `id`.
    pub fn contains(&self, id: u32) -> bool {
        self.keys.contains_key(&id)
    }

    /// Marks (or clears) an unfinished rotation. A rotation sets it before it starts
    /// rewrapping and clears it when every envelope is on the primary, so a rotation
    /// that was interrupted can be resumed instead of started again.
    pub fn set_rotation_pending(&mut self, pending: bool) {
        self.rotation_pending = pending;
    }

    /// Whether a rotation was started and has not been marked finished.
    pub fn rotation_pending(&self) -> bool {
        self.rotation_pending
    }

    /// Seals `plaintext` with the primary key, bound to `context`.
    pub fn seal(&self, plaintext: &[u8], context: &Context<'_>) -> Vec<u8> {
        let entry = &self.keys[&self.primary];
        envelope::seal(self.primary, &entry.key, plaintext, context)
    }

    /// Opens an envelope sealed by any key of the ring under the same `context`.
    ///
    /// An unknown format version or key id is reported before any decryption is
    /// tried; every authentication failure is the opaque [`Error::DecryptionFailed`].
    pub fn open(&self, sealed: &[u8], context: &Context<'_>) -> Result<Zeroizing<Vec<u8>>> {
        let header = Header::parse(sealed)?;
        let entry = self.keys.get(&header.key_id()).ok_or(Error::UnknownKey {
            key_id: header.key_id(),
        })?;
        envelope::open(&header, &entry.key, context)
    }

    /// Opens an envelope whose plaintext is UTF-8 text, straight into a [`SecretString`]
    /// (no intermediate copy survives).
    pub fn open_string(&self, sealed: &[u8], context: &Context<'_>) -> Result<SecretString> {
        let mut plaintext = self.open(sealed, context)?;
        let bytes = std::mem::take(&mut *plaintext);
        match String::from_utf8(bytes) {
            // Capacity equals length, so the conversion to Box<str> does not reallocate.
            Ok(text) => Ok(SecretString::from(text)),
            Err(e) => {
                drop(Zeroizing::new(e.into_bytes()));
                Err(Error::Malformed {
                    reason: "plaintext is not UTF-8",
                })
            }
        }
    }

    /// Re-seals an envelope under the primary key, bound to the same context.
    /// The plaintext never leaves this function and is zeroized before it returns.
    pub fn rewrap(&self, sealed: &[u8], context: &Context<'_>) -> Result<Vec<u8>> {
        let plaintext = self.open(sealed, context)?;
        Ok(self.seal(&plaintext, context))
    }

    /// The key id in an envelope's header (checked for length and version, not authenticated).
    pub fn key_id_of(&self, sealed: &[u8]) -> Result<u32> {
        Ok(Header::parse(sealed)?.key_id())
    }

    /// Whether an envelope is sealed by a key other than the primary.
    pub fn needs_rewrap(&self, sealed: &[u8]) -> Result<bool> {
        Ok(self.key_id_of(sealed)? != self.primary)
    }

    /// Authenticates `message` (a canonical encoding of metadata a store keeps outside the
    /// envelope: which version is the latest, whether it is deleted, when it expires) under
    /// the primary key, so someone who can write the database but holds no key cannot
    /// change it unnoticed.
    ///
    /// The tag is the primary key's id (4 bytes, big-endian) followed by
    /// HMAC-SHA256 under a key derived from it with HKDF (`"coffer/v1 metadata mac"`);
    /// [`verify_metadata`](Self::verify_metadata) checks it with whichever key made it.
    ///
    /// ```
    /// use coffer_envelope::{Keyring, MasterKey};
    /// let keyring = Keyring::new(MasterKey::generate());
    /// let tag = keyring.tag_metadata(b"tenant-a/openai: version 3, live");
    /// keyring.verify_metadata(&tag, b"tenant-a/openai: version 3, live")?;
    /// assert!(keyring.verify_metadata(&tag, b"tenant-a/openai: version 2, live").is_err());
    /// # Ok::<(), coffer_envelope::Error>(())
    /// ```
    pub fn tag_metadata(&self, message: &[u8]) -> Vec<u8> {
        let entry = &self.keys[&self.primary];
        let mut tag = Vec::with_capacity(METADATA_TAG_LEN);
        tag.extend_from_slice(&self.primary.to_be_bytes());
        tag.extend_from_slice(&entry.mac(message).finalize().into_bytes());
        tag
    }

    /// Checks a tag made by [`tag_metadata`](Self::tag_metadata) with any key of the ring,
    /// in constant time. A wrong length is [`Error::Malformed`], a key the ring does not
    /// hold [`Error::UnknownKey`], and any other mismatch [`Error::MetadataMismatch`].
    pub fn verify_metadata(&self, tag: &[u8], message: &[u8]) -> Result<()> {
        let key_id = Self::metadata_key_id(tag)?;
        let entry = self.keys.get(&key_id).ok_or(Error::UnknownKey { key_id })?;
        entry
            .mac(message)
            .verify_slice(&tag[KEY_ID_LEN..])
            .map_err(|_| Error::MetadataMismatch)
    }

    /// The id of the key that made a metadata tag (not authenticated by itself).
    pub fn metadata_key_id(tag: &[u8]) -> Result<u32> {
        if tag.len() != METADATA_TAG_LEN {
            return Err(Error::Malformed {
                reason: "metadata tag length",
            });
        }
        let mut id = [0u8; KEY_ID_LEN];
        id.copy_from_slice(&tag[..KEY_ID_LEN]);
        Ok(u32::from_be_bytes(id))
    }

    /// A keyring holding only the key in `COFFER_MASTER_KEY`, if that is set.
    pub fn from_env() -> Result<Option<Self>> {
        Ok(MasterKey::from_env()?.map(Self::new))
    }

    /// Loads a keyring file written by [`save`](Self::save).
    ///
    /// The file must not be readable or writable by group or others (like ssh, coffer
    /// refuses a key file others can read). `passphrase` is needed only for keys
    /// derived from one. Each key's check value is verified, so a wrong passphrase or a
    /// damaged file is reported here rather than as failed decryptions later.
    pub fn load(path: &Path, passphrase: Option<&SecretString>) -> Result<Self> {
        let text = read_private(path)?;
        Self::parse(&text, Some(path), passphrase)
    }

    /// Whether a plain keyring file's text holds a key derived from a passphrase, so
    /// [`load`](Self::load) needs one (a program can then ask for it). Text that is not
    /// a plain keyring file answers `false`: loading it reports what is wrong.
    ///
    /// ```
    /// use coffer_envelope::{KdfParams, Keyring, MasterKey};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("keyring.json");
    /// Keyring::new(MasterKey::generate()).save(&path)?;
    /// assert!(!Keyring::needs_passphrase(&std::fs::read_to_string(&path)?));
    /// Keyring::from_passphrase(&"correct horse".into(), KdfParams::generate())?.save(&path)?;
    /// assert!(Keyring::needs_passphrase(&std::fs::read_to_string(&path)?));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn needs_passphrase(text: &str) -> bool {
        serde_json::from_str::<FileFormat>(text)
            .is_ok_and(|file| file.keys.iter().any(|k| k.passphrase.is_some()))
    }

    /// Loads a keyring file that is either plain ([`save`](Self::save)) or sealed under a
    /// key-encryption key ([`save_sealed`](Self::save_sealed)), telling them apart by their
    /// content. A sealed file needs `kek`; a plain one ignores it and uses `passphrase`
    /// for passphrase-derived keys, as [`load`](Self::load) does.
    ///
    /// ```
    /// use coffer_envelope::{Kek, Keyring, MasterKey};
    /// let dir = tempfile::tempdir()?;
    /// let path = dir.path().join("keyring.json");
    /// let kek = Kek::from_key(MasterKey::generate());
    /// let mut keyring = Keyring::new(MasterKey::generate());
    /// keyring.rotate();
    /// keyring.save_sealed(&path, &kek)?;
    /// assert_eq!(Keyring::load_file(&path, Some(&kek), None)?.primary_id(), 2);
    /// assert!(Keyring::load_file(&path, None, None).is_err(), "sealed: the KEK is needed");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn load_file(
        path: &Path,
        kek: Option<&crate::Kek>,
        passphrase: Option<&SecretString>,
    ) -> Result<Self> {
        let text = read_private(path)?;
        if !crate::Kek::is_sealed(text.as_bytes()) {
            return Self::parse(&text, Some(path), passphrase);
        }
        let kek = kek.ok_or_else(|| {
            Error::keyring(
                Some(path),
                format!(
                    "the keyring is sealed under a key-encryption key: set {} or {} \
                     (whichever sealed it)",
                    crate::MASTER_KEY_ENV,
                    crate::PASSPHRASE_ENV
                ),
            )
        })?;
        kek.open_keyring(text.as_bytes()).map_err(|e| match e {
            Error::Keyring { path: None, reason } => Error::Keyring {
                path: Some(path.to_owned()),
                reason,
            },
            other => other,
        })
    }

    /// Writes the keyring to `path` sealed under `kek`, atomically and with mode 0600 as
    /// [`save`](Self::save) does. The file then holds no key in the clear.
    pub fn save_sealed(&self, path: &Path, kek: &crate::Kek) -> Result<()> {
        let mut sealed = kek.seal_keyring(self)?;
        sealed.push(b'\n');
        write_private(path, &sealed)
    }

    /// The keyring in the file format with every key as raw bytes (passphrase-derived ones
    /// too), for sealing under a KEK ([`Kek::seal_keyring`](crate::Kek::seal_keyring), or
    /// a [`KeyringKek`](crate::KeyringKek) kept elsewhere, such as Vault Transit).
    ///
    /// The text holds every key in the clear: encrypt it, and let the `Zeroizing` wipe it.
    ///
    /// ```
    /// use coffer_envelope::{Keyring, MasterKey};
    /// let mut keyring = Keyring::new(MasterKey::generate());
    /// keyring.rotate();
    /// let text = keyring.to_json_raw()?;
    /// assert_eq!(Keyring::from_json_raw(&text)?.primary_id(), 2);
    /// # Ok::<(), coffer_envelope::Error>(())
    /// ```
    pub fn to_json_raw(&self) -> Result<Zeroizing<String>> {
        self.to_json(true)
    }

    /// The inverse of [`to_json_raw`](Self::to_json_raw).
    pub fn from_json_raw(text: &str) -> Result<Self> {
        Self::parse(text, None, None)
    }

    fn parse(text: &str, path: Option<&Path>, passphrase: Option<&SecretString>) -> Result<Self> {
        let file: FileFormat = serde_json::from_str(text).map_err(|e| {
            Error::keyring(path, format!("not a keyring file: {}", e.classify_str()))
        })?;
        if file.version != KEYRING_FILE_VERSION {
            return Err(Error::keyring(
                path,
                format!("unsupported keyring file version {}", file.version),
            ));
        }
        let mut keys = BTreeMap::new();
        for stored in &file.keys {
            let (key, kdf) = match (&stored.key, &stored.passphrase) {
                (Some(text), None) => (
                    MasterKey::parse(text)
                        .map_err(|e| Error::keyring(path, format!("key {}: {e}", stored.id)))?,
                    None,
                ),
                (None, Some(params)) => {
                    let passphrase = passphrase.ok_or_else(|| {
                        Error::keyring(
                            path,
                            format!(
                                "key {} is derived from a passphrase; none was given",
                                stored.id
                            ),
                        )
                    })?;
                    (
                        MasterKey::from_passphrase(passphrase, params)
                            .map_err(|e| Error::keyring(path, format!("key {}: {e}", stored.id)))?,
                        Some(params.clone()),
                    )
                }
                _ => {
                    return Err(Error::keyring(
                        path,
                        format!(
                            "key {} must have exactly one of \"key\" and \"passphrase\"",
                            stored.id
                        ),
                    ));
                }
            };
            if key.check_value() != stored.check {
                let what = if kdf.is_some() {
                    "wrong passphrase"
                } else {
                    "key does not match its check value (damaged file?)"
                };
                return Err(Error::keyring(path, format!("key {}: {what}", stored.id)));
            }
            let entry = Entry {
                created: stored.created,
                ..Entry::new(key, kdf)
            };
            if stored.id == 0
                || file.retired.contains(&stored.id)
                || keys.insert(stored.id, entry).is_some()
            {
                return Err(Error::keyring(
                    path,
                    format!("key id {} is reserved, repeated or retired", stored.id),
                ));
            }
        }
        if !keys.contains_key(&file.primary) {
            return Err(Error::keyring(
                path,
                format!("primary key {} is not in the file", file.primary),
            ));
        }
        Ok(Self {
            keys,
            primary: file.primary,
            rotation_pending: file.rotation_pending,
            retired: file.retired,
        })
    }

    /// Writes the keyring to `path` atomically (a temporary file in the same folder,
    /// fsynced, then renamed) with mode 0600, creating a missing folder with mode 0700. Passphrase-derived keys are stored as their
    /// KDF parameters, never as key bytes.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut text = self.to_json(false)?;
        text.push('\n');
        write_private(path, text.as_bytes())
    }

    /// The file format; `raw` writes passphrase-derived keys as bytes too.
    fn to_json(&self, raw: bool) -> Result<Zeroizing<String>> {
        let file = FileFormat {
            version: KEYRING_FILE_VERSION,
            primary: self.primary,
            rotation_pending: self.rotation_pending,
            retired: self.retired.clone(),
            keys: self
                .keys
                .iter()
                .map(|(id, entry)| StoredKey {
                    id: *id,
                    check: entry.key.check_value(),
                    key: match entry.kdf {
                        Some(_) if !raw => None,
                        _ => Some(entry.key.to_base64()),
                    },
                    passphrase: entry.kdf.clone().filter(|_| !raw),
                    created: entry.created,
                })
                .collect(),
        };
        serde_json::to_string_pretty(&file)
            .map(Zeroizing::new)
            .map_err(|e| Error::keyring(None, e.to_string()))
    }
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .field("primary", &self.primary)
            .field("rotation_pending", &self.rotation_pending)
            .field("retired", &self.retired)
            .finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileFormat {
    version: u32,
    primary: u32,
    #[serde(default)]
    rotation_pending: bool,
    /// Ids of removed keys, never reused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    retired: Vec<u32>,
    keys: Vec<StoredKey>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct StoredKey {
    id: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    key: Option<Zeroizing<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    passphrase: Option<KdfParams>,
    check: String,
    /// Seconds since the Unix epoch when the key was added.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    created: Option<u64>,
}

trait ClassifyStr {
    fn classify_str(&self) -> String;
}

impl ClassifyStr for serde_json::Error {
    /// The category and position of a JSON error, never the offending text (which could
    /// be key material).
    fn classify_str(&self) -> String {
        let what = match self.classify() {
            serde_json::error::Category::Io => "I/O error",
            serde_json::error::Category::Syntax => "invalid JSON",
            serde_json::error::Category::Data => "unexpected field or value",
            serde_json::error::Category::Eof => "unexpected end of file",
        };
        format!("{what} at line {} column {}", self.line(), self.column())
    }
}

/// A temporary file beside the target, created with mode 0600 so the key bytes are
/// never readable by others, not even for a moment.
fn private_tempfile(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".keyring");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o600));
    }
    builder.tempfile_in(dir)
}

#[cfg(unix)]
fn check_permissions(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let meta = std::fs::metadata(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::keyring(
            Some(path),
            format!(
                "the file is accessible to other users (mode {mode:04o}); run `chmod 600` on it"
            ),
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_path: &Path) -> Result<()> {
    Ok(())
}

/// Writes `contents` to `path` atomically with mode 0600: a temporary file in the same
/// folder (created 0600, so the bytes are never readable by others), fsynced, then
/// renamed over `path`. A missing folder is created with mode 0700. Keyring files and
/// other key material use it.
pub fn write_private(path: &Path, contents: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.exists() {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir).map_err(io)?;
    }
    let mut tmp = private_tempfile(dir).map_err(io)?;
    tmp.write_all(contents).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    tmp.persist(path).map_err(|e| io(e.error))?;
    Ok(())
}

/// Reads a private key file, refusing one that group or others can access.
pub fn read_private(path: &Path) -> Result<Zeroizing<String>> {
    check_permissions(path)?;
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| Error::Io {
            path: path.to_owned(),
            source,
        })
}

/// Where a [`Keyring`]'s keys come from: a keyring file ([`KeyringFile`]), or a key
/// management service that keeps only wrapped keys on disk (coffer-vault's Transit
/// provider).
pub trait KeyProvider: Send + Sync {
    /// Loads the keyring (unwrapping keys where the provider wraps them).
    fn load(&self) -> impl std::future::Future<Output = Result<Keyring>> + Send;
}

/// A keyring file on disk, as a [`KeyProvider`].
#[derive(Debug, Clone)]
pub struct KeyringFile {
    /// The file.
    pub path: std::path::PathBuf,
    /// The passphrase for passphrase-derived keys.
    pub passphrase: Option<SecretString>,
}

impl KeyProvider for KeyringFile {
    async fn load(&self) -> Result<Keyring> {
        Keyring::load(&self.path, self.passphrase.as_ref())
    }
}
