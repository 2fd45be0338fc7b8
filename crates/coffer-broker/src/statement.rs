//! The statement check every call goes through before it reaches a database: exactly
//! one statement, and in read-only mode only statements that read.
//!
//! This is the second layer, not the first. The first is the database engine itself:
//! SQLite connections run under an authorizer and limits that refuse `ATTACH`, writes,
//! temp objects and connection-changing `PRAGMA`s whatever the text says
//! (`crate::sqlite`); Postgres and MySQL calls run in a read-only transaction under a
//! role the broker checked at connect for privileges that escape it
//! (`crate::privileges`), and their extended protocol takes one statement per prepare.
//!
//! The lexer agrees with each server on what is code, so that no keyword or `;` can hide
//! from it: comments (`--` is a comment in MySQL only when a space, a control character
//! or the end follows; Postgres nests `/* */`), quoted strings (backslash escapes in
//! MySQL unless `NO_BACKSLASH_ESCAPES`, and in Postgres `E'…'` strings), quoted
//! identifiers (`"…"`, MySQL and SQLite `` `…` ``, SQLite `[…]`, which ends at the first
//! `]` whatever quotes it holds), Postgres dollar quotes, and MySQL's executable comments
//! (`/*! … */`, `/*M! … */`), which are code to the server and are refused. Quoted
//! identifiers count as words, so `"pg_read_file"(…)` is caught like `pg_read_file(…)`.
//!
//! A hand-written lexer rather than sqlparser's tokenizer: the check needs each server's
//! own reading of the cases above (MariaDB's `/*M!`, MySQL's `--1`, SQLite's `[…]`, the
//! server's string-escape mode), and each is pinned by a test below.

use crate::{BrokerError, Engine, Mode};

/// How one server reads SQL text: its kind and, where the server's settings change how a
/// string ends, whether a backslash escapes a quote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dialect {
    /// The database kind.
    pub(crate) kind: Engine,
    /// A backslash escapes the next character in `'…'` (MySQL without
    /// `NO_BACKSLASH_ESCAPES`; Postgres with `standard_conforming_strings = off`).
    pub(crate) backslash_escapes: bool,
}

impl Dialect {
    /// The server's defaults for `kind`.
    pub(crate) fn of(kind: Engine) -> Self {
        Self {
            kind,
            backslash_escapes: kind == Engine::Mysql,
        }
    }
}

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
    "DECLARE",
    "FETCH",
    "MOVE",
    "CLOSE",
    "IMPORT",
    "BINLOG",
    "CACHE",
];

/// Words that anywhere outside strings make a MySQL statement write a server file.
const MYSQL_FILE_WORDS: &[&str] = &["OUTFILE", "DUMPFILE"];

/// Postgres functions no call may run: other databases (`dblink`), other sessions,
/// server files and configuration, statistics resets, large objects (server files).
/// A name ending in `*` is a prefix.
const PG_DENIED_FUNCTIONS: &[&str] = &[
    "DBLINK*",
    "PG_TERMINATE_BACKEND",
    "PG_CANCEL_BACKEND",
    "PG_RELOAD_CONF",
    "PG_ROTATE_LOGFILE",
    "PG_PROMOTE",
    "PG_SWITCH_WAL",
    "PG_CREATE_RESTORE_POINT",
    "PG_LOGICAL_EMIT_MESSAGE",
    "PG_READ_FILE",
    "PG_READ_BINARY_FILE",
    "PG_FILE_*",
    "PG_LS_*",
    "PG_STAT_RESET*",
    "PG_STAT_STATEMENTS_RESET",
    "LO_*",
    "LOREAD",
    "LOWRITE",
    "PG_NOTIFY",
];

/// Postgres functions a read-only call may not run (a read-write call's settings are
/// reset after it).
const PG_READ_ONLY_DENIED_FUNCTIONS: &[&str] = &["SET_CONFIG"];

/// MySQL functions no call may run: server files, password hashing (a guessing oracle),
/// and the usual command-running UDFs.
const MYSQL_DENIED_FUNCTIONS: &[&str] = &[
    "LOAD_FILE",
    "PASSWORD",
    "OLD_PASSWORD",
    "SYS_EXEC",
    "SYS_EVAL",
];

