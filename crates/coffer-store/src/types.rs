use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::{Error, Result, Scope, SecretName};

/// Largest value a store accepts, in bytes (1 MiB).
pub const MAX_VALUE_LEN: usize = 1 << 20;
/// Most tags a secret may carry.
pub const MAX_TAGS: usize = 32;
/// Default page size of [`ListOptions`].
pub const DEFAULT_PAGE_SIZE: usize = 100;
/// Largest page size of [`ListOptions`].
pub const MAX_PAGE_SIZE: usize = 1000;

/// What a secret is, for people and for tools that pick secrets by kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SecretKind {
    /// An API key (an LLM provider's, a SaaS's).
    ApiKey,
    /// An OAuth access or refresh token.
    OauthToken,
    /// A webhook signing secret.
    WebhookSecret,
    /// A database or service connection string.
    ConnectionString,
    /// A password.
    Password,
    /// Anything else.
    #[default]
    Other,
}

impl SecretKind {
    /// Every kind, in declaration order.
    pub const ALL: [SecretKind; 6] = [
        SecretKind::ApiKey,
        SecretKind::OauthToken,
        SecretKind::WebhookSecret,
        SecretKind::ConnectionString,
        SecretKind::Password,
        SecretKind::Other,
    ];

    /// The snake_case name (`api_key`, …) used in storage, URLs and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            SecretKind::ApiKey => "api_key",
            SecretKind::OauthToken => "oauth_token",
            SecretKind::WebhookSecret => "webhook_secret",
            SecretKind::ConnectionString => "connection_string",
            SecretKind::Password => "password",
            SecretKind::Other => "other",
        }
    }
}

impl fmt::Display for SecretKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SecretKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        SecretKind::ALL
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| Error::InvalidInput {
                field: "kind",
                reason: format!(
                    "unknown kind {s:?}; expected one of api_key, oauth_token, webhook_secret, connection_string, password, other"
                ),
            })
    }
}

/// Everything known about a secret except its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct SecretMeta {
    /// The tenant.
    pub scope: Scope,
    /// The name.
    pub name: SecretName,
    /// Who issued it (`openai`, `github`, …).
    pub provider: Option<String>,
    /// What it is.
    pub kind: SecretKind,
    /// Free text for people.
    pub description: Option<String>,
    /// Labels for selection.
    pub tags: Vec<String>,
    /// The environment variable name to inject it as, overriding the derived one.
    pub env_name: Option<String>,
    /// After this instant `get` answers [`Error::Expired`].
    pub expires_at: Option<DateTime<Utc>>,
    /// When false, `get` answers [`Error::Inactive`].
    pub active: bool,
    /// The latest version (1 for the first write). Backends without history still count.
    pub version: u64,
    /// When the secret was first written.
    pub created_at: DateTime<Utc>,
    /// When the latest version was written.
    pub updated_at: DateTime<Utc>,
    /// When the secret was last read, where usage is tracked.
    pub last_used_at: Option<DateTime<Utc>>,
    /// How often the secret was read, where usage is tracked.
    pub usage_count: u64,
    /// The keyring key that sealed the latest version, for stores that seal.
    pub key_id: Option<u32>,
}

impl SecretMeta {
    /// Metadata for a secret written now for the first time, with `attributes` applied.
    pub fn new(scope: Scope, name: SecretName, attributes: &Attributes) -> Self {
        let now = now();
        let mut meta = Self {
            scope,
            name,
            provider: None,
            kind: SecretKind::Other,
            description: None,
            tags: Vec::new(),
            env_name: None,
            expires_at: None,
            active: true,
            version: 1,
            created_at: now,
            updated_at: now,
            last_used_at: None,
            usage_count: 0,
            key_id: None,
        };
        attributes.apply(&mut meta);
        meta
    }

    /// Whether `get` would refuse this secret now, and with which error.
    pub fn check_readable(&self) -> Result<()> {
        if !self.active {
            return Err(Error::Inactive {
                scope: self.scope.to_string(),
                name: self.name.to_string(),
            });
        }
        match self.expires_at {
            Some(at) if at <= Utc::now() => Err(Error::Expired {
                scope: self.scope.to_string(),
                name: self.name.to_string(),
                expired_at: at,
            }),
            _ => Ok(()),
        }
    }
}

