//! VaultStore against a real OpenBao (`COFFER_TEST_VAULT_ADDR`, `COFFER_TEST_VAULT_TOKEN`;
//! scripts/services.sh starts a dev server). Each test works in a KV mount of its own.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coffer_envelope::{Keyring, MasterKey};
use coffer_store::{Error, PutOptions, SecretStore};
use coffer_testkit::service_env;
use coffer_vault::{Auth, KvVersion, VaultConfig, VaultStore};
use rand::RngExt as _;
use secrecy::{ExposeSecret as _, SecretString};

struct Server {
    addr: String,
    token: String,
}

fn server() -> Option<Server> {
    let addr = service_env("COFFER_TEST_VAULT_ADDR")?;
    let token = service_env("COFFER_TEST_VAULT_TOKEN")?;
    Some(Server { addr, token })
}

fn unique(prefix: &str) -> String {
    let n: u64 = rand::rng().random();
    format!("{prefix}-{n:012x}")
}

/// `bao` with the test server's address and token; its standard output.
fn bao(server: &Server, args: &[&str]) -> String {
    coffer_testkit::clients::bao(&server.addr, &server.token, args)
}

fn enable_kv(server: &Server, version: KvVersion) -> String {
    let mount = unique("kv");
    let v = if version == KvVersion::V1 { "1" } else { "2" };
    bao(
        server,
        &[
            "secrets",
            "enable",
            &format!("-path={mount}"),
            &format!("-version={v}"),
            "kv",
        ],
    );
    mount
}

async fn store_on(
    server: &Server,
    version: KvVersion,
    sealing: Option<Arc<Keyring>>,
) -> VaultStore {
    let mount = enable_kv(server, version);
    let mut config = VaultConfig::new(
        &server.addr,
        Auth::Token(SecretString::from(server.token.clone())),
    )
    .mount(mount, version)
    .timeout(Duration::from_secs(5));
    if let Some(k) = sealing {
        config = config.sealing(k);
    }
    VaultStore::connect(config).await.unwrap()
}

async fn v2() -> Option<Arc<VaultStore>> {
    let server = server()?;
    Some(Arc::new(store_on(&server, KvVersion::V2, None).await))
}

async fn v1() -> Option<Arc<VaultStore>> {
    let server = server()?;
    Some(Arc::new(store_on(&server, KvVersion::V1, None).await))
}

async fn v2_sealed() -> Option<Arc<VaultStore>> {
    let server = server()?;
    Some(Arc::new(
        store_on(
            &server,
            KvVersion::V2,
            Some(Arc::new(Keyring::new(MasterKey::generate()))),
        )
        .await,
    ))
}

mod conformance_kv2 {
    coffer_testkit::conformance_tests!(super::v2(), 30);
}

mod conformance_kv1 {
    coffer_testkit::conformance_tests!(super::v1(), 30);
}

mod conformance_kv2_sealed {
    coffer_testkit::conformance_tests!(super::v2_sealed(), 10);
}

use coffer_testkit::{name as n, scope as s};

#[tokio::test]
async fn interop_with_the_bao_cli() {
    let Some(server) = server() else { return };
    let store = store_on(&server, KvVersion::V2, None).await;
    let mount = store.config().mount.clone();
    // Written by the CLI, read by the store.
    bao(
        &server,
        &[
            "kv",
            "put",
            &format!("-mount={mount}"),
            "coffer/tenant-a/from_cli",
            "value=sk-from-cli-123",
        ],
    );
    let got = store
        .get(&s("tenant-a"), &n("from_cli"), None)
        .await
        .unwrap();
    assert_eq!(
        (got.value.expose_secret(), got.meta.version),
        ("sk-from-cli-123", 1)
    );
    // Written by the store, read by the CLI.
    store
        .put(
            &s("tenant-a"),
            &n("llm/openai"),
            &"sk-from-store-456".into(),
            &PutOptions::new().provider("openai"),
        )
        .await
        .unwrap();
    let out = bao(
        &server,
        &[
            "kv",
            "get",
            "-format=json",
            &format!("-mount={mount}"),
            "coffer/tenant-a/llm/openai",
        ],
    );
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["data"]["data"]["value"], "sk-from-store-456");
    assert_eq!(
        json["data"]["metadata"]["custom_metadata"]["coffer_provider"],
        "openai"
    );
    // A soft-deleted latest version is reported as deleted, not confused with a missing secret.
    bao(
        &server,
        &[
            "kv",
            "delete",
            &format!("-mount={mount}"),
            "coffer/tenant-a/from_cli",
        ],
    );
    assert!(
        store
            .get(&s("tenant-a"), &n("from_cli"), None)
            .await
            .unwrap_err()
            .is_not_found()
    );
    let meta = store
        .put(
            &s("tenant-a"),
            &n("from_cli"),
            &"again".into(),
            &PutOptions::create_only(),
        )
        .await
        .unwrap();
    assert_eq!(meta.version, 2, "Vault keeps counting across the delete");
}

