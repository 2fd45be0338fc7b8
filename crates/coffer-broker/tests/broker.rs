//! The broker against real Postgres, MariaDB and SQLite: read-only bypasses refused with
//! the table intact, timeouts, row limits, ids and ownership, lifecycle, values, leaks.

use std::str::FromStr as _;
use std::time::Duration;

use coffer_broker::{
    Broker, BrokerError, ConnectionId, ConnectionParams, DatabaseKind, Limits, Mode,
};
use coffer_testkit::service_env;
use serde_json::{Value, json};

mod support;
use support::{admin_exec, admin_scalar, count, setup};

fn short_limits() -> Limits {
    let mut limits = Limits::default();
    limits.statement_timeout = Duration::from_millis(800);
    limits.row_limit = 100;
    limits
}

/// Each bypass on its own, each leaving the row count unchanged.
async fn bypasses(kind: DatabaseKind, extra: &[&str]) {
    let Some(db) = setup(kind).await else { return };
    let broker = Broker::new(short_limits());
    let id = broker.connect("owner", db.params.clone()).await.unwrap();
    let t = &db.table;
    let mut attempts: Vec<String> = [
        "COMMIT; DROP TABLE {t}",
        "/*x*/ DELETE FROM {t}",
        "DELETE FROM {t}",
        "WITH a AS (SELECT 1) DELETE FROM {t}",
        "SET TRANSACTION READ WRITE",
        "SELECT 1; DELETE FROM {t}",
        "DROP TABLE {t}",
        "UPDATE {t} SET name = 'x'",
        "INSERT INTO {t} (id, name) VALUES (99, 'z')",
        "TRUNCATE TABLE {t}",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    attempts.extend(extra.iter().map(|s| s.to_string()));
    for attempt in &attempts {
        let sql = attempt.replace("{t}", t);
        let result = broker.query("owner", &id, &sql, &[]).await;
        assert!(result.is_err(), "{kind}: {sql} was not refused: {result:?}");
        assert_eq!(count(&db).await, 10, "{kind}: {sql} changed the table");
        // The connection still works after each refusal.
        let ok = broker
            .query("owner", &id, &format!("SELECT COUNT(*) AS n FROM {t}"), &[])
            .await
            .unwrap();
        assert_eq!(ok.rows[0][0], json!(10), "{kind} after {sql}");
    }
    broker.shutdown().await;
    db.drop_table().await;
}

#[tokio::test]
async fn postgres_read_only_bypasses_are_refused() {
    bypasses(
        DatabaseKind::Postgres,
        &[
            "SET default_transaction_read_only = off",
            "SET ROLE postgres",
            "COPY {t} TO PROGRAM 'id'",
            "DO $$ BEGIN DELETE FROM {t}; END $$",
            "WITH d AS (DELETE FROM {t} RETURNING *) SELECT * FROM d",
            "EXPLAIN ANALYZE DELETE FROM {t}",
            "SELECT * INTO broker_copy FROM {t}",
            "/* a */ BEGIN READ WRITE",
            "SELECT 1 /* ; */ ; DELETE FROM {t}",
            "SELECT $$;$$; DELETE FROM {t}",
        ],
    )
    .await;
}

#[tokio::test]
async fn mysql_read_only_bypasses_are_refused() {
    bypasses(
        DatabaseKind::Mysql,
        &[
            "SET SESSION TRANSACTION READ WRITE",
            "SELECT * FROM {t} INTO OUTFILE '/tmp/coffer-broker-outfile'",
            "/*! DELETE FROM {t} */",
            "SELECT 1 # ;\n; DELETE FROM {t}",
            "REPLACE INTO {t} (id, name) VALUES (1, 'z')",
            "LOCK TABLES {t} WRITE",
            "CALL mysql.rds_kill(1)",
        ],
    )
    .await;
}

#[tokio::test]
async fn sqlite_read_only_bypasses_are_refused() {
    bypasses(
        DatabaseKind::Sqlite,
        &[
            "PRAGMA query_only = 0",
            "ATTACH DATABASE ':memory:' AS x",
            "VACUUM",
            "WITH d AS (SELECT 1) UPDATE {t} SET name = 'x'",
            "SELECT 1;\n DELETE FROM {t}",
        ],
    )
    .await;
}

async fn timeout_and_row_limit(kind: DatabaseKind, sleep: &str, many: &str) {
    let Some(db) = setup(kind).await else { return };
    let broker = Broker::new(short_limits());
    let id = broker.connect("owner", db.params.clone()).await.unwrap();
    let started = std::time::Instant::now();
    let err = broker.query("owner", &id, sleep, &[]).await.unwrap_err();
    assert!(matches!(err, BrokerError::Timeout { .. }), "{kind}: {err}");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{kind}: not stopped"
    );
    let rows = broker.query("owner", &id, many, &[]).await.unwrap();
    assert_eq!(rows.rows.len(), 100, "{kind}");
    assert!(rows.truncated, "{kind}");
    // Still usable, and a small result is not truncated.
    let small = broker
        .query(
            "owner",
            &id,
            &format!("SELECT id FROM {} ORDER BY id", db.table),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(small.rows.len(), 10);
    assert!(!small.truncated);
    broker.shutdown().await;
    db.drop_table().await;
}

#[tokio::test]
async fn postgres_timeout_and_row_limit() {
    timeout_and_row_limit(
        DatabaseKind::Postgres,
        "SELECT pg_sleep(30)",
        "SELECT generate_series(1, 10000000) AS n",
    )
    .await;
}

#[tokio::test]
async fn mysql_timeout_and_row_limit() {
    timeout_and_row_limit(
        DatabaseKind::Mysql,
        "SELECT COUNT(*) FROM information_schema.columns a, information_schema.columns b, \
         information_schema.columns c",
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10000000) \
         SELECT n FROM s",
    )
    .await;
}

