//! VaultStore over HTTPS to the OpenBao `scripts/services.sh` starts with `-dev-tls`
//! (its own CA, a certificate for `localhost` and `127.0.0.1`).

use std::sync::Arc;
use std::time::Duration;

use coffer_store::{PutOptions, SecretStore};
use coffer_testkit::service_env;
use coffer_vault::{Auth, VaultConfig, VaultStore};
use rand::RngExt as _;
use secrecy::SecretString;

struct Server {
    addr: String,
    token: String,
    ca: String,
}

fn server() -> Option<Server> {
    Some(Server {
        addr: service_env("COFFER_TEST_TLS_VAULT_ADDR")?,
        token: service_env("COFFER_TEST_TLS_VAULT_TOKEN")?,
        ca: service_env("COFFER_TEST_TLS_VAULT_CACERT")?,
    })
}

fn config(server: &Server) -> VaultConfig {
    let n: u64 = rand::rng().random();
    VaultConfig::new(
        &server.addr,
        Auth::Token(SecretString::from(server.token.clone())),
    )
    .prefix(format!("tls-{n:016x}"))
    .timeout(Duration::from_secs(5))
    .retries(0)
}

async fn verified() -> Option<Arc<VaultStore>> {
    let server = server()?;
    assert!(server.addr.starts_with("https://"), "{}", server.addr);
    let mut config = config(&server);
    config.ca_cert = Some(server.ca.clone().into());
    Some(Arc::new(VaultStore::connect(config).await.unwrap()))
}

mod conformance_over_https {
    coffer_testkit::conformance_tests!(super::verified(), 10);
}

async fn first_call_error(config: VaultConfig) -> String {
    let scope = coffer_testkit::fresh_scope();
    let name = coffer_testkit::name("k");
    let result = match VaultStore::connect(config).await {
        Ok(store) => store
            .put(&scope, &name, &"v".to_owned().into(), &PutOptions::new())
            .await
            .map(|_| ()),
        Err(e) => Err(e),
    };
    result
        .expect_err("reached a TLS server without trusting its CA")
        .to_string()
}

#[tokio::test]
async fn without_the_ca_it_fails_and_says_which_variable_fixes_it() {
    let Some(server) = server() else { return };
    let e = first_call_error(config(&server)).await;
    assert!(e.contains("VAULT_CACERT"), "{e}");
    assert!(!e.contains(&server.token), "{e}");
    // Another CA is no better.
    let mut other = config(&server);
    other.ca_cert = Some(
        std::path::Path::new(&service_env("COFFER_TEST_TLS_DIR").unwrap()).join("other-ca.pem"),
    );
    let e = first_call_error(other).await;
    assert!(e.contains("VAULT_CACERT"), "{e}");
}

#[tokio::test]
async fn a_server_name_override_and_a_ca_directory_are_honored() {
    let Some(server) = server() else { return };
    // Connect by 127.0.0.1 but verify the name `localhost` (VAULT_TLS_SERVER_NAME),
    // trusting a directory of CAs (VAULT_CAPATH).
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(&server.ca, dir.path().join("bao-ca.pem")).unwrap();
    let port = server.addr.rsplit(':').next().unwrap();
    let mut config = VaultConfig::new(
        format!("https://127.0.0.1:{port}"),
        Auth::Token(SecretString::from(server.token.clone())),
    );
    config.ca_path = Some(dir.path().to_owned());
    config.tls_server_name = Some("localhost".to_owned());
    let store = VaultStore::connect(config).await.unwrap();
    let scope = coffer_testkit::fresh_scope();
    let name = coffer_testkit::name("k");
    store
        .put(&scope, &name, &"v".to_owned().into(), &PutOptions::new())
        .await
        .unwrap();
    // A name the certificate does not list fails, naming the variable.
    let mut wrong = VaultConfig::new(
        format!("https://127.0.0.1:{port}"),
        Auth::Token(SecretString::from(server.token.clone())),
    );
    wrong.ca_cert = Some(server.ca.clone().into());
    wrong.tls_server_name = Some("vault.example.test".to_owned());
    let e = first_call_error(wrong).await;
    assert!(e.contains("VAULT_TLS_SERVER_NAME"), "{e}");
}

#[test]
fn plain_http_to_a_remote_host_is_refused_unless_written_out() {
    let remote = VaultConfig::new(
        "http://vault.example.com:8200",
        Auth::Token("t".to_owned().into()),
    );
    let e = remote.check().unwrap_err().to_string();
    assert!(e.contains("insecure_http") && e.contains("https"), "{e}");
    let mut allowed = VaultConfig::new(
        "http://vault.example.com:8200",
        Auth::Token("t".to_owned().into()),
    );
    allowed.insecure_http = true;
    allowed.check().unwrap();
    VaultConfig::new("http://127.0.0.1:8200", Auth::Token("t".to_owned().into()))
        .check()
        .unwrap();
}
