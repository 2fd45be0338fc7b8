//! The command line, with clap derive.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Keep your users' API keys, tokens and credentials sealed in a coffer store.
#[derive(Debug, Parser)]
#[command(name = "coffer", version, about, long_about = None,
          after_help = crate::commands::EXIT_CODES_HELP)]
pub(crate) struct Cli {
    /// The store URL: sqlite://PATH, postgres://…, supabase+postgres://…,
    /// vault+http://host:port/mount (token in VAULT_TOKEN), memory://. Default: the
    /// project's (`.coffer/config.json`, found in this folder or the nearest one above
    /// it that has a `.coffer/`), else sqlite://.coffer/secrets.db there.
    #[arg(
        long = "store",
        global = true,
        env = "COFFER_STORE",
        value_name = "URL",
        help_heading = "Global options"
    )]
    pub(crate) store_arg: Option<String>,

    /// The scope (tenant) to work in. Default: the project's, else `default`.
    #[arg(
        long = "scope",
        short = 's',
        global = true,
        env = "COFFER_SCOPE",
        value_name = "SCOPE",
        help_heading = "Global options"
    )]
    pub(crate) scope_arg: Option<String>,

    /// The keyring file. COFFER_MASTER_KEY (base64 or hex of 32 bytes) overrides it.
    /// Default: the project's .coffer/keyring.json.
    #[arg(
        long = "keyring",
        global = true,
        env = "COFFER_KEYRING",
        value_name = "FILE",
        help_heading = "Global options"
    )]
    pub(crate) keyring_arg: Option<PathBuf>,

    /// The store URL in effect ([`Cli::resolve`]).
    #[arg(skip)]
    pub(crate) store: String,
    /// The scope in effect.
    #[arg(skip)]
    pub(crate) scope: String,
    /// The keyring file in effect.
    #[arg(skip)]
    pub(crate) keyring: PathBuf,
    /// The project's folder: where `.coffer/` is (or will be, for `init`).
    #[arg(skip)]
    pub(crate) project: PathBuf,

    #[command(subcommand)]
    pub(crate) command: Command,
}

/// How a command prints its result.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum Format {
    /// Lines and columns for people.
    #[default]
    Table,
    /// JSON, one shape per entity (README: "JSON output").
    Json,
}

/// `--format table|json` (and `--json`, short for `--format json`), on every command
/// that prints a result.
#[derive(Debug, Clone, Copy, Args)]
pub(crate) struct OutputArgs {
    /// How to print the result: table, for people, or json, for programs (one JSON
    /// shape per entity: a secret's metadata, a version, an audit event, a key).
    #[arg(long, value_enum, default_value_t = Format::Table, value_name = "FORMAT")]
    pub(crate) format: Format,
    /// Short for --format json.
    #[arg(long)]
    pub(crate) json: bool,
}

impl OutputArgs {
    /// Whether the result is printed as JSON.
    pub(crate) fn is_json(self) -> bool {
        self.json || self.format == Format::Json
    }
}

/// The kinds a secret can be, for `--kind` (listed in its help and checked by clap).
fn kind_values() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(coffer::SecretKind::ALL.map(|k| k.as_str()))
}

/// The project's folder of coffer files, found by walking up as git finds `.git`.
pub(crate) const PROJECT_DIR: &str = ".coffer";

/// The project's settings, written by `coffer init` into `.coffer/config.json`.
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProjectConfig {
    /// The store URL; a relative `sqlite://` path is relative to the project's folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) store: Option<String>,
    /// The scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) scope: Option<String>,
}