/// The current time at millisecond precision, the precision every store keeps.
pub fn now() -> DateTime<Utc> {
    truncate_millis(Utc::now())
}

/// `t` cut to whole milliseconds.
pub fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// A secret's value and metadata. `Debug` shows the metadata and `[REDACTED]`.
#[derive(Debug, Clone)]
pub struct Secret {
    /// The value; read it with [`secrecy::ExposeSecret`].
    pub value: SecretString,
    /// The metadata; `meta.version` is the version returned.
    pub meta: SecretMeta,
}

/// Metadata to set on a write. `None` keeps what the secret has (or the default on
/// the first write); `Some` replaces it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Attributes {
    /// See [`SecretMeta::provider`].
    pub provider: Option<String>,
    /// See [`SecretMeta::kind`].
    pub kind: Option<SecretKind>,
    /// See [`SecretMeta::description`].
    pub description: Option<String>,
    /// See [`SecretMeta::tags`].
    pub tags: Option<Vec<String>>,
    /// See [`SecretMeta::env_name`].
    pub env_name: Option<String>,
    /// See [`SecretMeta::expires_at`].
    pub expires_at: Option<DateTime<Utc>>,
    /// See [`SecretMeta::active`].
    pub active: Option<bool>,
    /// Clears the expiry, so the secret never expires (an expired one is renewed by the
    /// write). [`validate`](Self::validate) refuses it together with `expires_at`.
    #[serde(default)]
    pub no_expiry: bool,
}

impl Attributes {
    /// Applies the fields that are set to `meta`.
    pub fn apply(&self, meta: &mut SecretMeta) {
        if let Some(v) = &self.provider {
            meta.provider = Some(v.clone());
        }
        if let Some(v) = self.kind {
            meta.kind = v;
        }
        if let Some(v) = &self.description {
            meta.description = Some(v.clone());
        }
        if let Some(v) = &self.tags {
            meta.tags = v.clone();
        }
        if let Some(v) = &self.env_name {
            meta.env_name = Some(v.clone());
        }
        if let Some(v) = self.expires_at {
            meta.expires_at = Some(truncate_millis(v));
        }
        if self.no_expiry {
            meta.expires_at = None;
        }
        if let Some(v) = self.active {
            meta.active = v;
        }
    }

    /// Checks every field that is set.
    pub fn validate(&self) -> Result<()> {
        let bad = |field, reason: String| Err(Error::InvalidInput { field, reason });
        if self.no_expiry && self.expires_at.is_some() {
            return bad(
                "expires_at",
                "an expiry and no expiry at once: give one of them".to_owned(),
            );
        }
        if let Some(p) = &self.provider
            && (p.is_empty() || p.len() > 64 || !p.bytes().all(|b| b.is_ascii_graphic()))
        {
            return bad(
                "provider",
                "must be 1–64 printable ASCII characters without spaces".into(),
            );
        }
        if let Some(d) = &self.description
            && (d.len() > 1024 || d.chars().any(|c| c.is_control() && c != '\n' && c != '\t'))
        {
            return bad(
                "description",
                "must be at most 1024 bytes without control characters".into(),
            );
        }
        if let Some(tags) = &self.tags {
            if tags.len() > MAX_TAGS {
                return bad(
                    "tags",
                    format!("at most {MAX_TAGS} tags, got {}", tags.len()),
                );
            }
            for tag in tags {
                if tag.is_empty()
                    || tag.len() > 64
                    || !tag.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-')
                    })
                {
                    return bad(
                        "tags",
                        format!(
                            "tag {:?} must be 1–64 characters of letters, digits and _ . : -",
                            tag.chars().take(80).collect::<String>()
                        ),
                    );
                }
            }
        }
        if let Some(e) = &self.env_name {
            let mut bytes = e.bytes();
            let first_ok = bytes
                .next()
                .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_');
            if !first_ok || e.len() > 255 || !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
            {
                return bad(
                    "env_name",
                    format!(
                        "{:?} must match [A-Za-z_][A-Za-z0-9_]* (at most 255)",
                        e.chars().take(80).collect::<String>()
                    ),
                );
            }
        }
        Ok(())
    }
}