#[tokio::test]
async fn sqlite_timeout_and_row_limit() {
    timeout_and_row_limit(
        DatabaseKind::Sqlite,
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s) \
         SELECT COUNT(*) FROM s",
        "WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 10000000) \
         SELECT n FROM s",
    )
    .await;
}

#[tokio::test]
async fn ids_belong_to_their_owner() {
    let Some(db) = setup(DatabaseKind::Sqlite).await else {
        return;
    };
    let mut limits = short_limits();
    limits.max_per_owner = 2;
    limits.idle_timeout = Duration::from_millis(300);
    let broker = Broker::new(limits);
    let id = broker.connect("alice", db.params.clone()).await.unwrap();
    assert!(id.as_str().starts_with("conn_") && id.as_str().len() == 37);
    let select = "SELECT 1";
    broker.query("alice", &id, select, &[]).await.unwrap();
    let not_found = |r: Result<_, BrokerError>| match r {
        Err(e @ BrokerError::NotFound) => e.to_string(),
        Err(e) => panic!("expected NotFound, got {e}"),
        Ok(_) => panic!("expected NotFound"),
    };
    let other = not_found(broker.query("bob", &id, select, &[]).await.map(|_| ()));
    let random = not_found(
        broker
            .query("alice", &ConnectionId::from_string("conn_00"), select, &[])
            .await
            .map(|_| ()),
    );
    assert!(broker.info("bob", &id).await.is_err() && broker.list("bob").is_empty());
    assert_eq!(broker.list("alice").len(), 1);

    // The cap per owner.
    let second = broker.connect("alice", db.params.clone()).await.unwrap();
    let err = broker
        .connect("alice", db.params.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Limit { .. }), "{err}");
    broker.connect("bob", db.params.clone()).await.unwrap();

    broker.disconnect("alice", &second).await.unwrap();
    let gone = not_found(
        broker
            .query("alice", &second, select, &[])
            .await
            .map(|_| ()),
    );

    // Idle past the timeout: expired, the same answer.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let expired = not_found(broker.query("alice", &id, select, &[]).await.map(|_| ()));
    for text in [other, random, gone, expired] {
        assert_eq!(text, "connection not found");
    }
    broker.shutdown().await;
    let err = broker
        .connect("alice", db.params.clone())
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::ShutDown));
}

