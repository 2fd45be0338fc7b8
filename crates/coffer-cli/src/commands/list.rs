//! `coffer list`: the scope's secrets, names and metadata only.

use coffer::{ListOptions, SecretMeta, SecretStoreExt as _};

use super::{CliResult, open_store, print_columns, scope};
use crate::cli::{Cli, ListArgs};
use crate::out::note;

pub(super) async fn list(cli: &Cli, args: &ListArgs) -> CliResult {
    let scope = scope(cli)?;
    let mut filters = ListOptions::new();
    filters.prefix.clone_from(&args.prefix);
    filters.provider.clone_from(&args.provider);
    filters.tag.clone_from(&args.tag);
    if let Some(kind) = &args.kind {
        filters.kind = Some(kind.parse()?);
    }
    if args.active || args.inactive {
        filters.active = Some(args.active);
    }
    let store = open_store(cli, None).await?;
    let items = match args.expiring {
        _ if args.deleted => store.list_deleted_all(&scope, &filters).await?,
        Some(within) => {
            let mut soon = store.expiring_within(&scope, within).await?;
            soon.retain(|m| {
                filters.matches(m)
                    && filters
                        .prefix
                        .as_deref()
                        .is_none_or(|p| m.name.as_str().starts_with(p))
            });
            soon
        }
        None => store.list_matching(&scope, &filters).await?,
    };
    if args.output.is_json() {
        return crate::out::json(&items);
    }
    if items.is_empty() {
        match args.expiring {
            Some(within) => note!(
                "nothing in scope {scope} expires within {}",
                humantime::format_duration(within)
            ),
            None if args.deleted => note!("no deleted secrets in scope {scope}"),
            None => note!("no secrets in scope {scope}"),
        }
        return Ok(());
    }
    print_table(&items)
}

fn print_table(items: &[SecretMeta]) -> CliResult {
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|m| {
            [
                m.name.to_string(),
                m.version.to_string(),
                m.kind.to_string(),
                m.provider.clone().unwrap_or_else(|| "-".into()),
                match (m.active, m.expires_at) {
                    (false, _) => "inactive".into(),
                    (true, Some(at)) if at <= chrono::Utc::now() => {
                        format!("expired {}", at.format("%Y-%m-%d"))
                    }
                    (true, Some(at)) => format!("expires {}", at.format("%Y-%m-%d")),
                    (true, None) => "active".into(),
                },
                if m.tags.is_empty() {
                    "-".into()
                } else {
                    m.tags.join(",")
                },
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    print_columns(
        &["NAME", "VERSION", "KIND", "PROVIDER", "STATUS", "TAGS"],
        &rows,
    )
}
