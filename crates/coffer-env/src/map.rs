//! [`EnvMap`]: the variables a child process gets, built from a store and literals.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use coffer_store::{Error as StoreError, Scope, SecretMeta, SecretName, SecretStore};
use futures::{StreamExt as _, TryStreamExt as _};
use secrecy::{ExposeSecret as _, SecretString};

use crate::name::{guarded, validate_env_name};
use crate::{DatabaseUrl, Error, Result};
use coffer_store::derive_env_name;

/// Secrets fetched at once while loading an [`EnvMap`].
const FETCH_CONCURRENCY: usize = 8;

/// Where a variable of an [`EnvMap`] came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A secret of the store, by name.
    Secret(SecretName),
    /// A value given to [`EnvMap::insert`].
    Literal,
    /// The n-th (from 1) database of [`EnvMap::insert_database`].
    Database(usize),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Secret(name) => write!(f, "secret {name}"),
            Self::Literal => f.write_str("a literal value"),
            Self::Database(n) => write!(f, "database {n}"),
        }
    }
}

/// Which secrets of a scope [`EnvMap::load`] takes. A secret is taken when it matches
/// every criterion given: its name is one of [`names`](Self::names) (if any), starts with
/// [`prefix`](Self::prefix) (if set), and carries every one of [`tags`](Self::tags).
///
/// Named secrets must exist and be readable: a missing, expired or inactive one is an
/// error. Secrets found by listing that are expired or inactive are skipped with a
/// `tracing` warning.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selection {
    names: Vec<SecretName>,
    prefix: Option<String>,
    tags: Vec<String>,
}

impl Selection {
    /// Every secret of the scope.
    pub fn all() -> Self {
        Self::default()
    }

    /// Exactly these secrets.
    pub fn names(names: impl IntoIterator<Item = SecretName>) -> Self {
        Self::all().with_names(names)
    }

    /// The secrets whose names start with `prefix`.
    pub fn prefix(prefix: impl Into<String>) -> Self {
        Self::all().with_prefix(prefix)
    }

    /// The secrets that carry every one of `tags`.
    pub fn tags<T: Into<String>>(tags: impl IntoIterator<Item = T>) -> Self {
        Self::all().with_tags(tags)
    }

    /// Adds names to take.
    #[must_use]
    pub fn with_names(mut self, names: impl IntoIterator<Item = SecretName>) -> Self {
        self.names.extend(names);
        self
    }

    /// Sets the prefix.
    #[must_use]
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = Some(prefix.into());
        self
    }

    /// Adds tags that every taken secret must carry.
    #[must_use]
    pub fn with_tags<T: Into<String>>(mut self, tags: impl IntoIterator<Item = T>) -> Self {
        self.tags.extend(tags.into_iter().map(Into::into));
        self
    }

    fn matches(&self, meta: &SecretMeta) -> bool {
        self.prefix
            .as_deref()
            .is_none_or(|p| meta.name.as_str().starts_with(p))
            && self.tags.iter().all(|t| meta.tags.contains(t))
    }
}

struct Var {
    value: SecretString,
    source: Source,
}

