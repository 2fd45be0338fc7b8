//! `coffer set`: a secret's metadata, edited without a new version.

use coffer::AttributeUpdate;

use super::{CliError, CliResult, name, open_store, scope};
use crate::cli::{Cli, SetArgs};
use crate::out::out;

/// A time given as `YYYY-MM-DD` (midnight UTC) or RFC 3339.
pub(super) fn parse_time(flag: &str, text: &str) -> CliResult<chrono::DateTime<chrono::Utc>> {
    if let Ok(at) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(at.with_timezone(&chrono::Utc));
    }
    if let Ok(day) = chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        return Ok(day.and_time(chrono::NaiveTime::MIN).and_utc());
    }
    Err(CliError::new(format!(
        "{flag} {text:?} is not a date: give YYYY-MM-DD (midnight UTC) or an RFC 3339 time \
         such as 2027-01-31T00:00:00Z"
    ))
    .with_code(super::exit::USAGE))
}

/// `within` from now, for `--expires-in`.
pub(super) fn from_now(within: std::time::Duration) -> CliResult<chrono::DateTime<chrono::Utc>> {
    chrono::Duration::from_std(within)
        .ok()
        .and_then(|d| chrono::Utc::now().checked_add_signed(d))
        .ok_or_else(|| CliError::new("--expires-in is too long").with_code(super::exit::USAGE))
}

pub(super) async fn set(cli: &Cli, args: &SetArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let mut edit = AttributeUpdate::new();
    if args.active || args.inactive {
        edit = edit.active(args.active);
    }
    if let Some(within) = args.expires_in {
        edit = edit.expires_at(from_now(within)?);
    }
    if let Some(at) = &args.expires_at {
        edit = edit.expires_at(parse_time("--expires-at", at)?);
    }
    if args.no_expiry {
        edit = edit.no_expiry();
    }
    for tag in &args.tags {
        edit = edit.add_tag(tag);
    }
    for tag in &args.untags {
        edit = edit.remove_tag(tag);
    }
    if let Some(d) = &args.description {
        edit = edit.description(d);
    }
    if args.no_description {
        edit = edit.clear_description();
    }
    if let Some(e) = &args.env_name {
        edit = edit.env_name(e);
    }
    if args.no_env_name {
        edit = edit.clear_env_name();
    }
    if let Some(p) = &args.provider {
        edit = edit.provider(p);
    }
    if args.no_provider {
        edit = edit.clear_provider();
    }
    if let Some(k) = &args.kind {
        edit = edit.kind(k.parse()?);
    }
    if edit.is_empty() {
        return Err(CliError::new(
            "nothing to change: give --active, --inactive, --expires-in, --expires-at, \
             --no-expiry, --tag, --untag, --description, --env-name, --provider or --kind",
        )
        .with_code(2));
    }
    let store = open_store(cli, None).await?;
    let meta = store.update_attributes(&scope, &name, &edit).await?;
    if args.output.is_json() {
        return crate::out::json(&meta);
    }
    out!(
        "updated {scope}/{name}: version {} (no new version), {}{}",
        meta.version,
        if meta.active { "active" } else { "inactive" },
        match meta.expires_at {
            Some(at) => format!(
                ", expires {}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            None => ", no expiry".to_owned(),
        }
    )
}