/// SQLite functions no call may run; the authorizer (`crate::sqlite`) refuses the same
/// list in the engine. Most are not in the library; refused should a build carry them.
pub(crate) const SQLITE_DENIED_FUNCTIONS: &[&str] = &[
    "LOAD_EXTENSION",
    "READFILE",
    "WRITEFILE",
    "EDIT",
    "FTS3_TOKENIZER",
];

/// The longest statement accepted.
pub(crate) const MAX_SQL_LEN: usize = 1 << 20;

fn rejected(reason: impl Into<String>) -> BrokerError {
    BrokerError::Rejected {
        reason: reason.into(),
    }
}

/// Checks `sql` as `dialect` reads it under `mode`.
pub(crate) fn check(sql: &str, dialect: Dialect, mode: Mode) -> Result<Checked, BrokerError> {
    let kind = dialect.kind;
    if sql.len() > MAX_SQL_LEN {
        return Err(rejected(format!(
            "the statement is {} bytes; the limit is {MAX_SQL_LEN}",
            sql.len()
        )));
    }
    if sql.contains('\0') {
        return Err(rejected("the statement holds a NUL byte"));
    }
    let tokens = lex(sql, dialect)?;
    let mut words = tokens.iter().filter_map(Token::word);
    let Some(first) = words.next() else {
        return Err(rejected("the statement is empty"));
    };
    if first.quoted {
        return Err(rejected("the statement must start with a keyword"));
    }
    let keyword = first.text.clone();
    let semicolons = tokens.iter().filter(|t| t.is_punct(b';')).count();
    if semicolons > 0 {
        let after = tokens
            .iter()
            .skip_while(|t| !t.is_punct(b';'))
            .any(|t| !t.is_punct(b';'));
        if after || semicolons > 1 {
            return Err(rejected(
                "exactly one statement per call: the text holds more than one",
            ));
        }
    }
    if NEVER_KEYWORDS.contains(&keyword.as_str()) && !(mode == Mode::ReadWrite && is_ddl(&keyword))
    {
        return Err(rejected(format!(
            "{keyword} statements are not run through the broker (it manages transactions \
             and sessions itself and runs no server-side programs)"
        )));
    }
    if mode == Mode::ReadOnly && !READ_KEYWORDS.contains(&keyword.as_str()) {
        return Err(rejected(format!(
            "the connection is read-only: {keyword} is not a reading statement \
             (allowed: {})",
            READ_KEYWORDS.join(", ")
        )));
    }
    let denied: &[&[&str]] = match (kind, mode) {
        (Engine::Postgres, Mode::ReadOnly) => &[PG_DENIED_FUNCTIONS, PG_READ_ONLY_DENIED_FUNCTIONS],
        (Engine::Postgres, _) => &[PG_DENIED_FUNCTIONS],
        (Engine::Mysql, _) => &[MYSQL_DENIED_FUNCTIONS],
        (Engine::Sqlite, _) => &[SQLITE_DENIED_FUNCTIONS],
    };
    for (i, t) in tokens.iter().enumerate() {
        let Some(w) = t.word() else { continue };
        let called = tokens.get(i + 1).is_some_and(|n| n.is_punct(b'('));
        if called && denied.iter().any(|list| matches_any(&w.text, list)) {
            return Err(rejected(format!(
                "{} is not run through the broker (it reaches beyond the connection: \
                 other sessions, server files, settings or credentials)",
                w.text.to_ascii_lowercase()
            )));
        }
    }
    if kind == Engine::Mysql {
        if let Some(w) = words_of(&tokens).find(|w| MYSQL_FILE_WORDS.contains(&w.text.as_str())) {
            return Err(rejected(format!("{} writes a file on the server", w.text)));
        }
        let second = words_of(&tokens).nth(1).map(|w| w.text.as_str());
        let third = words_of(&tokens).nth(2).map(|w| w.text.as_str());
        if keyword == "SHOW"
            && (second == Some("GRANTS") || (second == Some("CREATE") && third == Some("USER")))
        {
            return Err(rejected(
                "SHOW GRANTS and SHOW CREATE USER are not run through the broker (they show \
                 the account's credentials)",
            ));
        }
        // The `mysql` schema holds every account's password hash.
        for (i, t) in tokens.iter().enumerate() {
            if t.word().is_some_and(|w| w.text == "MYSQL")
                && tokens.get(i + 1).is_some_and(|n| n.is_punct(b'.'))
            {
                return Err(rejected(
                    "the mysql system schema is not read through the broker (it holds the \
                     server's accounts and password hashes)",
                ));
            }
        }
    }
    let touches_session = kind == Engine::Mysql && tokens.iter().any(|t| t.is_punct(b'@'));
    Ok(Checked {
        keyword,
        touches_session,
    })
}