#[tokio::test]
async fn reaper_closes_idle_connections() {
    let Some(db) = setup(DatabaseKind::Sqlite).await else {
        return;
    };
    let mut limits = short_limits();
    limits.idle_timeout = Duration::from_millis(100);
    limits.reap_interval = Duration::from_millis(50);
    let broker = Broker::new(limits);
    broker.connect("o", db.params.clone()).await.unwrap();
    broker.connect("o", db.params.clone()).await.unwrap();
    for _ in 0..100 {
        if broker.list("o").is_empty() && format!("{broker:?}").contains("connections: 0") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("the reaper left connections open: {broker:?}");
}

#[tokio::test]
async fn postgres_values_schema_info_and_writes() {
    let Some(db) = setup(DatabaseKind::Postgres).await else {
        return;
    };
    let broker = Broker::new(short_limits());
    let id = broker.connect("o", db.params.clone()).await.unwrap();
    let r = broker
        .query(
            "o",
            &id,
            "SELECT 1::int4 AS i, 2::int8 AS b, 1.5::float8 AS f, \
             12345678901234567890.123456789::numeric AS n, 'x'::text AS t, true AS yes, \
             NULL::int AS none, '2026-01-02T03:04:05Z'::timestamptz AS at, \
             '\\x0102ff'::bytea AS bytes, '{\"a\": [1]}'::jsonb AS j, $1::text AS p, $2::int8 AS q",
            &[json!("bound ' \" ; value"), json!(42)],
        )
        .await
        .unwrap();
    let names: Vec<&str> = r.columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "i", "b", "f", "n", "t", "yes", "none", "at", "bytes", "j", "p", "q"
        ]
    );
    assert_eq!(r.columns[3].type_name, "NUMERIC");
    assert_eq!(
        r.rows[0],
        vec![
            json!(1),
            json!(2),
            json!(1.5),
            json!("12345678901234567890.123456789"),
            json!("x"),
            json!(true),
            Value::Null,
            json!("2026-01-02T03:04:05+00:00"),
            json!("AQL/"),
            json!({"a": [1]}),
            json!("bound ' \" ; value"),
            json!(42),
        ]
    );
    // Empty results still name their columns.
    let empty = broker
        .query(
            "o",
            &id,
            &format!("SELECT id, name FROM {} WHERE id < 0", db.table),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(empty.columns.len(), 2);
    assert!(empty.rows.is_empty());

    let tables = broker.schema("o", &id).await.unwrap().tables;
    let t = tables.iter().find(|t| t.name == db.table).unwrap();
    assert_eq!(t.schema.as_deref(), Some("public"));
    assert_eq!(t.columns[0].name, "id");
    assert_eq!(t.columns[0].type_name, "integer");
    assert!(!t.columns[0].nullable && t.columns[1].nullable);

    let info = broker.info("o", &id).await.unwrap();
    assert_eq!(
        (info.kind, info.mode),
        (DatabaseKind::Postgres, Mode::ReadOnly)
    );
    assert_eq!(info.user.as_deref(), db.params.user());

    // Writes: refused on read-only, done on read-write, one statement each.
    let err = broker
        .execute(
            "o",
            &id,
            &format!("DELETE FROM {} WHERE id = $1", db.table),
            &[json!(1)],
        )
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Rejected { .. }), "{err}");
    let rw = broker.connect("o", db.rw.clone()).await.unwrap();
    let n = broker
        .execute(
            "o",
            &rw,
            &format!("DELETE FROM {} WHERE id = $1", db.table),
            &[json!(1)],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert_eq!(count(&db).await, 9);
    broker.shutdown().await;
    db.drop_table().await;
}

#[tokio::test]
async fn mysql_and_sqlite_values() {
    for kind in [DatabaseKind::Mysql, DatabaseKind::Sqlite] {
        let Some(db) = setup(kind).await else {
            continue;
        };
        let broker = Broker::new(short_limits());
        let id = broker.connect("o", db.params.clone()).await.unwrap();
        let r = broker
            .query(
                "o",
                &id,
                &format!("SELECT id, name, ? AS p FROM {} WHERE id = ?", db.table),
                &[json!("it's"), json!(3)],
            )
            .await
            .unwrap();
        assert_eq!(
            r.rows,
            vec![vec![json!(3), json!("c"), json!("it's")]],
            "{kind}"
        );
        let tables = broker.schema("o", &id).await.unwrap().tables;
        let t = tables.iter().find(|t| t.name == db.table).unwrap();
        assert_eq!(t.columns.len(), 2, "{kind}");
        broker.shutdown().await;
        db.drop_table().await;
    }
}

/// MySQL connections keep prepared statements, and one whose cache is full is replaced
/// rather than evicting (which would stall the next command on the server's delayed ACK):
/// over 250 distinct statements on a one-connection pool every answer is right, and the
/// server connection is replaced as the cache fills.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_prepared_statements_stay_bounded() {
    let Some(db) = setup(DatabaseKind::Mysql).await else {
        return;
    };
    let mut limits = short_limits();
    limits.pool_size = 1;
    let broker = Broker::new(limits);
    let id = broker.connect("o", db.rw.clone()).await.unwrap();
    let mut sessions = std::collections::HashSet::new();
    for k in 0..250i64 {
        let r = broker
            .query(
                "o",
                &id,
                &format!(
                    "SELECT name, {k} AS k, CONNECTION_ID() AS session FROM {} WHERE id = ?",
                    db.table
                ),
                &[json!(k % 10 + 1)],
            )
            .await
            .unwrap();
        let expected_name = ((b'a' + (k % 10) as u8) as char).to_string();
        assert_eq!(
            r.rows[0][..2],
            [json!(expected_name), json!(k)],
            "statement {k}"
        );
        sessions.insert(r.rows[0][2].clone());
        // Writes go through the same cache.
        if k % 50 == 0 {
            broker
                .execute(
                    "o",
                    &id,
                    &format!(
                        "UPDATE {} SET name = name WHERE id = ? AND {k} = {k}",
                        db.table
                    ),
                    &[json!(1)],
                )
                .await
                .unwrap();
        }
    }
    assert!(
        (3..=6).contains(&sessions.len()),
        "250 distinct statements, 100 per connection: {} connections",
        sessions.len()
    );
    broker.shutdown().await;
    db.drop_table().await;
}

