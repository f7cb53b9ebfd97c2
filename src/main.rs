//! The `tokenvault` command line: `serve`, `clients create`, `audit`.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use tokenvault::app::{self, StartupError};
use tokenvault::auth::clients;
use tokenvault::config::{self, ServeConfig};
use tokenvault::domain::AccountId;
use tracing_subscriber::EnvFilter;

/// A self-hostable server speaking Dintero's customer-token and card-token APIs.
#[derive(Parser)]
#[command(name = "tokenvault", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server.
    Serve(ServeArgs),
    /// Manage API clients.
    Clients {
        #[command(subcommand)]
        command: ClientsCommand,
    },
    /// Print the audit trail as JSON Lines, oldest first.
    Audit(AuditArgs),
}

#[derive(Args)]
struct DatabaseArgs {
    /// `sqlite://PATH` (embedded, the default) or `postgres://USER@HOST/DB`.
    #[arg(long, env = "TOKENVAULT_DATABASE_URL", default_value = config::DEFAULT_DATABASE_URL)]
    database_url: String,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "TOKENVAULT_LISTEN", default_value = config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Base64 of a 32-byte key for card tokens at rest (generated beside an SQLite database when
    /// absent; required with PostgreSQL).
    #[arg(long, env = "TOKENVAULT_ENCRYPTION_KEY", hide_env_values = true)]
    encryption_key: Option<String>,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, env = "TOKENVAULT_TOKEN_TTL", default_value_t = config::DEFAULT_TOKEN_TTL_SECONDS)]
    token_ttl: u64,
    /// The `iss` claim of issued access tokens.
    #[arg(long, env = "TOKENVAULT_ISSUER", default_value = config::DEFAULT_ISSUER)]
    issuer: String,
    /// Database connections (PostgreSQL) or read connections (SQLite).
    #[arg(long, env = "TOKENVAULT_POOL_SIZE", default_value_t = 8)]
    pool_size: usize,
    /// Print a ready client for test account T00000001 with every scope, and a curl example.
    #[arg(long, env = "TOKENVAULT_DEV")]
    dev: bool,
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
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("TOKENVAULT_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
        Command::Serve(args) => serve(args).await.map_err(|e| e.to_string()),
        Command::Clients { command: ClientsCommand::Create { account, scopes, database } } => {
            let account = AccountId::parse("--account", &account).map_err(|e| format!("--account {}", e.message))?;
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
        Command::Audit(args) => {
            let account = args
                .account
                .map(|a| AccountId::parse("--account", &a).map_err(|e| format!("--account {}", e.message)))
                .transpose()?;
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
    }
}

async fn serve(args: ServeArgs) -> Result<(), StartupError> {
    let mut config = ServeConfig::new(args.database.database_url);
    config.listen = args.listen;
    config.encryption_key = args.encryption_key;
    config.token_ttl_seconds = args.token_ttl;
    config.issuer = args.issuer;
    config.pool_size = args.pool_size.max(1);
    config.dev = args.dev;
    tracing::info!(?config, "starting tokenvault");

    let server = app::start(config.clone()).await?;
    tracing::info!(url = %server.url(), "tokenvault is listening");
    if config.dev {
        print_dev_client(&server).await?;
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within 30 s");
    }
    Ok(())
}

async fn print_dev_client(server: &app::RunningServer) -> Result<(), StartupError> {
    let account = AccountId::parse("account", DEV_ACCOUNT).expect("a valid account id");
    let scopes = ALL_SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let credentials = clients::store_client(server.store.as_ref(), DEV_CLIENT_ID.to_owned(), &account, scopes).await?;
    let url = server.url();
    println!(
        "\ntokenvault dev client for test account {DEV_ACCOUNT} (scopes: {scopes}):\n  client_id:     {id}\n  client_secret: {secret}\n\n\
         Try it:\n  TOKEN=$(curl -s -u '{id}:{secret}' -H 'content-type: application/json' \\\n    \
         -d '{{\"grant_type\":\"client_credentials\",\"audience\":\"{url}/v1/accounts/{DEV_ACCOUNT}\"}}' \\\n    \
         {url}/v1/accounts/{DEV_ACCOUNT}/auth/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" -H 'content-type: application/json' -d '{{\"customer_id\":\"c1\"}}' \\\n    \
         {url}/v1/accounts/{DEV_ACCOUNT}/customers/users\n",
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
