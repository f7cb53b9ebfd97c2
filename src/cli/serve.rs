//! `tokenvault serve`: run until SIGTERM or ctrl-c, then finish in-flight requests.

use std::time::Duration;

use tokenvault::app::{self, StartupError};
use tokenvault::auth::clients::ClientCredentials;
use tokenvault::auth::SCOPES;
use tokenvault::domain::AccountId;
use tokenvault::service::seed;
use tokenvault::settings::ServeConfig;

const DEV_ACCOUNT: &str = "T00000001";

/// Serves until SIGTERM or ctrl-c, then lets in-flight requests finish (at most 30 s).
pub async fn serve(config: ServeConfig) -> Result<(), StartupError> {
    tracing::info!(?config, "starting tokenvault");

    // Before the server listens: whoever waits for /health to use the dev client finds it.
    let dev_client = if config.dev { Some(prepare_dev_account(&config).await?) } else { None };
    let server = app::start(config.clone()).await?;
    tracing::info!(url = %server.url(), "tokenvault is listening");
    if let Some(credentials) = dev_client {
        print_dev_client(&server.url(), &credentials);
    }
    shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    if tokio::time::timeout(Duration::from_secs(30), server.shutdown()).await.is_err() {
        tracing::warn!("in-flight requests did not finish within 30 s");
    }
    Ok(())
}

/// The dev client (every scope tokenvault knows, for the test account `T00000001`, with the
/// configured id and secret) and the demo data.
async fn prepare_dev_account(config: &ServeConfig) -> Result<ClientCredentials, StartupError> {
    let account = AccountId::parse("account", DEV_ACCOUNT).expect("a valid account id");
    let scopes = SCOPES.iter().map(|s| (*s).to_owned()).collect();
    let secret = config.dev_client_secret.as_ref().map(|secret| secret.0.as_str());
    let vault = app::open_vault(config).await?;
    let credentials = vault.admin().store_client(config.dev_client_id.clone(), &account, scopes, secret).await?;
    let demo: seed::Fixtures = serde_json::from_str(seed::DEMO).expect("the embedded demo fixtures are valid");
    match seed::load(&vault, &account, &demo).await {
        Ok(summary) => tracing::info!(added = summary.added, "demo data loaded into {DEV_ACCOUNT}"),
        Err(error) => tracing::warn!(%error, "could not load the demo data"),
    }
    Ok(credentials)
}

/// The dev client's credentials and a curl example to start from, on stdout.
fn print_dev_client(url: &str, credentials: &ClientCredentials) {
    println!(
        "\ntokenvault dev client for test account {DEV_ACCOUNT} (scopes: {scopes}):\n  client_id:     {id}\n  client_secret: {secret}\n\n\
         Try it:\n  TOKEN=$(curl -s -u '{id}:{secret}' -H 'content-type: application/json' \\\n    \
         -d '{{\"grant_type\":\"client_credentials\",\"audience\":\"{url}/v1/accounts/{DEV_ACCOUNT}\"}}' \\\n    \
         {url}/v1/accounts/{DEV_ACCOUNT}/auth/token | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')\n  \
         curl -s -H \"Authorization: Bearer $TOKEN\" {url}/v1/accounts/{DEV_ACCOUNT}/customers/users/demo-ada/tokens\n",
        scopes = SCOPES.join(" "),
        id = credentials.client_id,
        secret = credentials.client_secret,
    );
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
