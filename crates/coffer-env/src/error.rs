use std::path::PathBuf;

/// Everything coffer-env can fail with.
///
/// Messages name the variable, the secret or the file and what was wrong with it; they
/// never hold a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A variable name outside `[A-Za-z_][A-Za-z0-9_]*`.
    #[error("environment variable name {name:?} is not valid: {reason}")]
    InvalidName {
        /// The name (cut to 80 characters).
        name: String,
        /// Which rule it broke.
        reason: &'static str,
    },
    /// A value holding a NUL byte, which no process environment can carry.
    #[error("the value of {name} holds a NUL byte, which an environment variable cannot carry")]
    NulInValue {
        /// The variable.
        name: String,
    },
    /// A variable of [`GUARDED_VARIABLES`](crate::GUARDED_VARIABLES), not explicitly
    /// allowed.
    #[error(
        "{name} {risk} (it matches {pattern}), so it is not passed on unless it is \
         allowed by name"
    )]
    GuardedVariable {
        /// The variable.
        name: String,
        /// Why it is guarded.
        risk: crate::Risk,
        /// The pattern of [`GUARDED_VARIABLES`](crate::GUARDED_VARIABLES) it matches.
        pattern: &'static str,
    },
    /// Two sources map to one variable.
    #[error("{first} and {second} both map to the environment variable {name}")]
    Collision {
        /// The variable.
        name: String,
        /// What set it first (`secret openai_api_key`, `literal`, `database 2`).
        first: String,
        /// What tried to set it again.
        second: String,
    },
    /// A value that no `.env` quoting reads back the same in every supported reader.
    #[error(
        "the value of {name} cannot be written to a portable .env file: {reason}; \
         use the shell or JSON format instead"
    )]
    NotPortable {
        /// The variable.
        name: String,
        /// Why (which characters, which reader).
        reason: &'static str,
    },
    /// A database URL part that cannot go into a URL.
    #[error("database URL: {field} {reason}")]
    InvalidDatabase {
        /// The part (`host`, `database`, `path`, …).
        field: &'static str,
        /// What was wrong with it.
        reason: String,
    },
    /// A path [`EnvWriter::write_file`](crate::EnvWriter::write_file) will not write:
    /// a link, something other than a regular file, or a file coffer did not write.
    #[error("will not write {}: {reason}", path.display())]
    Output {
        /// The path.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// The secret store failed.
    #[error(transparent)]
    Store(#[from] coffer_store::Error),
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<coffer_store::transport::DatabaseUrlError> for Error {
    fn from(e: coffer_store::transport::DatabaseUrlError) -> Self {
        Self::InvalidDatabase {
            field: e.field,
            reason: e.reason,
        }
    }
}

impl From<coffer_envelope::Error> for Error {
    fn from(e: coffer_envelope::Error) -> Self {
        match e {
            coffer_envelope::Error::Io { path, source } => Self::Io { path, source },
            other => Self::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(other.to_string()),
            },
        }
    }
}
