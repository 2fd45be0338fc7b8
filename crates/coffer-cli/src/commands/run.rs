//! `coffer run` and `coffer export`: the scope's secrets into a child process or a file.

use std::os::unix::process::ExitStatusExt as _;
use std::process::Stdio;

use coffer_env::{CLEAN_ENV_ALLOWLIST, EnvMap, EnvWriter, Format, Redactor, Selection};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::signal::unix::{SignalKind, signal};

use super::{CliError, CliResult, name, open_store, scope};
use crate::cli::{Cli, ExportArgs, ExportFormat, RunArgs, SelectArgs};
use crate::out::note;

/// Exit code when coffer itself fails before the command runs (as `env` and `nohup`).
const EXIT_COFFER_FAILED: u8 = 125;
/// Exit code when the command exists but cannot be run.
const EXIT_CANNOT_RUN: u8 = 126;
/// Exit code when the command is not found.
const EXIT_NOT_FOUND: u8 = 127;

/// The environment `args` select from the store.
async fn env_map(cli: &Cli, args: &SelectArgs, pass: &[String]) -> CliResult<EnvMap> {
    let scope = scope(cli)?;
    let names = args
        .only
        .iter()
        .map(|n| name(n))
        .collect::<CliResult<Vec<_>>>()?;
    let mut selection = Selection::names(names).with_tags(args.tags.iter().cloned());
    if let Some(prefix) = &args.prefix {
        selection = selection.with_prefix(prefix.clone());
    }
    let store = open_store(cli, None).await?;
    let mut map = EnvMap::new();
    for var in &args.allow {
        map.allow(var.clone());
    }
    for var in pass {
        map.pass_through(var.clone());
    }
    map.load(&*store, &scope, &selection).await?;
    Ok(map)
}

pub(super) async fn export(cli: &Cli, args: &ExportArgs) -> CliResult {
    let map = env_map(cli, &args.select, &[]).await?;
    let format = match args.format {
        ExportFormat::Dotenv => Format::Dotenv,
        ExportFormat::Json => Format::Json,
        ExportFormat::Shell => Format::Shell,
    };
    let writer = EnvWriter::new(format).export(args.export).force(args.force);
    match &args.output {
        Some(path) if path.as_os_str() != "-" => {
            writer.write_file(&map, path)?;
            note!(
                "wrote {} variables to {} (mode 0600)",
                map.len(),
                path.display()
            );
        }
        _ => {
            let text = writer.render(&map)?;
            crate::out::write_stdout(text.as_bytes())?;
        }
    }
    Ok(())
}

pub(super) async fn run(cli: &Cli, args: &RunArgs) -> CliResult<u8> {
    let map = env_map(cli, &args.select, &args.pass_env)
        .await
        .map_err(|e| e.with_code(EXIT_COFFER_FAILED))?;
    let failed = |what: &str, e: std::io::Error| {
        CliError::new(format!("{what}: {e}")).with_code(EXIT_COFFER_FAILED)
    };
    // Handlers first, so a signal that arrives while the child starts is not lost on
    // coffer's default action (which would end coffer and orphan the child).
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|e| failed("cannot handle SIGINT", e))?;
    let mut sigterm =
        signal(SignalKind::terminate()).map_err(|e| failed("cannot handle SIGTERM", e))?;
    let mut sighup = signal(SignalKind::hangup()).map_err(|e| failed("cannot handle SIGHUP", e))?;

    let (program, rest) = args
        .command
        .split_first()
        .ok_or_else(|| CliError::new("no command given").with_code(EXIT_COFFER_FAILED))?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(rest);
    if args.clean_env {
        map.apply_clean(&mut cmd, CLEAN_ENV_ALLOWLIST);
    } else {
        map.apply(&mut cmd);
    }
    let redactor = if args.no_mask {
        None
    } else {
        let redactor = Redactor::from_map(&map);
        for var in redactor.unmasked() {
            note!(
                "coffer: warning: {var} is shorter than {} bytes and is not masked",
                coffer_env::MIN_MASK_LEN
            );
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        Some(redactor)
    };
    let mut child = cmd.spawn().map_err(|e| {
        let code = match e.kind() {
            std::io::ErrorKind::NotFound => EXIT_NOT_FOUND,
            _ => EXIT_CANNOT_RUN,
        };
        CliError::new(format!("cannot run {}: {e}", program.to_string_lossy())).with_code(code)
    })?;
    // The child has its copy; coffer's goes now.
    drop(cmd);
    drop(map);
    let pid = child
        .id()
        .and_then(|id| i32::try_from(id).ok())
        .map(Pid::from_raw);

    let (out, err) = (child.stdout.take(), child.stderr.take());
    let pumps = async {
        let Some(redactor) = &redactor else { return };
        // A closed stdout ends a copy; the child then sees EPIPE, as it would without
        // coffer in between.
        let copy_out = async {
            if let Some(out) = out {
                let _ = coffer_env::copy_redacted(redactor, out, tokio::io::stdout()).await;
            }
        };
        let copy_err = async {
            if let Some(err) = err {
                let _ = coffer_env::copy_redacted(redactor, err, tokio::io::stderr()).await;
            }
        };
        futures::future::join(copy_out, copy_err).await;
    };
    let done = async {
        let (status, ()) = futures::future::join(child.wait(), pumps).await;
        status
    };
    tokio::pin!(done);
    let forward = |sig| {
        if let Some(pid) = pid {
            // The child may have exited already; then there is no one to tell.
            let _ = kill(pid, sig);
        }
    };
    let status = loop {
        tokio::select! {
            status = &mut done => break status,
            Some(()) = sigint.recv() => forward(Signal::SIGINT),
            Some(()) = sigterm.recv() => forward(Signal::SIGTERM),
            Some(()) = sighup.recv() => forward(Signal::SIGHUP),
        }
    };
    let status = status.map_err(|e| failed("cannot wait for the command", e))?;
    Ok(match (status.code(), status.signal()) {
        (Some(code), _) => u8::try_from(code).unwrap_or(1),
        (None, Some(sig)) => u8::try_from(128 + sig).unwrap_or(255),
        (None, None) => 1,
    })
}
