//! `tokenvault clients`: create, list, revoke and rotate the secret of API clients.

use tokenvault::app;
use tokenvault::domain::AccountId;
use tokenvault::settings::DatabaseUrl;

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
pub async fn run(action: Action, database_url: &DatabaseUrl) -> Result<(), String> {
    let admin = app::open_admin(database_url).await.map_err(|e| e.to_string())?;
    let printed = match action {
        Action::Create { account, scopes } => {
            to_json(&admin.create_client(&account, scopes).await.map_err(|e| e.to_string())?)?
        }
        Action::List { account } => {
            let listed = admin.list_clients(account.as_ref()).await.map_err(|e| e.to_string())?;
            let lines: Result<Vec<String>, String> = listed.iter().map(to_json).collect();
            lines?.join("\n")
        }
        Action::Revoke { client_id } => {
            to_json(&admin.revoke_client(&client_id, REVOKE_ACTOR).await.map_err(|e| e.to_string())?)?
        }
        Action::RotateSecret { client_id } => {
            to_json(&admin.rotate_client_secret(&client_id, ROTATE_ACTOR).await.map_err(|e| e.to_string())?)?
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
