//! A point `SELECT` by primary key (10,000 rows) through the broker, beside the same query
//! on a plain sqlx pool holding the credentials itself, on SQLite, Postgres and MariaDB.
//! The broker adds its statement check, a read-only transaction with a statement timeout,
//! the row limit, JSON rows and the session reset.

use std::hint::black_box;

use coffer_broker::{Broker, ConnectionId, ConnectionParams, Limits};
use coffer_testkit::postgres::TestDatabase;
use criterion::Criterion;
use serde_json::json;
use sqlx::Connection as _;

use crate::report::Report;

const ROWS: i64 = 10_000;
const OWNER: &str = "bench";

/// A plain pool on the same database as a broker connection.
enum Plain {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
    Mysql(sqlx::MySqlPool),
}

macro_rules! point_select {
    ($pool:expr, $sql:expr, $id:expr) => {{
        let row: (i64, String, i64) = sqlx::query_as(sqlx::AssertSqlSafe($sql))
            .bind($id)
            .fetch_one($pool)
            .await
            .expect("point select");
        row
    }};
}

impl Plain {
    async fn select(&self, sql: &str, id: i64) -> (i64, String, i64) {
        match self {
            Plain::Sqlite(pool) => point_select!(pool, sql, id),
            Plain::Postgres(pool) => point_select!(pool, sql, id),
            Plain::Mysql(pool) => point_select!(pool, sql, id),
        }
    }
}

/// One database: its plain pool, its broker connection and the statement both run.
struct Target {
    label: &'static str,
    plain: Plain,
    id: ConnectionId,
    select: String,
}

/// The statements that create and fill the table, 500 rows per `INSERT`.
fn setup_sql(table: &str) -> Vec<String> {
    let mut sql = vec![format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price BIGINT NOT NULL)"
    )];
    for chunk in (1..=ROWS).collect::<Vec<_>>().chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|n| format!("({n}, 'product {n}', {})", n * 100))
            .collect();
        sql.push(format!(
            "INSERT INTO {table} (id, name, price) VALUES {}",
            values.join(", ")
        ));
    }
    sql
}

async fn run_all<C: sqlx::Connection>(conn: &mut C, statements: &[String])
where
    for<'c> &'c mut C: sqlx::Executor<'c, Database = C::Database>,
{
    for sql in statements {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut *conn)
            .await
            .expect("create the bench table");
    }
}

async fn targets(
    broker: &Broker,
    dir: &std::path::Path,
    table: &str,
    database: Option<&TestDatabase>,
    mysql: Option<&str>,
) -> Vec<Target> {
    let setup = setup_sql(table);
    let select = format!("SELECT id, name, price FROM {table} WHERE id = ?");
    let mut targets = Vec::new();

    let path = dir.join("broker.db");
    let url = format!("sqlite://{}?mode=rwc", path.display());
    run_all(
        &mut sqlx::SqliteConnection::connect(&url).await.expect("SQLite"),
        &setup,
    )
    .await;
    targets.push(Target {
        label: "SQLite",
        plain: Plain::Sqlite(sqlx::SqlitePool::connect(&url).await.expect("SQLite pool")),
        id: broker
            .connect(OWNER, ConnectionParams::sqlite(&path))
            .await
            .expect("broker connect"),
        select: select.clone(),
    });

    if let Some(db) = database {
        run_all(
            &mut sqlx::PgConnection::connect(db.url())
                .await
                .expect("Postgres"),
            &setup,
        )
        .await;
        targets.push(Target {
            label: "Postgres",
            plain: Plain::Postgres(sqlx::PgPool::connect(db.url()).await.expect("pool")),
            id: broker
                .connect(
                    OWNER,
                    // The bench's server account is privileged; the check is at connect
                    // only, so it does not change what a call costs.
                    ConnectionParams::from_url(&db.url().to_owned().into())
                        .expect("params")
                        .allow_privileged(true),
                )
                .await
                .expect("broker connect"),
            select: select.replace('?', "$1"),
        });
    } else {
        eprintln!("COFFER_TEST_POSTGRES_URL is not set: skipping the Postgres rows");
    }

    if let Some(url) = mysql {
        run_all(
            &mut sqlx::MySqlConnection::connect(url).await.expect("MariaDB"),
            &setup,
        )
        .await;
        targets.push(Target {
            label: "MariaDB",
            plain: Plain::Mysql(sqlx::MySqlPool::connect(url).await.expect("pool")),
            id: broker
                .connect(
                    OWNER,
                    ConnectionParams::from_url(&url.to_owned().into())
                        .expect("params")
                        .allow_privileged(true),
                )
                .await
                .expect("broker connect"),
            select,
        });
    } else {
        eprintln!("COFFER_TEST_MYSQL_URL is not set: skipping the MariaDB rows");
    }
    targets
}

pub(crate) fn bench(c: &mut Criterion, report: &mut Report, rt: &tokio::runtime::Runtime) {
    let broker = Broker::new(Limits::default());
    let dir = tempfile::tempdir().expect("a temporary directory");
    let table = format!("broker_bench_{:08x}", rand::random::<u32>());
    let database = rt.block_on(TestDatabase::create());
    let mysql = coffer_testkit::service_env("COFFER_TEST_MYSQL_URL");
    let targets = rt.block_on(targets(
        &broker,
        dir.path(),
        &table,
        database.as_ref(),
        mysql.as_deref(),
    ));

    let mut group = report.group(
        c,
        "broker point select",
        "One row by primary key of 10,000: through the broker by connection id, beside the \
         same statement on a plain sqlx pool that holds the credentials itself. Each broker \
         call is its own transaction: one round trip opens it read-only with a statement \
         timeout, one ends it and releases session locks; on Postgres the statement is \
         unnamed (transaction poolers such as PgBouncer keep no prepared statements), \
         which costs a round trip more.",
    );
    let mut n = 0i64;
    for target in &targets {
        let plain = format!("{}: plain sqlx pool", target.label);
        group.row(&plain, None, |b| {
            b.to_async(rt).iter(|| {
                n = n % ROWS + 1;
                let (target, id) = (target, n);
                async move { black_box(target.plain.select(&target.select, id).await) }
            });
        });
        group.row(&format!("{}: broker", target.label), Some(&plain), |b| {
            b.to_async(rt).iter(|| {
                n = n % ROWS + 1;
                let (broker, target, id) = (&broker, target, n);
                async move {
                    black_box(
                        broker
                            .query(OWNER, &target.id, &target.select, &[json!(id)])
                            .await
                            .expect("broker query"),
                    )
                }
            });
        });
    }
    group.finish();

    rt.block_on(async {
        broker.shutdown().await;
        if let Some(url) = &mysql {
            let mut conn = sqlx::MySqlConnection::connect(url).await.expect("MariaDB");
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
                .execute(&mut conn)
                .await
                .expect("drop the bench table");
        }
    });
    drop(targets);
    drop(database);
}