impl Cli {
    /// Settles the store, scope and keyring: flags and `COFFER_*` variables first, then
    /// the project's `.coffer/config.json`, then the defaults, all relative to the
    /// project: the nearest folder from here up that has a `.coffer/` (here if none).
    pub(crate) fn resolve(&mut self) -> Result<(), String> {
        let here = std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?;
        let root = here
            .ancestors()
            .find(|dir| dir.join(PROJECT_DIR).is_dir())
            .unwrap_or(&here)
            .to_path_buf();
        self.project = root.clone();
        let config_path = root.join(PROJECT_DIR).join("config.json");
        let config: ProjectConfig = match std::fs::read_to_string(&config_path) {
            Ok(text) => serde_json::from_str(&text)
                .map_err(|e| format!("{}: {e}", config_path.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => ProjectConfig::default(),
            Err(e) => return Err(format!("cannot read {}: {e}", config_path.display())),
        };
        // Paths are shown as the user would type them: relative when under here.
        let shown = |path: std::path::PathBuf| match path.strip_prefix(&here) {
            Ok(rel) => rel.to_path_buf(),
            Err(_) => path,
        };
        self.store = match (&self.store_arg, config.store) {
            (Some(url), _) => url.clone(),
            (None, Some(url)) => relative_sqlite(&url, &root, &shown),
            (None, None) => format!(
                "sqlite://{}",
                shown(root.join(PROJECT_DIR).join("secrets.db")).display()
            ),
        };
        self.scope = self
            .scope_arg
            .clone()
            .or(config.scope)
            .unwrap_or_else(|| "default".to_owned());
        self.keyring = match &self.keyring_arg {
            Some(path) => path.clone(),
            None => shown(root.join(PROJECT_DIR).join("keyring.json")),
        };
        Ok(())
    }
}

/// A `sqlite://` URL with a relative path, made relative to the project's folder.
fn relative_sqlite(
    url: &str,
    root: &std::path::Path,
    shown: &dyn Fn(std::path::PathBuf) -> std::path::PathBuf,
) -> String {
    let Some(rest) = url.strip_prefix("sqlite://") else {
        return url.to_owned();
    };
    let (path, query) = rest
        .split_once('?')
        .map_or((rest, None), |(p, q)| (p, Some(q)));
    if path.is_empty() || path.starts_with('/') || path == ":memory:" {
        return url.to_owned();
    }
    let full = shown(root.join(path));
    match query {
        Some(q) => format!("sqlite://{}?{q}", full.display()),
        None => format!("sqlite://{}", full.display()),
    }
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create the store and, if missing, a keyring file (mode 0600). Safe to run again.
    Init(InitArgs),
    /// Store a new version of a secret, or of several: `coffer put NAME=VALUE …` or
    /// --from-stdin-lines.
    ///
    /// The value comes from --value, --value-file, a prompt that does not echo (on a
    /// terminal; one line: a multi-line value such as a PEM key comes from --value-file or
    /// a pipe), or standard input (one trailing newline dropped).
    Put(PutArgs),
    /// Show a secret, masked unless --reveal.
    Get(GetArgs),
    /// Change a secret's metadata without a new version: activate or deactivate it,
    /// renew or clear its expiry, edit tags, description, env name, provider or kind.
    ///
    /// An expired or inactive secret is renewed or reactivated this way. Stores that
    /// cannot edit metadata in place (none of coffer's own) say so.
    Set(SetArgs),
    /// List the scope's secrets: names and metadata, never values.
    List(ListArgs),
    /// Delete a secret: hidden but kept (soft; `coffer restore` brings it back), or
    /// --destroy for good.
    Rm(RmArgs),
    /// List a secret's versions: number, when written, the key that sealed it, and
    /// whether its value is still kept (never a value).
    Versions(VersionsArgs),
    /// Write an earlier version's value again as a new version (the metadata stays).
    Rollback(RollbackArgs),
    /// Bring back a secret deleted with `coffer rm` (without --destroy), as it was:
    /// every version and its metadata. `coffer list --deleted` shows what can be.
    Restore(RestoreArgs),
    /// Manage the keyring.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Run a command with the scope's secrets in its environment (never in coffer's own),
    /// its output masked.
    ///
    /// Each secret becomes the variable its env name says, else its name upper-cased with
    /// every character outside [A-Z0-9_] turned into _ (openai_api_key → OPENAI_API_KEY).
    /// Names that change what a program runs, where it connects or whom it trusts
    /// (LD_*, PYTHON*, GIT_*, *_PROXY, PATH, …) are refused unless --allow-var names them.
    /// The command never gets coffer's own credentials (COFFER_*, VAULT_TOKEN, …) unless
    /// --pass-env names them; it does run as your user, so it can read any file you can
    /// (a keyring file included).
    ///
    /// Values are replaced in the command's stdout and stderr with [REDACTED:NAME], also
    /// their percent-encoded (either case), hex, base64 (at any alignment, line-wrapped at
    /// 64 or 76 columns), JSON-escaped and Python repr forms; --no-mask passes stdio
    /// through untouched (TTY intact). Not masked: output written to /dev/tty or to other
    /// inherited descriptors, and values transformed otherwise (reversed, compressed,
    /// encrypted, other encodings). SIGINT, SIGTERM and SIGHUP are forwarded. The exit code is the command's,
    /// 128+N if it died of signal N, 125 if coffer itself failed, 126 if the command cannot
    /// run, 127 if it is not found.
    Run(RunArgs),
    /// Show the access log: who read or changed which secret, when, and how it ended
    /// (never a value). Every coffer command on a sqlite:// or postgres:// store records
    /// its operations there; the scope is --scope.
    Audit(AuditArgs),
    /// Serve the configured database connections and the scope's secret names to an AI
    /// agent as Model Context Protocol tools over stdio.
    ///
    /// Tools: list_connections, connect (by configured name), query, execute (read-write
    /// connections only), schema, disconnect, list_secrets (never a value). No tool takes
    /// a credential: they come from the connections file's environment variables or
    /// secrets. Connections are read-only unless --allow-writes names them.
    Mcp(McpArgs),
    /// Write what `run` would inject: a .env file (read back exactly by dotenvy,
    /// python-dotenv and bash), shell export lines, or JSON.
    Export(ExportArgs),
    /// Bring secrets in from a .env file, a JSON object or the environment.
    ///
    /// Each variable becomes the secret of its name in lower case (OPENAI_API_KEY →
    /// openai_api_key) with the variable's name as its env name, so `coffer run` gives
    /// it back under the same name. A value already stored as it is writes no new
    /// version. Prints what was created, updated, unchanged and refused (with why),
    /// never a value.
    Import(ImportArgs),
    /// Copy secrets from one store to another (Vault → Postgres, SQLite → Supabase, …)
    /// with their metadata, then compare keyed digests of every value and its metadata
    /// in both (never the values themselves).
    ///
    /// Reruns write only what differs, so an interrupted copy resumes. Inactive and
    /// expired secrets are skipped: coffer does not read their values.
    Copy(CopyArgs),
    /// Print a shell completion script: `coffer completion bash > ~/.local/share/bash-completion/completions/coffer`,
    /// `coffer completion zsh > "${fpath[1]}/_coffer"`, `coffer completion fish > ~/.config/fish/completions/coffer.fish`.
    Completion(CompletionArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CompletionArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// The input formats of `import`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ImportFormat {
    /// NAME=value lines (quotes, `export `, comments), as dotenvy reads them.
    Dotenv,
    /// One JSON object of "NAME": "value" pairs.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct ImportArgs {
    /// The file to read (.env, *.env, .env.* are dotenv; *.json is JSON; else
    /// --input-format).
    #[arg(required_unless_present = "from_env", conflicts_with = "from_env")]
    pub(crate) file: Option<PathBuf>,
    /// The file's format, whatever its name says.
    #[arg(long, value_enum, value_name = "FORMAT")]
    pub(crate) input_format: Option<ImportFormat>,
    /// Import coffer's own environment variables instead of a file (coffer's own
    /// credentials, COFFER_* and VAULT_TOKEN among them, are never imported).
    #[arg(long)]
    pub(crate) from_env: bool,
    /// Only variables whose names start with this.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// The provider of every imported secret (openai, github, …).
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// The kind of every imported secret.
    #[arg(long, value_parser = kind_values())]
    pub(crate) kind: Option<String>,
    /// A tag of every imported secret (repeatable).
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// Say what would happen; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Which versions `copy` copies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum CopyVersions {
    /// The latest version of each secret.
    Latest,
    /// Every version, under the same numbers (both stores must keep versions).
    All,
}

#[derive(Debug, Args)]
pub(crate) struct CopyArgs {
    /// The store to copy from (default: --store).
    #[arg(long, value_name = "URL")]
    pub(crate) from: Option<String>,
    /// The store to copy to.
    #[arg(long, value_name = "URL")]
    pub(crate) to: String,
    /// Copy every scope of the source, not only --scope.
    #[arg(long)]
    pub(crate) all_scopes: bool,
    /// The latest version of each secret, or all of them.
    #[arg(long, value_enum, default_value_t = CopyVersions::Latest)]
    pub(crate) versions: CopyVersions,
    /// Say what would happen; write nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Which secrets `run` and `export` take.
#[derive(Debug, Args)]
pub(crate) struct SelectArgs {
    /// Only this secret (repeatable); it must exist and be readable.
    #[arg(long = "only", value_name = "NAME")]
    pub(crate) only: Vec<String>,
    /// Only secrets whose names start with this.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Only secrets carrying this tag (repeatable: every one).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Let this variable through although it changes what a program runs, where it
    /// connects or whom it trusts: loaders (LD_*, DYLD_*), interpreters (PYTHON*, NODE_*,
    /// BASH_ENV, …), program hooks (GIT_*, PAGER, EDITOR, BROWSER, …), proxies and CA
    /// files (*_PROXY, SSL_CERT_*, …), PATH and HOME. Repeatable.
    #[arg(
        long = "allow-var",
        visible_alias = "allow-loader-var",
        value_name = "VAR"
    )]
    pub(crate) allow: Vec<String>,
}

#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    /// Start from an empty environment plus PATH, HOME, USER, LOGNAME, SHELL, LANG,
    /// LANGUAGE, LC_*, TERM, COLORTERM, NO_COLOR, TZ and TMPDIR.
    #[arg(long)]
    pub(crate) clean_env: bool,
    /// Do not mask output: stdin, stdout and stderr are the command's directly.
    #[arg(long)]
    pub(crate) no_mask: bool,
    /// Keep this variable of coffer's own environment for the command although it is one
    /// of coffer's credentials (every COFFER_*, VAULT_TOKEN, VAULT_ROLE_ID,
    /// VAULT_SECRET_ID, PGPASSWORD), which the command otherwise never sees. Repeatable.
    #[arg(long = "pass-env", value_name = "VAR")]
    pub(crate) pass_env: Vec<String>,
    /// The command and its arguments, after `--`.
    #[arg(required = true, last = true, value_name = "CMD")]
    pub(crate) command: Vec<OsString>,
}

/// The output formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum ExportFormat {
    /// NAME='value' lines (refuses values no .env quoting carries exactly).
    Dotenv,
    /// One JSON object.
    Json,
    /// export NAME='value' lines for a POSIX shell; carries every value.
    Shell,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    pub(crate) select: SelectArgs,
    /// The format.
    #[arg(long, value_enum, default_value_t = ExportFormat::Dotenv)]
    pub(crate) format: ExportFormat,
    /// Write to this file (atomically, mode 0600) instead of standard output; `-` is
    /// standard output. Only a regular file or a new path: a symbolic link, FIFO, device,
    /// socket or directory is refused, and an existing file is replaced only if coffer
    /// wrote it (its first line is coffer's marker) or with --force.
    #[arg(long, short)]
    pub(crate) output: Option<PathBuf>,
    /// Replace an existing regular file at --output that coffer did not write.
    #[arg(long)]
    pub(crate) force: bool,
    /// Start dotenv lines with `export `.
    #[arg(long)]
    pub(crate) export: bool,
}

