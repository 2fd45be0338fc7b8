//! What [`Broker::schema`](crate::Broker::schema) tells an agent: tables and views with
//! their columns, primary keys, foreign keys and indexes, read from each database's
//! catalog by three statements of the broker's own.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::Engine;
use crate::value::QueryResult;

/// The tables and views a connection can see.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Schema {
    /// The tables and views, by schema and name.
    pub tables: Vec<Table>,
    /// Whether there were more columns than [`Limits::schema_limit`] let through (the
    /// tables past it are left out whole).
    ///
    /// [`Limits::schema_limit`]: crate::Limits::schema_limit
    pub truncated: bool,
}

/// A table or view, for an agent to explore.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    /// The schema (Postgres) or database (MySQL); `None` for SQLite.
    pub schema: Option<String>,
    /// The name.
    pub name: String,
    /// The columns, in order.
    pub columns: Vec<TableColumn>,
    /// The primary key's columns, in key order (empty when there is none).
    #[serde(default)]
    pub primary_key: Vec<String>,
    /// The foreign keys: how this table joins others.
    #[serde(default)]
    pub foreign_keys: Vec<ForeignKey>,
    /// The indexes (the primary key's included).
    #[serde(default)]
    pub indexes: Vec<Index>,
}

/// A column of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableColumn {
    /// The name.
    pub name: String,
    /// The declared type.
    #[serde(rename = "type")]
    pub type_name: String,
    /// Whether it may be null.
    pub nullable: bool,
}

/// A foreign key of a [`Table`]: `columns` reference `references_columns` of
/// `references_table`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForeignKey {
    /// The constraint's name (SQLite: its number).
    pub name: String,
    /// This table's columns, in key order.
    pub columns: Vec<String>,
    /// The referenced table's schema (Postgres, MySQL).
    pub references_schema: Option<String>,
    /// The referenced table.
    pub references_table: String,
    /// The referenced columns, in key order (SQLite: empty when the key names the other
    /// table's primary key implicitly).
    pub references_columns: Vec<String>,
}

/// An index of a [`Table`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    /// The index's name.
    pub name: String,
    /// Its columns or expressions, in order.
    pub columns: Vec<String>,
    /// Whether it is unique.
    pub unique: bool,
}

/// The broker's three catalog statements for one database kind.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Queries {
    /// Rows: schema, table, column, type, nullable.
    pub(crate) columns: &'static str,
    /// Rows: schema, table, kind (`p` or `f`), constraint, columns (JSON array),
    /// referenced schema, referenced table, referenced columns (JSON array).
    pub(crate) keys: &'static str,
    /// Rows: schema, table, index, unique, columns (JSON array).
    pub(crate) indexes: &'static str,
}

const PG: Queries = Queries {
    columns: "SELECT c.table_schema::text, c.table_name::text, c.column_name::text, \
        c.data_type::text, (c.is_nullable = 'YES') \
        FROM information_schema.columns c \
        WHERE c.table_schema NOT IN ('pg_catalog', 'information_schema') \
        ORDER BY 1, 2, c.ordinal_position",
    keys: "SELECT n.nspname::text, t.relname::text, c.contype::text, c.conname::text, \
        (SELECT json_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.conkey) WITH ORDINALITY \
         AS k(att, ord) JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid \
         AND a.attnum = k.att), \
        fn.nspname::text, ft.relname::text, \
        (SELECT json_agg(a.attname::text ORDER BY k.ord) FROM unnest(c.confkey) WITH ORDINALITY \
         AS k(att, ord) JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid \
         AND a.attnum = k.att) \
        FROM pg_catalog.pg_constraint c \
        JOIN pg_catalog.pg_class t ON t.oid = c.conrelid \
        JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
        LEFT JOIN pg_catalog.pg_class ft ON ft.oid = c.confrelid \
        LEFT JOIN pg_catalog.pg_namespace fn ON fn.oid = ft.relnamespace \
        WHERE c.contype IN ('p', 'f') AND n.nspname <> 'information_schema' \
        AND n.nspname NOT LIKE 'pg\\_%' \
        AND has_any_column_privilege(t.oid, 'SELECT, INSERT, UPDATE, REFERENCES') \
        ORDER BY 1, 2, 4",
    indexes: "SELECT n.nspname::text, t.relname::text, i.relname::text, ix.indisunique, \
        (SELECT json_agg(pg_catalog.pg_get_indexdef(ix.indexrelid, k, true) ORDER BY k) \
         FROM generate_series(1, ix.indnkeyatts::int) AS k) \
        FROM pg_catalog.pg_index ix \
        JOIN pg_catalog.pg_class i ON i.oid = ix.indexrelid \
        JOIN pg_catalog.pg_class t ON t.oid = ix.indrelid \
        JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
        WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' \
        AND has_any_column_privilege(t.oid, 'SELECT, INSERT, UPDATE, REFERENCES') \
        ORDER BY 1, 2, 3",
};

