//! Test helpers: a throwaway Postgres database per test, dropped when the test ends.

use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use rand::RngExt as _;
use sqlx::Connection as _;

use crate::{PgOptions, PgStore};

/// The variable that holds the test server's URL (a database the tests may create
/// databases from, e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
pub const POSTGRES_URL_ENV: &str = "COFFER_TEST_POSTGRES_URL";

/// A fresh database on the test server, dropped (`WITH (FORCE)`) when this is dropped,
/// so runs never collide and leave nothing behind.
#[derive(Debug)]
pub struct TestDatabase {
    admin_url: String,
    name: String,
    url: String,
}

impl TestDatabase {
    /// Creates one, or returns `None` (printing why) when [`POSTGRES_URL_ENV`] is unset;
    /// with `COFFER_REQUIRE_SERVICES=1` an unset variable panics instead.
    pub async fn create() -> Option<Self> {
        let admin_url = coffer_store::testing::service_env(POSTGRES_URL_ENV)?;
        let suffix: u64 = rand::rng().random();
        let name = format!("coffer_test_{suffix:016x}");
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to {POSTGRES_URL_ENV}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let mut url = url::Url::parse(&admin_url).expect("COFFER_TEST_POSTGRES_URL is a URL");
        url.set_path(&name);
        Some(Self {
            admin_url,
            url: url.to_string(),
            name,
        })
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A [`PgStore`] on this database with a fresh random keyring.
    pub async fn store(&self, options: PgOptions) -> PgStore {
        self.store_with(Arc::new(Keyring::new(MasterKey::generate())), options)
            .await
    }

    /// A [`PgStore`] on this database with `keyring` (a second instance of a store).
    pub async fn store_with(&self, keyring: Arc<Keyring>, options: PgOptions) -> PgStore {
        let connect = self.url.parse().expect("test database URL");
        PgStore::connect_with(connect, keyring, options)
            .await
            .expect("connect to the test database")
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let name = self.name.clone();
        // Drop runs inside a test's runtime, where blocking on async is not allowed:
        // a thread with its own small runtime does the work.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await
                .ok()
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A store and the database it lives in, dropped together (store first).
#[derive(Debug)]
pub struct PgTestStore {
    /// The store.
    pub store: PgStore,
    /// Its database.
    pub db: TestDatabase,
}

impl PgTestStore {
    /// A store with default options on a fresh database; `None` when no server is configured.
    pub async fn create() -> Option<Self> {
        Self::with_options(PgOptions::new()).await
    }

    /// A store with `options` on a fresh database.
    pub async fn with_options(options: PgOptions) -> Option<Self> {
        let db = TestDatabase::create().await?;
        let store = db.store(options).await;
        Some(Self { store, db })
    }
}

impl std::ops::Deref for PgTestStore {
    type Target = PgStore;
    fn deref(&self) -> &PgStore {
        &self.store
    }
}