#[tokio::test]
async fn approle_with_a_one_scope_policy_and_a_short_ttl() {
    let Some(server) = server() else { return };
    let admin = store_on(&server, KvVersion::V2, None).await;
    let mount = admin.config().mount.clone();
    admin
        .put(
            &s("scope-b"),
            &n("k"),
            &"value-b".into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();

    let auth_path = unique("approle");
    let policy = unique("coffer-scope-a");
    bao(
        &server,
        &["auth", "enable", &format!("-path={auth_path}"), "approle"],
    );
    let rules = format!(
        "path \"{mount}/data/coffer/scope-a/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\"] }}\n\
         path \"{mount}/metadata/coffer/scope-a/*\" {{ capabilities = [\"create\", \"read\", \"update\", \"delete\", \"list\"] }}\n\
         path \"{mount}/metadata/coffer/scope-a\" {{ capabilities = [\"list\"] }}\n\
         path \"{mount}/metadata/coffer/scope-a/\" {{ capabilities = [\"list\"] }}\n"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), rules).unwrap();
    bao(
        &server,
        &["policy", "write", &policy, file.path().to_str().unwrap()],
    );
    bao(
        &server,
        &[
            "write",
            &format!("auth/{auth_path}/role/app"),
            &format!("token_policies={policy}"),
            "token_ttl=2s",
            "token_max_ttl=3s",
        ],
    );
    let role_id = bao(
        &server,
        &[
            "read",
            "-field=role_id",
            &format!("auth/{auth_path}/role/app/role-id"),
        ],
    );
    let secret_id = bao(
        &server,
        &[
            "write",
            "-f",
            "-field=secret_id",
            &format!("auth/{auth_path}/role/app/secret-id"),
        ],
    );

    let config = VaultConfig::new(
        &server.addr,
        Auth::AppRole {
            mount: auth_path.clone(),
            role_id: role_id.trim().to_owned(),
            secret_id: SecretString::from(secret_id.trim().to_owned()),
        },
    )
    .mount(mount, KvVersion::V2);
    let debug = format!("{config:?}");
    assert!(!debug.contains(secret_id.trim()), "{debug}");
    let app = VaultStore::connect(config).await.unwrap();
    app.put(
        &s("scope-a"),
        &n("k"),
        &"value-a".into(),
        &PutOptions::new(),
    )
    .await
    .unwrap();
    let err = app.get(&s("scope-b"), &n("k"), None).await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    let err = app
        .put(&s("scope-b"), &n("k"), &"x".into(), &PutOptions::new())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains(secret_id.trim()));

    // Past the token's TTL and max TTL, reads keep working: renewal, then a fresh login.
    let until = Instant::now() + Duration::from_secs(7);
    while Instant::now() < until {
        assert_eq!(
            app.get(&s("scope-a"), &n("k"), None)
                .await
                .unwrap()
                .value
                .expose_secret(),
            "value-a"
        );
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
}

/// A private dev server on its own port, to seal, stop and restart.
struct OwnServer {
    child: std::process::Child,
    addr: String,
    token: String,
    unseal_key: String,
    _home: tempfile::TempDir,
    port: u16,
}

