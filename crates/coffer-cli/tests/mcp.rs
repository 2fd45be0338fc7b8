//! `coffer mcp` driven as a real server process over stdio with rmcp's client: the tools
//! and their schemas, queries on Postgres and SQLite, the broker's read-only bypasses
//! refused with the tables intact, unknown ids, writes only where allowed, secret
//! metadata without values, and a capture of the whole session that holds no credential.

use std::path::Path;
use std::process::Stdio;

use coffer_testkit::postgres::TestDatabase;
use rmcp::ServiceExt as _;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use rmcp::transport::TokioChildProcess;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;

mod support;

type Client = RunningService<RoleClient, ()>;

/// A running `coffer mcp` and everything it said.
struct Session {
    client: Client,
    /// The server process.
    pid: u32,
    /// The server's stderr, read as it comes (a full pipe would stall the server).
    stderr: tokio::task::JoinHandle<String>,
    transcript: String,
}

impl Session {
    async fn start(dir: &Path, extra: &[&str], envs: &[(&str, &str)]) -> Self {
        let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"));
        cmd.current_dir(dir)
            .args(["mcp", "--connections", "connections.json"])
            .args(extra)
            .env("RUST_LOG", "trace");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("COFFER_") {
                cmd.env_remove(key);
            }
        }
        cmd.envs(envs.iter().copied());
        let (transport, stderr) = TokioChildProcess::builder(cmd)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pid = transport.id().expect("the server is running");
        let mut stderr = stderr.unwrap();
        let stderr = tokio::spawn(async move {
            let mut text = String::new();
            stderr.read_to_string(&mut text).await.unwrap();
            text
        });
        let client = ().serve(transport).await.unwrap();
        Self {
            client,
            pid,
            stderr,
            transcript: String::new(),
        }
    }

    async fn call(&mut self, tool: &'static str, args: Value) -> CallToolResult {
        let params = CallToolRequestParams::new(tool)
            .with_arguments(args.as_object().cloned().unwrap_or_default());
        let result = self.client.call_tool(params).await.unwrap();
        self.transcript
            .push_str(&serde_json::to_string(&result).unwrap());
        self.transcript.push('\n');
        result
    }

    /// The structured result of a call that must succeed.
    async fn ok(&mut self, tool: &'static str, args: Value) -> Value {
        let result = self.call(tool, args.clone()).await;
        assert_ne!(result.is_error, Some(true), "{tool} {args}: {result:?}");
        result.structured_content.expect("structured content")
    }

    /// The message of a call that must fail as a tool error.
    async fn refused(&mut self, tool: &'static str, args: Value) -> String {
        let result = self.call(tool, args.clone()).await;
        assert_eq!(
            result.is_error,
            Some(true),
            "{tool} {args} was not refused: {result:?}"
        );
        result
            .content
            .iter()
            .filter_map(|c| c.as_text().map(|t| t.text.clone()))
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The most memory the server process has held so far (VmHWM), in bytes.
    fn peak_rss(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).unwrap();
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .expect("VmHWM in /proc/PID/status");
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap();
        kib * 1024
    }

    /// Closes the session and returns its transcript and the server's stderr, which
    /// need not hold TRACE lines.
    async fn finish_quiet(mut self) -> String {
        self.client.cancel().await.unwrap();
        let stderr = self.stderr.await.unwrap();
        self.transcript.push_str(&stderr);
        self.transcript
    }

    /// Closes the session and returns its transcript and the server's stderr.
    async fn finish(mut self) -> String {
        let tools = self.client.list_all_tools().await.unwrap();
        self.transcript
            .push_str(&serde_json::to_string(&tools).unwrap());
        self.client.cancel().await.unwrap();
        let stderr = self.stderr.await.unwrap();
        assert!(stderr.contains("TRACE"), "the server logged at TRACE");
        self.transcript.push_str(&stderr);
        self.transcript
    }
}

async fn coffer(dir: &Path, args: &[&str]) {
    let status = tokio::process::Command::new(env!("CARGO_BIN_EXE_coffer"))
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::null())
        .status()
        .await
        .unwrap();
    assert!(status.success(), "coffer {args:?}");
}

async fn sqlite_table(path: &Path) {
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let pool = sqlx::SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL); \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 10) \
         INSERT INTO t SELECT i, 'row ' || i FROM n;",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
}

