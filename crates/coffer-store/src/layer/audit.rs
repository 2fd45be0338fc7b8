//! An audit trail of every store operation (feature `audit`).

use std::fmt;
use std::future::Future;
use std::io::Write as _;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use crate::AttributeUpdate;
use crate::{
    BoxError, Capabilities, DeleteMode, Error, KeyUsage, ListOptions, ListPage, PutOptions, Result,
    RewrapBatch, Scope, Secret, SecretMeta, SecretName, SecretStore, Usage, VersionInfo,
};

/// Who is calling, as the application knows it: attached to every audit event.
///
/// Set it for a request with [`CallerContext::scope`] (a tokio task-local, so it follows
/// the request's future), or once for a whole store with
/// [`AuditStore::with_default_context`].
///
/// ```
/// use coffer_store::layer::CallerContext;
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let ctx = CallerContext::new().actor("user:42").workflow_id("wf-7").node_id("fetch-llm");
/// let seen = ctx.clone().scope(async { CallerContext::current() }).await;
/// assert_eq!(seen.actor.as_deref(), Some("user:42"));
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct CallerContext {
    /// The user, service or agent acting.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// The workflow run this call belongs to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub workflow_id: Option<String>,
    /// The workflow node (step) making the call.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// The client's address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<IpAddr>,
    /// The client's user agent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

tokio::task_local! {
    static CONTEXT: CallerContext;
}

/// Longest context field kept, in bytes (longer ones are cut at a character boundary).
const MAX_CONTEXT_FIELD: usize = 256;

/// `text` with every control character written as an escape (`\n`, `\u{1b}`), so a
/// field from a caller, the store or the environment cannot start a line of its own in
/// a log or drive the terminal that shows it. What the audit layer does to every
/// [`CallerContext`] field, and what a program printing audit fields should do too.
///
/// ```
/// use coffer_store::layer::printable;
///
/// assert_eq!(printable("agent:billing"), "agent:billing");
/// assert_eq!(printable("alice\nforged\u{1b}[2J"), "alice\\nforged\\u{1b}[2J");
/// ```
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if !text.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// `text` [`printable`], cut to [`MAX_CONTEXT_FIELD`] bytes.
fn bounded(text: String) -> String {
    let text = match printable(&text) {
        std::borrow::Cow::Borrowed(_) => text,
        std::borrow::Cow::Owned(escaped) => escaped,
    };
    if text.len() <= MAX_CONTEXT_FIELD {
        return text;
    }
    let mut end = MAX_CONTEXT_FIELD;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl CallerContext {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the actor.
    #[must_use]
    pub fn actor(mut self, actor: impl Into<String>) -> Self {
        self.actor = Some(bounded(actor.into()));
        self
    }

    /// Sets the workflow id.
    #[must_use]
    pub fn workflow_id(mut self, id: impl Into<String>) -> Self {
        self.workflow_id = Some(bounded(id.into()));
        self
    }

    /// Sets the node id.
    #[must_use]
    pub fn node_id(mut self, id: impl Into<String>) -> Self {
        self.node_id = Some(bounded(id.into()));
        self
    }

    /// Sets the client address.
    #[must_use]
    pub fn ip(mut self, ip: IpAddr) -> Self {
        self.ip = Some(ip);
        self
    }

    /// Sets the user agent.
    #[must_use]
    pub fn user_agent(mut self, user_agent: impl Into<String>) -> Self {
        self.user_agent = Some(bounded(user_agent.into()));
        self
    }

    /// Runs `future` with this context attached to every audited call inside it.
    pub async fn scope<F: Future>(self, future: F) -> F::Output {
        CONTEXT.scope(self, future).await
    }

    /// The context of the running task ([`CallerContext::scope`]), or an empty one.
    pub fn current() -> Self {
        CONTEXT.try_with(Clone::clone).unwrap_or_default()
    }

    fn or(self, default: &CallerContext) -> CallerContext {
        CallerContext {
            actor: self.actor.or_else(|| default.actor.clone()),
            workflow_id: self.workflow_id.or_else(|| default.workflow_id.clone()),
            node_id: self.node_id.or_else(|| default.node_id.clone()),
            ip: self.ip.or(default.ip),
            user_agent: self.user_agent.or_else(|| default.user_agent.clone()),
        }
    }
}

/// An audited operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Operation {
    /// [`SecretStore::get`].
    Get,
    /// [`SecretStore::put`].
    Put,
    /// [`SecretStore::metadata`].
    Metadata,
    /// [`SecretStore::list`].
    List,
    /// [`SecretStore::delete`] (soft).
    Delete,
    /// [`SecretStore::delete`] (destroy).
    Destroy,
    /// [`SecretStore::rewrap_batch`].
    Rewrap,
    /// [`SecretStore::update_attributes`].
    UpdateAttributes,
    /// [`SecretStore::versions`].
    Versions,
    /// [`SecretStore::list_deleted`].
    ListDeleted,
    /// [`SecretStore::restore`].
    Restore,
}

impl Operation {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::Get => "get",
            Operation::Put => "put",
            Operation::Metadata => "metadata",
            Operation::List => "list",
            Operation::Delete => "delete",
            Operation::Destroy => "destroy",
            Operation::Rewrap => "rewrap",
            Operation::UpdateAttributes => "update_attributes",
            Operation::Versions => "versions",
            Operation::ListDeleted => "list_deleted",
            Operation::Restore => "restore",
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an audited operation ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Outcome {
    /// A write is about to be attempted (recorded before every write, so no write
    /// happens unaudited); its result follows as a second event.
    Attempt,
    /// It succeeded.
    Ok,
    /// It failed; [`AuditEvent::error_kind`] says how.
    Error,
}

impl Outcome {
    /// The snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Attempt => "attempt",
            Outcome::Ok => "ok",
            Outcome::Error => "error",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One audited operation. Never holds a value: names, versions and outcomes only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AuditEvent {
    /// When it happened.
    pub time: DateTime<Utc>,
    /// The scope; `None` for store-wide operations (rewrap).
    pub scope: Option<Scope>,
    /// The secret; `None` for listings and store-wide operations.
    pub name: Option<SecretName>,
    /// The version asked for or written, where there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// What was done.
    pub operation: Operation,
    /// How it ended.
    pub outcome: Outcome,
    /// [`Error::kind`] of a failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// Who asked.
    pub context: CallerContext,
}

impl AuditEvent {
    /// An event happening now.
    pub fn new(
        scope: Option<Scope>,
        name: Option<SecretName>,
        operation: Operation,
        outcome: Outcome,
    ) -> Self {
        Self {
            time: crate::backend::now(),
            scope,
            name,
            version: None,
            operation,
            outcome,
            error_kind: None,
            context: CallerContext::default(),
        }
    }
}

/// Where audit events go. Implement it for your own log pipeline; coffer ships
/// [`TracingSink`], [`JsonLinesSink`] and, in coffer-sql, a `secret_access_log` table.
#[async_trait]
pub trait AuditSink: fmt::Debug + Send + Sync + 'static {
    /// A short name for logs (`tracing`, `jsonl`, `sql`).
    fn name(&self) -> &'static str;

    /// Records `event` durably enough to count as recorded; an error means it was not.
    async fn record(&self, event: &AuditEvent) -> std::result::Result<(), BoxError>;
}

/// Events as `tracing` events at INFO on the target `coffer::audit`.
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingSink;

#[async_trait]
impl AuditSink for TracingSink {
    fn name(&self) -> &'static str {
        "tracing"
    }

    async fn record(&self, event: &AuditEvent) -> std::result::Result<(), BoxError> {
        let c = &event.context;
        tracing::info!(
            target: "coffer::audit",
            time = %event.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            scope = event.scope.as_ref().map(Scope::as_str),
            name = event.name.as_ref().map(SecretName::as_str),
            version = event.version,
            operation = event.operation.as_str(),
            outcome = event.outcome.as_str(),
            error_kind = event.error_kind.as_deref(),
            actor = c.actor.as_deref(),
            workflow_id = c.workflow_id.as_deref(),
            node_id = c.node_id.as_deref(),
            ip = c.ip.map(|ip| ip.to_string()),
            user_agent = c.user_agent.as_deref(),
            "secret access"
        );
        Ok(())
    }
}

/// Events as JSON lines appended to a file (created with mode 0600).
///
/// Each event is written with one `write` call and flushed; with
/// [`with_fsync`](Self::with_fsync) also synced to disk before the operation proceeds.
pub struct JsonLinesSink {
    path: PathBuf,
    file: Mutex<std::fs::File>,
    fsync: bool,
}

impl fmt::Debug for JsonLinesSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JsonLinesSink")
            .field("path", &self.path)
            .field("fsync", &self.fsync)
            .finish()
    }
}