#[derive(Debug, Args)]
pub(crate) struct PutArgs {
    /// The secret's name, e.g. openai_api_key or providers/github/token; or several
    /// NAME=VALUE pairs, each stored as its own secret (values so given are visible in
    /// your shell history and process list).
    #[arg(
        required_unless_present = "from_stdin_lines",
        value_name = "NAME | NAME=VALUE"
    )]
    pub(crate) names: Vec<String>,
    /// Read NAME=VALUE lines from standard input, one secret each (the value is the rest
    /// of the line, exactly; empty lines and lines starting with # are skipped).
    #[arg(long, conflicts_with_all = ["value", "value_file", "names"])]
    pub(crate) from_stdin_lines: bool,
    /// The value (visible in your shell history and process list: prefer the prompt or
    /// stdin). It may start with `-` (a PEM key, `--x`).
    #[arg(long, conflicts_with = "value_file", allow_hyphen_values = true)]
    pub(crate) value: Option<String>,
    /// Read the value from this file; one trailing newline (as editors and `echo` leave
    /// it) is dropped, and coffer says so, unless --raw.
    #[arg(long)]
    pub(crate) value_file: Option<PathBuf>,
    /// With --value-file: keep the file's bytes exactly, a trailing newline included.
    #[arg(long, requires = "value_file")]
    pub(crate) raw: bool,
    /// Who issued the secret (openai, github, …).
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// What it is.
    #[arg(long, value_parser = kind_values())]
    pub(crate) kind: Option<String>,
    /// Free text.
    #[arg(long)]
    pub(crate) description: Option<String>,
    /// A tag (repeatable); replaces the secret's tags.
    #[arg(long = "tag")]
    pub(crate) tags: Vec<String>,
    /// The environment variable name to inject it as.
    #[arg(long)]
    pub(crate) env_name: Option<String>,
    /// When it expires: YYYY-MM-DD (midnight UTC) or RFC 3339 (2027-01-31T00:00:00Z).
    /// Must be in the future.
    #[arg(long, value_name = "DATE", conflicts_with = "expires_in")]
    pub(crate) expires_at: Option<String>,
    /// Expire it this long from now (e.g. 90d, 12h, 1w).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          conflicts_with = "no_expiry")]
    pub(crate) expires_in: Option<std::time::Duration>,
    /// Let it never expire (renews an expired secret; otherwise a put keeps the expiry).
    #[arg(long, conflicts_with = "expires_at")]
    pub(crate) no_expiry: bool,
    /// Make it readable (an inactive secret's put otherwise keeps it inactive).
    #[arg(long, conflicts_with = "inactive")]
    pub(crate) active: bool,
    /// Store it inactive: kept, but not readable until `coffer set NAME --active`.
    #[arg(long)]
    pub(crate) inactive: bool,
    /// Fail if the secret already exists.
    #[arg(long, conflicts_with = "if_version")]
    pub(crate) create_only: bool,
    /// Write only if the latest version is N.
    #[arg(long, value_name = "N")]
    pub(crate) if_version: Option<u64>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct SetArgs {
    /// The secret's name.
    pub(crate) name: String,
    /// Make it readable again.
    #[arg(long, conflicts_with = "inactive")]
    pub(crate) active: bool,
    /// Stop it from being read (its value is kept).
    #[arg(long)]
    pub(crate) inactive: bool,
    /// Expire it this long from now (e.g. 90d, 12h, 1w).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration,
          conflicts_with_all = ["expires_at", "no_expiry"])]
    pub(crate) expires_in: Option<std::time::Duration>,
    /// Expire it at this time: YYYY-MM-DD (midnight UTC) or RFC 3339. Must be in the future.
    #[arg(long, value_name = "DATE", conflicts_with = "no_expiry")]
    pub(crate) expires_at: Option<String>,
    /// Let it never expire.
    #[arg(long)]
    pub(crate) no_expiry: bool,
    /// Add a tag (repeatable).
    #[arg(long = "tag", value_name = "TAG")]
    pub(crate) tags: Vec<String>,
    /// Remove a tag (repeatable).
    #[arg(long = "untag", value_name = "TAG")]
    pub(crate) untags: Vec<String>,
    /// Set the description.
    #[arg(long, conflicts_with = "no_description")]
    pub(crate) description: Option<String>,
    /// Clear the description.
    #[arg(long)]
    pub(crate) no_description: bool,
    /// Set the environment variable name.
    #[arg(long, conflicts_with = "no_env_name")]
    pub(crate) env_name: Option<String>,
    /// Clear the environment variable name (the name is derived from the secret's again).
    #[arg(long)]
    pub(crate) no_env_name: bool,
    /// Set the provider.
    #[arg(long, conflicts_with = "no_provider")]
    pub(crate) provider: Option<String>,
    /// Clear the provider.
    #[arg(long)]
    pub(crate) no_provider: bool,
    /// Set the kind.
    #[arg(long, value_parser = kind_values())]
    pub(crate) kind: Option<String>,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct GetArgs {
    /// The secret's name.
    pub(crate) name: String,
    /// A version other than the latest.
    #[arg(long)]
    pub(crate) version: Option<u64>,
    /// Print the exact value and one newline (for scripts: K=$(coffer get k --plain)).
    #[arg(long, visible_alias = "plain", short = 'r')]
    pub(crate) reveal: bool,
    /// Print one metadata field (version, provider, kind, description, tags, env_name,
    /// expires_at, active, created_at, updated_at, …), never the value.
    #[arg(long, value_name = "FIELD", conflicts_with_all = ["reveal", "json", "format"])]
    pub(crate) field: Option<String>,
    /// With json: the secret's metadata and its value, masked unless --reveal.
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct ListArgs {
    /// Only names starting with this.
    #[arg(long)]
    pub(crate) prefix: Option<String>,
    /// Only secrets that expire within this time (e.g. 7d, 12h, 1w), expired ones
    /// included, soonest first.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) expiring: Option<std::time::Duration>,
    /// Only secrets of this provider.
    #[arg(long)]
    pub(crate) provider: Option<String>,
    /// Only secrets of this kind.
    #[arg(long, value_parser = kind_values())]
    pub(crate) kind: Option<String>,
    /// Only secrets carrying this tag.
    #[arg(long)]
    pub(crate) tag: Option<String>,
    /// Only active secrets.
    #[arg(long, conflicts_with = "inactive")]
    pub(crate) active: bool,
    /// Only inactive secrets.
    #[arg(long)]
    pub(crate) inactive: bool,
    /// Secrets deleted with `coffer rm` (not destroyed), which `coffer restore` brings
    /// back, instead of the live ones.
    #[arg(long, conflicts_with = "expiring")]
    pub(crate) deleted: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct McpArgs {
    /// The named connections, a JSON file:
    /// {"connections": {"main_db": {"type": "postgresql", "host": "…", "database": "…",
    /// "credentialsEnv": "MAIN_DB_CREDENTIALS"}}}.
    #[arg(long, value_name = "FILE")]
    pub(crate) connections: PathBuf,
    /// Let this connection write (repeatable); the others stay read-only.
    #[arg(long = "allow-writes", value_name = "NAME")]
    pub(crate) allow_writes: Vec<String>,
    /// Rows a query returns at most (default 1000); more are cut with truncated: true.
    #[arg(long, value_name = "N")]
    pub(crate) row_limit: Option<usize>,
    /// How long a statement may run (default 30s), e.g. 5s or 2m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub(crate) statement_timeout: Option<std::time::Duration>,
    /// Bytes a query returns at most, as JSON (default 16 MiB, 16777216); more are cut
    /// with truncated: true. A connection's "maxResultBytes" takes precedence.
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_result_bytes: Option<usize>,
    /// Bytes of one cell at most (default 1 MiB, 1048576); a longer one is cut and ends
    /// with "…[truncated: N bytes]".
    #[arg(long, value_name = "BYTES")]
    pub(crate) max_cell_bytes: Option<usize>,
}

#[derive(Debug, Args)]
pub(crate) struct AuditArgs {
    /// Only events of this secret.
    #[arg(long)]
    pub(crate) name: Option<String>,
    /// At most this many events, newest first.
    #[arg(long, default_value_t = 50)]
    pub(crate) limit: u32,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RmArgs {
    /// The secret's name.
    pub(crate) name: String,
    /// Remove every version for good instead of hiding the secret.
    #[arg(long)]
    pub(crate) destroy: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Options of `coffer init`.
#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct VersionsArgs {
    /// The secret's name.
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RollbackArgs {
    /// The secret's name.
    pub(crate) name: String,
    /// The version whose value to write again (see `coffer versions NAME`).
    #[arg(long, value_name = "VERSION")]
    pub(crate) to: u64,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct RestoreArgs {
    /// The secret's name (see `coffer list --deleted`).
    pub(crate) name: String,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Add a new primary key and rewrap every secret of the store onto it. Interrupted,
    /// it resumes when run again; nothing is lost either way.
    Rotate(RotateArgs),
    /// Show the keyring's keys: id, when each was made, which is primary, and how many
    /// envelopes and head MACs of the store each still protects (counted from the store).
    List(KeysListArgs),
    /// Remove a key for good. Refused while any envelope or head MAC of the store is
    /// under it (run `coffer keys rotate` first) and for the primary key.
    Retire(RetireArgs),
    /// Bring a store written by an earlier coffer up to date: give every head that has
    /// no MAC the MAC of its current state. Run it once, right after the upgrade. With
    /// --to-store, move the keyring into the store instead.
    Migrate(MigrateArgs),
    /// Seal the keyring file under a new key-encryption key, read from
    /// COFFER_NEW_MASTER_KEY, COFFER_NEW_KEK_FILE or COFFER_NEW_PASSPHRASE. Only the
    /// keyring is re-encrypted; no secret is touched. Also seals a plain keyring file.
    Rekey,
}

/// Options of `coffer keys rotate`.
#[derive(Debug, Args)]
pub(crate) struct RotateArgs {
    /// After rewrapping, retire every older key: the runbook for a leaked key in one
    /// command.
    #[arg(long)]
    pub(crate) retire: bool,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Options of `coffer keys migrate`.
#[derive(Debug, Args)]
pub(crate) struct MigrateArgs {
    /// Keep the keyring in the store itself (SQLite, Postgres, Vault KV v2, Supabase),
    /// sealed under the key-encryption key in COFFER_MASTER_KEY, COFFER_KEK_FILE or
    /// COFFER_PASSPHRASE, so every instance that shares the store and holds that KEK
    /// shares its keys, and follows rotations without copying files. Every secret of
    /// the scope is read back with it before this reports success.
    #[arg(long)]
    pub(crate) to_store: bool,
}

/// Options of `coffer keys list`.
#[derive(Debug, Args)]
pub(crate) struct KeysListArgs {
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}

/// Options of `coffer keys retire`.
#[derive(Debug, Args)]
pub(crate) struct RetireArgs {
    /// The key's id (see `coffer keys list`).
    pub(crate) id: u32,
    #[command(flatten)]
    pub(crate) output: OutputArgs,
}
