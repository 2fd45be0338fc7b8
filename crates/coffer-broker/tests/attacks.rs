//! The attacks of issue 15, each performed for real against SQLite, MariaDB and Postgres.
//!
//! Each is tried twice where the engine can refuse it: through `query` (the statement
//! check refuses it first) and through `query_unchecked` (the `testing` hook that skips
//! the check), to show the engine itself holds. Each asserts the table unchanged, no file
//! created and the next call not weakened.

use std::sync::Arc;
use std::time::Duration;

use coffer_broker::{
    Broker, BrokerError, CELL_MARKER, ConnectionId, ConnectionParams, DatabaseKind, Limits,
    SessionState,
};
use coffer_store::{PutOptions, Scope, SecretName, SecretStore as _};
use serde_json::{Value, json};

mod support;
use support::{Db, admin_exec, admin_scalar, count, reader_role, setup};

fn limits() -> Limits {
    let mut limits = Limits::default();
    limits.statement_timeout = Duration::from_secs(5);
    // One connection, so the next call runs on the connection the attack used.
    limits.pool_size = 1;
    limits
}

/// `query` refused it, and so did the engine without the check.
async fn refused_both_ways(broker: &Broker, id: &ConnectionId, sql: &str) {
    let checked = broker.query("o", id, sql, &[]).await;
    assert!(
        matches!(checked, Err(BrokerError::Rejected { .. })),
        "the check let through {sql}: {checked:?}"
    );
    let unchecked = broker.query_unchecked("o", id, sql, &[]).await;
    assert!(unchecked.is_err(), "the engine ran {sql}: {unchecked:?}");
}

async fn refused(broker: &Broker, id: &ConnectionId, sql: &str) -> String {
    match broker.query("o", id, sql, &[]).await {
        Err(e @ BrokerError::Rejected { .. }) => e.to_string(),
        other => panic!("{sql}: {other:?}"),
    }
}

async fn clean_sqlite_session(broker: &Broker, id: &ConnectionId, read_only: bool) {
    let states = broker.sqlite_session_state("o", id).await.unwrap();
    assert!(!states.is_empty());
    for state in states {
        assert_eq!(
            state,
            SessionState {
                query_only: read_only,
                attached: 0,
                temp_objects: 0
            }
        );
    }
}

/// A coffer SQLite store holding another tenant's secret, in the same folder as the
/// agent's database.
async fn coffer_store_file(dir: &std::path::Path) -> std::path::PathBuf {
    let path = dir.join("coffer-secrets.db");
    let keyring = Arc::new(coffer_envelope::Keyring::new(
        coffer_envelope::MasterKey::generate(),
    ));
    let store = coffer_sql::SqliteStore::open(&path, keyring).await.unwrap();
    store
        .put(
            &Scope::new("tenant-b").unwrap(),
            &SecretName::new("openai_api_key").unwrap(),
            &"sk-tenant-b".into(),
            &PutOptions::new().description("tenant b's key"),
        )
        .await
        .unwrap();
    path
}

fn sqlite_db(kind: DatabaseKind) -> bool {
    kind == DatabaseKind::Sqlite
}