impl JsonLinesSink {
    /// Opens `path` for appending, creating it with mode 0600.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref().to_path_buf();
        let mut options = std::fs::OpenOptions::new();
        options.create(true).append(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(|e| {
            Error::config(format!("cannot open the audit log {}: {e}", path.display()))
        })?;
        Ok(Self {
            path,
            file: Mutex::new(file),
            fsync: false,
        })
    }

    /// Also syncs every event to disk before the operation proceeds.
    #[must_use]
    pub fn with_fsync(mut self, fsync: bool) -> Self {
        self.fsync = fsync;
        self
    }
}

#[async_trait]
impl AuditSink for JsonLinesSink {
    fn name(&self) -> &'static str {
        "jsonl"
    }

    async fn record(&self, event: &AuditEvent) -> std::result::Result<(), BoxError> {
        let mut line = serde_json::to_vec(event)?;
        line.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        file.write_all(&line)?;
        file.flush()?;
        if self.fsync {
            file.sync_data()?;
        }
        Ok(())
    }
}

/// A store that records an [`AuditEvent`] for every operation in one or more
/// [`AuditSink`]s, fail-closed by default.
///
/// - Reads (`get`, `metadata`, `list`): one event after the operation. If no sink
///   records it, the call fails with [`Error::Audit`] and the value is dropped unseen.
/// - Writes (`put`, `delete`, `rewrap`): an [`Outcome::Attempt`] event first; if no sink
///   records it the write is not attempted ([`Error::Audit`]). The result follows as a
///   second event; if that one cannot be recorded it is logged with `tracing` at ERROR
///   and the write's result stands (it has happened).
/// - With several sinks one success is enough; failures of the others are logged.
/// - [`fail_open`](Self::fail_open) turns the refusals into `tracing` errors.
///
/// Events carry the [`CallerContext`] of the calling task, over the layer's default.
///
/// ```
/// use std::sync::Arc;
/// use coffer_store::layer::{AuditStore, CallerContext, TracingSink};
/// use coffer_store::{MemoryStore, PutOptions, Scope, SecretName, SecretStore};
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> coffer_store::Result<()> {
/// let store = AuditStore::new(MemoryStore::new(), vec![Arc::new(TracingSink)]);
/// let (scope, name) = (Scope::new("t1")?, SecretName::new("stripe_key")?);
/// CallerContext::new().actor("agent:billing").scope(async {
///     store.put(&scope, &name, &"sk_live_x".into(), &PutOptions::new()).await
/// }).await?;
/// # Ok(()) }
/// ```
pub struct AuditStore<S> {
    inner: S,
    sinks: Vec<Arc<dyn AuditSink>>,
    default_context: CallerContext,
    fail_closed: bool,
}

impl<S: fmt::Debug> fmt::Debug for AuditStore<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuditStore")
            .field("inner", &self.inner)
            .field("sinks", &self.sinks)
            .field("fail_closed", &self.fail_closed)
            .finish()
    }
}

