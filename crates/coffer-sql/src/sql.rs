//! The SQL both dialects run, portable between SQLite and Postgres: `$N` parameters,
//! `TRUE`/`FALSE`, bytewise name ranges instead of `LIKE`. The statements only one
//! dialect runs (a put in one round trip) are in `sqlite.rs` and `postgres.rs`.
//!
//! Every statement names its parameters; the test below checks that each text uses
//! exactly `$1 … $N` for its N names, for these and the dialects' statements.

use crate::driver::Statement;

/// The head row of one secret with its MAC and the key id in its latest envelope's header
/// ([`crate::row::MetaRow`]).
pub(crate) const SELECT_HEAD: Statement = Statement {
    sql: "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, \
          s.tags, s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, \
          s.last_used_at, s.usage_count, s.mac, substr(v.ciphertext, 2, 4) AS sealed_by \
          FROM coffer_secrets s LEFT JOIN coffer_secret_versions v \
          ON v.scope = s.scope AND v.name = s.name AND v.version = s.version \
          WHERE s.scope = $1 AND s.name = $2",
    params: &["scope", "name"],
};

/// A live secret's head row with one version's envelope (the latest when `$1` is
/// `NULL`) ([`crate::row::ValueRow`]).
pub(crate) const SELECT_VALUE: Statement = Statement {
    sql: "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, \
          s.tags, s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, \
          s.last_used_at, s.usage_count, s.mac, substr(v.ciphertext, 2, 4) AS sealed_by, v.version AS v_version, v.ciphertext \
          FROM coffer_secrets s JOIN coffer_secret_versions v \
          ON v.scope = s.scope AND v.name = s.name AND v.version = COALESCE($1, s.version) \
          WHERE s.scope = $2 AND s.name = $3 AND s.deleted = FALSE",
    params: &["version or NULL", "scope", "name"],
};

/// One page of head rows in name order, live ones or (when `$6`) soft-deleted ones:
/// names after `$2` (or from it, when `$3`), below `$4` unless it is `NULL`, at most `$5`.
pub(crate) const LIST: Statement = Statement {
    sql: "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, \
          s.tags, s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, \
          s.last_used_at, s.usage_count, s.mac, substr(v.ciphertext, 2, 4) AS sealed_by \
          FROM coffer_secrets s LEFT JOIN coffer_secret_versions v \
          ON v.scope = s.scope AND v.name = s.name AND v.version = s.version \
          WHERE s.scope = $1 AND s.deleted = $6 AND (s.name > $2 OR ($3 AND s.name = $2)) \
          AND ($4 IS NULL OR s.name < $4) ORDER BY s.name LIMIT $5",
    params: &[
        "scope",
        "start",
        "start is included",
        "end or NULL",
        "limit",
        "deleted",
    ],
};

/// Writes the head row of a new name, or nothing if it exists. Each dialect's put of a
/// new name is built on it ([`Composed`]).
pub(crate) const INSERT_HEAD: Statement = Statement {
    sql: "INSERT INTO coffer_secrets (scope, name, version, deleted, provider, kind, \
          description, tags, env_name, expires_at, active, created_at, updated_at, mac) \
          VALUES ($1, $2, $3, FALSE, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
          ON CONFLICT (scope, name) DO NOTHING",
    params: HEAD_INSERT_PARAMS,
};

/// The metadata fields both head writes set, in the same order.
const HEAD_FIELDS: [&str; 7] = [
    "provider",
    "kind",
    "description",
    "tags",
    "env_name",
    "expires_at",
    "active",
];

