//! The v1 envelope: parsing, sealing and opening.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce, Tag};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng as _;
use subtle::ConstantTimeEq as _;
use zeroize::{Zeroize, Zeroizing};

use crate::{Context, Error, MasterKey, Result};

/// The format version byte of envelopes this crate writes.
pub const FORMAT_VERSION: u8 = 0x01;
/// Length of the key id field.
pub const KEY_ID_LEN: usize = 4;
/// Length of the per-envelope random salt.
pub const SALT_LEN: usize = 16;
/// Length of the key commitment.
pub const COMMITMENT_LEN: usize = 32;
/// Length of the AES-GCM nonce.
pub const NONCE_LEN: usize = 12;
/// Length of the AES-GCM tag.
pub const TAG_LEN: usize = 16;
/// Length of the header: version, key id, salt, commitment, nonce.
pub const HEADER_LEN: usize = 1 + KEY_ID_LEN + SALT_LEN + COMMITMENT_LEN + NONCE_LEN;
/// Bytes an envelope adds to its plaintext.
pub const OVERHEAD: usize = HEADER_LEN + TAG_LEN;
/// Prefix of the text form.
pub const TEXT_PREFIX: &str = "cf1.";
/// The HKDF `info` label that precedes the context.
pub const HKDF_LABEL: &[u8] = b"coffer/v1";

const KEY_ID_AT: usize = 1;
const SALT_AT: usize = KEY_ID_AT + KEY_ID_LEN;
const COMMITMENT_AT: usize = SALT_AT + SALT_LEN;
const NONCE_AT: usize = COMMITMENT_AT + COMMITMENT_LEN;

/// The parsed, not yet authenticated, header of an envelope.
///
/// Parsing checks the length and the version; nothing in a header is trusted until
/// [`Keyring::open`](crate::Keyring::open) has verified the commitment and the tag.
///
/// ```
/// use coffer_envelope::{Context, Header, Keyring, MasterKey};
/// let keyring = Keyring::new(MasterKey::generate());
/// let sealed = keyring.seal(b"sk-test", &Context::new("t", "n"));
/// assert_eq!(Header::parse(&sealed)?.key_id(), keyring.primary_id());
/// # Ok::<(), coffer_envelope::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    key_id: u32,
    salt: &'a [u8; SALT_LEN],
    commitment: &'a [u8; COMMITMENT_LEN],
    nonce: &'a [u8; NONCE_LEN],
    header_bytes: &'a [u8; HEADER_LEN],
    ciphertext: &'a [u8],
    tag: &'a [u8; TAG_LEN],
}

impl<'a> Header<'a> {
    /// Splits an envelope into its fields, checking length and version first.
    pub fn parse(envelope: &'a [u8]) -> Result<Self> {
        let Some(&version) = envelope.first() else {
            return Err(Error::Malformed {
                reason: "empty envelope",
            });
        };
        if version != FORMAT_VERSION {
            return Err(Error::UnsupportedVersion { version });
        }
        if envelope.len() < OVERHEAD {
            return Err(Error::Malformed {
                reason: "envelope shorter than its header and tag",
            });
        }
        let (header_bytes, rest) = envelope.split_at(HEADER_LEN);
        let (ciphertext, tag) = rest.split_at(rest.len() - TAG_LEN);
        let field = |at: usize, len: usize| &header_bytes[at..at + len];
        Ok(Self {
            key_id: u32::from_be_bytes(
                field(KEY_ID_AT, KEY_ID_LEN)
                    .try_into()
                    .map_err(|_| Error::Malformed { reason: "key id" })?,
            ),
            salt: to_array(field(SALT_AT, SALT_LEN))?,
            commitment: to_array(field(COMMITMENT_AT, COMMITMENT_LEN))?,
            nonce: to_array(field(NONCE_AT, NONCE_LEN))?,
            header_bytes: to_array(header_bytes)?,
            ciphertext,
            tag: to_array(tag)?,
        })
    }

    /// The id of the keyring key that sealed the envelope.
    pub fn key_id(&self) -> u32 {
        self.key_id
    }

    /// Length of the sealed plaintext.
    pub fn plaintext_len(&self) -> usize {
        self.ciphertext.len()
    }
}

fn to_array<const N: usize>(bytes: &[u8]) -> Result<&[u8; N]> {
    bytes.try_into().map_err(|_| Error::Malformed {
        reason: "field length",
    })
}

/// The per-envelope AES key and commitment, derived with HKDF-SHA256.
struct Derived {
    okm: Zeroizing<[u8; 64]>,
}

impl Derived {
    fn new(key: &MasterKey, salt: &[u8; SALT_LEN], context: &[u8]) -> Self {
        let hk = hkdf::Hkdf::<sha2::Sha256>::new(Some(salt), key.expose());
        let mut okm = Zeroizing::new([0u8; 64]);
        // 64 bytes is far below HKDF-SHA256's limit of 255 * 32 bytes.
        let _ = hk.expand_multi_info(&[HKDF_LABEL, context], okm.as_mut());
        Self { okm }
    }

