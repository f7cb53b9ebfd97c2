//! `tokenvault clients`: create, list, revoke and rotate the secret of API clients.

use tokenvault::app;
use tokenvault::auth::clients;
use tokenvault::config::ServeConfig;
use tokenvault::domain::AccountId;

/// Who the audit trail names for a change made from the command line.
const REVOKE_ACTOR: &str = "cli:clients revoke";
const ROTATE_ACTOR: &str = "cli:clients rotate-secret";

pub enum Action {
    Create { account: AccountId, scopes: Vec<String> },
    List { account: Option<AccountId> },
    Revoke { client_id: String },
    RotateSecret { client_id: String },
}

/// Runs one `clients` command and prints its JSON on stdout (one object, or one per line for
/// `list`).
pub async fn run(action: Action, database_url: String) -> Result<(), String> {
    let store = app::open_store(&ServeConfig::new(database_url)).await.map_err(|e| e.to_string())?;
    let store = store.as_ref();
    let printed = match action {
        Action::Create { account, scopes } => {
            to_json(&clients::create_client(store, &account, scopes).await.map_err(|e| e.to_string())?)?
        }
        Action::List { account } => {
            let listed = clients::list_clients(store, account.as_ref()).await.map_err(|e| e.to_string())?;
            let lines: Result<Vec<String>, String> = listed.iter().map(to_json).collect();
            lines?.join("\n")
        }
        Action::Revoke { client_id } => {
            to_json(&clients::revoke_client(store, &client_id, REVOKE_ACTOR).await.map_err(|e| e.to_string())?)?
        }
        Action::RotateSecret { client_id } => {
            to_json(&clients::rotate_secret(store, &client_id, ROTATE_ACTOR).await.map_err(|e| e.to_string())?)?
        }
    };
    if !printed.is_empty() {
        println!("{printed}");
    }
    Ok(())
}

fn to_json(value: &impl serde::Serialize) -> Result<String, String> {
    serde_json::to_string(value).map_err(|e| e.to_string())
}
