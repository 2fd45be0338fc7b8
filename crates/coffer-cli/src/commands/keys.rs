//! `coffer keys`: rotate to a new primary key, list the keys and what each protects,
//! retire a key nothing uses, and bring an older store up to date.

use std::sync::Arc;

use coffer::store::open::scheme_of;
use coffer::{DynSecretStore, Error, KeyUsage, SecretStoreExt as _};
use coffer::{envelope, envelope::Keyring};

use super::{CliError, CliResult, open_store, require_keyring};
use crate::cli::{Cli, KeysListArgs, RetireArgs, RotateArgs};
use crate::out::{note, out};

/// Items rewrapped per transaction by `keys rotate`.
const ROTATE_BATCH: usize = 500;

/// The refusal for a keyring that comes from `COFFER_MASTER_KEY`, which `keys` commands
/// cannot change.
fn refuse_env_key(what: &str) -> CliResult {
    if std::env::var_os(envelope::MASTER_KEY_ENV).is_some() {
        return Err(CliError::new(format!(
            "COFFER_MASTER_KEY holds a single key, which coffer cannot {what}: \
             use a keyring file (unset COFFER_MASTER_KEY and run `coffer init`)"
        )));
    }
    Ok(())
}

pub(super) async fn rotate(cli: &Cli, args: &RotateArgs) -> CliResult {
    refuse_env_key("rotate")?;
    let mut keyring = require_keyring(cli)?;
    if keyring.rotation_pending() {
        note!(
            "resuming the unfinished rotation to key {}",
            keyring.primary_id()
        );
    } else {
        let probe = open_store(cli, Some(keyring.clone())).await?;
        if !probe.capabilities().rewrap {
            return Err(CliError::new(format!(
                "the {} store does not seal values with the keyring: nothing to rotate",
                probe.backend()
            )));
        }
        let id = keyring.rotate();
        keyring.set_rotation_pending(true);
        // The new key is on disk before any envelope uses it.
        keyring.save(&cli.keyring)?;
        note!("added key {id} as the primary");
    }
    let store = open_store(cli, Some(keyring.clone())).await?;
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "rewrapping {bar:40} {pos}/{len} items ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = store
        .rewrap_all(ROTATE_BATCH, &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let done = done?;
    if done.remaining > 0 {
        // Rows kept changing under the batches: the rotation stays pending.
        return Err(CliError::new(format!(
            "{} items are still under older keys; run `coffer keys rotate` again to finish",
            done.remaining
        )));
    }
    keyring.set_rotation_pending(false);
    keyring.save(&cli.keyring)?;
    if done.retagged > 0 {
        note!(
            "made {} head MACs again under key {}",
            done.retagged,
            keyring.primary_id()
        );
    }
    out!(
        "rotated to key {}; rewrapped {} envelopes",
        keyring.primary_id(),
        done.rewrapped
    )?;
    if args.retire {
        let usage = usage_of(&store).await?;
        let old: Vec<u32> = keyring
            .key_ids()
            .filter(|id| *id != keyring.primary_id())
            .collect();
        for id in old {
            retire_one(cli, &mut keyring, &usage, id)?;
        }
    }
    Ok(())
}

/// What the store says each key protects; a store that cannot count is an error, since
/// nothing may be retired on a guess.
async fn usage_of(store: &Arc<DynSecretStore>) -> CliResult<Vec<KeyUsage>> {
    match store.key_usage().await {
        Ok(usage) => Ok(usage),
        Err(Error::Unsupported { backend, .. }) => Err(CliError::new(format!(
            "the {backend} store cannot count which keys its envelopes use, so no key \
             can be retired safely: keep every key"
        ))),
        Err(e) => Err(e.into()),
    }
}

/// Removes key `id` after checking `usage` and saves the keyring.
fn retire_one(cli: &Cli, keyring: &mut Keyring, usage: &[KeyUsage], id: u32) -> CliResult {
    if keyring.rotation_pending() {
        return Err(CliError::new(
            "a rotation is unfinished: run `coffer keys rotate` to finish it first",
        ));
    }
    if id == keyring.primary_id() {
        return Err(CliError::new(format!(
            "key {id} is the primary: run `coffer keys rotate` to make a new one first"
        )));
    }
    if !keyring.contains(id) {
        let known = keyring
            .key_ids()
            .map(|k| k.to_string())
            .collect::<Vec<_>>()
            .join(", ");
        return Err(CliError::new(format!(
            "key {id} is not in the keyring (its keys: {known})"
        )));
    }
    if let Some(u) = usage.iter().find(|u| u.key_id == Some(id) && u.in_use()) {
        return Err(CliError::new(format!(
            "key {id} still protects {} envelopes and {} head MACs: run `coffer keys \
             rotate` to move them to key {}, then retire it",
            u.envelopes,
            u.heads,
            keyring.primary_id()
        )));
    }
    keyring.remove(id)?;
    keyring.save(&cli.keyring)?;
    out!("retired key {id}")
}

pub(super) async fn retire(cli: &Cli, args: &RetireArgs) -> CliResult {
    refuse_env_key("retire a key of")?;
    let mut keyring = require_keyring(cli)?;
    let store = open_store(cli, Some(keyring.clone())).await?;
    let usage = usage_of(&store).await?;
    retire_one(cli, &mut keyring, &usage, args.id)
}

/// One row of `coffer keys list`.
#[derive(serde::Serialize)]
struct KeyRow {
    id: u32,
    created: Option<String>,
    primary: bool,
    state: &'static str,
    envelopes: Option<u64>,
    heads: Option<u64>,
}

pub(super) async fn list(cli: &Cli, args: &KeysListArgs) -> CliResult {
    let keyring = require_keyring(cli)?;
    let store = open_store(cli, Some(keyring.clone())).await?;
    let usage = match store.key_usage().await {
        Ok(usage) => Some(usage),
        Err(Error::Unsupported { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    let count = |id: u32| {
        usage.as_ref().map(|all| {
            all.iter()
                .find(|u| u.key_id == Some(id))
                .copied()
                .unwrap_or_else(|| KeyUsage::new(Some(id), 0, 0))
        })
    };
    let mut rows: Vec<KeyRow> = keyring
        .key_ids()
        .map(|id| {
            let used = count(id);
            let primary = id == keyring.primary_id();
            KeyRow {
                id,
                created: keyring.created_at(id).and_then(|secs| {
                    chrono::DateTime::from_timestamp(i64::try_from(secs).ok()?, 0)
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                }),
                primary,
                state: match used {
                    _ if primary => "primary",
                    Some(u) if !u.in_use() => "unused",
                    _ => "in use",
                },
                envelopes: used.map(|u| u.envelopes),
                heads: used.map(|u| u.heads),
            }
        })
        .collect();
    rows.extend(keyring.retired_ids().map(|id| KeyRow {
        id,
        created: None,
        primary: false,
        state: "retired",
        envelopes: None,
        heads: None,
    }));
    rows.sort_by_key(|r| r.id);
    if args.json {
        let text = serde_json::to_string_pretty(&rows).map_err(|e| CliError::new(e.to_string()))?;
        return out!("{text}");
    }
    out!(
        "{:>4}  {:<20}  {:<8}  {:>9}  {:>9}",
        "ID",
        "CREATED",
        "STATE",
        "ENVELOPES",
        "HEADS"
    )?;
    let shown = |n: Option<u64>| n.map_or_else(|| "?".to_owned(), |n| n.to_string());
    for r in &rows {
        out!(
            "{:>4}  {:<20}  {:<8}  {:>9}  {:>9}",
            r.id,
            r.created.as_deref().unwrap_or("-"),
            r.state,
            if r.state == "retired" {
                "-".to_owned()
            } else {
                shown(r.envelopes)
            },
            if r.state == "retired" {
                "-".to_owned()
            } else {
                shown(r.heads)
            },
        )?;
    }
    if usage.is_none() {
        note!(
            "the {} store cannot count which keys its envelopes use (shown as ?)",
            store.backend()
        );
    }
    Ok(())
}

pub(super) async fn migrate(cli: &Cli) -> CliResult {
    let keyring = Arc::new(require_keyring(cli)?);
    let scheme = scheme_of(&cli.store).unwrap_or("").to_ascii_lowercase();
    let adopted = match scheme.as_str() {
        "sqlite" => {
            coffer::sql::SqliteStore::connect(&cli.store, keyring)
                .await?
                .adopt_untagged_heads()
                .await?
        }
        "postgres" | "postgresql" => {
            coffer::sql::PgStore::connect(&cli.store, keyring)
                .await?
                .adopt_untagged_heads()
                .await?
        }
        _ => {
            return Err(CliError::new(format!(
                "`coffer keys migrate` can so far bring only SQLite and Postgres stores \
                 up to date, not a {scheme} store"
            )));
        }
    };
    out!("gave {adopted} heads a MAC of their current state")
}