#[tokio::test]
async fn sqlite_read_only_cannot_leave_its_file() {
    let db: Db = setup(DatabaseKind::Sqlite).await.unwrap();
    assert!(sqlite_db(db.kind));
    let dir = db.dir.as_ref().unwrap().path().to_owned();
    let store = coffer_store_file(&dir).await;
    let t = &db.table;
    let broker = Broker::new(limits());
    let id = broker.connect("o", db.params.clone()).await.unwrap();
    let store_path = store.display().to_string();
    let out = dir.join("out.db");
    let out_path = out.display().to_string();

    // The bypass: a `'` inside [..] hid the `;` from the old lexer.
    for sql in [
        format!("SELECT 1 AS [a'];ATTACH DATABASE '{store_path}' AS s; SELECT 1 AS [']"),
        "SELECT 1 AS [a'];PRAGMA query_only = 0; SELECT 1 AS [']".to_owned(),
        format!(
            "SELECT 1 AS [a'];CREATE TEMP VIEW {t} AS SELECT 99 AS id, 'forged' AS name; SELECT 1 AS [']"
        ),
        format!("SELECT 1 AS [a'];VACUUM INTO '{out_path}'; SELECT 1 AS [']"),
    ] {
        refused(&broker, &id, &sql).await;
    }
    // The same statements, past the check, refused by the engine: ATTACH the coffer
    // store file and read tenant b's rows, turn query_only off, shadow the table with a
    // TEMP VIEW, VACUUM INTO a file, load an extension.
    for sql in [
        format!("ATTACH DATABASE '{store_path}' AS s"),
        format!("SELECT * FROM (SELECT 1) WHERE 0; ATTACH '{store_path}' AS s"),
        "PRAGMA query_only = 0".to_owned(),
        "PRAGMA query_only".to_owned(),
        "PRAGMA writable_schema = 1".to_owned(),
        "SELECT * FROM pragma_database_list".to_owned(),
        format!("CREATE TEMP VIEW {t} AS SELECT 99 AS id, 'forged' AS name"),
        "CREATE TEMP TABLE x (a)".to_owned(),
        format!("VACUUM INTO '{out_path}'"),
        "VACUUM".to_owned(),
        format!("DELETE FROM {t}"),
        format!("INSERT INTO {t} VALUES (11, 'k')"),
        "SELECT load_extension('/nonexistent/x.so')".to_owned(),
        "BEGIN".to_owned(),
    ] {
        refused_both_ways(&broker, &id, &sql).await;
    }
    assert!(!out.exists(), "VACUUM INTO created a file");
    // Nothing of the store is reachable, and the next plain SELECT reads the real table.
    let rows = broker
        .query("o", &id, &format!("SELECT name FROM {t} WHERE id = 1"), &[])
        .await
        .unwrap();
    assert_eq!(rows.rows, vec![vec![json!("a")]]);
    clean_sqlite_session(&broker, &id, true).await;
    assert_eq!(count(&db).await, 10);
    broker.shutdown().await;

    // Connecting to the store file itself reads nothing of its values: envelopes only,
    // which is why the operator, not the agent, names SQLite files. Attaching it from a
    // read-write connection is refused too.
    let rw = broker_rw(&db).await;
    let (broker, id) = (&rw.0, &rw.1);
    for sql in [
        format!("ATTACH DATABASE '{store_path}' AS s"),
        format!("VACUUM INTO '{}'", dir.join("shell.php").display()),
        "SELECT load_extension('/nonexistent/x.so')".to_owned(),
        "CREATE TEMP TRIGGER tr AFTER INSERT ON x BEGIN SELECT 1; END".to_owned(),
        "PRAGMA foreign_keys = OFF".to_owned(),
        "DETACH DATABASE main".to_owned(),
    ] {
        refused_both_ways(broker, id, &sql).await;
    }
    assert!(!dir.join("shell.php").exists());
    // What a read-write connection may do, it still does.
    broker
        .execute(
            "o",
            id,
            &format!("UPDATE {t} SET name = 'z' WHERE id = 1"),
            &[],
        )
        .await
        .unwrap();
    clean_sqlite_session(broker, id, false).await;
    rw.0.shutdown().await;
}

async fn broker_rw(db: &Db) -> (Broker, ConnectionId) {
    let broker = Broker::new(limits());
    let id = broker.connect("o", db.rw.clone()).await.unwrap();
    (broker, id)
}

/// SQLite builds no value larger than the byte limit (`SQLITE_LIMIT_LENGTH`): 5 cells of
/// 100 MB are refused before any is built; cells over the cell limit are cut with the
/// marker; rows past the byte limit set `truncated`.
#[tokio::test]
async fn sqlite_results_are_bounded_in_bytes() {
    let db = setup(DatabaseKind::Sqlite).await.unwrap();
    let broker = Broker::new(limits());
    let id = broker.connect("o", db.params.clone()).await.unwrap();
    let five =
        "(SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5)";
    let huge = broker
        .query(
            "o",
            &id,
            &format!("SELECT randomblob(100000000) FROM {five}"),
            &[],
        )
        .await
        .unwrap_err();
    assert!(matches!(huge, BrokerError::Limit { .. }), "{huge}");
    assert!(huge.to_string().contains("byte limit"), "{huge}");
    let cut = broker
        .query(
            "o",
            &id,
            &format!("SELECT randomblob(3000000), printf('%.*c', 2000000, 'x') FROM {five}"),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(cut.rows.len(), 5);
    assert_eq!(cut.truncated_cells, 10);
    assert!(!cut.truncated);
    for row in &cut.rows {
        for cell in row {
            let text = cell.as_str().unwrap();
            assert!(text.len() < 1_500_000, "{}", text.len());
            assert!(text.contains(CELL_MARKER), "no marker");
        }
    }
    assert!(cut.rows[0][0].as_str().unwrap().ends_with("3000000 bytes]"));
    // A per-connection byte limit: 1 MiB of 100 KB rows stops at about ten.
    let small = Broker::new(limits());
    let id = small
        .connect("o", db.params.clone().max_result_bytes(1 << 20))
        .await
        .unwrap();
    let r = small
        .query(
            "o",
            &id,
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) \
             SELECT printf('%.*c', 100000, 'y') FROM n",
            &[],
        )
        .await
        .unwrap();
    assert!(r.truncated);
    assert!((9..=11).contains(&r.rows.len()), "{}", r.rows.len());
    broker.shutdown().await;
    small.shutdown().await;
}

