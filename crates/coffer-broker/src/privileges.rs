//! The check a read-only Postgres or MySQL connection passes at `connect`: the role it
//! is given must not hold a privilege that reaches past a read-only transaction.
//!
//! A read-only transaction stops writes to tables, but not what some privileges allow
//! inside one: a superuser or `pg_read_server_files` reads server files, `pg_signal_backend`
//! ends other sessions, `dblink` commits on a second connection, MySQL's `FILE` writes
//! `INTO OUTFILE` and reads `LOAD_FILE`, `PROCESS` shows other sessions' statements,
//! `SUPER` and `CONNECTION ADMIN` kill them, a global or `mysql.*` `SELECT` reads every
//! account's password hash. The statement check refuses the obvious spellings of these,
//! but a role without them cannot be talked into them at all, so the broker refuses a
//! read-only connection whose role holds one, unless its configuration says
//! `"allowPrivileged": true` ([`ConnectionParams::allow_privileged`]).
//!
//! [`ConnectionParams::allow_privileged`]: crate::ConnectionParams::allow_privileged

use crate::{BrokerError, Engine};

/// How to make a role that passes, shown with every refusal.
pub(crate) const PG_LEAST_PRIVILEGE: &str = "CREATE ROLE agent_ro LOGIN PASSWORD '…' \
NOSUPERUSER NOBYPASSRLS; GRANT CONNECT ON DATABASE app TO agent_ro; GRANT USAGE ON SCHEMA \
public TO agent_ro; GRANT SELECT ON ALL TABLES IN SCHEMA public TO agent_ro";

/// The MySQL / MariaDB equivalent.
pub(crate) const MYSQL_LEAST_PRIVILEGE: &str = "CREATE USER 'agent_ro'@'%' IDENTIFIED BY \
'…'; GRANT SELECT ON app.* TO 'agent_ro'@'%'";

/// One query that tells every Postgres escape at once, as booleans in this order.
pub(crate) const PG_QUERY: &str = "SELECT r.rolsuper, r.rolbypassrls, \
pg_has_role(current_user, 'pg_read_server_files', 'MEMBER'), \
pg_has_role(current_user, 'pg_write_server_files', 'MEMBER'), \
pg_has_role(current_user, 'pg_execute_server_program', 'MEMBER'), \
pg_has_role(current_user, 'pg_signal_backend', 'MEMBER'), \
EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.proname LIKE 'dblink%' \
AND has_function_privilege(p.oid, 'EXECUTE')) \
FROM pg_catalog.pg_roles r WHERE r.rolname = current_user";

/// What each of [`PG_QUERY`]'s columns means when true.
const PG_ESCAPES: [&str; 7] = [
    "is a superuser",
    "has BYPASSRLS (it reads past row-level security)",
    "is a member of pg_read_server_files (it reads the server's files)",
    "is a member of pg_write_server_files (it writes the server's files)",
    "is a member of pg_execute_server_program (it runs programs on the server)",
    "is a member of pg_signal_backend (it can end other sessions)",
    "can execute dblink functions (they run statements on another connection, outside \
     the read-only transaction)",
];

/// The escapes among [`PG_QUERY`]'s answer.
pub(crate) fn pg_escapes(flags: &[bool]) -> Vec<&'static str> {
    PG_ESCAPES
        .iter()
        .zip(flags)
        .filter(|(_, on)| **on)
        .map(|(what, _)| *what)
        .collect()
}

/// Global privileges that reach past a read-only transaction on MySQL / MariaDB.
const MYSQL_GLOBAL_ESCAPES: &[(&str, &str)] = &[
    ("ALL PRIVILEGES", "has ALL PRIVILEGES"),
    ("ALL", "has ALL PRIVILEGES"),
    (
        "FILE",
        "has FILE (it reads and writes the server's files: LOAD_FILE, INTO OUTFILE)",
    ),
    (
        "SUPER",
        "has SUPER (it kills other sessions and changes the server)",
    ),
    (
        "PROCESS",
        "has PROCESS (it sees other sessions' statements)",
    ),
    ("SHUTDOWN", "has SHUTDOWN"),
    (
        "CONNECTION ADMIN",
        "has CONNECTION ADMIN (it kills other sessions)",
    ),
    (
        "CONNECTION_ADMIN",
        "has CONNECTION_ADMIN (it kills other sessions)",
    ),
];