#[tokio::test(flavor = "current_thread")]
async fn credentials_never_leak() {
    let Some(admin) = service_env("COFFER_TEST_MYSQL_URL") else {
        return;
    };
    let Some(pg_admin) = service_env("COFFER_TEST_POSTGRES_URL") else {
        return;
    };
    // The test's own setup (which sends the password to create the user) is not captured.
    let password = format!("Pw{:016x}", rand::random::<u64>());
    let user = format!("leak_{:06x}", rand::random::<u32>() & 0xff_ffff);
    admin_exec(
        DatabaseKind::Mysql,
        &admin,
        &format!("CREATE USER '{user}'@'%' IDENTIFIED BY '{password}'; GRANT SELECT ON test.* TO '{user}'@'%'"),
    )
    .await;
    let capture = coffer_testkit::LogCapture::default();
    let writer = capture.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let broker = Broker::new(short_limits());
    let mysql = sqlx::mysql::MySqlConnectOptions::from_str(&admin).unwrap();
    let good = ConnectionParams::mysql(mysql.get_host(), "test", &user, password.clone().into())
        .port(mysql.get_port());
    let mut errors = Vec::new();
    let id = broker.connect("o", good.clone()).await.unwrap();
    broker.query("o", &id, "SELECT 1", &[]).await.unwrap();
    errors.push(
        broker
            .query("o", &id, "SELECT nope FROM nowhere", &[])
            .await
            .unwrap_err(),
    );
    errors.push(
        broker
            .query("o", &id, "DELETE FROM t", &[])
            .await
            .unwrap_err(),
    );
    // A wrong password, and a password that is also the database's name, so the
    // server's own message carries it.
    let wrong = ConnectionParams::mysql(
        mysql.get_host(),
        "test",
        &user,
        format!("{password}x").into(),
    )
    .port(mysql.get_port());
    errors.push(broker.connect("o", wrong).await.unwrap_err());
    let pg = sqlx::postgres::PgConnectOptions::from_str(&pg_admin).unwrap();
    let echoed = ConnectionParams::postgres(
        pg.get_host(),
        &password,
        "postgres",
        password.clone().into(),
    )
    .port(pg.get_port());
    errors.push(broker.connect("o", echoed.clone()).await.unwrap_err());
    errors.push(broker.test_connection(&echoed).await.unwrap_err());
    let url = format!(
        "postgres://postgres:{password}@{}:{}/{password}",
        pg.get_host(),
        pg.get_port()
    );
    errors.push(
        broker
            .connect("o", ConnectionParams::from_url(&url.into()).unwrap())
            .await
            .unwrap_err(),
    );
    errors.push(
        broker
            .connect(
                "o",
                ConnectionParams::from_url(&format!("postgres://u:{password}@/x:badport").into())
                    .unwrap_or(good.clone()),
            )
            .await
            .map(|_| ())
            .err()
            .unwrap_or(BrokerError::NotFound),
    );
    let info = broker.info("o", &id).await.unwrap();
    broker.shutdown().await;
    drop(_guard);
    admin_exec(
        DatabaseKind::Mysql,
        &admin,
        &format!("DROP USER '{user}'@'%'"),
    )
    .await;

    let mut seen = capture.text();
    assert!(!seen.is_empty(), "tracing captured nothing");
    if let Some(at) = seen.find(&password) {
        let start = at.saturating_sub(300);
        panic!(
            "the password is in the logs: …{}…",
            &seen[start..(at + 100).min(seen.len())]
        );
    }
    for e in &errors {
        assert!(
            !format!("{e} {e:?}").contains(&password),
            "an error holds the password: {e:?}"
        );
    }
    for e in &errors {
        seen.push_str(&format!("\n{e}\n{e:?}"));
    }
    // (`echoed` names the password as its database, which Debug shows as a database name.)
    seen.push_str(&format!("{good:?}{info:?}{broker:?}"));
    seen.push_str(&serde_json::to_string(&info).unwrap());
    assert!(
        errors.iter().any(|e| e.to_string().contains("[REDACTED]")),
        "the echoing server error was not scrubbed: {errors:?}"
    );
    assert!(!seen.contains(&password), "the password leaked");
}

