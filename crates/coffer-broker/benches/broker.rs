//! The `broker` bench: a point `SELECT` by primary key through the broker beside the same
//! query on a plain sqlx pool, in the same run, on Postgres (COFFER_TEST_POSTGRES_URL)
//! and SQLite.
//!
//! `source scripts/services.sh && services_start; cargo bench -p coffer-broker --bench broker`

use std::hint::black_box;

use coffer_broker::{Broker, ConnectionParams, Limits};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;
use sqlx::Connection as _;

const ROWS: i64 = 10_000;

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let broker = Broker::new(Limits::default());
    let dir = tempfile::tempdir().unwrap();
    let table = format!("broker_bench_{:08x}", rand::random::<u32>());
    let create = format!(
        "CREATE TABLE {table} (id BIGINT PRIMARY KEY, name TEXT NOT NULL, price BIGINT NOT NULL)"
    );
    let fill = format!(
        "INSERT INTO {table} (id, name, price) \
         WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ROWS}) \
         SELECT n, 'product ' || n, n * 100 FROM s"
    );
    let select = format!("SELECT id, name, price FROM {table} WHERE id = $1");

    // SQLite.
    let path = dir.path().join("bench.db");
    let admin = format!("sqlite://{}?mode=rwc", path.display());
    let sqlite_pool = rt.block_on(async {
        let mut conn = sqlx::SqliteConnection::connect(&admin).await.unwrap();
        for sql in [&create, &fill] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await
                .unwrap();
        }
        sqlx::SqlitePool::connect(&admin).await.unwrap()
    });
    let sqlite_id = rt
        .block_on(broker.connect("bench", ConnectionParams::sqlite(&path)))
        .unwrap();
    let sqlite_select = select.replace("$1", "?");
    let mut group = c.benchmark_group("broker/point_select_sqlite");
    let mut i = 0i64;
    group.bench_function("sqlx pool", |b| {
        b.to_async(&rt).iter(|| {
            i = i % ROWS + 1;
            let (pool, sql) = (&sqlite_pool, &sqlite_select);
            async move {
                let row: (i64, String, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(i)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                black_box(row)
            }
        });
    });
    group.bench_function("broker", |b| {
        b.to_async(&rt).iter(|| {
            i = i % ROWS + 1;
            let (broker, id, sql) = (&broker, &sqlite_id, &sqlite_select);
            async move {
                let r = broker.query("bench", id, sql, &[json!(i)]).await.unwrap();
                black_box(r)
            }
        });
    });
    group.finish();

    // Postgres.
    let Ok(url) = std::env::var("COFFER_TEST_POSTGRES_URL") else {
        eprintln!("COFFER_TEST_POSTGRES_URL is not set: the Postgres rows are skipped");
        return;
    };
    let pg_pool = rt.block_on(async {
        let pool = sqlx::PgPool::connect(&url).await.unwrap();
        for sql in [&create, &fill] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&pool)
                .await
                .unwrap();
        }
        pool
    });
    let pg_id = rt
        .block_on(broker.connect(
            "bench",
            ConnectionParams::from_url(&url.clone().into()).unwrap(),
        ))
        .unwrap();
    let mut group = c.benchmark_group("broker/point_select_postgres");
    group.bench_function("sqlx pool", |b| {
        b.to_async(&rt).iter(|| {
            i = i % ROWS + 1;
            let (pool, sql) = (&pg_pool, &select);
            async move {
                let row: (i64, String, i64) = sqlx::query_as(sqlx::AssertSqlSafe(sql.as_str()))
                    .bind(i)
                    .fetch_one(pool)
                    .await
                    .unwrap();
                black_box(row)
            }
        });
    });
    group.bench_function("broker", |b| {
        b.to_async(&rt).iter(|| {
            i = i % ROWS + 1;
            let (broker, id, sql) = (&broker, &pg_id, &select);
            async move {
                let r = broker.query("bench", id, sql, &[json!(i)]).await.unwrap();
                black_box(r)
            }
        });
    });
    group.finish();
    rt.block_on(async {
        broker.shutdown().await;
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP TABLE {table}")))
            .execute(&pg_pool)
            .await
            .unwrap();
    });
}

criterion_group!(broker, benches);
criterion_main!(broker);