/// MariaDB's executable comments and `--1`: refused by the check; past it, the
/// least-privilege role has no FILE privilege, so the server refuses the file too.
#[tokio::test]
async fn mariadb_file_writes_and_hidden_variables() {
    let Some(db) = setup(DatabaseKind::Mysql).await else {
        return;
    };
    let broker = Broker::new(limits());
    let id = broker.connect("o", db.params.clone()).await.unwrap();
    let t = &db.table;
    let dir = tempfile::tempdir().unwrap();
    let file = |n: &str| dir.path().join(n).display().to_string();
    let (a, b, c, d) = (file("a"), file("b"), file("c"), file("d"));
    for sql in [
        format!("SELECT * FROM {t} /*M! INTO OUTFILE '{a}' */"),
        format!("SELECT * FROM {t} /*M!100000 INTO OUTFILE '{b}' */"),
        format!("SELECT name FROM {t} LIMIT 1 /*!50000 INTO DUMPFILE '{c}' */"),
        format!("SELECT * FROM {t} WHERE 1 --1\nINTO OUTFILE '{d}'"),
    ] {
        refused_both_ways(&broker, &id, &sql).await;
    }
    for f in [&a, &b, &c, &d] {
        assert!(!std::path::Path::new(f).exists(), "{f} was written");
    }
    // `--1` hid a user variable from the session check: now seen, so the connection is
    // closed after the call and the next call does not see it.
    broker
        .query("o", &id, "SELECT 1 --1, @coffer_hidden := 7", &[])
        .await
        .unwrap();
    let after = broker
        .query("o", &id, "SELECT @coffer_hidden", &[])
        .await
        .unwrap();
    assert_eq!(after.rows[0][0], Value::Null);
    // LOAD_FILE, SHOW GRANTS (the password hash), PASSWORD() (a guessing oracle), the
    // mysql schema: refused by the check. Past it, LOAD_FILE without FILE reads nothing.
    for sql in [
        "SELECT LOAD_FILE('/etc/passwd')",
        "SHOW GRANTS",
        "SHOW CREATE USER CURRENT_USER",
        "SELECT PASSWORD('guess')",
        "SELECT * FROM mysql.user",
        "SELECT * FROM mysql.global_priv",
    ] {
        refused(&broker, &id, sql).await;
    }
    let unchecked = broker
        .query_unchecked("o", &id, "SELECT LOAD_FILE('/etc/passwd')", &[])
        .await
        .unwrap();
    assert_eq!(unchecked.rows[0][0], Value::Null);
    let mysql_user = broker
        .query_unchecked("o", &id, "SELECT * FROM mysql.global_priv", &[])
        .await;
    assert!(mysql_user.is_err(), "{mysql_user:?}");
    assert_eq!(count(&db).await, 10);
    broker.shutdown().await;
    db.drop_table().await;
}

