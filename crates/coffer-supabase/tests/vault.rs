//! SupabaseVaultStore against the real Supabase Vault extension (`supabase_vault` 0.3.1,
//! built by `scripts/services.sh` from `../shared/third_party`), in a private cluster
//! reached over verified TLS as a role with only the grants Supabase gives its `postgres`
//! role: no superuser, no UPDATE on `vault.secrets`.

use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_store::{Error, PutOptions, SecretKind, SecretStore, SecretStoreExt as _};
use coffer_supabase::{SupabaseOptions, SupabaseVaultStore};
use coffer_testkit::postgres::{SupabaseProject, TestDatabase};
use secrecy::ExposeSecret as _;

/// A fresh database with the Vault interface installed, and a store on it.
struct VaultDb {
    store: SupabaseVaultStore,
    keyring: Arc<Keyring>,
    db: SupabaseProject,
}

impl std::ops::Deref for VaultDb {
    type Target = SupabaseVaultStore;
    fn deref(&self) -> &SupabaseVaultStore {
        &self.store
    }
}

impl VaultDb {
    async fn create(sealed: bool) -> Option<Self> {
        let db = SupabaseProject::create().await?;
        let pool = sqlx::PgPool::connect(db.url()).await.unwrap();
        let keyring = Arc::new(Keyring::new(MasterKey::generate()));
        let mut options = SupabaseOptions::new();
        if sealed {
            options = options.sealing(keyring.clone());
        }
        let store = SupabaseVaultStore::from_pool(pool, options).await.unwrap();
        Some(Self { store, keyring, db })
    }

    async fn sql_scalar(&self, query: &'static str, bind: &str) -> Option<String> {
        sqlx::query_scalar(query)
            .bind(bind)
            .fetch_optional(self.store.pool())
            .await
            .unwrap()
    }
}

mod conformance {
    use super::*;
    coffer_testkit::conformance_tests!(VaultDb::create(false), 200);
}

mod conformance_sealed {
    use super::*;
    coffer_testkit::conformance_tests!(VaultDb::create(true), 50);
}

use coffer_testkit::{name as n, scope as s};

#[tokio::test]
async fn capabilities_say_there_are_no_versions() {
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    let caps = v.capabilities();
    assert!(!caps.versions && !caps.soft_delete && caps.check_and_set && !caps.rewrap);
    v.put(&s("t"), &n("k"), &"one".into(), &PutOptions::new())
        .await
        .unwrap();
    v.put(&s("t"), &n("k"), &"two".into(), &PutOptions::new())
        .await
        .unwrap();
    assert!(matches!(
        v.get(&s("t"), &n("k"), Some(1)).await,
        Err(Error::NotFound {
            version: Some(1),
            ..
        })
    ));
    assert_eq!(
        v.get(&s("t"), &n("k"), Some(2))
            .await
            .unwrap()
            .value
            .expose_secret(),
        "two"
    );
}

