//! Environment variable names: checking them, and
//! the variables that change what a process runs, where it connects or whom it trusts.

use crate::{Error, Result};

/// Checks that `name` matches `[A-Za-z_][A-Za-z0-9_]*`.
pub fn validate_env_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidName {
            name: name.chars().take(80).collect(),
            reason,
        })
    };
    let mut bytes = name.bytes();
    match bytes.next() {
        None => return bad("it is empty"),
        Some(b) if !(b.is_ascii_alphabetic() || b == b'_') => {
            return bad("it must start with a letter or _");
        }
        Some(_) => {}
    }
    if !bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return bad("it may hold only letters, digits and _");
    }
    Ok(())
}

/// Why a variable needs an explicit allow before coffer puts it into a child's
/// environment (see [`GUARDED_VARIABLES`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Risk {
    /// Makes the dynamic loader load other code (`LD_PRELOAD`, `DYLD_INSERT_LIBRARIES`).
    Loader,
    /// Changes what an interpreter or shell runs at start-up or where it finds modules
    /// (`PYTHONWARNINGS`, `NODE_OPTIONS`, `BASH_ENV`, `PS4`).
    Interpreter,
    /// Makes a program run another program (`GIT_CONFIG_*`, `PAGER`, `EDITOR`, `BROWSER`).
    ProgramHook,
    /// Changes where traffic goes or whom TLS trusts (`HTTPS_PROXY`, `SSL_CERT_FILE`,
    /// `SSLKEYLOGFILE`).
    Traffic,
    /// Changes where programs and their configuration are found (`PATH`, `HOME`).
    Location,
}

impl Risk {
    /// What variables of this kind do, as a sentence fragment.
    pub fn explanation(self) -> &'static str {
        match self {
            Self::Loader => "makes the dynamic loader load other code",
            Self::Interpreter => {
                "changes what an interpreter or shell runs at start-up or where it finds modules"
            }
            Self::ProgramHook => "makes a program run another program",
            Self::Traffic => "changes where traffic goes or whom TLS trusts",
            Self::Location => "changes where programs and their configuration are found",
        }
    }
}

impl std::fmt::Display for Risk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.explanation())
    }
}

/// One entry of [`GUARDED_VARIABLES`]: a name pattern and why it is guarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Guarded {
    /// `NAME` (exactly), `PREFIX*` or `*SUFFIX`, compared without regard to ASCII case
    /// (curl and Python read `https_proxy` as well as `HTTPS_PROXY`).
    pub pattern: &'static str,
    /// Why.
    pub risk: Risk,
}

const fn guard(pattern: &'static str, risk: Risk) -> Guarded {
    Guarded { pattern, risk }
}

/// The variables that change what a program runs, where it connects or whom it trusts.
/// [`EnvMap`](crate::EnvMap) refuses each unless [allowed](crate::EnvMap::allow) by
/// name, so a secret named `pythonwarnings`, `git_config_count` or `ld_preload` cannot
/// take over the child it is given to.
///
/// It is a policy of patterns, not a list of every hook of every program: `PYTHON*`
/// covers the variables a future Python adds, `GIT_*` every `GIT_CONFIG_KEY_n`. The
/// first entry that matches names the reason. Names are compared without regard to
/// ASCII case.
///
/// | reason | patterns |
/// |---|---|
/// | [`Risk::Loader`] | `LD_*`, `DYLD_*`, `GLIBC_TUNABLES`, `LOCPATH`, `NLSPATH` |
/// | [`Risk::Traffic`] | `*_PROXY`, `SSL_CERT_*`, `*_CA_BUNDLE`, `NODE_EXTRA_CA_CERTS`, `SSLKEYLOGFILE` |
/// | [`Risk::Interpreter`] | `PYTHON*`, `NODE_*`, `PERL*`, `RUBY*`, `GEM_*`, `JAVA_TOOL_OPTIONS`, `_JAVA_OPTIONS`, `JDK_JAVA_OPTIONS`, `CLASSPATH`, `LUA_*`, `PHPRC`, `PHP_INI_SCAN_DIR`, `BASH_ENV`, `ENV`, `BASHOPTS`, `SHELLOPTS`, `BASH_FUNC_*`, `PS4`, `PROMPT_COMMAND`, `IFS`, `ZDOTDIR` |
/// | [`Risk::ProgramHook`] | `GIT_*`, `*PAGER` (`PAGER`, `MANPAGER`, `GIT_PAGER`, …), `EDITOR`, `VISUAL`, `BROWSER`, `LESSOPEN`, `LESSCLOSE`, `*_ASKPASS`, `GCONV_PATH` |
/// | [`Risk::Location`] | `PATH`, `HOME`, `XDG_CONFIG_HOME`, `XDG_CONFIG_DIRS` |
pub const GUARDED_VARIABLES: &[Guarded] = &[
    guard("LD_*", Risk::Loader),
    guard("DYLD_*", Risk::Loader),
    guard("GLIBC_TUNABLES", Risk::Loader),
    guard("LOCPATH", Risk::Loader),
    guard("NLSPATH", Risk::Loader),
    guard("*_PROXY", Risk::Traffic),
    guard("SSL_CERT_*", Risk::Traffic),
    guard("*_CA_BUNDLE", Risk::Traffic),
    guard("NODE_EXTRA_CA_CERTS", Risk::Traffic),
    guard("SSLKEYLOGFILE", Risk::Traffic),
    guard("PYTHON*", Risk::Interpreter),
    guard("NODE_*", Risk::Interpreter),
    guard("PERL*", Risk::Interpreter),
    guard("RUBY*", Risk::Interpreter),
    guard("GEM_*", Risk::Interpreter),
    guard("JAVA_TOOL_OPTIONS", Risk::Interpreter),
    guard("_JAVA_OPTIONS", Risk::Interpreter),
    guard("JDK_JAVA_OPTIONS", Risk::Interpreter),
    guard("CLASSPATH", Risk::Interpreter),
    guard("LUA_*", Risk::Interpreter),
    guard("PHPRC", Risk::Interpreter),
    guard("PHP_INI_SCAN_DIR", Risk::Interpreter),
    guard("BASH_ENV", Risk::Interpreter),
    guard("ENV", Risk::Interpreter),
    guard("BASHOPTS", Risk::Interpreter),
    guard("SHELLOPTS", Risk::Interpreter),
    guard("BASH_FUNC_*", Risk::Interpreter),
    guard("PS4", Risk::Interpreter),
    guard("PROMPT_COMMAND", Risk::Interpreter),
    guard("IFS", Risk::Interpreter),
    guard("ZDOTDIR", Risk::Interpreter),
    guard("GIT_*", Risk::ProgramHook),
    guard("*PAGER", Risk::ProgramHook),
    guard("EDITOR", Risk::ProgramHook),
    guard("VISUAL", Risk::ProgramHook),
    guard("BROWSER", Risk::ProgramHook),
    guard("LESSOPEN", Risk::ProgramHook),
    guard("LESSCLOSE", Risk::ProgramHook),
    guard("*_ASKPASS", Risk::ProgramHook),
    guard("GCONV_PATH", Risk::ProgramHook),
    guard("PATH", Risk::Location),
    guard("HOME", Risk::Location),
    guard("XDG_CONFIG_HOME", Risk::Location),
    guard("XDG_CONFIG_DIRS", Risk::Location),
];