fn words_of(tokens: &[Token]) -> impl Iterator<Item = &Word> {
    tokens.iter().filter_map(Token::word)
}

fn matches_any(word: &str, list: &[&str]) -> bool {
    list.iter().any(|pattern| match pattern.strip_suffix('*') {
        Some(prefix) => word.starts_with(prefix),
        None => word == *pattern,
    })
}

/// Schema changes a read-write connection may make.
fn is_ddl(keyword: &str) -> bool {
    matches!(keyword, "CREATE" | "ALTER" | "DROP" | "TRUNCATE" | "RENAME")
}

/// A word of the statement: a keyword or a name, upper-cased.
#[derive(Debug)]
struct Word {
    text: String,
    /// Written as a quoted identifier.
    quoted: bool,
}

/// What the lexer keeps: words, and the punctuation the checks look at.
#[derive(Debug)]
enum Token {
    Word(Word),
    /// `;`, `@`, `.` or `(`.
    Punct(u8),
}

impl Token {
    fn word(&self) -> Option<&Word> {
        match self {
            Self::Word(w) => Some(w),
            Self::Punct(_) => None,
        }
    }

    fn is_punct(&self, c: u8) -> bool {
        matches!(self, Self::Punct(p) if *p == c)
    }
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The tokens of `sql` outside comments and string literals, as `dialect` reads it.
fn lex(sql: &str, dialect: Dialect) -> Result<Vec<Token>, BrokerError> {
    let kind = dialect.kind;
    let unterminated = |what: &str| rejected(format!("the statement has an unterminated {what}"));
    let b = sql.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match c {
            b'-' if b.get(i + 1) == Some(&b'-') => {
                // MySQL: `--` starts a comment only before a space, a control character
                // or the end; `--1` is minus minus one.
                let comment = kind != Engine::Mysql || b.get(i + 2).is_none_or(|&n| n <= b' ');
                if comment {
                    i = find_from(b, i, b"\n").map_or(b.len(), |e| e + 1);
                } else {
                    i += 1;
                }
            }
            b'#' if kind == Engine::Mysql => {
                i = find_from(b, i, b"\n").map_or(b.len(), |e| e + 1);
            }
            b'/' if b.get(i + 1) == Some(&b'*') => {
                // MySQL and MariaDB run `/*! … */`, `/*!50000 … */`, `/*M! … */` and
                // `/*M!100000 … */` as code: refuse them.
                if kind == Engine::Mysql
                    && (b.get(i + 2) == Some(&b'!')
                        || (matches!(b.get(i + 2), Some(b'M' | b'm'))
                            && b.get(i + 3) == Some(&b'!')))
                {
                    return Err(rejected(
                        "MySQL executable comments (/*! … */, /*M! … */) are not accepted",
                    ));
                }
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
                    } else if kind == Engine::Postgres && b[j] == b'/' && b[j + 1] == b'*' {
                        depth += 1;
                        j += 2;
                    } else {
                        j += 1;
                    }
                }
                i = j;
            }
            b'\'' => {
                i = skip_quoted(b, i, dialect.backslash_escapes)
                    .ok_or_else(|| unterminated("quoted string"))?;
            }
            b'"' if kind == Engine::Mysql => {
                // A string (or, with ANSI_QUOTES, an identifier): quoted either way.
                i = skip_quoted(b, i, dialect.backslash_escapes)
                    .ok_or_else(|| unterminated("quoted string"))?;
            }
            b'"' | b'`' | b'[' => {
                if c == b'`' && kind == Engine::Postgres {
                    // Not a quote in Postgres.
                    i += 1;
                    continue;
                }
                if c == b'[' && kind != Engine::Sqlite {
                    i += 1;
                    continue;
                }
                let (text, end) = if c == b'[' {
                    // SQLite: `[` … the first `]`, no escapes, whatever quotes are inside.
                    let close = find_from(b, i + 1, b"]")
                        .ok_or_else(|| unterminated("bracketed identifier"))?;
                    (&sql[i + 1..close], close + 1)
                } else {
                    let end = skip_quoted(b, i, false)
                        .ok_or_else(|| unterminated("quoted identifier"))?;
                    (&sql[i + 1..end - 1], end)
                };
                tokens.push(Token::Word(Word {
                    text: text.to_ascii_uppercase(),
                    quoted: true,
                }));
                i = end;
            }
            b'$' if kind == Engine::Postgres => {
                // $tag$ … $tag$, or a $1 parameter.
                let tag_end = b[i + 1..]
                    .iter()
                    .position(|&x| !(x.is_ascii_alphanumeric() || x == b'_' || x >= 0x80))
                    .map(|p| i + 1 + p);
                match tag_end {
                    Some(e) if b[e] == b'$' && !b.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                        let tag = &b[i..=e];
                        let close = find_from(b, e + 1, tag)
                            .ok_or_else(|| unterminated("dollar-quoted string"))?;
                        i = close + tag.len();
                    }
                    _ => i += 1,
                }
            }
            b';' | b'@' | b'.' | b'(' => {
                tokens.push(Token::Punct(c));
                i += 1;
            }
            c if c.is_ascii_digit() => {
                // A number; letters glued to it start a word of their own (MySQL reads
                // `1abc` as a name, which a check may only over-match this way).
                while i < b.len() && (b[i].is_ascii_digit() || b[i] == b'.') {
                    i += 1;
                }
            }
            c if is_word_byte(c) => {
                let start = i;
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                let text = &sql[start..i];
                if kind == Engine::Postgres {
                    // E'…' takes backslash escapes; U&"…" is an identifier in escapes,
                    // which the checks cannot read: refused.
                    if text.eq_ignore_ascii_case("e") && b.get(i) == Some(&b'\'') {
                        i = skip_quoted(b, i, true).ok_or_else(|| unterminated("quoted string"))?;
                        continue;
                    }
                    if text.eq_ignore_ascii_case("u")
                        && b.get(i) == Some(&b'&')
                        && b.get(i + 1) == Some(&b'"')
                    {
                        return Err(rejected(
                            "Unicode-escaped identifiers (U&\"…\") are not accepted",
                        ));
                    }
                }
                tokens.push(Token::Word(Word {
                    text: text.to_ascii_uppercase(),
                    quoted: false,
                }));
            }
            _ => i += 1,
        }
    }
    Ok(tokens)
}

