//! What each command does.

use std::io::{IsTerminal as _, Read as _};
use std::path::Path;
use std::sync::Arc;

use coffer::envelope::{self, KdfParams, Keyring, MasterKey};
use coffer::secrecy::{ExposeSecret as _, SecretString};
use coffer::store::open::scheme_of;
use coffer::{
    DeleteMode, DynSecretStore, Error, OpenOptions, PutOptions, Scope, SecretMeta, SecretName,
    SecretStoreExt as _,
};

use coffer::sql::{AuditQuery, SqlAuditSink};
use coffer::store::layer::{AuditLayer, CallerContext};

use crate::cli::{AuditArgs, Cli, Command, GetArgs, KeysCommand, ListArgs, PutArgs, RmArgs};
use crate::out::{note, out, printable};

/// Who the CLI acts for in the access log, instead of the process's user name.
const ACTOR_ENV: &str = "COFFER_ACTOR";

/// The passphrase for passphrase-derived keyring keys.
const PASSPHRASE_ENV: &str = "COFFER_PASSPHRASE";

/// Envelopes rewrapped per transaction by `keys rotate`.
const ROTATE_BATCH: usize = 500;

/// A command's failure: the message for stderr and the exit code.
#[derive(Debug)]
pub(crate) struct CliError {
    message: String,
    code: u8,
}

impl CliError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            code: 1,
        }
    }

    /// A failure with nothing to say (a closed output pipe).
    pub(crate) fn quiet(code: u8) -> Self {
        Self {
            message: String::new(),
            code,
        }
    }

    /// Whether there is a message to print.
    pub(crate) fn has_message(&self) -> bool {
        !self.message.is_empty()
    }

    /// The same failure with another exit code.
    pub(crate) fn with_code(mut self, code: u8) -> Self {
        self.code = code;
        self
    }

    pub(crate) fn exit_code(&self) -> u8 {
        self.code
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        Self {
            code: if e.is_not_found() { 2 } else { 1 },
            message: e.to_string(),
        }
    }
}

impl From<envelope::Error> for CliError {
    fn from(e: envelope::Error) -> Self {
        Self::new(e.to_string())
    }
}

