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
    /// Whether more rows existed than the row limit or the byte limit let through.
    pub truncated: bool,
    /// How many cells were cut at the cell limit; each such cell ends with
    /// [`CELL_MARKER`] and the size it had.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub truncated_cells: usize,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if"
)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What ends a cell cut at the cell limit: `…[truncated: N bytes]`, with the size of the
/// whole value. It cannot occur in base64, so a cut byte value is recognizable too.
pub const CELL_MARKER: &str = "…[truncated: ";

/// The byte budget of one call: the whole result (`byte_limit`, counted as the JSON the
/// rows become) and each cell (`cell_limit` bytes of text or of bytes).
#[derive(Debug)]
pub(crate) struct Budget {
    left: usize,
    cell_limit: usize,
    exhausted: bool,
    truncated_cells: usize,
}

impl Budget {
    pub(crate) fn new(byte_limit: usize, cell_limit: usize) -> Self {
        Self {
            left: byte_limit,
            cell_limit,
            exhausted: false,
            truncated_cells: 0,
        }
    }

    /// A text cell, cut at the cell limit (on a character boundary) with the marker.
    pub(crate) fn text(&mut self, s: &str) -> Value {
        if s.len() <= self.cell_limit {
            return s.into();
        }
        self.truncated_cells += 1;
        let mut end = self.cell_limit;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}{CELL_MARKER}{} bytes]", &s[..end], s.len()).into()
    }

    /// A byte cell as base64, cut at the cell limit with the marker.
    pub(crate) fn blob(&mut self, b: &[u8]) -> Value {
        if b.len() <= self.cell_limit {
            return b64(b);
        }
        self.truncated_cells += 1;
        let prefix = base64::engine::general_purpose::STANDARD.encode(&b[..self.cell_limit]);
        format!("{prefix}{CELL_MARKER}{} bytes]", b.len()).into()
    }

    /// Counts `row` against the byte limit: false (and exhausted from now on) when it
    /// does not fit.
    pub(crate) fn take_row(&mut self, row: &[Value]) -> bool {
        let size = row.iter().map(json_size).sum::<usize>() + 2;
        if self.exhausted || size > self.left {
            self.exhausted = true;
            return false;
        }
        self.left -= size;
        true
    }

    pub(crate) fn cell_limit(&self) -> usize {
        self.cell_limit
    }

    pub(crate) fn exhausted(&self) -> bool {
        self.exhausted
    }

    pub(crate) fn truncated_cells(&self) -> usize {
        self.truncated_cells
    }
}

/// About the bytes `v` takes as JSON (with its separator).
fn json_size(v: &Value) -> usize {
    1 + match v {
        Value::Null => 4,
        Value::Bool(_) => 5,
        Value::Number(_) => 24,
        Value::String(s) => {
            s.len()
                + 2
                + s.bytes()
                    .filter(|&c| c < 0x20 || c == b'"' || c == b'\\')
                    .count()
                    * 5
        }
        other => serde_json::to_vec(other).map_or(0, |v| v.len()),
    }
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

pub(crate) fn float(f: f64) -> Value {
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

pub(crate) fn pg_row(row: &sqlx::postgres::PgRow, budget: &mut Budget) -> Result<Vec<Value>> {
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
            "BYTEA" => try_get!(row, i, &[u8]).map(|v| v.map_or(Value::Null, |b| budget.blob(b))),
            "TIMESTAMPTZ" => try_get!(row, i, chrono::DateTime<chrono::Utc>)
                .map(|v| v.map(|t| t.to_rfc3339()).into()),
            "TIMESTAMP" => try_get!(row, i, chrono::NaiveDateTime).map(|v| {
                v.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                    .into()
            }),
            "DATE" => try_get!(row, i, chrono::NaiveDate).map(|v| v.map(|t| t.to_string()).into()),
            "TIME" => try_get!(row, i, chrono::NaiveTime).map(|v| v.map(|t| t.to_string()).into()),
            "UUID" => try_get!(row, i, sqlx::types::Uuid).map(|v| v.map(|u| u.to_string()).into()),
            // Parsed only when it fits the cell limit; cut as text otherwise.
            "JSON" | "JSONB" if raw.as_bytes().map_or(0, <[u8]>::len) <= budget.cell_limit() => {
                try_get!(row, i, Value).map(Option::unwrap_or_default)
            }
            "JSON" | "JSONB" => {
                let bytes = raw.as_bytes().unwrap_or_default();
                // Binary JSONB starts with its format version.
                let text = if ty == "JSONB" && bytes.first() == Some(&1) {
                    &bytes[1..]
                } else {
                    bytes
                };
                Ok(budget.text(&String::from_utf8_lossy(text)))
            }
            // A function that returns nothing (pg_advisory_lock, pg_sleep, …).
            "VOID" => Ok(Value::Null),
            _ => try_get!(row, i, &str).map(|v| v.map_or(Value::Null, |s| budget.text(s))),
        };
        out.push(v.map_err(|_| decode_error(col.name(), &ty))?);
    }
    Ok(out)
}

