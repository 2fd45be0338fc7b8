//! Metadata a database writer cannot forge: the MAC over a secret's head state.
//!
//! A store keeps beside each secret the state that decides what a read returns: which
//! version is the latest, whether it is deleted or active, when it expires, and the
//! descriptive fields a reader acts on (kind, env name, tags). The value itself is in a
//! coffer envelope, authenticated and bound to scope, name and version; this state is not
//! in the envelope, so without more it could be changed by anyone who can write the
//! database (point the head at an older version, clear `deleted` or `expires_at`).
//!
//! [`tag_head`] authenticates that state with the keyring's metadata MAC
//! ([`Keyring::tag_metadata`]): HMAC-SHA256 under a key derived from the primary key,
//! over a canonical, length-prefixed encoding ([`head_message`]). A store writes the tag
//! with every head and checks it with [`verify_head`] before it acts on a head: a read,
//! a write over it, a delete, a rewrap. A mismatch is [`Error::Tampered`] naming the
//! secret, never a value.
//!
//! # What it cannot detect
//!
//! A MAC proves that the keyring's holder wrote this exact state once, not that it is the
//! newest state. Someone who can write the database can put back a whole older head row
//! *with its MAC* (a restored backup, or a copy they kept): the older version then reads
//! as the latest, and a later put over it is a [`Error::Conflict`] when the version row
//! it would write exists. Detecting that needs a counter kept outside the database;
//! coffer does not keep one. Usage counters (`usage_count`, `last_used_at`) are not
//! covered: they are statistics the store updates without the key.

use coffer_envelope::{Error as EnvelopeError, Keyring};

use crate::{Error, Result, SecretMeta};

/// The domain of the encoding, so a head tag can never be taken for another message.
const DOMAIN: &[u8] = b"coffer/v1 head";

/// The canonical encoding of the head state of `meta` (deleted or not) that
/// [`tag_head`] authenticates: every field length-prefixed or fixed-width, in a fixed
/// order, times in milliseconds (the precision every backend keeps).
pub fn head_message(meta: &SecretMeta, deleted: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(DOMAIN);
    text(&mut out, meta.scope.as_str());
    text(&mut out, meta.name.as_str());
    out.extend_from_slice(&meta.version.to_be_bytes());
    out.push(u8::from(deleted));
    out.push(u8::from(meta.active));
    optional(
        &mut out,
        meta.expires_at.map(|t| t.timestamp_millis()),
        |o, ms| {
            o.extend_from_slice(&ms.to_be_bytes());
        },
    );
    text(&mut out, meta.kind.as_str());
    optional(&mut out, meta.provider.as_deref(), text);
    optional(&mut out, meta.description.as_deref(), text);
    optional(&mut out, meta.env_name.as_deref(), text);
    out.extend_from_slice(&(meta.tags.len() as u64).to_be_bytes());
    for tag in &meta.tags {
        text(&mut out, tag);
    }
    out.extend_from_slice(&meta.created_at.timestamp_millis().to_be_bytes());
    out.extend_from_slice(&meta.updated_at.timestamp_millis().to_be_bytes());
    out
}

fn text(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u64).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn optional<T>(out: &mut Vec<u8>, value: Option<T>, write: impl FnOnce(&mut Vec<u8>, T)) {
    match value {
        None => out.push(0),
        Some(v) => {
            out.push(1);
            write(out, v);
        }
    }
}

/// The MAC of the head state of `meta` (deleted or not) under the keyring's primary key,
/// to store beside the head.
///
/// ```
/// use coffer_envelope::{Keyring, MasterKey};
/// use coffer_store::backend::{tag_head, verify_head};
/// use coffer_store::{Attributes, Scope, SecretMeta, SecretName};
///
/// let keyring = Keyring::new(MasterKey::generate());
/// let mut meta = SecretMeta::new(Scope::new("tenant-a")?, SecretName::new("openai")?, &Attributes::default());
/// meta.version = 3;
/// let tag = tag_head(&keyring, &meta, false);
/// verify_head(&keyring, &meta, false, Some(&tag))?;
///
/// meta.version = 2; // pointed at an older version by someone without the key
/// assert!(matches!(
///     verify_head(&keyring, &meta, false, Some(&tag)),
///     Err(coffer_store::Error::Tampered { .. })
/// ));
/// # Ok::<(), coffer_store::Error>(())
/// ```
pub fn tag_head(keyring: &Keyring, meta: &SecretMeta, deleted: bool) -> Vec<u8> {
    keyring.tag_metadata(&head_message(meta, deleted))
}

/// Checks the stored `tag` of a head against its state; [`Error::Tampered`] naming the
/// secret when it is missing, made by a key the keyring does not hold, or does not match.
pub fn verify_head(
    keyring: &Keyring,
    meta: &SecretMeta,
    deleted: bool,
    tag: Option<&[u8]>,
) -> Result<()> {
    let tampered = |reason: String| Error::Tampered {
        scope: meta.scope.to_string(),
        name: meta.name.to_string(),
        reason,
    };
    let Some(tag) = tag else {
        return Err(tampered(
            "the head has no MAC: it was written before coffer authenticated metadata, or \
             the MAC was removed; if this store was written by an older coffer, adopt its \
             current state once with `coffer keys migrate`"
                .to_owned(),
        ));
    };
    match keyring.verify_metadata(tag, &head_message(meta, deleted)) {
        Ok(()) => Ok(()),
        Err(EnvelopeError::UnknownKey { key_id }) => Err(tampered(format!(
            "its MAC names key {key_id}, which is not in the keyring (if another instance \
             rotated, this keyring is out of date)"
        ))),
        Err(EnvelopeError::Malformed { .. }) => {
            Err(tampered("its MAC has the wrong length".to_owned()))
        }
        Err(_) => Err(tampered(
            "the head does not match its MAC: it was changed without the key".to_owned(),
        )),
    }
}

/// Whether a head's `tag` was made by a key other than the keyring's primary (or is
/// missing): what a rewrap re-tags.
pub fn head_needs_retag(keyring: &Keyring, tag: Option<&[u8]>) -> bool {
    tag.and_then(|t| Keyring::metadata_key_id(t).ok()) != Some(keyring.primary_id())
}
