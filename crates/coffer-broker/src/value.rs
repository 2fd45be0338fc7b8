//! Rows as JSON-friendly values, and JSON parameters bound to statements.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Column as _, Row as _, TypeInfo as _, ValueRef as _};

use crate::{BrokerError, Result};

/// A result column: its name and the database's type name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    /// The column's name.
    pub name: String,
    /// The database's name for its type (`INT4`, `VARCHAR`, `TEXT`, …).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// What a query returns: integers, floats, text, booleans and null as themselves,
/// timestamps as RFC 3339 text, bytes as base64, numerics (decimals) as text so no
/// digit is lost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    /// The columns, in order.
    pub columns: Vec<Column>,
    /// The rows, each a value per column.
    pub rows: Vec<Vec<Value>>,
    /// Whether more rows existed than the row limit let through.
    pub truncated: bool,
}

fn columns<R: sqlx::Row>(row: &R) -> Vec<Column> {
    row.columns()
        .iter()
        .map(|c| Column {
            name: c.name().to_owned(),
            type_name: c.type_info().name().to_owned(),
        })
        .collect()
}

fn b64(bytes: &[u8]) -> Value {
    base64::engine::general_purpose::STANDARD
        .encode(bytes)
        .into()
}

fn float(f: f64) -> Value {
    serde_json::Number::from_f64(f).map_or_else(|| f.to_string().into(), Value::Number)
}

macro_rules! try_get {
    ($row:expr, $i:expr, $t:ty) => {
        $row.try_get::<Option<$t>, _>($i)
    };
}

/// A decimal's exact value as text, without the trailing fractional zeros that the
/// binary NUMERIC decoding pads (`1.50` reads `1.5`; no digit of value is lost).
fn exact(d: &sqlx::types::BigDecimal) -> String {
    let text = d.to_string();
    if text.contains('.') && !text.contains(['e', 'E']) {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn decode_error(column: &str, type_name: &str) -> BrokerError {
    BrokerError::Database {
        code: None,
        message: format!("cannot decode column {column:?} of type {type_name}"),
    }
}

pub(crate) fn pg_row(row: &sqlx::postgres::PgRow) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|_| decode_error(col.name(), "?"))?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_owned();
        let v: std::result::Result<Value, sqlx::Error> = match ty.as_str() {
            "BOOL" => try_get!(row, i, bool).map(|v| v.into()),
            "INT2" => try_get!(row, i, i16).map(|v| v.into()),
            "INT4" => try_get!(row, i, i32).map(|v| v.into()),
            "INT8" => try_get!(row, i, i64).map(|v| v.into()),
            "OID" => try_get!(row, i, sqlx::postgres::types::Oid).map(|v| v.map(|o| o.0).into()),
            "FLOAT4" => try_get!(row, i, f32).map(|v| v.map_or(Value::Null, |f| float(f.into()))),
            "FLOAT8" => try_get!(row, i, f64).map(|v| v.map_or(Value::Null, float)),
            "NUMERIC" => {
                try_get!(row, i, sqlx::types::BigDecimal).map(|v| v.map(|d| exact(&d)).into())
            }
            "BYTEA" => try_get!(row, i, Vec<u8>).map(|v| v.map_or(Value::Null, |b| b64(&b))),
            "TIMESTAMPTZ" => try_get!(row, i, chrono::DateTime<chrono::Utc>)
                .map(|v| v.map(|t| t.to_rfc3339()).into()),
            "TIMESTAMP" => try_get!(row, i, chrono::NaiveDateTime).map(|v| {
                v.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                    .into()
            }),
            "DATE" => try_get!(row, i, chrono::NaiveDate).map(|v| v.map(|t| t.to_string()).into()),
            "TIME" => try_get!(row, i, chrono::NaiveTime).map(|v| v.map(|t| t.to_string()).into()),
            "UUID" => try_get!(row, i, sqlx::types::Uuid).map(|v| v.map(|u| u.to_string()).into()),
            "JSON" | "JSONB" => try_get!(row, i, Value).map(Option::unwrap_or_default),
            // A function that returns nothing (pg_advisory_lock, pg_sleep, …).
            "VOID" => Ok(Value::Null),
            _ => try_get!(row, i, String).map(|v| v.into()),
        };
        out.push(v.map_err(|_| decode_error(col.name(), &ty))?);
    }
    Ok(out)
}