impl From<coffer_env::Error> for CliError {
    fn from(e: coffer_env::Error) -> Self {
        match e {
            coffer_env::Error::Store(e) => e.into(),
            coffer_env::Error::GuardedVariable {
                name,
                risk,
                pattern,
            } => Self::new(format!(
                "{name} {risk} (it matches {pattern}), so coffer does not pass it on; \
                 pass --allow-var {name} if you mean it"
            )),
            other => Self::new(other.to_string()),
        }
    }
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

/// Runs the command; the exit code on success is 0 except for `run`, which passes on
/// its child's.
pub(crate) async fn run(cli: Cli) -> CliResult<u8> {
    let done = match &cli.command {
        Command::Init => init(&cli).await,
        Command::Put(args) => put(&cli, args).await,
        Command::Get(args) => get(&cli, args).await,
        Command::List(args) => list(&cli, args).await,
        Command::Rm(args) => rm(&cli, args).await,
        Command::Keys(KeysCommand::Rotate) => rotate(&cli).await,
        Command::Audit(args) => audit(&cli, args).await,
        Command::Mcp(args) => crate::mcp::serve(&cli, args).await,
        Command::Run(args) => return crate::inject::run(&cli, args).await,
        Command::Export(args) => crate::inject::export(&cli, args).await,
    };
    done.map(|()| 0)
}

fn passphrase() -> Option<SecretString> {
    std::env::var(PASSPHRASE_ENV).ok().map(SecretString::from)
}

/// Where the keyring comes from: `COFFER_MASTER_KEY` wins over the file.
fn load_keyring(cli: &Cli) -> CliResult<Option<Keyring>> {
    if let Some(keyring) = Keyring::from_env()? {
        return Ok(Some(keyring));
    }
    if !cli.keyring.exists() {
        return Ok(None);
    }
    Ok(Some(Keyring::load(&cli.keyring, passphrase().as_ref())?))
}

fn require_keyring(cli: &Cli) -> CliResult<Keyring> {
    load_keyring(cli)?.ok_or_else(|| {
        CliError::new(format!(
            "no keyring at {}: run `coffer init` to create one, or set COFFER_MASTER_KEY \
             (base64 or hex of 32 bytes)",
            cli.keyring.display()
        ))
    })
}

fn needs_keyring(store_url: &str) -> bool {
    !scheme_of(store_url).is_some_and(|s| s.eq_ignore_ascii_case("memory"))
}

pub(crate) async fn open_store(
    cli: &Cli,
    keyring: Option<Keyring>,
) -> CliResult<Arc<DynSecretStore>> {
    let keyring = match keyring {
        Some(k) => Some(k),
        None if needs_keyring(&cli.store) => Some(require_keyring(cli)?),
        None => None,
    };
    let keyring = keyring.map(Arc::new);
    match keyring {
        Some(keyring) if keeps_access_log(&cli.store) => {
            // Every command's operations land in the store's access log, fail-closed,
            // written through the store's own pool.
            let (store, sink) = SqlAuditSink::open_with_store(&cli.store, keyring).await?;
            Ok(Arc::new(
                AuditLayer::new(store, vec![Arc::new(sink)]).with_default_context(cli_context()?),
            ))
        }
        keyring => {
            let mut options = OpenOptions::new();
            if let Some(k) = keyring {
                options = options.keyring(k);
            }
            Ok(coffer::open(&cli.store, &options).await?)
        }
    }
}

/// Whether the store's database has coffer's `secret_access_log`.
fn keeps_access_log(url: &str) -> bool {
    scheme_of(url).is_some_and(|s| {
        ["sqlite", "postgres", "postgresql"]
            .iter()
            .any(|k| s.eq_ignore_ascii_case(k))
    })
}

/// Who the CLI acts for in the access log: `COFFER_ACTOR` if set, else `cli:` and the
/// name of the process's user id (from the user database, not from `$USER`, which any
/// caller can set to anything), else `cli:uid:N`.
fn cli_context() -> CliResult<CallerContext> {
    let actor = match std::env::var_os(ACTOR_ENV) {
        Some(actor) => {
            let actor = actor
                .into_string()
                .map_err(|_| CliError::new(format!("{ACTOR_ENV} is not valid UTF-8")))?;
            if actor.is_empty() || actor.chars().any(char::is_control) {
                return Err(CliError::new(format!(
                    "{ACTOR_ENV} must be non-empty and hold no control characters \
                     (a newline would forge a line of the access log)"
                )));
            }
            actor
        }
        None => {
            let uid = nix::unistd::Uid::current();
            match nix::unistd::User::from_uid(uid) {
                Ok(Some(user)) => format!("cli:{}", printable(&user.name)),
                _ => format!("cli:uid:{uid}"),
            }
        }
    };
    Ok(CallerContext::new()
        .actor(actor)
        .user_agent(concat!("coffer-cli/", env!("CARGO_PKG_VERSION"))))
}

async fn audit(cli: &Cli, args: &AuditArgs) -> CliResult {
    if !keeps_access_log(&cli.store) {
        return Err(CliError::new(format!(
            "the access log lives in a SQL store's database (sqlite://, postgres://); {} has none",
            coffer::store::open::redact_url(&cli.store)
        )));
    }
    let sink = SqlAuditSink::connect(&cli.store, Arc::new(require_keyring(cli)?)).await?;
    let mut query = AuditQuery::new().scope(scope(cli)?).limit(args.limit);
    if let Some(n) = &args.name {
        query = query.name(name(n)?);
    }
    let events = sink.query(&query).await?;
    if args.json {
        for event in &events {
            let line = serde_json::to_string(event).map_err(|e| CliError::new(e.to_string()))?;
            out!("{line}")?;
        }
        return Ok(());
    }
    if events.is_empty() {
        note!("no recorded access in scope {}", printable(&cli.scope));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = events
        .iter()
        .map(|e| {
            vec![
                e.time.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                e.operation.to_string(),
                match &e.error_kind {
                    Some(kind) => format!("error:{kind}"),
                    None => e.outcome.to_string(),
                },
                e.name
                    .as_ref()
                    .map_or_else(|| "-".into(), ToString::to_string),
                e.version.map_or_else(|| "-".into(), |v| v.to_string()),
                e.context.actor.clone().unwrap_or_else(|| "-".into()),
            ]
        })
        .collect();
    print_columns(
        &["TIME", "OPERATION", "OUTCOME", "NAME", "VERSION", "ACTOR"],
        &rows,
    )
}

pub(crate) fn scope(cli: &Cli) -> CliResult<Scope> {
    Ok(Scope::new(cli.scope.clone())?)
}

pub(crate) fn name(text: &str) -> CliResult<SecretName> {
    Ok(SecretName::new(text)?)
}

/// The folder a `sqlite://` URL's file lives in, so `init` can create it.
fn sqlite_dir(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next()?;
    if path.is_empty() || path == ":memory:" {
        return None;
    }
    Path::new(path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
}

async fn init(cli: &Cli) -> CliResult {
    let keyring = if let Some(keyring) = Keyring::from_env()? {
        out!("keyring: using COFFER_MASTER_KEY")?;
        keyring
    } else if cli.keyring.exists() {
        let keyring = Keyring::load(&cli.keyring, passphrase().as_ref())?;
        out!("keyring: {} (exists)", cli.keyring.display())?;
        keyring
    } else {
        let keyring = match passphrase() {
            Some(p) => Keyring::from_passphrase(&p, KdfParams::generate())?,
            None => Keyring::new(MasterKey::generate()),
        };
        keyring.save(&cli.keyring)?;
        out!("keyring: {} (created, mode 0600)", cli.keyring.display())?;
        keyring
    };
    if let Some(dir) = sqlite_dir(&cli.store) {
        create_private_dir(dir)?;
    }
    let store = open_store(cli, Some(keyring)).await?;
    out!(
        "store: {} ({}, ready)",
        coffer::store::open::redact_url(&cli.store),
        store.backend()
    )
}

/// Creates `dir` (mode 0700 on Unix) if it does not exist: the database holds only
/// ciphertext, but names and metadata are nobody else's business either.
fn create_private_dir(dir: &Path) -> CliResult {
    if dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| CliError::new(format!("cannot create {}: {e}", dir.display())))
}

fn read_value(args: &PutArgs) -> CliResult<SecretString> {
    if let Some(v) = &args.value {
        return Ok(SecretString::from(v.clone()));
    }
    let (bytes, from_stdin) = match &args.value_file {
        Some(path) => (
            std::fs::read(path)
                .map_err(|e| CliError::new(format!("cannot read {}: {e}", path.display())))?,
            false,
        ),
        None => {
            let mut stdin = std::io::stdin();
            if stdin.is_terminal() {
                note!("Enter the value for {}, then press Ctrl-D:", args.name);
            }
            let mut buf = Vec::new();
            stdin
                .read_to_end(&mut buf)
                .map_err(|e| CliError::new(format!("cannot read standard input: {e}")))?;
            (buf, true)
        }
    };
    let mut text = String::from_utf8(bytes).map_err(|e| {
        coffer::envelope::zeroize::Zeroize::zeroize(&mut e.into_bytes());
        CliError::new("the value is not valid UTF-8")
    })?;
    if from_stdin && text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    if from_stdin && text.is_empty() {
        // Closed (Rust reopens a closed descriptor 0 on /dev/null), /dev/null, or an
        // empty pipe: almost always a mistake, never silently an empty secret.
        return Err(CliError::new(
            "standard input gave no value (it is closed, empty or /dev/null); pipe the value \
             in, or say --value-file FILE, or --value '' to store an empty value",
        ));
    }
    Ok(SecretString::from(text))
}

async fn put(cli: &Cli, args: &PutArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let mut options = if args.create_only {
        PutOptions::create_only()
    } else if let Some(v) = args.if_version {
        PutOptions::if_version(v)
    } else {
        PutOptions::new()
    };
    if let Some(p) = &args.provider {
        options = options.provider(p.clone());
    }
    if let Some(k) = &args.kind {
        options = options.kind(k.parse()?);
    }
    if let Some(d) = &args.description {
        options = options.description(d.clone());
    }
    if !args.tags.is_empty() {
        options = options.tags(args.tags.clone());
    }
    if let Some(e) = &args.env_name {
        options = options.env_name(e.clone());
    }
    if let Some(at) = &args.expires_at {
        let at = chrono::DateTime::parse_from_rfc3339(at).map_err(|_| {
            CliError::new(format!(
                "--expires-at {at:?} is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"
            ))
        })?;
        options = options.expires_at(at.with_timezone(&chrono::Utc));
    }
    let value = read_value(args)?;
    let store = open_store(cli, None).await?;
    let meta = store.put(&scope, &name, &value, &options).await?;
    let env_name = meta
        .env_name
        .clone()
        .unwrap_or_else(|| coffer_env::derive_env_name(&name));
    if let Some(g) = coffer_env::guarded(&env_name) {
        note!(
            "coffer: warning: {name} goes into a child's environment as {env_name}, which {} \
             (it matches {}); `coffer run` and `coffer export` refuse it unless given \
             --allow-var {env_name}",
            g.risk,
            g.pattern
        );
    }
    out!("{}", meta.version)
}

/// The value with all but its last 4 characters hidden; values under 8 characters are
/// hidden entirely (showing 4 of them would show too much).
fn mask(value: &str) -> String {
    let chars = value.chars().count();
    if chars < 8 {
        "********".to_owned()
    } else {
        let tail: String = value.chars().skip(chars - 4).collect();
        format!("********{tail}")
    }
}

async fn get(cli: &Cli, args: &GetArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    let secret = store.get(&scope, &name, args.version).await?;
    let value = secret.value.expose_secret();
    if args.json {
        let mut json =
            serde_json::to_value(&secret.meta).map_err(|e| CliError::new(e.to_string()))?;
        json["value"] = if args.reveal {
            value.into()
        } else {
            mask(value).into()
        };
        json["masked"] = (!args.reveal).into();
        let text = coffer::envelope::zeroize::Zeroizing::new(
            serde_json::to_string_pretty(&json).unwrap_or_default(),
        );
        if let Some(serde_json::Value::String(v)) = json.get_mut("value") {
            coffer::envelope::zeroize::Zeroize::zeroize(v);
        }
        out!("{}", *text)
    } else if args.reveal {
        out!("{value}")
    } else {
        out!("{}", mask(value))
    }
}

async fn list(cli: &Cli, args: &ListArgs) -> CliResult {
    let scope = scope(cli)?;
    let store = open_store(cli, None).await?;
    let items = match args.expiring {
        Some(within) => {
            let mut soon = store.expiring_within(&scope, within).await?;
            if let Some(p) = &args.prefix {
                soon.retain(|m| m.name.as_str().starts_with(p.as_str()));
            }
            soon
        }
        None => store.list_all(&scope, args.prefix.as_deref()).await?,
    };
    if args.json {
        return out!(
            "{}",
            serde_json::to_string_pretty(&items).map_err(|e| CliError::new(e.to_string()))?
        );
    }
    if items.is_empty() {
        match args.expiring {
            Some(within) => note!(
                "nothing in scope {scope} expires within {}",
                humantime::format_duration(within)
            ),
            None => note!("no secrets in scope {scope}"),
        }
        return Ok(());
    }
    print_table(&items)
}

fn print_table(items: &[SecretMeta]) -> CliResult {
    let rows: Vec<[String; 6]> = items
        .iter()
        .map(|m| {
            [
                m.name.to_string(),
                m.version.to_string(),
                m.kind.to_string(),
                m.provider.clone().unwrap_or_else(|| "-".into()),
                match (m.active, m.expires_at) {
                    (false, _) => "inactive".into(),
                    (true, Some(at)) if at <= chrono::Utc::now() => {
                        format!("expired {}", at.format("%Y-%m-%d"))
                    }
                    (true, Some(at)) => format!("expires {}", at.format("%Y-%m-%d")),
                    (true, None) => "active".into(),
                },
                if m.tags.is_empty() {
                    "-".into()
                } else {
                    m.tags.join(",")
                },
            ]
        })
        .collect();
    let rows: Vec<Vec<String>> = rows.into_iter().map(Vec::from).collect();
    print_columns(
        &["NAME", "VERSION", "KIND", "PROVIDER", "STATUS", "TAGS"],
        &rows,
    )
}

/// Prints `rows` under `header` in left-aligned columns, control characters escaped (a
/// provider, a tag or an actor holding a newline cannot forge a row).
fn print_columns(header: &[&str], rows: &[Vec<String>]) -> CliResult {
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|row| row.iter().map(|c| printable(c).into_owned()).collect())
        .collect();
    let rows = &rows[..];
    let mut widths: Vec<usize> = header.iter().map(String::len).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows) {
        let line: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out!("{}", line.join("  ").trim_end())?;
    }
    Ok(())
}

