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

pub(super) async fn init(cli: &Cli) -> CliResult {
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
