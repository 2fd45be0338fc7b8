//! `coffer put`: a new version of a secret.

use std::io::{IsTerminal as _, Read as _};

use coffer::PutOptions;
use coffer::secrecy::SecretString;

use super::{CliError, CliResult, name, open_store, scope};
use crate::cli::{Cli, PutArgs};
use crate::out::{note, out};

fn read_value(args: &PutArgs) -> CliResult<SecretString> {
    if let Some(v) = &args.value {
        return Ok(SecretString::from(v.clone()));
    }
    let (bytes, from_stdin) = match &args.value_file {
        Some(path) => (
            std::fs::read(path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?,
            false,
        ),
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                note!("Enter the value for {}, then press Ctrl-D:", args.name);
            }
            let mut buf = Vec::new();
            stdin
                .read_to_end(&mut buf)
                .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
            (buf, true)
        }
    };
    let mut text = String::from_utf8(bytes).map_err(|e| {
        coffer::envelope::zeroize::Zeroize::zeroize(&mut e.into_bytes());
        CliError::new("the value is not valid UTF-8")
    })?;
    if (from_stdin || !args.raw) && text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
        if !from_stdin {
            note!("coffer: note: the file's trailing newline was not stored (--raw keeps it)");
        }
    }
    if from_stdin && text.is_empty() {
        // Closed (Rust reopens a closed descriptor 0 on /dev/null), /dev/null, or an
        // empty pipe: almost always a mistake, never silently an empty secret.
        return Err(CliError::new(
            "standard input gave no value (it is closed, empty or /dev/null); pipe the value \
             in, or say --value-file FILE, or --value '' to store an empty value",
        ));
    }
    Ok(SecretString::from(text))
}

pub(super) async fn put(cli: &Cli, args: &PutArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let mut options = if args.create_only {
        PutOptions::create_only()
    } else if let Some(v) = args.if_version {
        PutOptions::if_version(v)
    } else {
        PutOptions::new()
    };
    if let Some(p) = &args.provider {
        options = options.provider(p.clone());
    }
    if let Some(k) = &args.kind {
        options = options.kind(k.parse()?);
    }
    if let Some(d) = &args.description {
        options = options.description(d.clone());
    }
    if !args.tags.is_empty() {
        options = options.tags(args.tags.clone());
    }
    if let Some(e) = &args.env_name {
        options = options.env_name(e.clone());
    }
    let expires_at = match (&args.expires_at, args.expires_in) {
        (Some(at), _) => Some(super::set::parse_time("--expires-at", at)?),
        (None, Some(within)) => Some(
            chrono::Duration::from_std(within)
                .ok()
                .and_then(|d| chrono::Utc::now().checked_add_signed(d))
                .ok_or_else(|| {
                    CliError::new("--expires-in is too long").with_code(super::exit::USAGE)
                })?,
        ),
        (None, None) => None,
    };
    if let Some(at) = expires_at {
        if at <= chrono::Utc::now() {
            return Err(CliError::new(format!(
                "--expires-at {} is in the past: a secret stored now would never be readable \
                 (to stop one, `coffer set NAME --inactive`)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .with_code(super::exit::USAGE));
        }
        options = options.expires_at(at);
    }
    let value = read_value(args)?;
    let store = open_store(cli, None).await?;
    let meta = store.put(&scope, &name, &value, &options).await?;
    let env_name = meta
        .env_name
        .clone()
        .unwrap_or_else(|| coffer_env::derive_env_name(name.as_str()));
    if let Some(g) = coffer_env::guarded(&env_name) {
        note!(
            "coffer: warning: {name} goes into a child's environment as {env_name}, which {} \
             (it matches {}); `coffer run` and `coffer export` refuse it unless given \
             --allow-var {env_name}",
            g.risk,
            g.pattern
        );
    }
    out!("stored {scope}/{name} v{}", meta.version)
}
