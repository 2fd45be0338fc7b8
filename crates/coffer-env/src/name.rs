//! Environment variable names: deriving one from a secret's name, checking them, and
//! the variables that change how a process loads code.

use coffer_store::SecretName;

use crate::{Error, Result};

/// The variable a secret is injected as when its metadata names none: its name
/// upper-cased, with every character outside `[A-Z0-9_]` turned into `_`, and a `_` in
/// front if it would start with a digit.
///
/// ```
/// use coffer_env::derive_env_name;
/// use coffer_store::SecretName;
///
/// let name = SecretName::new("openai_api_key").unwrap();
/// assert_eq!(derive_env_name(&name), "OPENAI_API_KEY");
/// let name = SecretName::new("providers/github/token.v2").unwrap();
/// assert_eq!(derive_env_name(&name), "PROVIDERS_GITHUB_TOKEN_V2");
/// ```
pub fn derive_env_name(name: &SecretName) -> String {
    derive_from_str(name.as_str())
}

/// [`derive_env_name`] over any text (the mapping lives in
/// [`coffer_store::derive_env_name`], shared with the store's environment source).
pub fn derive_from_str(name: &str) -> String {
    coffer_store::derive_env_name(name)
}

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

/// Variables that make a process (or the runtime it starts) load other code: the
/// dynamic loaders' (`LD_*`, `DYLD_*`), the shells' start-up files and options, and the
/// module paths and option variables of common runtimes. [`EnvMap`](crate::EnvMap)
/// refuses them unless allowed, so a secret named `ld_preload` cannot take over a child.
pub const LOADER_VARIABLES: &[&str] = &[
    "BASH_ENV",
    "BASHOPTS",
    "CLASSPATH",
    "ENV",
    "GCONV_PATH",
    "GLIBC_TUNABLES",
    "IFS",
    "JAVA_TOOL_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "_JAVA_OPTIONS",
    "LOCPATH",
    "NLSPATH",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PATH",
    "PERL5DB",
    "PERL5LIB",
    "PERL5OPT",
    "PERLLIB",
    "PROMPT_COMMAND",
    "PS4",
    "PYTHONHOME",
    "PYTHONINSPECT",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONUSERBASE",
    "RUBYLIB",
    "RUBYOPT",
    "SHELLOPTS",
];

/// Prefixes whose every variable is a loader variable (`LD_PRELOAD`, `LD_AUDIT`,
/// `DYLD_INSERT_LIBRARIES`, …).
pub const LOADER_PREFIXES: &[&str] = &["LD_", "DYLD_", "BASH_FUNC_"];

/// Whether `name` changes how a process loads code (see [`LOADER_VARIABLES`]).
///
/// ```
/// assert!(coffer_env::is_loader_variable("LD_PRELOAD"));
/// assert!(coffer_env::is_loader_variable("DYLD_INSERT_LIBRARIES"));
/// assert!(!coffer_env::is_loader_variable("OPENAI_API_KEY"));
/// ```
pub fn is_loader_variable(name: &str) -> bool {
    LOADER_VARIABLES.contains(&name) || LOADER_PREFIXES.iter().any(|p| name.starts_with(p))
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
            assert_eq!(derive_from_str(from), to);
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
