//! What each command does: one module per command, and what they share (errors,
//! the keyring and the store, the caller's identity).

mod audit;
mod copy;
mod get;
mod history;
mod import;
mod init;
mod keys;
mod list;
mod mcp;
mod put;
mod rm;
mod run;
mod set;

use std::sync::Arc;

use coffer::envelope::{self, Keyring, KeyringHandle};
use coffer::secrecy::SecretString;
use coffer::sql::SqlAuditSink;
use coffer::store::keys::{KeyringReload, SharedKeyring};
use coffer::store::layer::{AuditStore, CallerContext};
use coffer::store::open::scheme_of;
use coffer::{DynSecretStore, Error, OpenOptions, Scope, SecretName};

use crate::cli::{Cli, Command, KeysCommand};
use crate::out::{out, printable};

/// Who the CLI acts for in the access log, instead of the process's user name.
const ACTOR_ENV: &str = "COFFER_ACTOR";

/// The passphrase for passphrase-derived keyring keys.
const PASSPHRASE_ENV: &str = "COFFER_PASSPHRASE";

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

    /// The same failure with more said after it.
    pub(crate) fn context(mut self, more: impl std::fmt::Display) -> Self {
        self.message = format!("{}; {more}", self.message);
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

/// coffer's exit codes: stable, listed in `--help` ([`EXIT_CODES_HELP`]) and the README.
pub(crate) mod exit {
    /// Any other failure.
    pub(crate) const FAILURE: u8 = 1;
    /// A flag, argument or name coffer cannot use (clap's own usage errors too).
    pub(crate) const USAGE: u8 = 2;
    /// No such secret, version or match.
    pub(crate) const NOT_FOUND: u8 = 3;
    /// A write lost to another: check-and-set, create-only, a keyring changed meanwhile.
    pub(crate) const CONFLICT: u8 = 4;
    /// The secret exists but is expired or inactive.
    pub(crate) const UNREADABLE: u8 = 5;
    /// The store refused the credentials or the operation.
    pub(crate) const PERMISSION: u8 = 6;
    /// The store is unreachable, sealed, overloaded or rate-limited: retry later.
    pub(crate) const UNAVAILABLE: u8 = 7;
}

/// The exit codes, for `--help`.
pub(crate) const EXIT_CODES_HELP: &str = "Exit codes: 0 ok; 1 failure; 2 usage (a flag, \
argument or name coffer cannot use); 3 not found; 4 conflict (another write came first); \
5 expired or inactive; 6 permission denied; 7 unavailable (retry later). `run` exits with \
its command's code.";

impl From<Error> for CliError {
    fn from(e: Error) -> Self {
        let code = match &e {
            e if e.is_not_found() => exit::NOT_FOUND,
            Error::AlreadyExists { .. }
            | Error::Conflict { .. }
            | Error::KeyringConflict { .. } => exit::CONFLICT,
            Error::Expired { .. } | Error::Inactive { .. } => exit::UNREADABLE,
            Error::PermissionDenied { .. } => exit::PERMISSION,
            Error::Unavailable { .. } | Error::RateLimited { .. } => exit::UNAVAILABLE,
            Error::InvalidName { .. } | Error::InvalidInput { .. } => exit::USAGE,
            _ => exit::FAILURE,
        };
        Self {
            code,
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
            e @ coffer_env::Error::Collision { .. } => Self::new(format!(
                "{e}: give one of them another with `coffer set NAME --env-name VAR`, or leave \
                 one out with --only / --prefix / --tag"
            )),
            e @ coffer_env::Error::NotPortable { .. } => Self::new(format!(
                "{e} (coffer export --format shell or --format json)"
            )),
            other => Self::new(other.to_string()),
        }
    }
}

pub(crate) type CliResult<T = ()> = Result<T, CliError>;

/// Runs the command; the exit code on success is 0 except for `run`, which passes on
/// its child's.
pub(crate) async fn run(cli: Cli) -> CliResult<u8> {
    let done = dispatch(&cli).await;
    done.map_err(|e| unreachable_hint(e, &cli.store))
}

/// An unavailable store's error names the address coffer tried, if it does not already.
fn unreachable_hint(e: CliError, store: &str) -> CliError {
    if e.code != exit::UNAVAILABLE {
        return e;
    }
    match store_address(store) {
        Some(address) if !e.message.contains(&address) => {
            e.context(format!("is the server at {address} up and reachable?"))
        }
        _ => e,
    }
}

/// `host:port` (or `host`) of a store URL, without any credentials; `None` for a URL
/// without a host (`sqlite://`, `memory://`).
fn store_address(url: &str) -> Option<String> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    (!host.is_empty()).then(|| printable(host).into_owned())
}

