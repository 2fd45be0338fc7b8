//! The registry: two brokers on one Postgres store share connection ids; an id survives
//! a restart; a disconnect anywhere ends it everywhere; entries are sealed.

use std::sync::Arc;
use std::time::Duration;

use coffer_broker::{
    Broker, BrokerError, ConnectionParams, ConnectionRegistry, Limits, NamedConnections,
};
use coffer_envelope::{Keyring, MasterKey};
use coffer_store::{SecretStore, SecretStoreExt as _};
use coffer_testkit::postgres::TestDatabase;
use coffer_testkit::scope;
use secrecy::ExposeSecret as _;
use serde_json::json;

#[tokio::test]
async fn two_brokers_share_ids_through_a_postgres_store() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let store_key = Arc::new(Keyring::new(MasterKey::generate()));
    let registry_key = Arc::new(Keyring::new(MasterKey::generate()));
    let instance = |key: Arc<Keyring>| {
        let db = &db;
        let registry_key = registry_key.clone();
        async move {
            let store: Arc<dyn SecretStore> =
                Arc::new(db.store_with(key, Default::default()).await);
            let mut limits = Limits::default();
            limits.registry_recheck = Duration::from_millis(50);
            Broker::with_registry(
                limits,
                NamedConnections::default(),
                None,
                ConnectionRegistry::new(store, registry_key),
            )
        }
    };
    let a = instance(store_key.clone()).await;
    let b = instance(store_key.clone()).await;

    // The connection: Postgres itself, with its password in the parameters.
    let url = coffer_testkit::service_env("COFFER_TEST_POSTGRES_URL").unwrap();
    let password = format!("pw-{:016x}", rand::random::<u64>());
    let mut parsed = url::Url::parse(&url).unwrap();
    parsed.set_password(Some(&password)).unwrap();
    // A superuser, accepted explicitly: the setting travels through the registry, or
    // instance b would refuse the connection when it adopts the id.
    let params = ConnectionParams::from_url(&parsed.to_string().into())
        .unwrap()
        .allow_privileged(true);
    assert!(matches!(
        a.connect("tenant-1", params.clone().allow_privileged(false))
            .await,
        Err(BrokerError::Privileged { .. })
    ));

    let id = a.connect("tenant-1", params).await.unwrap();
    let r = b
        .query("tenant-1", &id, "SELECT 40 + $1 AS n", &[json!(2)])
        .await
        .unwrap();
    assert_eq!(r.rows[0][0], json!(42));
    assert_eq!(
        b.info("tenant-1", &id).await.unwrap().user.as_deref(),
        Some("postgres")
    );
    assert!(matches!(
        b.query("tenant-2", &id, "SELECT 1", &[]).await,
        Err(BrokerError::NotFound)
    ));

    // The entry is sealed: the store holds no password, not even in the value it keeps.
    let raw = db.store_with(store_key.clone(), Default::default()).await;
    let entries = raw.list_all(&scope("tenant-1"), None).await.unwrap();
    assert_eq!(entries.len(), 1);
    let value = raw
        .get(&scope("tenant-1"), &entries[0].name, None)
        .await
        .unwrap();
    assert!(!value.value.expose_secret().contains(&password));

    // A restart: a new broker on the same store knows the id.
    a.shutdown().await;
    let c = instance(store_key.clone()).await;
    c.query("tenant-1", &id, "SELECT 1", &[]).await.unwrap();

    // A disconnect on one instance ends the id on the others.
    c.disconnect("tenant-1", &id).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(matches!(
        b.query("tenant-1", &id, "SELECT 1", &[]).await,
        Err(BrokerError::NotFound)
    ));
    let d = instance(store_key).await;
    assert!(matches!(
        d.info("tenant-1", &id).await,
        Err(BrokerError::NotFound)
    ));
    for broker in [b, c, d] {
        broker.shutdown().await;
    }
}
