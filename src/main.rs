//! The `tokenvault` command line: `serve`, `migrate`, `clients create`, `card-tokens import`,
//! `audit`, `export`, `import`.

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};
use tokenvault::app::{self, StartupError};
use tokenvault::auth::clients;
use tokenvault::config::{self, ServeConfig};
use tokenvault::domain::AccountId;
use tokenvault::store::{self, dataset};
use tokenvault::transfer;
use tokenvault::{import, seed, settings};
use tracing_subscriber::EnvFilter;

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
    /// row as it was; fails unless the stored counts equal the export's header.
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
    /// Print a shell completion script (e.g. `tokenvault completions bash > /etc/bash_completion.d/tokenvault`).
    Completions { shell: clap_complete::Shell },
    /// Print the man page (roff), e.g. `tokenvault man > tokenvault.1`.
    Man,
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
    /// `sqlite://PATH` (embedded, the default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "TOKENVAULT_DATABASE_URL", default_value = config::DEFAULT_DATABASE_URL)]
    database_url: String,
}

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
    #[arg(long, env = "TOKENVAULT_DATABASE_URL")]
    database_url: Option<String>,
    /// Base64 of a 32-byte key for card tokens at rest (generated beside an SQLite database when
    /// absent; required with PostgreSQL).
    #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// Lifetime of issued access tokens, in seconds [default: 86400].
    #[arg(long, env = "TOKENVAULT_TOKEN_TTL")]
    token_ttl: Option<u64>,
    /// The `iss` claim of issued access tokens [default: tokenvault].
    #[arg(long, env = "TOKENVAULT_ISSUER")]
    issuer: Option<String>,
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
}

impl ServeArgs {
    /// Layers these flags and variables over the config file over the defaults.
    fn resolve(self) -> Result<settings::Resolved, String> {
        let file = self.config.as_deref().map(settings::read_file).transpose().map_err(|e| e.to_string())?;
        let given = settings::Given {
            listen: self.listen,
            database_url: self.database_url,
            encryption_key: self.encryption_key,
            token_ttl: self.token_ttl,
            issuer: self.issuer,
            pool_size: self.pool_size,
            acquire_timeout_ms: self.acquire_timeout_ms,
            dev: self.dev,
            token_rate_limit: self.token_rate_limit,
            rate_limit: self.rate_limit,
            max_in_flight: self.max_in_flight,
        };
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
}

#[derive(Args)]
struct AuditArgs {
    /// Only this account's records.
    #[arg(long)]
    account: Option<String>,
    #[command(flatten)]
    database: DatabaseArgs,
}

/// The dev client's fixed id: `serve --dev` gives it a fresh secret on every start.
const DEV_CLIENT_ID: &str = "tokenvault-dev-T00000001";
const DEV_ACCOUNT: &str = "T00000001";
const ALL_SCOPES: [&str; 2] = ["admin:customers", "admin:checkout"];

fn main() -> ExitCode {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TOKENVAULT_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr);
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
            print!("{}", args.resolve()?.render());
            Ok(())
        }
        Command::Clients { command: ClientsCommand::Create { account, scopes, database } } => {
            let account = parse_account(&account)?;
            let scopes: Vec<String> = scopes.split_whitespace().map(str::to_owned).collect();
            if scopes.is_empty() {
                return Err("--scopes must name at least one scope".to_owned());
            }
            let store = app::open_store(&ServeConfig::new(database.database_url)).await.map_err(|e| e.to_string())?;
            let credentials =
                clients::create_client(store.as_ref(), &account, scopes).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&credentials).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::CardTokens { command: CardTokensCommand::Import { file, account, database, encryption_key } } => {
            let account = parse_account(&account)?;
            import_file(&file, &account, database.database_url, encryption_key).await
        }
        Command::Seed { file, account, database, encryption_key } => {
            let account = parse_account(&account)?;
            let text = std::fs::read_to_string(&file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
            let fixtures: seed::Fixtures =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
            let mut config = ServeConfig::new(database.database_url);
            config.encryption_key = encryption_key;
            let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
            let cipher = app::load_cipher(&config).map_err(|e| e.to_string())?;
            let summary = seed::load(store.as_ref(), &cipher, &account, &fixtures).await.map_err(|e| e.to_string())?;
            println!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
            Ok(())
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "tokenvault", &mut std::io::stdout());
            Ok(())
        }
        Command::Man => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()).map_err(|e| e.to_string()),
        Command::Audit(args) => {
            let account = args.account.as_deref().map(parse_account).transpose()?;
            let store =
                app::open_store(&ServeConfig::new(args.database.database_url)).await.map_err(|e| e.to_string())?;
            let mut after = 0;
            loop {
                let records = store.list_audit(account.as_ref(), after, 500).await.map_err(|e| e.to_string())?;
                let Some(last) = records.last() else { break };
                after = last.seq;
                for record in &records {
                    println!("{}", serde_json::to_string(record).map_err(|e| e.to_string())?);
                }
            }
            Ok(())
        }
        Command::Migrate { database } => {
            let applied = store::migrate(&database.database_url).await.map_err(|e| e.to_string())?;
            let target = config::redact_url(&database.database_url);
            if applied.is_empty() {
                eprintln!("{target}: schema up to date, nothing to apply");
            } else {
                for version in &applied {
                    eprintln!("{target}: applied migration {version}");
                }
            }
            Ok(())
        }
        Command::Export { database, output } => export(&database.database_url, &output).await,
        Command::Import { file, database, encryption_key } => {
            import_dataset(&file, &database.database_url, encryption_key).await
        }
    }
}