async fn rm(cli: &Cli, args: &RmArgs) -> CliResult {
    let (scope, name) = (scope(cli)?, name(&args.name)?);
    let store = open_store(cli, None).await?;
    let mode = if args.destroy {
        DeleteMode::Destroy
    } else {
        DeleteMode::Soft
    };
    store.delete(&scope, &name, mode).await?;
    out!(
        "{} {scope}/{name}",
        if args.destroy { "destroyed" } else { "deleted" }
    )
}

async fn rotate(cli: &Cli) -> CliResult {
    if std::env::var_os(envelope::MASTER_KEY_ENV).is_some() {
        return Err(CliError::new(
            "COFFER_MASTER_KEY holds a single key, which coffer cannot rotate: \
             use a keyring file (unset COFFER_MASTER_KEY and run `coffer init`)",
        ));
    }
    let mut keyring = require_keyring(cli)?;
    if keyring.rotation_pending() {
        note!(
            "resuming the unfinished rotation to key {}",
            keyring.primary_id()
        );
    } else {
        let probe = open_store(cli, Some(keyring.clone())).await?;
        if !probe.capabilities().rewrap {
            return Err(CliError::new(format!(
                "the {} store does not seal values with the keyring: nothing to rotate",
                probe.backend()
            )));
        }
        let id = keyring.rotate();
        keyring.set_rotation_pending(true);
        // The new key is on disk before any envelope uses it.
        keyring.save(&cli.keyring)?;
        note!("added key {id} as the primary");
    }
    let store = open_store(cli, Some(keyring.clone())).await?;
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "rewrapping {bar:40} {pos}/{len} envelopes ({per_sec})",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let done = store
        .rewrap_all(ROTATE_BATCH, &mut |done, total| {
            bar.set_length(total);
            bar.set_position(done);
        })
        .await;
    bar.finish_and_clear();
    let done = done?;
    keyring.set_rotation_pending(false);
    keyring.save(&cli.keyring)?;
    out!(
        "rotated to key {}; rewrapped {done} envelopes",
        keyring.primary_id()
    )
}
