//! A read-only store over environment variables (feature `env`).

use std::collections::BTreeMap;
use std::fmt;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;

use crate::backend::page_of;
use crate::{
    Attributes, Capabilities, DeleteMode, Error, ListOptions, ListPage, PutOptions, Result, Scope,
    Secret, SecretMeta, SecretName, SecretStore, derive_env_name,
};

/// A read-only store over environment variables: the secret `openai_api_key` is the
/// variable `OPENAI_API_KEY` (the mapping of [`derive_env_name`], the same coffer-env
/// injects with), or `{prefix}OPENAI_API_KEY` with a [prefix](Self::prefix).
///
/// The variables are read once, when the store is made ([`from_env`](Self::from_env))
/// or given ([`from_vars`](Self::from_vars)), and kept in [`SecretString`]s. Every
/// secret is version 1, active, without expiry. Writes and deletes are
/// [`Error::PermissionDenied`].
///
/// Which scopes it serves is explicit: [`for_scope`](Self::for_scope) answers one tenant
/// (others get `NotFound`), [`for_all_scopes`](Self::for_all_scopes) answers every
/// tenant with the same values — right for a single-tenant service's own keys, wrong
/// for customers' keys. Until one is chosen it serves no scope.
///
/// Listing needs a prefix: without one the store cannot tell secrets from `PATH` and
/// `HOME`, so it lists nothing (reads by name still work). With one it lists the
/// variables under the prefix whose rest lower-cases to a valid secret name.
///
/// ```
/// use coffer_store::layer::EnvStore;
/// use coffer_store::{Scope, SecretName, SecretStore};
/// use secrecy::ExposeSecret;
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let store = EnvStore::from_vars([("APP_STRIPE_KEY", "sk_test_1")])
///     .prefix("APP_")
///     .for_scope(Scope::new("t1")?);
/// let secret = store.get(&Scope::new("t1")?, &SecretName::new("stripe_key")?, None).await?;
/// assert_eq!(secret.value.expose_secret(), "sk_test_1");
/// assert!(store.get(&Scope::new("t2")?, &SecretName::new("stripe_key")?, None).await.is_err());
/// # Ok(()) }
/// ```
pub struct EnvStore {
    vars: BTreeMap<String, SecretString>,
    prefix: String,
    scopes: Scopes,
    loaded_at: DateTime<Utc>,
}

#[derive(Debug, Clone)]
enum Scopes {
    None,
    One(Scope),
    All,
}

impl fmt::Debug for EnvStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvStore")
            .field("prefix", &self.prefix)
            .field("scopes", &self.scopes)
            .field("variables", &self.vars.len())
            .finish()
    }
}

impl EnvStore {
    /// The process environment as it is now (variables that are not UTF-8 are skipped).
    pub fn from_env() -> Self {
        Self::new(
            std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))),
        )
    }

    /// These variables.
    pub fn from_vars<K: Into<String>, V: Into<String>>(
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self::new(vars.into_iter().map(|(k, v)| (k.into(), v.into())))
    }

    fn new(vars: impl Iterator<Item = (String, String)>) -> Self {
        Self {
            vars: vars.map(|(k, v)| (k, SecretString::from(v))).collect(),
            prefix: String::new(),
            scopes: Scopes::None,
            loaded_at: crate::backend::now(),
        }
    }

    /// Variables are `{prefix}{NAME}`.
    #[must_use]
    pub fn prefix(mut self, prefix: impl Into<String>) -> Self {
        self.prefix = prefix.into();
        self
    }

    /// Answers `scope` only.
    #[must_use]
    pub fn for_scope(mut self, scope: Scope) -> Self {
        self.scopes = Scopes::One(scope);
        self
    }

    /// Answers every scope with the same variables.
    #[must_use]
    pub fn for_all_scopes(mut self) -> Self {
        self.scopes = Scopes::All;
        self
    }

    /// The variable `name` reads.
    pub fn variable_of(&self, name: &SecretName) -> String {
        format!("{}{}", self.prefix, derive_env_name(name.as_str()))
    }

    fn serves(&self, scope: &Scope) -> bool {
        match &self.scopes {
            Scopes::None => false,
            Scopes::One(s) => s == scope,
            Scopes::All => true,
        }
    }

    fn meta(&self, scope: &Scope, name: SecretName, variable: &str) -> SecretMeta {
        let mut meta = SecretMeta::new(scope.clone(), name, &Attributes::default());
        meta.env_name = Some(variable.to_owned());
        meta.created_at = self.loaded_at;
        meta.updated_at = self.loaded_at;
        meta
    }

    fn lookup(&self, scope: &Scope, name: &SecretName) -> Result<(&SecretString, SecretMeta)> {
        let variable = self.variable_of(name);
        match self.vars.get(&variable) {
            Some(value) if self.serves(scope) => {
                Ok((value, self.meta(scope, name.clone(), &variable)))
            }
            _ => Err(Error::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
                version: None,
            }),
        }
    }

    fn read_only(&self) -> Error {
        Error::PermissionDenied {
            backend: "env",
            message: "the environment source is read-only".to_owned(),
        }
    }
}

#[async_trait]
impl SecretStore for EnvStore {
    fn backend(&self) -> &'static str {
        "env"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::NONE
    }

    async fn put(
        &self,
        _scope: &Scope,
        _name: &SecretName,
        _value: &SecretString,
        _options: &PutOptions,
    ) -> Result<SecretMeta> {
        Err(self.read_only())
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let (value, meta) = self.lookup(scope, name)?;
        if version.is_some_and(|v| v != 1) {
            return Err(Error::NotFound {
                scope: scope.to_string(),
                name: name.to_string(),
                version,
            });
        }
        Ok(Secret {
            value: value.clone(),
            meta,
        })
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.lookup(scope, name).map(|(_, meta)| meta)
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        options.validate()?;
        let limit = options.page_size()?;
        if self.prefix.is_empty() || !self.serves(scope) {
            return Ok(ListPage::default());
        }
        let mut items: Vec<SecretMeta> = self
            .vars
            .keys()
            .filter_map(|var| {
                let rest = var.strip_prefix(&self.prefix)?;
                let name = SecretName::new(rest.to_ascii_lowercase()).ok()?;
                // Only names that map back to this very variable.
                (self.variable_of(&name) == *var).then(|| self.meta(scope, name, var))
            })
            .filter(|m| {
                options
                    .prefix
                    .as_deref()
                    .is_none_or(|p| m.name.as_str().starts_with(p))
                    && options
                        .cursor
                        .as_deref()
                        .is_none_or(|c| m.name.as_str() > c)
            })
            .collect();
        items.sort_by(|a, b| a.name.cmp(&b.name));
        items.truncate(limit + 1);
        Ok(page_of(&mut items, limit))
    }

    async fn delete(&self, _scope: &Scope, _name: &SecretName, _mode: DeleteMode) -> Result<()> {
        Err(self.read_only())
    }
}
