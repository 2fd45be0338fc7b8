//! Test helpers: a throwaway Postgres database per test, dropped when the test ends.

use std::sync::Arc;

use coffer_envelope::{Keyring, MasterKey};
use rand::RngExt as _;
use sqlx::Connection as _;

use coffer_sql::{PgOptions, PgStore};

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
        let admin_url = crate::service_env(POSTGRES_URL_ENV)?;
        Some(Self::create_on(admin_url).await)
    }

    /// Creates one on the server `admin_url` connects to (as a role that may create
    /// databases); the database's URL keeps `admin_url`'s parameters (TLS ones too).
    pub async fn create_on(admin_url: String) -> Self {
        let suffix: u64 = rand::rng().random();
        let name = format!("coffer_test_{suffix:016x}");
        let mut admin = sqlx::PgConnection::connect(&admin_url)
            .await
            .unwrap_or_else(|e| panic!("cannot connect to the test server: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .unwrap_or_else(|e| panic!("CREATE DATABASE {name}: {e}"));
        let mut url = url::Url::parse(&admin_url).expect("the admin URL is a URL");
        url.set_path(&name);
        Self {
            admin_url,
            url: url.to_string(),
            name,
        }
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

/// The variable that holds the URL of the cluster with the real Supabase Vault extension
/// (the superuser, over verified TLS), which `scripts/services.sh` starts.
pub const SUPABASE_URL_ENV: &str = "COFFER_TEST_SUPABASE_URL";

/// The variable that holds the password of that cluster's application role.
pub const SUPABASE_APP_PASSWORD_ENV: &str = "COFFER_TEST_SUPABASE_APP_PASSWORD";

/// The application role of the Supabase Vault cluster: not a superuser, with the grants
/// Supabase gives its `postgres` role on `vault` (SELECT and DELETE on the tables,
/// EXECUTE on `create_secret` and `update_secret`) and CREATE on `public`.
pub const SUPABASE_APP_ROLE: &str = "coffer_app";

/// A fresh database on the cluster with the real `supabase_vault` extension (it is in
/// the template, so every new database has it), dropped when this is dropped: a
/// Supabase project as an application reaches it, over verified TLS as a role that is
/// not a superuser.
#[derive(Debug)]
pub struct SupabaseProject {
    db: TestDatabase,
    app_url: String,
}

impl SupabaseProject {
    /// Creates one, or `None` (printing why) when [`SUPABASE_URL_ENV`] is unset; with
    /// `COFFER_REQUIRE_SERVICES=1` an unset variable panics instead.
    pub async fn create() -> Option<Self> {
        let admin = crate::service_env(SUPABASE_URL_ENV)?;
        let password = crate::service_env(SUPABASE_APP_PASSWORD_ENV)?;
        let db = TestDatabase::create_on(admin).await;
        let mut url = url::Url::parse(db.url()).expect("the test database URL is a URL");
        url.set_username(SUPABASE_APP_ROLE)
            .and_then(|()| url.set_password(Some(&password)))
            .expect("the URL takes a user");
        Some(Self {
            db,
            app_url: url.to_string(),
        })
    }

    /// The URL of the application role (`postgres://coffer_app:…@localhost:…/…?sslmode=verify-full&…`).
    pub fn url(&self) -> &str {
        &self.app_url
    }

    /// The superuser's URL of the same database, for what only the platform can do.
    pub fn admin_url(&self) -> &str {
        self.db.url()
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        self.db.name()
    }
}

/// The TLS test servers `scripts/services.sh` starts (certificates for `localhost` only,
/// made per run): `None` when they are not running, a panic when they should be.
#[derive(Debug, Clone)]
pub struct TlsServers {
    /// The directory holding `ca.pem`, `other-ca.pem`, `client.pem` and `client.key`.
    pub certs: std::path::PathBuf,
    /// The Postgres cluster's port: user `coffer` over TLS only, `coffer_cert` by
    /// client certificate, `coffer_plain` without TLS (trust), `coffer_scram` without
    /// TLS by SCRAM with the same password as `coffer`.
    pub pg_port: u16,
    /// The password of the Postgres user `coffer`.
    pub pg_password: String,
    /// The MariaDB instance's port (`require_secure_transport=ON`; user `coffer`,
    /// database `test`).
    pub mysql_port: u16,
    /// The password of the MariaDB user `coffer`.
    pub mysql_password: String,
}

impl TlsServers {
    /// From the `COFFER_TEST_TLS_*` variables.
    pub fn from_env() -> Option<Self> {
        let var = crate::service_env;
        let port = |v: String| v.parse::<u16>().expect("a port number");
        Some(Self {
            certs: var("COFFER_TEST_TLS_DIR")?.into(),
            pg_port: port(var("COFFER_TEST_TLS_PG_PORT")?),
            pg_password: var("COFFER_TEST_TLS_PG_PASSWORD")?,
            mysql_port: port(var("COFFER_TEST_TLS_MYSQL_PORT")?),
            mysql_password: var("COFFER_TEST_TLS_MYSQL_PASSWORD")?,
        })
    }

    /// A file in the certificate directory, as a string for a URL.
    pub fn file(&self, name: &str) -> String {
        self.certs.join(name).display().to_string()
    }

    /// The URL of database `db` as user `coffer` at `host` with `params` (no `?`).
    pub fn pg_url(&self, host: &str, db: &str, params: &str) -> String {
        format!(
            "postgres://coffer:{}@{host}:{}/{db}?{params}",
            self.pg_password, self.pg_port
        )
    }

    /// `verify-full` against the test CA, by `localhost`.
    pub fn pg_verified_url(&self, db: &str) -> String {
        let ca = self.file("ca.pem");
        self.pg_url(
            "localhost",
            db,
            &format!("sslmode=verify-full&sslrootcert={ca}"),
        )
    }
}

/// What a fake server plays after the client's first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FakeAuth {
    /// Postgres: answers `SSLRequest` with `N`, then asks for the password in cleartext.
    PostgresCleartext,
    /// MySQL: a greeting without TLS naming the `mysql_clear_password` plugin.
    MysqlClearPlugin,
}

/// A fake database server on a loopback port that asks for the password in cleartext
/// over a connection without TLS, and records every byte it receives, to show whether a
/// client sends the password.
#[derive(Debug)]
pub struct FakeServer {
    port: u16,
    received: Arc<std::sync::Mutex<Vec<u8>>>,
    connections: Arc<std::sync::atomic::AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl FakeServer {
    /// Starts one on `127.0.0.1` with a free port.
    pub async fn start(auth: FakeAuth) -> Self {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("address").port();
        let received = Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let accepted = Arc::clone(&connections);
        let task = tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    let record =
                        |bytes: &[u8]| log.lock().expect("not poisoned").extend_from_slice(bytes);
                    let mut buf = vec![0u8; 8192];
                    match auth {
                        FakeAuth::PostgresCleartext => {
                            let mut head = [0u8; 8];
                            if socket.read_exact(&mut head).await.is_err() {
                                return;
                            }
                            record(&head);
                            if head[4..8] == 80_877_103u32.to_be_bytes() {
                                let _ = socket.write_all(b"N").await;
                                if socket.read_exact(&mut head).await.is_err() {
                                    return;
                                }
                                record(&head);
                            }
                            let len =
                                u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
                            let mut rest = vec![0u8; len.saturating_sub(8).min(1 << 16)];
                            if socket.read_exact(&mut rest).await.is_err() {
                                return;
                            }
                            record(&rest);
                            let _ = socket.write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3]).await;
                        }
                        FakeAuth::MysqlClearPlugin => {
                            let _ = socket.write_all(&mysql_clear_greeting()).await;
                        }
                    }
                    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(3);
                    while let Ok(Ok(n)) =
                        tokio::time::timeout_at(deadline, socket.read(&mut buf)).await
                    {
                        if n == 0 {
                            break;
                        }
                        record(&buf[..n]);
                    }
                });
            }
        });
        Self {
            port,
            received,
            connections,
            task,
        }
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether any connection so far sent `needle` (e.g. the password).
    pub fn received(&self, needle: &str) -> bool {
        let bytes = self.received.lock().expect("not poisoned");
        bytes
            .windows(needle.len().max(1))
            .any(|w| w == needle.as_bytes())
    }

    /// How many connections it accepted.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A MySQL HandshakeV10 greeting without `CLIENT_SSL`, naming `mysql_clear_password`.
fn mysql_clear_greeting() -> Vec<u8> {
    let mut p = vec![10];
    p.extend_from_slice(b"5.7.99-fake\0");
    p.extend_from_slice(&7u32.to_le_bytes());
    p.extend_from_slice(b"abcdefgh");
    p.push(0);
    p.extend_from_slice(&0xF7FFu16.to_le_bytes());
    p.push(33);
    p.extend_from_slice(&2u16.to_le_bytes());
    p.extend_from_slice(&0x0008u16.to_le_bytes());
    p.push(21);
    p.extend_from_slice(&[0; 10]);
    p.extend_from_slice(b"ijklmnopqrst\0");
    p.extend_from_slice(b"mysql_clear_password\0");
    let len = p.len().to_le_bytes();
    let mut out = vec![len[0], len[1], len[2], 0];
    out.extend_from_slice(&p);
    out
}