/// The escapes in the lines of `SHOW GRANTS` (for the user and its active roles).
pub(crate) fn mysql_escapes(grants: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    let mut add = |what: &str| {
        if !found.iter().any(|f| f == what) {
            found.push(what.to_owned());
        }
    };
    for line in grants {
        let upper = line.to_ascii_uppercase();
        if upper.contains(" WITH GRANT OPTION") || upper.contains("WITH ADMIN OPTION") {
            add("holds a grant option (it can hand its privileges on)");
        }
        let Some(rest) = upper.strip_prefix("GRANT ") else {
            continue;
        };
        let Some((privileges, rest)) = rest.split_once(" ON ") else {
            continue; // A role grant: the role's own lines follow.
        };
        let object = rest.split(" TO ").next().unwrap_or_default().trim();
        let object = object.strip_prefix("PROCEDURE ").unwrap_or(object);
        let global = object == "*.*";
        let mysql_schema = matches!(object, "`MYSQL`.*" | "MYSQL.*")
            || object.starts_with("`MYSQL`.")
            || object.starts_with("MYSQL.");
        for privilege in privileges.split(',').map(str::trim) {
            let name = privilege.split(" (").next().unwrap_or(privilege).trim();
            if global {
                for (p, what) in MYSQL_GLOBAL_ESCAPES {
                    if name == *p {
                        add(what);
                    }
                }
            }
            if (global || mysql_schema) && matches!(name, "SELECT" | "ALL" | "ALL PRIVILEGES") {
                add("can read the mysql schema (every account's password hash)");
            }
        }
    }
    found
}

/// The refusal for a role with `escapes`.
pub(crate) fn refusal(kind: Engine, user: &str, escapes: &[impl AsRef<str>]) -> BrokerError {
    let list: Vec<&str> = escapes.iter().map(AsRef::as_ref).collect();
    let how = match kind {
        Engine::Mysql => MYSQL_LEAST_PRIVILEGE,
        _ => PG_LEAST_PRIVILEGE,
    };
    BrokerError::Privileged {
        reason: format!(
            "the role {user:?} {}; a read-only connection needs a role that can only read, \
             e.g. {how} (or set \"allowPrivileged\": true on the connection to accept it)",
            list.join(", ")
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mysql_grant_lines() {
        let lines = |l: &[&str]| l.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert!(
            mysql_escapes(&lines(&[
                "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*0DB5'",
                "GRANT SELECT ON `test`.* TO `u`@`%`",
                "GRANT SELECT (a, b) ON `test`.`t` TO `u`@`%`",
            ]))
            .is_empty()
        );
        let root = mysql_escapes(&lines(&[
            "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
        ]));
        assert!(
            root.iter().any(|e| e.contains("ALL PRIVILEGES")),
            "{root:?}"
        );
        assert!(root.iter().any(|e| e.contains("grant option")), "{root:?}");
        let role = mysql_escapes(&lines(&[
            "GRANT `r` TO `u`@`%`",
            "GRANT FILE, PROCESS ON *.* TO `r`",
            "GRANT SELECT ON `mysql`.* TO `r`",
        ]));
        assert_eq!(role.len(), 3, "{role:?}");
    }

    #[test]
    fn pg_flags() {
        assert!(pg_escapes(&[false; 7]).is_empty());
        let e = pg_escapes(&[true, false, false, false, false, true, false]);
        assert_eq!(e.len(), 2);
        assert!(e[0].contains("superuser"));
    }
}
