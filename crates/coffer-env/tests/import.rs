//! Importing .env files, JSON objects and the environment into stores: on memory and
//! on a real SQLite store.

use coffer_env::import::{ImportFormat, ImportOptions, from_env, from_vars, import, parse};
use coffer_store::{
    DynSecretStore, MemoryStore, PutOptions, SecretKind, SecretStore, SecretStoreExt as _,
};
use coffer_testkit::{fresh_scope, name};
use secrecy::ExposeSecret as _;

const DOTENV: &str = "\
# a project's .env
OPENAI_API_KEY=sk-import-openai-1
export GITHUB_TOKEN='ghp_import_2'
STRIPE_KEY=\"sk_live_with spaces\"
EMPTY=
";

async fn sqlite() -> (tempfile::TempDir, coffer_sql::SqliteStore) {
    let dir = tempfile::tempdir().unwrap();
    let keyring = std::sync::Arc::new(coffer_envelope::Keyring::new(
        coffer_envelope::MasterKey::generate(),
    ));
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = coffer_sql::SqliteStore::connect(&url, keyring)
        .await
        .unwrap();
    (dir, store)
}

#[test]
fn parses_dotenv_and_json_and_never_shows_a_value_in_an_error() {
    let entries = parse(DOTENV, ImportFormat::Dotenv).unwrap();
    let got: Vec<(&str, &str)> = entries
        .iter()
        .map(|e| (e.env_name.as_str(), e.value.expose_secret()))
        .collect();
    assert_eq!(
        got,
        [
            ("OPENAI_API_KEY", "sk-import-openai-1"),
            ("GITHUB_TOKEN", "ghp_import_2"),
            ("STRIPE_KEY", "sk_live_with spaces"),
            ("EMPTY", ""),
        ]
    );
    assert!(!format!("{entries:?}").contains("sk-import"));
    let err = parse("GOOD=1\nBAD LINE sk-leak-me-9\n", ImportFormat::Dotenv)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cannot be parsed") && !err.contains("sk-leak"),
        "{err}"
    );

    let entries = parse(r#"{"A_KEY": "a-value", "B_KEY": "b"}"#, ImportFormat::Json).unwrap();
    assert_eq!(entries.len(), 2);
    let err = parse(r#"{"PORT": 5432}"#, ImportFormat::Json)
        .unwrap_err()
        .to_string();
    assert!(err.contains("\"PORT\" is not a string"), "{err}");
    let err = parse(r#"["sk-in-an-array"]"#, ImportFormat::Json)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("one object") && !err.contains("sk-in"),
        "{err}"
    );
    let err = parse("{\"K\": \"sk-broken", ImportFormat::Json)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("not JSON") && !err.contains("sk-broken"),
        "{err}"
    );
    assert_eq!(
        ImportFormat::of_path(std::path::Path::new("conf/.env.production")),
        Some(ImportFormat::Dotenv)
    );
    assert_eq!(
        ImportFormat::of_path(std::path::Path::new("secrets.json")),
        Some(ImportFormat::Json)
    );
    assert_eq!(
        ImportFormat::of_path(std::path::Path::new("notes.txt")),
        None
    );
}