/// Refuses a store URL whose scheme no opener knows, naming the nearest known one.
fn check_scheme(url: &str) -> CliResult {
    let known = coffer::registry().schemes();
    let Some(scheme) = scheme_of(url) else {
        return Err(CliError::new(
            "the store (--store or COFFER_STORE) is not a URL: give one like \
             sqlite://.coffer/secrets.db, postgres://user@host/db or \
             vault+https://host:8200/secret",
        )
        .with_code(exit::USAGE));
    };
    if known.iter().any(|k| k.eq_ignore_ascii_case(scheme)) {
        return Ok(());
    }
    let lower = scheme.to_ascii_lowercase();
    // `supabase` and `vault` lack their `+transport`; else the nearest by edit distance.
    let nearest = known
        .iter()
        .find(|k| k.starts_with(&format!("{lower}+")))
        .or_else(|| {
            known
                .iter()
                .map(|k| (strsim::damerau_levenshtein(&lower, k), k))
                .filter(|(distance, _)| *distance <= 2)
                .min()
                .map(|(_, k)| k)
        });
    let hint = nearest.map_or_else(String::new, |k| format!("did you mean {k}://? "));
    Err(CliError::new(format!(
        "coffer cannot open {scheme}:// stores: {hint}it opens {}",
        known
            .iter()
            .map(|k| format!("{k}://"))
            .collect::<Vec<_>>()
            .join(", ")
    ))
    .with_code(exit::USAGE))
}

async fn dispatch(cli: &Cli) -> CliResult<u8> {
    let done = match &cli.command {
        Command::Init(args) => init::init(cli, args.output).await,
        Command::Put(args) => put::put(cli, args).await,
        Command::Get(args) => get::get(cli, args).await,
        Command::Set(args) => set::set(cli, args).await,
        Command::List(args) => list::list(cli, args).await,
        Command::Rm(args) => rm::rm(cli, args).await,
        Command::Versions(args) => history::versions(cli, args).await,
        Command::Rollback(args) => history::rollback(cli, args).await,
        Command::Restore(args) => history::restore(cli, args).await,
        Command::Keys(KeysCommand::Rotate(args)) => keys::rotate(cli, args).await,
        Command::Keys(KeysCommand::List(args)) => keys::list(cli, args).await,
        Command::Keys(KeysCommand::Retire(args)) => keys::retire(cli, args).await,
        Command::Keys(KeysCommand::Migrate(args)) => keys::migrate(cli, args).await,
        Command::Keys(KeysCommand::Rekey) => keys::rekey(cli).await,
        Command::Audit(args) => audit::audit(cli, args).await,
        Command::Mcp(args) => mcp::serve(cli, args).await,
        Command::Run(args) => return run::run(cli, args).await,
        Command::Export(args) => run::export(cli, args).await,
        Command::Import(args) => import::import(cli, args).await,
        Command::Copy(args) => copy::copy(cli, args).await,
        Command::Completion(args) => completion(args.shell),
    };
    done.map(|()| 0)
}

/// Writes the completion script for `shell` to standard output.
fn completion(shell: clap_complete::Shell) -> CliResult {
    use clap::CommandFactory as _;
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "coffer", &mut script);
    crate::out::write_stdout(&script)
}

pub(super) fn passphrase() -> Option<SecretString> {
    std::env::var(PASSPHRASE_ENV).ok().map(SecretString::from)
}