/// Whether `name` matches `pattern` (`NAME`, `PREFIX*` or `*SUFFIX`), with
/// `case_insensitive` for ASCII letters.
pub(crate) fn matches_pattern(pattern: &str, name: &str, case_insensitive: bool) -> bool {
    let eq = |a: &str, b: &str| {
        if case_insensitive {
            a.eq_ignore_ascii_case(b)
        } else {
            a == b
        }
    };
    if let Some(prefix) = pattern.strip_suffix('*') {
        name.len() >= prefix.len()
            && name.is_char_boundary(prefix.len())
            && eq(&name[..prefix.len()], prefix)
    } else if let Some(suffix) = pattern.strip_prefix('*') {
        let at = name.len().wrapping_sub(suffix.len());
        name.len() >= suffix.len() && name.is_char_boundary(at) && eq(&name[at..], suffix)
    } else {
        eq(pattern, name)
    }
}

/// The entry of [`GUARDED_VARIABLES`] that `name` falls under, if any.
///
/// ```
/// use coffer_env::{Risk, guarded};
///
/// assert_eq!(guarded("LD_PRELOAD").unwrap().risk, Risk::Loader);
/// assert_eq!(guarded("pythonwarnings").unwrap().risk, Risk::Interpreter);
/// assert_eq!(guarded("GIT_CONFIG_COUNT").unwrap().risk, Risk::ProgramHook);
/// assert_eq!(guarded("https_proxy").unwrap().pattern, "*_PROXY");
/// assert!(guarded("OPENAI_API_KEY").is_none());
/// assert!(guarded("GITHUB_TOKEN").is_none());
/// ```
pub fn guarded(name: &str) -> Option<&'static Guarded> {
    GUARDED_VARIABLES
        .iter()
        .find(|g| matches_pattern(g.pattern, name, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivation() {
        for (from, to) in [
            ("openai_api_key", "OPENAI_API_KEY"),
            ("github.token", "GITHUB_TOKEN"),
            ("a/b-c:d", "A_B_C_D"),
            ("1password", "_1PASSWORD"),
            ("_x", "_X"),
        ] {
            assert_eq!(coffer_store::derive_env_name(from), to);
            validate_env_name(to).unwrap();
        }
    }

    #[test]
    fn validation() {
        for ok in ["A", "_", "a_b1", "PATH_2"] {
            validate_env_name(ok).unwrap();
        }
        for bad in ["", "1A", "A-B", "A B", "A=B", "Ä", "A\0"] {
            let err = validate_env_name(bad).unwrap_err().to_string();
            assert!(err.contains("is not valid"), "{err}");
        }
    }
}

#[cfg(test)]
mod policy_tests {
    use super::*;

    #[test]
    fn patterns() {
        for (name, risk) in [
            ("LD_AUDIT", Risk::Loader),
            ("dyld_insert_libraries", Risk::Loader),
            ("PYTHONWARNINGS", Risk::Interpreter),
            ("NODE_OPTIONS", Risk::Interpreter),
            ("NODE_EXTRA_CA_CERTS", Risk::Traffic),
            ("ENV", Risk::Interpreter),
            ("BASH_FUNC_ls%%", Risk::Interpreter),
            ("GIT_CONFIG_VALUE_0", Risk::ProgramHook),
            ("MANPAGER", Risk::ProgramHook),
            ("SUDO_ASKPASS", Risk::ProgramHook),
            ("no_proxy", Risk::Traffic),
            ("REQUESTS_CA_BUNDLE", Risk::Traffic),
            ("path", Risk::Location),
        ] {
            assert_eq!(guarded(name).map(|g| g.risk), Some(risk), "{name}");
        }
        for name in [
            "OPENAI_API_KEY",
            "GITHUB_TOKEN",
            "ENVIRONMENT",
            "PATHS",
            "HOMER",
            "É",
        ] {
            assert!(guarded(name).is_none(), "{name}");
        }
    }
}
