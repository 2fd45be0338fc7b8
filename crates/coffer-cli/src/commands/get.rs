//! `coffer get`: one secret, masked unless revealed.

use coffer::secrecy::ExposeSecret as _;

use super::{CliError, CliResult, name, open_store, scope};
use crate::cli::{Cli, GetArgs};
use crate::out::out;

/// The value with all but its last 4 characters hidden; values under 8 characters are
/// hidden entirely (showing 4 of them would show too much).
fn mask(value: &str) -> String {
    let chars = value.chars().count();
    if chars < 8 {
        "********".to_owned()
    } else {
        let tail: String = value.chars().skip(chars - 4).collect();
        format!("********{tail}")
    }
}

pub(super) async fn get(cli: &Cli, args: &GetArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    let secret = store.get(&scope, &name, args.version).await?;
    let value = secret.value.expose_secret();
    if args.json {
        let mut json =
            serde_json::to_value(&secret.meta).map_err(|e| CliError::new(e.to_string()))?;
        json["value"] = if args.reveal {
            value.into()
        } else {
            mask(value).into()
        };
        json["masked"] = (!args.reveal).into();
        let text = coffer::envelope::zeroize::Zeroizing::new(
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        );
        if let Some(serde_json::Value::String(v)) = json.get_mut("value") {
            coffer::envelope::zeroize::Zeroize::zeroize(v);
        }
        out!("{}", *text)
    } else if args.reveal {
        out!("{value}")
    } else {
        out!("{}", mask(value))
    }
}
