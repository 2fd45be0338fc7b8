//! Postgres on the broker's call protocol: its transaction batches, its session reset,
//! its rows as JSON, and the pool's connect-time probe.

use std::sync::Arc;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::postgres::{PgPool, PgRow};

use coffer_sql::tls::CleartextGuard;

use crate::privileges;
use crate::statement::Dialect;
use crate::value::{Budget, exact, float, json_row, try_get};
use crate::{Engine, Mode, Result};

use super::server::Server;
use super::{Opening, accept_probe};

/// What a read-write call's statement may have left on the session, cleared after its
/// commit in the same round trip: `DISCARD ALL` but for the parts that cannot run in a
/// batch (prepared statements stay unnamed here, and cursors cannot be declared).
const READ_WRITE_END: &str = "COMMIT; RESET ALL; RESET ROLE; RESET SESSION AUTHORIZATION; \
     UNLISTEN *; DISCARD TEMP; DISCARD SEQUENCES; SELECT pg_advisory_unlock_all()";

/// A read-only call's settings went with its rollback; what is left outside the
/// transaction is advisory locks.
const READ_ONLY_END: &str = "ROLLBACK; SELECT pg_advisory_unlock_all()";

impl Server for sqlx::Postgres {
    type Flavor = ();
    const PERSISTENT: bool = false;

    /// `SELECT 1` takes the snapshot: from then on the transaction's read-only mode can no
    /// longer be changed.
    fn begin((): (), mode: Mode, timeout_ms: u128) -> String {
        let begin = mode.pick("BEGIN READ ONLY", "BEGIN");
        format!("{begin}; SET LOCAL statement_timeout = {timeout_ms}; SELECT 1")
    }

    fn end(mode: Mode) -> &'static str {
        mode.pick(READ_ONLY_END, READ_WRITE_END)
    }

    fn row(row: &PgRow, budget: &mut Budget) -> Result<Vec<Value>> {
        json_row(row, budget, |i, ty, budget| {
            let raw = row.try_get_raw(i)?;
            match ty {
                "BOOL" => try_get!(row, i, bool).map(|v| v.into()),
                "INT2" => try_get!(row, i, i16).map(|v| v.into()),
                "INT4" => try_get!(row, i, i32).map(|v| v.into()),
                "INT8" => try_get!(row, i, i64).map(|v| v.into()),
                "OID" => {
                    try_get!(row, i, sqlx::postgres::types::Oid).map(|v| v.map(|o| o.0).into())
                }
                "FLOAT4" => {
                    try_get!(row, i, f32).map(|v| v.map_or(Value::Null, |f| float(f.into())))
                }
                "FLOAT8" => try_get!(row, i, f64).map(|v| v.map_or(Value::Null, float)),
                "NUMERIC" => {
                    try_get!(row, i, sqlx::types::BigDecimal).map(|v| v.map(|d| exact(&d)).into())
                }
                "BYTEA" => {
                    try_get!(row, i, &[u8]).map(|v| v.map_or(Value::Null, |b| budget.blob(b)))
                }
                "TIMESTAMPTZ" => try_get!(row, i, chrono::DateTime<chrono::Utc>)
                    .map(|v| v.map(|t| t.to_rfc3339()).into()),
                "TIMESTAMP" => try_get!(row, i, chrono::NaiveDateTime).map(|v| {
                    v.map(|t| t.format("%Y-%m-%dT%H:%M:%S%.f").to_string())
                        .into()
                }),
                "DATE" => {
                    try_get!(row, i, chrono::NaiveDate).map(|v| v.map(|t| t.to_string()).into())
                }
                "TIME" => {
                    try_get!(row, i, chrono::NaiveTime).map(|v| v.map(|t| t.to_string()).into())
                }
                "UUID" => {
                    try_get!(row, i, sqlx::types::Uuid).map(|v| v.map(|u| u.to_string()).into())
                }
                // Parsed only when it fits the cell limit; cut as text otherwise.
                "JSON" | "JSONB"
                    if raw.as_bytes().map_or(0, <[u8]>::len) <= budget.cell_limit() =>
                {
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
            }
        })
    }
}

/// Opens the pool of `params` and probes it: how the server reads string literals, and
/// (for a guarded read-only connection) whether the role can leave a read-only
/// transaction, which refuses the connection.
pub(super) async fn open(
    opening: &Opening<'_>,
) -> Result<(PgPool, Dialect, Option<Arc<CleartextGuard>>)> {
    let (params, guarded, secrets) = (opening.params, opening.guarded, opening.secrets);
    let target = params.pg_target()?;
    let pool = opening.connect::<sqlx::Postgres>(&target).await?;
    let probed = async {
        let (standard,): (String,) =
            sqlx::query_as("SELECT current_setting('standard_conforming_strings')::text")
                .fetch_one(&pool)
                .await?;
        let escapes = if guarded {
            let f: (bool, bool, bool, bool, bool, bool, bool) =
                sqlx::query_as(privileges::PG_QUERY)
                    .fetch_one(&pool)
                    .await?;
            privileges::pg_escapes(&[f.0, f.1, f.2, f.3, f.4, f.5, f.6])
        } else {
            Vec::new()
        };
        Ok::<_, sqlx::Error>((standard, escapes))
    }
    .await;
    let user = params.user().unwrap_or_default();
    let standard = accept_probe(&pool, probed, Engine::Postgres, user, secrets).await?;
    let dialect = Dialect {
        kind: Engine::Postgres,
        backslash_escapes: standard != "on",
    };
    Ok((pool, dialect, target.guard().cloned()))
}
