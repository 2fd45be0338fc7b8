//! `coffer_store::copy` between SQLite and Postgres: every version under its number,
//! resumed after interruptions, and refused where the target's history is another.

use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use coffer_sql::{PgOptions, SqliteStore};
use coffer_store::copy::{CopyOptions, Outcome, Versions, copy};
use coffer_store::{
    DynSecretStore, Error, PutOptions, SecretKind, SecretStore as _, SecretStoreExt as _,
};
use coffer_testkit::postgres::TestDatabase;
use coffer_testkit::{FaultyStore, fresh_scope, name};
use secrecy::ExposeSecret as _;

/// The value of version `version` (or the latest) of `n`.
async fn value_of(
    store: &DynSecretStore,
    scope: &coffer_store::Scope,
    n: &coffer_store::SecretName,
    version: Option<u64>,
) -> String {
    store
        .get(scope, n, version)
        .await
        .unwrap()
        .value
        .expose_secret()
        .to_owned()
}

async fn sqlite(dir: &tempfile::TempDir) -> SqliteStore {
    let url = format!("sqlite://{}", dir.path().join("source.db").display());
    SqliteStore::connect(&url, Arc::new(Keyring::new(MasterKey::generate())))
        .await
        .unwrap()
}

#[tokio::test]
async fn every_version_is_copied_under_its_number_and_an_interrupted_copy_resumes() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite(&dir).await;
    let (a, b) = (fresh_scope(), fresh_scope());
    for i in 1..=3 {
        let options = PutOptions::new()
            .provider("openai")
            .kind(SecretKind::ApiKey)
            .tags(["prod"]);
        source
            .put(&a, &name("key"), &format!("sk-v{i}").into(), &options)
            .await
            .unwrap();
    }
    for i in 0..12 {
        source
            .put(
                &b,
                &name(&format!("s{i:02}")),
                &format!("b-{i}").into(),
                &PutOptions::new(),
            )
            .await
            .unwrap();
    }
    // Interrupted twice (the target goes away after 4, then after 9 secrets): each run
    // continues where the last stopped, none loses or doubles a version, and the last
    // one verifies everything.
    let target = FaultyStore::new(db.store(PgOptions::new()).await);
    let options = CopyOptions::new()
        .scopes(vec![a.clone(), b.clone()])
        .versions(Versions::All);
    let mut done_before = Vec::new();
    for stop_after in [4, 9] {
        let err = copy(&source, &target, &options, &mut |p| {
            if p.done == stop_after {
                target.set_down(true);
            }
        })
        .await
        .unwrap_err();
        assert!(matches!(err, Error::Unavailable { .. }), "{err}");
        target.set_down(false);
        let mut written = 0;
        for scope in [&a, &b] {
            written += target.inner().list_all(scope, None).await.unwrap().len();
        }
        done_before.push(written);
    }
    assert_eq!(done_before, [4, 9], "each run kept what it wrote");
    let report = copy(&source, &target, &options, &mut |_| {}).await.unwrap();
    assert_eq!((report.unchanged, report.created), (9, 4));
    assert_eq!(report.mismatched, Vec::<String>::new());
    assert_eq!(report.verified, 13);
    let pg = target.inner();
    for v in 1..=3 {
        assert_eq!(
            value_of(pg, &a, &name("key"), Some(v)).await,
            format!("sk-v{v}")
        );
    }
    let meta = pg.metadata(&a, &name("key")).await.unwrap();
    assert_eq!(
        (meta.version, meta.provider.as_deref()),
        (3, Some("openai"))
    );
    assert_eq!(pg.list_all(&b, None).await.unwrap().len(), 12);

    // Once complete, a rerun writes nothing.
    let again = copy(&source, pg as &DynSecretStore, &options, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((again.unchanged, again.created, again.updated), (13, 0, 0));
    // A new version in the source is the only thing the next run copies.
    source
        .put(&a, &name("key"), &"sk-v4".into(), &PutOptions::new())
        .await
        .unwrap();
    let next = copy(&source, pg as &DynSecretStore, &options, &mut |_| {})
        .await
        .unwrap();
    assert_eq!((next.updated, next.unchanged), (1, 12));
    assert_eq!(value_of(pg, &a, &name("key"), Some(4)).await, "sk-v4");
}

#[tokio::test]
async fn another_history_is_refused_and_metadata_the_source_lacks_is_cleared() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let source = sqlite(&dir).await;
    let target = db.store(PgOptions::new()).await;
    let scope = fresh_scope();
    source
        .put(&scope, &name("k"), &"source-1".into(), &PutOptions::new())
        .await
        .unwrap();
    target
        .put(
            &scope,
            &name("k"),
            &"someone-else".into(),
            &PutOptions::new().description("theirs"),
        )
        .await
        .unwrap();
    let all = CopyOptions::new()
        .scopes(vec![scope.clone()])
        .versions(Versions::All);
    let report = copy(&source, &target, &all, &mut |_| {}).await.unwrap();
    assert!(
        matches!(&report.items[0].outcome, Outcome::Refused(why) if why.contains("another history")),
        "{:?}",
        report.items
    );
    assert_eq!(
        value_of(&target, &scope, &name("k"), None).await,
        "someone-else"
    );

    // Latest versions: the target takes the source's value and loses what the source
    // does not have (a description), without a second new version for it.
    let latest = CopyOptions::new().scopes(vec![scope.clone()]);
    let report = copy(&source, &target, &latest, &mut |_| {}).await.unwrap();
    assert_eq!((report.updated, report.verified), (1, 1));
    let meta = target.metadata(&scope, &name("k")).await.unwrap();
    assert_eq!((meta.version, meta.description), (2, None));
    assert_eq!(
        value_of(&target, &scope, &name("k"), None).await,
        "source-1"
    );
}
