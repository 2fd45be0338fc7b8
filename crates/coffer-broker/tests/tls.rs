//! The broker over TLS to the private Postgres cluster and MariaDB instance that
//! `scripts/services.sh` starts (TLS required by both, certificates for `localhost`
//! only), and against fake servers that ask for the password in cleartext.

use coffer_broker::{Broker, BrokerError, ConnectionParams, Limits, NamedConnections};
use coffer_store::transport::{Protocol, TlsMode, TlsOptions};
use coffer_testkit::postgres::{FakeAuth, FakeServer, TlsServers};
use serde_json::{Value, json};

fn tls(protocol: Protocol, mode: &str, ca: Option<String>) -> TlsOptions {
    let mut o = TlsOptions::default();
    let [m, c, ..] = protocol.param_names();
    o.take_param(protocol, m, mode).unwrap();
    if let Some(ca) = ca {
        o.take_param(protocol, c, &ca).unwrap();
    }
    o
}

fn pg(t: &TlsServers, host: &str) -> ConnectionParams {
    ConnectionParams::postgres(host, "postgres", "coffer", t.pg_password.clone().into())
        .port(t.pg_port)
        .allow_privileged(true)
}

fn mysql(t: &TlsServers, host: &str) -> ConnectionParams {
    ConnectionParams::mysql(host, "test", "coffer", t.mysql_password.clone().into())
        .port(t.mysql_port)
        .allow_privileged(true)
}

async fn scalar(broker: &Broker, params: ConnectionParams, sql: &str) -> Value {
    let id = broker
        .connect("owner", params)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let result = broker.query("owner", &id, sql, &[]).await.unwrap();
    broker.disconnect("owner", &id).await.unwrap();
    result.rows[0][0].clone()
}

fn refused(e: BrokerError, port: u16, fix: &str, secret: &str) {
    let text = e.to_string();
    assert!(matches!(e, BrokerError::Unavailable { .. }), "{e:?}");
    assert!(
        text.contains(&format!(":{port}")) && text.contains(fix),
        "{text}"
    );
    assert!(!text.contains(secret), "{text}");
}

