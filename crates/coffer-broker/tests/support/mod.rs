//! Helpers shared by the broker's integration tests: a table of 10 rows on each real
//! database, a role that can only read it, and admin-side checks.

#![allow(dead_code, unreachable_pub)]

use coffer_broker::{ConnectionParams, DatabaseKind, Mode};
use coffer_testkit::service_env;
use sqlx::Connection as _;

/// A database with a table `t` of 10 rows, and the admin URL to check it with.
/// `params` connect read-only as a role that can only read the table (the broker refuses
/// a read-only connection with a privileged role); `rw` read-write as the admin.
pub struct Db {
    pub kind: DatabaseKind,
    pub params: ConnectionParams,
    pub rw: ConnectionParams,
    pub table: String,
    pub admin: String,
    /// The least-privilege role made for this test (servers).
    pub role: Option<String>,
    pub dir: Option<tempfile::TempDir>,
}

pub fn table_name() -> String {
    format!("broker_t_{:08x}", rand::random::<u32>())
}

pub async fn admin_exec(kind: DatabaseKind, admin: &str, sql: &str) {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match kind {
        DatabaseKind::Postgres => {
            let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
        DatabaseKind::Mysql => {
            let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
        _ => {
            let mut c = sqlx::SqliteConnection::connect(admin).await.unwrap();
            sqlx::raw_sql(sql).execute(&mut c).await.unwrap();
        }
    }
}

/// One number from the admin side of the database.
pub async fn admin_scalar(kind: DatabaseKind, admin: &str, sql: &str) -> i64 {
    let sql = sqlx::AssertSqlSafe(sql.to_owned());
    match kind {
        DatabaseKind::Postgres => {
            let mut c = sqlx::PgConnection::connect(admin).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
        DatabaseKind::Mysql => {
            let mut c = sqlx::MySqlConnection::connect(admin).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
        _ => {
            let mut c = sqlx::SqliteConnection::connect(admin).await.unwrap();
            sqlx::query_scalar(sql).fetch_one(&mut c).await.unwrap()
        }
    }
}

pub async fn count(db: &Db) -> i64 {
    admin_scalar(
        db.kind,
        &db.admin,
        &format!("SELECT COUNT(*) FROM {}", db.table),
    )
    .await
}

/// A role that may only read `table`, made by the admin: its connection parameters.
pub async fn reader_role(
    kind: DatabaseKind,
    admin: &str,
    table: &str,
) -> (String, ConnectionParams) {
    let role = format!("broker_ro_{:08x}", rand::random::<u32>());
    let password = format!("Pw{:016x}", rand::random::<u64>());
    let url = url::Url::parse(admin).unwrap();
    let host = url.host_str().unwrap();
    let database = url.path().trim_start_matches('/');
    match kind {
        DatabaseKind::Postgres => {
            admin_exec(
                kind,
                admin,
                &format!(
                    "CREATE ROLE {role} LOGIN PASSWORD '{password}'; \
                     GRANT SELECT ON {table} TO {role}"
                ),
            )
            .await;
            let params = ConnectionParams::postgres(host, database, &role, password.into())
                .port(url.port().unwrap_or(5432));
            (role, params)
        }
        _ => {
            admin_exec(
                kind,
                admin,
                &format!(
                    "CREATE USER '{role}'@'%' IDENTIFIED BY '{password}'; \
                     GRANT SELECT ON {database}.{table} TO '{role}'@'%'"
                ),
            )
            .await;
            let params = ConnectionParams::mysql(host, database, &role, password.into())
                .port(url.port().unwrap_or(3306));
            (role, params)
        }
    }
}

pub async fn setup(kind: DatabaseKind) -> Option<Db> {
    let table = table_name();
    let create = format!(
        "CREATE TABLE {table} (id INTEGER PRIMARY KEY, name VARCHAR(40));\
         INSERT INTO {table} (id, name) VALUES (1,'a'),(2,'b'),(3,'c'),(4,'d'),(5,'e'),\
         (6,'f'),(7,'g'),(8,'h'),(9,'i'),(10,'j')"
    );
    let (admin, dir) = match kind {
        DatabaseKind::Postgres => (service_env("COFFER_TEST_POSTGRES_URL")?, None),
        DatabaseKind::Mysql => (service_env("COFFER_TEST_MYSQL_URL")?, None),
        _ => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("db.sqlite");
            (format!("sqlite://{}?mode=rwc", path.display()), Some(dir))
        }
    };
    admin_exec(kind, &admin, &create).await;
    let (role, params, rw) = match &dir {
        Some(dir) => {
            let params = ConnectionParams::sqlite(dir.path().join("db.sqlite"));
            (None, params.clone(), params.with_mode(Mode::ReadWrite))
        }
        None => {
            let (role, params) = reader_role(kind, &admin, &table).await;
            let rw = ConnectionParams::from_url(&admin.clone().into())
                .unwrap()
                .with_mode(Mode::ReadWrite);
            (Some(role), params, rw)
        }
    };
    Some(Db {
        kind,
        params,
        rw,
        table,
        admin,
        role,
        dir,
    })
}

impl Db {
    pub async fn drop_table(&self) {
        admin_exec(
            self.kind,
            &self.admin,
            &format!("DROP TABLE {}", self.table),
        )
        .await;
        if let Some(role) = &self.role {
            let drop = match self.kind {
                DatabaseKind::Postgres => format!("DROP ROLE {role}"),
                _ => format!("DROP USER '{role}'@'%'"),
            };
            admin_exec(self.kind, &self.admin, &drop).await;
        }
    }
}