/// Environment variables for a child process: names checked, values held in
/// [`SecretString`]s (zeroized on drop), each with the [`Source`] it came from.
///
/// Names must match `[A-Za-z_][A-Za-z0-9_]*`, values may not hold NUL, two sources
/// may not map to one name, and variables that change what a program runs, where it
/// connects or whom it trusts ([`GUARDED_VARIABLES`](crate::GUARDED_VARIABLES)) are
/// refused unless [`allow`](Self::allow)ed by name.
///
/// Applied to a command ([`apply`](Self::apply)), the map also takes out of the child's
/// environment the parent's credentials ([`CREDENTIAL_VARIABLES`](crate::CREDENTIAL_VARIABLES):
/// every `COFFER_*`, `VAULT_TOKEN`, …), unless the map itself sets that name or
/// [`pass_through`](Self::pass_through) keeps it; [`scrub`](Self::scrub) adds names.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_env::Result<()> {
/// use coffer_env::{EnvMap, Selection};
/// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
/// use secrecy::ExposeSecret;
///
/// let store = MemoryStore::new();
/// let tenant = Scope::new("tenant-42")?;
/// store.put(&tenant, &SecretName::new("openai_api_key")?, &"sk-example".into(),
///           &PutOptions::new()).await?;
///
/// let mut env = EnvMap::from_store(&store, &tenant, &Selection::all()).await?;
/// env.insert("PORT", "8080".into())?;
/// assert_eq!(env.get("OPENAI_API_KEY").unwrap().expose_secret(), "sk-example");
/// assert!(env.insert("LD_PRELOAD", "/tmp/x.so".into()).is_err());
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct EnvMap {
    vars: BTreeMap<String, Var>,
    allowed: BTreeSet<String>,
    databases: usize,
    /// Patterns of the parent's variables the child does not get, beyond
    /// [`CREDENTIAL_VARIABLES`](crate::CREDENTIAL_VARIABLES).
    scrubbed: Vec<String>,
    /// Parent variables kept although a scrub pattern matches them.
    passed: BTreeSet<String>,
}

impl fmt::Debug for EnvMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.vars.iter().map(|(k, v)| (k, v.source.to_string())))
            .finish()
    }
}

impl EnvMap {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// The map of `selection` in `scope` of `store` (see [`load`](Self::load)).
    pub async fn from_store<S: SecretStore + ?Sized>(
        store: &S,
        scope: &Scope,
        selection: &Selection,
    ) -> Result<Self> {
        let mut map = Self::new();
        map.load(store, scope, selection).await?;
        Ok(map)
    }

    /// Lets `name` through although it is one of
    /// [`GUARDED_VARIABLES`](crate::GUARDED_VARIABLES). Call it before inserting the
    /// variable.
    pub fn allow(&mut self, name: impl Into<String>) -> &mut Self {
        self.allowed.insert(name.into());
        self
    }

    /// Also takes the parent's variables matching `pattern` (`NAME`, `PREFIX*` or
    /// `*SUFFIX`, case-sensitive) out of the child's environment, as it does
    /// [`CREDENTIAL_VARIABLES`](crate::CREDENTIAL_VARIABLES): for a service whose own
    /// environment holds what its jobs must not see.
    pub fn scrub(&mut self, pattern: impl Into<String>) -> &mut Self {
        self.scrubbed.push(pattern.into());
        self
    }

    /// Keeps the parent's variable `name` in the child's environment although a scrub
    /// pattern matches it (`coffer run --pass-env NAME`).
    pub fn pass_through(&mut self, name: impl Into<String>) -> &mut Self {
        self.passed.insert(name.into());
        self
    }

    /// Whether the parent's variable `name` stays out of the child's environment: a
    /// scrub pattern matches it, the map does not set it and it is not passed through.
    pub fn scrubs(&self, name: &str) -> bool {
        !self.vars.contains_key(name)
            && !self.passed.contains(name)
            && crate::CREDENTIAL_VARIABLES
                .iter()
                .copied()
                .chain(self.scrubbed.iter().map(String::as_str))
                .any(|p| crate::name::matches_pattern(p, name, false))
    }

    /// Adds a literal variable.
    pub fn insert(&mut self, name: impl Into<String>, value: SecretString) -> Result<()> {
        self.insert_from(name.into(), value, Source::Literal)
    }

    /// Adds `url` as `DATABASE_URL` and `DATABASE_TYPE` for the first database, then
    /// `DATABASE_2_URL` and `DATABASE_2_TYPE`, `DATABASE_3_…` and so on. Returns the
    /// name of the URL variable.
    pub fn insert_database(&mut self, url: &DatabaseUrl) -> Result<String> {
        let n = self.databases + 1;
        let infix = if n == 1 {
            String::new()
        } else {
            format!("_{n}")
        };
        let (url_var, type_var) = (
            format!("DATABASE{infix}_URL"),
            format!("DATABASE{infix}_TYPE"),
        );
        for var in [&url_var, &type_var] {
            self.check_free(var, &Source::Database(n))?;
        }
        let value = url.to_url()?;
        self.insert_from(url_var.clone(), value, Source::Database(n))?;
        self.insert_from(
            type_var,
            SecretString::from(url.kind().scheme()),
            Source::Database(n),
        )?;
        self.databases = n;
        Ok(url_var)
    }

