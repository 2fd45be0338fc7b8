//! `coffer`: keep secrets in a coffer store from the shell.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod commands;
mod out;
mod warnings;

use std::process::ExitCode;

use clap::Parser as _;

/// With `RUST_LOG` set, the libraries' logs go to stderr as `tracing` formats them, at the
/// levels it asks for (stdout is the command's output, or the MCP protocol). Without it,
/// only their warnings and errors show, each once and in coffer's own style
/// (`coffer: warning: …`): a security warning such as `VAULT_SKIP_VERIFY` still reaches
/// the user, raw `tracing` lines do not. vaultrs logs every error response of Vault at
/// ERROR, also the ones coffer expects (a check-and-set race, a first write): coffer
/// reports what matters itself, so those are dropped.
fn init_logging() {
    use std::io::IsTerminal as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_default_env() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
        return;
    }
    let filter = tracing_subscriber::EnvFilter::new("warn,vaultrs=off,rustify=off");
    let subscriber = tracing_subscriber::registry()
        .with(filter)
        .with(warnings::Warnings::default());
    let _ = tracing::subscriber::set_global_default(subscriber);
}

/// `coffer run npm start` (no `--`): clap's error, then how to say it.
fn parse() -> cli::Cli {
    match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
            let run_without_dashes =
                args.iter().any(|a| a == "run") && !args.iter().any(|a| a == "--");
            let code = e.exit_code();
            let _ = e.print();
            let unread = matches!(
                e.kind(),
                clap::error::ErrorKind::UnknownArgument
                    | clap::error::ErrorKind::MissingRequiredArgument
            );
            if run_without_dashes && unread {
                out::note!(
                    "hint: put the command after `--`, so its own flags are not read as \
                     coffer's: coffer run -- npm start"
                );
            }
            std::process::exit(code);
        }
    }
}

fn main() -> ExitCode {
    let mut cli = parse();
    if let Err(e) = cli.resolve() {
        out::note!("error: {e}");
        return ExitCode::from(1);
    }
    init_logging();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            out::note!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            if e.has_message() {
                out::note!("error: {e}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