/// A read-only connection whose role can escape the read-only transaction is refused at
/// connect, naming the privilege; `allowPrivileged` accepts it on purpose.
#[tokio::test]
async fn privileged_roles_are_refused_at_connect() {
    if let Some(db) = setup(DatabaseKind::Mysql).await {
        let broker = Broker::new(limits());
        let admin = ConnectionParams::from_url(&db.admin.clone().into()).unwrap();
        let e = broker.connect("o", admin.clone()).await.unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, BrokerError::Privileged { .. }), "{text}");
        assert!(
            text.contains("ALL PRIVILEGES") && text.contains("GRANT SELECT"),
            "{text}"
        );
        broker
            .connect("o", admin.allow_privileged(true))
            .await
            .unwrap();
        // A role given FILE, and one that can read the mysql schema.
        let role = db.role.clone().unwrap();
        for (grant, named) in [
            (format!("GRANT FILE ON *.* TO '{role}'@'%'"), "FILE"),
            (
                format!(
                    "REVOKE FILE ON *.* FROM '{role}'@'%'; GRANT SELECT ON mysql.* TO '{role}'@'%'"
                ),
                "mysql schema",
            ),
            (
                format!(
                    "REVOKE SELECT ON mysql.* FROM '{role}'@'%'; GRANT PROCESS ON *.* TO '{role}'@'%'"
                ),
                "PROCESS",
            ),
        ] {
            admin_exec(DatabaseKind::Mysql, &db.admin, &grant).await;
            let e = broker.connect("o", db.params.clone()).await.unwrap_err();
            assert!(e.to_string().contains(named), "{named}: {e}");
        }
        // Read-write connections are not checked: they may write by design.
        broker.connect("o", db.rw.clone()).await.unwrap();
        broker.shutdown().await;
        db.drop_table().await;
    }
    let Some(db) = setup(DatabaseKind::Postgres).await else {
        return;
    };
    let broker = Broker::new(limits());
    let admin = ConnectionParams::from_url(&db.admin.clone().into()).unwrap();
    let e = broker.connect("o", admin.clone()).await.unwrap_err();
    assert!(e.to_string().contains("superuser"), "{e}");
    broker
        .connect("o", admin.allow_privileged(true))
        .await
        .unwrap();
    let role = db.role.clone().unwrap();
    for (grant, named) in [
        (
            format!("GRANT pg_read_server_files TO {role}"),
            "pg_read_server_files",
        ),
        (
            format!("REVOKE pg_read_server_files FROM {role}; GRANT pg_signal_backend TO {role}"),
            "pg_signal_backend",
        ),
        (
            format!("REVOKE pg_signal_backend FROM {role}; ALTER ROLE {role} BYPASSRLS"),
            "BYPASSRLS",
        ),
    ] {
        admin_exec(DatabaseKind::Postgres, &db.admin, &grant).await;
        let e = broker.connect("o", db.params.clone()).await.unwrap_err();
        assert!(e.to_string().contains(named), "{named}: {e}");
    }
    broker.shutdown().await;
    db.drop_table().await;
}

/// Postgres functions with side effects beyond the read-only transaction: refused by
/// the check; past it, the least-privilege role is refused by the server, and another
/// session survives.
#[tokio::test]
async fn postgres_side_effects_are_refused() {
    let Some(db) = setup(DatabaseKind::Postgres).await else {
        return;
    };
    let broker = Broker::new(limits());
    let id = broker.connect("o", db.params.clone()).await.unwrap();
    // Another session, the admin's, which the agent tries to end.
    let mut admin_session = <sqlx::PgConnection as sqlx::Connection>::connect(&db.admin)
        .await
        .unwrap();
    let other: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut admin_session)
        .await
        .unwrap();
    for sql in [
        format!("SELECT pg_terminate_backend({other})"),
        format!("SELECT pg_cancel_backend({other})"),
        "SELECT pg_reload_conf()".to_owned(),
        "SELECT pg_stat_reset()".to_owned(),
        "SELECT pg_read_file('/etc/passwd')".to_owned(),
        "SELECT * FROM pg_ls_dir('.')".to_owned(),
        "SELECT lo_import('/etc/passwd')".to_owned(),
    ] {
        refused_both_ways(&broker, &id, &sql).await;
    }
    refused(
        &broker,
        &id,
        "SELECT set_config('statement_timeout', '0', false)",
    )
    .await;
    // The read-only transaction's rollback takes a setting with it anyway.
    broker
        .query_unchecked(
            "o",
            &id,
            "SELECT set_config('work_mem', '1234kB', false)",
            &[],
        )
        .await
        .unwrap();
    let wm = broker
        .query("o", &id, "SELECT current_setting('work_mem')", &[])
        .await
        .unwrap();
    assert_ne!(wm.rows[0][0], json!("1234kB"));
    let alive: i32 = sqlx::query_scalar("SELECT 1")
        .fetch_one(&mut admin_session)
        .await
        .expect("the other session was ended");
    assert_eq!(alive, 1);
    assert_eq!(count(&db).await, 10);
    broker.shutdown().await;
    db.drop_table().await;
}

