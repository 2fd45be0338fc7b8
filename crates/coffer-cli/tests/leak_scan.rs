//! One canary secret through every CLI command and the library flows around it, with
//! `RUST_LOG=trace`: stdout, stderr, logs, errors and `Debug` output hold it in no form —
//! raw, hex, base64 (three alignments, standard and URL-safe) or URL-encoded — except
//! where a command exists to hand it out (`get --reveal`, `export`, the child of `run`).
//! The library flows behind them (every store, the layers, the broker) run under a TRACE
//! subscriber whose output is scanned the same way. (`coffer mcp` is scanned by its own
//! test in `mcp.rs`, which drives the server with an MCP client.)

use std::path::Path;
use std::sync::Arc;

mod support;
use support::{assert_clean, forms};

/// Runs `coffer args…` in `dir` at TRACE and returns stdout + stderr (and the status).
fn coffer(dir: &Path, args: &[&str], stdin: Option<&str>) -> (bool, String) {
    let mut cmd = assert_cmd::Command::cargo_bin("coffer").unwrap();
    cmd.current_dir(dir).args(args).env("RUST_LOG", "trace");
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("COFFER_") {
            cmd.env_remove(key);
        }
    }
    if let Some(input) = stdin {
        cmd.write_stdin(input);
    }
    let out = cmd.output().unwrap();
    let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[test]
fn no_command_shows_the_canary_unless_asked_to() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let canary = format!(
        "cnry/{:016x}+{:016x}=",
        rand::random::<u64>(),
        rand::random::<u64>()
    );
    let forms = forms(&canary);
    let mut seen = String::new();
    let mut run = |args: &[&str], stdin: Option<&str>, must_succeed: bool| {
        let (ok, text) = coffer(d, args, stdin);
        assert!(!must_succeed || ok, "coffer {args:?} failed: {text}");
        assert_clean(&format!("coffer {args:?}"), &text, &forms);
        seen.push_str(&text);
    };
    let expires = (chrono::Utc::now() + chrono::Duration::days(2)).to_rfc3339();
    run(&["init"], None, true);
    run(
        &[
            "put",
            "llm_key",
            "--kind",
            "api_key",
            "--expires-at",
            &expires,
        ],
        Some(&canary),
        true,
    );
    run(
        &["put", "other", "--value", "not-the-canary-value"],
        None,
        true,
    );
    run(&["get", "llm_key", "--field", "description"], None, true);
    run(&["get", "llm_key"], None, false);
    run(&["get", "llm_key", "--json"], None, true);
    run(&["get", "llm_key", "--version", "9"], None, false);
    run(&["list"], None, true);
    run(&["list", "--json"], None, true);
    run(&["list", "--expiring", "7d"], None, true);
    run(
        &["put", "llm_key", "--if-version", "7"],
        Some(&canary),
        false,
    );
    run(&["put", "llm_key", "--create-only"], Some(&canary), false);
    run(&["put", "bad name!"], Some(&canary), false);
    run(&["keys", "rotate"], None, true);
    run(&["get", "llm_key", "--field", "description"], None, true);
    run(&["get", "llm_key"], None, false);
    // The child gets it; its output is masked in every form it prints.
    run(
        &[
            "run",
            "--",
            "sh",
            "-c",
            "printf '%s\\n' \"$LLM_KEY\"; printf %s \"$LLM_KEY\" | base64 -w0; echo; \
             printf %s \"$LLM_KEY\" | od -An -tx1 | tr -d ' \\n'; echo >&2 \"$LLM_KEY\"",
        ],
        None,
        true,
    );
    run(
        &["export", "--format", "json", "--output", "out.json"],
        None,
        true,
    );
    run(
        &["export", "--format", "dotenv", "--output", "out.env"],
        None,
        true,
    );
    run(&["audit"], None, true);
    run(&["audit", "--json"], None, true);
    run(&["rm", "llm_key"], None, true);
    run(&["get", "llm_key"], None, false);

    // Where it is meant to appear, it does: the test would catch a leak.
    let (ok, revealed) = coffer(d, &["put", "llm_key"], Some(&canary));
    assert!(ok, "{revealed}");
    let (_, revealed) = coffer(d, &["get", "llm_key", "--reveal"], None);
    assert_eq!(revealed.lines().next(), Some(canary.as_str()));
    assert!(
        std::fs::read_to_string(d.join("out.json"))
            .unwrap()
            .contains(&canary)
    );
    assert!(
        seen.contains("TRACE") || seen.contains("DEBUG"),
        "logging was on"
    );

    // The database and the keyring hold it in no readable form.
    for file in [".coffer/secrets.db", ".coffer/keyring.json"] {
        let bytes = std::fs::read(d.join(file)).unwrap();
        assert_clean(file, &String::from_utf8_lossy(&bytes), &forms);
    }
}

