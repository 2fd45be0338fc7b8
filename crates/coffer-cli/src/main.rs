//! `coffer`: keep secrets in a coffer store from the shell.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod commands;
mod out;

use std::process::ExitCode;

use clap::Parser as _;

/// Logs go to stderr (stdout is the command's output, or the MCP protocol), at the level
/// `RUST_LOG` asks for, `warn` by default. vaultrs logs every error response of Vault at
/// ERROR, also the ones coffer expects (a check-and-set race, a first write): coffer
/// reports what matters itself, so those are off unless `RUST_LOG` asks for them.
fn init_logging() {
    use std::io::IsTerminal as _;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,vaultrs=off,rustify=off"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
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