/// Session state a reading statement can create does not reach the next call: advisory
/// locks on Postgres, user variables on MariaDB.
#[tokio::test]
async fn no_session_state_survives_a_call() {
    let mut limits = short_limits();
    limits.pool_size = 1;
    if let Some(db) = setup(DatabaseKind::Postgres).await {
        let broker = Broker::new(limits.clone());
        let id = broker.connect("o", db.params.clone()).await.unwrap();
        let key = rand::random::<u32>() as i64;
        broker
            .query("o", &id, "SELECT pg_advisory_lock($1)", &[json!(key)])
            .await
            .unwrap();
        let held = broker
            .query(
                "o",
                &id,
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = $1::bigint::oid",
                &[json!(key)],
            )
            .await
            .unwrap();
        assert_eq!(
            held.rows[0][0],
            json!(0),
            "the advisory lock outlived its call"
        );
        broker.shutdown().await;
        db.drop_table().await;
    }
    if let Some(db) = setup(DatabaseKind::Mysql).await {
        let broker = Broker::new(limits);
        let id = broker.connect("o", db.params.clone()).await.unwrap();
        broker
            .query("o", &id, "SELECT @coffer_x := 5", &[])
            .await
            .unwrap();
        let after = broker
            .query("o", &id, "SELECT @coffer_x", &[])
            .await
            .unwrap();
        assert_eq!(
            after.rows[0][0],
            Value::Null,
            "a user variable outlived its call"
        );
        broker.shutdown().await;
        db.drop_table().await;
    }
}

/// Ends the server's connection `id` and waits until the server has let go of it.
async fn kill(kind: DatabaseKind, admin: &str, id: i64) {
    let (kill, alive) = match kind {
        DatabaseKind::Postgres => (
            format!("SELECT pg_terminate_backend({id}, 10000)"),
            format!("SELECT COUNT(*) FROM pg_stat_activity WHERE pid = {id}"),
        ),
        _ => (
            format!("KILL {id}"),
            format!("SELECT COUNT(*) FROM information_schema.processlist WHERE id = {id}"),
        ),
    };
    admin_exec(kind, admin, &kill).await;
    for _ in 0..100 {
        if admin_scalar(kind, admin, &alive).await == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("connection {id} outlived its kill");
}

/// A pooled connection the server killed between calls (a restart, an administrator, a
/// proxy's idle cut) costs the next call nothing: its first statement finds the
/// connection gone, and another connection serves the call. Each round kills the
/// connection that served the last call, which the next call takes first.
async fn killed_connections_are_replaced(kind: DatabaseKind) {
    let Some(db) = setup(kind).await else { return };
    let broker = Broker::new(short_limits());
    let id = broker.connect("owner", db.params.clone()).await.unwrap();
    let whoami = match kind {
        DatabaseKind::Postgres => "SELECT pg_backend_pid()::bigint AS id",
        _ => "SELECT CONNECTION_ID() AS id",
    };
    let mut killed = Vec::new();
    for _ in 0..3 {
        let served = broker.query("owner", &id, whoami, &[]).await.unwrap();
        let pid = served.rows[0][0].as_i64().expect("a connection id");
        assert!(!killed.contains(&pid), "a killed connection served a call");
        kill(kind, &db.admin, pid).await;
        killed.push(pid);
        let rows = broker
            .query(
                "owner",
                &id,
                &format!("SELECT COUNT(*) AS n FROM {}", db.table),
                &[],
            )
            .await
            .unwrap();
        assert_eq!(rows.rows[0][0].as_i64(), Some(10));
    }
    // Writes too, on a read-write connection.
    let rw = broker.connect("owner", db.rw.clone()).await.unwrap();
    let served = broker.query("owner", &rw, whoami, &[]).await.unwrap();
    let pid = served.rows[0][0].as_i64().unwrap();
    kill(kind, &db.admin, pid).await;
    let done = broker
        .execute(
            "owner",
            &rw,
            &format!("UPDATE {} SET name = 'z' WHERE id = 1", db.table),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(done, 1);
    broker.shutdown().await;
    db.drop_table().await;
}

#[tokio::test]
async fn postgres_killed_connections_are_replaced() {
    killed_connections_are_replaced(DatabaseKind::Postgres).await;
}

#[tokio::test]
async fn mysql_killed_connections_are_replaced() {
    killed_connections_are_replaced(DatabaseKind::Mysql).await;
}