/// `a`, then `b`, then `c`, as one array of `N` names (`N` must be their total length).
const fn join<const N: usize>(
    a: &[&'static str],
    b: &[&'static str],
    c: &[&'static str],
) -> [&'static str; N] {
    let mut out = [""; N];
    let mut i = 0;
    while i < N {
        out[i] = if i < a.len() {
            a[i]
        } else if i < a.len() + b.len() {
            b[i - a.len()]
        } else {
            c[i - a.len() - b.len()]
        };
        i += 1;
    }
    out
}

/// The parameters of [`INSERT_HEAD`].
const HEAD_INSERT_PARAMS: &[&str] = &join::<13>(
    &["scope", "name", "version"],
    &HEAD_FIELDS,
    &["created_at", "updated_at", "mac"],
);

/// Replaces the head row if it is still at the version and deletion state the put read.
/// Each dialect's put over an existing head is built on it ([`Composed`]).
pub(crate) const UPDATE_HEAD: Statement = Statement {
    sql: "UPDATE coffer_secrets SET version = $1, deleted = FALSE, provider = $2, kind = $3, \
          description = $4, tags = $5, env_name = $6, expires_at = $7, active = $8, \
          updated_at = $9, mac = $10 \
          WHERE scope = $11 AND name = $12 AND version = $13 AND deleted = $14",
    params: HEAD_UPDATE_PARAMS,
};

/// The parameters of [`UPDATE_HEAD`].
const HEAD_UPDATE_PARAMS: &[&str] = &join::<14>(
    &["version"],
    &HEAD_FIELDS,
    &[
        "updated_at",
        "mac",
        "scope",
        "name",
        "version read",
        "deleted read",
    ],
);

/// Marks a live secret deleted with the MAC of its deleted state, if it is still at the
/// version the delete read and checked.
pub(crate) const SOFT_DELETE: Statement = Statement {
    sql: "UPDATE coffer_secrets SET deleted = TRUE, updated_at = $1, mac = $2 \
          WHERE scope = $3 AND name = $4 AND version = $5 AND deleted = FALSE",
    params: &["updated_at", "mac", "scope", "name", "version read"],
};

/// Brings a soft-deleted head back with the MAC of its live state, if it is still at the
/// version and deletion state the restore read and checked.
pub(crate) const RESTORE: Statement = Statement {
    sql: "UPDATE coffer_secrets SET deleted = FALSE, updated_at = $1, mac = $2 \
          WHERE scope = $3 AND name = $4 AND version = $5 AND deleted = TRUE",
    params: &["updated_at", "mac", "scope", "name", "version read"],
};

/// Every version kept of one secret, oldest first, with the key id in each envelope's
/// header ([`crate::row::VersionRow`]); never the envelope itself.
pub(crate) const VERSIONS: Statement = Statement {
    sql: "SELECT version, created_at, substr(ciphertext, 2, 4) AS sealed_by \
          FROM coffer_secret_versions WHERE scope = $1 AND name = $2 ORDER BY version",
    params: &["scope", "name"],
};

/// Replaces a live head's metadata fields, `updated_at` and MAC, if the head is still as
/// the edit read it: the same version, `updated_at` and MAC (every write moves one of
/// them), so no concurrent write is undone.
pub(crate) const UPDATE_ATTRIBUTES: Statement = Statement {
    sql: "UPDATE coffer_secrets SET provider = $1, kind = $2, description = $3, tags = $4, \
          env_name = $5, expires_at = $6, active = $7, updated_at = $8, mac = $9 \
          WHERE scope = $10 AND name = $11 AND version = $12 AND deleted = FALSE \
          AND updated_at = $13 AND mac = $14",
    params: &join::<14>(
        &HEAD_FIELDS,
        &["updated_at", "mac", "scope", "name"],
        &["version read", "updated_at read", "mac read"],
    ),
};

/// The scopes with a live secret, in order. Under row-level security a role the policy
/// applies to sees only the scope of its transaction, so none here.
pub(crate) const LIST_SCOPES: Statement = Statement {
    sql: "SELECT DISTINCT scope FROM coffer_secrets WHERE deleted = FALSE ORDER BY scope",
    params: &[],
};

/// Removes every version of a secret (before [`DESTROY_HEAD`], in one transaction).
pub(crate) const DESTROY_VERSIONS: Statement = Statement {
    sql: "DELETE FROM coffer_secret_versions WHERE scope = $1 AND name = $2",
    params: &["scope", "name"],
};

/// Removes a secret's head row.
pub(crate) const DESTROY_HEAD: Statement = Statement {
    sql: "DELETE FROM coffer_secrets WHERE scope = $1 AND name = $2",
    params: &["scope", "name"],
};

/// Envelopes not sealed under the primary key, in a stable order ([`crate::row::EnvelopeRow`]).
/// The key is read from each envelope's header (bytes 2-5), not from the `key_id` column:
/// an edited column cannot hide an envelope from a rotation.
pub(crate) const REWRAP_CANDIDATES: Statement = Statement {
    sql: "SELECT scope, name, version, ciphertext FROM coffer_secret_versions \
          WHERE substr(ciphertext, 2, 4) <> $1 ORDER BY scope, name, version LIMIT $2",
    params: &["primary key id, 4 bytes big-endian", "limit"],
};

/// Replaces one envelope, only if it is still the one that was read (check-and-set).
pub(crate) const REWRAP_ONE: Statement = Statement {
    sql: "UPDATE coffer_secret_versions SET ciphertext = $1, key_id = $2 \
          WHERE scope = $3 AND name = $4 AND version = $5 AND ciphertext = $6",
    params: &[
        "new envelope",
        "primary key id",
        "scope",
        "name",
        "version",
        "envelope read",
    ],
};

/// How many envelopes (by their headers) and head MACs are not under the primary key
/// ([`crate::row::Count`]).
pub(crate) const REWRAP_REMAINING: Statement = Statement {
    sql: "SELECT (SELECT COUNT(*) FROM coffer_secret_versions \
          WHERE substr(ciphertext, 2, 4) <> $1) \
          + (SELECT COUNT(*) FROM coffer_secrets \
          WHERE mac IS NULL OR substr(mac, 1, 4) <> $1) AS n",
    params: &["primary key id, 4 bytes big-endian"],
};

/// Head rows whose MAC was made by a key other than the primary (or is missing), in a
/// stable order ([`crate::row::MetaRow`]): what a rewrap re-tags after checking them.
pub(crate) const RETAG_CANDIDATES: Statement = Statement {
    sql: "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, \
          s.tags, s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, \
          s.last_used_at, s.usage_count, s.mac, NULL AS sealed_by \
          FROM coffer_secrets s WHERE s.mac IS NULL OR substr(s.mac, 1, 4) <> $1 \
          ORDER BY s.scope, s.name LIMIT $2",
    params: &["primary key id, 4 bytes big-endian", "limit"],
};

/// Head rows without a MAC, at most `$1` ([`crate::row::MetaRow`]):
/// what [`crate::SqlStore::adopt_untagged_heads`] tags.
pub(crate) const UNTAGGED_HEADS: Statement = Statement {
    sql: "SELECT s.scope, s.name, s.version, s.deleted, s.provider, s.kind, s.description, \
          s.tags, s.env_name, s.expires_at, s.active, s.created_at, s.updated_at, \
          s.last_used_at, s.usage_count, s.mac, NULL AS sealed_by \
          FROM coffer_secrets s WHERE s.mac IS NULL \
          ORDER BY s.scope, s.name LIMIT $1",
    params: &["limit"],
};

/// Replaces one head's MAC, only if the head is still the one that was read and checked.
pub(crate) const RETAG_HEAD: Statement = Statement {
    sql: "UPDATE coffer_secrets SET mac = $1 \
          WHERE scope = $2 AND name = $3 AND version = $4 AND deleted = $5 \
          AND updated_at = $6 AND (mac = $7 OR ($7 IS NULL AND mac IS NULL))",
    params: &[
        "new mac",
        "scope",
        "name",
        "version read",
        "deleted read",
        "updated_at read",
        "mac read or NULL",
    ],
};

/// How many envelopes each key id sealed, read from the envelope headers
/// ([`crate::row::KeyUsage`]).
pub(crate) const KEY_USAGE: Statement = Statement {
    sql: "SELECT substr(ciphertext, 2, 4) AS sealed_by, COUNT(*) AS n \
          FROM coffer_secret_versions GROUP BY substr(ciphertext, 2, 4)",
    params: &[],
};

/// Heads per key id that starts their MAC (`NULL`: no MAC).
pub(crate) const HEAD_KEY_USAGE: Statement = Statement {
    sql: "SELECT substr(mac, 1, 4) AS sealed_by, COUNT(*) AS n \
          FROM coffer_secrets GROUP BY substr(mac, 1, 4)",
    params: &[],
};

/// Adds reads to a live secret's usage counters; the last use only moves forward.
pub(crate) const RECORD_USAGE: Statement = Statement {
    sql: "UPDATE coffer_secrets SET usage_count = usage_count + $1, \
          last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < $2 \
          THEN $2 ELSE last_used_at END \
          WHERE scope = $3 AND name = $4 AND deleted = FALSE",
    params: &["reads", "last used", "scope", "name"],
};

/// Every recorded key check value ([`crate::row::KeyCheck`]).
pub(crate) const KEY_CHECKS: Statement = Statement {
    sql: "SELECT key_id, check_value, retired_at FROM coffer_key_checks",
    params: &[],
};

/// Records one key's check value, once.
pub(crate) const RECORD_KEY_CHECK: Statement = Statement {
    sql: "INSERT INTO coffer_key_checks (key_id, check_value) VALUES ($1, $2) \
          ON CONFLICT (key_id) DO NOTHING",
    params: &["key id", "check value"],
};

/// Retires a key; the engine refuses while anything is under it (migration
/// `0004_retired_keys` / `0005_retired_keys`).
pub(crate) const RETIRE_KEY: Statement = Statement {
    sql: "UPDATE coffer_key_checks SET retired_at = $1 WHERE key_id = $2 AND retired_at IS NULL",
    params: &["retired at", "key id"],
};

/// The keyring kept in the store ([`crate::SqlKeyring`]).
pub(crate) const READ_KEYRING: Statement = Statement {
    sql: "SELECT generation, document FROM coffer_keyring WHERE id = 1",
    params: &[],
};

/// The first keyring document; no row when one is kept already.
pub(crate) const CREATE_KEYRING: Statement = Statement {
    sql: "INSERT INTO coffer_keyring (id, generation, document, updated_at) VALUES (1, 1, $1, $2) \
          ON CONFLICT (id) DO NOTHING",
    params: &["document", "updated at"],
};

/// A new keyring document over the generation the writer read; no row when another
/// writer got there first.
pub(crate) const UPDATE_KEYRING: Statement = Statement {
    sql: "UPDATE coffer_keyring SET document = $1, updated_at = $2, generation = generation + 1 \
          WHERE id = 1 AND generation = $3",
    params: &["document", "updated at", "generation read"],
};

/// A statement built once, at first use, on a portable one: a dialect's put is a head
/// write of this module with the version row (and on Postgres the change notice) after
/// it, so the head's SQL is written only here. Its own parameters come after the head's,
/// numbered from there, and it finds the head's by name ([`Composed::head_param`]).
#[derive(Debug)]
pub(crate) struct Composed {
    sql: String,
    params: Vec<&'static str>,
}

impl Composed {
    /// The statement `build` writes around `head`'s text, with the parameters `more`
    /// after the head's; `build` looks their numbers up with [`Composed::param`].
    pub(crate) fn on(
        head: &Statement,
        more: &[&'static str],
        build: impl FnOnce(&Self) -> String,
    ) -> Self {
        let mut composed = Self {
            sql: String::new(),
            params: head.params.iter().chain(more).copied().collect(),
        };
        composed.sql = build(&composed);
        composed
    }

    /// `$N` of the parameter named `name` (the head's or one added).
    ///
    /// # Panics
    /// If no parameter has that name: a mistake in this crate's SQL, which every test run
    /// finds at the first put.
    pub(crate) fn param(&self, name: &str) -> String {
        let n = self
            .params
            .iter()
            .position(|p| *p == name)
            .unwrap_or_else(|| panic!("no parameter {name} in {:?}", self.params));
        format!("${}", n + 1)
    }

    /// The statement.
    pub(crate) fn statement(&'static self) -> Statement {
        Statement {
            sql: &self.sql,
            params: &self.params,
        }
    }
}

/// The statements of this module, for the numbering test and the dialects' tests.
#[cfg(test)]
pub(crate) const PORTABLE: &[Statement] = &[
    READ_KEYRING,
    CREATE_KEYRING,
    UPDATE_KEYRING,
    SELECT_HEAD,
    SELECT_VALUE,
    LIST,
    INSERT_HEAD,
    UPDATE_HEAD,
    SOFT_DELETE,
    RESTORE,
    VERSIONS,
    UPDATE_ATTRIBUTES,
    LIST_SCOPES,
    DESTROY_VERSIONS,
    DESTROY_HEAD,
    REWRAP_CANDIDATES,
    REWRAP_ONE,
    REWRAP_REMAINING,
    RETAG_CANDIDATES,
    UNTAGGED_HEADS,
    RETAG_HEAD,
    KEY_USAGE,
    HEAD_KEY_USAGE,
    RECORD_USAGE,
    KEY_CHECKS,
    RECORD_KEY_CHECK,
    RETIRE_KEY,
];

/// Checks that `statement` uses exactly the parameters `$1 … $N` for its N names.
#[cfg(test)]
pub(crate) fn assert_numbered(statement: &Statement) {
    let mut used = std::collections::BTreeSet::new();
    let bytes = statement.sql.as_bytes();
    for (i, _) in statement.sql.match_indices('$') {
        let digits: String = bytes[i + 1..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .map(|&b| char::from(b))
            .collect();
        let n: usize = digits
            .parse()
            .unwrap_or_else(|_| panic!("a `$` without a number in {}", statement.sql));
        used.insert(n);
    }
    let expected: std::collections::BTreeSet<usize> = (1..=statement.params.len()).collect();
    assert_eq!(
        used, expected,
        "parameters used by {} against its names {:?}",
        statement.sql, statement.params
    );
}

/// Checks a dialect's two put statements: numbered in full, and built on the portable
/// head writes.
#[cfg(test)]
pub(crate) fn assert_puts(new: Statement, next: Statement) {
    for (put, head) in [(new, INSERT_HEAD), (next, UPDATE_HEAD)] {
        assert_numbered(&put);
        assert!(put.sql.contains(head.sql), "{}", put.sql);
        assert_eq!(&put.params[..head.params.len()], head.params);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_portable_statement_numbers_its_parameters_in_full() {
        for statement in super::PORTABLE {
            super::assert_numbered(statement);
        }
    }
}
