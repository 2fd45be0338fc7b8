//! Moving secrets between stores: [`copy`] copies every secret of some scopes (or of
//! every scope) from one store to another, with their metadata, and checks afterwards
//! that both hold the same; [`put_if_changed`] writes a secret only if its value or
//! metadata differ, for imports and reruns.
//!
//! Both compare values by keyed digests ([`Fingerprint`], HMAC-SHA-256 under a key made
//! for the run), so no value, and no plain hash of one that could be guessed offline,
//! leaves the process or reaches a report.
//!
//! ```
//! use coffer_store::copy::{copy, CopyOptions};
//! use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
//! let (from, to) = (MemoryStore::new(), MemoryStore::new());
//! let scope = Scope::new("tenant-a")?;
//! from.put(&scope, &SecretName::new("openai_api_key")?, &"sk-example".into(), &PutOptions::new().provider("openai")).await?;
//! let report = copy(&from, &to, &CopyOptions::new(), &mut |_| {}).await?;
//! assert_eq!((report.created, report.verified, report.mismatched.len()), (1, 1, 0));
//! let again = copy(&from, &to, &CopyOptions::new(), &mut |_| {}).await?;
//! assert_eq!((again.created, again.unchanged), (0, 1));
//! # Ok(()) }
//! ```

use hmac::{Hmac, KeyInit as _, Mac as _};
use rand::RngExt as _;
use secrecy::{ExposeSecret as _, SecretString};
use sha2::Sha256;

use crate::{
    AttributeUpdate, Attributes, DynSecretStore, Error, PutOptions, Result, Scope, Secret,
    SecretMeta, SecretName, SecretStoreExt as _, WriteCondition,
};

/// Which versions [`copy`] copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Versions {
    /// The latest version of each secret (the target numbers it its own way).
    #[default]
    Latest,
    /// Every version, under the same numbers (both stores must keep versions).
    All,
}

/// What [`copy`] copies and how.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CopyOptions {
    /// These scopes; `None`: every scope of the source ([`SecretStore::list_scopes`](crate::SecretStore::list_scopes)).
    pub scopes: Option<Vec<Scope>>,
    /// The latest version or all of them.
    pub versions: Versions,
    /// Decide and report, write nothing.
    pub dry_run: bool,
}

impl CopyOptions {
    /// Every scope, latest versions, writing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only `scopes`.
    #[must_use]
    pub fn scopes(mut self, scopes: Vec<Scope>) -> Self {
        self.scopes = Some(scopes);
        self
    }

    /// Which versions.
    #[must_use]
    pub fn versions(mut self, versions: Versions) -> Self {
        self.versions = versions;
        self
    }

    /// Decide and report only.
    #[must_use]
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }
}

/// What happened to one secret.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Outcome {
    /// It was not in the target and is now (or would be, in a dry run).
    Created,
    /// The target had it with another value, history or metadata; now it matches.
    Updated,
    /// The target had it as it is: nothing was written.
    Unchanged,
    /// Not copied, and why (an inactive or expired secret, whose value coffer does not
    /// read; a secret deleted while the copy ran).
    Skipped(String),
    /// Not copied because it cannot be done right, and why (a target history that
    /// differs from the source's, metadata the target cannot hold).
    Refused(String),
}

/// One secret [`copy`] looked at.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Item {
    /// Its scope.
    pub scope: Scope,
    /// Its name.
    pub name: SecretName,
    /// What happened.
    pub outcome: Outcome,
}

/// Where a [`copy`] is, after each secret.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress {
    /// Secrets done.
    pub done: usize,
    /// Secrets in all.
    pub total: usize,
}

/// What a [`copy`] did. It names secrets, never values.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CopyReport {
    /// Every secret looked at, in order.
    pub items: Vec<Item>,
    /// How many were created.
    pub created: usize,
    /// How many were updated.
    pub updated: usize,
    /// How many were already as in the source.
    pub unchanged: usize,
    /// How many were skipped.
    pub skipped: usize,
    /// How many were refused.
    pub refused: usize,
    /// How many the verification pass found the same in both stores (not in a dry run).
    pub verified: usize,
    /// `scope/name` of those whose value or metadata differ in the target afterwards.
    pub mismatched: Vec<String>,
}

