//! Writing an [`EnvMap`] out: `.env` files, shell `export` lines, JSON.

use std::path::Path;

use secrecy::ExposeSecret as _;
use zeroize::Zeroizing;

use crate::{EnvMap, Error, Result};

/// How [`EnvWriter`] writes variables.
///
/// # Why [`Format::Dotenv`] refuses some values
///
/// A `.env` file is read by at least three different parsers, and they disagree:
///
/// | in the file          | bash (`set -a; . ./f`) | python-dotenv        | dotenvy              |
/// |----------------------|------------------------|----------------------|----------------------|
/// | `'…'` single quotes  | all literal            | `\\` and `\'` escape | all literal          |
/// | `"…"` double quotes  | `$`, `` ` `` expand    | `\$` stays `\$`      | `$` expands          |
/// | `${X}` anywhere      | (quoted: literal)      | expanded, no escape  | (quoted: literal)    |
/// | carriage return      | kept                   | read as a newline    | kept                 |
///
/// [`Format::Dotenv`] writes each value in single quotes when it holds no `'` and no
/// `\\`, else in double quotes (escaping `\` and `"`) when it holds no `$` and no
/// backtick. Both read back exactly, byte for byte, in all three. A value that neither
/// form can carry, or that python-dotenv would change whatever the quoting (a carriage
/// return, a trailing backslash, `${…}`), is refused with [`Error::NotPortable`] naming
/// the variable and the reason, rather than written in a form one reader changes. Such
/// values go through [`Format::Shell`] (exact in any POSIX shell) or [`Format::Json`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// `NAME='value'` lines that dotenvy, python-dotenv and bash all read back exactly
    /// (see [above](Format) for the values it refuses).
    #[default]
    Dotenv,
    /// `export NAME='value'` lines for a POSIX shell (`. ./file` or `eval`), single quotes
    /// with `'\''` for a quote: every value reads back exactly.
    Shell,
    /// One JSON object of names to values.
    Json,
}

/// Renders an [`EnvMap`] as a `.env` file, shell lines or JSON, and writes files
/// atomically with mode 0600.
///
/// ```
/// use coffer_env::{EnvMap, EnvWriter, Format};
///
/// let mut env = EnvMap::new();
/// env.insert("TOKEN", "a b#c $HOME".into())?;
/// env.insert("QUOTED", "it's".into())?;
/// let text = EnvWriter::new(Format::Dotenv).render(&env)?;
/// assert_eq!(*text, "QUOTED=\"it's\"\nTOKEN='a b#c $HOME'\n");
/// let shell = EnvWriter::new(Format::Shell).render(&env)?;
/// assert_eq!(*shell, "export QUOTED='it'\\''s'\nexport TOKEN='a b#c $HOME'\n");
/// # Ok::<(), coffer_env::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EnvWriter {
    format: Format,
    export: bool,
    force: bool,
}

/// The first line of every `.env` and shell file [`EnvWriter::write_file`] writes: how
/// coffer tells a file it may replace from one it must not.
pub const EXPORT_MARKER: &str =
    "# Written by coffer export; the next export to this path replaces it.\n";

impl EnvWriter {
    /// A writer of `format`.
    pub fn new(format: Format) -> Self {
        Self {
            format,
            export: false,
            force: false,
        }
    }

    /// Starts each `.env` line with `export ` (dotenvy and python-dotenv accept it);
    /// [`Format::Shell`] always does.
    #[must_use]
    pub fn export(mut self, export: bool) -> Self {
        self.export = export;
        self
    }

    /// Lets [`write_file`](Self::write_file) replace any existing regular file, not only
    /// one it wrote itself (`coffer export --force`).
    #[must_use]
    pub fn force(mut self, force: bool) -> Self {
        self.force = force;
        self
    }

    /// The text. It holds the values, so it is zeroized when dropped.
    pub fn render(&self, map: &EnvMap) -> Result<Zeroizing<String>> {
        let mut out = Zeroizing::new(String::new());
        match self.format {
            Format::Json => {
                let object: serde_json::Map<String, serde_json::Value> = map
                    .iter()
                    .map(|(k, v)| (k.to_owned(), v.expose_secret().into()))
                    .collect();
                let mut value = serde_json::Value::Object(object);
                out.push_str(&serde_json::to_string_pretty(&value).unwrap_or_default());
                out.push('\n');
                zeroize_json(&mut value);
            }
            Format::Dotenv | Format::Shell => {
                for (name, value) in map.iter() {
                    if self.export || self.format == Format::Shell {
                        out.push_str("export ");
                    }
                    out.push_str(name);
                    out.push('=');
                    let value = value.expose_secret();
                    if self.format == Format::Shell {
                        push_shell_quoted(&mut out, value);
                    } else {
                        push_dotenv_quoted(&mut out, name, value)?;
                    }
                    out.push('\n');
                }
            }
        }
        Ok(out)
    }

