//! `coffer copy`: secrets from one store to another, then checked in both.

use coffer::store::copy::{self, CopyOptions, Outcome, Versions};

use super::{CliError, CliResult, open_store_at, scope};
use crate::cli::{Cli, CopyArgs, CopyVersions};
use crate::out::{out, printable};

pub(super) async fn copy(cli: &Cli, args: &CopyArgs) -> CliResult {
    let from_url = args.from.as_deref().unwrap_or(&cli.store);
    if from_url == args.to {
        return Err(CliError::new("--from and --to are the same store"));
    }
    let from = open_store_at(cli, from_url).await?;
    let to = open_store_at(cli, &args.to).await?;
    let mut options = CopyOptions::new()
        .dry_run(args.dry_run)
        .versions(match args.versions {
            CopyVersions::Latest => Versions::Latest,
            CopyVersions::All => Versions::All,
        });
    if !args.all_scopes {
        options = options.scopes(vec![scope(cli)?]);
    }
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template("copying {bar:40} {pos}/{len} secrets")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let report = copy::copy(&*from, &*to, &options, &mut |p| {
        bar.set_length(p.total as u64);
        bar.set_position(p.done as u64);
    })
    .await;
    bar.finish_and_clear();
    let report = report.map_err(|e| match e {
        coffer::Error::Unsupported {
            operation: "listing scopes",
            backend,
        } => CliError::new(format!(
            "the {backend} store cannot list its scopes: name them with --scope instead of \
             --all-scopes"
        )),
        e => e.into(),
    })?;
    if args.output.is_json() {
        return copy_json(args, &report);
    }
    for item in &report.items {
        let (what, why) = match &item.outcome {
            Outcome::Skipped(why) => ("skipped", why),
            Outcome::Refused(why) => ("refused", why),
            _ => continue,
        };
        out!("{what} {}/{}: {}", item.scope, item.name, printable(why))?;
    }
    let (create, update) = if args.dry_run {
        ("would create", "would update")
    } else {
        ("created", "updated")
    };
    out!(
        "{} {} secrets: {} {create}, {} {update}, {} unchanged, {} skipped, {} refused",
        if args.dry_run {
            "dry run over"
        } else {
            "copied"
        },
        report.items.len(),
        report.created,
        report.updated,
        report.unchanged,
        report.skipped,
        report.refused
    )?;
    if args.dry_run {
        return Ok(());
    }
    if !report.mismatched.is_empty() {
        return Err(CliError::new(format!(
            "verification failed: {} secrets differ between the stores after the copy: {}",
            report.mismatched.len(),
            printable(&report.mismatched.join(", "))
        )));
    }
    out!(
        "verified {}: the keyed digests of each value and its metadata match in both stores",
        report.verified
    )?;
    if report.refused > 0 {
        return Err(CliError::new(format!(
            "{} secrets were refused (see above)",
            report.refused
        )));
    }
    Ok(())
}

/// `coffer copy --format json`: the counts, every secret's outcome (with why, for a skip
/// or a refusal), and the verification; fails as the table does.
fn copy_json(args: &CopyArgs, report: &copy::CopyReport) -> CliResult {
    let items: Vec<serde_json::Value> = report
        .items
        .iter()
        .map(|item| {
            let (outcome, reason) = match &item.outcome {
                Outcome::Created => ("created", None),
                Outcome::Updated => ("updated", None),
                Outcome::Unchanged => ("unchanged", None),
                Outcome::Skipped(why) => ("skipped", Some(why)),
                Outcome::Refused(why) => ("refused", Some(why)),
                _ => ("other", None),
            };
            serde_json::json!({
                "scope": item.scope,
                "name": item.name,
                "outcome": outcome,
                "reason": reason,
            })
        })
        .collect();
    crate::out::json(&serde_json::json!({
        "dry_run": args.dry_run,
        "created": report.created,
        "updated": report.updated,
        "unchanged": report.unchanged,
        "skipped": report.skipped,
        "refused": report.refused,
        "verified": report.verified,
        "mismatched": report.mismatched,
        "items": items,
    }))?;
    if !args.dry_run && (!report.mismatched.is_empty() || report.refused > 0) {
        return Err(CliError::quiet(1));
    }
    Ok(())
}