/// dblink committed a DELETE from inside a read-only call: its functions are refused by
/// the check, and a role that can execute them is refused at connect.
#[tokio::test]
async fn postgres_dblink_is_refused() {
    let Some(test_db) = coffer_testkit::postgres::TestDatabase::create().await else {
        return;
    };
    let admin = test_db.url().to_owned();
    let t = support::table_name();
    admin_exec(
        DatabaseKind::Postgres,
        &admin,
        &format!(
            "CREATE EXTENSION dblink; CREATE TABLE {t} (id int); INSERT INTO {t} VALUES (1), (2)"
        ),
    )
    .await;
    let (role, params) = reader_role(DatabaseKind::Postgres, &admin, &t).await;
    let broker = Broker::new(limits());
    let e = broker.connect("o", params.clone()).await.unwrap_err();
    assert!(e.to_string().contains("dblink"), "{e}");
    // Accepted on purpose: the check still refuses every dblink call.
    let id = broker
        .connect("o", params.allow_privileged(true))
        .await
        .unwrap();
    let delete = format!(
        "SELECT dblink_exec('dbname={} user=postgres host=127.0.0.1', 'DELETE FROM {t}')",
        test_db.name()
    );
    refused(&broker, &id, &delete).await;
    refused(
        &broker,
        &id,
        &delete.replace("dblink_exec", "\"dblink_exec\""),
    )
    .await;
    refused(
        &broker,
        &id,
        &delete.replace("dblink_exec", "public.dblink_exec"),
    )
    .await;
    assert_eq!(
        admin_scalar(
            DatabaseKind::Postgres,
            &admin,
            &format!("SELECT count(*) FROM {t}")
        )
        .await,
        2
    );
    broker.shutdown().await;
    admin_exec(
        DatabaseKind::Postgres,
        &admin,
        &format!("DROP TABLE {t}; DROP OWNED BY {role}; DROP ROLE {role}"),
    )
    .await;
}

/// A read-write Postgres call's session changes (settings, role, LISTEN, temp tables,
/// advisory locks) do not reach the next call.
#[tokio::test]
async fn postgres_read_write_session_is_reset() {
    let Some(db) = setup(DatabaseKind::Postgres).await else {
        return;
    };
    let broker = Broker::new(limits());
    let id = broker.connect("o", db.rw.clone()).await.unwrap();
    for sql in [
        "SELECT set_config('work_mem', '1234kB', false)",
        "SELECT set_config('search_path', 'nowhere', false)",
        "SELECT pg_advisory_lock(4242)",
    ] {
        broker.query("o", &id, sql, &[]).await.unwrap();
    }
    broker
        .execute("o", &id, "CREATE TEMP TABLE coffer_tmp (a int)", &[])
        .await
        .unwrap();
    let r = broker
        .query(
            "o",
            &id,
            "SELECT current_setting('work_mem'), current_setting('search_path'), \
             (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
             (SELECT count(*) FROM pg_class WHERE relname = 'coffer_tmp' AND relpersistence = 't')",
            &[],
        )
        .await
        .unwrap();
    assert_ne!(r.rows[0][0], json!("1234kB"));
    assert_ne!(r.rows[0][1], json!("nowhere"));
    assert_eq!(r.rows[0][2], json!(0));
    assert_eq!(r.rows[0][3], json!(0));
    broker.shutdown().await;
    db.drop_table().await;
}

