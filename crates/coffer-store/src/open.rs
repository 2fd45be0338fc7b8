//! Opening stores from URLs, as sqlx and object_store do.
//!
//! Each backend crate provides a [`StoreOpener`] for its schemes; a [`Registry`] maps
//! schemes to openers. The `coffer` facade builds a registry with every backend its
//! features enable, so `coffer::open("sqlite://…")` works without naming the crate.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use coffer_envelope::{KeyringHandle, KeyringKek};

use crate::keys::{KeyringReload, KeyringStorage, SharedKeyring};

use crate::{DynSecretStore, Error, MemoryStore, Result};

/// What an opener may need besides the URL.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct OpenOptions {
    /// The keyring for stores that seal values: one from a file, or the handle of a
    /// [`SharedKeyring`] kept in the store.
    pub keyring: Option<KeyringHandle>,
}

impl OpenOptions {
    /// No keyring.
    pub fn new() -> Self {
        Self::default()
    }

    /// With `keyring`.
    #[must_use]
    pub fn keyring(mut self, keyring: impl Into<KeyringHandle>) -> Self {
        self.keyring = Some(keyring.into());
        self
    }

    /// The keyring, or a configuration error saying which scheme needs one.
    pub fn require_keyring(&self, scheme: &str) -> Result<KeyringHandle> {
        self.keyring.clone().ok_or_else(|| {
            Error::config(format!(
                "{scheme}:// stores seal values and need a keyring (a keyring file or COFFER_MASTER_KEY)"
            ))
        })
    }
}

/// Opens stores for some URL schemes.
#[async_trait]
pub trait StoreOpener: fmt::Debug + Send + Sync + 'static {
    /// The schemes this opener handles (without `://`).
    fn schemes(&self) -> &'static [&'static str];

    /// Opens the store at `url` (the whole URL, scheme included, exactly as given).
    async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>>;

    /// Where the store at `url` keeps its own sealed keyring
    /// ([`SharedKeyring`]); [`Error::Unsupported`] for stores
    /// that cannot (the default).
    async fn keyring_storage(&self, url: &str) -> Result<Arc<dyn KeyringStorage>> {
        let _ = url;
        Err(Error::Unsupported {
            backend: self.schemes().first().copied().unwrap_or("this store"),
            operation: "keeping its keyring in the store",
        })
    }
}

/// Maps URL schemes to [`StoreOpener`]s.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// use coffer_store::open::{OpenOptions, Registry};
/// let store = Registry::new().open("memory://", &OpenOptions::new()).await?;
/// assert_eq!(store.backend(), "memory");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Registry {
    openers: Vec<Arc<dyn StoreOpener>>,
}

impl Default for Registry {
    fn default() -> Self {
        Self::new()
    }
}

impl Registry {
    /// A registry that knows `memory://`.
    pub fn new() -> Self {
        Self::empty().with(MemoryOpener)
    }

    /// A registry that knows nothing.
    pub fn empty() -> Self {
        Self {
            openers: Vec::new(),
        }
    }

    /// Adds `opener`; a later opener wins for a scheme both handle.
    #[must_use]
    pub fn with(mut self, opener: impl StoreOpener) -> Self {
        self.openers.push(Arc::new(opener));
        self
    }

    /// Every scheme known, in registration order.
    pub fn schemes(&self) -> Vec<&'static str> {
        self.openers
            .iter()
            .flat_map(|o| o.schemes().iter().copied())
            .collect()
    }

    /// Opens the store at `url`.
    pub async fn open(&self, url: &str, options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        self.opener(url)?.open(url, options).await
    }

    fn opener(&self, url: &str) -> Result<&Arc<dyn StoreOpener>> {
        let scheme = scheme_of(url).ok_or_else(|| {
            Error::config(format!(
                "store URL {} has no scheme; expected one of: {}",
                redact_url(url),
                self.schemes().join(", ")
            ))
        })?;
        self.openers
            .iter()
            .rev()
            .find(|o| o.schemes().iter().any(|s| s.eq_ignore_ascii_case(scheme)))
            .ok_or_else(|| {
                Error::config(format!(
                    "unknown store scheme {scheme:?} (is its feature enabled?); known: {}",
                    self.schemes().join(", ")
                ))
            })
    }

    /// Where the store at `url` keeps its own keyring ([`StoreOpener::keyring_storage`]).
    pub async fn keyring_storage(&self, url: &str) -> Result<Arc<dyn KeyringStorage>> {
        self.opener(url)?.keyring_storage(url).await
    }

    /// Opens the store at `url` with the keyring it keeps, opened with `kek`: the store
    /// is wrapped in [`KeyringReload`], and the [`SharedKeyring`] is returned beside it
    /// for rotation, retirement and re-keying.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
    /// use coffer_store::open::{OpenOptions, Registry};
    /// # use std::sync::Arc;
    /// # use coffer_envelope::{Kek, MasterKey};
    /// let kek = Arc::new(Kek::from_key(MasterKey::generate()));
    /// // memory:// keeps no keyring.
    /// let refused = Registry::new().open_shared("memory://", kek, &OpenOptions::new()).await;
    /// assert!(matches!(refused, Err(coffer_store::Error::Unsupported { .. })));
    /// # Ok(()) }
    /// ```
    pub async fn open_shared(
        &self,
        url: &str,
        kek: Arc<dyn KeyringKek>,
        options: &OpenOptions,
    ) -> Result<(Arc<DynSecretStore>, Arc<SharedKeyring>)> {
        let opener = self.opener(url)?;
        let storage = opener.keyring_storage(url).await?;
        let keys = Arc::new(SharedKeyring::open(storage, kek).await?);
        let options = options.clone().keyring(keys.handle());
        let store = opener.open(url, &options).await?;
        let store: Arc<DynSecretStore> = Arc::new(KeyringReload::new(store, keys.clone()));
        Ok((store, keys))
    }
}