pub(crate) fn mysql_row(row: &sqlx::mysql::MySqlRow) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|_| decode_error(col.name(), "?"))?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = col.type_info().name().to_owned();
        let v: std::result::Result<Value, sqlx::Error> = match ty.as_str() {
            "BOOLEAN" => try_get!(row, i, bool).map(|v| v.into()),
            "TINYINT" | "SMALLINT" | "MEDIUMINT" | "INT" | "BIGINT" | "YEAR" => {
                try_get!(row, i, i64).map(|v| v.into())
            }
            "TINYINT UNSIGNED" | "SMALLINT UNSIGNED" | "MEDIUMINT UNSIGNED" | "INT UNSIGNED"
            | "BIGINT UNSIGNED" | "BIT" => try_get!(row, i, u64).map(|v| v.into()),
            "FLOAT" => try_get!(row, i, f32).map(|v| v.map_or(Value::Null, |f| float(f.into()))),
            "DOUBLE" => try_get!(row, i, f64).map(|v| v.map_or(Value::Null, float)),
            "DECIMAL" => {
                try_get!(row, i, sqlx::types::BigDecimal).map(|v| v.map(|d| d.to_string()).into())
            }
            "TIMESTAMP" => try_get!(row, i, chrono::DateTime<chrono::Utc>)
                .map(|v| v.map(|t| t.to_rfc3339()).into()),
            "DATETIME" => try_get!(row, i, chrono::NaiveDateTime).map(|v| {
                v.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                    .into()
            }),
            "DATE" => try_get!(row, i, chrono::NaiveDate).map(|v| v.map(|t| t.to_string()).into()),
            "TIME" => try_get!(row, i, chrono::NaiveTime).map(|v| v.map(|t| t.to_string()).into()),
            "JSON" => try_get!(row, i, Value).map(Option::unwrap_or_default),
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                try_get!(row, i, Vec<u8>).map(|v| v.map_or(Value::Null, |b| b64(&b)))
            }
            _ => try_get!(row, i, String).map(|v| v.into()),
        };
        out.push(v.map_err(|_| decode_error(col.name(), &ty))?);
    }
    Ok(out)
}

pub(crate) fn sqlite_row(row: &sqlx::sqlite::SqliteRow) -> Result<Vec<Value>> {
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|_| decode_error(col.name(), "?"))?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        // The storage class of this value, whatever the column was declared as.
        let storage = raw.type_info().name().to_owned();
        let v: std::result::Result<Value, sqlx::Error> = match storage.as_str() {
            "INTEGER" | "BOOLEAN" => try_get!(row, i, i64).map(|v| v.into()),
            "REAL" => try_get!(row, i, f64).map(|v| v.map_or(Value::Null, float)),
            "BLOB" => try_get!(row, i, Vec<u8>).map(|v| v.map_or(Value::Null, |b| b64(&b))),
            _ => try_get!(row, i, String).map(|v| v.into()),
        };
        out.push(v.map_err(|_| decode_error(col.name(), &storage))?);
    }
    Ok(out)
}

pub(crate) fn pg_columns(row: &sqlx::postgres::PgRow) -> Vec<Column> {
    columns(row)
}

pub(crate) fn mysql_columns(row: &sqlx::mysql::MySqlRow) -> Vec<Column> {
    columns(row)
}

pub(crate) fn sqlite_columns(row: &sqlx::sqlite::SqliteRow) -> Vec<Column> {
    columns(row)
}

/// Binds JSON parameters: null, booleans, integers, floats and text as themselves;
/// arrays and objects as JSON.
macro_rules! bind_json {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match p {
                serde_json::Value::Null => q.bind(None::<String>),
                serde_json::Value::Bool(b) => q.bind(*b),
                serde_json::Value::Number(n) => match (n.as_i64(), n.as_f64()) {
                    (Some(i), _) => q.bind(i),
                    (None, Some(f)) => q.bind(f),
                    (None, None) => q.bind(n.to_string()),
                },
                serde_json::Value::String(s) => q.bind(s.as_str()),
                other => q.bind(sqlx::types::Json(other.clone())),
            };
        }
        q
    }};
}
pub(crate) use bind_json;