impl<S: SecretStore> AuditStore<S> {
    /// Audits `inner` into `sinks`. With no sinks every call fails (fail-closed).
    pub fn new(inner: S, sinks: Vec<Arc<dyn AuditSink>>) -> Self {
        Self {
            inner,
            sinks,
            default_context: CallerContext::default(),
            fail_closed: true,
        }
    }

    /// Context for calls made outside any [`CallerContext::scope`] (and for the fields
    /// a task's context leaves empty).
    #[must_use]
    pub fn with_default_context(mut self, context: CallerContext) -> Self {
        self.default_context = context;
        self
    }

    /// Lets operations proceed when no sink records their event (logged at ERROR).
    #[must_use]
    pub fn fail_open(mut self) -> Self {
        self.fail_closed = false;
        self
    }

    /// The wrapped store.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// Sends `event` to every sink; `Err` with the reasons when none recorded it.
    async fn emit(&self, mut event: AuditEvent) -> std::result::Result<(), String> {
        event.context = CallerContext::current().or(&self.default_context);
        let results =
            futures::future::join_all(self.sinks.iter().map(|sink| sink.record(&event))).await;
        let mut reasons = Vec::new();
        let mut recorded = false;
        for (sink, result) in self.sinks.iter().zip(results) {
            match result {
                Ok(()) => recorded = true,
                Err(e) => {
                    tracing::warn!(sink = sink.name(), error = %e, "coffer audit: a sink failed");
                    reasons.push(format!("{}: {e}", sink.name()));
                }
            }
        }
        if recorded {
            Ok(())
        } else if self.sinks.is_empty() {
            Err("no audit sink is configured".to_owned())
        } else {
            Err(reasons.join("; "))
        }
    }