/// MySQL 8 has no `ORDER BY` in `JSON_ARRAYAGG`: the arrays are built from an ordered
/// `GROUP_CONCAT` of `JSON_QUOTE`d names instead.
const MYSQL: Queries = Queries {
    columns: "SELECT CAST(table_schema AS CHAR), CAST(table_name AS CHAR), \
        CAST(column_name AS CHAR), CAST(column_type AS CHAR), (is_nullable = 'YES') \
        FROM information_schema.columns WHERE table_schema = DATABASE() \
        ORDER BY table_name, ordinal_position",
    keys: "SELECT CAST(table_schema AS CHAR), CAST(table_name AS CHAR), \
        CAST(IF(constraint_name = 'PRIMARY', 'p', 'f') AS CHAR), \
        CAST(constraint_name AS CHAR), \
        CAST(CONCAT('[', GROUP_CONCAT(JSON_QUOTE(column_name) \
             ORDER BY ordinal_position SEPARATOR ','), ']') AS CHAR), \
        CAST(MAX(referenced_table_schema) AS CHAR), CAST(MAX(referenced_table_name) AS CHAR), \
        CAST(CONCAT('[', GROUP_CONCAT(JSON_QUOTE(COALESCE(referenced_column_name, '')) \
             ORDER BY ordinal_position SEPARATOR ','), ']') AS CHAR) \
        FROM information_schema.key_column_usage \
        WHERE table_schema = DATABASE() \
        AND (constraint_name = 'PRIMARY' OR referenced_table_name IS NOT NULL) \
        GROUP BY table_schema, table_name, constraint_name \
        ORDER BY 2, 4",
    indexes: "SELECT CAST(table_schema AS CHAR), CAST(table_name AS CHAR), \
        CAST(index_name AS CHAR), MAX(non_unique) = 0, \
        CAST(CONCAT('[', GROUP_CONCAT(JSON_QUOTE(COALESCE(column_name, '')) \
             ORDER BY seq_in_index SEPARATOR ','), ']') AS CHAR) \
        FROM information_schema.statistics WHERE table_schema = DATABASE() \
        GROUP BY table_schema, table_name, index_name \
        ORDER BY 2, 3",
};

