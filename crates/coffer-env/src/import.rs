//! Bringing secrets in from where they already live: `.env` files (parsed with dotenvy),
//! JSON objects and the process environment ([`parse`], [`from_env`]), written into a
//! store with [`import`].
//!
//! Each variable becomes a secret named after it in lower case (`OPENAI_API_KEY` →
//! `openai_api_key`) that keeps the variable's name as its env name, so `coffer run`
//! injects it under the same name again. A value that is already stored as it is writes
//! no new version. Nothing here prints, logs or returns a value: reports name variables.
//!
//! ```
//! use coffer_env::import::{import, parse, ImportFormat, ImportOptions};
//! use coffer_store::{MemoryStore, Scope, SecretName, SecretStore};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_env::Result<()> {
//! let entries = parse("OPENAI_API_KEY=sk-example\n# a comment\nexport DB_URL='postgres://db/app'\n", ImportFormat::Dotenv)?;
//! let store = MemoryStore::new();
//! let scope = Scope::new("tenant-a")?;
//! let report = import(&store, &scope, entries, &ImportOptions::new().provider("openai")).await?;
//! assert_eq!(report.created, ["db_url", "openai_api_key"]);
//! let meta = store.metadata(&scope, &SecretName::new("openai_api_key")?).await?;
//! assert_eq!(meta.env_name.as_deref(), Some("OPENAI_API_KEY"));
//! # Ok(()) }
//! ```

use std::path::Path;

use coffer_store::copy::{Outcome, put_over};
use coffer_store::{Attributes, DynSecretStore, Scope, SecretKind, SecretMeta, SecretName};
use secrecy::SecretString;
use zeroize::Zeroize as _;

use crate::{Error, Result};

/// The formats [`parse`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportFormat {
    /// `NAME=value` lines as dotenvy reads them (quotes, `export `, comments, and its
    /// `${VAR}` substitution from earlier lines and the environment).
    Dotenv,
    /// One JSON object of string values.
    Json,
}

impl ImportFormat {
    /// The format a file's name says: `.json` is JSON; `.env`, `*.env` and `.env.*` are
    /// dotenv; anything else is `None` (say which).
    pub fn of_path(path: &Path) -> Option<Self> {
        let name = path.file_name()?.to_str()?;
        if name.ends_with(".json") {
            Some(Self::Json)
        } else if name == ".env" || name.ends_with(".env") || name.starts_with(".env.") {
            Some(Self::Dotenv)
        } else {
            None
        }
    }
}

/// One variable to import.
pub struct Entry {
    /// The variable's name, as written.
    pub env_name: String,
    /// Its value.
    pub value: SecretString,
}

impl std::fmt::Debug for Entry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Entry")
            .field("env_name", &self.env_name)
            .finish_non_exhaustive()
    }
}

fn invalid_input(reason: String) -> Error {
    Error::Store(coffer_store::Error::InvalidInput {
        field: "import",
        reason,
    })
}

/// The variables of `text` in `format`, in order. A line dotenvy cannot parse, or a JSON
/// value that is not a string, is an error naming its line or key, never its content.
pub fn parse(text: &str, format: ImportFormat) -> Result<Vec<Entry>> {
    match format {
        ImportFormat::Dotenv => {
            let mut entries = Vec::new();
            for item in dotenvy::from_read_iter(text.as_bytes()) {
                match item {
                    Ok((env_name, value)) => entries.push(Entry {
                        env_name,
                        value: SecretString::from(value),
                    }),
                    Err(dotenvy::Error::LineParse(mut line, index)) => {
                        line.zeroize();
                        return Err(invalid_input(format!(
                            "a .env line cannot be parsed (at character {index} of the line; \
                             its text is not shown, it may hold a value)"
                        )));
                    }
                    Err(e) => {
                        return Err(invalid_input(format!(
                            "the .env text cannot be read: {}",
                            match e {
                                dotenvy::Error::Io(io) => io.to_string(),
                                _ => "invalid".to_owned(),
                            }
                        )));
                    }
                }
            }
            Ok(entries)
        }
        ImportFormat::Json => {
            let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
                invalid_input(format!(
                    "not JSON (line {}, column {})",
                    e.line(),
                    e.column()
                ))
            })?;
            let serde_json::Value::Object(object) = value else {
                return Err(invalid_input(
                    "the JSON must be one object of NAME: \"value\" pairs".into(),
                ));
            };
            object
                .into_iter()
                .map(|(env_name, value)| match value {
                    serde_json::Value::String(v) => Ok(Entry {
                        env_name,
                        value: SecretString::from(v),
                    }),
                    _ => Err(invalid_input(format!(
                        "the value of {:?} is not a string",
                        env_name.chars().take(80).collect::<String>()
                    ))),
                })
                .collect()
        }
    }
}

/// The process environment's variables whose names start with `prefix` (all of them
/// without one), in name order; variables that are not valid UTF-8 are left out.
pub fn from_env(prefix: Option<&str>) -> Vec<Entry> {
    from_vars(std::env::vars_os(), prefix)
}

/// [`from_env`] over any list of variables (a child's environment, a test's).
pub fn from_vars<I>(vars: I, prefix: Option<&str>) -> Vec<Entry>
where
    I: IntoIterator<Item = (std::ffi::OsString, std::ffi::OsString)>,
{
    let mut entries: Vec<Entry> = vars
        .into_iter()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| prefix.is_none_or(|p| k.starts_with(p)))
        .map(|(env_name, value)| Entry {
            env_name,
            value: SecretString::from(value),
        })
        .collect();
    entries.sort_by(|a, b| a.env_name.cmp(&b.env_name));
    entries
}