    fn cipher(&self) -> Aes256Gcm {
        let mut key = aes_gcm::Key::<Aes256Gcm>::default();
        key.copy_from_slice(&self.okm[..32]);
        let cipher = Aes256Gcm::new(&key);
        key.zeroize();
        cipher
    }

    fn commitment(&self) -> &[u8] {
        &self.okm[32..]
    }
}

/// Seals `plaintext` under `key` (numbered `key_id`), bound to `context`.
pub(crate) fn seal(
    key_id: u32,
    key: &MasterKey,
    plaintext: &[u8],
    context: &Context<'_>,
) -> Vec<u8> {
    // Salt and nonce in one RNG call (ThreadRng: a CSPRNG reseeded from the OS).
    let mut random = [0u8; SALT_LEN + NONCE_LEN];
    rand::rng().fill_bytes(&mut random);
    let salt: &[u8; SALT_LEN] = random[..SALT_LEN].try_into().unwrap_or(&[0; SALT_LEN]);

    let mut aad = Vec::with_capacity(HEADER_LEN + context.encoded_len());
    aad.push(FORMAT_VERSION);
    aad.extend_from_slice(&key_id.to_be_bytes());
    aad.extend_from_slice(salt);
    aad.extend_from_slice(&[0; COMMITMENT_LEN]);
    aad.extend_from_slice(&random[SALT_LEN..]);
    context.encode_into(&mut aad);

    let derived = Derived::new(key, salt, &aad[HEADER_LEN..]);
    aad[COMMITMENT_AT..NONCE_AT].copy_from_slice(derived.commitment());

    let mut out = Vec::with_capacity(OVERHEAD + plaintext.len());
    out.extend_from_slice(&aad[..HEADER_LEN]);
    out.extend_from_slice(plaintext);
    let nonce = Nonce::try_from(&random[SALT_LEN..]).unwrap_or_default();
    // AES-GCM fails only for plaintexts over 64 GiB, which no caller can hold in a Vec here.
    let tag = derived
        .cipher()
        .encrypt_inout_detached(&nonce, &aad, out[HEADER_LEN..].as_mut().into())
        .unwrap_or_default();
    out.extend_from_slice(&tag);
    random.zeroize();
    out
}

/// Opens a parsed envelope with `key`. The plaintext buffer has exactly its length as
/// capacity, so turning it into a `String` or `Box<str>` never reallocates (and so never
/// leaves an unzeroized copy behind).
pub(crate) fn open(
    header: &Header<'_>,
    key: &MasterKey,
    context: &Context<'_>,
) -> Result<Zeroizing<Vec<u8>>> {
    let mut aad = Vec::with_capacity(HEADER_LEN + context.encoded_len());
    aad.extend_from_slice(header.header_bytes);
    context.encode_into(&mut aad);

    let derived = Derived::new(key, header.salt, &aad[HEADER_LEN..]);
    if !bool::from(derived.commitment().ct_eq(header.commitment)) {
        return Err(Error::DecryptionFailed);
    }
    let mut plaintext = Zeroizing::new(Vec::with_capacity(header.ciphertext.len()));
    plaintext.extend_from_slice(header.ciphertext);
    derived
        .cipher()
        .decrypt_inout_detached(
            &Nonce::from(*header.nonce),
            &aad,
            plaintext.as_mut_slice().into(),
            &Tag::from(*header.tag),
        )
        .map_err(|_| Error::DecryptionFailed)?;
    Ok(plaintext)
}

/// The text form of an envelope: `cf1.` followed by unpadded base64url of the bytes.
///
/// ```
/// use coffer_envelope::{from_text, to_text};
/// let text = to_text(&[1, 2, 3]);
/// assert_eq!(text, "cf1.AQID");
/// assert_eq!(from_text(&text)?, vec![1, 2, 3]);
/// # Ok::<(), coffer_envelope::Error>(())
/// ```
pub fn to_text(envelope: &[u8]) -> String {
    let mut out = String::with_capacity(TEXT_PREFIX.len() + envelope.len().div_ceil(3) * 4);
    out.push_str(TEXT_PREFIX);
    URL_SAFE_NO_PAD.encode_string(envelope, &mut out);
    out
}

/// Parses the text form written by [`to_text`].
pub fn from_text(text: &str) -> Result<Vec<u8>> {
    let body = text.strip_prefix(TEXT_PREFIX).ok_or(Error::Malformed {
        reason: "text form must start with \"cf1.\"",
    })?;
    URL_SAFE_NO_PAD.decode(body).map_err(|_| Error::Malformed {
        reason: "text form is not unpadded base64url",
    })
}
