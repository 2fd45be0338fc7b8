//! The statement check every call goes through before it reaches a database: exactly
//! one statement, and in read-only mode only statements that read.
//!
//! This is a lexer, not a parser: it skips comments, quoted strings, quoted identifiers
//! and (Postgres) dollar-quoted bodies, so a `;` or a keyword inside them counts for
//! nothing. It is one layer of several: the database also runs each read-only call in a
//! read-only transaction (or a read-only SQLite connection), and the safest setup gives
//! the broker a database role that can only read.

use crate::{BrokerError, DbKind, Mode};

/// What a statement starts with, upper-cased (`SELECT`, `WITH`, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Checked {
    /// The first keyword.
    pub(crate) keyword: String,
    /// The statement names a MySQL user variable (`@x`), which lives on in the session:
    /// its connection is closed after the call rather than reused.
    pub(crate) touches_session: bool,
}

/// Statements a read-only call may start with.
const READ_KEYWORDS: &[&str] = &[
    "SELECT", "WITH", "VALUES", "TABLE", "SHOW", "EXPLAIN", "DESCRIBE", "DESC",
];

/// Statements no call may run: transaction and session control (the broker owns the
/// transaction and the session), and statements that run code or programs on the server
/// or touch its files.
const NEVER_KEYWORDS: &[&str] = &[
    "BEGIN",
    "START",
    "COMMIT",
    "END",
    "ROLLBACK",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "SET",
    "RESET",
    "DISCARD",
    "LOCK",
    "UNLOCK",
    "COPY",
    "DO",
    "CALL",
    "LOAD",
    "ATTACH",
    "DETACH",
    "PRAGMA",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "HANDLER",
    "INSTALL",
    "UNINSTALL",
    "SHUTDOWN",
    "KILL",
    "GRANT",
    "REVOKE",
    "USE",
    "VACUUM",
    "CHECKPOINT",
    "CLUSTER",
    "REINDEX",
    "SECURITY",
    "ALTER",
    "CREATE",
    "DROP",
    "TRUNCATE",
    "RENAME",
    "FLUSH",
    "PURGE",
    "CHANGE",
    "XA",
];

/// Words that anywhere outside strings make a MySQL statement write a server file.
const MYSQL_FILE_WORDS: &[&str] = &["OUTFILE", "DUMPFILE"];

/// The longest statement accepted.
pub(crate) const MAX_SQL_LEN: usize = 1 << 20;

/// Checks `sql` for `kind` under `mode`.
pub(crate) fn check(sql: &str, kind: DbKind, mode: Mode) -> Result<Checked, BrokerError> {
    let reject = |reason: String| Err(BrokerError::Rejected { reason });
    if sql.len() > MAX_SQL_LEN {
        return reject(format!(
            "the statement is {} bytes; the limit is {MAX_SQL_LEN}",
            sql.len()
        ));
    }
    if sql.contains('\0') {
        return reject("the statement holds a NUL byte".into());
    }
    let words = lex(sql, kind)?;
    let Some(first) = words.first() else {
        return reject("the statement is empty".into());
    };
    let keyword = first.text.clone();
    if words.iter().any(|w| w.text == ";") {
        let after_semicolon = words
            .iter()
            .skip_while(|w| w.text != ";")
            .any(|w| w.text != ";");
        if after_semicolon || words.iter().filter(|w| w.text == ";").count() > 1 {
            return reject("exactly one statement per call: the text holds more than one".into());
        }
    }
    if NEVER_KEYWORDS.contains(&keyword.as_str()) && !(mode == Mode::ReadWrite && is_ddl(&keyword))
    {
        return reject(format!(
            "{keyword} statements are not run through the broker (it manages transactions \
             and sessions itself and runs no server-side programs)"
        ));
    }
    if mode == Mode::ReadOnly && !READ_KEYWORDS.contains(&keyword.as_str()) {
        return reject(format!(
            "the connection is read-only: {keyword} is not a reading statement \
             (allowed: {})",
            READ_KEYWORDS.join(", ")
        ));
    }
    if kind == DbKind::Mysql
        && let Some(w) = words
            .iter()
            .find(|w| MYSQL_FILE_WORDS.contains(&w.text.as_str()))
    {
        return reject(format!("{} writes a file on the server", w.text));
    }
    let touches_session = kind == DbKind::Mysql && words.iter().any(|w| w.text == "@");
    Ok(Checked {
        keyword,
        touches_session,
    })
}

/// Schema changes a read-write connection may make.
fn is_ddl(keyword: &str) -> bool {
    matches!(keyword, "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME")
}

#[derive(Debug)]
struct Word {
    text: String,
}