/// When a write may happen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum WriteCondition {
    /// Always: a new version on top of whatever is there.
    #[default]
    Blind,
    /// Only if no live secret has the name ([`Error::AlreadyExists`] otherwise). A
    /// soft-deleted secret does not count as live.
    CreateOnly,
    /// Only if the latest live version is exactly this one ([`Error::Conflict`] otherwise).
    IfVersion(u64),
}

/// Options of [`SecretStore::put`](crate::SecretStore::put).
///
/// ```
/// use coffer_store::{PutOptions, SecretKind};
/// let opts = PutOptions::create_only()
///     .provider("openai")
///     .kind(SecretKind::ApiKey)
///     .tags(["prod", "llm"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct PutOptions {
    /// When the write may happen.
    pub condition: WriteCondition,
    /// Metadata to set.
    pub attributes: Attributes,
}

impl PutOptions {
    /// A blind write with no metadata changes.
    pub fn new() -> Self {
        Self::default()
    }

    /// A create-only write.
    pub fn create_only() -> Self {
        Self::default().condition(WriteCondition::CreateOnly)
    }

    /// A check-and-set write on top of version `version`.
    pub fn if_version(version: u64) -> Self {
        Self::default().condition(WriteCondition::IfVersion(version))
    }

    /// Sets the write condition.
    #[must_use]
    pub fn condition(mut self, condition: WriteCondition) -> Self {
        self.condition = condition;
        self
    }

    /// Sets all metadata at once.
    #[must_use]
    pub fn attributes(mut self, attributes: Attributes) -> Self {
        self.attributes = attributes;
        self
    }

    /// Sets the provider.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.attributes.provider = Some(provider.into());
        self
    }

    /// Sets the kind.
    #[must_use]
    pub fn kind(mut self, kind: SecretKind) -> Self {
        self.attributes.kind = Some(kind);
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.attributes.description = Some(description.into());
        self
    }

    /// Sets the tags.
    #[must_use]
    pub fn tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.attributes.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Sets the environment variable name.
    #[must_use]
    pub fn env_name(mut self, env_name: impl Into<String>) -> Self {
        self.attributes.env_name = Some(env_name.into());
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, expires_at: DateTime<Utc>) -> Self {
        self.attributes.expires_at = Some(expires_at);
        self
    }

    /// Sets whether the secret is active.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.attributes.active = Some(active);
        self
    }

    /// Clears the expiry: the secret never expires ([`Attributes::no_expiry`]).
    #[must_use]
    pub fn no_expiry(mut self) -> Self {
        self.attributes.no_expiry = true;
        self
    }
}

/// A metadata edit without a new value version
/// ([`SecretStore::update_attributes`](crate::SecretStore::update_attributes)): each
/// field is left as it is unless set, and the optional ones can be cleared, which a
/// [`PutOptions`]'s attributes (where `None` means "keep") cannot.
///
/// ```
/// use coffer_store::{AttributeUpdate, MemoryStore, PutOptions, Scope, SecretName, SecretStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let store = MemoryStore::new();
/// let (scope, name) = (Scope::new("tenant-a")?, SecretName::new("openai_api_key")?);
/// let soon = chrono::Utc::now() + chrono::Duration::days(1);
/// store.put(&scope, &name, &"sk-example".into(), &PutOptions::new().expires_at(soon)).await?;
/// let meta = store
///     .update_attributes(&scope, &name, &AttributeUpdate::new().no_expiry().add_tag("prod"))
///     .await?;
/// assert_eq!((meta.version, meta.expires_at, meta.tags), (1, None, vec!["prod".to_owned()]));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct AttributeUpdate {
    /// Set (`Some(Some(_))`) or clear (`Some(None)`) the provider.
    pub provider: Option<Option<String>>,
    /// Set the kind.
    pub kind: Option<SecretKind>,
    /// Set or clear the description.
    pub description: Option<Option<String>>,
    /// Replace the tags (before `add_tags` and `remove_tags` apply).
    pub tags: Option<Vec<String>>,
    /// Tags to add (kept once each).
    pub add_tags: Vec<String>,
    /// Tags to remove.
    pub remove_tags: Vec<String>,
    /// Set or clear the environment variable name.
    pub env_name: Option<Option<String>>,
    /// Set or clear the expiry. A time in the past is refused: to stop a secret now,
    /// deactivate it.
    pub expires_at: Option<Option<DateTime<Utc>>>,
    /// Activate or deactivate.
    pub active: Option<bool>,
}

