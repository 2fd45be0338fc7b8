//! EnvMap from stores (memory and SQLite), selections, name rules and their errors.

use std::sync::Arc;

use coffer_env::{EnvMap, Error, Selection, Source};
use coffer_store::{MemoryStore, PutOptions, SecretStore};
use coffer_testkit::{name, scope};
use secrecy::{ExposeSecret as _, SecretString};

async fn seeded(store: &dyn SecretStore) -> coffer_store::Scope {
    let tenant = scope(&format!("env-{}", rand::random::<u32>()));
    let puts = [
        ("openai_api_key", PutOptions::new().tags(["llm"])),
        ("anthropic/api-key", PutOptions::new().tags(["llm", "prod"])),
        ("github.token", PutOptions::new().env_name("GH_TOKEN")),
        ("db/password", PutOptions::new()),
        (
            "old_key",
            PutOptions::new().expires_at(chrono::Utc::now() - chrono::Duration::hours(1)),
        ),
        ("paused_key", PutOptions::new().active(false)),
    ];
    for (n, options) in puts {
        let value = SecretString::from(format!("value of {n}"));
        store
            .put(&tenant, &name(n), &value, &options)
            .await
            .unwrap();
    }
    tenant
}

fn value(map: &EnvMap, var: &str) -> String {
    map.get(var).unwrap().expose_secret().to_owned()
}

async fn selections(store: &dyn SecretStore) {
    let tenant = seeded(store).await;

    let all = EnvMap::from_store(store, &tenant, &Selection::all())
        .await
        .unwrap();
    let names: Vec<&str> = all.names().collect();
    // Expired and inactive secrets are skipped when found by listing.
    assert_eq!(
        names,
        [
            "ANTHROPIC_API_KEY",
            "DB_PASSWORD",
            "GH_TOKEN",
            "OPENAI_API_KEY"
        ]
    );
    assert_eq!(value(&all, "GH_TOKEN"), "value of github.token");
    assert_eq!(
        all.source("ANTHROPIC_API_KEY"),
        Some(&Source::Secret(name("anthropic/api-key")))
    );

    let llm = EnvMap::from_store(store, &tenant, &Selection::tags(["llm"]))
        .await
        .unwrap();
    assert_eq!(
        llm.names().collect::<Vec<_>>(),
        ["ANTHROPIC_API_KEY", "OPENAI_API_KEY"]
    );
    let both = Selection::tags(["llm", "prod"]);
    let prod = EnvMap::from_store(store, &tenant, &both).await.unwrap();
    assert_eq!(prod.names().collect::<Vec<_>>(), ["ANTHROPIC_API_KEY"]);

    let prefix = EnvMap::from_store(store, &tenant, &Selection::prefix("db/"))
        .await
        .unwrap();
    assert_eq!(prefix.names().collect::<Vec<_>>(), ["DB_PASSWORD"]);

    let named = Selection::names([name("github.token"), name("openai_api_key")]);
    let named = EnvMap::from_store(store, &tenant, &named).await.unwrap();
    assert_eq!(
        named.names().collect::<Vec<_>>(),
        ["GH_TOKEN", "OPENAI_API_KEY"]
    );

    // A named secret that is missing, expired or inactive is an error, not a gap.
    for missing in ["nope", "old_key", "paused_key"] {
        let err = EnvMap::from_store(store, &tenant, &Selection::names([name(missing)]))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Store(_)), "{err}");
        assert!(err.to_string().contains(missing), "{err}");
    }
}

#[tokio::test]
async fn selections_on_memory() {
    selections(&MemoryStore::new()).await;
}

#[tokio::test]
async fn selections_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let keyring = Arc::new(coffer_envelope::Keyring::new(
        coffer_envelope::MasterKey::generate(),
    ));
    let store = coffer_sql::SqliteStore::open(&dir.path().join("s.db"), keyring)
        .await
        .unwrap();
    selections(&store).await;
}

