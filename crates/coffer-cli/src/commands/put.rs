//! `coffer put`: a new version of a secret, or of several (`NAME=VALUE …`,
//! `--from-stdin-lines`).

use std::io::{IsTerminal as _, Read as _};

use coffer::envelope::zeroize::{Zeroize as _, Zeroizing};
use coffer::secrecy::SecretString;
use coffer::{PutOptions, SecretMeta, SecretName};

use super::{CliError, CliResult, exit, name, open_store, scope};
use crate::cli::{Cli, PutArgs};
use crate::out::{note, out};

/// Reads the one value of `coffer put NAME`: --value, --value-file, a prompt that does
/// not echo on a terminal, else standard input.
fn read_value(args: &PutArgs, name: &str) -> CliResult<SecretString> {
    if let Some(v) = &args.value {
        return Ok(SecretString::from(v.clone()));
    }
    if args.value_file.is_none() && std::io::stdin().is_terminal() {
        return prompt_value(name);
    }
    let (bytes, from_stdin) = match &args.value_file {
        Some(path) => (
            std::fs::read(path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?,
            false,
        ),
        None => (read_stdin()?, true),
    };
    let mut text = utf8(bytes)?;
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
        )
        .with_code(exit::USAGE));
    }
    Ok(SecretString::from(text))
}

/// Asks for the value at the terminal without echoing it.
fn prompt_value(name: &str) -> CliResult<SecretString> {
    use coffer::secrecy::ExposeSecret as _;
    let value = crate::out::prompt_hidden(&format!("Value for {name} (not shown): "), "value")?;
    if value.expose_secret().is_empty() {
        return Err(
            CliError::new("no value was typed; say --value '' to store an empty value")
                .with_code(exit::USAGE),
        );
    }
    Ok(value)
}

/// All of standard input, zeroized when dropped.
fn read_stdin() -> CliResult<Vec<u8>> {
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
    Ok(buf)
}

/// `bytes` as text; invalid UTF-8 is refused (and wiped) without showing any of it.
fn utf8(bytes: Vec<u8>) -> CliResult<String> {
    String::from_utf8(bytes).map_err(|e| {
        e.into_bytes().zeroize();
        CliError::new("the value is not valid UTF-8")
    })
}

/// The secrets a bulk put writes, by name, checked before anything is written: every
/// name valid, none twice.
fn pairs<'a>(
    items: impl Iterator<Item = (String, &'a str)>,
) -> CliResult<Vec<(SecretName, SecretString)>> {
    let mut out: Vec<(SecretName, SecretString)> = Vec::new();
    for (where_, pair) in items {
        let Some((n, value)) = pair.split_once('=') else {
            return Err(CliError::new(format!(
                "{where_} is not NAME=VALUE (give one NAME with --value, a prompt or stdin, \
                 or NAME=VALUE pairs)"
            ))
            .with_code(exit::USAGE));
        };
        let n = name(n.trim())
            .map_err(|e| CliError::new(format!("{where_}: {e}")).with_code(exit::USAGE))?;
        if out.iter().any(|(seen, _)| *seen == n) {
            return Err(
                CliError::new(format!("{where_}: {n} is given twice")).with_code(exit::USAGE)
            );
        }
        out.push((n, SecretString::from(value.to_owned())));
    }
    Ok(out)
}

/// The `NAME=VALUE` lines of standard input (the value is the rest of the line, exactly;
/// empty lines and `#` comments skipped). Errors name the line's number, never its text.
fn stdin_lines() -> CliResult<Vec<(SecretName, SecretString)>> {
    let text = Zeroizing::new(utf8(read_stdin()?)?);
    let lines = text
        .split('\n')
        .enumerate()
        .map(|(i, line)| (i + 1, line.strip_suffix('\r').unwrap_or(line)))
        .filter(|(_, line)| !line.trim().is_empty() && !line.trim_start().starts_with('#'));
    let entries = pairs(lines.map(|(n, line)| (format!("line {n}"), line)))?;
    if entries.is_empty() {
        return Err(CliError::new(
            "standard input held no NAME=VALUE line (empty lines and # comments are skipped)",
        )
        .with_code(exit::USAGE));
    }
    Ok(entries)
}

/// The put's options from its flags.
fn options(args: &PutArgs) -> CliResult<PutOptions> {
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
    if args.no_expiry {
        options = options.no_expiry();
    }
    if args.active || args.inactive {
        options = options.active(args.active);
    }
    let expires_at = match (&args.expires_at, args.expires_in) {
        (Some(at), _) => Some(super::set::parse_time("--expires-at", at)?),
        (None, Some(within)) => Some(super::set::from_now(within)?),
        (None, None) => None,
    };
    if let Some(at) = expires_at {
        if at <= chrono::Utc::now() {
            return Err(CliError::new(format!(
                "--expires-at {} is in the past: a secret stored now would never be readable \
                 (to stop one, `coffer set NAME --inactive`)",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ))
            .with_code(exit::USAGE));
        }
        options = options.expires_at(at);
    }
    Ok(options)
}

/// Warns when the secret would reach a child's environment under a guarded name.
fn warn_guarded(name: &SecretName, meta: &SecretMeta) {
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
}

pub(super) async fn put(cli: &Cli, args: &PutArgs) -> CliResult {
    let scope = scope(cli)?;
    let options = options(args)?;
    let bulk = args.from_stdin_lines || args.names.iter().any(|n| n.contains('='));
    let entries = if args.from_stdin_lines {
        stdin_lines()?
    } else if bulk {
        if args.value.is_some() || args.value_file.is_some() {
            return Err(CliError::new(
                "NAME=VALUE pairs carry their own values: drop --value / --value-file",
            )
            .with_code(exit::USAGE));
        }
        pairs(args.names.iter().map(|p| {
            let shown = p.split_once('=').map_or(p.as_str(), |(n, _)| n);
            (format!("{shown:?}"), p.as_str())
        }))?
    } else {
        let [one] = args.names.as_slice() else {
            return Err(CliError::new(
                "give one NAME (its value from --value, --value-file, the prompt or stdin), or \
                 NAME=VALUE pairs",
            )
            .with_code(exit::USAGE));
        };
        let n = name(one)?;
        let value = read_value(args, one)?;
        vec![(n, value)]
    };
    if bulk && args.if_version.is_some() {
        return Err(CliError::new(
            "--if-version names one secret's version: put one secret at a time with it",
        )
        .with_code(exit::USAGE));
    }
    let store = open_store(cli, None).await?;
    let mut stored: Vec<SecretMeta> = Vec::new();
    for (n, value) in &entries {
        match store.put(&scope, n, value, &options).await {
            Ok(meta) => {
                warn_guarded(n, &meta);
                stored.push(meta);
            }
            Err(e) => {
                let mut err = CliError::from(e);
                if entries.len() > 1 {
                    let done: Vec<String> = stored.iter().map(|m| m.name.to_string()).collect();
                    let rest: Vec<String> = entries
                        .iter()
                        .skip(stored.len())
                        .map(|(n, _)| n.to_string())
                        .collect();
                    err = err.context(format!(
                        "stored {}; not stored: {}",
                        if done.is_empty() {
                            "none".to_owned()
                        } else {
                            done.join(", ")
                        },
                        rest.join(", ")
                    ));
                }
                return Err(err);
            }
        }
    }
    if args.output.is_json() {
        return match stored.as_slice() {
            [one] if !bulk => crate::out::json(one),
            all => crate::out::json(&all),
        };
    }
    for meta in &stored {
        out!("stored {scope}/{} v{}", meta.name, meta.version)?;
    }
    Ok(())
}
