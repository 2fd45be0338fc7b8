//! Database URLs from parts read back through sqlx's URL parsing and the real servers:
//! users and passwords holding `@ : / ? # %` and friends arrive intact.

use std::str::FromStr as _;

use coffer_env::{DatabaseKind, DatabaseUrl};
use coffer_testkit::service_env;
use rand::RngExt as _;
use secrecy::ExposeSecret as _;
use sqlx::Connection as _;

/// A password with every character that means something in a URL, and random ones.
fn nasty_password() -> String {
    let mut rng = rand::rng();
    let tail: String = (0..12)
        .map(|_| char::from(rng.random_range(b'!'..=b'~')))
        .collect();
    format!("p@ss:w/rd?#%25 é'\"\\&=+[]{tail}")
}

#[test]
fn postgres_url_parses_back_in_sqlx() {
    let password = nasty_password();
    let url = DatabaseUrl::postgres("db.internal")
        .port(6543)
        .database("my db/1")
        .user("app@svc:1")
        .password(password.clone().into())
        .param("sslmode", "require")
        .to_url()
        .unwrap();
    let options = sqlx::postgres::PgConnectOptions::from_str(url.expose_secret()).unwrap();
    assert_eq!(options.get_host(), "db.internal");
    assert_eq!(options.get_port(), 6543);
    assert_eq!(options.get_username(), "app@svc:1");
    assert_eq!(options.get_database(), Some("my db/1"));
    // sqlx keeps no public getter for the password; its Debug shows what it parsed.
    assert!(
        format!("{options:?}").contains(&format!("password: Some({password:?})")),
        "the password did not survive sqlx's parsing"
    );
    // Any RFC 3986 parser reads the same.
    let parsed = url::Url::parse(url.expose_secret()).unwrap();
    let decoded = percent_encoding::percent_decode_str(parsed.password().unwrap())
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, password);
}

#[test]
fn mongodb_and_ipv6_urls() {
    let password = nasty_password();
    let url = DatabaseUrl::mongodb("::1")
        .user("root")
        .password(password.clone().into())
        .database("admin")
        .param("authSource", "admin")
        .to_url()
        .unwrap();
    let parsed = url::Url::parse(url.expose_secret()).unwrap();
    assert_eq!(parsed.scheme(), "mongodb");
    assert_eq!(parsed.host_str(), Some("[::1]"));
    assert_eq!(parsed.port(), Some(27017));
    let decoded = percent_encoding::percent_decode_str(parsed.password().unwrap())
        .decode_utf8()
        .unwrap();
    assert_eq!(decoded, password);
    assert_eq!(parsed.query(), Some("authSource=admin"));
    assert_eq!(DatabaseKind::Mongodb.scheme(), "mongodb");
}

#[test]
fn bad_parts_are_named_and_hold_no_password() {
    let cases = [
        (DatabaseUrl::postgres(""), "host"),
        (DatabaseUrl::postgres("evil.com/x?y#"), "host"),
        (DatabaseUrl::postgres("a@b"), "host"),
        (
            DatabaseUrl::mysql("db").password("hunter2-secret".into()),
            "password",
        ),
        (DatabaseUrl::sqlite(""), "path"),
        (
            DatabaseUrl::sqlite("/x.db").password("hunter2-secret".into()),
            "password",
        ),
    ];
    for (url, field) in cases {
        let err = url.to_url().unwrap_err().to_string();
        assert!(err.contains(field), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        assert!(!format!("{url:?}").contains("hunter2"));
    }
}

#[tokio::test]
async fn sqlite_path_with_url_characters_opens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("we?ird #1 %20 é.db");
    let url = DatabaseUrl::sqlite(path.to_str().unwrap())
        .param("mode", "rwc")
        .to_url()
        .unwrap();
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url.expose_secret()).unwrap();
    assert_eq!(options.get_filename(), path.as_path());
    let mut conn = sqlx::SqliteConnection::connect(url.expose_secret())
        .await
        .unwrap();
    sqlx::query("CREATE TABLE t (x INTEGER)")
        .execute(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    assert!(path.exists());
}

/// The server's own view: a role whose name needs encoding logs in by the built URL.
#[tokio::test]
async fn postgres_login_by_built_url() {
    let Some(admin) = service_env("COFFER_TEST_POSTGRES_URL") else {
        return;
    };
    let admin_opts = sqlx::postgres::PgConnectOptions::from_str(&admin).unwrap();
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let role = format!("coffer env@{}:x/y", rand::random::<u32>());
    let password = nasty_password();
    let quoted_role = format!("\"{}\"", role.replace('"', "\"\""));
    let quoted_pw = format!("'{}'", password.replace('\'', "''"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE ROLE {quoted_role} LOGIN PASSWORD {quoted_pw}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let url = DatabaseUrl::postgres(admin_opts.get_host())
        .port(admin_opts.get_port())
        .database(admin_opts.get_database().unwrap_or("postgres"))
        .user(&role)
        .password(password.into())
        .to_url()
        .unwrap();
    let result = async {
        let mut user_conn = sqlx::PgConnection::connect(url.expose_secret()).await?;
        let (who,): (String,) = sqlx::query_as("SELECT current_user::text")
            .fetch_one(&mut user_conn)
            .await?;
        user_conn.close().await?;
        Ok::<_, sqlx::Error>(who)
    }
    .await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP ROLE {quoted_role}")))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(result.unwrap(), role);
}

/// MariaDB checks passwords: the built URL logs in, and one wrong character does not.
#[tokio::test]
async fn mysql_login_by_built_url() {
    let Some(admin) = service_env("COFFER_TEST_MYSQL_URL") else {
        return;
    };
    let admin_opts = sqlx::mysql::MySqlConnectOptions::from_str(&admin).unwrap();
    let mut conn = sqlx::MySqlConnection::connect(&admin).await.unwrap();
    let user = format!("ce@{}:x", rand::random::<u16>());
    let password = nasty_password();
    let quote = |s: &str| format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"));
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "CREATE USER {}@'%' IDENTIFIED BY {}",
        quote(&user),
        quote(&password)
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    let build = |pw: String| {
        DatabaseUrl::mysql(admin_opts.get_host())
            .port(admin_opts.get_port())
            .user(&user)
            .password(pw.into())
            .to_url()
            .unwrap()
    };
    let good = build(password.clone());
    let bad = build(format!("{password}x"));
    let ok = async {
        let mut c = sqlx::MySqlConnection::connect(good.expose_secret()).await?;
        let (who,): (String,) = sqlx::query_as("SELECT CURRENT_USER()")
            .fetch_one(&mut c)
            .await?;
        c.close().await?;
        Ok::<_, sqlx::Error>(who)
    }
    .await;
    let refused = sqlx::MySqlConnection::connect(bad.expose_secret()).await;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP USER {}@'%'",
        quote(&user)
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    assert_eq!(ok.unwrap(), format!("{user}@%"));
    assert!(refused.is_err(), "a wrong password logged in");
}