/// Postgres and MariaDB cells are cut at the cell limit; rows past the byte limit set
/// `truncated`.
#[tokio::test]
async fn server_results_are_bounded_in_bytes() {
    for (kind, big, many) in [
        (
            DatabaseKind::Postgres,
            "SELECT repeat('x', 3000000), decode(repeat('ab', 2000000), 'hex') FROM generate_series(1, 3)",
            "SELECT repeat('y', 100000) FROM generate_series(1, 100)",
        ),
        (
            DatabaseKind::Mysql,
            "SELECT REPEAT('x', 3000000), UNHEX(REPEAT('ab', 2000000)) FROM (SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3) n",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) SELECT REPEAT('y', 100000) FROM n",
        ),
    ] {
        let Some(db) = setup(kind).await else {
            continue;
        };
        let broker = Broker::new(limits());
        let id = broker.connect("o", db.params.clone()).await.unwrap();
        let r = broker.query("o", &id, big, &[]).await.unwrap();
        assert_eq!((r.rows.len(), r.truncated_cells), (3, 6), "{kind}");
        assert!(
            r.rows[0][0]
                .as_str()
                .unwrap()
                .ends_with("[truncated: 3000000 bytes]")
        );
        assert!(
            r.rows[0][1]
                .as_str()
                .unwrap()
                .ends_with("[truncated: 2000000 bytes]")
        );
        let id = broker
            .connect("o", db.params.clone().max_result_bytes(1 << 20))
            .await
            .unwrap();
        let r = broker.query("o", &id, many, &[]).await.unwrap();
        assert!(r.truncated, "{kind}");
        assert!((9..=11).contains(&r.rows.len()), "{kind}: {}", r.rows.len());
        // The connection that stopped early was closed; the next call is served.
        let next = broker.query("o", &id, "SELECT 1", &[]).await.unwrap();
        assert_eq!(next.rows[0][0], json!(1));
        broker.shutdown().await;
        db.drop_table().await;
    }
}

/// The schema tells primary keys, foreign keys and indexes, and is not cut by the row
/// limit (it has its own).
#[tokio::test]
async fn schema_has_keys_and_its_own_limit() {
    for kind in [
        DatabaseKind::Sqlite,
        DatabaseKind::Postgres,
        DatabaseKind::Mysql,
    ] {
        let Some(db) = setup(kind).await else {
            continue;
        };
        let t = &db.table;
        let child = format!("{t}_child");
        let serial = if kind == DatabaseKind::Mysql {
            "INT"
        } else {
            "INTEGER"
        };
        admin_exec(
            kind,
            &db.admin,
            &format!(
                "CREATE TABLE {child} (a {serial} NOT NULL, b {serial} NOT NULL, parent {serial}, \
                 note VARCHAR(10), PRIMARY KEY (a, b), FOREIGN KEY (parent) REFERENCES {t} (id)); \
                 CREATE UNIQUE INDEX {child}_note ON {child} (note)"
            ),
        )
        .await;
        if let Some(role) = &db.role {
            let grant = match kind {
                DatabaseKind::Postgres => format!("GRANT SELECT ON {child} TO {role}"),
                _ => format!("GRANT SELECT ON test.{child} TO '{role}'@'%'"),
            };
            admin_exec(kind, &db.admin, &grant).await;
        }
        let mut l = limits();
        l.row_limit = 2;
        let broker = Broker::new(l);
        let id = broker.connect("o", db.params.clone()).await.unwrap();
        let schema = broker.schema("o", &id).await.unwrap();
        assert!(!schema.truncated, "{kind}");
        let c = schema.tables.iter().find(|x| x.name == child).unwrap();
        assert_eq!(c.columns.len(), 4, "{kind}");
        assert_eq!(c.primary_key, ["a", "b"], "{kind}");
        assert_eq!(c.foreign_keys.len(), 1, "{kind}");
        assert_eq!(c.foreign_keys[0].columns, ["parent"], "{kind}");
        assert_eq!(&c.foreign_keys[0].references_table, t, "{kind}");
        assert_eq!(c.foreign_keys[0].references_columns, ["id"], "{kind}");
        let note = c
            .indexes
            .iter()
            .find(|i| i.name == format!("{child}_note"))
            .unwrap_or_else(|| panic!("{kind}: {:?}", c.indexes));
        assert!(note.unique && note.columns == ["note"], "{kind}: {note:?}");
        let parent = schema.tables.iter().find(|x| &x.name == t).unwrap();
        assert_eq!(parent.primary_key, ["id"], "{kind}");
        broker.shutdown().await;
        // A schema limit of 3 columns: the tables past it are left out, truncated set.
        let mut l = limits();
        l.schema_limit = 3;
        let broker = Broker::new(l);
        let id = broker.connect("o", db.params.clone()).await.unwrap();
        let small = broker.schema("o", &id).await.unwrap();
        assert!(small.truncated, "{kind}");
        assert!(small.tables.iter().map(|t| t.columns.len()).sum::<usize>() <= 3);
        broker.shutdown().await;
        admin_exec(kind, &db.admin, &format!("DROP TABLE {child}")).await;
        db.drop_table().await;
    }
}