    /// Adds the secrets of `selection` in `scope`, each under its metadata's env name or
    /// the one [`derive_env_name`](crate::derive_env_name) gives. Returns how many were
    /// added. On error nothing is added.
    pub async fn load<S: SecretStore + ?Sized>(
        &mut self,
        store: &S,
        scope: &Scope,
        selection: &Selection,
    ) -> Result<usize> {
        let (names, listed): (Vec<SecretName>, bool) = if selection.names.is_empty() {
            let metas =
                coffer_store::SecretStoreExt::list_all(store, scope, selection.prefix.as_deref())
                    .await?;
            let names = metas
                .into_iter()
                .filter(|m| selection.matches(m))
                .filter(|m| match m.check_readable() {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(scope = %scope, name = %m.name, "skipped: {e}");
                        false
                    }
                })
                .map(|m| m.name)
                .collect();
            (names, true)
        } else {
            (selection.names.clone(), false)
        };
        let secrets: Vec<_> = futures::stream::iter(names)
            .map(|name| async move {
                match store.get(scope, &name, None).await {
                    Ok(secret) => Ok(Some(secret)),
                    // Gone or expired between the listing and the read.
                    Err(
                        e @ (StoreError::NotFound { .. }
                        | StoreError::Expired { .. }
                        | StoreError::Inactive { .. }),
                    ) if listed => {
                        tracing::warn!(scope = %scope, name = %name, "skipped: {e}");
                        Ok(None)
                    }
                    Err(e) => Err(Error::Store(e)),
                }
            })
            .buffered(FETCH_CONCURRENCY)
            .try_filter_map(|s| async move { Ok(s) })
            .try_collect()
            .await?;
        // Check everything first, so an error leaves the map as it was.
        let mut staged = Self {
            allowed: self.allowed.clone(),
            ..Self::default()
        };
        for secret in secrets {
            if !listed && !selection.matches(&secret.meta) {
                continue;
            }
            let var = secret
                .meta
                .env_name
                .clone()
                .unwrap_or_else(|| derive_env_name(secret.meta.name.as_str()));
            let source = Source::Secret(secret.meta.name.clone());
            self.check_free(&var, &source)?;
            staged.insert_from(var, secret.value, source)?;
        }
        let added = staged.vars.len();
        self.vars.append(&mut staged.vars);
        Ok(added)
    }

    fn check_free(&self, name: &str, source: &Source) -> Result<()> {
        match self.vars.get(name) {
            Some(existing) => Err(Error::Collision {
                name: name.to_owned(),
                first: existing.source.to_string(),
                second: source.to_string(),
            }),
            None => Ok(()),
        }
    }

    fn insert_from(&mut self, name: String, value: SecretString, source: Source) -> Result<()> {
        validate_env_name(&name)?;
        if let Some(g) = guarded(&name)
            && !self.allowed.contains(&name)
        {
            return Err(Error::GuardedVariable {
                name,
                risk: g.risk,
                pattern: g.pattern,
            });
        }
        if value.expose_secret().contains('\0') {
            return Err(Error::NulInValue { name });
        }
        self.check_free(&name, &source)?;
        self.vars.insert(name, Var { value, source });
        Ok(())
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&SecretString> {
        self.vars.get(name).map(|v| &v.value)
    }

    /// Where `name` came from.
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.vars.get(name).map(|v| &v.source)
    }

    /// Removes `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<SecretString> {
        self.vars.remove(name).map(|v| v.value)
    }

    /// The variables in name order.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &SecretString)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), &v.value))
    }

    /// The names in order.
    pub fn names(&self) -> impl ExactSizeIterator<Item = &str> {
        self.vars.keys().map(String::as_str)
    }

    /// How many variables.
    pub fn len(&self) -> usize {
        self.vars.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.vars.is_empty()
    }
}
