//! `coffer mcp`: the connection broker and the scope's secret metadata as Model Context
//! Protocol tools over stdio, for AI agents.
//!
//! No tool takes a credential: connections are the configured named ones, whose
//! credentials come from the environment or the secret store, never from the model.

use std::sync::Arc;

use coffer::store::{DynSecretStore, Scope, SecretStoreExt as _};
use coffer_broker::{Broker, BrokerError, ConnectionId, Limits, Mode, NamedConnections};
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::wrapper::{Json, Parameters};
use rmcp::model::{ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, ServiceExt as _, schemars, tool, tool_handler, tool_router};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CliError, CliResult, open_store, scope};
use crate::cli::{Cli, McpArgs};

/// What the server tells the model about itself.
const INSTRUCTIONS: &str = "Query the user's databases without ever seeing their credentials. \
Call list_connections to see the configured databases, connect to one by name to get a \
connection id, then call schema to explore its tables and query to run one SQL statement \
at a time with bound parameters ($1 / ? placeholders and the params array). Connections are \
read-only unless configured otherwise; results stop at a row limit and a byte limit \
(truncated: true), long cells are cut (ending in \"…[truncated: N bytes]\"), and statements \
stop at a timeout. list_secrets shows which secrets exist (never their values). \
Never ask the user for a password: credentials are configured outside this conversation.";

/// The MCP server: one broker, one scope (the owner of every connection it opens).
#[derive(Clone)]
pub(crate) struct CofferMcp {
    broker: Broker,
    store: Option<Arc<DynSecretStore>>,
    scope: Scope,
    tool_router: ToolRouter<Self>,
}

impl std::fmt::Debug for CofferMcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CofferMcp")
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NoArgs {}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectArgs {
    /// The name of a configured connection, as list_connections shows it.
    name: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ConnectionArgs {
    /// The connection id that connect returned (conn_…).
    connection_id: String,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct QueryArgs {
    /// The connection id that connect returned (conn_…).
    connection_id: String,
    /// Exactly one SQL statement. Put values in params and refer to them with $1, $2 …
    /// (PostgreSQL, SQLite) or ? (MySQL/MariaDB) instead of writing them into the SQL.
    sql: String,
    /// Values for the statement's placeholders, in order: strings, numbers, booleans
    /// or null.
    #[serde(default)]
    params: Vec<Value>,
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListSecretsArgs {
    /// Only secrets whose names start with this.
    #[serde(default)]
    prefix: Option<String>,
}

/// A configured connection.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ConnectionEntry {
    /// Its name, for connect.
    name: String,
    /// postgres, mysql or sqlite.
    #[serde(rename = "type")]
    kind: String,
    /// read_only or read_write.
    mode: String,
    /// What it is, from the configuration.
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<String>,
}

/// The configured connections.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Connections {
    /// Every configured connection, by name.
    connections: Vec<ConnectionEntry>,
}

/// An open connection.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Connected {
    /// The id to pass to query, schema and disconnect.
    connection_id: String,
    /// The configured name.
    name: String,
    /// postgres, mysql or sqlite.
    #[serde(rename = "type")]
    kind: String,
    /// read_only or read_write.
    mode: String,
    /// The database (servers) or file (SQLite).
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
}

/// A result column.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct ResultColumn {
    /// Its name.
    name: String,
    /// The database's type name.
    #[serde(rename = "type")]
    type_name: String,
}

/// Rows of a query.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Rows {
    /// The columns, in order.
    columns: Vec<ResultColumn>,
    /// The rows, each a list of values in column order. Timestamps are RFC 3339 text,
    /// bytes base64, decimals text.
    rows: Vec<Vec<Value>>,
    /// How many rows came back.
    row_count: usize,
    /// True when the statement had more rows than the row limit or the byte limit let
    /// through.
    truncated: bool,
    /// Cells cut at the cell limit; each ends with "…[truncated: N bytes]".
    #[serde(skip_serializing_if = "is_zero")]
    truncated_cells: usize,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if"
)]
fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// What a write did.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Executed {
    /// Rows the statement changed.
    affected_rows: u64,
}

/// A column of a table.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SchemaColumn {
    /// Its name.
    name: String,
    /// Its declared type.
    #[serde(rename = "type")]
    type_name: String,
    /// Whether it may be null.
    nullable: bool,
}

/// A table or view.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SchemaTable {
    /// The schema (PostgreSQL) or database (MySQL); absent for SQLite.
    #[serde(skip_serializing_if = "Option::is_none")]
    schema: Option<String>,
    /// Its name.
    name: String,
    /// Its columns, in order.
    columns: Vec<SchemaColumn>,
    /// The primary key's columns.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    primary_key: Vec<String>,
    /// Foreign keys: how it joins other tables.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    foreign_keys: Vec<SchemaForeignKey>,
    /// Its indexes.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    indexes: Vec<SchemaIndex>,
}

