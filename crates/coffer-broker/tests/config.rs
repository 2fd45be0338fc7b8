//! Named connections: the file format, its errors, and connecting by name with
//! credentials from the environment or a coffer secret store.

use std::sync::Arc;

use coffer_broker::{Broker, BrokerError, Limits, Mode, NamedConnections};
use coffer_store::{MemoryStore, PutOptions, SecretStore as _};
use coffer_testkit::{name, scope, service_env};
use serde_json::json;

fn config_err(text: &str) -> (String, String, String) {
    match NamedConnections::from_json(text) {
        Err(BrokerError::Config { name, key, reason }) => (name, key, reason),
        other => panic!("expected a config error, got {other:?}"),
    }
}

#[test]
fn errors_name_the_connection_and_the_key() {
    let (n, k, _) = config_err(
        r#"{"connections": {"main_db": {"type": "postgresql", "host": "h", "database": "d",
            "credentialsEnv": "X", "pasword": "oops"}}}"#,
    );
    assert_eq!((n.as_str(), k.as_str()), ("main_db", "pasword"));
    let (n, k, _) = config_err(r#"{"connections": {"a": {"type": "oracle"}}}"#);
    assert_eq!((n.as_str(), k.as_str()), ("a", "oracle"));
    // A kind of the shared connection model that the broker does not speak.
    let (n, k, r) = config_err(
        r#"{"connections": {"m": {"type": "mongodb", "host": "h", "database": "d",
            "credentialsEnv": "X"}}}"#,
    );
    assert_eq!((n.as_str(), k.as_str()), ("m", "type"));
    assert!(
        r.contains("mongodb is not a database the broker speaks"),
        "{r}"
    );
    let (n, k, r) =
        config_err(r#"{"connections": {"b": {"type": "mysql", "host": "h", "database": "d"}}}"#);
    assert_eq!((n.as_str(), k.as_str()), ("b", "credentialsEnv"));
    assert!(r.contains("urlSecret"), "{r}");
    let (_, k, r) = config_err(
        r#"{"connections": {"c": {"type": "postgres", "urlEnv": "A", "urlSecret": "b"}}}"#,
    );
    assert_eq!(k, "urlSecret");
    assert!(r.contains("conflicts with urlEnv"), "{r}");
    let (_, k, _) = config_err(
        r#"{"connections": {"d": {"type": "postgres", "database": "x", "credentialsEnv": "A"}}}"#,
    );
    assert_eq!(k, "host");
    let (_, k, _) = config_err(r#"{"connections": {"e": {"type": "sqlite"}}}"#);
    assert_eq!(k, "path");
    config_err(r#"{"conections": {}}"#);
}

#[tokio::test]
async fn missing_and_malformed_credentials() {
    let config = NamedConnections::from_json(
        r#"{"connections": {
            "unset": {"type": "postgresql", "host": "h", "database": "d",
                      "credentialsEnv": "COFFER_TEST_SURELY_UNSET_VARIABLE"},
            "malformed": {"type": "postgresql", "host": "h", "database": "d",
                          "credentialsEnv": "CARGO_PKG_NAME"},
            "needs_store": {"type": "mysql", "host": "h", "database": "d",
                            "credentialsSecret": "db_creds"}}}"#,
    )
    .unwrap();
    let broker = Broker::with_config(Limits::default(), config, None);
    let err = broker
        .connect_named("o", "unset")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"unset\"")
            && err.contains("credentialsEnv")
            && err.contains("COFFER_TEST_SURELY_UNSET_VARIABLE is not set"),
        "{err}"
    );
    let err = broker
        .connect_named("o", "malformed")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("username:password") && !err.contains("coffer-broker"),
        "{err}"
    );
    let err = broker
        .connect_named("o", "needs_store")
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("credentialsSecret") && err.contains("secret store"),
        "{err}"
    );
    let err = broker
        .connect_named("o", "nope")
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"nope\""), "{err}");
}

#[tokio::test]
async fn connect_by_name_from_env_and_store() {
    let Some(pg) = service_env("COFFER_TEST_POSTGRES_URL") else {
        return;
    };
    let pg_opts: sqlx::postgres::PgConnectOptions = pg.parse().unwrap();
    let store = Arc::new(MemoryStore::new());
    let tenant = scope("tenant-7");
    store
        .put(
            &tenant,
            &name("pg_url"),
            &pg.clone().into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    store
        .put(
            &tenant,
            &name("pg_creds"),
            &format!("{}:unused-with-trust-auth", pg_opts.get_username()).into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    let config = json!({"connections": {
        // The test server's account is a superuser: accepted only when the entry says so.
        "by_env_url": {"type": "postgresql", "urlEnv": "COFFER_TEST_POSTGRES_URL",
                       "allowPrivileged": true},
        "privileged": {"type": "postgresql", "urlEnv": "COFFER_TEST_POSTGRES_URL"},
        "by_secret_url": {"type": "postgres", "urlSecret": "pg_url", "mode": "read_write"},
        "by_secret_creds": {"type": "postgresql", "host": pg_opts.get_host(),
                            "port": pg_opts.get_port(),
                            "database": pg_opts.get_database().unwrap_or("postgres"),
                            "credentialsSecret": "pg_creds", "description": "main",
                            "allow_privileged": true},
        "wrong_type": {"type": "mysql", "urlEnv": "COFFER_TEST_POSTGRES_URL"}
    }});
    let config = NamedConnections::from_json(&config.to_string()).unwrap();
    let broker = Broker::with_config(Limits::default(), config, Some(store));
    for (conn, mode) in [
        ("by_env_url", Mode::ReadOnly),
        ("by_secret_url", Mode::ReadWrite),
        ("by_secret_creds", Mode::ReadOnly),
    ] {
        let id = broker.connect_named("tenant-7", conn).await.unwrap();
        let r = broker
            .query("tenant-7", &id, "SELECT 1 AS one", &[])
            .await
            .unwrap();
        assert_eq!(r.rows[0][0], json!(1), "{conn}");
        let info = broker.info("tenant-7", &id).await.unwrap();
        assert_eq!((info.name.as_deref(), info.mode), (Some(conn), mode));
    }
    // A read-only connection as a superuser is refused, saying why and what to do.
    let refused = broker
        .connect_named("tenant-7", "privileged")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, BrokerError::Privileged { .. }),
        "{refused}"
    );
    let text = refused.to_string();
    assert!(
        text.contains("superuser")
            && text.contains("GRANT SELECT")
            && text.contains("allowPrivileged"),
        "{text}"
    );
    // The secrets live in tenant-7's scope only.
    let err = broker
        .connect_named("tenant-8", "by_secret_url")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("pg_url"), "{err}");
    let err = broker
        .connect_named("tenant-7", "wrong_type")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("but the type is mysql"), "{err}");
    assert_eq!(broker.named().iter().count(), 5);
    broker.shutdown().await;
}
