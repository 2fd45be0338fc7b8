//! `coffer keys rotate`: a new primary key, every envelope rewrapped onto it.

use coffer::SecretStoreExt as _;
use coffer::envelope;

use super::{CliError, CliResult, open_store, require_keyring};
use crate::cli::Cli;
use crate::out::{note, out};

/// Envelopes rewrapped per transaction by `keys rotate`.
const ROTATE_BATCH: usize = 500;

pub(super) async fn rotate(cli: &Cli) -> CliResult {
    if std::env::var_os(envelope::MASTER_KEY_ENV).is_some() {
        return Err(CliError::new(
            "COFFER_MASTER_KEY holds a single key, which coffer cannot rotate: \
             use a keyring file (unset COFFER_MASTER_KEY and run `coffer init`)",
        ));
    }
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
            "rewrapping {bar:40} {pos}/{len} envelopes ({per_sec})",
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
    keyring.set_rotation_pending(false);
    keyring.save(&cli.keyring)?;
    out!(
        "rotated to key {}; rewrapped {done} envelopes",
        keyring.primary_id()
    )
}