/// The metadata every imported secret gets, and whether to write.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ImportOptions {
    /// The provider to set on each.
    pub provider: Option<String>,
    /// The kind to set on each.
    pub kind: Option<SecretKind>,
    /// Tags to set on each (replacing theirs).
    pub tags: Vec<String>,
    /// Decide and report only.
    pub dry_run: bool,
}

impl ImportOptions {
    /// No metadata beyond the env name; writing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the provider of each.
    #[must_use]
    pub fn provider(mut self, provider: impl Into<String>) -> Self {
        self.provider = Some(provider.into());
        self
    }

    /// Sets the kind of each.
    #[must_use]
    pub fn kind(mut self, kind: SecretKind) -> Self {
        self.kind = Some(kind);
        self
    }

    /// Adds a tag to set on each.
    #[must_use]
    pub fn tag(mut self, tag: impl Into<String>) -> Self {
        self.tags.push(tag.into());
        self
    }

    /// Decide and report only.
    #[must_use]
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }
}

/// What an [`import`] did, by secret name (never a value).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// Secrets created.
    pub created: Vec<String>,
    /// Secrets given a new value or new metadata.
    pub updated: Vec<String>,
    /// Secrets already stored with this value and metadata: nothing was written.
    pub unchanged: Vec<String>,
    /// Variables not imported: (variable, why).
    pub refused: Vec<(String, String)>,
}

/// Why a variable is not imported, if it is not: a name no secret or variable can have,
/// one of coffer's own credentials, or a variable that changes what a program runs
/// ([`GUARDED_VARIABLES`](crate::GUARDED_VARIABLES): PATH, LD_*, …).
fn refusal(env_name: &str) -> Option<String> {
    if let Err(e) = crate::validate_env_name(env_name) {
        return Some(e.to_string());
    }
    if crate::CREDENTIAL_VARIABLES
        .iter()
        .any(|p| crate::name::matches_pattern(p, env_name, false))
    {
        return Some("it is one of coffer's own credentials, which coffer does not store".into());
    }
    if let Some(g) = crate::guarded(env_name) {
        return Some(format!(
            "it {} (it matches {}), so `coffer run` would not pass it on",
            g.risk, g.pattern
        ));
    }
    None
}

/// Writes `entries` into `scope` of `store`: each as the secret named after its
/// variable in lower case, with the variable's name as env name and `options`'
/// metadata, keeping the rest of an existing secret's metadata. A secret already
/// holding the value and that metadata is left alone (no new version). Variables that
/// cannot be secrets, repeat an earlier one, or are coffer's own credentials are refused
/// with the reason, and so are guarded variables (PATH, LD_*, NODE_OPTIONS, …); the
/// rest go on.
pub async fn import(
    store: &DynSecretStore,
    scope: &Scope,
    entries: Vec<Entry>,
    options: &ImportOptions,
) -> Result<ImportReport> {
    let mut attributes = Attributes::default();
    attributes.provider.clone_from(&options.provider);
    attributes.kind = options.kind;
    attributes.tags = (!options.tags.is_empty()).then(|| options.tags.clone());
    attributes.validate()?;
    let mut report = ImportReport::default();
    let mut seen = std::collections::BTreeSet::new();
    for entry in entries {
        if let Some(reason) = refusal(&entry.env_name) {
            report.refused.push((entry.env_name, reason));
            continue;
        }
        let name = match SecretName::new(entry.env_name.to_ascii_lowercase()) {
            Ok(n) => n,
            Err(e) => {
                report.refused.push((entry.env_name, e.to_string()));
                continue;
            }
        };
        if !seen.insert(name.clone()) {
            report.refused.push((
                entry.env_name,
                format!("{name} was already imported from an earlier variable"),
            ));
            continue;
        }
        let current = match store.metadata(scope, &name).await {
            Ok(meta) => Some(meta),
            Err(e) if e.is_not_found() => None,
            Err(e) => return Err(e.into()),
        };
        let mut wanted = current.clone().unwrap_or_else(|| {
            SecretMeta::new(scope.clone(), name.clone(), &Attributes::default())
        });
        let mut these = attributes.clone();
        these.env_name = Some(entry.env_name.clone());
        these.apply(&mut wanted);
        let outcome = put_over(store, current, &entry.value, &wanted, options.dry_run).await;
        let name = name.to_string();
        match outcome {
            Ok(Outcome::Created) => report.created.push(name),
            Ok(Outcome::Updated) => report.updated.push(name),
            Ok(Outcome::Unchanged) => report.unchanged.push(name),
            Ok(Outcome::Skipped(reason) | Outcome::Refused(reason)) => {
                report.refused.push((entry.env_name, reason));
            }
            Ok(_) => report.refused.push((entry.env_name, "not imported".into())),
            Err(
                e @ (coffer_store::Error::InvalidInput { .. }
                | coffer_store::Error::InvalidName { .. }),
            ) => {
                report.refused.push((entry.env_name, e.to_string()));
            }
            Err(e) => return Err(e.into()),
        }
    }
    report.created.sort();
    report.updated.sort();
    report.unchanged.sort();
    Ok(report)
}