    /// Fail-closed: the [`Error::Audit`] refusing the call. Fail-open: logs and lets
    /// it through.
    fn refused(&self, event: &AuditEvent, message: String) -> Result<()> {
        if self.fail_closed {
            return Err(Error::Audit {
                operation: event.operation.as_str(),
                scope: event
                    .scope
                    .as_ref()
                    .map_or_else(|| "*".to_owned(), ToString::to_string),
                name: event
                    .name
                    .as_ref()
                    .map_or_else(|| "*".to_owned(), ToString::to_string),
                message,
            });
        }
        tracing::error!(
            operation = event.operation.as_str(),
            reason = %message,
            "coffer audit: event not recorded; proceeding (fail-open)"
        );
        Ok(())
    }

    /// A read: run it, then record its outcome; unrecorded, the result is withheld
    /// (and a value in it zeroized as it drops).
    async fn read<T>(
        &self,
        event: AuditEvent,
        result: Result<T>,
        version_of: impl Fn(&T) -> Option<u64>,
    ) -> Result<T> {
        let event = finished(event, &result, version_of);
        match self.emit(event.clone()).await {
            Ok(()) => result,
            Err(message) => self.refused(&event, message).and(result),
        }
    }

    /// A write: record the attempt (refusing the write if unrecorded), run it, record
    /// its outcome.
    async fn write<T, F>(
        &self,
        event: AuditEvent,
        run: F,
        version_of: impl Fn(&T) -> Option<u64>,
    ) -> Result<T>
    where
        F: Future<Output = Result<T>>,
    {
        if let Err(message) = self.emit(event.clone()).await {
            self.refused(&event, message)?;
        }
        let result = run.await;
        let done = finished(event, &result, version_of);
        if let Err(message) = self.emit(done.clone()).await {
            tracing::error!(
                operation = done.operation.as_str(),
                outcome = done.outcome.as_str(),
                reason = %message,
                "coffer audit: the outcome of a write was not recorded (its attempt was)"
            );
        }
        result
    }
}

fn finished<T>(
    mut event: AuditEvent,
    result: &Result<T>,
    version_of: impl Fn(&T) -> Option<u64>,
) -> AuditEvent {
    event.time = crate::backend::now();
    match result {
        Ok(v) => {
            event.outcome = Outcome::Ok;
            event.version = version_of(v).or(event.version);
        }
        Err(e) => {
            event.outcome = Outcome::Error;
            event.error_kind = Some(e.kind().to_owned());
        }
    }
    event
}