#[tokio::test]
async fn two_secrets_on_one_name_is_an_error_naming_both() {
    let store = MemoryStore::new();
    let tenant = scope("collide");
    for n in ["api.key", "api_key"] {
        store
            .put(&tenant, &name(n), &"0123456789".into(), &PutOptions::new())
            .await
            .unwrap();
    }
    let err = EnvMap::from_store(&store, &tenant, &Selection::all())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Collision { .. }), "{text}");
    assert!(
        text.contains("secret api.key") && text.contains("secret api_key"),
        "{text}"
    );
    assert!(
        text.contains("API_KEY") && !text.contains("0123456789"),
        "{text}"
    );

    // A secret on a literal's name: also an error, and the map keeps what it had.
    let mut map = EnvMap::new();
    map.insert("API_KEY", "literal".into()).unwrap();
    let err = map
        .load(&store, &tenant, &Selection::names([name("api.key")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("a literal value") && err.to_string().contains("api.key"),
        "{err}"
    );
    assert_eq!(map.len(), 1);
    assert_eq!(value(&map, "API_KEY"), "literal");
}

#[tokio::test]
async fn loader_variables_need_an_explicit_allow() {
    let store = MemoryStore::new();
    let tenant = scope("loader");
    store
        .put(
            &tenant,
            &name("ld_preload"),
            &"/tmp/evil.so".into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    let err = EnvMap::from_store(&store, &tenant, &Selection::all())
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::GuardedVariable { name, risk: coffer_env::Risk::Loader, .. }
            if name == "LD_PRELOAD"),
        "{err}"
    );
    for var in [
        "LD_LIBRARY_PATH",
        "DYLD_INSERT_LIBRARIES",
        "PATH",
        "NODE_OPTIONS",
        "BASH_ENV",
    ] {
        let err = EnvMap::new().insert(var, "x".into()).unwrap_err();
        assert!(err.to_string().contains(var), "{err}");
    }
    let mut map = EnvMap::new();
    map.allow("LD_PRELOAD");
    map.load(&store, &tenant, &Selection::all()).await.unwrap();
    assert_eq!(value(&map, "LD_PRELOAD"), "/tmp/evil.so");
}

#[test]
fn names_and_values_are_checked() {
    let mut map = EnvMap::new();
    for bad in ["", "1ABC", "A-B", "A B", "A=B"] {
        let err = map.insert(bad, "x".into()).unwrap_err();
        assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    }
    let err = map.insert("NUL", "a\0b".into()).unwrap_err();
    assert!(
        matches!(&err, Error::NulInValue { name } if name == "NUL"),
        "{err}"
    );
    map.insert("_ok_1", "fine".into()).unwrap();
    let err = map.insert("_ok_1", "again".into()).unwrap_err();
    assert!(matches!(err, Error::Collision { .. }), "{err}");
    assert!(map.len() == 1 && value(&map, "_ok_1") == "fine");
    // Debug shows names and sources, never values.
    assert_eq!(format!("{map:?}"), "{\"_ok_1\": \"a literal value\"}");
}

#[test]
fn databases_map_to_numbered_variables() {
    let mut map = EnvMap::new();
    let pg = coffer_env::DatabaseUrl::postgres("127.0.0.1")
        .database("app")
        .user("u")
        .password("p@ss".into());
    let lite = coffer_env::DatabaseUrl::sqlite("/var/lib/app.db");
    let mongo = coffer_env::DatabaseUrl::mongodb("mongo.internal").database("app");
    assert_eq!(map.insert_database(&pg).unwrap(), "DATABASE_URL");
    assert_eq!(map.insert_database(&lite).unwrap(), "DATABASE_2_URL");
    assert_eq!(map.insert_database(&mongo).unwrap(), "DATABASE_3_URL");
    assert_eq!(
        value(&map, "DATABASE_URL"),
        "postgresql://u:p%40ss@127.0.0.1:5432/app"
    );
    assert_eq!(value(&map, "DATABASE_TYPE"), "postgresql");
    assert_eq!(value(&map, "DATABASE_2_URL"), "sqlite:///var/lib/app.db");
    assert_eq!(value(&map, "DATABASE_2_TYPE"), "sqlite");
    assert_eq!(value(&map, "DATABASE_3_TYPE"), "mongodb");
    assert_eq!(map.source("DATABASE_2_URL"), Some(&Source::Database(2)));
    // A literal already on the next name stops the database, and nothing is half-added.
    map.insert("DATABASE_4_TYPE", "x".into()).unwrap();
    let err = map.insert_database(&pg).unwrap_err();
    assert!(err.to_string().contains("database 4"), "{err}");
    assert!(map.get("DATABASE_4_URL").is_none());
}
