//! `coffer rm`: a soft delete, or every version for good.

use coffer::DeleteMode;

use super::{CliResult, name, open_store, scope};
use crate::cli::{Cli, RmArgs};
use crate::out::out;

pub(super) async fn rm(cli: &Cli, args: &RmArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    let mode = if args.destroy {
        DeleteMode::Destroy
    } else {
        DeleteMode::Soft
    };
    store.delete(&scope, &name, mode).await?;
    if args.output.is_json() {
        return crate::out::json(&serde_json::json!({
            "scope": scope,
            "name": name,
            "destroyed": args.destroy,
        }));
    }
    out!(
        "{} {scope}/{name}",
        if args.destroy { "destroyed" } else { "deleted" }
    )
}
