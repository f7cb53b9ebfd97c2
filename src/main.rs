//! The `tokenvault` command line: `serve`, `config`, `migrate`, `clients`, `card-tokens import`,
//! `seed`, `audit`, `journal`, `keys`, `export`, `import`, `backup`, `restore`, `health`, `listen`.

mod cli;

use std::process::ExitCode;

use clap::{Args, CommandFactory, Parser, Subcommand};
use cli::data::{export, import_dataset, import_file};
use cli::serve::serve;
use tokenvault::app;
use tokenvault::domain::AccountId;
use tokenvault::service::backup::BackupKey;
use tokenvault::service::keys::MasterKey;
use tokenvault::service::seed;
use tokenvault::settings::{self, DatabaseUrl, ServeConfig};
use tracing_subscriber::EnvFilter;

/// mimalloc instead of glibc malloc: under load, glibc's arenas and free-list consolidation took
/// about as much CPU as the whole of tokenvault's own code, and its per-thread arenas grow RSS
/// (bench/README.md, "Optimisations").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A self-hostable server speaking Dintero's customer-token and card-token APIs.
#[derive(Parser)]
#[command(name = "tokenvault", version, about)]
struct Cli {
    /// Log lines as `pretty` text for people or `json` for log collectors (on stderr).
    #[arg(long, global = true, env = "TOKENVAULT_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Print the effective `serve` settings as TOML (secrets masked) with where each came from.
    Config(ServeArgs),
    /// Manage API clients.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Bring card tokens in.
    CardTokens {
        #[command(subcommand)]
        command: CardTokensCommand,
    },
    /// Load fixtures (customers, customer tokens, token events, card tokens) into a test account
    /// from a JSON file; entries already present are skipped. Prints a JSON summary.
    Seed {
        /// `{"customers": [...], "customer_tokens": [...], "token_events": [...], "card_tokens": [...]}`
        /// with bodies as the API takes them (customer tokens also name their `customer_id`).
        file: std::path::PathBuf,
        /// A test account (`T…`); production accounts are refused.
        #[arg(long)]
        account: String,
        #[command(flatten)]
        database: DatabaseArgs,
        /// The card-token encryption key (see `serve --help`).
        #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
        encryption_key: Option<String>,
    },
    /// Print the audit trail as JSON Lines, oldest first.
    Audit(AuditArgs),
    /// Print a test account's request journal, oldest first: one line per request on a
    /// terminal, JSON Lines otherwise (the entries of `GET …/sandbox/requests`). With --follow,
    /// keep printing new requests as servers record them.
    Journal {
        /// A test account (`T…`).
        #[arg(long)]
        account: String,
        /// Keep running and print new requests as they are recorded (polled every second).
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// The encryption key ring: rotate keys, finish a re-encryption, list keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Apply pending schema migrations and exit (servers also apply them at start). Safe to run
    /// while servers run, and more than once; reports what it applied on stderr.
    Migrate {
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Write the whole dataset as JSON Lines (a header with per-table counts, then one line per
    /// row), read from one consistent snapshot. Card tokens stay encrypted: servers reading the
    /// data elsewhere need this database's encryption key.
    Export {
        #[command(flatten)]
        database: DatabaseArgs,
        /// Where to write; `-` for stdout.
        #[arg(long, short, default_value = "-")]
        output: String,
    },
    /// Load an export into an empty database (SQLite or PostgreSQL), in batches, keeping every
    /// row as it was; fails unless the stored counts equal the export's header. A failed import
    /// removes the rows it stored, so the database stays empty for the next try.
    Import {
        /// The export file; `-` for stdin.
        file: String,
        #[command(flatten)]
        database: DatabaseArgs,
        /// The encryption key the destination's servers will use: checked against the exported
        /// card tokens before any is stored (it must be the source's key). Without it, an SQLite
        /// destination's existing key file is checked instead.
        #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
        encryption_key: Option<String>,
    },
    /// Take an encrypted, consistent backup while servers keep serving (`backup --output FILE`),
    /// check one (`backup verify FILE`), or make a backup key (`backup new-key --output FILE`).
    Backup(BackupArgs),
    /// Restore a backup into an empty database (SQLite or PostgreSQL, whichever the backup came
    /// from), after checking the file is whole; a failed restore leaves the database empty.
    Restore {
        /// The backup file.
        file: std::path::PathBuf,
        #[command(flatten)]
        database: DatabaseArgs,
        #[command(flatten)]
        backup_key: BackupKeyArgs,
        /// The master key the restored database's servers will use, checked against the
        /// backup's data keys and sealed values before anything is stored.
        #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
        encryption_key: Option<String>,
    },
    /// Print a shell completion script (e.g. `tokenvault completions bash > /etc/bash_completion.d/tokenvault`).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `tokenvault man > tokenvault.1`; with `--out-dir`, write
    /// one page per command there (`tokenvault.1`, `tokenvault-serve.1`, …).
    Man {
        #[arg(long)]
        out_dir: Option<std::path::PathBuf>,
    },
    /// Ask a running server's GET /health: exit 0 on 200, else 1 (the image's health check).
    Health(cli::health::HealthArgs),
    /// Enter one share of the master key into a server started with --unseal-with-shares
    /// (POST /v1/admin/unseal, as a client holding `admin:vault`); prints where unsealing stands.
    Unseal(cli::unseal::UnsealArgs),
    /// Forward a test account's webhook deliveries to a local URL (like Stripe CLI's listen):
    /// subscribes through the running server, prints each delivery with the local receiver's
    /// status, and removes its subscription on ctrl-c or SIGTERM.
    Listen(cli::listen::ListenArgs),
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct BackupArgs {
    #[command(subcommand)]
    command: Option<BackupCommand>,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Where to write the backup (mode 0600; replaced only once the new one is complete).
    #[arg(long, short)]
    output: Option<std::path::PathBuf>,
    #[command(flatten)]
    backup_key: BackupKeyArgs,
}

#[derive(Subcommand)]
enum BackupCommand {
    /// Check a backup without restoring it: its checksum (no key needed); with the backup key,
    /// that every part opens and its counts are the header's; with the master key too, that the
    /// data keys and sealed values open. Prints the header as JSON; exits 1 on any fault.
    Verify {
        file: std::path::PathBuf,
        #[command(flatten)]
        backup_key: BackupKeyArgs,
        /// The master key (see `serve --help`); an SQLite database's key file holds it too.
        #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
        encryption_key: Option<String>,
    },
    /// Write a new random backup key (base64) to a file of mode 0600; refuses to overwrite one.
    /// Keep it apart from the database, the master key and the backups.
    NewKey {
        #[arg(long, short)]
        output: std::path::PathBuf,
    },
}

/// The key backups are sealed with: given, or read from a file.
#[derive(Args)]
struct BackupKeyArgs {
    /// Base64 of the 32-byte backup key.
    #[arg(long, env = "TOKENVAULT_BACKUP_KEY", hide_env_values = true, conflicts_with = "backup_key_file")]
    backup_key: Option<String>,
    /// A file holding the backup key (as `backup new-key` writes it).
    #[arg(long, env = "TOKENVAULT_BACKUP_KEY_FILE")]
    backup_key_file: Option<std::path::PathBuf>,
}

impl BackupKeyArgs {
    fn load(self) -> Result<Option<BackupKey>, String> {
        settings::backup_key(self.backup_key, self.backup_key_file).map_err(|e| e.to_string())
    }

    fn require(self) -> Result<BackupKey, String> {
        self.load()?.ok_or_else(|| "a backup key is needed: --backup-key-file or --backup-key".to_owned())
    }
}

#[derive(Subcommand)]
enum CardTokensCommand {
    /// Import card tokens from a JSON Lines file (one POST /v1/card-tokens body per line).
    /// Safe to interrupt and re-run: tokens already stored (same id or token) are skipped.
    /// Prints a JSON summary on stdout; exits 1 when any line was rejected.
    Import {
        /// The JSON Lines file.
        file: std::path::PathBuf,
        /// The account the tokens belong to.
        #[arg(long)]
        account: String,
        #[command(flatten)]
        database: DatabaseArgs,
        /// The card-token encryption key (see `serve --help`).
        #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
        encryption_key: Option<String>,
    },
}

#[derive(Args)]
struct DatabaseArgs {
    /// A TOML file of settings, as `serve --config` reads it; this command uses its `database_url`
    /// (and `encryption_key`), and flags and environment variables win over it.
    #[arg(long, env = "TOKENVAULT_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// `sqlite://PATH` (embedded) or `postgres://USER@HOST/DB` [default: sqlite://tokenvault.db];
    /// TLS to PostgreSQL as in libpq: `?sslmode=verify-full&sslrootcert=/path/ca.pem` (see README).
    #[arg(long, env = "TOKENVAULT_DATABASE_URL")]
    database_url: Option<String>,
}

impl DatabaseArgs {
    /// The database (and master key) as `serve` would find them: flag, environment, config file,
    /// default.
    fn resolve(self, encryption_key: Option<String>) -> Result<ServeConfig, String> {
        self.resolve_master(encryption_key, HsmArgs::default())
    }

    /// As [`DatabaseArgs::resolve`], with the master key possibly in an HSM.
    fn resolve_master(self, encryption_key: Option<String>, hsm: HsmArgs) -> Result<ServeConfig, String> {
        let file = self.config.as_deref().map(settings::read_file).transpose().map_err(|e| e.to_string())?;
        let mut given = settings::Given { database_url: self.database_url, encryption_key, ..Default::default() };
        hsm.give(&mut given);
        settings::resolve_database(given, file).map_err(|e| e.to_string())
    }

    /// For commands that only read: an SQLite database must exist already (a mistyped path is an
    /// error, never a new, empty database).
    fn existing(self) -> Result<DatabaseUrl, String> {
        existing(self.resolve(None)?.database_url)
    }
}

/// Where the master key is when it is inside an HSM, reached through PKCS#11.
#[derive(Args, Clone, Default)]
struct HsmArgs {
    /// The PKCS#11 module of the HSM holding the master key (e.g.
    /// /usr/lib/softhsm/libsofthsm2.so); instead of --encryption-key.
    #[arg(long, env = "TOKENVAULT_PKCS11_MODULE")]
    pkcs11_module: Option<std::path::PathBuf>,
    /// The label of the token holding the master key [default: tokenvault].
    #[arg(long, env = "TOKENVAULT_PKCS11_TOKEN")]
    pkcs11_token: Option<String>,
    /// The token's user PIN.
    #[arg(long, env = "TOKENVAULT_PKCS11_PIN", hide_env_values = true)]
    pkcs11_pin: Option<String>,
    /// The label of the master key within the token [default: tokenvault-master].
    #[arg(long, env = "TOKENVAULT_PKCS11_KEY_LABEL")]
    pkcs11_key_label: Option<String>,
}

impl HsmArgs {
    fn give(self, given: &mut settings::Given) {
        given.pkcs11_module = self.pkcs11_module;
        given.pkcs11_token = self.pkcs11_token;
        given.pkcs11_pin = self.pkcs11_pin;
        given.pkcs11_key_label = self.pkcs11_key_label;
    }
}

/// `keys rotate`, `keys reencrypt` and `keys list`: the data-key ring of the database.
async fn key_ring(action: cli::keys::Action, key: KeyArgs) -> Result<(), String> {
    let config = key.resolve()?;
    if matches!(action, cli::keys::Action::List) {
        existing(config.database_url.clone())?;
    }
    cli::keys::run(action, config).await
}

fn existing(database_url: DatabaseUrl) -> Result<DatabaseUrl, String> {
    match database_url.sqlite_path() {
        Some(path) if !path.is_file() => Err(format!(
            "there is no database at {} (check --database-url; this command does not create one)",
            path.display()
        )),
        _ => Ok(database_url),
    }
}

/// The settings of `serve` as flags and environment variables. Deliberately repetitive: each
/// field carries its own clap attribute (the boolean ones the same `0..=1` form, so that `--dev`
/// and `--dev=false` both work) and its help text, which is what `--help`, the man pages and the
/// completions show.
#[derive(Args)]
struct ServeArgs {
    /// A TOML file with any of the settings below (named as in the README's table); flags and
    /// environment variables win over it.
    #[arg(long, env = "TOKENVAULT_CONFIG")]
    config: Option<std::path::PathBuf>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "TOKENVAULT_LISTEN")]
    listen: Option<String>,
    /// `sqlite://PATH` (embedded) or `postgres://USER@HOST/DB` [default: sqlite://tokenvault.db].
    /// TLS to PostgreSQL as in libpq: `?sslmode=verify-full&sslrootcert=/path/ca.pem` (or
    /// `sslrootcert=system`); sslmode disable | prefer (default) | require | verify-ca | verify-full.
    #[arg(long, env = "TOKENVAULT_DATABASE_URL")]
    database_url: Option<String>,
    /// Base64 of a 32-byte key for card tokens at rest (generated beside an SQLite database when
    /// absent; required with PostgreSQL unless the master key is in an HSM or comes as shares).
    #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    #[command(flatten)]
    hsm: HsmArgs,
    /// Start sealed: the API answers 503 until enough shares of the master key (`tokenvault keys
    /// split`) are entered with `tokenvault unseal` [default: false].
    #[arg(
        long,
        env = "TOKENVAULT_UNSEAL_WITH_SHARES",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    unseal_with_shares: Option<bool>,
    /// Lifetime of issued access tokens, in seconds [default: 86400].
    #[arg(long, env = "TOKENVAULT_TOKEN_TTL")]
    token_ttl: Option<u64>,
    /// The `iss` claim of issued access tokens [default: tokenvault].
    #[arg(long, env = "TOKENVAULT_ISSUER")]
    issuer: Option<String>,
    /// The base URL clients reach this server at, e.g. https://vault.example.com behind a
    /// reverse proxy: session `url`s use it [default: http:// and the request's Host].
    #[arg(long, env = "TOKENVAULT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Database connections (PostgreSQL) or read connections (SQLite) [default: 8].
    #[arg(long, env = "TOKENVAULT_POOL_SIZE")]
    pool_size: Option<usize>,
    /// How long a request waits for a database connection (and a new connection may take to
    /// open) before it fails with 503, in milliseconds [default: 5000].
    #[arg(long, env = "TOKENVAULT_ACQUIRE_TIMEOUT_MS")]
    acquire_timeout_ms: Option<u64>,
    /// Print a ready client for test account T00000001 with every scope, a curl example, and
    /// load a small demo data set.
    #[arg(
        long,
        env = "TOKENVAULT_DEV",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    dev: Option<bool>,
    /// Token requests allowed per client id and minute, 429 beyond [default: 60].
    #[arg(long, env = "TOKENVAULT_TOKEN_RATE_LIMIT")]
    token_rate_limit: Option<u32>,
    /// API calls allowed per client and second, 429 beyond; 0 for no limit [default: 0].
    #[arg(long, env = "TOKENVAULT_RATE_LIMIT")]
    rate_limit: Option<u32>,
    /// Concurrent requests beyond which new ones are shed with 503 [default: 1024].
    #[arg(long, env = "TOKENVAULT_MAX_IN_FLIGHT")]
    max_in_flight: Option<usize>,
    /// Longest a request may run before it is answered 503, in milliseconds (a write it had
    /// started may still commit) [default: 30000].
    #[arg(long, env = "TOKENVAULT_REQUEST_TIMEOUT_MS")]
    request_timeout_ms: Option<u64>,
    /// Encrypt customer token values at rest, keeping type+value lookups (converts stored values
    /// at start; the database keeps it on from then) [default: false].
    #[arg(
        long,
        env = "TOKENVAULT_SEAL_TOKEN_VALUES",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    seal_token_values: Option<bool>,
    /// Concurrent requests from one client address beyond which its new ones are shed with 503 [default: 128].
    #[arg(long, env = "TOKENVAULT_MAX_IN_FLIGHT_PER_ADDRESS")]
    max_in_flight_per_address: Option<usize>,
    /// Longest a client may take to send a whole request body, in milliseconds; 408 beyond [default: 10000].
    #[arg(long, env = "TOKENVAULT_BODY_READ_TIMEOUT_MS")]
    body_read_timeout_ms: Option<u64>,
    /// Longest a client may take to send a request head once the server waits for one (also how long an idle kept-alive connection stays open), in milliseconds [default: 10000].
    #[arg(long, env = "TOKENVAULT_HEADER_READ_TIMEOUT_MS")]
    header_read_timeout_ms: Option<u64>,
    /// A connection that moves no byte for this long is closed, in milliseconds [default: 60000].
    #[arg(long, env = "TOKENVAULT_IDLE_TIMEOUT_MS")]
    idle_timeout_ms: Option<u64>,
    /// Connections held at once; beyond, new ones are answered 503 and closed [default: 4096].
    #[arg(long, env = "TOKENVAULT_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Connections held at once from one client address [default: 128].
    #[arg(long, env = "TOKENVAULT_MAX_CONNECTIONS_PER_ADDRESS")]
    max_connections_per_address: Option<usize>,
    /// Token requests allowed per second in all (every client id together), 429 beyond [default: 50].
    #[arg(long, env = "TOKENVAULT_TOKEN_ENDPOINT_RATE")]
    token_endpoint_rate: Option<u32>,
    /// Client-secret checks (Argon2id, ~19 MiB each) run at once; token requests beyond get 503 [default: cores - 1, at least 1].
    #[arg(long, env = "TOKENVAULT_CREDENTIAL_CHECKS")]
    credential_checks: Option<usize>,
    /// Let webhook subscriptions and deliveries reach loopback, private, link-local and other
    /// internal addresses, for local development only [default: false; true with --dev].
    #[arg(
        long,
        env = "TOKENVAULT_WEBHOOK_ALLOW_PRIVATE_TARGETS",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    webhook_allow_private_targets: Option<bool>,
    /// Attempts per webhook delivery before it is given up, with exponential back-off between them [default: 5, as Dintero].
    #[arg(long, env = "TOKENVAULT_WEBHOOK_MAX_ATTEMPTS")]
    webhook_max_attempts: Option<u32>,
    /// Webhook deliveries given up in a row after which their subscription is deleted, as Dintero does; 0 never deletes [default: 10].
    #[arg(long, env = "TOKENVAULT_WEBHOOK_DELETE_AFTER_FAILURES")]
    webhook_delete_after_failures: Option<u32>,
    /// How long finished webhook deliveries and their attempts are kept (deliveries API), in hours [default: 168].
    #[arg(long, env = "TOKENVAULT_WEBHOOK_RETENTION_HOURS")]
    webhook_retention_hours: Option<u64>,
    /// The `--dev` client's id [default: tokenvault-dev-T00000001].
    #[arg(long, env = "TOKENVAULT_DEV_CLIENT_ID")]
    dev_client_id: Option<String>,
    /// The `--dev` client's secret (at least 22 characters), so that a CI pipeline can pin the
    /// credentials [default: a new random one at every start].
    #[arg(long, env = "TOKENVAULT_DEV_CLIENT_SECRET", hide_env_values = true)]
    dev_client_secret: Option<String>,
    /// Take an encrypted backup into this directory every --backup-interval (run it on one
    /// instance of a PostgreSQL deployment) [default: none].
    #[arg(long, env = "TOKENVAULT_BACKUP_DIR")]
    backup_dir: Option<std::path::PathBuf>,
    /// Seconds between scheduled backups [default: 3600].
    #[arg(long, env = "TOKENVAULT_BACKUP_INTERVAL")]
    backup_interval: Option<u64>,
    /// Scheduled backups kept; older ones are removed [default: 168].
    #[arg(long, env = "TOKENVAULT_BACKUP_KEEP")]
    backup_keep: Option<usize>,
    /// Base64 of the key scheduled backups are sealed with (`tokenvault backup new-key`).
    #[arg(long, env = "TOKENVAULT_BACKUP_KEY", hide_env_values = true)]
    backup_key: Option<String>,
    /// A file holding the backup key.
    #[arg(long, env = "TOKENVAULT_BACKUP_KEY_FILE")]
    backup_key_file: Option<std::path::PathBuf>,
    /// Seconds between the audit chain checkpoints `serve` logs [default: 3600].
    #[arg(long, env = "TOKENVAULT_AUDIT_CHECKPOINT_INTERVAL")]
    audit_checkpoint_interval: Option<u64>,
    /// Record every API request of test accounts (T…) in the request journal, secrets redacted
    /// (`GET /v1/accounts/{aid}/sandbox/requests`, `tokenvault journal`) [default: true].
    #[arg(
        long,
        env = "TOKENVAULT_JOURNAL",
        num_args = 0..=1,
        default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    journal: Option<bool>,
    /// Journal entries kept per test account; older ones are pruned [default: 10000].
    #[arg(long, env = "TOKENVAULT_JOURNAL_MAX_ENTRIES")]
    journal_max_entries: Option<u64>,
    /// Hours a journal entry is kept [default: 24].
    #[arg(long, env = "TOKENVAULT_JOURNAL_MAX_AGE_HOURS")]
    journal_max_age_hours: Option<u64>,
    /// Requests recorded in the journal per second and server at most; beyond, they are counted
    /// in /metrics, not recorded [default: 500].
    #[arg(long, env = "TOKENVAULT_JOURNAL_MAX_PER_SECOND")]
    journal_max_per_second: Option<u32>,
}

impl ServeArgs {
    /// Layers these flags and variables over the config file over the defaults.
    fn resolve(self) -> Result<settings::Resolved, String> {
        let file = self.config.as_deref().map(settings::read_file).transpose().map_err(|e| e.to_string())?;
        let mut given = settings::Given {
            listen: self.listen,
            database_url: self.database_url,
            encryption_key: self.encryption_key,
            unseal_with_shares: self.unseal_with_shares,
            token_ttl: self.token_ttl,
            issuer: self.issuer,
            public_url: self.public_url,
            pool_size: self.pool_size,
            acquire_timeout_ms: self.acquire_timeout_ms,
            dev: self.dev,
            token_rate_limit: self.token_rate_limit,
            rate_limit: self.rate_limit,
            max_in_flight: self.max_in_flight,
            request_timeout_ms: self.request_timeout_ms,
            seal_token_values: self.seal_token_values,
            max_in_flight_per_address: self.max_in_flight_per_address,
            body_read_timeout_ms: self.body_read_timeout_ms,
            header_read_timeout_ms: self.header_read_timeout_ms,
            idle_timeout_ms: self.idle_timeout_ms,
            max_connections: self.max_connections,
            max_connections_per_address: self.max_connections_per_address,
            token_endpoint_rate: self.token_endpoint_rate,
            credential_checks: self.credential_checks,
            webhook_allow_private_targets: self.webhook_allow_private_targets,
            webhook_max_attempts: self.webhook_max_attempts,
            webhook_delete_after_failures: self.webhook_delete_after_failures,
            webhook_retention_hours: self.webhook_retention_hours,
            dev_client_id: self.dev_client_id,
            dev_client_secret: self.dev_client_secret,
            backup_dir: self.backup_dir,
            backup_interval: self.backup_interval,
            backup_keep: self.backup_keep,
            backup_key: self.backup_key,
            backup_key_file: self.backup_key_file,
            audit_checkpoint_interval: self.audit_checkpoint_interval,
            journal: self.journal,
            journal_max_entries: self.journal_max_entries,
            journal_max_age_hours: self.journal_max_age_hours,
            journal_max_per_second: self.journal_max_per_second,
            ..Default::default()
        };
        self.hsm.give(&mut given);
        settings::resolve(given, file).map_err(|e| e.to_string())
    }
}

#[derive(Subcommand)]
enum ClientsCommand {
    /// Create a client; prints {"client_id","client_secret","account_id","scopes"} on stdout.
    Create {
        /// The account the client acts for (`P…` production, `T…` test).
        #[arg(long)]
        account: String,
        /// Space-separated scopes, e.g. "admin:customers admin:checkout".
        #[arg(long)]
        scopes: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// List clients as JSON Lines: client_id, account_id, scopes, created_at (never a secret).
    List {
        /// Only this account's clients.
        #[arg(long)]
        account: Option<String>,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Revoke a client: it gets no more tokens, and every instance refuses the tokens it holds
    /// within seconds. Audited; prints the revoked client as one JSON object.
    Revoke {
        client_id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
    /// Give a client a new secret; the old secret and every token issued under it stop working
    /// within seconds. Audited; prints {"client_id","client_secret","account_id","scopes"}.
    RotateSecret {
        client_id: String,
        #[command(flatten)]
        database: DatabaseArgs,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Add a data key to the ring, then re-encrypt every card token and webhook secret under it
    /// while servers keep serving (they load the new key by themselves). Prints
    /// {"key_id","resealed","remaining"} on stdout; safe to interrupt: `keys reencrypt` finishes.
    Rotate {
        #[command(flatten)]
        key: KeyArgs,
        /// Seconds to wait between adding the key and re-encrypting, so that running servers
        /// (which reload the ring every 2 s) seal with the new key before the walk starts.
        #[arg(long, default_value_t = 5)]
        grace_seconds: u64,
    },
    /// Re-encrypt under the newest key every value still under an older one (finishes an
    /// interrupted rotation). Prints the same summary as `rotate`.
    Reencrypt {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// List the data keys as JSON Lines: id, created_at, created_by, active.
    List {
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Cut the master key (--encryption-key or the key file) into shares, any `threshold` of
    /// which rebuild it, written one per file (mode 0600) into a new directory. Hand each to
    /// another person, then start servers with --unseal-with-shares and no key.
    Split {
        #[command(flatten)]
        key: KeyArgs,
        /// Shares needed to rebuild the key.
        #[arg(long)]
        threshold: u8,
        /// Shares made.
        #[arg(long)]
        shares: u8,
        /// The directory to create for the share files.
        #[arg(long)]
        output_dir: std::path::PathBuf,
    },
    /// Make the master key inside the HSM (--pkcs11-*) unless it is there: AES-256, sensitive,
    /// never extractable. Prints what the token reports of it as JSON.
    HsmInit {
        #[command(flatten)]
        hsm: HsmArgs,
    },
    /// Re-wrap every key the database keeps under a new master key, in one transaction, beside
    /// running servers (which keep serving; restart them with the new key). Sealed values and
    /// fingerprints do not change. Prints {"from","to","data_keys","signing_keys"}.
    RotateMaster {
        #[command(flatten)]
        key: KeyArgs,
        /// The new master key's file (base64, as the SQLite key file): made with a random key
        /// (mode 0600) when it does not exist.
        #[arg(long, conflicts_with = "to_pkcs11", required_unless_present = "to_pkcs11")]
        new_key_file: Option<std::path::PathBuf>,
        /// Move the master key into the HSM the --pkcs11-* settings name (from --encryption-key
        /// or the key file).
        #[arg(long)]
        to_pkcs11: bool,
    },
}

/// The database and master key a key command works on.
#[derive(Args)]
struct KeyArgs {
    #[command(flatten)]
    database: DatabaseArgs,
    /// The master encryption key (see `serve --help`); an SQLite database's key file otherwise.
    #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    #[command(flatten)]
    hsm: HsmArgs,
    /// The master key rebuilt from these share files (as `keys split` wrote them; give as many as
    /// the threshold), for a database served with --unseal-with-shares.
    #[arg(long, conflicts_with = "encryption_key")]
    share_file: Vec<std::path::PathBuf>,
}

impl KeyArgs {
    fn resolve(self) -> Result<ServeConfig, String> {
        let mut config = self.database.resolve_master(self.encryption_key, self.hsm)?;
        if !self.share_file.is_empty() {
            let texts = self
                .share_file
                .iter()
                .map(|path| std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display())))
                .collect::<Result<Vec<_>, _>>()?;
            let key = tokenvault::service::keys::rebuild_master_key(&texts).map_err(|e| e.to_string())?;
            config.encryption_key = Some(settings::Secret(key));
            config.unseal_with_shares = false;
        }
        Ok(config)
    }
}

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true)]
struct AuditArgs {
    #[command(subcommand)]
    command: Option<AuditCommand>,
    /// Only this account's records.
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    database: DatabaseArgs,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Walk the audit trail's hash chain and name the first record that breaks it (edited,
    /// deleted, moved); with --checkpoint, also find a tail cut off after that checkpoint. Prints
    /// a JSON report; exits 1 when the chain is broken. Needs the master key.
    Verify {
        /// A checkpoint `{"position":N,"hash":"…"}` as `audit checkpoint` printed it (or
        /// `serve` logged it), or a file holding one.
        #[arg(long)]
        checkpoint: Option<String>,
        #[command(flatten)]
        key: KeyArgs,
    },
    /// Chain what is waiting and print the chain's head as JSON: a checkpoint to keep apart from
    /// the database. Needs the master key.
    Checkpoint {
        #[command(flatten)]
        key: KeyArgs,
    },
}

/// `TOKENVAULT_LOG` (default `info`), except that the PostgreSQL driver never logs below info:
/// at debug it logs every statement with its bound parameters (customer e-mails, phone numbers,
/// token values), and logs carry no customer data (SECURITY.md).
fn log_filter() -> EnvFilter {
    let filter = EnvFilter::try_from_env("TOKENVAULT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    ["tokio_postgres=info", "tokio_postgres::query=info", "tokio_postgres::prepare=info"]
        .into_iter()
        .fold(filter, |filter, directive| filter.add_directive(directive.parse().expect("a valid directive")))
}

fn main() -> ExitCode {
    app::configure_process();
    let cli = Cli::parse();
    // Colour codes only where a person reads them: never in files or log collectors.
    let logs = tracing_subscriber::fmt()
        .with_env_filter(log_filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    match cli.log_format {
        LogFormat::Pretty => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tokenvault: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("tokenvault: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Serve(args) => serve(args.resolve()?.config).await.map_err(|e| e.to_string()),
        Command::Config(args) => {
            let resolved = args.resolve()?;
            existing(resolved.config.database_url.clone())?;
            print!("{}", resolved.render());
            Ok(())
        }
        Command::Clients { command } => {
            let (action, database) = match command {
                ClientsCommand::Create { account, scopes, database } => {
                    let account = parse_account(&account)?;
                    let scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
                    tokenvault::auth::check_scopes(&scopes).map_err(|e| format!("--scopes: {e}"))?;
                    (cli::clients::Action::Create { account, scopes }, database)
                }
                ClientsCommand::List { account, database } => {
                    let account = account.as_deref().map(parse_account).transpose()?;
                    (cli::clients::Action::List { account }, database)
                }
                ClientsCommand::Revoke { client_id, database } => {
                    (cli::clients::Action::Revoke { client_id }, database)
                }
                ClientsCommand::RotateSecret { client_id, database } => {
                    (cli::clients::Action::RotateSecret { client_id }, database)
                }
            };
            let read_only = matches!(action, cli::clients::Action::List { .. });
            let database_url = if read_only { database.existing()? } else { database.resolve(None)?.database_url };
            cli::clients::run(action, &database_url).await
        }
        Command::CardTokens { command: CardTokensCommand::Import { file, account, database, encryption_key } } => {
            let account = parse_account(&account)?;
            import_file(&file, &account, database.resolve(encryption_key)?).await
        }
        Command::Seed { file, account, database, encryption_key } => {
            let account = parse_account(&account)?;
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let fixtures: seed::Fixtures =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let vault = app::open_vault(&database.resolve(encryption_key)?).await.map_err(|e| e.to_string())?;
            let summary = seed::load(&vault, &account, &fixtures).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tokenvault", &mut std::io::stdout());
            Ok(())
        }
        Command::Health(args) => cli::health::run(args).await,
        Command::Listen(args) => cli::listen::run(args).await,
        Command::Man { out_dir: None } => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(|e| e.to_string())
        }
        Command::Man { out_dir: Some(dir) } => {
            clap_mangen::generate_to(Cli::command(), &dir).map_err(|e| format!("{}: {e}", dir.display()))
        }
        Command::Audit(AuditArgs { command: Some(AuditCommand::Verify { checkpoint, key }), .. }) => {
            let config = key.database.resolve(key.encryption_key)?;
            existing(config.database_url.clone())?;
            cli::audit::verify(config, checkpoint.as_deref()).await
        }
        Command::Audit(AuditArgs { command: Some(AuditCommand::Checkpoint { key }), .. }) => {
            let config = key.database.resolve(key.encryption_key)?;
            existing(config.database_url.clone())?;
            cli::audit::checkpoint(config).await
        }
        Command::Audit(args) => {
            let account = args.account.as_deref().map(parse_account).transpose()?;
            let admin = app::open_admin(&args.database.existing()?).await.map_err(|e| e.to_string())?;
            admin
                .walk_audit(account.as_ref(), "cli:audit", |record| {
                    println!("{}", serde_json::to_string(record).map_err(|e| e.to_string())?);
                    Ok(())
                })
                .await
        }
        Command::Journal { account, follow, database } => {
            let account = parse_account(&account)?;
            cli::journal::run(&account, follow, &database.existing()?).await
        }
        Command::Keys { command } => match command {
            KeysCommand::Rotate { key, grace_seconds } => {
                key_ring(cli::keys::Action::Rotate { grace_seconds }, key).await
            }
            KeysCommand::Reencrypt { key } => key_ring(cli::keys::Action::Reencrypt, key).await,
            KeysCommand::List { key } => key_ring(cli::keys::Action::List, key).await,
            KeysCommand::HsmInit { hsm } => {
                cli::keys::hsm_init(&DatabaseArgs { config: None, database_url: None }.resolve_master(None, hsm)?)
            }
            KeysCommand::Split { key, threshold, shares, output_dir } => {
                cli::keys::split(&key.resolve()?, threshold, shares, &output_dir)
            }
            KeysCommand::RotateMaster { key, new_key_file, to_pkcs11 } => {
                cli::keys::rotate_master(key.resolve()?, new_key_file, to_pkcs11).await
            }
        },
        Command::Unseal(args) => cli::unseal::run(args).await,
        Command::Migrate { database } => {
            let target = database.resolve(None)?.database_url;
            let applied = app::migrate(&target).await.map_err(|e| e.to_string())?;
            if applied.is_empty() {
                eprintln!("{target}: schema up to date, nothing to apply");
            } else {
                for version in &applied {
                    eprintln!("{target}: applied migration {version}");
                }
            }
            Ok(())
        }
        Command::Backup(BackupArgs { command: Some(BackupCommand::NewKey { output }), .. }) => {
            cli::backup::new_key(&output)
        }
        Command::Backup(BackupArgs {
            command: Some(BackupCommand::Verify { file, backup_key, encryption_key }),
            ..
        }) => {
            let master = encryption_key.map(|key| MasterKey::Given(key.trim().to_owned()));
            cli::backup::verify(&file, backup_key.load()?.as_ref(), master.as_ref()).await
        }
        Command::Backup(BackupArgs { command: None, database, output, backup_key }) => {
            let output = output.ok_or("--output FILE is needed (where to write the backup)")?;
            let key = backup_key.require()?;
            cli::backup::take(&database.existing()?, &key, &output).await
        }
        Command::Restore { file, database, backup_key, encryption_key } => {
            let key = backup_key.require()?;
            cli::backup::restore(&file, &key, database.resolve(encryption_key)?).await
        }
        Command::Export { database, output } => export(&database.existing()?, &output).await,
        Command::Import { file, database, encryption_key } => {
            import_dataset(&file, database.resolve(encryption_key)?).await
        }
    }
}

pub(crate) fn parse_account(raw: &str) -> Result<AccountId, String> {
    AccountId::parse("--account", raw).map_err(|e| format!("--account {}", e.message))
}
