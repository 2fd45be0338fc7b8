//! `coffer audit`: the access log, newest first.

use coffer::sql::{AuditQuery, SqlAuditSink};

use super::{CliError, CliResult, keeps_access_log, name, print_columns, require_keyring, scope};
use crate::cli::{AuditArgs, Cli};
use crate::out::{note, printable};

pub(super) async fn audit(cli: &Cli, args: &AuditArgs) -> CliResult {
    if !keeps_access_log(&cli.store) {
        return Err(CliError::new(format!(
            "the access log lives in a SQL store's database (sqlite://, postgres://); {} has none",
            coffer::store::open::redact_url(&cli.store)
        )));
    }
    let sink = SqlAuditSink::connect(&cli.store, require_keyring(cli).await?).await?;
    let mut query = AuditQuery::new().scope(scope(cli)?).limit(args.limit);
    if let Some(n) = &args.name {
        query = query.name(name(n)?);
    }
    let events = sink.query(&query).await?;
    if args.output.is_json() {
        return crate::out::json(&events);
    }
    if events.is_empty() {
        note!("no recorded access in scope {}", printable(&cli.scope));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.operation.to_string(),
                match &e.error_kind {
                    Some(kind) => format!("error:{kind}"),
                    None => e.outcome.to_string(),
                },
                e.name
                    .as_ref()
                    .map_or_else(|| "-".into(), ToString::to_string),
                e.version.map_or_else(|| "-".into(), |v| v.to_string()),
                e.context.actor.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_columns(
        &["TIME", "OPERATION", "OUTCOME", "NAME", "VERSION", "ACTOR"],
        &rows,
    )
}
