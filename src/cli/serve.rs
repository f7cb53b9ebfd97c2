//! `tokenvault serve`: run until SIGTERM or ctrl-c, then finish in-flight requests.

use std::time::Duration;

use tokenvault::app::{self, StartupError};
use tokenvault::domain::AccountId;
use tokenvault::service::seed;
use tokenvault::settings::ServeConfig;

/// The dev client's fixed id: `serve --dev` gives it a fresh secret on every start.
const DEV_CLIENT_ID: &str = "tokenvault-dev-T00000001";
const DEV_ACCOUNT: &str = "T00000001";
const ALL_SCOPES: [&str; 2] = ["admin:customers", "admin:checkout"];

/// Serves until SIGTERM or ctrl-c, then lets in-flight requests finish (at most 30 s).
pub async fn serve(config: ServeConfig) -> Result<(), StartupError> {
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
    let credentials = server.vault.admin().store_client(DEV_CLIENT_ID.to_owned(), &account, scopes).await?;
    let demo: seed::Fixtures = serde_json::from_str(seed::DEMO).expect("the embedded demo fixtures are valid");
    match seed::load(&server.vault, &account, &demo).await {
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