    /// Writes the text to `path` atomically with mode 0600: a new temporary file in the
    /// same folder (created exclusively, so never through a link), fsynced, then renamed
    /// onto `path`. `.env` and shell files start with [`EXPORT_MARKER`].
    ///
    /// Only a regular file or a new path is written. A symbolic link at `path` is refused,
    /// not followed, and so are FIFOs, devices, sockets and directories. An existing file
    /// is replaced only when it starts with [`EXPORT_MARKER`] (JSON carries no marker) or
    /// with [`force`](Self::force). On Linux the replacement is an atomic exchange that is
    /// undone if what it displaced is not the file that was checked, so swapping in a
    /// link or a FIFO while coffer writes does not make it replace one either. On error
    /// the old file is untouched and nothing is left behind.
    pub fn write_file(&self, map: &EnvMap, path: &Path) -> Result<()> {
        let text = self.render(map)?;
        let marked = self.format != Format::Json;
        let mut contents = Zeroizing::new(String::with_capacity(text.len() + 80));
        if marked {
            contents.push_str(EXPORT_MARKER);
        }
        contents.push_str(&text);
        crate::output::replace_regular_file(path, contents.as_bytes(), |existing| {
            if self.force {
                Ok(())
            } else if !marked {
                Err(
                    "it exists, and a JSON export carries no marker coffer could tell its own \
                     files by; pass --force (EnvWriter::force) to replace it"
                        .to_owned(),
                )
            } else if existing.starts_with(EXPORT_MARKER.as_bytes()) {
                Ok(())
            } else {
                Err(
                    "it exists and coffer did not write it (its first line is not coffer's \
                     export marker); pass --force (EnvWriter::force) to replace it"
                        .to_owned(),
                )
            }
        })
    }
}

fn zeroize_json(value: &mut serde_json::Value) {
    if let serde_json::Value::Object(object) = value {
        for (_, v) in object.iter_mut() {
            if let serde_json::Value::String(s) = v {
                zeroize::Zeroize::zeroize(s);
            }
        }
    }
}

/// Why `value` cannot be written portably, if it cannot.
fn not_portable(value: &str) -> Option<&'static str> {
    if value.contains('\r') {
        return Some("it holds a carriage return, which python-dotenv reads as a newline");
    }
    if value.ends_with('\\') {
        return Some(
            "it ends with a backslash, which python-dotenv reads as escaping the closing quote",
        );
    }
    if let Some(at) = value.find("${")
        && value[at..].contains('}')
    {
        return Some("python-dotenv expands ${…} in every value and has no escape for it");
    }
    None
}

fn push_dotenv_quoted(out: &mut String, name: &str, value: &str) -> Result<()> {
    if let Some(reason) = not_portable(value) {
        return Err(Error::NotPortable {
            name: name.to_owned(),
            reason,
        });
    }
    if !value.contains('\'') && !value.contains("\\\\") {
        out.push('\'');
        out.push_str(value);
        out.push('\'');
    } else if !value.contains('$') && !value.contains('`') {
        out.push('"');
        for c in value.chars() {
            if matches!(c, '\\' | '"') {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
    } else {
        return Err(Error::NotPortable {
            name: name.to_owned(),
            reason: "it holds a single quote or a double backslash together with $ or a \
                     backtick, which no quoting reads back the same in bash, python-dotenv \
                     and dotenvy",
        });
    }
    Ok(())
}

/// POSIX single quotes: everything literal, `'` written as `'\''`.
fn push_shell_quoted(out: &mut String, value: &str) {
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dotenv(value: &str) -> Result<String> {
        let mut out = String::new();
        push_dotenv_quoted(&mut out, "X", value).map(|()| out)
    }

    #[test]
    fn quoting_choices() {
        assert_eq!(dotenv("plain").unwrap(), "'plain'");
        assert_eq!(dotenv("$HOME `id` \"q\"").unwrap(), "'$HOME `id` \"q\"'");
        assert_eq!(dotenv("it's").unwrap(), "\"it's\"");
        assert_eq!(dotenv("a\\\\b \"q\"").unwrap(), "\"a\\\\\\\\b \\\"q\\\"\"");
        assert_eq!(dotenv("").unwrap(), "''");
        for bad in ["it's $5", "a\\\\b$", "x\ry", "ends\\", "${HOME}", "'`"] {
            let err = dotenv(bad).unwrap_err().to_string();
            assert!(
                err.contains("value of X") && err.contains("shell or JSON"),
                "{err}"
            );
        }
        // `${` without a closing brace is left alone by python-dotenv.
        assert_eq!(dotenv("a${b").unwrap(), "'a${b'");
    }

    #[test]
    fn shell_quoting() {
        let mut out = String::new();
        push_shell_quoted(&mut out, "it's");
        assert_eq!(out, "'it'\\''s'");
    }
}