#[tokio::test]
async fn library_errors_and_debug_output_hold_no_value() {
    use coffer::{Keyring, MasterKey, PutOptions, Scope, SecretName, SecretStore as _};
    let canary = format!("cnry/{:016x}+lib=", rand::random::<u64>());
    let forms = forms(&canary);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.db");
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let store = coffer::sql::SqliteStore::open(&path, Arc::clone(&keyring))
        .await
        .unwrap();
    let (scope, name) = (Scope::new("t").unwrap(), SecretName::new("k").unwrap());
    store
        .put(&scope, &name, &canary.clone().into(), &PutOptions::new())
        .await
        .unwrap();
    let secret = store.get(&scope, &name, None).await.unwrap();
    let mut text = format!("{secret:?} {:?} {store:?} {keyring:?}", secret.value);

    // Errors on the way: a wrong key, a conflict, an expired secret, a moved envelope.
    let wrong =
        coffer::sql::SqliteStore::open(&path, Arc::new(Keyring::new(MasterKey::generate()))).await;
    text.push_str(&format!("{:?}", wrong.map(|_| ()).unwrap_err()));
    let conflict = store
        .put(
            &scope,
            &name,
            &canary.clone().into(),
            &PutOptions::if_version(9),
        )
        .await
        .unwrap_err();
    text.push_str(&format!("{conflict} {conflict:?}"));
    let past = chrono::Utc::now() - chrono::Duration::seconds(1);
    store
        .put(
            &scope,
            &name,
            &canary.clone().into(),
            &PutOptions::new().expires_at(past),
        )
        .await
        .unwrap();
    let expired = store.get(&scope, &name, None).await.unwrap_err();
    text.push_str(&format!("{expired} {expired:?}"));

    // coffer-env: the map, the writer's refusal, the database URL.
    let mut env = coffer::env::EnvMap::new();
    env.insert("K", canary.clone().into()).unwrap();
    text.push_str(&format!("{env:?}"));
    let url = coffer::env::DatabaseUrl::postgres("db.internal")
        .database("app")
        .user("u")
        .password(canary.clone().into());
    text.push_str(&format!("{url:?}"));
    let mut bad = coffer::env::EnvMap::new();
    bad.insert("K", format!("{canary}'$x").into()).unwrap();
    let refused = coffer::env::EnvWriter::new(coffer::env::Format::Dotenv)
        .render(&bad)
        .unwrap_err();
    text.push_str(&format!("{refused} {refused:?}"));

    // The broker: parameters and a failed login with the canary as the password.
    let params =
        coffer_broker::ConnectionParams::postgres("127.0.0.1", "nope", "u", canary.clone().into())
            .port(1);
    text.push_str(&format!("{params:?}"));
    let broker = coffer_broker::Broker::new(coffer_broker::Limits::default());
    let failed = broker.test_connection(&params).await.unwrap_err();
    text.push_str(&format!("{failed} {failed:?}"));

    assert_clean("library output", &text, &forms);
}

/// Puts the canary into `store`, reads it back through it and lists, returning the
/// `Debug` of what came back: each store's flow as a service would run it.
async fn store_flow(store: &coffer::DynSecretStore, canary: &str) -> String {
    use coffer::secrecy::ExposeSecret as _;
    use coffer::{PutOptions, Scope, SecretName};
    let scope = Scope::new(format!("leak-{:08x}", rand::random::<u32>())).unwrap();
    let name = SecretName::new("llm_key").unwrap();
    let version = store
        .put(
            &scope,
            &name,
            &canary.into(),
            &PutOptions::new().provider("openai"),
        )
        .await
        .unwrap();
    let secret = store.get(&scope, &name, None).await.unwrap();
    assert_eq!(secret.value.expose_secret(), canary);
    let conflict = store
        .put(
            &scope,
            &name,
            &canary.into(),
            &PutOptions::if_version(version.version + 7),
        )
        .await
        .unwrap_err();
    let listed = store
        .list(&scope, &coffer::ListOptions::default())
        .await
        .unwrap();
    store
        .delete(&scope, &name, coffer::DeleteMode::Destroy)
        .await
        .unwrap();
    format!("{secret:?} {listed:?} {conflict} {conflict:?} {store:?}")
}