impl AttributeUpdate {
    /// An edit that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the provider.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(Some(provider.into()));
        self
    }

    /// Clears the provider.
    #[must_use]
    pub fn clear_provider(mut self) -> Self {
        self.provider = Some(None);
        self
    }

    /// Sets the kind.
    #[must_use]
    pub fn kind(mut self, kind: SecretKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Sets the description.
    #[must_use]
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = Some(Some(description.into()));
        self
    }

    /// Clears the description.
    #[must_use]
    pub fn clear_description(mut self) -> Self {
        self.description = Some(None);
        self
    }

    /// Replaces the tags.
    #[must_use]
    pub fn tags<I, T>(mut self, tags: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<String>,
    {
        self.tags = Some(tags.into_iter().map(Into::into).collect());
        self
    }

    /// Adds a tag.
    #[must_use]
    pub fn add_tag(mut self, tag: impl Into<String>) -> Self {
        self.add_tags.push(tag.into());
        self
    }

    /// Removes a tag.
    #[must_use]
    pub fn remove_tag(mut self, tag: impl Into<String>) -> Self {
        self.remove_tags.push(tag.into());
        self
    }

    /// Sets the environment variable name.
    #[must_use]
    pub fn env_name(mut self, env_name: impl Into<String>) -> Self {
        self.env_name = Some(Some(env_name.into()));
        self
    }

    /// Clears the environment variable name.
    #[must_use]
    pub fn clear_env_name(mut self) -> Self {
        self.env_name = Some(None);
        self
    }

    /// Sets the expiry.
    #[must_use]
    pub fn expires_at(mut self, at: DateTime<Utc>) -> Self {
        self.expires_at = Some(Some(at));
        self
    }

    /// Clears the expiry: the secret no longer expires.
    #[must_use]
    pub fn no_expiry(mut self) -> Self {
        self.expires_at = Some(None);
        self
    }

    /// Activates (`true`) or deactivates (`false`) the secret.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Whether the edit changes nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Checks every field it sets by the rules of [`Attributes::validate`], refuses an
    /// empty edit and an expiry in the past.
    pub fn validate(&self) -> Result<()> {
        if self.is_empty() {
            return Err(Error::InvalidInput {
                field: "attributes",
                reason: "the edit changes nothing".into(),
            });
        }
        let mut tags: Vec<String> = self.tags.clone().unwrap_or_default();
        tags.extend(self.add_tags.iter().cloned());
        tags.extend(self.remove_tags.iter().cloned());
        Attributes {
            provider: self.provider.clone().flatten(),
            kind: self.kind,
            description: self.description.clone().flatten(),
            tags: Some(tags).filter(|t| !t.is_empty()),
            env_name: self.env_name.clone().flatten(),
            expires_at: None,
            no_expiry: false,
            active: self.active,
        }
        .validate()?;
        if let Some(Some(at)) = self.expires_at
            && at <= Utc::now()
        {
            return Err(Error::InvalidInput {
                field: "expires_at",
                reason: format!(
                    "{} is in the past; to stop a secret now, deactivate it",
                    at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ),
            });
        }
        Ok(())
    }

    /// Applies the edit to `meta` and moves `updated_at` to now (strictly later than
    /// before, so every edit is a change a check-and-set on `updated_at` sees). The
    /// version is not touched. The result is checked: at most [`MAX_TAGS`] tags.
    pub fn apply(&self, meta: &mut SecretMeta) -> Result<()> {
        if let Some(p) = &self.provider {
            meta.provider.clone_from(p);
        }
        if let Some(k) = self.kind {
            meta.kind = k;
        }
        if let Some(d) = &self.description {
            meta.description.clone_from(d);
        }
        if let Some(t) = &self.tags {
            meta.tags.clone_from(t);
        }
        for tag in &self.add_tags {
            if !meta.tags.contains(tag) {
                meta.tags.push(tag.clone());
            }
        }
        meta.tags.retain(|t| !self.remove_tags.contains(t));
        if let Some(e) = &self.env_name {
            meta.env_name.clone_from(e);
        }
        if let Some(at) = self.expires_at {
            meta.expires_at = at.map(truncate_millis);
        }
        if let Some(a) = self.active {
            meta.active = a;
        }
        if meta.tags.len() > MAX_TAGS {
            return Err(Error::InvalidInput {
                field: "tags",
                reason: format!("at most {MAX_TAGS} tags, got {}", meta.tags.len()),
            });
        }
        let later = meta.updated_at + chrono::Duration::milliseconds(1);
        meta.updated_at = now().max(later);
        Ok(())
    }
}

