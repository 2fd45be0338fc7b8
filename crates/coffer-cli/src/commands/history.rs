//! `coffer versions`, `coffer rollback`, `coffer restore`: a secret's history and its
//! recovery.

use coffer::{SecretStoreExt as _, VersionState};

use super::{CliResult, name, open_store, print_columns, scope};
use crate::cli::{Cli, RestoreArgs, RollbackArgs, VersionsArgs};
use crate::out::out;

pub(super) async fn versions(cli: &Cli, args: &VersionsArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    let versions = store.versions(&scope, &name).await?;
    if args.output.is_json() {
        return crate::out::json(&versions);
    }
    let latest = versions.last().map(|v| v.version);
    let rows: Vec<Vec<String>> = versions
        .iter()
        .map(|v| {
            vec![
                v.version.to_string(),
                v.created_at
                    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                v.key_id.map_or_else(|| "-".into(), |k| k.to_string()),
                match (v.state, Some(v.version) == latest) {
                    (VersionState::Kept, true) => "kept (latest)".into(),
                    (state, _) => state.to_string(),
                },
            ]
        })
        .collect();
    print_columns(&["VERSION", "CREATED", "KEY", "STATE"], &rows)
}

pub(super) async fn rollback(cli: &Cli, args: &RollbackArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    let meta = store.rollback(&scope, &name, args.to).await?;
    if args.output.is_json() {
        return crate::out::json(&meta);
    }
    out!(
        "stored {scope}/{name} v{}: the value of v{} (metadata unchanged)",
        meta.version,
        args.to
    )
}

pub(super) async fn restore(cli: &Cli, args: &RestoreArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    // A live secret is restored as it is: say so rather than claim a restore.
    let was_live = store.exists(&scope, &name).await?;
    let meta = store.restore(&scope, &name).await?;
    if args.output.is_json() {
        return crate::out::json(&meta);
    }
    if was_live {
        out!(
            "{scope}/{name} is not deleted (v{}): nothing to restore",
            meta.version
        )
    } else {
        out!("restored {scope}/{name} v{}", meta.version)
    }
}