/// The scheme of a URL: the text before the first `:`, if it looks like a scheme.
pub fn scheme_of(url: &str) -> Option<&str> {
    let (scheme, _) = url.split_once(':')?;
    let mut chars = scheme.chars();
    let first = chars.next()?;
    (first.is_ascii_alphabetic() && chars.all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)))
        .then_some(scheme)
}

/// A URL with its user, password and query removed, safe for errors and logs.
///
/// ```
/// use coffer_store::open::redact_url;
/// assert_eq!(
///     redact_url("postgres://app:hunter2@db.internal:5432/main?sslpassword=x"),
///     "postgres://db.internal:5432/main"
/// );
/// ```
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            let _ = parsed.set_username("");
            let _ = parsed.set_password(None);
            parsed.set_query(None);
            parsed.set_fragment(None);
            parsed.to_string()
        }
        Err(_) => match scheme_of(url) {
            Some(scheme) => format!("{scheme}://…"),
            None => "(unparseable URL)".to_owned(),
        },
    }
}

/// Removes a coffer option such as `row_level_security=true` from a URL's query and
/// returns the URL without it and whether it was on (`true`, `1` or `on`). Backends use it
/// for their own options before handing the URL to a driver.
///
/// ```
/// use coffer_store::open::take_flag;
/// let (url, on) = take_flag("postgres://h/db?seal=true&sslmode=disable", "seal")?;
/// assert_eq!((url.as_str(), on), ("postgres://h/db?sslmode=disable", true));
/// # Ok::<(), coffer_store::Error>(())
/// ```
pub fn take_flag(url: &str, flag: &str) -> Result<(String, bool)> {
    let mut parsed = url::Url::parse(url)
        .map_err(|_| Error::config(format!("invalid store URL {}", redact_url(url))))?;
    let mut on = false;
    let mut bad = None;
    let kept: Vec<(String, String)> = parsed
        .query_pairs()
        .filter_map(|(k, v)| {
            if k == flag {
                match parse_flag(flag, &v) {
                    Ok(value) => on = value,
                    Err(e) => bad = Some(e),
                }
                None
            } else {
                Some((k.into_owned(), v.into_owned()))
            }
        })
        .collect();
    if let Some(e) = bad {
        return Err(e);
    }
    if kept.is_empty() {
        parsed.set_query(None);
    } else {
        parsed.query_pairs_mut().clear().extend_pairs(kept);
    }
    Ok((parsed.to_string(), on))
}

/// A URL flag's value: `true`/`1`/`on` or `false`/`0`/`off`; anything else is an error
/// naming the flag.
///
/// ```
/// use coffer_store::open::parse_flag;
/// assert!(parse_flag("seal", "true")?);
/// assert!(parse_flag("seal", "yes please").is_err());
/// # Ok::<(), coffer_store::Error>(())
/// ```
pub fn parse_flag(flag: &str, value: &str) -> Result<bool> {
    flag_value(value).ok_or_else(|| Error::config(format!("{flag} must be true or false")))
}

/// `true`/`1`/`on` or `false`/`0`/`off`, in any case: the one spelling of a boolean
/// parameter in every coffer URL.
pub(crate) fn flag_value(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "on" => Some(true),
        "false" | "0" | "off" => Some(false),
        _ => None,
    }
}

/// Opens `memory://` (a fresh, empty [`MemoryStore`] each time).
#[derive(Debug, Clone, Copy, Default)]
pub struct MemoryOpener;

#[async_trait]
impl StoreOpener for MemoryOpener {
    fn schemes(&self) -> &'static [&'static str] {
        &["memory"]
    }

    async fn open(&self, _url: &str, _options: &OpenOptions) -> Result<Arc<DynSecretStore>> {
        Ok(Arc::new(MemoryStore::new()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn unknown_schemes_and_missing_keyrings_are_config_errors() {
        let registry = Registry::new();
        let err = registry
            .open("nosuch://x", &OpenOptions::new())
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("unknown store scheme \"nosuch\""),
            "{err}"
        );
        let err = registry
            .open("no scheme here", &OpenOptions::new())
            .await
            .unwrap_err();
        assert!(err.to_string().contains("has no scheme"), "{err}");
        let err = OpenOptions::new().require_keyring("sqlite").unwrap_err();
        assert!(err.to_string().contains("COFFER_MASTER_KEY"), "{err}");
    }

    #[test]
    fn redaction_drops_credentials() {
        let r = redact_url("postgres://u:pw@h/db?password=pw");
        assert!(!r.contains("pw"), "{r}");
        assert_eq!(redact_url("not a url"), "(unparseable URL)");
    }
}