/// The library flows a service runs, on every backend the machine has, with a TRACE
/// subscriber installed: neither the logs nor anything returned holds the canary (a
/// value, a database password or a Vault token) in any form.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn library_flows_log_nothing_at_trace() {
    use coffer::store::layer::{
        AuditStore, CacheOptions, CacheStore, TracingSink, UsageOptions, UsageStore,
    };
    use coffer::{Keyring, MasterKey, OpenOptions};

    let capture = coffer_testkit::LogCapture::default();
    let writer = capture.clone();
    tracing_subscriber::fmt()
        .with_max_level(tracing_subscriber::filter::LevelFilter::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let canary = format!("cnry/{:016x}+flow=", rand::random::<u64>());
    let mut forms = forms(&canary);
    let mut text = String::new();
    let keyring = Arc::new(Keyring::new(MasterKey::generate()));
    let options = OpenOptions::new().keyring(Arc::clone(&keyring));
    let dir = tempfile::tempdir().unwrap();

    // SQLite, bare and under the full layer stack.
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let sqlite = coffer::open(&url, &options).await.unwrap();
    text += &store_flow(&*sqlite, &canary).await;
    let stacked: Arc<coffer::DynSecretStore> = Arc::new(AuditStore::new(
        UsageStore::new(
            CacheStore::new(Arc::clone(&sqlite), CacheOptions::new()),
            UsageOptions::new(),
        ),
        vec![Arc::new(TracingSink)],
    ));
    text += &store_flow(&*stacked, &canary).await;

    // Postgres and the Supabase Vault interface, on a fresh database.
    if let Some(db) = coffer_testkit::postgres::TestDatabase::create().await {
        let pg = coffer::open(db.url(), &options).await.unwrap();
        text += &store_flow(&*pg, &canary).await;
        let project = coffer_testkit::postgres::SupabaseProject::create()
            .await
            .unwrap();
        let supabase = coffer::open(&format!("supabase+{}", project.url()), &options)
            .await
            .unwrap();
        text += &store_flow(&*supabase, &canary).await;

        // The broker: the canary is the password (loopback trusts any), used, failed and
        // refused statements, and a login that fails.
        let url = url::Url::parse(db.url()).unwrap();
        let broker = coffer_broker::Broker::new(coffer_broker::Limits::default());
        let params = coffer_broker::ConnectionParams::postgres(
            url.host_str().unwrap(),
            db.name(),
            url.username(),
            canary.clone().into(),
        )
        .port(url.port().unwrap_or(5432))
        // The test server's account is a superuser; the scan is about leaks.
        .allow_privileged(true);
        let id = broker.connect("agent", params).await.unwrap();
        let rows = broker
            .query("agent", &id, "SELECT 1 AS one", &[])
            .await
            .unwrap();
        text += &format!("{rows:?} {:?}", broker.info("agent", &id).await.unwrap());
        for sql in ["SELECT * FROM no_such_table", "DELETE FROM pg_class"] {
            let e = broker.query("agent", &id, sql, &[]).await.unwrap_err();
            text += &format!("{e} {e:?}");
        }
        broker.disconnect("agent", &id).await.unwrap();
        broker.shutdown().await;
    }
    if let Some(mysql) = coffer_testkit::service_env("COFFER_TEST_MYSQL_URL") {
        let url = url::Url::parse(&mysql).unwrap();
        let broker = coffer_broker::Broker::new(coffer_broker::Limits::default());
        let params = coffer_broker::ConnectionParams::mysql(
            url.host_str().unwrap(),
            url.path().trim_start_matches('/'),
            "coffer_no_such_user",
            canary.clone().into(),
        )
        .port(url.port().unwrap_or(3306));
        let e = broker.connect("agent", params).await.unwrap_err();
        text += &format!("{e} {e:?}");
    }

    // OpenBao: the canary as a value, the root token as a credential that must not show.
    if let (Some(addr), Some(token)) = (
        coffer_testkit::service_env("COFFER_TEST_VAULT_ADDR"),
        coffer_testkit::service_env("COFFER_TEST_VAULT_TOKEN"),
    ) {
        use coffer::vault::{Auth, KvVersion, VaultConfig, VaultStore};
        forms.extend(self::forms(&token));
        for sealing in [None, Some(Arc::clone(&keyring))] {
            let mut config = VaultConfig::new(addr.clone(), Auth::Token(token.clone().into()))
                .mount("secret", KvVersion::V2);
            if let Some(keyring) = sealing {
                config = config.sealing(keyring);
            }
            let vault = VaultStore::connect(config).await.unwrap();
            text += &store_flow(&vault, &canary).await;
        }
    }

    let logs = capture.text();
    assert!(logs.contains("TRACE"), "the subscriber saw TRACE events");
    assert_clean("the library's logs", &logs, &forms);
    assert_clean("the library's output", &text, &forms);
}
