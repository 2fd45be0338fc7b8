//! PgStore over TLS to the private cluster `scripts/services.sh` starts (`ssl = on`,
//! the test user `hostssl` only, `hostnossl … reject`, a certificate for `localhost`
//! only), and against a fake server that asks for the password in cleartext.

use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::PgStore;
use coffer_store::{Error, PutOptions, SecretStore};
use coffer_testkit::postgres::{FakeAuth, FakeServer, PgTestStore, TestDatabase, TlsServers};

fn keyring() -> Arc<Keyring> {
    Arc::new(Keyring::new(MasterKey::generate()))
}

async fn verified_store(tls: &TlsServers) -> (PgStore, TestDatabase) {
    let db = TestDatabase::create_on(tls.pg_verified_url("postgres")).await;
    let store = PgStore::connect(db.url(), keyring())
        .await
        .unwrap_or_else(|e| panic!("verify-full: {e}"));
    (store, db)
}

mod conformance_over_verify_full {
    use super::*;
    coffer_testkit::conformance_tests!(
        async {
            let tls = TlsServers::from_env()?;
            let (store, db) = verified_store(&tls).await;
            Some(PgTestStore { store, db })
        },
        50
    );
}

async fn connect_error(url: &str) -> String {
    match PgStore::connect(url, keyring()).await {
        Ok(_) => panic!("connected, but should have been refused"),
        Err(e) => {
            assert!(
                matches!(e, Error::Config { .. } | Error::Unavailable { .. }),
                "{e:?}"
            );
            e.to_string()
        }
    }
}

#[tokio::test]
async fn the_store_runs_over_tls_and_the_server_says_so() {
    let Some(tls) = TlsServers::from_env() else {
        return;
    };
    let (store, _db) = verified_store(&tls).await;
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(
        ssl,
        "pg_stat_ssl says the store's connection is not encrypted"
    );
    let scope = coffer_testkit::fresh_scope();
    let name = coffer_testkit::name("api_key");
    store
        .put(
            &scope,
            &name,
            &"over-tls".to_owned().into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        secrecy::ExposeSecret::expose_secret(&store.get(&scope, &name, None).await.unwrap().value),
        "over-tls"
    );
}

#[tokio::test]
async fn a_wrong_ca_is_refused_with_the_parameter_that_fixes_it() {
    let Some(tls) = TlsServers::from_env() else {
        return;
    };
    let other = tls.file("other-ca.pem");
    let url = tls.pg_url(
        "localhost",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={other}"),
    );
    let e = connect_error(&url).await;
    assert!(e.contains(&format!("localhost:{}", tls.pg_port)), "{e}");
    assert!(
        e.contains("CA coffer does not trust") && e.contains("sslrootcert"),
        "{e}"
    );
    assert!(
        !e.contains(&tls.pg_password) && !e.contains("postgres://"),
        "{e}"
    );
    // With no CA at all, the Mozilla roots do not know the test CA either.
    let e = connect_error(&tls.pg_url("localhost", "postgres", "sslmode=verify-full")).await;
    assert!(e.contains("sslrootcert"), "{e}");
}

#[tokio::test]
async fn a_certificate_for_another_host_name_is_refused_under_verify_full() {
    let Some(tls) = TlsServers::from_env() else {
        return;
    };
    let ca = tls.file("ca.pem");
    // The certificate names `localhost` only.
    let url = tls.pg_url(
        "127.0.0.1",
        "postgres",
        &format!("sslmode=verify-full&sslrootcert={ca}"),
    );
    let e = connect_error(&url).await;
    assert!(
        e.contains("not for the host name \"127.0.0.1\"") && e.contains("verify-ca"),
        "{e}"
    );
    // verify-ca checks the chain but not the name (the database is made over
    // verify-full: raw sqlx's verify-ca needs rustls's process provider, which the store
    // names and a bare sqlx connection does not).
    let db = TestDatabase::create_on(tls.pg_verified_url("postgres")).await;
    let url = tls.pg_url(
        "127.0.0.1",
        db.name(),
        &format!("sslmode=verify-ca&sslrootcert={ca}"),
    );
    PgStore::connect(&url, keyring()).await.unwrap();
}

#[tokio::test]
async fn plaintext_is_refused_by_the_server_with_advice() {
    let Some(tls) = TlsServers::from_env() else {
        return;
    };
    let e = connect_error(&tls.pg_url("127.0.0.1", "postgres", "sslmode=disable")).await;
    assert!(
        e.contains("accepts only TLS") && e.contains("sslmode=verify-full"),
        "{e}"
    );
    assert!(!e.contains(&tls.pg_password), "{e}");
}

