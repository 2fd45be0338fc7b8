//! `coffer keys`: rotate to a new primary key, list the keys and what each protects,
//! retire a key nothing uses, and bring an older store up to date.

use std::sync::Arc;

use coffer::envelope::{Kek, KekSource, Keyring};
use coffer::{DynSecretStore, Error, KeyUsage, Scope, SecretStoreExt as _};

use coffer::envelope::KeyringKek as _;
use coffer::store::keys::SharedKeyring;

use super::{CliError, CliResult, KeyringHome, open_home, require_keyring_home};
use crate::cli::{Cli, KeysListArgs, MigrateArgs, RetireArgs, RotateArgs};
use crate::out::{note, out};

/// Items rewrapped per transaction by `keys rotate`.
const ROTATE_BATCH: usize = 500;

pub(super) async fn rotate(cli: &Cli, args: &RotateArgs) -> CliResult {
    let (mut keyring, mut home) = require_keyring_home(cli).await?;
    home.writable(cli)?;
    if keyring.rotation_pending() {
        note!(
            "resuming the unfinished rotation to key {}",
            keyring.primary_id()
        );
    } else {
        let probe = open_home(cli, &keyring, &home).await?;
        if !probe.capabilities().rewrap {
            return Err(CliError::new(format!(
                "the {} store does not seal values with the keyring: nothing to rotate",
                probe.backend()
            )));
        }
        let id = keyring.rotate();
        keyring.set_rotation_pending(true);
        // The new key is on disk before any envelope uses it.
        home.save(cli, &keyring).await?;
        note!("added key {id} as the primary");
    }
    let store = open_home(cli, &keyring, &home).await?;
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
    home.save(cli, &keyring).await?;
    if done.retagged > 0 {
        note!(
            "made {} head MACs again under key {}",
            done.retagged,
            keyring.primary_id()
        );
    }
    let json = args.output.is_json();
    if !json {
        out!(
            "rotated to key {}; rewrapped {} envelopes",
            keyring.primary_id(),
            done.rewrapped
        )?;
    }
    let mut retired = Vec::new();
    if args.retire {
        let usage = usage_of(&store).await?;
        let old: Vec<u32> = keyring
            .key_ids()
            .filter(|id| *id != keyring.primary_id())
            .collect();
        for id in old {
            retire_one(cli, &store, &mut keyring, &mut home, &usage, id).await?;
            if !json {
                out!("retired key {id}")?;
            }
            retired.push(id);
        }
    }
    if json {
        return crate::out::json(&serde_json::json!({
            "primary": keyring.primary_id(),
            "rewrapped": done.rewrapped,
            "retagged": done.retagged,
            "retired": retired,
        }));
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

/// Retires key `id` in the store (which refuses while anything is under it, and from
/// then on refuses writes under it from any instance) after checking `usage`, then
/// removes its material from the keyring and saves it.
async fn retire_one(
    cli: &Cli,
    store: &Arc<DynSecretStore>,
    keyring: &mut Keyring,
    home: &mut KeyringHome,
    usage: &[KeyUsage],
    id: u32,
) -> CliResult {
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
    match store.retire_key(id).await {
        Ok(()) => {}
        Err(Error::Unsupported { backend, .. }) => {
            return Err(CliError::new(format!(
                "the {backend} store cannot refuse writes under a retired key, so no key can \
                 be retired safely: keep every key"
            )));
        }
        Err(e) => return Err(e.into()),
    }
    keyring.remove(id)?;
    home.save(cli, keyring).await?;
    Ok(())
}

pub(super) async fn retire(cli: &Cli, args: &RetireArgs) -> CliResult {
    let (mut keyring, mut home) = require_keyring_home(cli).await?;
    home.writable(cli)?;
    let store = open_home(cli, &keyring, &home).await?;
    let usage = usage_of(&store).await?;
    retire_one(cli, &store, &mut keyring, &mut home, &usage, args.id).await?;
    if args.output.is_json() {
        return crate::out::json(&serde_json::json!({
            "retired": [args.id],
            "primary": keyring.primary_id(),
        }));
    }
    out!("retired key {}", args.id)
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
    let (keyring, home) = require_keyring_home(cli).await?;
    let store = open_home(cli, &keyring, &home).await?;
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
    if args.output.is_json() {
        return crate::out::json(&rows);
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

pub(super) async fn migrate(cli: &Cli, args: &MigrateArgs) -> CliResult {
    if args.to_store {
        return to_store(cli).await;
    }
    let (keyring, home) = require_keyring_home(cli).await?;
    let store = open_home(cli, &keyring, &home).await?;
    let adopted = match store.adopt_untagged_heads().await {
        Ok(n) => n,
        Err(Error::Unsupported { backend, .. }) => {
            return Err(CliError::new(format!(
                "the {backend} store keeps no head MACs: nothing to migrate"
            )));
        }
        Err(e) => return Err(e.into()),
    };
    out!("gave {adopted} heads a MAC of their current state")
}

/// Where `keys rekey` reads the new KEK: a key, a key file, a passphrase.
const NEW_KEK_VARS: [&str; 3] = [
    "COFFER_NEW_MASTER_KEY",
    "COFFER_NEW_KEK_FILE",
    "COFFER_NEW_PASSPHRASE",
];

pub(super) async fn rekey(cli: &Cli) -> CliResult {
    let (keyring, home) = require_keyring_home(cli).await?;
    home.writable(cli)?;
    let [key_var, file_var, passphrase_var] = NEW_KEK_VARS;
    let new = Kek::from_vars(key_var, file_var, passphrase_var)?.ok_or_else(|| {
        CliError::new(format!(
            "no new key-encryption key: set {key_var} (base64 or hex of 32 bytes), \
             {file_var} (a 0600 key file) or {passphrase_var}"
        ))
    })?;
    let next = next_step(&new);
    if let KeyringHome::Store(keys) = &home {
        let described = new.describe();
        keys.rekey(Arc::new(new)).await?;
        return out!(
            "sealed the keyring kept in the {} store under {described}; from now on {next} \
             on every instance",
            keys.backend()
        );
    }
    keyring.save_sealed(&cli.keyring, &new)?;
    // Read back with the new KEK before saying it worked.
    Keyring::load_file(&cli.keyring, Some(&new), None)?;
    out!(
        "sealed the keyring {} under {}; from now on {next}",
        cli.keyring.display(),
        new.source()
    )
}

/// What to set after a re-key to `new`.
fn next_step(new: &Kek) -> String {
    match new.source() {
        KekSource::Env(_) => "set COFFER_MASTER_KEY to the new key".to_owned(),
        KekSource::KeyFile(path) => format!("set COFFER_KEK_FILE={}", path.display()),
        _ => "set COFFER_PASSPHRASE to the new passphrase".to_owned(),
    }
}

/// `keys migrate --to-store`: seals the keyring (from its file or `COFFER_MASTER_KEY`)
/// under the KEK in the environment and keeps it in the store, then opens the store
/// with it and reads every secret back before saying it worked.
async fn to_store(cli: &Cli) -> CliResult {
    let (keyring, home) = require_keyring_home(cli).await?;
    if let KeyringHome::Store(keys) = &home {
        return out!(
            "the {} store keeps its keyring already (generation {})",
            keys.backend(),
            keys.generation()
        );
    }
    let kek = Kek::from_env()?.ok_or_else(|| {
        CliError::new(
            "the keyring kept in the store is sealed under a key-encryption key: set \
             COFFER_MASTER_KEY (base64 or hex of 32 bytes), COFFER_KEK_FILE (a 0600 key \
             file) or COFFER_PASSPHRASE, on this machine and on every instance",
        )
    })?;
    // A plain keyring file moves: here COFFER_MASTER_KEY is the KEK, not key 1 over it.
    let keyring = match home {
        KeyringHome::EnvOnly if cli.keyring.exists() => {
            Keyring::load(&cli.keyring, super::passphrase().as_ref())?
        }
        _ => keyring,
    };
    if keyring.rotation_pending() {
        return Err(CliError::new(
            "a rotation is unfinished: run `coffer keys rotate` to finish it first",
        ));
    }
    // The keyring must open what the store holds before it is moved there.
    let before = open_home(cli, &keyring, &home).await?;
    if !before.capabilities().rewrap {
        // A store that does not seal with the keyring (Supabase without ?seal=true)
        // would keep a keyring that no value uses.
        return Err(CliError::new(format!(
            "the {} store does not seal values with the keyring (for Supabase, add \
             ?seal=true to the URL): there is nothing for a kept keyring to protect",
            before.backend()
        )));
    }
    let storage = coffer::registry()
        .keyring_storage(&cli.store)
        .await
        .map_err(|e| match e {
            Error::Unsupported { backend, .. } => CliError::new(format!(
                "the {backend} store cannot keep its keyring; keep the keyring file"
            )),
            other => other.into(),
        })?;
    drop(before);
    let described = kek.describe();
    let keys = Arc::new(SharedKeyring::create(storage, Arc::new(kek), keyring).await?);
    let store = open_home(
        cli,
        &keys.handle().current(),
        &KeyringHome::Store(keys.clone()),
    )
    .await?;
    let scope = super::scope(cli)?;
    let checked = read_everything(&store, &scope).await?;
    out!(
        "the {} store now keeps the keyring (sealed under {described}); read back {checked} \
         secrets of scope {scope} with it",
        keys.backend()
    )?;
    if cli.keyring.exists() {
        note!(
            "coffer: warning: the keyring file {} is no longer used: once every instance has \
             {described} \
             set, delete it (it still holds every key in it)",
            cli.keyring.display()
        );
    }
    Ok(())
}

/// Reads every version of every live secret of `scope`; returns how many secrets.
/// Expired and inactive ones are read by version, which `get` allows.
async fn read_everything(store: &Arc<DynSecretStore>, scope: &Scope) -> CliResult<u64> {
    let mut read = 0;
    for meta in store.list_all(scope, None).await? {
        for version in 1..=meta.version {
            match store.get(scope, &meta.name, Some(version)).await {
                Ok(_) | Err(Error::NotFound { .. }) => {}
                Err(Error::Expired { .. } | Error::Inactive { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        read += 1;
    }
    Ok(read)
}
