//! MySQL and MariaDB on the broker's call protocol: the flavor's statement timeout, the
//! transaction batches, the prepared-statement cache, rows as JSON, and the pool's
//! connect-time probe.

use std::sync::Arc;

use serde_json::Value;
use sqlx::Row as _;
use sqlx::mysql::{MySqlPool, MySqlRow};
use sqlx::pool::PoolConnection;

use coffer_sql::tls::CleartextGuard;

use crate::params::MYSQL_STATEMENT_CACHE;
use crate::privileges;
use crate::statement::Dialect;
use crate::value::{Budget, float, json_row, try_get};
use crate::{Engine, Mode, Result};

use super::server::Server;
use super::{Opening, accept_probe};

/// Which server speaks the MySQL protocol: they bound a statement's time differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MysqlFlavor {
    Mysql,
    Mariadb,
}

impl Server for sqlx::MySql {
    type Flavor = MysqlFlavor;

    /// MySQL connections keep their callers' prepared statements
    /// ([`MYSQL_STATEMENT_CACHE`] per connection) instead of closing each one after use:
    /// sqlx 0.9 sends `COM_STMT_CLOSE`, which the server never answers, on a socket
    /// without `TCP_NODELAY`, so the next command waited for the server's delayed ACK,
    /// about 40 ms per call (sqlx issue #4335). See [`Server::after_statement`].
    const PERSISTENT: bool = true;

    /// The session setting that bounds a statement's time (MariaDB's in seconds, MySQL's
    /// in milliseconds), then the transaction.
    fn begin(flavor: MysqlFlavor, mode: Mode, timeout_ms: u128) -> String {
        let timeout = match flavor {
            MysqlFlavor::Mariadb => {
                format!(
                    "SET SESSION max_statement_time = {}",
                    timeout_ms as f64 / 1000.0
                )
            }
            MysqlFlavor::Mysql => format!("SET SESSION max_execution_time = {timeout_ms}"),
        };
        let begin = mode.pick("START TRANSACTION READ ONLY", "START TRANSACTION");
        format!("{timeout}; {begin}")
    }

    /// The end of the transaction, and the named locks (`GET_LOCK`) a statement took.
    fn end(mode: Mode) -> &'static str {
        mode.pick(
            "ROLLBACK; DO RELEASE_ALL_LOCKS()",
            "COMMIT; DO RELEASE_ALL_LOCKS()",
        )
    }

    fn row(row: &MySqlRow, budget: &mut Budget) -> Result<Vec<Value>> {
        json_row(row, budget, |i, ty, budget| match ty {
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
        })
    }

    /// Evicting from a full statement cache would send the same unanswered close (see
    /// [`PERSISTENT`](Server::PERSISTENT)), so a connection whose cache is full is
    /// closed after its call instead: the pool opens a fresh one, which costs a login
    /// once per that many distinct statements.
    fn after_statement(c: &mut PoolConnection<Self>) {
        if sqlx::Connection::cached_statements_size(&**c) >= MYSQL_STATEMENT_CACHE {
            c.close_on_drop();
        }
    }
}

/// Opens the pool of `params` and probes it: the server (MariaDB or MySQL), whether it
/// reads backslash escapes, and (for a guarded read-only connection) the role's grants
/// that could leave a read-only transaction, which refuse the connection.
pub(super) async fn open(
    opening: &Opening<'_>,
) -> Result<(MySqlPool, MysqlFlavor, Dialect, Option<Arc<CleartextGuard>>)> {
    let (params, guarded, secrets) = (opening.params, opening.guarded, opening.secrets);
    let target = params.mysql_target()?;
    let pool = opening.connect::<sqlx::MySql>(&target).await?;
    let probed = async {
        let (version, sql_mode): (String, String) =
            sqlx::query_as("SELECT VERSION(), CAST(@@SESSION.sql_mode AS CHAR)")
                .fetch_one(&pool)
                .await?;
        let escapes = if guarded {
            let rows = sqlx::raw_sql("SHOW GRANTS").fetch_all(&pool).await?;
            let lines: Vec<String> = rows
                .iter()
                .filter_map(|r| r.try_get::<String, _>(0).ok())
                .collect();
            privileges::mysql_escapes(&lines)
        } else {
            Vec::new()
        };
        Ok::<_, sqlx::Error>(((version, sql_mode), escapes))
    }
    .await;
    let user = params.user().unwrap_or_default();
    let (version, sql_mode) = accept_probe(&pool, probed, Engine::Mysql, user, secrets).await?;
    let flavor = if version.to_ascii_lowercase().contains("mariadb") {
        MysqlFlavor::Mariadb
    } else {
        MysqlFlavor::Mysql
    };
    let dialect = Dialect {
        kind: Engine::Mysql,
        backslash_escapes: !sql_mode
            .to_ascii_uppercase()
            .contains("NO_BACKSLASH_ESCAPES"),
    };
    Ok((pool, flavor, dialect, target.guard().cloned()))
}
