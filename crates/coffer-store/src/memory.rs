use crate::backend::not_found;
use std::collections::BTreeMap;
use std::sync::RwLock;

use async_trait::async_trait;
use secrecy::SecretString;

use crate::types::{now, validate_value};
use crate::{
    AttributeUpdate, Capabilities, DeleteMode, Error, ListOptions, ListPage, PutOptions, Result,
    Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo, WriteCondition,
};

/// A store in process memory: the reference implementation of the store semantics,
/// for tests, examples and caches of short-lived processes.
///
/// Values stay in [`SecretString`]s (zeroized when replaced or dropped); nothing is
/// sealed, since nothing leaves the process. Opens from `memory://`.
#[derive(Default)]
pub struct MemoryStore {
    secrets: RwLock<BTreeMap<(Scope, SecretName), Entry>>,
}

struct Entry {
    meta: SecretMeta,
    /// Each version's value and when it was written.
    versions: BTreeMap<u64, (SecretString, chrono::DateTime<chrono::Utc>)>,
    deleted: bool,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<(Scope, SecretName), Entry>> {
        // A panic elsewhere cannot leave an entry half-written (each write replaces whole
        // values), so a poisoned lock is still consistent.
        self.secrets.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<(Scope, SecretName), Entry>> {
        self.secrets.write().unwrap_or_else(|e| e.into_inner())
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("secrets", &self.read().len())
            .finish()
    }
}

#[async_trait]
impl SecretStore for MemoryStore {
    fn backend(&self) -> &'static str {
        "memory"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::ALL.with_rewrap(false)
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        use secrecy::ExposeSecret as _;
        validate_value(value.expose_secret())?;
        options.attributes.validate()?;
        let mut secrets = self.write();
        let key = (scope.clone(), name.clone());
        let live = secrets
            .get(&key)
            .filter(|e| !e.deleted)
            .map(|e| e.meta.version);
        check_condition(scope, name, options.condition, live)?;
        let entry = match secrets.get_mut(&key) {
            Some(entry) => {
                entry.meta.version += 1;
                entry.meta.updated_at = now();
                options.attributes.apply(&mut entry.meta);
                entry.deleted = false;
                entry
            }
            None => secrets.entry(key).or_insert(Entry {
                meta: SecretMeta::new(scope.clone(), name.clone(), &options.attributes),
                versions: BTreeMap::new(),
                deleted: false,
            }),
        };
        entry
            .versions
            .insert(entry.meta.version, (value.clone(), entry.meta.updated_at));
        Ok(entry.meta.clone())
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let secrets = self.read();
        let entry = secrets
            .get(&(scope.clone(), name.clone()))
            .filter(|e| !e.deleted)
            .ok_or_else(|| not_found(scope, name, version))?;
        entry.meta.check_readable()?;
        let v = version.unwrap_or(entry.meta.version);
        let (value, _) = entry
            .versions
            .get(&v)
            .ok_or_else(|| not_found(scope, name, version))?;
        let mut meta = entry.meta.clone();
        meta.version = v;
        Ok(Secret {
            value: value.clone(),
            meta,
        })
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.read()
            .get(&(scope.clone(), name.clone()))
            .filter(|e| !e.deleted)
            .map(|e| e.meta.clone())
            .ok_or_else(|| not_found(scope, name, None))
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.page(scope, options, false)
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let secrets = self.read();
        let entry = secrets
            .get(&(scope.clone(), name.clone()))
            .filter(|e| !e.deleted)
            .ok_or_else(|| not_found(scope, name, None))?;
        Ok(entry
            .versions
            .iter()
            .map(|(v, (_, at))| VersionInfo::new(*v, *at))
            .collect())
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        self.page(scope, options, true)
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let mut secrets = self.write();
        let entry = secrets
            .get_mut(&(scope.clone(), name.clone()))
            .ok_or_else(|| not_found(scope, name, None))?;
        if entry.deleted {
            entry.deleted = false;
            entry.meta.updated_at = now();
        }
        Ok(entry.meta.clone())
    }
    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let mut secrets = self.write();
        let key = (scope.clone(), name.clone());
        match (mode, secrets.get_mut(&key)) {
            (DeleteMode::Soft, Some(entry)) if !entry.deleted => {
                entry.deleted = true;
                Ok(())
            }
            (DeleteMode::Destroy, Some(_)) => {
                secrets.remove(&key);
                Ok(())
            }
            _ => Err(not_found(scope, name, None)),
        }
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        update.validate()?;
        let mut secrets = self.write();
        let entry = secrets
            .get_mut(&(scope.clone(), name.clone()))
            .filter(|e| !e.deleted)
            .ok_or_else(|| not_found(scope, name, None))?;
        let mut meta = entry.meta.clone();
        update.apply(&mut meta)?;
        entry.meta = meta;
        Ok(entry.meta.clone())
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        let mut scopes: Vec<Scope> = self
            .read()
            .iter()
            .filter(|(_, e)| !e.deleted)
            .map(|((s, _), _)| s.clone())
            .collect();
        scopes.dedup();
        Ok(scopes)
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        let mut secrets = self.write();
        for u in usage {
            if let Some(entry) = secrets
                .get_mut(&(u.scope.clone(), u.name.clone()))
                .filter(|e| !e.deleted)
            {
                entry.meta.usage_count = entry.meta.usage_count.saturating_add(u.count);
                entry.meta.last_used_at = entry.meta.last_used_at.max(Some(u.last_used_at));
            }
        }
        Ok(())
    }
}

