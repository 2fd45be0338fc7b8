//! `coffer import`: secrets from a .env file, a JSON object or the environment.

use coffer_env::import::{self, ImportFormat, ImportOptions};

use super::{CliError, CliResult, open_store, scope};
use crate::cli::{self, Cli, ImportArgs};
use crate::out::{out, printable};

pub(super) async fn import(cli: &Cli, args: &ImportArgs) -> CliResult {
    let scope = scope(cli)?;
    let mut entries = match &args.file {
        Some(path) => {
            let format = match args.input_format {
                Some(cli::ImportFormat::Dotenv) => ImportFormat::Dotenv,
                Some(cli::ImportFormat::Json) => ImportFormat::Json,
                None => ImportFormat::of_path(path).ok_or_else(|| {
                    CliError::new(format!(
                        "cannot tell the format of {} from its name: say --input-format dotenv or \
                         json",
                        path.display()
                    ))
                })?,
            };
            // The user's own file, at whatever mode their tools left it; zeroized after.
            let text = coffer::envelope::zeroize::Zeroizing::new(
                std::fs::read_to_string(path)
                    .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?,
            );
            import::parse(&text, format)
                .map_err(|e| CliError::new(format!("{}: {e}", path.display())))?
        }
        None => import::from_env(None),
    };
    if let Some(prefix) = &args.prefix {
        entries.retain(|e| e.env_name.starts_with(prefix.as_str()));
    }
    let mut options = ImportOptions::new().dry_run(args.dry_run);
    options.provider.clone_from(&args.provider);
    if let Some(kind) = &args.kind {
        options = options.kind(kind.parse()?);
    }
    for tag in &args.tags {
        options = options.tag(tag);
    }
    let store = open_store(cli, None).await?;
    let report = import::import(&*store, &scope, entries, &options).await?;
    if args.output.is_json() {
        let refused: Vec<serde_json::Value> = report
            .refused
            .iter()
            .map(|(variable, reason)| serde_json::json!({"variable": variable, "reason": reason}))
            .collect();
        return crate::out::json(&serde_json::json!({
            "scope": scope,
            "dry_run": args.dry_run,
            "created": report.created,
            "updated": report.updated,
            "unchanged": report.unchanged,
            "refused": refused,
        }));
    }
    let (create, update) = if args.dry_run {
        ("would create", "would update")
    } else {
        ("created", "updated")
    };
    for (what, names) in [
        (create, &report.created),
        (update, &report.updated),
        ("unchanged", &report.unchanged),
    ] {
        if !names.is_empty() {
            out!("{what} {}: {}", names.len(), printable(&names.join(", ")))?;
        }
    }
    for (var, reason) in &report.refused {
        out!("refused {}: {}", printable(var), printable(reason))?;
    }
    out!(
        "{} in scope {scope}: {} {create}, {} {update}, {} unchanged, {} refused",
        if args.dry_run { "dry run" } else { "imported" },
        report.created.len(),
        report.updated.len(),
        report.unchanged.len(),
        report.refused.len()
    )
}
