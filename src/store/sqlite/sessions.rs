//! Payment-token sessions (no card number or CVC ever reaches this file).

use async_trait::async_trait;
use rusqlite::{params, Connection, Row};

use super::sql::{self, account_col, json_col, json_opt_col, parsed_col, time_col};
use super::SqliteStore;
use crate::domain::session::PaymentTokenSession;
use crate::domain::AccountId;
use crate::store::{SessionStore, StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, status, session, token_provider, transaction_id, transaction_body, \
                       card_token_id, created_by, created_at, updated_at";

fn session_row(row: &Row<'_>) -> rusqlite::Result<PaymentTokenSession> {
    Ok(PaymentTokenSession {
        id: row.get(0)?,
        account_id: account_col(row, 1)?,
        status: parsed_col(row, 2)?,
        session: json_col(row, 3)?,
        token_provider: json_col(row, 4)?,
        transaction_id: row.get(5)?,
        transaction: json_opt_col(row, 6)?,
        card_token_id: row.get(7)?,
        created_by: row.get(8)?,
        created_at: time_col(row, 9)?,
        updated_at: time_col(row, 10)?,
    })
}

fn create(conn: &Connection, s: &PaymentTokenSession) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO payment_token_sessions (id, account_id, status, session, token_provider, created_by, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            s.id,
            s.account_id.as_str(),
            s.status.as_str(),
            sql::to_json(&s.session)?,
            sql::to_json(&s.token_provider)?,
            s.created_by,
            s.created_at.millis(),
            s.updated_at.millis(),
        ],
    )?;
    Ok(())
}

fn complete(conn: &Connection, s: &PaymentTokenSession) -> StoreResult<()> {
    let changed = sql::execute(
        conn,
        "UPDATE payment_token_sessions SET status = ?3, transaction_id = ?4, transaction_body = ?5, card_token_id = ?6,
                updated_at = ?7
         WHERE account_id = ?1 AND id = ?2 AND status = 'OPEN'",
        params![
            s.account_id.as_str(),
            s.id,
            s.status.as_str(),
            s.transaction_id,
            s.transaction.as_ref().map(sql::to_json).transpose()?,
            s.card_token_id,
            s.updated_at.millis(),
        ],
    )?;
    if changed == 0 {
        return Err(StoreError::Conflict(format!("session '{}' is already completed", s.id)));
    }
    Ok(())
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, session: &PaymentTokenSession) -> StoreResult<()> {
        let session = session.clone();
        self.writer.submit(move |conn| create(conn, &session)).await
    }

    async fn get_session(&self, account: &AccountId, id: &str) -> StoreResult<Option<PaymentTokenSession>> {
        let (account, id) = (account.as_str().to_owned(), id.to_owned());
        self.readers
            .read(move |conn| {
                sql::first(
                    conn,
                    &format!("SELECT {COLUMNS} FROM payment_token_sessions WHERE account_id = ?1 AND id = ?2"),
                    params![account, id],
                    session_row,
                )
            })
            .await
    }

    async fn get_session_by_transaction(
        &self,
        account: &AccountId,
        transaction_id: &str,
    ) -> StoreResult<Option<PaymentTokenSession>> {
        let (account, id) = (account.as_str().to_owned(), transaction_id.to_owned());
        self.readers
            .read(move |conn| {
                sql::first(
                    conn,
                    &format!(
                        "SELECT {COLUMNS} FROM payment_token_sessions WHERE account_id = ?1 AND transaction_id = ?2"
                    ),
                    params![account, id],
                    session_row,
                )
            })
            .await
    }

    async fn complete_session(&self, session: &PaymentTokenSession) -> StoreResult<()> {
        let session = session.clone();
        self.writer.submit(move |conn| complete(conn, &session)).await
    }
}