async fn sqlite_count(path: &Path) -> i64 {
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let n = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&pool)
        .await
        .unwrap();
    pool.close().await;
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_serves_the_broker_without_ever_showing_a_credential() {
    let Some(db) = TestDatabase::create().await else {
        return;
    };
    let pg = sqlx::PgPool::connect(db.url()).await.unwrap();
    sqlx::raw_sql(
        "CREATE TABLE t (id INT PRIMARY KEY, name TEXT NOT NULL); \
         INSERT INTO t SELECT i, 'row ' || i FROM generate_series(1, 10) i;",
    )
    .execute(&pg)
    .await
    .unwrap();
    let url = url::Url::parse(db.url()).unwrap();

    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.db");
    let writable = dir.path().join("writable.db");
    sqlite_table(&local).await;
    sqlite_table(&writable).await;
    // Passwords that must never come out: the server trusts loopback, so any works.
    let env_password = format!("Pw-env-{}", rand::random::<u64>());
    let secret_password = format!("Pw-secret-{}", rand::random::<u64>());
    let api_key = format!("sk-mcp-canary-{}", rand::random::<u64>());
    coffer(dir.path(), &["init"]).await;
    coffer(
        dir.path(),
        &[
            "put",
            "pg_creds",
            "--kind",
            "password",
            "--value",
            &format!("postgres:{secret_password}"),
        ],
    )
    .await;
    coffer(
        dir.path(),
        &[
            "put",
            "openai_api_key",
            "--kind",
            "api_key",
            "--provider",
            "openai",
            "--value",
            &api_key,
        ],
    )
    .await;

    // The test server's account is a superuser: accepted explicitly.
    let server = json!({"type": "postgresql", "host": url.host_str().unwrap(),
        "port": url.port().unwrap_or(5432), "database": db.name(), "allowPrivileged": true});
    let mut main_db = server.clone();
    main_db["credentialsEnv"] = json!("MAIN_DB_CREDENTIALS");
    main_db["description"] = json!("the shop's orders");
    let mut secret_db = server;
    secret_db["credentialsSecret"] = json!("pg_creds");
    let config = json!({"connections": {
        "main_db": main_db,
        "secret_db": secret_db,
        "local": {"type": "sqlite", "path": local},
        "writable": {"type": "sqlite", "path": writable},
    }});
    std::fs::write(dir.path().join("connections.json"), config.to_string()).unwrap();

    let creds = format!("postgres:{env_password}");
    let mut s = Session::start(
        dir.path(),
        &["--allow-writes", "writable", "--row-limit", "5"],
        &[("MAIN_DB_CREDENTIALS", creds.as_str())],
    )
    .await;

    // The tools, with schemas and descriptions, none asking for a credential.
    let tools = s.client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort_unstable();
    assert_eq!(
        names,
        [
            "connect",
            "disconnect",
            "execute",
            "list_connections",
            "list_secrets",
            "query",
            "schema"
        ]
    );
    for tool in &tools {
        assert!(
            tool.description.as_ref().is_some_and(|d| d.len() > 30),
            "{}",
            tool.name
        );
        assert_eq!(
            tool.input_schema.get("type"),
            Some(&json!("object")),
            "{}",
            tool.name
        );
        let props = tool
            .input_schema
            .get("properties")
            .cloned()
            .unwrap_or_default();
        let text = props.to_string().to_lowercase();
        assert!(
            !text.contains("password") && !text.contains("credential"),
            "{}: {text}",
            tool.name
        );
    }
    let query_tool = tools.iter().find(|t| t.name == "query").unwrap();
    assert_eq!(
        query_tool.input_schema["required"],
        json!(["connection_id", "sql"])
    );

    let listed = s.ok("list_connections", json!({})).await;
    let conns = listed["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 4);
    let main = conns.iter().find(|c| c["name"] == "main_db").unwrap();
    assert_eq!(
        (main["type"].as_str(), main["mode"].as_str()),
        (Some("postgres"), Some("read_only"))
    );
    assert_eq!(main["description"], "the shop's orders");
    assert_eq!(
        conns.iter().find(|c| c["name"] == "writable").unwrap()["mode"],
        "read_write"
    );

    // Postgres: connect by name, explore, query with bound parameters.
    let pg_id = s.ok("connect", json!({"name": "main_db"})).await["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(pg_id.starts_with("conn_"));
    let schema = s.ok("schema", json!({"connection_id": pg_id})).await;
    let t = schema["tables"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "t")
        .unwrap();
    assert_eq!(t["columns"][0]["name"], "id");
    let rows = s
        .ok("query", json!({"connection_id": pg_id, "sql": "SELECT id, name FROM t WHERE id = $1", "params": [3]}))
        .await;
    assert_eq!(rows["rows"], json!([[3, "row 3"]]));
    assert_eq!(rows["columns"][1]["name"], "name");
    let all = s
        .ok(
            "query",
            json!({"connection_id": pg_id, "sql": "SELECT id FROM t ORDER BY id"}),
        )
        .await;
    assert_eq!(
        (all["row_count"].as_u64(), all["truncated"].as_bool()),
        (Some(5), Some(true))
    );

    // Every read-only bypass is refused and the table keeps its rows.
    for sql in [
        "COMMIT; DROP TABLE t",
        "/*x*/ DELETE FROM t",
        "WITH a AS (SELECT 1) DELETE FROM t",
        "SET TRANSACTION READ WRITE",
        "SET default_transaction_read_only = off",
        "SET ROLE postgres",
        "COPY t TO PROGRAM 'id'",
        "DO $$ BEGIN DELETE FROM t; END $$",
        "SELECT 1; DELETE FROM t",
        "DELETE FROM t RETURNING *",
    ] {
        let message = s
            .refused("query", json!({"connection_id": pg_id, "sql": sql}))
            .await;
        assert!(!message.is_empty(), "{sql}");
    }
    s.refused(
        "execute",
        json!({"connection_id": pg_id, "sql": "DELETE FROM t"}),
    )
    .await;
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM t")
        .fetch_one(&pg)
        .await
        .unwrap();
    assert_eq!(count, 10);

    // A connection whose credentials are a coffer secret.
    let secret_id = s.ok("connect", json!({"name": "secret_db"})).await["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let one = s
        .ok(
            "query",
            json!({"connection_id": secret_id, "sql": "SELECT COUNT(*) AS n FROM t"}),
        )
        .await;
    assert_eq!(one["rows"], json!([[10]]));

    // SQLite: the same, and its own bypasses.
    let local_id = s.ok("connect", json!({"name": "local"})).await["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let rows = s
        .ok("query", json!({"connection_id": local_id, "sql": "SELECT name FROM t WHERE id = $1", "params": [7]}))
        .await;
    assert_eq!(rows["rows"], json!([["row 7"]]));
    let schema = s.ok("schema", json!({"connection_id": local_id})).await;
    assert_eq!(schema["tables"][0]["name"], "t");
    for sql in [
        "DELETE FROM t",
        "/*x*/ DELETE FROM t",
        "WITH a AS (SELECT 1) DELETE FROM t",
        "SELECT 1; DELETE FROM t",
        "PRAGMA query_only = 0",
        "ATTACH DATABASE 'other.db' AS o",
        "INSERT INTO t VALUES (11, 'x')",
        "DROP TABLE t",
    ] {
        s.refused("query", json!({"connection_id": local_id, "sql": sql}))
            .await;
    }
    assert_eq!(sqlite_count(&local).await, 10);

    // Writes where the server was told to allow them, and nowhere else.
    let w_id = s.ok("connect", json!({"name": "writable"})).await["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done = s
        .ok("execute", json!({"connection_id": w_id, "sql": "INSERT INTO t VALUES ($1, $2)", "params": [11, "eleven"]}))
        .await;
    assert_eq!(done["affected_rows"], 1);
    assert_eq!(sqlite_count(&writable).await, 11);
    s.refused(
        "execute",
        json!({"connection_id": local_id, "sql": "INSERT INTO t VALUES (12, 'x')"}),
    )
    .await;

    // Unknown, made-up and closed ids are all the same not-found.
    let unknown = s
        .refused(
            "query",
            json!({"connection_id": format!("conn_{}", "0".repeat(32)), "sql": "SELECT 1"}),
        )
        .await;
    assert_eq!(unknown, "connection not found");
    let nonsense = s
        .refused("schema", json!({"connection_id": "nonsense"}))
        .await;
    s.ok("disconnect", json!({"connection_id": local_id})).await;
    let closed = s
        .refused(
            "query",
            json!({"connection_id": local_id, "sql": "SELECT 1"}),
        )
        .await;
    assert_eq!(
        (nonsense.as_str(), closed.as_str()),
        (unknown.as_str(), unknown.as_str())
    );
    s.refused("connect", json!({"name": "no_such_db"})).await;
    s.refused("query", json!({"connection_id": pg_id})).await;

    // Secret metadata, never a value.
    let secrets = s.ok("list_secrets", json!({})).await;
    let listed: Vec<&str> = secrets["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, ["openai_api_key", "pg_creds"]);
    assert_eq!(secrets["secrets"][0]["provider"], "openai");
    assert_eq!(secrets["secrets"][0]["kind"], "api_key");
    assert!(secrets["secrets"][0].get("value").is_none());

    let transcript = s.finish().await;
    for canary in [&env_password, &secret_password, &api_key] {
        // Raw, hex, base64 or URL-encoded: none in the session or the server's logs.
        support::assert_clean("the MCP session", &transcript, &support::forms(canary));
    }
    pg.close().await;
}

/// The issue-15 attacks through a real MCP client: a read-only SQLite connection cannot
/// reach coffer's own store file (the `[…]` bypass and ATTACH), cannot turn `query_only`
/// off or shadow a table for later calls; and a query of 5 × 100 MB cells leaves the
/// server's memory small (SQLite refuses to build a value over the byte limit), while
/// 5 × 4 MB cells come back cut at the cell limit with the marker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_holds_the_agent_boundary_and_bounds_memory() {
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("local.db");
    sqlite_table(&local).await;
    coffer(dir.path(), &["init"]).await;
    let canary = format!("sk-other-tenant-{}", rand::random::<u64>());
    coffer(
        dir.path(),
        &[
            "--scope",
            "tenant-b",
            "put",
            "openai_api_key",
            "--value",
            &canary,
        ],
    )
    .await;
    let store = dir.path().join(".coffer").join("secrets.db");
    assert!(store.exists(), "coffer init made {}", store.display());
    let config = json!({"connections": {"local": {"type": "sqlite", "path": local}}});
    std::fs::write(dir.path().join("connections.json"), config.to_string()).unwrap();
    let mut s = Session::start(dir.path(), &[], &[("RUST_LOG", "warn")]).await;
    // The server says who it is: coffer and its version, not the MCP library's name.
    let info = s
        .client
        .peer_info()
        .and_then(|i| i.server_info.clone())
        .expect("the server introduced itself");
    assert_eq!(
        (info.name.as_str(), info.version.as_str()),
        ("coffer", env!("CARGO_PKG_VERSION"))
    );
    let id = s.ok("connect", json!({"name": "local"})).await["connection_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let store_path = store.display().to_string();
    let out = dir.path().join("copy.db");
    for sql in [
        format!("SELECT 1 AS [a'];ATTACH DATABASE '{store_path}' AS s; SELECT 1 AS [']"),
        format!("ATTACH DATABASE '{store_path}' AS s"),
        "SELECT 1 AS [a'];PRAGMA query_only = 0; SELECT 1 AS [']".to_owned(),
        "SELECT 1 AS [a'];CREATE TEMP VIEW t AS SELECT 1 AS id, 'forged' AS name; SELECT 1 AS [']"
            .to_owned(),
        format!(
            "SELECT 1 AS [a'];VACUUM INTO '{}'; SELECT 1 AS [']",
            out.display()
        ),
    ] {
        let msg = s
            .refused("query", json!({"connection_id": id, "sql": sql}))
            .await;
        assert!(msg.contains("refused"), "{msg}");
    }
    assert!(!out.exists());
    let rows = s
        .ok(
            "query",
            json!({"connection_id": id, "sql": "SELECT name FROM t WHERE id = 1"}),
        )
        .await;
    assert_eq!(rows["rows"], json!([["row 1"]]));

    let five =
        "(SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3 UNION ALL SELECT 4 UNION ALL SELECT 5)";
    let before = s.peak_rss();
    let msg = s
        .refused(
            "query",
            json!({"connection_id": id, "sql": format!("SELECT randomblob(100000000) FROM {five}")}),
        )
        .await;
    assert!(msg.contains("byte limit"), "{msg}");
    let cut = s
        .ok(
            "query",
            json!({"connection_id": id, "sql": format!("SELECT randomblob(4000000) FROM {five}")}),
        )
        .await;
    assert_eq!(cut["row_count"], json!(5));
    assert_eq!(cut["truncated_cells"], json!(5));
    assert!(
        cut["rows"][0][0]
            .as_str()
            .unwrap()
            .ends_with("[truncated: 4000000 bytes]")
    );
    let peak = s.peak_rss();
    eprintln!("coffer mcp peak RSS: {before} bytes before the big queries, {peak} after");
    assert!(peak < 100 << 20, "coffer mcp peaked at {peak} bytes");
    let transcript = s.finish_quiet().await;
    assert!(!transcript.contains(&canary));
}