/// A one-line progress bar on stderr, redrawn in place (only when stderr is a terminal).
struct ProgressBar {
    verb: &'static str,
    terminal: bool,
    drawn: bool,
}

impl ProgressBar {
    fn new(verb: &'static str) -> Self {
        use std::io::IsTerminal;
        Self { verb, terminal: std::io::stderr().is_terminal(), drawn: false }
    }

    fn draw(&mut self, progress: &transfer::Progress<'_>) {
        use std::io::Write;
        if !self.terminal {
            return;
        }
        let percent = (progress.done.min(progress.total) * 100).checked_div(progress.total).unwrap_or(100);
        eprint!(
            "\r[{:<40}] {percent:>3}%  {} {} of {} rows ({:<20})",
            "#".repeat(percent as usize * 40 / 100),
            self.verb,
            progress.done,
            progress.total,
            progress.table
        );
        let _ = std::io::stderr().flush();
        self.drawn = true;
    }

    fn finish(&self) {
        if self.drawn {
            eprintln!();
        }
    }
}

async fn export(database_url: &str, output: &str) -> Result<(), String> {
    let mut source = dataset::open(database_url).await.map_err(|e| e.to_string())?;
    let mut bar = ProgressBar::new("exported");
    let summary = if output == "-" {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        transfer::export(source.as_mut(), &mut out, |p| bar.draw(p)).await
    } else {
        let file = std::fs::File::create(output).map_err(|e| format!("cannot create {output}: {e}"))?;
        let mut out = std::io::BufWriter::new(file);
        transfer::export(source.as_mut(), &mut out, |p| bar.draw(p)).await
    };
    bar.finish();
    let summary = summary.map_err(|e| format!("export failed: {e}"))?;
    eprintln!("exported {} rows from {}: {}", summary.rows, config::redact_url(database_url), describe(&summary));
    Ok(())
}

async fn import_dataset(file: &str, database_url: &str, encryption_key: Option<String>) -> Result<(), String> {
    let input: Box<dyn std::io::BufRead> = if file == "-" {
        Box::new(std::io::BufReader::new(std::io::stdin()))
    } else {
        let opened = std::fs::File::open(file).map_err(|e| format!("cannot open {file}: {e}"))?;
        Box::new(std::io::BufReader::new(opened))
    };
    // The key to check the card tokens against: the given one, else an SQLite key file that
    // already exists (never create one here: it would hold a fresh, wrong key).
    let key_file = ServeConfig::new(database_url).sqlite_key_file();
    let cipher = match (&encryption_key, &key_file) {
        (Some(key), _) => Some(tokenvault::crypto::TokenCipher::from_base64(key).map_err(|e| e.to_string())?),
        (None, Some(path)) if path.exists() => {
            Some(tokenvault::crypto::TokenCipher::from_key_file(path).map_err(|e| e.to_string())?)
        }
        _ => None,
    };
    let mut destination = dataset::open(database_url).await.map_err(|e| e.to_string())?;
    let mut bar = ProgressBar::new("imported");
    let summary = transfer::import(destination.as_mut(), input, cipher.as_ref(), |p| bar.draw(p)).await;
    bar.finish();
    let summary = summary.map_err(|e| match e {
        transfer::TransferError::NotEmpty(_) | transfer::TransferError::Refused(_) => format!("import refused: {e}"),
        _ => format!(
            "import failed: {e}\n(batches stored before the failure stay in the destination: empty it — drop and \
             re-create the database, or delete the SQLite file — before importing again)"
        ),
    })?;
    eprintln!("imported {} rows into {}: {}", summary.rows, config::redact_url(database_url), describe(&summary));
    if cipher.is_none() && summary.tables.iter().any(|(table, rows)| table == "card_tokens" && *rows > 0) {
        match &key_file {
            Some(path) => eprintln!(
                "note: card tokens are encrypted with the source's key; write that key (base64, one line) to {} \
                 or pass it as --encryption-key before starting a server on this database",
                path.display()
            ),
            None => eprintln!(
                "note: card tokens are encrypted with the source's key; start the servers on this database with \
                 that --encryption-key"
            ),
        }
    }
    let tables: serde_json::Map<String, serde_json::Value> =
        summary.tables.iter().map(|(table, rows)| (table.clone(), (*rows).into())).collect();
    println!("{}", serde_json::json!({"rows": summary.rows, "tables": tables}));
    Ok(())
}