/// Checks a value against the store-wide limits (UTF-8 is guaranteed by the type).
pub fn validate_value(value: &str) -> Result<()> {
    if value.len() > MAX_VALUE_LEN {
        return Err(Error::InvalidInput {
            field: "value",
            reason: format!("{} bytes is over the limit of {MAX_VALUE_LEN}", value.len()),
        });
    }
    Ok(())
}

/// How [`SecretStore::delete`](crate::SecretStore::delete) deletes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeleteMode {
    /// Hide the secret: reads and lists no longer see it, history is kept, and the next
    /// write continues its version numbers. Where the backend lacks soft delete
    /// ([`Capabilities::soft_delete`]) this is [`Error::Unsupported`].
    #[default]
    Soft,
    /// Remove every version and the metadata for good. The next write starts at version 1.
    Destroy,
}

/// Options of [`SecretStore::list`](crate::SecretStore::list).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListOptions {
    /// Only names starting with this.
    pub prefix: Option<String>,
    /// Page size: default [`DEFAULT_PAGE_SIZE`], at most [`MAX_PAGE_SIZE`].
    pub limit: Option<usize>,
    /// Continue after this cursor (a previous page's [`ListPage::next_cursor`]).
    pub cursor: Option<String>,
    /// Only secrets of this provider.
    pub provider: Option<String>,
    /// Only secrets of this kind.
    pub kind: Option<SecretKind>,
    /// Only secrets carrying this tag.
    pub tag: Option<String>,
    /// Only active (`Some(true)`) or only inactive (`Some(false)`) secrets.
    pub active: Option<bool>,
}

impl ListOptions {
    /// Every secret, first page.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only names starting with `prefix`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Page size.
    #[must_use]
    pub fn limit(mut self, limit: usize) -> Self {
        self.limit = Some(limit);
        self
    }

    /// Continue after `cursor`.
    #[must_use]
    pub fn cursor(mut self, cursor: impl Into<String>) -> Self {
        self.cursor = Some(cursor.into());
        self
    }

    /// Only secrets of `provider`.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Only secrets of `kind`.
    #[must_use]
    pub fn kind(mut self, kind: SecretKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Only secrets tagged `tag`.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tag = Some(tag.into());
        self
    }

    /// Only active (`true`) or only inactive (`false`) secrets.
    #[must_use]
    pub fn active(mut self, active: bool) -> Self {
        self.active = Some(active);
        self
    }

    /// Whether any filter beyond the prefix is set.
    pub fn has_filters(&self) -> bool {
        self.provider.is_some()
            || self.kind.is_some()
            || self.tag.is_some()
            || self.active.is_some()
    }

    /// Whether `meta` passes the filters (provider, kind, tag, active; not the prefix).
    ///
    /// ```
    /// use coffer_store::{Attributes, ListOptions, Scope, SecretKind, SecretMeta, SecretName};
    /// let meta = SecretMeta::new(Scope::new("t")?, SecretName::new("k")?, &Default::default());
    /// assert!(ListOptions::new().active(true).matches(&meta));
    /// assert!(!ListOptions::new().kind(SecretKind::ApiKey).matches(&meta));
    /// # Ok::<(), coffer_store::Error>(())
    /// ```
    pub fn matches(&self, meta: &SecretMeta) -> bool {
        self.provider
            .as_ref()
            .is_none_or(|p| meta.provider.as_ref() == Some(p))
            && self.kind.is_none_or(|k| meta.kind == k)
            && self.tag.as_ref().is_none_or(|t| meta.tags.contains(t))
            && self.active.is_none_or(|a| meta.active == a)
    }