async fn imports_into(store: &DynSecretStore) {
    let scope = fresh_scope();
    // A secret that already exists, with a description the import must keep.
    store
        .put(
            &scope,
            &name("github_token"),
            &"ghp_old".into(),
            &PutOptions::new().description("the CI token"),
        )
        .await
        .unwrap();
    let options = ImportOptions::new()
        .provider("acme")
        .kind(SecretKind::ApiKey)
        .tag("imported");
    let dry = import(
        store,
        &scope,
        parse(DOTENV, ImportFormat::Dotenv).unwrap(),
        &options.clone().dry_run(true),
    )
    .await
    .unwrap();
    assert_eq!(dry.created, ["empty", "openai_api_key", "stripe_key"]);
    assert_eq!(dry.updated, ["github_token"]);
    assert_eq!(
        store.list_all(&scope, None).await.unwrap().len(),
        1,
        "a dry run writes nothing"
    );

    let report = import(
        store,
        &scope,
        parse(DOTENV, ImportFormat::Dotenv).unwrap(),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(report.created, ["empty", "openai_api_key", "stripe_key"]);
    assert_eq!(report.updated, ["github_token"]);
    let got = store
        .get(&scope, &name("openai_api_key"), None)
        .await
        .unwrap();
    assert_eq!(got.value.expose_secret(), "sk-import-openai-1");
    assert_eq!(got.meta.env_name.as_deref(), Some("OPENAI_API_KEY"));
    assert_eq!(got.meta.provider.as_deref(), Some("acme"));
    assert_eq!(got.meta.kind, SecretKind::ApiKey);
    assert_eq!(got.meta.tags, ["imported"]);
    let gh = store
        .get(&scope, &name("github_token"), None)
        .await
        .unwrap();
    assert_eq!(gh.value.expose_secret(), "ghp_import_2");
    assert_eq!(gh.meta.version, 2);
    assert_eq!(gh.meta.description.as_deref(), Some("the CI token"), "kept");

    // Again: nothing changed, so no new version anywhere.
    let again = import(
        store,
        &scope,
        parse(DOTENV, ImportFormat::Dotenv).unwrap(),
        &options,
    )
    .await
    .unwrap();
    assert_eq!(again.unchanged.len(), 4);
    assert!(again.created.is_empty() && again.updated.is_empty());
    assert_eq!(
        store
            .metadata(&scope, &name("github_token"))
            .await
            .unwrap()
            .version,
        2
    );

    // Refused: coffer's credentials, loader variables, names no secret can have, repeats.
    let tricky = "COFFER_MASTER_KEY=k\nVAULT_TOKEN=t\nLD_PRELOAD=/tmp/x.so\nPATH=/bin\nOPENAI_API_KEY=sk-import-openai-1\nopenai_api_key=dup\n";
    let refused = import(
        store,
        &scope,
        parse(tricky, ImportFormat::Dotenv).unwrap(),
        &options,
    )
    .await
    .unwrap();
    let names: Vec<&str> = refused.refused.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        names,
        [
            "COFFER_MASTER_KEY",
            "VAULT_TOKEN",
            "LD_PRELOAD",
            "PATH",
            "openai_api_key"
        ]
    );
    assert_eq!(refused.unchanged, ["openai_api_key"]);
    assert!(
        store
            .metadata(&scope, &name("coffer_master_key"))
            .await
            .unwrap_err()
            .is_not_found()
    );
}

#[tokio::test]
async fn imports_into_memory() {
    imports_into(&MemoryStore::new()).await;
}

#[tokio::test]
async fn imports_into_sqlite() {
    let (_dir, store) = sqlite().await;
    imports_into(&store).await;
}

/// Variables by prefix, in name order, the ones that are not UTF-8 left out; the
/// process's own environment goes through the same function.
#[tokio::test]
async fn imports_the_environment_by_prefix() {
    use std::ffi::OsString;
    use std::os::unix::ffi::OsStringExt as _;
    let vars = vec![
        (OsString::from("APP_OTHER"), OsString::from("x")),
        (
            OsString::from("APP_API_KEY"),
            OsString::from("sk-from-env-1"),
        ),
        (OsString::from("HOME"), OsString::from("/home/u")),
        (
            OsString::from("APP_BINARY"),
            OsString::from_vec(vec![0xff, 0xfe]),
        ),
    ];
    let entries = from_vars(vars, Some("APP_"));
    let names: Vec<&str> = entries.iter().map(|e| e.env_name.as_str()).collect();
    assert_eq!(names, ["APP_API_KEY", "APP_OTHER"]);
    let store = MemoryStore::new();
    let scope = fresh_scope();
    let report = import(&store, &scope, entries, &ImportOptions::new())
        .await
        .unwrap();
    assert_eq!(report.created, ["app_api_key", "app_other"]);
    let got = store.get(&scope, &name("app_api_key"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "sk-from-env-1");
    assert!(!format!("{report:?}").contains("sk-from-env"));
    // The process environment, through the same function: no variable has this prefix.
    assert!(from_env(Some("COFFER_IMPORT_TEST_NOTHING_")).is_empty());
}