fn describe(summary: &transfer::Summary) -> String {
    summary.tables.iter().map(|(table, rows)| format!("{table} {rows}")).collect::<Vec<_>>().join(", ")
}

fn parse_account(raw: &str) -> Result<AccountId, String> {
    AccountId::parse("--account", raw).map_err(|e| format!("--account {}", e.message))
}

async fn import_file(
    path: &std::path::Path,
    account: &AccountId,
    database_url: String,
    encryption_key: Option<String>,
) -> Result<(), String> {
    use std::io::{IsTerminal, Write};

    let file = std::fs::File::open(path).map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0).max(1);
    let mut config = ServeConfig::new(database_url);
    config.encryption_key = encryption_key;
    let store = app::open_store(&config).await.map_err(|e| e.to_string())?;
    let cipher = app::load_cipher(&config).map_err(|e| e.to_string())?;
    let terminal = std::io::stderr().is_terminal();
    let summary = import::import_card_tokens(
        store.as_ref(),
        &cipher,
        account,
        std::io::BufReader::new(file),
        |rejected| eprintln!("{}:{}: {}", path.display(), rejected.line, rejected.message),
        |summary, bytes| {
            if terminal {
                let percent = (bytes.min(size) * 100) / size;
                eprint!(
                    "\r[{:<40}] {percent:>3}%  {} imported, {} already present, {} rejected",
                    "#".repeat((percent as usize * 40) / 100),
                    summary.imported,
                    summary.already_present,
                    summary.rejected
                );
                let _ = std::io::stderr().flush();
            }
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    if terminal {
        eprintln!();
    }
    eprintln!(
        "{} lines: {} imported, {} already present (skipped), {} rejected",
        summary.lines, summary.imported, summary.already_present, summary.rejected
    );
    println!("{}", serde_json::to_string(&summary).map_err(|e| e.to_string())?);
    if summary.rejected > 0 {
        return Err(format!("{} line(s) rejected", summary.rejected));
    }
    Ok(())
}

async fn serve(config: ServeConfig) -> Result<(), StartupError> {
    tracing::info!(?config, "starting tokenvault");

    let server = app::start(config.clone()).await?;
    tracing::info!(url = %server.url(), "tokenvault is listening");
    if config.dev {
        print_dev_client(&server, &config).await?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within 30 s");
    }
    Ok(())
}

async fn print_dev_client(server: &app::RunningServer, config: &ServeConfig) -> Result<(), StartupError> {
    let account = AccountId::parse("account", DEV_ACCOUNT).expect("a valid account id");
    let scopes = ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let credentials = clients::store_client(server.store.as_ref(), DEV_CLIENT_ID.to_owned(), &account, scopes).await?;
    let demo: seed::Fixtures = serde_json::from_str(seed::DEMO).expect("the embedded demo fixtures are valid");
    let cipher = app::load_cipher(config)?;
    match seed::load(server.store.as_ref(), &cipher, &account, &demo).await {
        Ok(summary) => tracing::info!(added = summary.added, "demo data loaded into {DEV_ACCOUNT}"),
        Err(error) => tracing::warn!(%error, "could not load the demo data"),
    }
    let url = server.url();
    println!(
        "\ntokenvault dev client for test account {DEV_ACCOUNT} (scopes: {scopes}):\n  client_id:     {id}\n  client_secret: {secret}\n\n\
         Try it:\n  TOKEN=$(curl -s -u '{id}:{secret}' -H 'content-type: application/json' \\\n    \
         -d '{{\"grant_type\":\"client_credentials\",\"audience\":\"{url}/v1/accounts/{DEV_ACCOUNT}\"}}' \\\n    \
         {url}/v1/accounts/{DEV_ACCOUNT}/auth/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" {url}/v1/accounts/{DEV_ACCOUNT}/customers/users/demo-ada/tokens\n",
        scopes = ALL_SCOPES.join(" "),
        id = credentials.client_id,
        secret = credentials.client_secret,
    );
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
