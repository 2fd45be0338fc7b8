//! `coffer init`: the keyring and the store, idempotent.

use std::path::Path;

use coffer::envelope::{KdfParams, Keyring, MasterKey};

use super::{CliError, CliResult, KeyringHome, load_keyring_home, open_home, passphrase};
use crate::cli::Cli;
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
fn project_files(cli: &Cli) -> CliResult {
    let dir = cli.project.join(crate::cli::PROJECT_DIR);
    create_private_dir(&dir)?;
    let write_new = |name: &str, text: &str| -> CliResult {
        let path = dir.join(name);
        if path.exists() {
            return Ok(());
        }
        std::fs::write(&path, text)
            .map_err(|e| CliError::new(format!("cannot write {}: {e}", path.display())))?;
        out!("{}: created", path.display())
    };
    write_new(
        ".gitignore",
        "# coffer's keyring and database: never commit them\n*\n",
    )
}

/// Writes the project's `config.json` (the store and the scope) if it is missing, once
/// the store opened: a URL that did not work is not written down.
fn project_config(cli: &Cli) -> CliResult {
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
    out!("{}: created", path.display())
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

pub(super) async fn init(cli: &Cli) -> CliResult {
    project_files(cli)?;
    let (keyring, home) = if let Some((keyring, home)) = load_keyring_home(cli).await? {
        match &home {
            KeyringHome::Store(keys) => out!(
                "keyring: kept in the {} store (generation {}, sealed under {})",
                keys.backend(),
                keys.generation(),
                keys.kek().describe()
            )?,
            KeyringHome::EnvOnly => out!("keyring: using COFFER_MASTER_KEY")?,
            KeyringHome::Plain => out!("keyring: {} (exists)", cli.keyring.display())?,
            KeyringHome::Sealed(kek) => out!(
                "keyring: {} (exists, sealed under {})",
                cli.keyring.display(),
                kek.source()
            )?,
        }
        (keyring, home)
    } else {
        let keyring = match passphrase() {
            Some(p) => Keyring::from_passphrase(&p, KdfParams::generate())?,
            None => Keyring::new(MasterKey::generate()),
        };
        keyring.save(&cli.keyring)?;
        out!("keyring: {} (created, mode 0600)", cli.keyring.display())?;
        (keyring, KeyringHome::Plain)
    };
    if let Some(dir) = sqlite_dir(&cli.store) {
        create_private_dir(dir)?;
    }
    let store = open_home(cli, &keyring, &home).await?;
    project_config(cli)?;
    out!(
        "store: {} ({}, ready)",
        coffer::store::open::redact_url(&cli.store),
        store.backend()
    )
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