impl OwnServer {
    fn start(port: Option<u16>, token: Option<String>) -> Self {
        let port = port.unwrap_or_else(|| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        });
        let token = token.unwrap_or_else(|| unique("root"));
        let home = tempfile::tempdir().unwrap();
        let log = home.path().join("bao.log");
        let child = Command::new("bao")
            .args([
                "server",
                "-dev",
                &format!("-dev-root-token-id={token}"),
                &format!("-dev-listen-address=127.0.0.1:{port}"),
            ])
            .env("HOME", home.path())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao");
        let addr = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let unseal_key = loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if let Some(line) = text.lines().find(|l| l.starts_with("Unseal Key:"))
                && std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
            {
                break line.trim_start_matches("Unseal Key:").trim().to_owned();
            }
            assert!(Instant::now() < deadline, "dev server did not start");
            std::thread::sleep(Duration::from_millis(100));
        };
        Self {
            child,
            addr,
            token,
            unseal_key,
            _home: home,
            port,
        }
    }

    fn server(&self) -> Server {
        Server {
            addr: self.addr.clone(),
            token: self.token.clone(),
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sealed_or_stopped_is_unavailable_and_recovers() {
    if server().is_none() {
        return;
    }
    let own = OwnServer::start(None, None);
    let config = VaultConfig::new(
        &own.addr,
        Auth::Token(SecretString::from(own.token.clone())),
    )
    .timeout(Duration::from_millis(800))
    .retries(1);
    let store = VaultStore::connect(config).await.unwrap();
    store
        .put(&s("t"), &n("k"), &"v1".into(), &PutOptions::new())
        .await
        .unwrap();

    bao(&own.server(), &["operator", "seal"]);
    let started = Instant::now();
    let err = store.get(&s("t"), &n("k"), None).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(!format!("{err:?}").contains(&own.token));
    bao(&own.server(), &["operator", "unseal", &own.unseal_key]);
    assert_eq!(
        store
            .get(&s("t"), &n("k"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "v1"
    );

    // Stopped: unavailable within the timeout; restarted (a dev server starts empty, with
    // the same root token), the same store works again without being rebuilt.
    let (port, token) = (own.port, own.token.clone());
    drop(own);
    let started = Instant::now();
    let err = store.get(&s("t"), &n("k"), None).await.unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(started.elapsed() < Duration::from_secs(5));
    let _again = OwnServer::start(Some(port), Some(token));
    store
        .put(
            &s("t"),
            &n("k"),
            &"v-after-restart".into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    assert_eq!(
        store
            .get(&s("t"), &n("k"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "v-after-restart"
    );
}

#[tokio::test]
async fn sealed_values_never_reach_vault_in_the_clear_and_rewrap_after_a_rotation() {
    let Some(server) = server() else { return };
    let keyring = Keyring::new(MasterKey::generate());
    let store = store_on(&server, KvVersion::V2, Some(Arc::new(keyring))).await;
    let mount = store.config().mount.clone();
    coffer_testkit::put_numbered(&store, &s("t"), 0..6, |i| format!("sk-sealed-{i}")).await;
    let out = bao(
        &server,
        &[
            "kv",
            "get",
            "-format=json",
            &format!("-mount={mount}"),
            "coffer/t/k0",
        ],
    );
    let text = out;
    assert!(
        text.contains("cf1.") && !text.contains("sk-sealed-0"),
        "{text}"
    );

    // A rotation on a mount of its own: every instance reopens it with the keyring given.
    let config = store_on(&server, KvVersion::V2, None)
        .await
        .config()
        .clone();
    coffer_testkit::conformance::rewrap_after_rotation(|keyring| {
        let config = config.clone().sealing(keyring);
        async move {
            Arc::new(VaultStore::connect(config).await.unwrap())
                as Arc<coffer_store::DynSecretStore>
        }
    })
    .await;
}

#[tokio::test]
async fn urls_and_tokens() {
    let Some(server) = server() else { return };
    let err =
        VaultConfig::from_url("vault+http://root:tok-in-url@127.0.0.1:8200/secret").unwrap_err();
    assert!(
        err.to_string().contains("VAULT_TOKEN") && !err.to_string().contains("tok-in-url"),
        "{err}"
    );
    let config = VaultConfig::new(
        &server.addr,
        Auth::Token(SecretString::from(server.token.clone())),
    );
    let store = VaultStore::connect(config).await.unwrap();
    let debug = format!("{store:?}");
    assert!(!debug.contains(&server.token), "{debug}");
    // A wrong token is PermissionDenied, and its text is nowhere in the error.
    let bad = VaultConfig::new(
        &server.addr,
        Auth::Token(SecretString::from("s.wrong-token-xyz".to_owned())),
    );
    let store = VaultStore::connect(bad).await.unwrap();
    let err = store.get(&s("t"), &n("k"), None).await.unwrap_err();
    assert!(matches!(err, Error::PermissionDenied { .. }), "{err}");
    assert!(!format!("{err} {err:?}").contains("wrong-token-xyz"));
}

#[tokio::test]
async fn transit_data_keys_unwrap_once_and_survive_a_transit_rotation() {
    use coffer_envelope::{Context, KeyProvider as _};
    use coffer_vault::TransitKeyProvider;
    let Some(server) = server() else { return };
    let mount = unique("transit");
    bao(
        &server,
        &["secrets", "enable", &format!("-path={mount}"), "transit"],
    );
    bao(&server, &["write", "-f", &format!("{mount}/keys/coffer")]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys/wrapped.json");
    let config = || {
        VaultConfig::new(
            &server.addr,
            Auth::Token(SecretString::from(server.token.clone())),
        )
    };
    let provider = TransitKeyProvider::connect(config(), &mount, "coffer", &path)
        .await
        .unwrap();
    let mut keyring = provider.init().await.unwrap();
    let ctx = Context::new("t", "k").with_version(1);
    let sealed = keyring.seal(b"sk-under-a-transit-data-key", &ctx);

    // Only the wrapped form is on disk, with mode 0600.
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("vault:v1:"), "{text}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    // Rotate the Transit key and re-wrap the stored data keys: the secrets are untouched.
    bao(
        &server,
        &["write", "-f", &format!("{mount}/keys/coffer/rotate")],
    );
    assert_eq!(provider.rewrap_stored_keys().await.unwrap(), 1);
    assert!(
        std::fs::read_to_string(&path)
            .unwrap()
            .contains("vault:v2:")
    );
    let reloaded = TransitKeyProvider::connect(config(), &mount, "coffer", &path)
        .await
        .unwrap()
        .load()
        .await
        .unwrap();
    assert_eq!(
        &reloaded.open(&sealed, &ctx).unwrap()[..],
        b"sk-under-a-transit-data-key"
    );

    // coffer's own rotation: a new data key as primary; old envelopes rewrap onto it.
    let new_id = provider.add_key(&mut keyring).await.unwrap();
    let moved = keyring.rewrap(&sealed, &ctx).unwrap();
    let again = provider.load().await.unwrap();
    assert_eq!(again.primary_id(), new_id);
    assert_eq!(
        &again.open(&moved, &ctx).unwrap()[..],
        b"sk-under-a-transit-data-key"
    );

    // A damaged wrapped key is an error, not a wrong key.
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    json["keys"][0]["check"] = "0000000000000000".into();
    coffer_envelope::write_private(&path, json.to_string().as_bytes()).unwrap();
    assert!(
        provider
            .load()
            .await
            .unwrap_err()
            .to_string()
            .contains("check value")
    );
}

/// A private OpenBao in production mode: storage on local disk (integrated raft storage:
/// OpenBao has no `file` backend), one unseal key from `operator init`, on its own
/// port; killed with SIGKILL when dropped.
struct FileServer {
    child: Option<std::process::Child>,
    dir: tempfile::TempDir,
    port: u16,
    unseal_key: String,
    root_token: String,
}

impl FileServer {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let free = || {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let (port, cluster) = (free(), free());
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let config = format!(
            "storage \"raft\" {{\n path = \"{}\"\n node_id = \"n1\"\n}}\n\
             listener \"tcp\" {{\n address = \"127.0.0.1:{port}\"\n \
             cluster_address = \"127.0.0.1:{cluster}\"\n tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
            data.display()
        );
        std::fs::write(dir.path().join("bao.hcl"), config).unwrap();
        let mut server = Self {
            child: None,
            dir,
            port,
            unseal_key: String::new(),
            root_token: String::new(),
        };
        server.run();
        let init = bao(
            &server.server(),
            &[
                "operator",
                "init",
                "-key-shares=1",
                "-key-threshold=1",
                "-format=json",
            ],
        );
        let init: serde_json::Value = serde_json::from_str(&init).unwrap();
        server.unseal_key = init["unseal_keys_b64"][0].as_str().unwrap().to_owned();
        server.root_token = init["root_token"].as_str().unwrap().to_owned();
        server.unseal();
        server
    }

    /// Starts the server process (sealed) and waits for its port.
    fn run(&mut self) {
        let child = Command::new("bao")
            .arg("server")
            .arg(format!(
                "-config={}",
                self.dir.path().join("bao.hcl").display()
            ))
            .env("HOME", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "the file-storage server did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn unseal(&self) {
        bao(&self.server(), &["operator", "unseal", &self.unseal_key]);
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn server(&self) -> Server {
        Server {
            addr: format!("http://127.0.0.1:{}", self.port),
            token: self.root_token.clone(),
        }
    }
}

impl Drop for FileServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Killed and restarted during reads: `Unavailable` while it is down and while it is
/// sealed, every value back after the unseal, none wrong at any time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_file_storage_server_loses_nothing() {
    if server().is_none() {
        return;
    }
    let mut own = FileServer::start();
    // A KV v2 mount in production mode upgrades its storage for a moment after it is
    // enabled, answering 400 "Upgrading from non-versioned to versioned data": the
    // store reports that as Unavailable (transient), so the writes below retry it.
    bao(
        &own.server(),
        &["secrets", "enable", "-path=secret", "-version=2", "kv"],
    );
    let config = VaultConfig::new(
        own.server().addr,
        Auth::Token(SecretString::from(own.root_token.clone())),
    )
    .mount("secret", KvVersion::V2)
    .timeout(Duration::from_millis(800))
    .retries(1);
    let store = Arc::new(VaultStore::connect(config).await.unwrap());
    let t = s("faults");
    let count = 40;
    let deadline = Instant::now() + Duration::from_secs(30);
    for i in 0..count {
        let (name, value) = (n(&format!("k{i}")), format!("v{i}"));
        while let Err(e) = store
            .put(&t, &name, &value.as_str().into(), &PutOptions::new())
            .await
        {
            assert!(e.is_transient(), "a write to the new mount failed with {e}");
            assert!(
                Instant::now() < deadline,
                "the new mount never became ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let (store, t, stop) = (Arc::clone(&store), t.clone(), Arc::clone(&stop));
        tokio::spawn(async move {
            let (mut ok, mut unavailable) = (0usize, 0usize);
            let mut i = 0usize;
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let k = i % count;
                match store.get(&t, &n(&format!("k{k}")), None).await {
                    Ok(secret) => {
                        assert_eq!(secret.value.expose_secret(), format!("v{k}"));
                        ok += 1;
                    }
                    Err(e) => {
                        assert!(e.is_transient(), "a read failed with {e}, not Unavailable");
                        unavailable += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                }
                i += 1;
            }
            (ok, unavailable)
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    own.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    own.run();
    // Restarted but sealed: still unavailable.
    let sealed = store.get(&t, &n("k0"), None).await.unwrap_err();
    assert!(sealed.is_transient(), "{sealed}");
    assert!(!format!("{sealed:?}").contains(&own.root_token));
    own.unseal();
    // Working again once the node is active: wait for the reader to get through.
    let deadline = Instant::now() + Duration::from_secs(30);
    while store.get(&t, &n("k1"), None).await.is_err() {
        assert!(
            Instant::now() < deadline,
            "reads did not resume after the unseal"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (ok, unavailable) = reader.await.unwrap();
    assert!(
        ok > 0 && unavailable > 0,
        "ok {ok}, unavailable {unavailable}"
    );
    for i in 0..count {
        let got = store.get(&t, &n(&format!("k{i}")), None).await.unwrap();
        assert_eq!(got.value.expose_secret(), format!("v{i}"));
    }
}

/// Asserts `result` is `Tampered` naming `name`, with no value in the message.
fn assert_tampered<T: std::fmt::Debug>(result: coffer_store::Result<T>, name: &str) {
    let err = result.expect_err("forged metadata must not be acted on");
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
    assert!(err.to_string().contains(name), "{err}");
    assert!(!err.to_string().contains("value-"), "{err}");
}

/// Someone with write access to the mount but no key, using the `bao` CLI: edits of the
/// custom metadata that decides what a read returns (an expiry cleared, a secret switched
/// back on, coffer's deletion mark removed) are refused as `Tampered`, and undeleting
/// Vault's versions does not bring a deleted secret back.
#[tokio::test]
async fn forged_custom_metadata_with_the_bao_cli_is_refused() {
    let Some(server) = server() else { return };
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    for version in [KvVersion::V2, KvVersion::V1] {
        let store = store_on(&server, version, Some(keyring.clone())).await;
        let mount = store.config().mount.clone();
        let scope = coffer_testkit::fresh_scope();
        let n = |s: &str| coffer_store::SecretName::new(s).unwrap();
        let prefix = store.config().prefix.clone();
        let path = |name: &str| format!("{mount}/{prefix}/{}/{name}", scope.as_str());
        let patch = |name: &str, field: &str| match version {
            KvVersion::V1 => {
                // KV v1 keeps the metadata beside the value: rewrite the fields as read.
                let out = bao(&server, &["kv", "get", "-format=json", &path(name)]);
                let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                let mut args: Vec<String> = vec!["kv".into(), "put".into(), path(name)];
                let (key, val) = field.split_once('=').unwrap();
                for (k, v) in doc["data"].as_object().unwrap() {
                    if k != key {
                        args.push(format!("{k}={}", v.as_str().unwrap()));
                    }
                }
                if !val.is_empty() {
                    args.push(field.to_owned());
                }
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                bao(&server, &args);
            }
            _ => {
                // `bao kv metadata put` replaces the custom metadata: rewrite it as read.
                let out = bao(
                    &server,
                    &["kv", "metadata", "get", "-format=json", &path(name)],
                );
                let doc: serde_json::Value = serde_json::from_str(&out).unwrap();
                let (key, _) = field.split_once('=').unwrap();
                let mut args: Vec<String> = vec!["kv".into(), "metadata".into(), "put".into()];
                for (k, v) in doc["data"]["custom_metadata"].as_object().unwrap() {
                    if k != key {
                        args.push(format!("-custom-metadata={k}={}", v.as_str().unwrap()));
                    }
                }
                if !field.ends_with('=') {
                    args.push(format!("-custom-metadata={field}"));
                }
                args.push(path(name));
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                bao(&server, &args);
            }
        };

        // An expired secret revived by clearing its expiry.
        let expired = PutOptions::new().expires_at(chrono::Utc::now() - chrono::Duration::hours(1));
        store
            .put(&scope, &n("expired"), &"value-e".into(), &expired)
            .await
            .unwrap();
        assert!(matches!(
            store.get(&scope, &n("expired"), None).await,
            Err(Error::Expired { .. })
        ));
        // An expiry far in the future is the same forgery as none.
        patch("expired", "coffer_expires_at=99999999999999");
        assert_tampered(store.get(&scope, &n("expired"), None).await, "expired");

        // An inactive secret switched back on.
        store
            .put(
                &scope,
                &n("inactive"),
                &"value-i".into(),
                &PutOptions::new().active(false),
            )
            .await
            .unwrap();
        patch("inactive", "coffer_active=true");
        assert_tampered(store.get(&scope, &n("inactive"), None).await, "inactive");
        assert_tampered(store.metadata(&scope, &n("inactive")).await, "inactive");
        // A put over a forged head does not launder it under a fresh MAC.
        assert_tampered(
            store
                .put(
                    &scope,
                    &n("inactive"),
                    &"value-j".into(),
                    &PutOptions::new(),
                )
                .await,
            "inactive",
        );

        if version == KvVersion::V2 {
            // A soft-deleted secret: undeleting Vault's versions does not revive it, and
            // removing coffer's deletion mark is a forgery.
            store
                .put(&scope, &n("deleted"), &"value-d".into(), &PutOptions::new())
                .await
                .unwrap();
            store
                .delete(&scope, &n("deleted"), coffer_store::DeleteMode::Soft)
                .await
                .unwrap();
            bao(
                &server,
                &["kv", "undelete", "-versions=1", &path("deleted")],
            );
            assert!(matches!(
                store.get(&scope, &n("deleted"), None).await,
                Err(Error::NotFound { .. })
            ));
            patch("deleted", "coffer_deleted=false");
            assert_tampered(store.get(&scope, &n("deleted"), None).await, "deleted");
        }

        // The untouched secret still reads.
        store
            .put(&scope, &n("fine"), &"value-f".into(), &PutOptions::new())
            .await
            .unwrap();
        let got = store.get(&scope, &n("fine"), None).await.unwrap();
        assert_eq!(got.value.expose_secret(), "value-f");

        // A head as a coffer before metadata MACs wrote it (no MAC): refused until
        // `adopt_untagged_heads` (`coffer keys migrate`) gives it one; forged heads,
        // which carry a MAC, are not adopted.
        store
            .put(
                &scope,
                &n("legacy"),
                &"value-l".into(),
                &PutOptions::new().provider("openai"),
            )
            .await
            .unwrap();
        patch("legacy", "coffer_mac=");
        assert_tampered(store.get(&scope, &n("legacy"), None).await, "legacy");
        assert_eq!(
            store.adopt_untagged_heads().await.unwrap(),
            1,
            "{version:?}"
        );
        let got = store.get(&scope, &n("legacy"), None).await.unwrap();
        assert_eq!(got.value.expose_secret(), "value-l");
        assert_eq!(got.meta.provider.as_deref(), Some("openai"));
        assert_eq!(store.adopt_untagged_heads().await.unwrap(), 0);
        assert_tampered(store.get(&scope, &n("inactive"), None).await, "inactive");
    }
}

// The keyring kept in OpenBao itself (a KV v2 secret, written with check-and-set),
// sealed under a Transit key that never leaves the server: two instances share it, a
// rotation on one is followed by the other's next call, concurrent rotations have one
// winner, a missing Transit key and a forged keyring written with the `bao` CLI are
// clear errors, and KV v1 (no check-and-set) refuses to keep a keyring.
mod shared_keyring {
    use super::{Server, bao, server, unique};
    use std::sync::Arc;
    use std::time::Duration;

    use coffer_envelope::{Kek, Keyring, KeyringKek, MasterKey};
    use coffer_store::keys::{KeyringStorage as _, SharedKeyring};
    use coffer_store::{Error, PutOptions, SecretStore, SecretStoreExt as _};
    use coffer_testkit::{fresh_scope, name as n, value_of};
    use coffer_vault::{Auth, KvVersion, TransitKek, VaultConfig, VaultKeyring, VaultStore};
    use secrecy::SecretString;

    fn kv_config(server: &Server, mount: &str, version: KvVersion) -> VaultConfig {
        VaultConfig::new(
            &server.addr,
            Auth::Token(SecretString::from(server.token.clone())),
        )
        .mount(mount, version)
        .timeout(Duration::from_secs(5))
    }

    #[tokio::test]
    async fn instances_share_a_keyring_sealed_by_transit_and_kept_in_kv() {
        let Some(server) = server() else { return };
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
        let cfg = || kv_config(&server, &kv, KvVersion::V2);
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
        let kept =
            String::from_utf8(storage.read_keyring().await.unwrap().unwrap().document).unwrap();
        assert!(kept.contains("\"kek\":\"transit\""), "{kept}");
        assert!(kept.contains("vault:v1:"), "{kept}");
        let shown = bao(
            &server,
            &["kv", "get", "-format=json", &format!("{kv}/coffer-keyring")],
        );
        assert!(shown.contains("coffer_keyring"));

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
        assert_eq!(value_of(&b, &scope, "two").await, "value-2");
        assert_eq!(b.keys().handle().current().primary_id(), 2);
        assert_eq!(value_of(&b, &scope, "one").await, "value-1");

        // Two rotations at once: Vault's check-and-set lets exactly one through.
        let lost = coffer_testkit::keys::race_rotations(a.keys(), b.keys()).await;
        assert!(
            matches!(lost, Error::KeyringConflict { found: Some(3), .. }),
            "{lost}"
        );
        let moved = b.rewrap_all(100, &mut |_, _| {}).await.unwrap();
        assert_eq!(moved.remaining, 0);
        assert_eq!(value_of(&a, &scope, "one").await, "value-1");

        // A re-key under a local KEK: Transit no longer needed to open it.
        let local: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
        a.keys().rekey(local.clone()).await.unwrap();
        let c = VaultStore::connect_shared(cfg(), local.clone())
            .await
            .unwrap();
        assert_eq!(value_of(&c, &scope, "two").await, "value-2");
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
        assert_eq!(value_of(&b, &scope, "one").await, "value-1");

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
        let err = VaultKeyring::connect(kv_config(&server, &v1, KvVersion::V1))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
    }
}
