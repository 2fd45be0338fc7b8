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
    use std::io::IsTerminal as _;
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    if let Some(field) = &args.field {
        let meta = match args.version {
            None => store.metadata(&scope, &name).await?,
            Some(_) => store.get(&scope, &name, args.version).await?.meta,
        };
        let json = serde_json::to_value(&meta).map_err(|e| CliError::new(e.to_string()))?;
        let Some(value) = json.get(field.as_str()) else {
            let fields: Vec<&str> = json
                .as_object()
                .map(|o| o.keys().map(String::as_str).collect())
                .unwrap_or_default();
            return Err(CliError::new(format!(
                "no metadata field {field:?}; the fields are {}",
                fields.join(", ")
            ))
            .with_code(super::exit::USAGE));
        };
        return match value {
            serde_json::Value::Null => out!(""),
            serde_json::Value::String(s) => out!("{}", crate::out::printable(s)),
            other => out!("{other}"),
        };
    }
    let secret = store.get(&scope, &name, args.version).await?;
    // A masked value in a pipe looks like a value to a script (K=$(coffer get k) would
    // store "********1234" and go on): only a terminal gets the mask. Errors about the
    // secret come first, so a script learns that it is missing or expired.
    let json = args.output.is_json();
    let masked_plain = !args.reveal && !json;
    if masked_plain && !std::io::stdout().is_terminal() {
        return Err(CliError::new(
            "standard output is not a terminal, so coffer does not print the masked value a \
             script would take for the secret: say --plain (or --reveal) for the value, \
             --field NAME or --json for metadata",
        )
        .with_code(super::exit::USAGE));
    }
    let value = secret.value.expose_secret();
    if json {
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