#[tokio::test]
async fn postgres_queries_run_over_verified_tls() {
    let Some(t) = TlsServers::from_env() else {
        return;
    };
    let broker = Broker::new(Limits::default());
    let verified = pg(&t, "localhost").tls(tls(
        Protocol::Postgres,
        "verify-full",
        Some(t.file("ca.pem")),
    ));
    let ssl = scalar(
        &broker,
        verified,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(ssl, json!(true));

    // The same from a URL, whose TLS parameters the broker used to drop.
    let url = t.pg_verified_url("postgres");
    let params = ConnectionParams::from_url(&url.into())
        .unwrap()
        .allow_privileged(true);
    assert_eq!(params.tls_options().mode, Some(TlsMode::VerifyFull));
    let ssl = scalar(
        &broker,
        params,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(ssl, json!(true));

    // And from a named connection in the seed format: "ssl": true is verify-full.
    let config = NamedConnections::from_json(
        &json!({"connections": {"main": {
            "type": "postgresql", "host": "localhost", "port": t.pg_port, "database": "postgres",
            "credentialsSecret": "pg_credentials", "ssl": true,
            "sslrootcert": t.file("ca.pem"), "allowPrivileged": true}}})
        .to_string(),
    )
    .unwrap();
    let store = coffer_store::MemoryStore::new();
    let scope = coffer_testkit::scope("owner");
    coffer_store::SecretStore::put(
        &store,
        &scope,
        &coffer_testkit::name("pg_credentials"),
        &format!("coffer:{}", t.pg_password).into(),
        &coffer_store::PutOptions::new(),
    )
    .await
    .unwrap();
    let params = config
        .resolve("main", Some((&store, &scope)))
        .await
        .unwrap();
    assert_eq!(params.tls_options().mode, Some(TlsMode::VerifyFull));
    let ssl = scalar(
        &broker,
        params,
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(ssl, json!(true));
}

#[tokio::test]
async fn postgres_refusals_name_the_host_and_the_fix() {
    let Some(t) = TlsServers::from_env() else {
        return;
    };
    let broker = Broker::new(Limits::default());
    let e = broker
        .test_connection(&pg(&t, "localhost").tls(tls(
            Protocol::Postgres,
            "verify-full",
            Some(t.file("other-ca.pem")),
        )))
        .await
        .unwrap_err();
    refused(e, t.pg_port, "sslrootcert", &t.pg_password);
    let e = broker
        .test_connection(&pg(&t, "127.0.0.1").tls(tls(
            Protocol::Postgres,
            "verify-full",
            Some(t.file("ca.pem")),
        )))
        .await
        .unwrap_err();
    refused(e, t.pg_port, "verify-ca", &t.pg_password);
    let e = broker
        .test_connection(&pg(&t, "127.0.0.1").tls(tls(Protocol::Postgres, "disable", None)))
        .await
        .unwrap_err();
    refused(e, t.pg_port, "accepts only TLS", &t.pg_password);
}

#[tokio::test]
async fn mariadb_verify_identity_works_and_plaintext_or_a_wrong_ca_is_refused() {
    let Some(t) = TlsServers::from_env() else {
        return;
    };
    let broker = Broker::new(Limits::default());
    let verified = mysql(&t, "localhost").tls(tls(
        Protocol::Mysql,
        "VERIFY_IDENTITY",
        Some(t.file("ca.pem")),
    ));
    let version = scalar(
        &broker,
        verified,
        "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'",
    )
    .await;
    assert!(
        version.as_str().is_some_and(|v| v.starts_with("TLSv1")),
        "{version}"
    );

    let e = broker
        .test_connection(&mysql(&t, "127.0.0.1").tls(tls(Protocol::Mysql, "DISABLED", None)))
        .await
        .unwrap_err();
    let text = e.to_string();
    assert!(
        text.contains(&format!(":{}", t.mysql_port)) && !text.contains(&t.mysql_password),
        "{text}"
    );
    let e = broker
        .test_connection(&mysql(&t, "localhost").tls(tls(
            Protocol::Mysql,
            "VERIFY_IDENTITY",
            Some(t.file("other-ca.pem")),
        )))
        .await
        .unwrap_err();
    refused(e, t.mysql_port, "ssl-ca", &t.mysql_password);
    let e = broker
        .test_connection(&mysql(&t, "127.0.0.1").tls(tls(
            Protocol::Mysql,
            "VERIFY_IDENTITY",
            Some(t.file("ca.pem")),
        )))
        .await
        .unwrap_err();
    refused(e, t.mysql_port, "VERIFY_CA", &t.mysql_password);
}

#[tokio::test]
async fn a_server_asking_for_a_cleartext_password_never_gets_it() {
    let password = format!("canary-broker-pw-{:x}", std::process::id());
    let broker = Broker::new(Limits::default());
    for (auth, kind) in [
        (FakeAuth::PostgresCleartext, "postgres"),
        (FakeAuth::MysqlClearPlugin, "mysql"),
    ] {
        let fake = FakeServer::start(auth).await;
        let url = format!("{kind}://app:{password}@127.0.0.1:{}/db", fake.port());
        let params = ConnectionParams::from_url(&url.clone().into()).unwrap();
        let e = broker.test_connection(&params).await.unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("cleartext") && !text.contains(&password),
            "{kind}: {text}"
        );
        assert!(
            fake.connections() > 0,
            "{kind}: the broker never reached the fake server"
        );
        assert!(
            !fake.received(&password),
            "{kind}: the password reached the fake server"
        );
        // The control: opted in, the password is sent, so the check above can fail.
        let opted =
            ConnectionParams::from_url(&format!("{url}?allow_cleartext_password=true").into())
                .unwrap();
        let _ = broker.test_connection(&opted).await;
        assert!(
            fake.received(&password),
            "{kind}: the control did not send the password"
        );
    }
}

#[test]
fn urls_and_entries_refuse_unknown_tls_parameters() {
    for url in [
        "postgres://u:secretpw@db.example.com/x?sslmode=verify_full",
        "postgres://u:secretpw@db.example.com/x?ssl-mode=REQUIRED",
        "postgres://u:secretpw@db.example.com/x?application_name=x",
        "mysql://u:secretpw@db.example.com/x?sslmode=require",
        "mysql://u:secretpw@db.example.com/x?ssl-mode=verify-full",
    ] {
        let e = ConnectionParams::from_url(&url.to_owned().into())
            .unwrap_err()
            .to_string();
        assert!(!e.contains("secretpw"), "{e}");
    }
    let e = NamedConnections::from_json(
        r#"{"connections": {"db": {"type": "postgresql", "host": "h", "database": "d",
            "credentialsEnv": "X", "sslmdoe": "require"}}}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("sslmdoe"), "{e}");
}

#[tokio::test]
async fn the_guard_steps_aside_for_tls_on_a_real_server() {
    let Some(t) = TlsServers::from_env() else {
        return;
    };
    let broker = Broker::new(Limits::default());
    // Loopback with a password and no mode: `prefer` / `PREFERRED` through the guard,
    // which relays the TLS handshake untouched.
    let ssl = scalar(
        &broker,
        pg(&t, "127.0.0.1"),
        "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .await;
    assert_eq!(ssl, json!(true));
    let version = scalar(
        &broker,
        mysql(&t, "127.0.0.1"),
        "SELECT VARIABLE_VALUE FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'SSL_VERSION'",
    )
    .await;
    assert!(
        version.as_str().is_some_and(|v| v.starts_with("TLSv1")),
        "{version}"
    );
}