/// A foreign key.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SchemaForeignKey {
    /// This table's columns.
    columns: Vec<String>,
    /// The referenced table's schema, where there are schemas.
    #[serde(skip_serializing_if = "Option::is_none")]
    references_schema: Option<String>,
    /// The referenced table.
    references_table: String,
    /// The referenced columns (empty: its primary key).
    references_columns: Vec<String>,
}

/// An index.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SchemaIndex {
    /// Its name.
    name: String,
    /// Its columns or expressions, in order.
    columns: Vec<String>,
    /// Whether it is unique.
    unique: bool,
}

/// The tables a connection can see.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Schema {
    /// Tables and views with their columns, keys and indexes.
    tables: Vec<SchemaTable>,
    /// True when there were more tables than the schema limit let through.
    truncated: bool,
}

/// A closed connection.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Disconnected {
    /// Always true; the id no longer works.
    disconnected: bool,
}

/// What is known about a secret, without its value.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct SecretEntry {
    /// Its name.
    name: String,
    /// api_key, oauth_token, webhook_secret, connection_string, password or other.
    kind: String,
    /// Who issued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    provider: Option<String>,
    /// When it expires (RFC 3339).
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<String>,
    /// Whether it is usable now (active and not expired).
    usable: bool,
    /// Its tags.
    tags: Vec<String>,
}

/// The scope's secrets.
#[derive(Debug, Serialize, schemars::JsonSchema)]
pub(crate) struct Secrets {
    /// Names and metadata; never a value.
    secrets: Vec<SecretEntry>,
}

fn tool_error(e: BrokerError) -> String {
    // Broker errors are already scrubbed of credentials and URLs.
    e.to_string()
}

#[tool_router]
impl CofferMcp {
    fn new(broker: Broker, store: Option<Arc<DynSecretStore>>, scope: Scope) -> Self {
        Self {
            broker,
            store,
            scope,
            tool_router: Self::tool_router(),
        }
    }

    fn owner(&self) -> &str {
        self.scope.as_str()
    }

