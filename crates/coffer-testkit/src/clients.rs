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
