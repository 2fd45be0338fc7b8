//! `coffer init`: the keyring and the store, idempotent.

use std::path::Path;

use coffer::envelope::{KdfParams, Keyring, MasterKey};

use super::{CliError, CliResult, KeyringHome, load_keyring_home, open_home};
use crate::cli::{Cli, OutputArgs};
use crate::out::out;

/// The file of a `sqlite://` URL, if it names one.
pub(super) fn sqlite_file(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Some(Path::new(path))
}

/// The folder a `sqlite://` URL's file lives in, so `init` can create it.
fn sqlite_dir(url: &str) -> Option<&Path> {
    sqlite_file(url)?
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
}

/// Makes the project's `.coffer/` (mode 0700) with a `.gitignore` that keeps all of it
/// out of git (the keyring, the database), if missing.
fn project_files(cli: &Cli, created: &mut Vec<String>) -> CliResult {
    let dir = cli.project.join(crate::cli::PROJECT_DIR);
    create_private_dir(&dir)?;
    let path = dir.join(".gitignore");
    if path.exists() {
        return Ok(());
    }
    std::fs::write(
        &path,
        "# coffer's keyring and database: never commit them\n*\n",
    )
    .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    created.push(path.display().to_string());
    Ok(())
}

/// Writes the project's `config.json` (the store and the scope) if it is missing, once
/// the store opened: a URL that did not work is not written down.
fn project_config(cli: &Cli, created: &mut Vec<String>) -> CliResult {
    let path = cli
        .project
        .join(crate::cli::PROJECT_DIR)
        .join("config.json");
    if path.exists() {
        return Ok(());
    }
    let mut config = crate::cli::ProjectConfig::default();
    let has_password = url_has_password(&cli.store);
    if has_password {
        crate::out::note!(
            "coffer: warning: the store URL holds a password, so it is not written to \
             .coffer/config.json; set COFFER_STORE (or --store) for each command instead"
        );
    } else {
        config.store = Some(project_relative(cli));
    }
    config.scope = Some(cli.scope.clone());
    let text = serde_json::to_string_pretty(&config).map_err(|e| CliError::new(e.to_string()))?;
    std::fs::write(&path, format!("{text}\n"))
        .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
    created.push(path.display().to_string());
    Ok(())
}

/// Whether `url` carries a password (`scheme://user:password@…`).
fn url_has_password(url: &str) -> bool {
    url.split_once("://")
        .map(|(_, rest)| rest.split(['/', '?']).next().unwrap_or(""))
        .and_then(|authority| authority.rsplit_once('@'))
        .is_some_and(|(userinfo, _)| userinfo.contains(':'))
}

/// The store URL as the project's config keeps it: a SQLite file under the project
/// relative to it, so the folder can move.
fn project_relative(cli: &Cli) -> String {
    let Some(file) = sqlite_file(&cli.store).filter(|_| !cli.store.contains('?')) else {
        return cli.store.clone();
    };
    let absolute = std::env::current_dir()
        .map(|here| here.join(file))
        .unwrap_or_else(|_| file.to_path_buf());
    match absolute.strip_prefix(&cli.project) {
        Ok(rel) => format!("sqlite://{}", rel.display()),
        Err(_) => cli.store.clone(),
    }
}

/// What `coffer init --format json` prints.
#[derive(serde::Serialize)]
struct InitReport {
    /// The store URL, any password replaced.
    store: String,
    /// The store's backend (`sqlite`, `postgres`, …).
    backend: &'static str,
    /// The scope commands use here.
    scope: String,
    /// Where the keyring is and how it is kept.
    keyring: String,
    /// The files this run created.
    created: Vec<String>,
}

pub(super) async fn init(cli: &Cli, output: OutputArgs) -> CliResult {
    let mut created = Vec::new();
    project_files(cli, &mut created)?;
    let (keyring, home, keyring_note) =
        if let Some((keyring, home)) = load_keyring_home(cli).await? {
            let note = match &home {
                KeyringHome::Store(keys) => format!(
                    "kept in the {} store (generation {}, sealed under {})",
                    keys.backend(),
                    keys.generation(),
                    keys.kek().describe()
                ),
                KeyringHome::EnvOnly => "using COFFER_MASTER_KEY".to_owned(),
                KeyringHome::Plain => format!("{} (exists)", cli.keyring.display()),
                KeyringHome::Sealed(kek) => format!(
                    "{} (exists, sealed under {})",
                    cli.keyring.display(),
                    kek.source()
                ),
            };
            (keyring, home, note)
        } else {
            let keyring = match super::passphrase() {
                Some(p) => Keyring::from_passphrase(&p, KdfParams::generate())?,
                None => Keyring::new(MasterKey::generate()),
            };
            keyring.save(&cli.keyring)?;
            created.push(cli.keyring.display().to_string());
            let note = format!("{} (created, mode 0600)", cli.keyring.display());
            (keyring, KeyringHome::Plain, note)
        };
    if let Some(dir) = sqlite_dir(&cli.store) {
        create_private_dir(dir)?;
    }
    let store = open_home(cli, &keyring, &home).await?;
    project_config(cli, &mut created)?;
    let report = InitReport {
        store: coffer::store::open::redact_url(&cli.store).to_string(),
        backend: store.backend(),
        scope: cli.scope.clone(),
        keyring: keyring_note,
        created,
    };
    if output.is_json() {
        return crate::out::json(&report);
    }
    for path in &report.created {
        out!("{path}: created")?;
    }
    out!("keyring: {}", report.keyring)?;
    out!("store: {} ({}, ready)", report.store, report.backend)
}

/// Creates `dir` (mode 0700 on Unix) if it does not exist: the database holds only
/// ciphertext, but names and metadata are nobody else's business either.
fn create_private_dir(dir: &Path) -> CliResult {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))
}