#[tokio::test]
async fn a_client_certificate_logs_in() {
    let Some(tls) = TlsServers::from_env() else {
        return;
    };
    let url = format!(
        "postgres://coffer_cert@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}&sslcert={}&sslkey={}",
        tls.pg_port,
        tls.file("ca.pem"),
        tls.file("client.pem"),
        tls.file("client.key"),
    );
    let db = TestDatabase::create_on(url).await;
    let store = PgStore::connect(db.url(), keyring()).await.unwrap();
    let (user, ssl): (String, bool) = sqlx::query_as(
        "SELECT current_user::text, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
    )
    .fetch_one(store.pool())
    .await
    .unwrap();
    assert_eq!((user.as_str(), ssl), ("coffer_cert", true));
    // Without the certificate the server has nothing to check.
    let e = connect_error(&format!(
        "postgres://coffer_cert@localhost:{}/postgres?sslmode=verify-full&sslrootcert={}",
        tls.pg_port,
        tls.file("ca.pem")
    ))
    .await;
    assert!(e.contains(&format!("localhost:{}", tls.pg_port)), "{e}");
}

#[tokio::test]
async fn a_server_asking_for_a_cleartext_password_never_gets_it() {
    let fake = FakeServer::start(FakeAuth::PostgresCleartext).await;
    let password = format!("canary-pw-{}", rand_suffix());
    for params in ["", "?sslmode=prefer", "?sslmode=disable", "?sslmode=allow"] {
        let url = format!(
            "postgres://app:{password}@127.0.0.1:{}/db{params}",
            fake.port()
        );
        let e = connect_error(&url).await;
        assert!(
            e.contains("cleartext") && e.contains("allow_cleartext_password"),
            "{params}: {e}"
        );
        assert!(!e.contains(&password), "{e}");
    }
    assert!(
        fake.connections() > 0,
        "the client never reached the fake server"
    );
    assert!(
        !fake.received(&password),
        "the password reached the fake server"
    );
    // The control: opted in, the same client does send it, so the check above could fail.
    let url = format!(
        "postgres://app:{password}@127.0.0.1:{}/db?allow_cleartext_password=true",
        fake.port()
    );
    let _ = PgStore::connect(&url, keyring()).await;
    assert!(
        fake.received(&password),
        "the control did not send the password"
    );
}

#[tokio::test]
async fn unknown_and_misspelt_parameters_are_errors() {
    for url in [
        "postgres://u:secretpw@127.0.0.1:1/db?sslmod=require",
        "postgres://u:secretpw@127.0.0.1:1/db?ssl_mode=require",
        "postgres://u:secretpw@127.0.0.1:1/db?sslmode=verify_full",
        "postgres://u:secretpw@127.0.0.1:1/db?sslrootcert=/nonexistent/ca.pem",
        "postgres://u:secretpw@127.0.0.1:1/db?connect_timeout=5",
    ] {
        let e = match PgStore::connect(url, keyring()).await {
            Ok(_) => panic!("{url} connected"),
            Err(e) => e,
        };
        assert!(matches!(e, Error::Config { .. }), "{url}: {e:?}");
        assert!(!e.to_string().contains("secretpw"), "{e}");
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(7)
}

/// The guard in front of real servers: it relays SCRAM over plaintext and steps aside
/// for TLS, and the store works through it (writes, reads, change notifications).
#[tokio::test]
async fn the_guard_relays_real_servers_in_plaintext_and_in_tls() {
    let Some(tls) = TlsServers::from_env() else {
        return;
    };
    // SCRAM without TLS, the password behind the guard (a local server with a password).
    let scram = format!(
        "postgres://coffer_scram:{}@127.0.0.1:{}/postgres?sslmode=disable",
        tls.pg_password, tls.pg_port
    );
    // TLS negotiated through the guard (`prefer` on loopback, with a password).
    let prefer = tls.pg_url("127.0.0.1", "postgres", "sslmode=prefer");
    for (url, encrypted) in [(scram, false), (prefer, true)] {
        let db = TestDatabase::create_on(url).await;
        let store = PgStore::connect(db.url(), keyring()).await.unwrap();
        let (ssl,): (bool,) =
            sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                .fetch_one(store.pool())
                .await
                .unwrap();
        assert_eq!(ssl, encrypted);
        let mut changes = Box::pin(store.watch().await.unwrap());
        let scope = coffer_testkit::fresh_scope();
        let name = coffer_testkit::name("k");
        store
            .put(
                &scope,
                &name,
                &"through-the-guard".to_owned().into(),
                &PutOptions::new(),
            )
            .await
            .unwrap();
        let got = store.get(&scope, &name, None).await.unwrap();
        assert_eq!(
            secrecy::ExposeSecret::expose_secret(&got.value),
            "through-the-guard"
        );
        let event = tokio::time::timeout(
            std::time::Duration::from_secs(5),
            futures::StreamExt::next(&mut changes),
        )
        .await
        .expect("a change notification through the guard");
        assert!(event.is_some());
    }
}