pub(crate) fn mysql_row(row: &sqlx::mysql::MySqlRow, budget: &mut Budget) -> Result<Vec<Value>> {
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
            "JSON" => match try_get!(row, i, &str) {
                Ok(Some(s)) if s.len() <= budget.cell_limit() => {
                    Ok(serde_json::from_str(s).unwrap_or_else(|_| s.into()))
                }
                other => other.map(|v| v.map_or(Value::Null, |s| budget.text(s))),
            },
            "BINARY" | "VARBINARY" | "TINYBLOB" | "BLOB" | "MEDIUMBLOB" | "LONGBLOB" => {
                try_get!(row, i, &[u8]).map(|v| v.map_or(Value::Null, |b| budget.blob(b)))
            }
            _ => try_get!(row, i, &str).map(|v| v.map_or(Value::Null, |s| budget.text(s))),
        };
        out.push(v.map_err(|_| decode_error(col.name(), &ty))?);
    }
    Ok(out)
}

pub(crate) fn pg_columns(row: &sqlx::postgres::PgRow) -> Vec<Column> {
    columns(row)
}

pub(crate) fn mysql_columns(row: &sqlx::mysql::MySqlRow) -> Vec<Column> {
    columns(row)
}

/// A JSON parameter as the broker binds it, on every driver: null, booleans, integers,
/// floats and text as themselves; arrays and objects as JSON.
#[derive(Debug)]
pub(crate) enum Param<'a> {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(&'a str),
    /// A number neither `i64` nor `f64` holds, as its text.
    Digits(String),
    Json(&'a serde_json::Value),
}

impl<'a> Param<'a> {
    pub(crate) fn of(v: &'a serde_json::Value) -> Self {
        use serde_json::Value as V;
        match v {
            V::Null => Self::Null,
            V::Bool(b) => Self::Bool(*b),
            V::Number(n) => match (n.as_i64(), n.as_f64()) {
                (Some(i), _) => Self::Int(i),
                (None, Some(f)) => Self::Float(f),
                (None, None) => Self::Digits(n.to_string()),
            },
            V::String(s) => Self::Text(s),
            other => Self::Json(other),
        }
    }
}

/// Binds JSON parameters to a sqlx query (see [`Param`]).
macro_rules! bind_json {
    ($query:expr, $params:expr) => {{
        let mut q = $query;
        for p in $params {
            q = match $crate::value::Param::of(p) {
                $crate::value::Param::Null => q.bind(None::<String>),
                $crate::value::Param::Bool(b) => q.bind(b),
                $crate::value::Param::Int(i) => q.bind(i),
                $crate::value::Param::Float(f) => q.bind(f),
                $crate::value::Param::Text(s) => q.bind(s),
                $crate::value::Param::Digits(d) => q.bind(d),
                $crate::value::Param::Json(j) => q.bind(sqlx::types::Json(j.clone())),
            };
        }
        q
    }};
}
pub(crate) use bind_json;
