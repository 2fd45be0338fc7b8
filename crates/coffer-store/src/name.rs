use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Longest scope, in bytes.
pub const MAX_SCOPE_LEN: usize = 128;
/// Longest secret name, in bytes.
pub const MAX_NAME_LEN: usize = 255;

/// The environment variable a secret name maps to when its metadata names none: the
/// name upper-cased, every character outside `[A-Z0-9_]` turned into `_`, and a `_` in
/// front if it would start with a digit. One mapping for coffer-env's injection and the
/// environment source (`layer::EnvStore`, feature `env`).
///
/// ```
/// assert_eq!(coffer_store::derive_env_name("openai_api_key"), "OPENAI_API_KEY");
/// assert_eq!(coffer_store::derive_env_name("github/token.v2"), "GITHUB_TOKEN_V2");
/// assert_eq!(coffer_store::derive_env_name("2fa-seed"), "_2FA_SEED");
/// ```
pub fn derive_env_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    if name.starts_with(|c: char| c.is_ascii_digit()) {
        out.push('_');
    }
    out.extend(name.chars().map(|c| {
        let c = c.to_ascii_uppercase();
        if c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_' {
            c
        } else {
            '_'
        }
    }));
    out
}

fn cut(text: &str) -> String {
    text.chars().take(80).collect()
}

fn invalid(what: &'static str, text: &str, rule: &'static str) -> Error {
    Error::InvalidName {
        what,
        value: cut(text),
        rule,
    }
}

/// The tenant (or user) a secret belongs to. Every store call names one; stores never
/// let one scope see another's secrets, even under the same name.
///
/// Rules: 1–128 characters of `[A-Za-z0-9_.@-]`, not starting with `.` (so it is also a
/// safe path segment, a Vault path component and a Postgres setting value).
///
/// ```
/// use coffer_store::Scope;
/// assert!(Scope::new("tenant-42").is_ok());
/// assert!(Scope::new("").is_err());
/// assert!(Scope::new("a/b").is_err());
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Scope(String);

impl Scope {
    /// Validates `scope`.
    pub fn new(scope: impl Into<String>) -> Result<Self> {
        let scope = scope.into();
        if scope.is_empty() {
            return Err(invalid("scope", &scope, "must not be empty"));
        }
        if scope.len() > MAX_SCOPE_LEN {
            return Err(invalid("scope", &scope, "must be at most 128 characters"));
        }
        if !scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'@' | b'-'))
        {
            return Err(invalid(
                "scope",
                &scope,
                "may contain only letters, digits and _ . @ -",
            ));
        }
        if scope.starts_with('.') {
            return Err(invalid("scope", &scope, "must not start with '.'"));
        }
        Ok(Self(scope))
    }

    /// The scope as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A secret's name within its scope.
///
/// Rules: 1–255 characters of `[A-Za-z0-9_.-/]`; `/` separates path segments, which
/// must not be empty (no leading or trailing `/`, no `//`) and must not be `.` or `..`.
///
/// ```
/// use coffer_store::SecretName;
/// assert!(SecretName::new("providers/openai/api_key").is_ok());
/// let err = SecretName::new("a/../b").unwrap_err();
/// assert!(err.to_string().contains(".."));
/// ```
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SecretName(String);

impl SecretName {
    /// Validates `name`.
    pub fn new(name: impl Into<String>) -> Result<Self> {
        let name = name.into();
        check_name_chars("secret name", &name)?;
        if name.is_empty() {
            return Err(invalid("secret name", &name, "must not be empty"));
        }
        if name.len() > MAX_NAME_LEN {
            return Err(invalid(
                "secret name",
                &name,
                "must be at most 255 characters",
            ));
        }
        if name.starts_with('/') {
            return Err(invalid("secret name", &name, "must not start with '/'"));
        }
        if name.ends_with('/') {
            return Err(invalid("secret name", &name, "must not end with '/'"));
        }
        for segment in name.split('/') {
            match segment {
                "" => return Err(invalid("secret name", &name, "must not contain '//'")),
                ".." => {
                    return Err(invalid(
                        "secret name",
                        &name,
                        "must not contain a '..' segment",
                    ));
                }
                "." => {
                    return Err(invalid(
                        "secret name",
                        &name,
                        "must not contain a '.' segment",
                    ));
                }
                _ => {}
            }
        }
        Ok(Self(name))
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn check_name_chars(what: &'static str, text: &str) -> Result<()> {
    if text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-' | b'/'))
    {
        Ok(())
    } else {
        Err(invalid(
            what,
            text,
            "may contain only letters, digits and _ . - /",
        ))
    }
}

/// Validates a list prefix: the characters of a name, at most 255 of them (it may be
/// empty and may end with `/`).
pub(crate) fn check_prefix(prefix: &str) -> Result<()> {
    check_name_chars("prefix", prefix)?;
    if prefix.len() > MAX_NAME_LEN {
        return Err(invalid("prefix", prefix, "must be at most 255 characters"));
    }
    Ok(())
}

macro_rules! string_newtype {
    ($ty:ident) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl AsRef<str> for $ty {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $ty {
            type Error = Error;
            fn try_from(value: String) -> Result<Self> {
                Self::new(value)
            }
        }
        impl TryFrom<&str> for $ty {
            type Error = Error;
            fn try_from(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }
        impl std::str::FromStr for $ty {
            type Err = Error;
            fn from_str(value: &str) -> Result<Self> {
                Self::new(value)
            }
        }
        impl From<$ty> for String {
            fn from(value: $ty) -> String {
                value.0
            }
        }
    };
}
string_newtype!(Scope);
string_newtype!(SecretName);

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(e: Error) -> &'static str {
        match e {
            Error::InvalidName { rule, .. } => rule,
            other => panic!("{other}"),
        }
    }

    #[test]
    fn names_follow_the_rules() {
        for ok in ["a", "A-z_0.9", "x/y/z", "a.b", "a..b", &"n".repeat(255)] {
            assert!(SecretName::new(ok).is_ok(), "{ok}");
        }
        let cases = [
            ("", "must not be empty"),
            ("/a", "must not start with '/'"),
            ("a/", "must not end with '/'"),
            ("a//b", "must not contain '//'"),
            ("../a", "must not contain a '..' segment"),
            ("a/./b", "must not contain a '.' segment"),
            ("a b", "may contain only letters, digits and _ . - /"),
            ("é", "may contain only letters, digits and _ . - /"),
        ];
        for (bad, expected) in cases {
            assert_eq!(rule(SecretName::new(bad).unwrap_err()), expected, "{bad:?}");
        }
        assert_eq!(
            rule(SecretName::new("n".repeat(256)).unwrap_err()),
            "must be at most 255 characters"
        );
    }

    #[test]
    fn scopes_follow_the_rules() {
        assert!(Scope::new("user@example.com").is_ok());
        assert_eq!(rule(Scope::new("").unwrap_err()), "must not be empty");
        assert_eq!(
            rule(Scope::new(".hidden").unwrap_err()),
            "must not start with '.'"
        );
        assert_eq!(
            rule(Scope::new("a/b").unwrap_err()),
            "may contain only letters, digits and _ . @ -"
        );
        assert_eq!(
            rule(Scope::new("s".repeat(129)).unwrap_err()),
            "must be at most 128 characters"
        );
    }

    #[test]
    fn serde_validates() {
        assert!(serde_json::from_str::<SecretName>("\"a//b\"").is_err());
        let n: SecretName = serde_json::from_str("\"ok/name\"").unwrap();
        assert_eq!(serde_json::to_string(&n).unwrap(), "\"ok/name\"");
    }
}