/// The bare words (upper-cased) and `;`s of `sql`, outside comments and quotes.
fn lex(sql: &str, kind: DbKind) -> Result<Vec<Word>, BrokerError> {
    let unterminated = |what: &str| BrokerError::Rejected {
        reason: format!("the statement has an unterminated {what}"),
    };
    let b = sql.as_bytes();
    let mut words = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                i = find_from(b, i, b"\n").map_or(b.len(), |e| e + 1);
            }
            b'#' if kind == DbKind::Mysql => {
                i = find_from(b, i, b"\n").map_or(b.len(), |e| e + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // Postgres nests block comments; MySQL and SQLite do not.
                let mut depth = 1;
                let mut j = i + 2;
                while depth > 0 {
                    if j + 1 >= b.len() {
                        return Err(unterminated("comment"));
                    }
                    if b[j] == b'*' && b[j + 1] == b'/' {
                        depth -= 1;
                        j += 2;
                    } else if kind == DbKind::Postgres && b[j] == b'/' && b[j + 1] == b'*' {
                        depth += 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                // MySQL runs `/*! … */` comments as code: refuse them.
                if kind == DbKind::Mysql && b.get(i + 2) == Some(&b'!') {
                    return Err(BrokerError::Rejected {
                        reason: "MySQL executable comments (/*! … */) are not accepted".into(),
                    });
                }
                i = j;
            }
            b'\'' | b'"' | b'`' => {
                i = skip_quoted(b, i, kind).ok_or_else(|| unterminated("quoted string"))?;
            }
            b'$' if kind == DbKind::Postgres => {
                // $tag$ … $tag$, or a $1 parameter.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&x| !(x.is_ascii_alphanumeric() || x == b'_'))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e) if b[e] == b'$' && !b[i + 1].is_ascii_digit() => {
                        let tag = &b[i..=e];
                        let close = find_from(b, e + 1, tag)
                            .ok_or_else(|| unterminated("dollar-quoted string"))?;
                        i = close + tag.len();
                    }
                    _ => i += 1,
                }
            }
            b';' | b'@' => {
                words.push(Word {
                    text: char::from(c).to_string(),
                });
                i += 1;
            }
            c if c.is_ascii_alphabetic() || c == b'_' => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_' || b[i] == b'$')
                {
                    i += 1;
                }
                words.push(Word {
                    text: sql[start..i].to_ascii_uppercase(),
                });
            }
            _ => i += 1,
        }
    }
    Ok(words)
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The index after the quoted run starting at `start`. Doubled quotes escape; MySQL
/// also escapes with a backslash inside strings.
fn skip_quoted(b: &[u8], start: usize, kind: DbKind) -> Option<usize> {
    let q = b[start];
    let mut j = start + 1;
    while j < b.len() {
        if kind == DbKind::Mysql && q != b'`' && b[j] == b'\\' {
            j += 2;
            continue;
        }
        if b[j] == q {
            if b.get(j + 1) == Some(&q) {
                j += 2;
                continue;
            }
            return Some(j + 1);
        }
        j += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(sql: &str, kind: DbKind) -> String {
        check(sql, kind, Mode::ReadOnly)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .keyword
    }

    fn refused(sql: &str, kind: DbKind, mode: Mode) -> String {
        match check(sql, kind, mode) {
            Err(BrokerError::Rejected { reason }) => reason,
            other => panic!("{sql}: {other:?}"),
        }
    }

    #[test]
    fn reads_pass() {
        for kind in [DbKind::Postgres, DbKind::Mysql, DbKind::Sqlite] {
            assert_eq!(ok("  select 1", kind), "SELECT");
            assert_eq!(ok("/* c */ -- x\n SELECT ';' ;", kind), "SELECT");
            assert_eq!(ok("WITH a AS (SELECT 1) SELECT * FROM a", kind), "WITH");
        }
        assert_eq!(
            ok("SELECT $$;$$, $t$ ; $t$, $1", DbKind::Postgres),
            "SELECT"
        );
        assert_eq!(ok("SELECT 'it\\'s;' # c;\n", DbKind::Mysql), "SELECT");
        let user_var = check("SELECT @x := 1", DbKind::Mysql, Mode::ReadOnly).unwrap();
        assert!(user_var.touches_session);
        let in_string = check("SELECT '@x'", DbKind::Mysql, Mode::ReadOnly).unwrap();
        assert!(!in_string.touches_session);
    }

    #[test]
    fn bypasses_are_refused() {
        let ro = Mode::ReadOnly;
        for kind in [DbKind::Postgres, DbKind::Mysql, DbKind::Sqlite] {
            for sql in [
                "COMMIT; DROP TABLE t",
                "SELECT 1; DELETE FROM t",
                "/*x*/ DELETE FROM t",
                "SET TRANSACTION READ WRITE",
                "SET default_transaction_read_only = off",
                "SET ROLE postgres",
                "COPY t TO PROGRAM 'id'",
                "DO $$ BEGIN DELETE FROM t; END $$",
                "PRAGMA query_only = 0",
                "ATTACH DATABASE '/tmp/x' AS x",
                "",
                "-- only a comment",
            ] {
                refused(sql, kind, ro);
            }
        }
        assert!(
            refused("SELECT * FROM t INTO OUTFILE '/tmp/x'", DbKind::Mysql, ro).contains("file")
        );
        refused("/*! DELETE FROM t */ SELECT 1", DbKind::Mysql, ro);
        refused("SELECT '", DbKind::Postgres, ro);
        refused("SELECT $a$ x", DbKind::Postgres, ro);
        // Read-write allows writes and schema changes, still one at a time.
        check(
            "DELETE FROM t WHERE id = $1",
            DbKind::Postgres,
            Mode::ReadWrite,
        )
        .unwrap();
        check("CREATE TABLE x (id int)", DbKind::Sqlite, Mode::ReadWrite).unwrap();
        refused("COMMIT", DbKind::Postgres, Mode::ReadWrite);
        refused(
            "DELETE FROM t; DELETE FROM u",
            DbKind::Sqlite,
            Mode::ReadWrite,
        );
    }
}