fn event(scope: &Scope, name: Option<&SecretName>, operation: Operation) -> AuditEvent {
    AuditEvent::new(
        Some(scope.clone()),
        name.cloned(),
        operation,
        Outcome::Attempt,
    )
}

#[async_trait]
#[deny(clippy::missing_trait_methods)]
impl<S: SecretStore> SecretStore for AuditStore<S> {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }

    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    async fn put(
        &self,
        scope: &Scope,
        name: &SecretName,
        value: &SecretString,
        options: &PutOptions,
    ) -> Result<SecretMeta> {
        let mut e = event(scope, Some(name), Operation::Put);
        if let crate::WriteCondition::IfVersion(v) = options.condition {
            e.version = Some(v);
        }
        self.write(e, self.inner.put(scope, name, value, options), |m| {
            Some(m.version)
        })
        .await
    }

    async fn get(&self, scope: &Scope, name: &SecretName, version: Option<u64>) -> Result<Secret> {
        let mut e = event(scope, Some(name), Operation::Get);
        e.version = version;
        let result = self.inner.get(scope, name, version).await;
        self.read(e, result, |s| Some(s.meta.version)).await
    }

    async fn metadata(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        let e = event(scope, Some(name), Operation::Metadata);
        let result = self.inner.metadata(scope, name).await;
        self.read(e, result, |m| Some(m.version)).await
    }

    async fn list(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        let e = event(scope, None, Operation::List);
        let result = self.inner.list(scope, options).await;
        self.read(e, result, |_| None).await
    }

    async fn delete(&self, scope: &Scope, name: &SecretName, mode: DeleteMode) -> Result<()> {
        let op = match mode {
            DeleteMode::Destroy => Operation::Destroy,
            _ => Operation::Delete,
        };
        self.write(
            event(scope, Some(name), op),
            self.inner.delete(scope, name, mode),
            |()| None,
        )
        .await
    }

    async fn update_attributes(
        &self,
        scope: &Scope,
        name: &SecretName,
        update: &AttributeUpdate,
    ) -> Result<SecretMeta> {
        self.write(
            event(scope, Some(name), Operation::UpdateAttributes),
            self.inner.update_attributes(scope, name, update),
            |m| Some(m.version),
        )
        .await
    }

    async fn list_scopes(&self) -> Result<Vec<Scope>> {
        // Scope names, no secret: nothing to audit.
        self.inner.list_scopes().await
    }

    async fn versions(&self, scope: &Scope, name: &SecretName) -> Result<Vec<VersionInfo>> {
        let e = event(scope, Some(name), Operation::Versions);
        let result = self.inner.versions(scope, name).await;
        self.read(e, result, |v| v.last().map(|v| v.version)).await
    }

    async fn list_deleted(&self, scope: &Scope, options: &ListOptions) -> Result<ListPage> {
        let e = event(scope, None, Operation::ListDeleted);
        let result = self.inner.list_deleted(scope, options).await;
        self.read(e, result, |_| None).await
    }

    async fn restore(&self, scope: &Scope, name: &SecretName) -> Result<SecretMeta> {
        self.write(
            event(scope, Some(name), Operation::Restore),
            self.inner.restore(scope, name),
            |m| Some(m.version),
        )
        .await
    }

    async fn rewrap_batch(&self, limit: usize) -> Result<RewrapBatch> {
        let e = AuditEvent::new(None, None, Operation::Rewrap, Outcome::Attempt);
        self.write(e, self.inner.rewrap_batch(limit), |_| None)
            .await
    }

    async fn key_usage(&self) -> Result<Vec<KeyUsage>> {
        // Counts of envelopes per key: no secret is touched, so nothing to audit.
        self.inner.key_usage().await
    }

    async fn retire_key(&self, key_id: u32) -> Result<()> {
        self.inner.retire_key(key_id).await
    }

    async fn adopt_untagged_heads(&self) -> Result<u64> {
        self.inner.adopt_untagged_heads().await
    }

    async fn record_usage(&self, usage: &[Usage]) -> Result<()> {
        // Bookkeeping of reads that were audited when they happened.
        self.inner.record_usage(usage).await
    }
}