#[tokio::test]
async fn a_secret_created_with_plain_sql_is_read_by_the_store() {
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    sqlx::query("SELECT vault.create_secret('sk-from-sql-123', 'tenant-a/from_sql', 'made in the SQL editor')")
        .execute(v.pool())
        .await
        .unwrap();
    let got = v.get(&s("tenant-a"), &n("from_sql"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "sk-from-sql-123");
    assert_eq!(got.meta.version, 1);
    assert_eq!(got.meta.kind, SecretKind::Other);
    assert_eq!(
        got.meta.description.as_deref(),
        Some("made in the SQL editor")
    );
    let listed = v.list_all(&s("tenant-a"), None).await.unwrap();
    assert_eq!(listed.len(), 1);
    // The store can take it over: check-and-set on the implicit version 1.
    v.put(
        &s("tenant-a"),
        &n("from_sql"),
        &"sk-rotated".into(),
        &PutOptions::if_version(1).provider("openai"),
    )
    .await
    .unwrap();
    let got = v.get(&s("tenant-a"), &n("from_sql"), None).await.unwrap();
    assert_eq!(
        (got.value.expose_secret(), got.meta.version),
        ("sk-rotated", 2)
    );
    // Other consumers' secrets without a scope are not listed and do not break listing.
    sqlx::query("SELECT vault.create_secret('x', 'no-scope-here')")
        .execute(v.pool())
        .await
        .unwrap();
    sqlx::query("SELECT vault.create_secret('x', 'tenant-a/has space')")
        .execute(v.pool())
        .await
        .unwrap();
    sqlx::query("SELECT vault.create_secret('x')")
        .execute(v.pool())
        .await
        .unwrap();
    assert_eq!(v.list_all(&s("tenant-a"), None).await.unwrap().len(), 1);
}

#[tokio::test]
async fn a_secret_the_store_writes_is_read_by_plain_sql_and_never_stored_plain() {
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    v.put(
        &s("tenant-b"),
        &n("stripe/webhook"),
        &"whsec_plain_sql_check".into(),
        &PutOptions::create_only()
            .description("Stripe webhook")
            .kind(SecretKind::WebhookSecret),
    )
    .await
    .unwrap();
    let plain = v
        .sql_scalar(
            "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = $1",
            "tenant-b/stripe/webhook",
        )
        .await;
    assert_eq!(plain.as_deref(), Some("whsec_plain_sql_check"));
    let description = v
        .sql_scalar(
            "SELECT description FROM vault.secrets WHERE name = $1",
            "tenant-b/stripe/webhook",
        )
        .await;
    assert_eq!(description.as_deref(), Some("Stripe webhook"));
    let stored = v
        .sql_scalar(
            "SELECT secret FROM vault.secrets WHERE name = $1",
            "tenant-b/stripe/webhook",
        )
        .await
        .unwrap();
    assert!(
        !stored.contains("whsec_plain_sql_check"),
        "the secret column is encrypted"
    );
    // Create-only goes through Vault's unique name too.
    let err = v
        .put(
            &s("tenant-b"),
            &n("stripe/webhook"),
            &"x".into(),
            &PutOptions::create_only(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
}

#[tokio::test]
async fn client_side_sealing_keeps_the_plaintext_out_of_the_database() {
    let Some(v) = VaultDb::create(true).await else {
        return;
    };
    v.put(
        &s("t"),
        &n("k"),
        &"sk-sealed-value-42".into(),
        &PutOptions::new(),
    )
    .await
    .unwrap();
    v.put(&s("t"), &n("other"), &"sk-other".into(), &PutOptions::new())
        .await
        .unwrap();
    let decrypted = v
        .sql_scalar(
            "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = $1",
            "t/k",
        )
        .await
        .unwrap();
    assert!(
        decrypted.starts_with("cf1."),
        "Vault holds an envelope: {decrypted}"
    );
    assert!(!decrypted.contains("sk-sealed"));
    assert_eq!(
        v.get(&s("t"), &n("k"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "sk-sealed-value-42"
    );

    // An envelope moved to another name with plain SQL does not open.
    sqlx::query(
        "SELECT vault.update_secret((SELECT id FROM vault.secrets WHERE name = 't/other'), $1)",
    )
    .bind(&decrypted)
    .execute(v.pool())
    .await
    .unwrap();
    assert!(matches!(
        v.get(&s("t"), &n("other"), None).await,
        Err(Error::Crypto { .. })
    ));
    // A plain value written behind the store's back is refused, not returned: it has no
    // head MAC, so it is refused before its value is even looked at.
    sqlx::query("SELECT vault.create_secret('plain-behind-the-back', 't/plain')")
        .execute(v.pool())
        .await
        .unwrap();
    let err = v.get(&s("t"), &n("plain"), None).await.unwrap_err();
    assert!(matches!(err, Error::Tampered { .. }), "{err}");
    assert!(!err.to_string().contains("plain-behind"), "{err}");

    // A store with another key is refused at connect.
    let pool = sqlx::PgPool::connect(v.db.url()).await.unwrap();
    let err = SupabaseVaultStore::from_pool(
        pool,
        SupabaseOptions::new().sealing(Arc::new(Keyring::new(MasterKey::generate()))),
    )
    .await
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("not the key this store was sealed with"),
        "{err}"
    );
}

#[tokio::test]
async fn sealed_values_rewrap_after_a_rotation() {
    // The schema on a database of its own, before any keyring: the check opens the
    // sealed store on it with keyrings of its own.
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    coffer_testkit::conformance::rewrap_after_rotation(|keyring| async {
        let pool = sqlx::PgPool::connect(v.db.url()).await.unwrap();
        let options = SupabaseOptions::new().sealing(keyring);
        Arc::new(SupabaseVaultStore::from_pool(pool, options).await.unwrap())
            as Arc<coffer_store::DynSecretStore>
    })
    .await;
}

#[tokio::test]
async fn opens_from_supabase_urls_and_needs_the_vault_schema() {
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    let url = format!("supabase+{}", v.db.url());
    let sealed_url = format!("{url}&seal=true");
    let registry = coffer_store::open::Registry::new().with(coffer_supabase::SupabaseOpener);
    let store = registry.open(&url, &Default::default()).await.unwrap();
    assert_eq!(store.backend(), "supabase");
    let err = registry
        .open(&sealed_url, &Default::default())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("needs a keyring"), "{err}");
    let options = coffer_store::open::OpenOptions::new().keyring(v.keyring.clone());
    let sealed = registry.open(&sealed_url, &options).await.unwrap();
    assert!(sealed.capabilities().rewrap);

    let Some(empty) = TestDatabase::create().await else {
        return;
    };
    let err = SupabaseVaultStore::connect(empty.url(), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("supabase_vault"), "{err}");
}

#[tokio::test]
async fn connects_over_verified_tls_and_refuses_an_unknown_ca() {
    let Some(project) = SupabaseProject::create().await else {
        return;
    };
    let store = SupabaseVaultStore::connect(&format!("supabase+{}", project.url()), None)
        .await
        .unwrap();
    let (ssl,): (bool,) =
        sqlx::query_as("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert!(ssl);
    let scope = coffer_testkit::fresh_scope();
    let name = coffer_testkit::name("github_token");
    store
        .put(
            &scope,
            &name,
            &"over-tls".to_owned().into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    let got = store.get(&scope, &name, None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "over-tls");

    let password = url::Url::parse(project.url())
        .unwrap()
        .password()
        .unwrap()
        .to_owned();
    let other = project.url().replace("ca.pem", "other-ca.pem");
    let err = SupabaseVaultStore::connect(&format!("supabase+{other}"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("sslrootcert") && !err.contains(&password),
        "{err}"
    );
    let plain = project
        .url()
        .replace("sslmode=verify-full", "sslmode=disable");
    let err = SupabaseVaultStore::connect(&format!("supabase+{plain}"), None)
        .await
        .unwrap_err()
        .to_string();
    assert!(!err.contains(&password), "{err}");
}

/// Tried as an attacker with write access to the database and no key: each edit of the
/// sealed store's metadata row is refused as tampered, naming the secret, never a value.
#[tokio::test]
async fn forged_metadata_rows_are_refused_with_psql_edits() {
    let Some(v) = VaultDb::create(true).await else {
        return;
    };
    let t = s("t");
    let soon = chrono::Utc::now() + chrono::Duration::hours(1);
    v.put(
        &t,
        &n("expiring"),
        &"sk-expiring".into(),
        &PutOptions::new().expires_at(soon),
    )
    .await
    .unwrap();
    v.put(
        &t,
        &n("off"),
        &"sk-off".into(),
        &PutOptions::new().active(false),
    )
    .await
    .unwrap();
    v.put(&t, &n("plain"), &"sk-plain".into(), &PutOptions::new())
        .await
        .unwrap();
    assert!(v.get(&t, &n("plain"), None).await.is_ok());
    let usage = v.key_usage().await.unwrap();
    assert_eq!(usage, vec![coffer_store::KeyUsage::new(Some(1), 3, 3)]);

    // Clearing an expiry.
    attack(
        &v,
        "UPDATE coffer_vault_meta SET expires_at = NULL WHERE name = 'expiring'",
    )
    .await;
    refused(&v, &t, "expiring").await;
    // Reactivating a deactivated secret.
    attack(
        &v,
        "UPDATE coffer_vault_meta SET active = TRUE WHERE name = 'off'",
    )
    .await;
    refused(&v, &t, "off").await;
    // Another secret's MAC copied over.
    attack(
        &v,
        "UPDATE coffer_vault_meta SET mac = (SELECT mac FROM coffer_vault_meta WHERE name = \
         'expiring') WHERE name = 'plain'",
    )
    .await;
    refused(&v, &t, "plain").await;
    // A listing refuses too: it would hand out the forged state.
    assert!(matches!(
        v.list_all(&t, None).await,
        Err(Error::Tampered { .. })
    ));
    // A rewrap after a rotation stops at the forged head instead of blessing it.
    let mut rotated = (*v.keyring).clone();
    rotated.rotate();
    let pool = sqlx::PgPool::connect(v.db.url()).await.unwrap();
    let store =
        SupabaseVaultStore::from_pool(pool, SupabaseOptions::new().sealing(Arc::new(rotated)))
            .await
            .unwrap();
    assert!(matches!(
        store.rewrap_batch(10).await,
        Err(Error::Tampered { .. })
    ));
}

/// Runs `sql` as the attacker would, with psql-level access and no key.
async fn attack(v: &VaultDb, sql: &'static str) {
    sqlx::query(sql).execute(v.pool()).await.unwrap();
}

/// `get` and `metadata` of `name` are refused as tampered, naming it and no value.
async fn refused(v: &VaultDb, t: &coffer_store::Scope, name: &str) {
    let err = v.get(t, &n(name), None).await.unwrap_err();
    assert!(
        matches!(&err, Error::Tampered { name: got, .. } if got.as_str() == name),
        "{name}: {err}"
    );
    assert!(!err.to_string().contains("sk-"), "{err}");
    let meta = v.metadata(t, &n(name)).await.unwrap_err();
    assert!(matches!(meta, Error::Tampered { .. }), "{meta}");
}

/// A metadata row as a coffer before head MACs wrote it (no MAC): refused until
/// `adopt_untagged_heads` (`coffer keys migrate`) gives it one; a forged row keeps its
/// forged MAC and stays refused.
#[tokio::test]
async fn heads_written_before_macs_are_adopted_once() {
    let Some(v) = VaultDb::create(true).await else {
        return;
    };
    let t = s("t");
    for name in ["legacy", "forged"] {
        v.put(
            &t,
            &n(name),
            &format!("sk-{name}").into(),
            &PutOptions::new(),
        )
        .await
        .unwrap();
    }
    attack(
        &v,
        "UPDATE coffer_vault_meta SET mac = NULL WHERE name = 'legacy'",
    )
    .await;
    attack(
        &v,
        "UPDATE coffer_vault_meta SET active = FALSE WHERE name = 'forged'",
    )
    .await;
    refused(&v, &t, "legacy").await;
    assert_eq!(v.adopt_untagged_heads().await.unwrap(), 1);
    assert_eq!(
        v.get(&t, &n("legacy"), None)
            .await
            .unwrap()
            .value
            .expose_secret(),
        "sk-legacy"
    );
    assert_eq!(v.adopt_untagged_heads().await.unwrap(), 0);
    refused(&v, &t, "forged").await;
}

/// The keyring kept in the project as one vault secret: two instances share it, a
/// rotation on one is followed by the other's next call, concurrent rotations have one
/// winner, and a keyring replaced by someone without the KEK (with plain SQL through
/// Vault's own `update_secret`) does not open while running instances keep theirs.
#[tokio::test]
async fn instances_share_the_keyring_kept_as_a_vault_secret() {
    use coffer_envelope::{Kek, KeyringKek};
    use coffer_store::keys::SharedKeyring;
    use coffer_supabase::{KEYRING_SECRET_NAME, SupabaseKeyring};
    let Some(v) = VaultDb::create(true).await else {
        return;
    };
    let url = v.db.url().to_owned();
    let kek: Arc<dyn KeyringKek> = Arc::new(Kek::from_key(MasterKey::generate()));
    let err = SupabaseVaultStore::connect_shared(&url, kek.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("keeps no keyring"), "{err}");
    let scope = s("shared");
    v.put(&scope, &n("one"), &"value-1".into(), &PutOptions::new())
        .await
        .unwrap();
    let storage = Arc::new(SupabaseKeyring::connect_url(&url).await.unwrap());
    SharedKeyring::create(storage, kek.clone(), (*v.keyring).clone())
        .await
        .unwrap();
    // What the project holds is the sealed document, encrypted again by Vault.
    let description = v
        .sql_scalar(
            "SELECT description FROM vault.secrets WHERE name = $1",
            KEYRING_SECRET_NAME,
        )
        .await
        .unwrap();
    assert_eq!(description, "coffer keyring, generation 1");

    let a = SupabaseVaultStore::connect_shared(&url, kek.clone())
        .await
        .unwrap();
    let b = SupabaseVaultStore::connect_shared(&url, kek.clone())
        .await
        .unwrap();
    a.keys().update(|ring| Ok(ring.rotate())).await.unwrap();
    a.put(&scope, &n("two"), &"value-2".into(), &PutOptions::new())
        .await
        .unwrap();
    for name in ["two", "one"] {
        let got = b.get(&scope, &n(name), None).await.unwrap();
        assert_eq!(
            got.value.expose_secret(),
            format!("value-{}", if name == "one" { 1 } else { 2 })
        );
    }
    assert_eq!(b.keys().handle().current().primary_id(), 2);

    let lost = coffer_testkit::keys::race_rotations(a.keys(), b.keys()).await;
    assert!(
        matches!(lost, Error::KeyringConflict { found: Some(3), .. }),
        "{lost}"
    );
    let moved = a.rewrap_all(100, &mut |_, _| {}).await.unwrap();
    assert_eq!(moved.remaining, 0);

    // Someone with SQL but no KEK replaces the keyring through Vault's own function.
    sqlx::query(
        "SELECT vault.update_secret(id, 'bm90IGEga2V5cmluZw==', NULL, \
         'coffer keyring, generation 4') FROM vault.secrets WHERE name = $1",
    )
    .bind(KEYRING_SECRET_NAME)
    .execute(v.pool())
    .await
    .unwrap();
    let err = SupabaseVaultStore::connect_shared(&url, kek.clone())
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("does not open with"), "{err}");
    assert!(b.keys().reload_now().await.is_err());
    let got = b.get(&scope, &n("one"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "value-1");
}

/// The cluster is the real thing: the extension at 0.3.1, and a role with only the grants
/// Supabase gives its `postgres` role, so no write of the store relies on a privilege a
/// project does not give (row locks on `vault.secrets` need UPDATE, which it lacks).
#[tokio::test]
async fn runs_on_the_real_extension_with_supabase_grants() {
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    let (version, superuser, update, select): (String, bool, bool, bool) = sqlx::query_as(
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'supabase_vault'), \
         (SELECT rolsuper FROM pg_roles WHERE rolname = current_user), \
         has_table_privilege('vault.secrets', 'UPDATE'), \
         has_table_privilege('vault.decrypted_secrets', 'SELECT')",
    )
    .fetch_one(v.pool())
    .await
    .unwrap();
    assert_eq!(
        (version.as_str(), superuser, update, select),
        ("0.3.1", false, false, true)
    );
    let denied = sqlx::query("SELECT id FROM vault.secrets FOR UPDATE")
        .execute(v.pool())
        .await
        .unwrap_err();
    assert!(denied.to_string().contains("permission denied"), "{denied}");
    // Concurrent writers of one name still serialize: every write lands, numbered 1..=8.
    let (t, k) = (s("race"), n("k"));
    let writes = (0..8).map(|i| {
        let v = &v;
        let (t, k) = (&t, &k);
        async move {
            v.put(t, k, &format!("value-{i}").into(), &PutOptions::new())
                .await
                .unwrap()
                .version
        }
    });
    let mut versions = futures::future::join_all(writes).await;
    versions.sort_unstable();
    assert_eq!(versions, (1..=8).collect::<Vec<u64>>());
}

/// A project's own secrets, named without a scope (`vault.create_secret('…', 'github_token')`),
/// are reached through the scope `?unscoped=` names; the keyring's secret and scoped
/// names stay out of it, and a name there that would read as another scope's is refused.
#[tokio::test]
async fn secrets_without_a_scope_are_reached_through_the_unscoped_scope() {
    let Some(v) = VaultDb::create(false).await else {
        return;
    };
    for (value, name) in [
        ("ghp_made_in_the_dashboard", "github_token"),
        ("sk-scoped", "tenant-a/openai"),
        ("not-a-keyring", "coffer-keyring"),
    ] {
        sqlx::query("SELECT vault.create_secret($1, $2, 'from the dashboard')")
            .bind(value)
            .bind(name)
            .execute(v.pool())
            .await
            .unwrap();
    }
    let url = format!("supabase+{}&unscoped=project", v.db.url());
    let store = SupabaseVaultStore::connect(&url, None).await.unwrap();
    let project = s("project");
    let got = store.get(&project, &n("github_token"), None).await.unwrap();
    assert_eq!(got.value.expose_secret(), "ghp_made_in_the_dashboard");
    assert_eq!(got.meta.description.as_deref(), Some("from the dashboard"));
    let names: Vec<String> = store
        .list_all(&project, None)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.name.to_string())
        .collect();
    assert_eq!(names, ["github_token"]);

    store
        .put(
            &project,
            &n("stripe_key"),
            &"sk_live_new".into(),
            &PutOptions::create_only().provider("stripe"),
        )
        .await
        .unwrap();
    let plain = v
        .sql_scalar(
            "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = $1",
            "stripe_key",
        )
        .await;
    assert_eq!(plain.as_deref(), Some("sk_live_new"));
    for name in ["tenant-a/openai", "coffer-keyring"] {
        let err = store
            .put(&project, &n(name), &"x".into(), &PutOptions::new())
            .await
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput { field: "name", .. }),
            "{name}: {err}"
        );
    }
    // A dashboard secret's metadata is edited in place: Vault's description column, and
    // coffer's row made for it; the value is untouched.
    let edited = store
        .update_attributes(
            &project,
            &n("github_token"),
            &coffer_store::AttributeUpdate::new()
                .description("rotated by coffer")
                .provider("github")
                .active(false),
        )
        .await
        .unwrap();
    assert_eq!((edited.version, edited.active), (1, false));
    let description = v
        .sql_scalar(
            "SELECT description FROM vault.secrets WHERE name = $1",
            "github_token",
        )
        .await;
    assert_eq!(description.as_deref(), Some("rotated by coffer"));
    let plain = v
        .sql_scalar(
            "SELECT decrypted_secret FROM vault.decrypted_secrets WHERE name = $1",
            "github_token",
        )
        .await;
    assert_eq!(plain.as_deref(), Some("ghp_made_in_the_dashboard"));
    assert!(matches!(
        store.get(&project, &n("github_token"), None).await,
        Err(Error::Inactive { .. })
    ));
    let scopes = store.list_scopes().await.unwrap();
    assert_eq!(scopes, [s("project"), s("tenant-a")]);
    // A copy into the unscoped scope refuses, one by one, what it cannot name there.
    let source = coffer_store::MemoryStore::new();
    for name in ["from_memory", "llm/openai"] {
        source
            .put(&project, &n(name), &"v".into(), &PutOptions::new())
            .await
            .unwrap();
    }
    let copied = coffer_store::copy::copy(
        &source,
        &store,
        &coffer_store::copy::CopyOptions::new().scopes(vec![project.clone()]),
        &mut |_| {},
    )
    .await
    .unwrap();
    assert_eq!((copied.created, copied.refused, copied.verified), (1, 1, 1));
    // Other scopes map as before.
    let scoped = store.get(&s("tenant-a"), &n("openai"), None).await.unwrap();
    assert_eq!(scoped.value.expose_secret(), "sk-scoped");
    let err = SupabaseVaultStore::connect(&format!("supabase+{}&unscoped=a/b", v.db.url()), None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("unscoped"), "{err}");
}