const SQLITE: Queries = Queries {
    columns: "SELECT '', m.name, p.name, p.type, p.\"notnull\" = 0 \
        FROM sqlite_master m JOIN pragma_table_info(m.name) p \
        WHERE m.type IN ('table', 'view') AND m.name NOT LIKE 'sqlite_%' \
        ORDER BY m.name, p.cid",
    keys: "SELECT '', m.name, 'p', 'primary', \
        (SELECT json_group_array(name) FROM \
         (SELECT name FROM pragma_table_info(m.name) WHERE pk > 0 ORDER BY pk)), \
        NULL, NULL, NULL \
        FROM sqlite_master m WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
        AND EXISTS (SELECT 1 FROM pragma_table_info(m.name) WHERE pk > 0) \
        UNION ALL \
        SELECT '', m.name, 'f', CAST(f.id AS TEXT), \
        (SELECT json_group_array(\"from\") FROM (SELECT \"from\" FROM \
         pragma_foreign_key_list(m.name) WHERE id = f.id ORDER BY seq)), \
        NULL, f.\"table\", \
        (SELECT json_group_array(coalesce(\"to\", '')) FROM (SELECT \"to\" FROM \
         pragma_foreign_key_list(m.name) WHERE id = f.id ORDER BY seq)) \
        FROM sqlite_master m JOIN pragma_foreign_key_list(m.name) f \
        WHERE f.seq = 0 AND m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
        ORDER BY 2, 4",
    indexes: "SELECT '', m.name, il.name, il.\"unique\", \
        (SELECT json_group_array(ii.name) FROM \
         (SELECT name FROM pragma_index_info(il.name) ORDER BY seqno) ii) \
        FROM sqlite_master m JOIN pragma_index_list(m.name) il \
        WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' \
        ORDER BY 2, 3",
};

/// The catalog statements for `kind`.
pub(crate) fn queries(kind: Engine) -> Queries {
    match kind {
        Engine::Postgres => PG,
        Engine::Mysql => MYSQL,
        Engine::Sqlite => SQLITE,
    }
}

fn text(row: &[Value], i: usize) -> String {
    row.get(i)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned()
}

fn flag(row: &[Value], i: usize) -> bool {
    match row.get(i) {
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_i64() != Some(0),
        _ => false,
    }
}

/// A list of names: a JSON array, or its text (MySQL and SQLite return JSON as text).
fn names(row: &[Value], i: usize) -> Vec<String> {
    let parsed;
    let array = match row.get(i) {
        Some(Value::Array(a)) => a,
        Some(Value::String(s)) => {
            parsed = serde_json::from_str::<Value>(s).unwrap_or_default();
            match &parsed {
                Value::Array(a) => a,
                _ => return Vec::new(),
            }
        }
        _ => return Vec::new(),
    };
    array
        .iter()
        .filter_map(|v| v.as_str().map(ToOwned::to_owned))
        .collect()
}

/// The [`Schema`] from the three statements' rows, at most `limit` columns.
pub(crate) fn assemble(
    kind: Engine,
    columns: &QueryResult,
    keys: &QueryResult,
    indexes: &QueryResult,
    limit: usize,
) -> Schema {
    let has_schema = kind != Engine::Sqlite;
    let schema_of = |row: &[Value]| has_schema.then(|| text(row, 0));
    let mut schema = Schema {
        tables: Vec::new(),
        truncated: columns.truncated || columns.rows.len() > limit,
    };
    for row in columns.rows.iter().take(limit) {
        let (table_schema, table) = (schema_of(row), text(row, 1));
        let column = TableColumn {
            name: text(row, 2),
            type_name: text(row, 3),
            nullable: row.get(4).is_none_or(|_| flag(row, 4)),
        };
        match schema.tables.last_mut() {
            Some(t) if t.name == table && t.schema == table_schema => t.columns.push(column),
            _ => schema.tables.push(Table {
                schema: table_schema,
                name: table,
                columns: vec![column],
                primary_key: Vec::new(),
                foreign_keys: Vec::new(),
                indexes: Vec::new(),
            }),
        }
    }
    if schema.truncated {
        // The last table may have been cut mid-way: leave it out whole.
        schema.tables.pop();
    }
    // The three statements order their rows alike, but an index by name does not rely
    // on it.
    let at: HashMap<(Option<String>, String), usize> = schema
        .tables
        .iter()
        .enumerate()
        .map(|(i, t)| ((t.schema.clone(), t.name.clone()), i))
        .collect();
    let table_of = |row: &[Value]| at.get(&(schema_of(row), text(row, 1))).copied();
    for row in &keys.rows {
        let Some(i) = table_of(row) else { continue };
        let table = &mut schema.tables[i];
        if text(row, 2) == "p" {
            table.primary_key = names(row, 4);
        } else {
            table.foreign_keys.push(ForeignKey {
                name: text(row, 3),
                columns: names(row, 4),
                references_schema: row.get(5).and_then(Value::as_str).map(ToOwned::to_owned),
                references_table: text(row, 6),
                references_columns: names(row, 7)
                    .into_iter()
                    .filter(|c| !c.is_empty())
                    .collect(),
            });
        }
    }
    for row in &indexes.rows {
        let Some(i) = table_of(row) else { continue };
        schema.tables[i].indexes.push(Index {
            name: text(row, 2),
            columns: names(row, 4),
            unique: flag(row, 3),
        });
    }
    schema
}
