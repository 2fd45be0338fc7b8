//! A keyring that can change under a running store, and the KEKs that seal it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};

use crate::{Kek, KekSource, Keyring, Result};

/// A boxed future, as the object-safe [`KeyringKek`] returns.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The keyring a store uses, which another part of the process may replace (a reload
/// after another instance rotated, a rotation here).
///
/// Cloning shares the cell. A store takes [`current`](Self::current) once per operation,
/// so one operation never mixes two keyrings. `From<Keyring>` and `From<Arc<Keyring>>`
/// make a handle nobody replaces, for a keyring from a file.
///
/// ```
/// use coffer_envelope::{Keyring, KeyringHandle, MasterKey};
/// let handle = KeyringHandle::from(Keyring::new(MasterKey::generate()));
/// let store_side = handle.clone();
/// let mut next = (*handle.current()).clone();
/// next.rotate();
/// handle.replace(next);
/// assert_eq!(store_side.current().primary_id(), 2);
/// ```
#[derive(Clone)]
pub struct KeyringHandle {
    cell: Arc<RwLock<Arc<Keyring>>>,
}

impl KeyringHandle {
    /// A handle holding `keyring`.
    pub fn new(keyring: Arc<Keyring>) -> Self {
        Self {
            cell: Arc::new(RwLock::new(keyring)),
        }
    }

    /// The keyring now.
    pub fn current(&self) -> Arc<Keyring> {
        // A writer cannot panic while holding the lock (it only swaps an Arc), so a
        // poisoned lock still holds a whole keyring.
        self.cell
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Makes `keyring` the one every holder of this handle uses from its next operation.
    pub fn replace(&self, keyring: impl Into<Arc<Keyring>>) {
        let keyring = keyring.into();
        *self
            .cell
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = keyring;
    }
}

impl From<Keyring> for KeyringHandle {
    fn from(keyring: Keyring) -> Self {
        Self::new(Arc::new(keyring))
    }
}

impl From<Arc<Keyring>> for KeyringHandle {
    fn from(keyring: Arc<Keyring>) -> Self {
        Self::new(keyring)
    }
}

impl fmt::Debug for KeyringHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("KeyringHandle")
            .field(&self.current())
            .finish()
    }
}

/// What seals a whole keyring so that it can be kept where others read it (a table of
/// the store, a KV path): a local [`Kek`] (a key, a key file, a passphrase), or a key
/// management service that never lets its key out (coffer-vault's `TransitKek`).
///
/// Object safe, so a store can hold any of them as `Arc<dyn KeyringKek>`.
///
/// ```
/// # futures::executor::block_on(async {
/// use coffer_envelope::{Kek, KeyringKek, Keyring, MasterKey};
/// let kek: Box<dyn KeyringKek> = Box::new(Kek::from_key(MasterKey::generate()));
/// let sealed = kek.seal_keyring(&Keyring::new(MasterKey::generate())).await?;
/// assert_eq!(kek.open_keyring(&sealed).await?.primary_id(), 1);
/// # Ok::<(), coffer_envelope::Error>(()) }).unwrap();
/// ```
pub trait KeyringKek: fmt::Debug + Send + Sync {
    /// Where the KEK is, in words for errors (`COFFER_MASTER_KEY`, `transit key coffer on
    /// transit/`); never key material.
    fn describe(&self) -> String;

    /// Seals `keyring` into a document only this KEK opens.
    fn seal_keyring<'a>(&'a self, keyring: &'a Keyring) -> BoxFuture<'a, Result<Vec<u8>>>;

    /// Opens a document sealed by [`seal_keyring`](Self::seal_keyring); a wrong KEK is an
    /// error that names [`describe`](Self::describe).
    fn open_keyring<'a>(&'a self, sealed: &'a [u8]) -> BoxFuture<'a, Result<Keyring>>;
}

impl KeyringKek for Kek {
    fn describe(&self) -> String {
        match self.source() {
            KekSource::Key => "the key-encryption key given in code".to_owned(),
            other => other.to_string(),
        }
    }

    fn seal_keyring<'a>(&'a self, keyring: &'a Keyring) -> BoxFuture<'a, Result<Vec<u8>>> {
        Box::pin(std::future::ready(Kek::seal_keyring(self, keyring)))
    }

    fn open_keyring<'a>(&'a self, sealed: &'a [u8]) -> BoxFuture<'a, Result<Keyring>> {
        Box::pin(std::future::ready(Kek::open_keyring(self, sealed)))
    }
}
