//! Standard output and standard error that never panic.
//!
//! `println!` panics when standard output is a closed pipe (`coffer list | head -1`) or a
//! full disk (`coffer list > /dev/full`). Here a closed pipe ends the command quietly
//! with status 141, what a shell reports for a program ended by SIGPIPE, and any other
//! write error is a message and status 1. Messages to standard error are best-effort:
//! there is nowhere else to report that they failed.

use std::io::Write as _;

use crate::commands::CliError;

/// The exit status for a closed output pipe: 128 + SIGPIPE, as a shell reports it.
pub(crate) const EXIT_BROKEN_PIPE: u8 = 141;

/// The command's failure for an error writing standard output.
pub(crate) fn stdout_error(e: &std::io::Error) -> CliError {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        CliError::quiet(EXIT_BROKEN_PIPE)
    } else {
        CliError::new(format!("cannot write to standard output: {e}"))
    }
}

/// Writes `text` to standard output and flushes it.
pub(crate) fn write_stdout(text: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_all(text)
        .and_then(|()| out.flush())
        .map_err(|e| stdout_error(&e))
}

/// Writes one line to standard output.
pub(crate) fn line(args: std::fmt::Arguments<'_>) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    out.write_fmt(args)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush())
        .map_err(|e| stdout_error(&e))
}

/// Writes one line to standard error, ignoring failure.
pub(crate) fn note_line(args: std::fmt::Arguments<'_>) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args).and_then(|()| err.write_all(b"\n"));
}

/// Writes `value` as pretty JSON and a newline: every `--format json` goes through here.
pub(crate) fn json(value: &impl serde::Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(format!("cannot write JSON: {e}")))?;
    line(format_args!("{text}"))
}

/// Asks at the terminal with `prompt`, echo off (rpassword reads the controlling
/// terminal and restores it); `what` names the answer in an error.
pub(crate) fn prompt_hidden(
    prompt: &str,
    what: &str,
) -> Result<coffer::secrecy::SecretString, CliError> {
    rpassword::prompt_password(prompt)
        .map(coffer::secrecy::SecretString::from)
        .map_err(|e| CliError::new(format!("cannot read the {what} from the terminal: {e}")))
}

/// `println!` that returns a [`CliError`] instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => { $crate::out::line(format_args!($($arg)*)) };
}

/// `eprintln!` that never panics.
macro_rules! note {
    ($($arg:tt)*) => { $crate::out::note_line(format_args!($($arg)*)) };
}

pub(crate) use {note, out};

pub(crate) use coffer::store::layer::printable;