fn find_from(b: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    b.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

/// The index after the quoted run starting at `start` (its first byte is the quote).
/// A doubled quote escapes it; with `backslash`, a backslash escapes the next byte.
fn skip_quoted(b: &[u8], start: usize, backslash: bool) -> Option<usize> {
    let q = b[start];
    let mut j = start + 1;
    while j < b.len() {
        if backslash && b[j] == b'\\' {
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

    const KINDS: [Engine; 3] = [Engine::Postgres, Engine::Mysql, Engine::Sqlite];

    fn run(sql: &str, kind: Engine, mode: Mode) -> Result<Checked, BrokerError> {
        check(sql, Dialect::of(kind), mode)
    }

    fn ok(sql: &str, kind: Engine) -> String {
        run(sql, kind, Mode::ReadOnly)
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .keyword
    }

    fn refused(sql: &str, kind: Engine, mode: Mode) -> String {
        match run(sql, kind, mode) {
            Err(BrokerError::Rejected { reason }) => reason,
            other => panic!("{kind} {sql}: {other:?}"),
        }
    }

    #[test]
    fn reads_pass() {
        for kind in KINDS {
            assert_eq!(ok("  select 1", kind), "SELECT");
            assert_eq!(ok("/* c */ -- x\n SELECT ';' ;", kind), "SELECT");
            assert_eq!(ok("WITH a AS (SELECT 1) SELECT * FROM a", kind), "WITH");
            // A column named like a denied function, not called.
            assert_eq!(ok("SELECT password, lo_price FROM users", kind), "SELECT");
        }
        assert_eq!(
            ok("SELECT $$;$$, $t$ ; $t$, $1", Engine::Postgres),
            "SELECT"
        );
        assert_eq!(ok("SELECT 'it\\'s;' # c;\n", Engine::Mysql), "SELECT");
        assert_eq!(ok("SELECT E'it\\'s;'", Engine::Postgres), "SELECT");
        assert_eq!(ok("SELECT [a'b] FROM t", Engine::Sqlite), "SELECT");
        assert_eq!(ok("SELECT 1 --1\n", Engine::Mysql), "SELECT");
        let user_var = run("SELECT @x := 1", Engine::Mysql, Mode::ReadOnly).unwrap();
        assert!(user_var.touches_session);
        let in_string = run("SELECT '@x'", Engine::Mysql, Mode::ReadOnly).unwrap();
        assert!(!in_string.touches_session);
    }

    #[test]
    fn bypasses_are_refused() {
        let ro = Mode::ReadOnly;
        for kind in KINDS {
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
            refused("SELECT * FROM t INTO OUTFILE '/tmp/x'", Engine::Mysql, ro).contains("file")
        );
        refused("/*! DELETE FROM t */ SELECT 1", Engine::Mysql, ro);
        refused("SELECT '", Engine::Postgres, ro);
        refused("SELECT $a$ x", Engine::Postgres, ro);
        // Read-write allows writes and schema changes, still one at a time.
        run(
            "DELETE FROM t WHERE id = $1",
            Engine::Postgres,
            Mode::ReadWrite,
        )
        .unwrap();
        run("CREATE TABLE x (id int)", Engine::Sqlite, Mode::ReadWrite).unwrap();
        refused("COMMIT", Engine::Postgres, Mode::ReadWrite);
        refused(
            "DELETE FROM t; DELETE FROM u",
            Engine::Sqlite,
            Mode::ReadWrite,
        );
    }

    /// The SQLite bypass: a `'` inside `[…]` opened a string to the old lexer and
    /// hid the `;` between two bracketed identifiers.
    #[test]
    fn sqlite_brackets_end_at_the_bracket() {
        for mode in [Mode::ReadOnly, Mode::ReadWrite] {
            refused(
                "SELECT 1 AS [a'];ATTACH DATABASE '/tmp/x' AS x; SELECT 1 AS [']",
                Engine::Sqlite,
                mode,
            );
            refused(
                "SELECT 1 AS [a'];VACUUM INTO '/tmp/x'; SELECT 1 AS [']",
                Engine::Sqlite,
                mode,
            );
        }
        refused("SELECT [unterminated", Engine::Sqlite, Mode::ReadOnly);
        refused("SELECT `a'`; DELETE FROM t", Engine::Sqlite, Mode::ReadOnly);
        // Brackets are not quotes elsewhere (Postgres arrays).
        assert_eq!(ok("SELECT (ARRAY[1,2])[1]", Engine::Postgres), "SELECT");
    }

    #[test]
    fn mysql_executable_comments_and_dash_dash() {
        let ro = Mode::ReadOnly;
        for sql in [
            "SELECT 1 /*M! INTO OUTFILE '/tmp/x' */",
            "SELECT 1 /*M!100000 INTO OUTFILE '/tmp/x' */",
            "SELECT 1 /*!50000 INTO DUMPFILE '/tmp/x' */",
            "SELECT 1 /*m! , @x := 1 */",
        ] {
            assert!(
                refused(sql, Engine::Mysql, ro).contains("executable"),
                "{sql}"
            );
        }
        // `--1` is arithmetic to MySQL: what follows is code.
        assert!(refused("SELECT 1 --1 INTO OUTFILE '/tmp/x'", Engine::Mysql, ro).contains("file"));
        let hidden_var = run("SELECT 1 --1, @x := 2", Engine::Mysql, ro).unwrap();
        assert!(hidden_var.touches_session);
        // With a space it is a comment.
        let comment = run("SELECT 1 -- , @x := 2", Engine::Mysql, ro).unwrap();
        assert!(!comment.touches_session);
        // Without backslash escapes (NO_BACKSLASH_ESCAPES), '\' is a whole string.
        let no_bs = Dialect {
            kind: Engine::Mysql,
            backslash_escapes: false,
        };
        assert!(
            check("SELECT '\\' INTO OUTFILE '/tmp/x' -- '", no_bs, ro)
                .unwrap_err()
                .to_string()
                .contains("file")
        );
    }

    #[test]
    fn postgres_strings_identifiers_and_comments() {
        let ro = Mode::ReadOnly;
        // E'…' escapes: the string ends where the server ends it.
        refused(
            "SELECT E'\\\\\\'', pg_read_file('/etc/passwd') --'",
            Engine::Postgres,
            ro,
        );
        refused("SELECT E'\\\\'; DELETE FROM t; --'", Engine::Postgres, ro);
        // Nested comments end where the server ends them.
        assert_eq!(ok("/* a /* b */ ; */ SELECT 1", Engine::Postgres), "SELECT");
        refused("/* a /* b */ SELECT 1", Engine::Postgres, ro);
        refused("SELECT U&\"d\\0062link\"('x')", Engine::Postgres, ro);
        // With standard_conforming_strings off, every string takes backslash escapes.
        let old = Dialect {
            kind: Engine::Postgres,
            backslash_escapes: true,
        };
        assert!(check("SELECT '\\'; DELETE FROM t; --'", old, ro).is_ok());
        assert!(check("SELECT 'a\\'', pg_read_file('x') --'", old, ro).is_err());
    }

    #[test]
    fn denied_functions_and_statements() {
        let ro = Mode::ReadOnly;
        for sql in [
            "SELECT dblink_exec('dbname=x', 'DELETE FROM t')",
            "SELECT public.dblink('x', 'SELECT 1')",
            "SELECT \"dblink_exec\"('x', 'y')",
            "SELECT pg_terminate_backend(123)",
            "SELECT pg_cancel_backend(123)",
            "SELECT pg_reload_conf()",
            "SELECT pg_stat_reset()",
            "SELECT pg_stat_reset_shared('bgwriter')",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT pg_catalog.pg_read_binary_file('/etc/passwd')",
            "SELECT * FROM pg_ls_dir('.')",
            "SELECT lo_import('/etc/passwd')",
            "SELECT lo_export(1, '/tmp/x')",
            "SELECT set_config('statement_timeout', '0', false)",
            "SELECT pg_read_file /* c */ ('/etc/passwd')",
        ] {
            refused(sql, Engine::Postgres, ro);
        }
        // Read-write may change settings: they are reset after the call.
        run(
            "SELECT set_config('work_mem', '8MB', false)",
            Engine::Postgres,
            Mode::ReadWrite,
        )
        .unwrap();
        refused(
            "SELECT dblink_exec('x', 'y')",
            Engine::Postgres,
            Mode::ReadWrite,
        );
        for sql in [
            "SELECT LOAD_FILE('/etc/passwd')",
            "SELECT load_file ('/etc/passwd')",
            "SHOW GRANTS",
            "SHOW GRANTS FOR CURRENT_USER()",
            "show create user current_user",
            "SELECT PASSWORD('guess')",
            "SELECT authentication_string FROM mysql.user",
            "SELECT * FROM `mysql`.`global_priv`",
        ] {
            refused(sql, Engine::Mysql, ro);
        }
        assert_eq!(ok("SHOW TABLES", Engine::Mysql), "SHOW");
        for sql in [
            "SELECT load_extension('/tmp/x.so')",
            "SELECT writefile('/tmp/x', 'y')",
        ] {
            refused(sql, Engine::Sqlite, ro);
        }
    }
}