    #[tool(
        description = "List the databases configured for you: name, type (postgres, mysql, sqlite), \
mode (read_only or read_write) and description. Never shows credentials."
    )]
    async fn list_connections(
        &self,
        Parameters(NoArgs {}): Parameters<NoArgs>,
    ) -> Result<Json<Connections>, String> {
        let connections = self
            .broker
            .named()
            .iter()
            .map(|(name, c)| ConnectionEntry {
                name: name.to_owned(),
                kind: c.kind.to_string(),
                mode: c.mode.to_string(),
                description: c.description.clone(),
            })
            .collect();
        Ok(Json(Connections { connections }))
    }

    #[tool(
        description = "Open a configured database connection by name and get a connection id for \
query, schema and disconnect. The credentials stay inside coffer."
    )]
    async fn connect(
        &self,
        Parameters(ConnectArgs { name }): Parameters<ConnectArgs>,
    ) -> Result<Json<Connected>, String> {
        let id = self
            .broker
            .connect_named(self.owner(), &name)
            .await
            .map_err(tool_error)?;
        let info = self
            .broker
            .info(self.owner(), &id)
            .await
            .map_err(tool_error)?;
        Ok(Json(Connected {
            connection_id: id.as_str().to_owned(),
            name,
            kind: info.kind.to_string(),
            mode: info.mode.to_string(),
            database: info.database,
        }))
    }

    #[tool(
        description = "Run exactly one SQL statement on a connection and get its rows. Read-only \
connections refuse anything that writes. Bind values through params ($1, $2 … for PostgreSQL \
and SQLite, ? for MySQL). Results stop at the row limit (truncated: true) and statements at the \
timeout."
    )]
    async fn query(
        &self,
        Parameters(QueryArgs {
            connection_id,
            sql,
            params,
        }): Parameters<QueryArgs>,
    ) -> Result<Json<Rows>, String> {
        let id = ConnectionId::from_string(connection_id);
        let result = self
            .broker
            .query(self.owner(), &id, &sql, &params)
            .await
            .map_err(tool_error)?;
        Ok(Json(Rows {
            row_count: result.rows.len(),
            columns: result
                .columns
                .into_iter()
                .map(|c| ResultColumn {
                    name: c.name,
                    type_name: c.type_name,
                })
                .collect(),
            rows: result.rows,
            truncated: result.truncated,
            truncated_cells: result.truncated_cells,
        }))
    }

    #[tool(
        description = "Run one writing SQL statement (INSERT, UPDATE, DELETE, …) on a read_write \
connection and get the number of rows it changed. Read-only connections refuse it."
    )]
    async fn execute(
        &self,
        Parameters(QueryArgs {
            connection_id,
            sql,
            params,
        }): Parameters<QueryArgs>,
    ) -> Result<Json<Executed>, String> {
        let id = ConnectionId::from_string(connection_id);
        let affected_rows = self
            .broker
            .execute(self.owner(), &id, &sql, &params)
            .await
            .map_err(tool_error)?;
        Ok(Json(Executed { affected_rows }))
    }

    #[tool(
        description = "List the tables and views a connection can see, with each column's name, \
type and nullability. Use it before writing a query."
    )]
    async fn schema(
        &self,
        Parameters(ConnectionArgs { connection_id }): Parameters<ConnectionArgs>,
    ) -> Result<Json<Schema>, String> {
        let id = ConnectionId::from_string(connection_id);
        let schema = self
            .broker
            .schema(self.owner(), &id)
            .await
            .map_err(tool_error)?;
        Ok(Json(Schema {
            truncated: schema.truncated,
            tables: schema
                .tables
                .into_iter()
                .map(|t| SchemaTable {
                    schema: t.schema,
                    name: t.name,
                    columns: t
                        .columns
                        .into_iter()
                        .map(|c| SchemaColumn {
                            name: c.name,
                            type_name: c.type_name,
                            nullable: c.nullable,
                        })
                        .collect(),
                    primary_key: t.primary_key,
                    foreign_keys: t
                        .foreign_keys
                        .into_iter()
                        .map(|f| SchemaForeignKey {
                            columns: f.columns,
                            references_schema: f.references_schema,
                            references_table: f.references_table,
                            references_columns: f.references_columns,
                        })
                        .collect(),
                    indexes: t
                        .indexes
                        .into_iter()
                        .map(|i| SchemaIndex {
                            name: i.name,
                            columns: i.columns,
                            unique: i.unique,
                        })
                        .collect(),
                })
                .collect(),
        }))
    }

    #[tool(description = "Close a connection. Its id stops working.")]
    async fn disconnect(
        &self,
        Parameters(ConnectionArgs { connection_id }): Parameters<ConnectionArgs>,
    ) -> Result<Json<Disconnected>, String> {
        let id = ConnectionId::from_string(connection_id);
        self.broker
            .disconnect(self.owner(), &id)
            .await
            .map_err(tool_error)?;
        Ok(Json(Disconnected { disconnected: true }))
    }

    #[tool(
        description = "List the secrets stored for you: name, kind, provider, expiry and tags. \
Values are never shown, not even masked."
    )]
    async fn list_secrets(
        &self,
        Parameters(ListSecretsArgs { prefix }): Parameters<ListSecretsArgs>,
    ) -> Result<Json<Secrets>, String> {
        let Some(store) = &self.store else {
            return Err(
                "no secret store is configured for this server (see coffer init, \
                        --store and --keyring)"
                    .to_owned(),
            );
        };
        let items = store
            .list_all(&self.scope, prefix.as_deref())
            .await
            .map_err(|e| e.to_string())?;
        Ok(Json(Secrets {
            secrets: items
                .into_iter()
                .map(|m| SecretEntry {
                    usable: m.check_readable().is_ok(),
                    name: m.name.to_string(),
                    kind: m.kind.to_string(),
                    provider: m.provider,
                    expires_at: m
                        .expires_at
                        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
                    tags: m.tags,
                })
                .collect(),
        }))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for CofferMcp {
    fn get_info(&self) -> ServerConfig {
        // rmcp's default identity is its own crate's name and version; clients show ours.
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                rmcp::model::Implementation::new("coffer", env!("CARGO_PKG_VERSION"))
                    .with_title("coffer secrets and database broker"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}

impl From<BrokerError> for CliError {
    fn from(e: BrokerError) -> Self {
        CliError::new(e.to_string())
    }
}

/// Serves the tools on stdin/stdout until the client closes the connection.
pub(super) async fn serve(cli: &Cli, args: &McpArgs) -> CliResult {
    let mut named = NamedConnections::load(&args.connections)?;
    for name in &args.allow_writes {
        named.set_mode(name, Mode::ReadWrite)?;
    }
    let scope = scope(cli)?;
    let store = match open_store(cli, None).await {
        Ok(store) => Some(store),
        Err(e) => {
            crate::out::note!(
                "coffer: warning: no secret store ({e}); list_secrets and connections with \
                 credentialsSecret or urlSecret will fail"
            );
            None
        }
    };
    let mut limits = Limits::default();
    if let Some(rows) = args.row_limit {
        limits.row_limit = rows;
    }
    if let Some(timeout) = args.statement_timeout {
        limits.statement_timeout = timeout;
    }
    if let Some(bytes) = args.max_result_bytes {
        limits.byte_limit = bytes;
    }
    if let Some(bytes) = args.max_cell_bytes {
        limits.cell_limit = bytes;
    }
    let broker = Broker::with_config(limits, named, store.clone());
    let server = CofferMcp::new(broker.clone(), store, scope);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| CliError::new(format!("cannot start the MCP session: {e}")))?;
    let ended = running.waiting().await;
    broker.shutdown().await;
    ended
        .map(drop)
        .map_err(|e| CliError::new(format!("the MCP session failed: {e}")))
}