impl CopyReport {
    fn record(&mut self, scope: &Scope, name: &SecretName, outcome: Outcome) {
        match &outcome {
            Outcome::Created => self.created += 1,
            Outcome::Updated => self.updated += 1,
            Outcome::Unchanged => self.unchanged += 1,
            Outcome::Skipped(_) => self.skipped += 1,
            Outcome::Refused(_) => self.refused += 1,
        }
        self.items.push(Item {
            scope: scope.clone(),
            name: name.clone(),
            outcome,
        });
    }
}

/// A keyed digest of values and metadata: HMAC-SHA-256 under a random key held only
/// by this value, so digests compare within one run and mean nothing outside it.
pub struct Fingerprint {
    key: [u8; 32],
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fingerprint").finish_non_exhaustive()
    }
}

impl Drop for Fingerprint {
    fn drop(&mut self) {
        self.key = [0; 32];
    }
}

impl Default for Fingerprint {
    fn default() -> Self {
        Self::new()
    }
}

impl Fingerprint {
    /// One with a fresh random key.
    pub fn new() -> Self {
        Self {
            key: rand::rng().random(),
        }
    }

    /// The digest of a value.
    pub fn of_value(&self, value: &SecretString) -> [u8; 32] {
        self.digest(&[b"value", value.expose_secret().as_bytes()])
    }

    /// The digest of the metadata [`same_attributes`] compares.
    pub fn of_attributes(&self, meta: &SecretMeta) -> [u8; 32] {
        let opt = |v: &Option<String>| match v {
            Some(v) => format!("+{v}"),
            None => "-".to_owned(),
        };
        let tags = meta.tags.join("\n");
        let expires = meta
            .expires_at
            .map_or_else(|| "-".to_owned(), |t| t.timestamp_millis().to_string());
        let fields = [
            opt(&meta.provider),
            meta.kind.as_str().to_owned(),
            opt(&meta.description),
            tags,
            opt(&meta.env_name),
            expires,
            meta.active.to_string(),
        ];
        let mut parts: Vec<&[u8]> = vec![b"attributes"];
        parts.extend(fields.iter().map(|f| f.as_bytes()));
        self.digest(&parts)
    }

