//! Rows as JSON-friendly values, and JSON parameters bound to statements.

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::{Column as _, TypeInfo as _};

use crate::BrokerError;

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

/// The columns of a row, as the server names them.
pub(crate) fn columns<R: sqlx::Row>(row: &R) -> Vec<Column> {
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

/// Column `$i` of `$row` as an `Option<$t>`.
macro_rules! try_get {
    ($row:expr, $i:expr, $t:ty) => {
        sqlx::Row::try_get::<Option<$t>, _>($row, $i)
    };
}
pub(crate) use try_get;

/// A decimal's exact value as text, without the trailing fractional zeros that the
/// binary NUMERIC decoding pads (`1.50` reads `1.5`; no digit of value is lost).
pub(crate) fn exact(d: &sqlx::types::BigDecimal) -> String {
    let text = d.to_string();
    if text.contains('.') && !text.contains(['e', 'E']) {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

pub(crate) fn decode_error(column: &str, type_name: &str) -> BrokerError {
    BrokerError::Database {
        code: None,
        message: format!("cannot decode column {column:?} of type {type_name}"),
    }
}

/// One row as JSON values: a NULL cell is `null`, any other is `cell(index, type name,
/// budget)`; a cell that does not decode is an error naming its column and type.
pub(crate) fn json_row<R: sqlx::Row>(
    row: &R,
    budget: &mut Budget,
    mut cell: impl FnMut(usize, &str, &mut Budget) -> std::result::Result<Value, sqlx::Error>,
) -> crate::Result<Vec<Value>>
where
    usize: sqlx::ColumnIndex<R>,
{
    use sqlx::ValueRef as _;
    let mut out = Vec::with_capacity(row.len());
    for (i, col) in row.columns().iter().enumerate() {
        let raw = row
            .try_get_raw(i)
            .map_err(|_| decode_error(col.name(), "?"))?;
        if raw.is_null() {
            out.push(Value::Null);
            continue;
        }
        let ty = col.type_info().name();
        out.push(cell(i, ty, budget).map_err(|_| decode_error(col.name(), ty))?);
    }
    Ok(out)
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