/// Asks for the keyring's passphrase at the terminal, not echoed, when coffer runs at
/// one (standard input and standard error both terminals); elsewhere `None`, and the
/// keyring's error says that COFFER_PASSPHRASE is needed.
fn prompt_passphrase(cli: &Cli) -> CliResult<Option<SecretString>> {
    use std::io::IsTerminal as _;
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Ok(None);
    }
    let prompt = format!(
        "Passphrase for {} (or set {PASSPHRASE_ENV}): ",
        cli.keyring.display()
    );
    crate::out::prompt_hidden(&prompt, "passphrase").map(Some)
}

/// Where a loaded keyring lives, which decides how a change to it is saved.
pub(super) enum KeyringHome {
    /// `COFFER_MASTER_KEY` as the only key; no keyring file (or a plain one it overrides).
    EnvOnly,
    /// A plain keyring file (keys in the clear, mode 0600).
    Plain,
    /// A keyring file sealed under a key-encryption key from the environment.
    Sealed(envelope::Kek),
    /// The keyring the store keeps itself, sealed under a key-encryption key from the
    /// environment (`coffer keys migrate --to-store` put it there).
    Store(Arc<SharedKeyring>),
}

impl KeyringHome {
    /// Saves `keyring` where it came from. A keyring that was only `COFFER_MASTER_KEY`
    /// becomes a keyring file sealed under that key, so the key keeps opening it (and
    /// every envelope it sealed, as key 1) after any number of rotations.
    pub(super) async fn save(&mut self, cli: &Cli, keyring: &Keyring) -> CliResult {
        self.writable(cli)?;
        match self {
            Self::Store(keys) => keys
                .update(|kept| {
                    *kept = keyring.clone();
                    Ok(())
                })
                .await
                .map_err(|e| match e {
                    Error::KeyringConflict { .. } => CliError::new(format!(
                        "{e}; run the command again to act on the keyring as it is now"
                    )),
                    other => other.into(),
                }),
            Self::Plain => Ok(keyring.save(&cli.keyring)?),
            Self::Sealed(kek) => Ok(keyring.save_sealed(&cli.keyring, kek)?),
            Self::EnvOnly => {
                let kek = envelope::Kek::from_env()?
                    .ok_or_else(|| CliError::new("COFFER_MASTER_KEY was unset while coffer ran"))?;
                keyring.save_sealed(&cli.keyring, &kek)?;
                crate::out::note!(
                    "keyring: {} (created, sealed under {})",
                    cli.keyring.display(),
                    kek.source()
                );
                *self = Self::Sealed(kek);
                Ok(())
            }
        }
    }
}

impl KeyringHome {
    /// Refuses before anything changes when a save would be refused: `COFFER_MASTER_KEY`
    /// over a plain keyring file is neither of them to change.
    pub(super) fn writable(&self, cli: &Cli) -> CliResult {
        if matches!(self, Self::EnvOnly) && cli.keyring.exists() {
            return Err(CliError::new(format!(
                "COFFER_MASTER_KEY overrides the keyring file {}, so coffer will not change \
                 either: unset COFFER_MASTER_KEY to use the file, or move the file away to \
                 keep a keyring sealed under COFFER_MASTER_KEY",
                cli.keyring.display()
            )));
        }
        Ok(())
    }
}

/// Where the keyring comes from: the store's own keyring when it keeps one and a KEK is
/// set; else a sealed keyring file, which opens with the KEK in the environment; else
/// `COFFER_MASTER_KEY` wins over a plain file, as before.
pub(super) async fn load_keyring_home(cli: &Cli) -> CliResult<Option<(Keyring, KeyringHome)>> {
    if let Some(keys) = kept_keyring(cli).await? {
        if cli.keyring.exists() {
            crate::out::note!(
                "coffer: warning: the keyring file {} is not used: the {} store keeps its own \
                 keyring",
                cli.keyring.display(),
                keys.backend()
            );
        }
        let keyring = (*keys.handle().current()).clone();
        return Ok(Some((keyring, KeyringHome::Store(keys))));
    }
    let sealed_file = cli.keyring.exists()
        && envelope::Kek::is_sealed(envelope::read_private(&cli.keyring)?.as_bytes());
    if sealed_file {
        let kek = envelope::Kek::from_env()?;
        let keyring = Keyring::load_file(&cli.keyring, kek.as_ref(), None)?;
        let kek = kek.ok_or_else(|| CliError::new("the keyring file is sealed"))?;
        return Ok(Some((keyring, KeyringHome::Sealed(kek))));
    }
    if let Some(keyring) = Keyring::from_env()? {
        return Ok(Some((keyring, KeyringHome::EnvOnly)));
    }
    if !cli.keyring.exists() {
        return Ok(None);
    }
    let text = coffer::envelope::zeroize::Zeroizing::new(envelope::read_private(&cli.keyring)?);
    let passphrase = match passphrase() {
        Some(p) => Some(p),
        None if Keyring::needs_passphrase(&text) => prompt_passphrase(cli)?,
        None => None,
    };
    let asked = passphrase.is_some();
    let keyring = Keyring::load(&cli.keyring, passphrase.as_ref()).map_err(|e| {
        let e = CliError::from(e);
        if asked {
            e
        } else {
            e.context(format!(
                "set {PASSPHRASE_ENV}, or run coffer at a terminal to be asked for it"
            ))
        }
    })?;
    Ok(Some((keyring, KeyringHome::Plain)))
}