    /// The validated page size.
    pub fn page_size(&self) -> Result<usize> {
        match self.limit {
            None => Ok(DEFAULT_PAGE_SIZE),
            Some(n) if (1..=MAX_PAGE_SIZE).contains(&n) => Ok(n),
            Some(n) => Err(Error::InvalidInput {
                field: "limit",
                reason: format!("page size must be 1..={MAX_PAGE_SIZE}, got {n}"),
            }),
        }
    }

    /// Validates the options: the prefix's characters, the page size.
    pub fn validate(&self) -> Result<()> {
        if let Some(p) = &self.prefix {
            crate::name::check_prefix(p)?;
        }
        self.page_size().map(drop)
    }
}

/// One version of a secret as a store keeps it ([`SecretStore::versions`](crate::SecretStore::versions)):
/// its number, when it was written and under which key, never its value.
///
/// Metadata (provider, tags, expiry, …) belongs to the secret, not to a version: every
/// version is read with the secret's current metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct VersionInfo {
    /// The version number (1 for the first write).
    pub version: u64,
    /// When it was written.
    pub created_at: DateTime<Utc>,
    /// The keyring key that sealed it, for stores that seal.
    pub key_id: Option<u32>,
    /// Whether its value can still be read.
    pub state: VersionState,
}

impl VersionInfo {
    /// A version written at `created_at`, readable.
    pub fn new(version: u64, created_at: DateTime<Utc>) -> Self {
        Self {
            version,
            created_at,
            key_id: None,
            state: VersionState::Kept,
        }
    }

    /// With the key that sealed it.
    #[must_use]
    pub fn key_id(mut self, key_id: Option<u32>) -> Self {
        self.key_id = key_id;
        self
    }

    /// With another state.
    #[must_use]
    pub fn state(mut self, state: VersionState) -> Self {
        self.state = state;
        self
    }
}

/// Whether a kept version's value can be read ([`VersionInfo::state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum VersionState {
    /// Its value is kept and readable by number.
    Kept,
    /// Deleted on its own, recoverable in the backend (Vault's `kv undelete`).
    Deleted,
    /// Its value is gone for good; only the number is left (Vault's `kv destroy`).
    Destroyed,
}

impl VersionState {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Kept => "kept",
            Self::Deleted => "deleted",
            Self::Destroyed => "destroyed",
        }
    }
}

impl fmt::Display for VersionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One page of a listing, ordered by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ListPage {
    /// The secrets on this page.
    pub items: Vec<SecretMeta>,
    /// Where the next page starts; `None` on the last page.
    pub next_cursor: Option<String>,
}

impl ListPage {
    /// A page.
    pub fn new(items: Vec<SecretMeta>, next_cursor: Option<String>) -> Self {
        Self { items, next_cursor }
    }
}

/// What a backend can do. The conformance suite skips what a backend says it lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Capabilities {
    /// Old versions stay readable by number, and
    /// [`SecretStore::versions`](crate::SecretStore::versions) lists them.
    pub versions: bool,
    /// [`WriteCondition::IfVersion`] is atomic.
    pub check_and_set: bool,
    /// [`DeleteMode::Soft`] is available, and a soft-deleted secret is listed by
    /// [`SecretStore::list_deleted`](crate::SecretStore::list_deleted) and brought back by
    /// [`SecretStore::restore`](crate::SecretStore::restore).
    pub soft_delete: bool,
    /// Values are sealed with a coffer keyring and can be rewrapped.
    pub rewrap: bool,
    /// [`SecretStore::update_attributes`](crate::SecretStore::update_attributes) edits
    /// metadata without writing a new version.
    pub update_attributes: bool,
    /// [`SecretStore::list_scopes`](crate::SecretStore::list_scopes) lists the scopes
    /// that hold live secrets.
    pub list_scopes: bool,
}

impl Capabilities {
    /// Everything.
    pub const ALL: Capabilities = Capabilities {
        versions: true,
        check_and_set: true,
        soft_delete: true,
        rewrap: true,
        update_attributes: true,
        list_scopes: true,
    };

    /// A backend with none of the optional features.
    pub const NONE: Capabilities = Capabilities {
        versions: false,
        check_and_set: false,
        soft_delete: false,
        rewrap: false,
        update_attributes: false,
        list_scopes: false,
    };

    /// With [`versions`](Self::versions) set to `on`.
    #[must_use]
    pub const fn with_versions(mut self, on: bool) -> Self {
        self.versions = on;
        self
    }

