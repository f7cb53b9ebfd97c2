//! Payment-token sessions (no card number or CVC ever reaches this file).

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use serde_json::{Map, Value};
use tokio_postgres::Row;

use super::rows::{self, get};
use super::PostgresStore;
use crate::domain::session::PaymentTokenSession;
use crate::domain::{AccountId, Timestamp};
use crate::store::{SessionStore, StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, status, session, token_provider, transaction_id, transaction_body, \
                       card_token_id, created_by, created_at, updated_at";

fn object(row: &Row, column: &str) -> StoreResult<Option<Map<String, Value>>> {
    let Some(text) = get::<Option<&str>>(row, column)? else { return Ok(None) };
    serde_json::from_str(text).map(Some).map_err(|e| StoreError::Internal(format!("column {column}: {e}")))
}

fn session_row(row: &Row) -> StoreResult<PaymentTokenSession> {
    let status: &str = get(row, "status")?;
    Ok(PaymentTokenSession {
        id: get(row, "id")?,
        account_id: rows::account(row, "account_id")?,
        status: status.parse().map_err(|_| StoreError::Internal(format!("unexpected session status {status:?}")))?,
        session: object(row, "session")?.unwrap_or_default(),
        token_provider: object(row, "token_provider")?.unwrap_or_default(),
        transaction_id: get(row, "transaction_id")?,
        transaction: object(row, "transaction_body")?,
        card_token_id: get(row, "card_token_id")?,
        created_by: get(row, "created_by")?,
        created_at: Timestamp::from_millis(get(row, "created_at")?),
        updated_at: Timestamp::from_millis(get(row, "updated_at")?),
    })
}

async fn find(
    client: &impl GenericClient,
    account: &AccountId,
    column: &str,
    value: &str,
) -> StoreResult<Option<PaymentTokenSession>> {
    let sql = format!("SELECT {COLUMNS} FROM payment_token_sessions WHERE account_id = $1 AND {column} = $2");
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[&account.as_str(), &value]).await?;
    row.as_ref().map(session_row).transpose()
}

#[async_trait]
impl SessionStore for PostgresStore {
    async fn create_session(&self, s: &PaymentTokenSession) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "INSERT INTO payment_token_sessions (id, account_id, status, session, token_provider, created_by, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .await?;
            let (session, provider) = (rows::json_text(&s.session)?, rows::json_text(&s.token_provider)?);
            conn.execute(
                &statement,
                &[
                    &s.id,
                    &s.account_id.as_str(),
                    &s.status.as_str(),
                    &session,
                    &provider,
                    &s.created_by,
                    &s.created_at.millis(),
                    &s.updated_at.millis(),
                ],
            )
            .await?;
            Ok(())
        })
    }

    async fn get_session(&self, account: &AccountId, id: &str) -> StoreResult<Option<PaymentTokenSession>> {
        with_conn!(self, |conn| find(&conn, account, "id", id).await)
    }

    async fn get_session_by_transaction(
        &self,
        account: &AccountId,
        transaction_id: &str,
    ) -> StoreResult<Option<PaymentTokenSession>> {
        with_conn!(self, |conn| find(&conn, account, "transaction_id", transaction_id).await)
    }

    async fn complete_session(&self, s: &PaymentTokenSession) -> StoreResult<()> {
        with_conn!(self, |conn| {
            let statement = conn
                .prepare_cached(
                    "UPDATE payment_token_sessions SET status = $3, transaction_id = $4, transaction_body = $5, \
                     card_token_id = $6, updated_at = $7 WHERE account_id = $1 AND id = $2 AND status = 'OPEN'",
                )
                .await?;
            let transaction = s.transaction.as_ref().map(rows::json_text).transpose()?;
            let changed = conn
                .execute(
                    &statement,
                    &[
                        &s.account_id.as_str(),
                        &s.id,
                        &s.status.as_str(),
                        &s.transaction_id,
                        &transaction,
                        &s.card_token_id,
                        &s.updated_at.millis(),
                    ],
                )
                .await?;
            if changed == 0 {
                return Err(StoreError::Conflict(format!("session '{}' is already completed", s.id)));
            }
            Ok(())
        })
    }
}
