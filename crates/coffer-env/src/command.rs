//! Putting an [`EnvMap`] into a child process's environment.

use std::ffi::OsStr;

use secrecy::ExposeSecret as _;

use crate::EnvMap;

/// What a clean environment keeps from the parent's by default: where programs are,
/// who and where the user is, language, terminal and time zone. An entry ending in `*`
/// keeps every variable with that prefix.
pub const CLEAN_ENV_ALLOWLIST: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "LANGUAGE",
    "LC_*",
    "TERM",
    "COLORTERM",
    "NO_COLOR",
    "TZ",
    "TMPDIR",
];

/// What a child never inherits from its parent unless the [`EnvMap`] sets it or
/// [`EnvMap::pass_through`] keeps it: the credentials that open a coffer store and its
/// keyring. Every `COFFER_*` variable (`COFFER_MASTER_KEY`, `COFFER_PASSPHRASE`,
/// `COFFER_STORE`, which may hold a database password, `COFFER_KEYRING`), Vault's token
/// and AppRole credentials, and the Postgres password libpq and sqlx read. With them a
/// child could open the store itself and read any scope, whatever `--scope` and `--only`
/// chose for it.
pub const CREDENTIAL_VARIABLES: &[&str] = &[
    "COFFER_*",
    "VAULT_TOKEN",
    "VAULT_ROLE_ID",
    "VAULT_SECRET_ID",
    "PGPASSWORD",
];

/// A command whose environment can be set: `std::process::Command`, and
/// `tokio::process::Command` with the `tokio` feature.
pub trait CommandEnv {
    /// Removes every variable, inherited ones included.
    fn clear_env(&mut self);
    /// Sets one variable.
    fn set_env(&mut self, name: &str, value: &OsStr);
    /// Removes one inherited variable.
    fn remove_env(&mut self, name: &OsStr);
}

impl CommandEnv for std::process::Command {
    fn clear_env(&mut self) {
        self.env_clear();
    }

    fn set_env(&mut self, name: &str, value: &OsStr) {
        self.env(name, value);
    }

    fn remove_env(&mut self, name: &OsStr) {
        self.env_remove(name);
    }
}

#[cfg(feature = "tokio")]
impl CommandEnv for tokio::process::Command {
    fn clear_env(&mut self) {
        self.env_clear();
    }

    fn set_env(&mut self, name: &str, value: &OsStr) {
        self.env(name, value);
    }

    fn remove_env(&mut self, name: &OsStr) {
        self.env_remove(name);
    }
}

fn keeps(allowlist: &[&str], name: &str) -> bool {
    allowlist.iter().any(|entry| match entry.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => *entry == name,
    })
}

impl EnvMap {
    /// Adds the variables to `cmd`'s environment, on top of what it inherits minus what
    /// [`scrubs`](EnvMap::scrubs) names ([`CREDENTIAL_VARIABLES`] by default). The
    /// parent's own environment is never touched.
    ///
    /// ```
    /// use coffer_env::EnvMap;
    ///
    /// let mut env = EnvMap::new();
    /// env.insert("GREETING", "hello from coffer".into())?;
    /// let mut cmd = std::process::Command::new("sh");
    /// cmd.args(["-c", "printf %s \"$GREETING\""]);
    /// env.apply(&mut cmd);
    /// let out = cmd.output().unwrap();
    /// assert_eq!(out.stdout, b"hello from coffer");
    /// assert!(std::env::var_os("GREETING").is_none());
    /// # Ok::<(), coffer_env::Error>(())
    /// ```
    pub fn apply<C: CommandEnv + ?Sized>(&self, cmd: &mut C) {
        for (name, _) in std::env::vars_os() {
            // A name that is not UTF-8 cannot match a pattern or be set by the map.
            if name.to_str().is_some_and(|n| self.scrubs(n)) {
                cmd.remove_env(&name);
            }
        }
        for (name, value) in self.iter() {
            cmd.set_env(name, OsStr::new(value.expose_secret()));
        }
    }

    /// Gives `cmd` a clean environment: only the parent's variables that `allowlist`
    /// names (see [`CLEAN_ENV_ALLOWLIST`]), then these.
    pub fn apply_clean<C: CommandEnv + ?Sized>(&self, cmd: &mut C, allowlist: &[&str]) {
        cmd.clear_env();
        for (name, value) in std::env::vars_os() {
            if let Some(name) = name.to_str()
                && keeps(allowlist, name)
                && !self.scrubs(name)
            {
                cmd.set_env(name, &value);
            }
        }
        self.apply(cmd);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn allowlist_prefixes() {
        assert!(super::keeps(&["LC_*", "PATH"], "LC_ALL"));
        assert!(super::keeps(&["LC_*", "PATH"], "PATH"));
        assert!(!super::keeps(&["LC_*", "PATH"], "PATHX"));
    }
}