    /// With [`check_and_set`](Self::check_and_set) set to `on`.
    #[must_use]
    pub const fn with_check_and_set(mut self, on: bool) -> Self {
        self.check_and_set = on;
        self
    }

    /// With [`soft_delete`](Self::soft_delete) set to `on`.
    #[must_use]
    pub const fn with_soft_delete(mut self, on: bool) -> Self {
        self.soft_delete = on;
        self
    }

    /// With [`rewrap`](Self::rewrap) set to `on`.
    #[must_use]
    pub const fn with_rewrap(mut self, on: bool) -> Self {
        self.rewrap = on;
        self
    }

    /// With [`update_attributes`](Self::update_attributes) set to `on`.
    #[must_use]
    pub const fn with_update_attributes(mut self, on: bool) -> Self {
        self.update_attributes = on;
        self
    }

    /// With [`list_scopes`](Self::list_scopes) set to `on`.
    #[must_use]
    pub const fn with_list_scopes(mut self, on: bool) -> Self {
        self.list_scopes = on;
        self
    }
}

/// The outcome of one [`SecretStore::rewrap_batch`](crate::SecretStore::rewrap_batch) call,
/// or the sum of a whole [`SecretStoreExt::rewrap_all`](crate::SecretStoreExt::rewrap_all).
///
/// A rotation moves two kinds of item onto the primary key: envelopes (the sealed values)
/// and, in backends that authenticate metadata, the MAC over each secret's head (see
/// [`backend::tag_head`](crate::backend::tag_head)). They are counted apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct RewrapBatch {
    /// Envelopes moved to the primary key.
    pub rewrapped: u64,
    /// Head MACs made again under the primary key.
    pub retagged: u64,
    /// Items (envelopes and head MACs) still under other keys afterwards.
    pub remaining: u64,
}

impl RewrapBatch {
    /// A batch that moved `rewrapped` envelopes and left `remaining` items.
    pub fn new(rewrapped: u64, remaining: u64) -> Self {
        Self {
            rewrapped,
            retagged: 0,
            remaining,
        }
    }

    /// With [`retagged`](Self::retagged) set.
    #[must_use]
    pub const fn with_retagged(mut self, retagged: u64) -> Self {
        self.retagged = retagged;
        self
    }

    /// Items moved: envelopes and head MACs together.
    pub const fn moved(&self) -> u64 {
        self.rewrapped + self.retagged
    }
}

/// How much of a store one key still protects (see
/// [`SecretStore::key_usage`](crate::SecretStore::key_usage)).
///
/// Counted from what the store holds, not from a column anyone could edit: envelopes by
/// the key id in their own header, heads by the key id that starts their MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct KeyUsage {
    /// The key, or `None` for items that name no key (an envelope too short to carry a
    /// header; a head without a MAC).
    pub key_id: Option<u32>,
    /// Stored envelopes it sealed, of every version, deleted or not.
    pub envelopes: u64,
    /// Heads whose MAC it made.
    pub heads: u64,
}

impl KeyUsage {
    /// Usage of `key_id`.
    pub fn new(key_id: Option<u32>, envelopes: u64, heads: u64) -> Self {
        Self {
            key_id,
            envelopes,
            heads,
        }
    }

    /// Whether anything still depends on the key.
    pub const fn in_use(&self) -> bool {
        self.envelopes + self.heads > 0
    }
}

/// Reads of one secret to add to its usage statistics (see
/// [`SecretStore::record_usage`](crate::SecretStore::record_usage)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Usage {
    /// The scope.
    pub scope: Scope,
    /// The secret.
    pub name: SecretName,
    /// Reads to add to [`SecretMeta::usage_count`].
    pub count: u64,
    /// The latest of those reads; [`SecretMeta::last_used_at`] becomes the later of this
    /// and what it holds.
    pub last_used_at: DateTime<Utc>,
}

impl Usage {
    /// `count` reads of `scope/name`, the last at `last_used_at`.
    pub fn new(scope: Scope, name: SecretName, count: u64, last_used_at: DateTime<Utc>) -> Self {
        Self {
            scope,
            name,
            count,
            last_used_at: truncate_millis(last_used_at),
        }
    }
}