    fn digest(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = <Hmac<Sha256>>::new_from_slice(&self.key).expect("HMAC takes any key");
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

/// The metadata a copy keeps: provider, kind, description, tags, env name, expiry,
/// active (not versions, times or usage, which each store keeps itself).
pub fn attributes_of(meta: &SecretMeta) -> Attributes {
    Attributes {
        provider: meta.provider.clone(),
        kind: Some(meta.kind),
        description: meta.description.clone(),
        tags: Some(meta.tags.clone()),
        env_name: meta.env_name.clone(),
        expires_at: meta.expires_at,
        no_expiry: meta.expires_at.is_none(),
        active: Some(meta.active),
    }
}

/// Whether two secrets' metadata agree on what [`attributes_of`] keeps.
pub fn same_attributes(a: &SecretMeta, b: &SecretMeta) -> bool {
    attributes_of(a) == attributes_of(b)
}

/// The edit that makes `current`'s metadata `wanted`'s; empty when they agree.
pub fn attribute_edit(current: &SecretMeta, wanted: &SecretMeta) -> AttributeUpdate {
    let mut edit = AttributeUpdate::new();
    if current.provider != wanted.provider {
        edit.provider = Some(wanted.provider.clone());
    }
    if current.kind != wanted.kind {
        edit.kind = Some(wanted.kind);
    }
    if current.description != wanted.description {
        edit.description = Some(wanted.description.clone());
    }
    if current.tags != wanted.tags {
        edit.tags = Some(wanted.tags.clone());
    }
    if current.env_name != wanted.env_name {
        edit.env_name = Some(wanted.env_name.clone());
    }
    if current.expires_at != wanted.expires_at {
        edit.expires_at = Some(wanted.expires_at);
    }
    if current.active != wanted.active {
        edit.active = Some(wanted.active);
    }
    edit
}

/// The put options that set every attribute of `meta`.
fn put_options_of(meta: &SecretMeta, condition: WriteCondition) -> PutOptions {
    let mut options = PutOptions::new();
    options.condition = condition;
    options.attributes = attributes_of(meta);
    options
}

/// Brings `store`'s metadata of (scope, name), now `current`, to `wanted`'s without a
/// new version; `Err(reason)` when the store cannot (no attribute edits, a past expiry).
async fn edit_to(
    store: &DynSecretStore,
    current: &SecretMeta,
    wanted: &SecretMeta,
) -> Result<std::result::Result<(), String>> {
    let edit = attribute_edit(current, wanted);
    if edit.is_empty() {
        return Ok(Ok(()));
    }
    if !store.capabilities().update_attributes {
        return Ok(Err(format!(
            "{} cannot change metadata without a new value (its metadata differs from the source's)",
            store.backend()
        )));
    }
    match store
        .update_attributes(&current.scope, &current.name, &edit)
        .await
    {
        Ok(_) => Ok(Ok(())),
        Err(Error::InvalidInput { field, reason }) => Ok(Err(format!("{field}: {reason}"))),
        Err(e) => Err(e),
    }
}

/// Writes `value` with `wanted`'s metadata as (scope, name) in `store` unless it already
/// holds that value and metadata: [`Outcome::Unchanged`] then, and nothing is written.
/// A value that is the same with other metadata is an attribute edit where the store has
/// them, not a new version. `dry_run` decides without writing.
pub async fn put_if_changed(
    store: &DynSecretStore,
    value: &SecretString,
    wanted: &SecretMeta,
    dry_run: bool,
) -> Result<Outcome> {
    let current = match store.metadata(&wanted.scope, &wanted.name).await {
        Ok(meta) => Some(meta),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    put_over(store, current, value, wanted, dry_run).await
}

/// [`put_if_changed`] for a caller that has just read the secret's metadata
/// (`current`, `None` when there is none): the same decision, one read fewer.
pub async fn put_over(
    store: &DynSecretStore,
    current: Option<SecretMeta>,
    value: &SecretString,
    wanted: &SecretMeta,
    dry_run: bool,
) -> Result<Outcome> {
    let fingerprint = Fingerprint::new();
    let (scope, name) = (&wanted.scope, &wanted.name);
    let Some(current) = current else {
        if !dry_run {
            store
                .put(
                    scope,
                    name,
                    value,
                    &put_options_of(wanted, WriteCondition::CreateOnly),
                )
                .await?;
        }
        return Ok(Outcome::Created);
    };
    // The current value, where it can be read (an inactive or expired one cannot).
    let same_value = match store.get(scope, name, None).await {
        Ok(secret) => fingerprint.of_value(&secret.value) == fingerprint.of_value(value),
        Err(Error::Inactive { .. } | Error::Expired { .. }) => false,
        Err(e) => return Err(e),
    };
    if same_value && same_attributes(&current, wanted) {
        return Ok(Outcome::Unchanged);
    }
    if dry_run {
        return Ok(Outcome::Updated);
    }
    if same_value && store.capabilities().update_attributes {
        return Ok(match edit_to(store, &current, wanted).await? {
            Ok(()) => Outcome::Updated,
            Err(reason) => Outcome::Refused(reason),
        });
    }
    let written = store
        .put(
            scope,
            name,
            value,
            &put_options_of(wanted, WriteCondition::IfVersion(current.version)),
        )
        .await?;
    // A put keeps what it is not given (a description, an expiry the source lacks).
    Ok(match edit_to(store, &written, wanted).await? {
        Ok(()) => Outcome::Updated,
        Err(reason) => Outcome::Refused(reason),
    })
}

/// Why a source secret is not read: inactive or expired.
fn unreadable(meta: &SecretMeta) -> Option<String> {
    match meta.check_readable() {
        Ok(()) => None,
        Err(Error::Inactive { .. }) => {
            Some("inactive: coffer does not read an inactive secret's value".into())
        }
        Err(_) => Some("expired: coffer does not read an expired secret's value".into()),
    }
}

/// Copies every live secret of `options.scopes` (or of every scope) from `from` to `to`
/// with its metadata, then reads both back and compares digests of values and metadata.
///
/// - Idempotent and resumable: a secret the target already holds as in the source is
///   [`Outcome::Unchanged`] and not written, so a rerun after an interruption writes
///   only what is left; with [`Versions::All`] it continues after the target's latest
///   version, once it checked that the versions there are the source's.
/// - Inactive and expired secrets are skipped (coffer never reads their values); so is
///   one deleted while the copy runs.
/// - `progress` is called after each secret.
///
/// Errors: a source that cannot list scopes when none are given, [`Versions::All`]
/// between stores that do not both keep versions, and any store error (the report of
/// what was done so far is then lost; rerun to resume).
pub async fn copy(
    from: &DynSecretStore,
    to: &DynSecretStore,
    options: &CopyOptions,
    progress: &mut (dyn FnMut(Progress) + Send),
) -> Result<CopyReport> {
    if options.versions == Versions::All {
        for (store, role) in [(from, "source"), (to, "target")] {
            if !store.capabilities().versions {
                return Err(Error::config(format!(
                    "the {role} ({}) keeps no history: copy the latest versions instead",
                    store.backend()
                )));
            }
        }
    }
    let scopes = match &options.scopes {
        Some(scopes) => scopes.clone(),
        None => from.list_scopes().await?,
    };
    let mut work = Vec::new();
    for scope in &scopes {
        for meta in from.list_all(scope, None).await? {
            work.push(meta);
        }
    }
    let fingerprint = Fingerprint::new();
    let mut report = CopyReport::default();
    let total = work.len();
    for (done, meta) in work.iter().enumerate() {
        let outcome = match unreadable(meta) {
            Some(reason) => Outcome::Skipped(reason),
            None => {
                let copied = match options.versions {
                    Versions::Latest => copy_latest(from, to, meta, options.dry_run).await,
                    Versions::All => copy_all(from, to, meta, options.dry_run, &fingerprint).await,
                };
                match copied {
                    Ok(outcome) => outcome,
                    // What the target cannot hold (a name its layout refuses, metadata over
                    // its limits) is this secret's refusal, not the end of the copy.
                    Err(e @ (Error::InvalidInput { .. } | Error::InvalidName { .. })) => {
                        Outcome::Refused(format!("the target refuses it: {e}"))
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        report.record(&meta.scope, &meta.name, outcome);
        progress(Progress {
            done: done + 1,
            total,
        });
    }
    if !options.dry_run {
        verify(from, to, options.versions, &fingerprint, &mut report).await?;
    }
    Ok(report)
}

async fn copy_latest(
    from: &DynSecretStore,
    to: &DynSecretStore,
    meta: &SecretMeta,
    dry_run: bool,
) -> Result<Outcome> {
    let secret = match from.get(&meta.scope, &meta.name, None).await {
        Ok(s) => s,
        Err(e) if e.is_not_found() => return Ok(Outcome::Skipped("deleted meanwhile".into())),
        Err(e) => return Err(e),
    };
    put_if_changed(to, &secret.value, &secret.meta, dry_run).await
}

/// Every version of `scope/name` in `store`, 1 to `latest`; `None` where one is gone.
async fn history(
    store: &DynSecretStore,
    scope: &Scope,
    name: &SecretName,
    latest: u64,
) -> Result<Vec<Option<Secret>>> {
    let mut all = Vec::new();
    for v in 1..=latest {
        match store.get(scope, name, Some(v)).await {
            Ok(s) => all.push(Some(s)),
            Err(e) if e.is_not_found() => all.push(None),
            Err(e) => return Err(e),
        }
    }
    Ok(all)
}

async fn copy_all(
    from: &DynSecretStore,
    to: &DynSecretStore,
    meta: &SecretMeta,
    dry_run: bool,
    fingerprint: &Fingerprint,
) -> Result<Outcome> {
    let (scope, name) = (&meta.scope, &meta.name);
    let source = history(from, scope, name, meta.version).await?;
    if let Some(gap) = source.iter().position(Option::is_none) {
        return Ok(Outcome::Refused(format!(
            "version {} is gone from the source, so the numbers cannot be kept; copy the latest versions",
            gap + 1
        )));
    }
    let target_meta = match to.metadata(scope, name).await {
        Ok(m) => Some(m),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Err(e),
    };
    let have = target_meta.as_ref().map_or(0, |m| m.version);
    if have > meta.version {
        return Ok(Outcome::Refused(format!(
            "the target has version {have}, past the source's {}",
            meta.version
        )));
    }
    let target = history(to, scope, name, have).await?;
    for (i, (s, t)) in source.iter().zip(&target).enumerate() {
        let same = match (s, t) {
            (Some(s), Some(t)) => fingerprint.of_value(&s.value) == fingerprint.of_value(&t.value),
            _ => false,
        };
        if !same {
            return Ok(Outcome::Refused(format!(
                "version {} in the target differs from the source's (another history)",
                i + 1
            )));
        }
    }
    let pending = &source[usize::try_from(have)
        .unwrap_or(usize::MAX)
        .min(source.len())..];
    let current = match &target_meta {
        Some(t) if pending.is_empty() && same_attributes(t, meta) => {
            return Ok(Outcome::Unchanged);
        }
        Some(t) => t.clone(),
        None => meta.clone(),
    };
    if dry_run {
        return Ok(if have == 0 {
            Outcome::Created
        } else {
            Outcome::Updated
        });
    }
    let mut last = target_meta.clone();
    for secret in pending.iter().flatten() {
        let condition = match &last {
            Some(m) => WriteCondition::IfVersion(m.version),
            None => WriteCondition::CreateOnly,
        };
        last = Some(
            to.put(scope, name, &secret.value, &put_options_of(meta, condition))
                .await?,
        );
    }
    let written = last.unwrap_or(current);
    Ok(match edit_to(to, &written, meta).await? {
        Ok(()) if have == 0 => Outcome::Created,
        Ok(()) => Outcome::Updated,
        Err(reason) => Outcome::Refused(reason),
    })
}

/// Reads each copied secret back from both stores and compares the digests of its
/// value (every version with [`Versions::All`]) and metadata.
async fn verify(
    from: &DynSecretStore,
    to: &DynSecretStore,
    versions: Versions,
    fingerprint: &Fingerprint,
    report: &mut CopyReport,
) -> Result<()> {
    for item in &report.items {
        if !matches!(
            item.outcome,
            Outcome::Created | Outcome::Updated | Outcome::Unchanged
        ) {
            continue;
        }
        let (scope, name) = (&item.scope, &item.name);
        let (s, t) = (
            from.get_latest(scope, name).await,
            to.get_latest(scope, name).await,
        );
        let mut same = match (&s, &t) {
            (Ok(s), Ok(t)) => {
                fingerprint.of_value(&s.value) == fingerprint.of_value(&t.value)
                    && fingerprint.of_attributes(&s.meta) == fingerprint.of_attributes(&t.meta)
            }
            _ => false,
        };
        if same && versions == Versions::All {
            let latest = s.as_ref().map_or(0, |s| s.meta.version);
            let (hs, ht) = (
                history(from, scope, name, latest).await?,
                history(to, scope, name, latest).await?,
            );
            same = hs.iter().zip(&ht).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => {
                    fingerprint.of_value(&a.value) == fingerprint.of_value(&b.value)
                }
                _ => false,
            }) && t.as_ref().is_ok_and(|t| t.meta.version == latest);
        }
        if same {
            report.verified += 1;
        } else {
            report.mismatched.push(format!("{scope}/{name}"));
        }
    }
    Ok(())
}