impl MemoryStore {
    /// One page of the scope's live (or, with `deleted`, soft-deleted) secrets.
    fn page(&self, scope: &Scope, options: &ListOptions, deleted: bool) -> Result<ListPage> {
        options.validate()?;
        let limit = options.page_size()?;
        let prefix = options.prefix.as_deref().unwrap_or("");
        let secrets = self.read();
        let mut items: Vec<SecretMeta> = secrets
            .iter()
            .filter(|((s, n), e)| {
                s == scope
                    && e.deleted == deleted
                    && n.as_str().starts_with(prefix)
                    && options.cursor.as_deref().is_none_or(|c| n.as_str() > c)
                    && options.matches(&e.meta)
            })
            .take(limit + 1)
            .map(|(_, e)| e.meta.clone())
            .collect();
        Ok(page_of(&mut items, limit))
    }
}

/// Checks a write condition against the latest live version (`None`: no live secret).
/// Shared by every backend that evaluates conditions itself.
pub fn check_condition(
    scope: &Scope,
    name: &SecretName,
    condition: WriteCondition,
    live: Option<u64>,
) -> Result<()> {
    match (condition, live) {
        (WriteCondition::CreateOnly, Some(_)) => Err(Error::AlreadyExists {
            scope: scope.to_string(),
            name: name.to_string(),
        }),
        (WriteCondition::IfVersion(expected), actual) if actual != Some(expected) => {
            Err(Error::Conflict {
                scope: scope.to_string(),
                name: name.to_string(),
                expected,
                actual,
            })
        }
        _ => Ok(()),
    }
}

/// Turns up to `limit + 1` items, fetched in name order, into a page: the extra item
/// only says that there is a next page. Shared by every backend.
pub fn page_of(items: &mut Vec<SecretMeta>, limit: usize) -> ListPage {
    let next_cursor = if items.len() > limit {
        items.truncate(limit);
        items.last().map(|m| m.name.to_string())
    } else {
        None
    };
    ListPage::new(std::mem::take(items), next_cursor)
}

/// A listing with [`ListOptions`]' filters (provider, kind, tag, active) on top of a
/// backend's listing by prefix and cursor: `page(options)` lists one unfiltered page;
/// pages are read until `limit` matches (and one more, to know whether a next page
/// exists) are found or the listing ends. Without filters it is one call of `page`.
pub async fn list_filtered<F, Fut>(options: &ListOptions, mut page: F) -> Result<ListPage>
where
    F: FnMut(ListOptions) -> Fut,
    Fut: std::future::Future<Output = Result<ListPage>>,
{
    options.validate()?;
    if !options.has_filters() {
        return page(options.clone()).await;
    }
    let limit = options.page_size()?;
    let mut unfiltered = ListOptions::new().limit(limit);
    unfiltered.prefix.clone_from(&options.prefix);
    unfiltered.cursor.clone_from(&options.cursor);
    let mut items = Vec::new();
    loop {
        let got = page(unfiltered.clone()).await?;
        items.extend(got.items.into_iter().filter(|m| options.matches(m)));
        match got.next_cursor {
            Some(cursor) if items.len() <= limit => unfiltered.cursor = Some(cursor),
            _ => break,
        }
    }
    Ok(page_of(&mut items, limit))
}

/// How often [`put_optimistic`] retries a write that lost a race to another writer.
pub const MAX_WRITE_ATTEMPTS: usize = 64;

/// The put of a backend with optimistic writes: validates the value and metadata, then
/// calls `attempt` until it returns `Some` (written) or an error; `None` means another
/// writer got there first, so the attempt reads again (a conditional write then fails
/// its condition; a blind one goes on top). After [`MAX_WRITE_ATTEMPTS`] lost races it
/// gives up with `Unavailable`.
pub async fn put_optimistic<F, Fut>(
    backend: &'static str,
    scope: &Scope,
    name: &SecretName,
    value: &SecretString,
    options: &PutOptions,
    attempt: F,
) -> Result<SecretMeta>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<SecretMeta>>>,
{
    use secrecy::ExposeSecret as _;
    validate_value(value.expose_secret())?;
    options.attributes.validate()?;
    retry_optimistic(backend, scope, name, attempt).await
}

/// Calls `attempt` until it returns `Some` (written) or an error, as [`put_optimistic`]
/// does, for any optimistic write (an attribute edit, …): `None` means another writer
/// got there first. After [`MAX_WRITE_ATTEMPTS`] lost races it gives up with
/// `Unavailable`.
pub async fn retry_optimistic<T, F, Fut>(
    backend: &'static str,
    scope: &Scope,
    name: &SecretName,
    mut attempt: F,
) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>>>,
{
    for _ in 0..MAX_WRITE_ATTEMPTS {
        if let Some(done) = attempt().await? {
            return Ok(done);
        }
    }
    Err(Error::Unavailable {
        backend,
        message: format!("{scope}/{name}: too many concurrent writers, try again"),
        source: None,
    })
}