/// The keyring the store keeps, opened with the KEK in the environment: `None` when no
/// KEK is set, the store cannot keep one, or keeps none. A SQLite file that does not
/// exist yet is not created by asking.
async fn kept_keyring(cli: &Cli) -> CliResult<Option<Arc<SharedKeyring>>> {
    if !needs_keyring(&cli.store) {
        return Ok(None);
    }
    if init::sqlite_file(&cli.store).is_some_and(|f| !f.exists()) {
        return Ok(None);
    }
    let Some(kek) = envelope::Kek::from_env()? else {
        return Ok(None);
    };
    let storage = match coffer::registry().keyring_storage(&cli.store).await {
        Ok(storage) => storage,
        Err(Error::Unsupported { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    match storage.read_keyring().await {
        Ok(Some(_)) => {}
        Ok(None) => return Ok(None),
        // A token that may not read the keyring's path (a Vault policy) has no kept
        // keyring to use: the keyring file, if any, is what it works with.
        Err(Error::PermissionDenied { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    }
    let keys = SharedKeyring::open(storage, Arc::new(kek)).await?;
    Ok(Some(Arc::new(keys)))
}

/// The keyring and where it lives, or the error that says how to create one.
pub(super) async fn require_keyring_home(cli: &Cli) -> CliResult<(Keyring, KeyringHome)> {
    load_keyring_home(cli).await?.ok_or_else(|| no_keyring(cli))
}

fn no_keyring(cli: &Cli) -> CliError {
    CliError::new(format!(
        "no keyring at {}: run `coffer init` to create one, or set COFFER_MASTER_KEY \
         (base64 or hex of 32 bytes); if the store keeps its keyring (`coffer keys migrate \
         --to-store`), set the KEK it is sealed under (COFFER_MASTER_KEY, COFFER_KEK_FILE \
         or COFFER_PASSPHRASE)",
        cli.keyring.display()
    ))
}

pub(super) async fn require_keyring(cli: &Cli) -> CliResult<Keyring> {
    Ok(require_keyring_home(cli).await?.0)
}

/// Whether the store at `store_url` seals values with a keyring: SQL stores always;
/// Vault and Supabase only with `?seal=true` (other clients read their values as they
/// are, and the backend encrypts at rest); memory never.
fn needs_keyring(store_url: &str) -> bool {
    let Some(scheme) = scheme_of(store_url) else {
        return true;
    };
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "memory" {
        return false;
    }
    if scheme.starts_with("vault+") || scheme.starts_with("supabase+") {
        let query = store_url.split_once('?').map_or("", |(_, q)| q);
        // A seal= that does not parse still needs the keyring: the store then refuses it.
        return query.split('&').any(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                k == "seal" && coffer::store::open::parse_flag("seal", v).unwrap_or(true)
            })
        });
    }
    true
}

/// Opens the store with `keyring`, or with the keyring found as
/// [`load_keyring_home`] finds it (the store's own, followed on reload).
pub(crate) async fn open_store(
    cli: &Cli,
    keyring: Option<KeyringHandle>,
) -> CliResult<Arc<DynSecretStore>> {
    let keyring = match keyring {
        Some(k) => Some(k),
        None if needs_keyring(&cli.store) => {
            let (keyring, home) = require_keyring_home(cli).await?;
            return open_home(cli, &keyring, &home).await;
        }
        None => None,
    };
    open_with(cli, keyring, None).await
}

/// Opens the store at `url` as [`open_store`] opens `--store`, with the same keyring
/// settings; a SQLite file that does not exist is refused, not created.
pub(super) async fn open_store_at(cli: &Cli, url: &str) -> CliResult<Arc<DynSecretStore>> {
    if let Some(file) = init::sqlite_file(url).filter(|f| !f.exists()) {
        return Err(CliError::new(format!(
            "no store at {}: `coffer init` creates one",
            file.display()
        )));
    }
    let other = Cli {
        store_arg: None,
        scope_arg: None,
        keyring_arg: None,
        store: url.to_owned(),
        scope: cli.scope.clone(),
        keyring: cli.keyring.clone(),
        project: cli.project.clone(),
        command: Command::Init(crate::cli::InitArgs {
            output: crate::cli::OutputArgs {
                format: crate::cli::Format::Table,
                json: false,
            },
        }),
    };
    open_store(&other, None).await
}

/// Opens the store with a keyring loaded from `home`: the store's own keyring through
/// its shared handle (reloaded when another instance changes it), else `keyring`.
pub(super) async fn open_home(
    cli: &Cli,
    keyring: &Keyring,
    home: &KeyringHome,
) -> CliResult<Arc<DynSecretStore>> {
    match home {
        KeyringHome::Store(keys) => open_with(cli, Some(keys.handle()), Some(keys)).await,
        _ => open_with(cli, Some(keyring.clone().into()), None).await,
    }
}

async fn open_with(
    cli: &Cli,
    keyring: Option<KeyringHandle>,
    kept: Option<&Arc<SharedKeyring>>,
) -> CliResult<Arc<DynSecretStore>> {
    check_scheme(&cli.store)?;
    // Only `coffer init` creates a store: any other command on a SQLite file that is
    // not there (a typo, another folder) says so instead of making an empty one.
    if !matches!(cli.command, Command::Init(_))
        && let Some(file) = init::sqlite_file(&cli.store).filter(|f| !f.exists())
    {
        return Err(CliError::new(format!(
            "no store at {}: run `coffer init` to create one, or name another with --store",
            file.display()
        )));
    }
    if !needs_keyring(&cli.store)
        && scheme_of(&cli.store).is_some_and(|s| s.eq_ignore_ascii_case("memory"))
    {
        crate::out::note!(
            "coffer: warning: memory:// keeps nothing: what this command writes is gone when \
             it exits"
        );
    }
    let reloading = |store: Arc<DynSecretStore>| -> Arc<DynSecretStore> {
        match kept {
            Some(keys) => Arc::new(KeyringReload::new(store, keys.clone())),
            None => store,
        }
    };
    match keyring {
        Some(keyring) if keeps_access_log(&cli.store) => {
            // Every command's operations land in the store's access log, fail-closed,
            // written through the store's own pool.
            let (store, sink) = SqlAuditSink::open_with_store(&cli.store, keyring).await?;
            Ok(Arc::new(
                AuditStore::new(reloading(store), vec![Arc::new(sink)])
                    .with_default_context(cli_context()?),
            ))
        }
        keyring => {
            let mut options = OpenOptions::new();
            if let Some(k) = keyring {
                options = options.keyring(k);
            }
            Ok(reloading(coffer::open(&cli.store, &options).await?))
        }
    }
}

/// Whether the store's database has coffer's `secret_access_log`.
pub(super) fn keeps_access_log(url: &str) -> bool {
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

pub(crate) fn scope(cli: &Cli) -> CliResult<Scope> {
    Ok(Scope::new(cli.scope.clone())?)
}

pub(crate) fn name(text: &str) -> CliResult<SecretName> {
    Ok(SecretName::new(text)?)
}

/// Prints `rows` under `header` in left-aligned columns, control characters escaped (a
/// provider, a tag or an actor holding a newline cannot forge a row).
pub(super) fn print_columns(header: &[&str], rows: &[Vec<String>]) -> CliResult {
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
