//! Customers and their tokens.

use async_trait::async_trait;
use rusqlite::types::Value;
use rusqlite::{params, Connection, Row};
use serde_json::Map;

use super::sql::{self, json_col, json_opt_col, text, time_col, time_opt_col, uuid_col, Where};
use super::{token_events, SqliteStore};
use crate::domain::audit::NewAuditRecord;
use crate::domain::customer::{
    customer_id_change_entry, with_customer_id_change, Customer, CustomerFilter, CustomerKeys, CustomerUpdate,
    NewCustomer,
};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::token_event::TokenTypeValue;
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{CustomerStore, Duplicate, StoreError, StoreResult};

const CUSTOMER_COLUMNS: &str =
    "c.id, c.customer_id, c.attributes, c.created_at, c.created_by, c.updated_at, c.deleted_at, c.deleted_by";
const TOKEN_COLUMNS: &str =
    "t.token_type, t.value, t.id, t.created_at, t.created_by, t.updated_at, t.deleted_by, t.deleted_at, t.token_id, t.metadata";

fn customer_row(row: &Row<'_>) -> rusqlite::Result<Customer> {
    Ok(Customer {
        id: uuid_col(row, 0)?,
        customer_id: row.get(1)?,
        attributes: json_col(row, 2)?,
        created_at: time_col(row, 3)?,
        created_by: row.get(4)?,
        updated_at: time_col(row, 5)?,
        deleted_at: time_opt_col(row, 6)?,
        deleted_by: row.get(7)?,
    })
}

fn token_row(row: &Row<'_>) -> rusqlite::Result<CustomerToken> {
    Ok(CustomerToken {
        token_type: row.get(0)?,
        value: row.get(1)?,
        id: uuid_col(row, 2)?,
        created_at: time_col(row, 3)?,
        created_by: row.get(4)?,
        updated_at: time_col(row, 5)?,
        deleted_by: row.get(6)?,
        deleted_at: time_opt_col(row, 7)?,
        token_id: row.get(8)?,
        metadata: json_opt_col(row, 9)?,
    })
}

/// The live customer with this `customer_id`, with its `seq`.
fn live_customer(conn: &Connection, account: &AccountId, customer_id: &str) -> StoreResult<Option<(i64, Customer)>> {
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS}, c.seq FROM customers c
         WHERE c.account_id = ?1 AND c.customer_id = ?2 AND c.deleted_at IS NULL"
    );
    sql::first(conn, &sql, params![account.as_str(), customer_id], |row| Ok((row.get(8)?, customer_row(row)?)))
}

fn require_customer(conn: &Connection, account: &AccountId, customer_id: &str) -> StoreResult<(i64, Customer)> {
    live_customer(conn, account, customer_id)?.ok_or(StoreError::NotFound("customer"))
}

/// Only the `seq` of the live customer: answered by the index customers_seq_by_customer_id alone
/// (migration 0007), without reading the customer's row, which at 1M customers is a page at a
/// random place of the table for every token list.
fn require_customer_seq(conn: &Connection, account: &AccountId, customer_id: &str) -> StoreResult<i64> {
    sql::first(
        conn,
        "SELECT seq FROM customers WHERE account_id = ?1 AND customer_id = ?2 AND deleted_at IS NULL",
        params![account.as_str(), customer_id],
        |row| row.get(0),
    )?
    .ok_or(StoreError::NotFound("customer"))
}

fn create_customer(conn: &Connection, account: &AccountId, new: &NewCustomer) -> StoreResult<Customer> {
    let aid = account.as_str();
    let live = "SELECT 1 FROM customers WHERE account_id = ?1 AND deleted_at IS NULL";
    if sql::exists(conn, &format!("{live} AND customer_id = ?2"), params![aid, new.customer_id])? {
        return Err(StoreError::Duplicate(
            Duplicate::CustomerId,
            format!("a customer with customer_id '{}' already exists", new.customer_id),
        ));
    }
    if let Some(email) = &new.email_key {
        if sql::exists(
            conn,
            &format!("{live} AND customer_type = ?2 AND email_key = ?3"),
            params![aid, new.customer_type, email],
        )? {
            return Err(StoreError::Duplicate(Duplicate::Email, "a customer with this email already exists".into()));
        }
    }
    if let Some(phone) = &new.phone_number {
        if sql::exists(conn, &format!("{live} AND phone_number = ?2"), params![aid, phone])? {
            return Err(StoreError::Duplicate(
                Duplicate::PhoneNumber,
                "a customer with this phone_number already exists".into(),
            ));
        }
    }
    sql::execute(
        conn,
        "INSERT INTO customers (id, account_id, customer_id, customer_type, email_key, phone_number, name_key,
                                attributes, created_at, created_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?9)",
        params![
            new.id.to_string(),
            aid,
            new.customer_id,
            new.customer_type,
            new.email_key,
            new.phone_number,
            new.name_key,
            sql::to_json(&new.attributes)?,
            new.created_at.millis(),
            new.created_by,
        ],
    )?;
    // The customer's `seq`, read before the audit insert takes over last_insert_rowid.
    let seq = conn.last_insert_rowid();
    sql::audit(conn, &NewAuditRecord::customer_created(account, new))?;
    add_auto_tokens(conn, account, seq, &new.customer_id, &new.auto_tokens)?;
    Ok(Customer {
        id: new.id,
        customer_id: new.customer_id.clone(),
        attributes: new.attributes.clone(),
        created_at: new.created_at,
        created_by: new.created_by.clone(),
        updated_at: new.created_at,
        deleted_at: None,
        deleted_by: None,
    })
}

pub(super) fn list_customers(
    conn: &Connection,
    account: &AccountId,
    filter: &CustomerFilter,
    page: &PageRequest,
) -> StoreResult<Page<Customer>> {
    let aid = account.as_str();
    let mut query = Where::new("c.account_id = ?", [text(aid)]);
    if let Some((token_type, value)) = &filter.token {
        query.and(
            "EXISTS (SELECT 1 FROM customer_tokens t WHERE t.customer_seq = c.seq AND t.account_id = c.account_id
                     AND t.token_type = ? AND t.value = ? AND t.deleted_at IS NULL)",
            [text(token_type), text(value)],
        );
    }
    if let Some(prefix) = &filter.email_prefix {
        query.and("c.email_key LIKE ? ESCAPE '\\'", [Value::Text(sql::like_prefix(prefix))]);
    }
    if let Some(prefix) = &filter.phone_number_prefix {
        query.and("c.phone_number LIKE ? ESCAPE '\\'", [Value::Text(sql::like_prefix(prefix))]);
    }
    match &filter.customer_type {
        Some(customer_type) => query.and("c.customer_type = ?", [text(customer_type)]),
        None if !filter.all_types => query.and("c.customer_type <> 'contact'", []),
        None => {}
    }
    if !filter.include_deleted {
        query.and("c.deleted_at IS NULL", []);
    }
    if let Some(search) = &filter.search {
        // Prefixes: of the customer_id and phone number as given, of the lower-cased e-mail, and
        // of the lower-cased name or any word in it.
        let lower = sql::like_prefix(&search.lower);
        query.and(
            "(substr(c.customer_id, 1, ?) = ? OR c.phone_number LIKE ? ESCAPE '\\' OR c.email_key LIKE ? ESCAPE '\\'
              OR c.name_key LIKE ? ESCAPE '\\' OR c.name_key LIKE ? ESCAPE '\\')",
            [
                Value::Integer(search.exact.chars().count() as i64),
                text(&search.exact),
                Value::Text(sql::like_prefix(&search.exact)),
                Value::Text(lower.clone()),
                Value::Text(lower.clone()),
                Value::Text(format!("% {lower}")),
            ],
        );
    }
    if let Some(since) = filter.since {
        query.and("c.updated_at >= ?", [Value::Integer(since.millis())]);
    }
    if filter.tag_id.is_some() {
        // No customer has tags in tokenvault (see CustomerFilter::tag_id).
        query.and("0 = 1", []);
    }
    for attribute in &filter.attributes {
        match &attribute.value {
            None => query.and(
                "EXISTS (SELECT 1 FROM json_each(c.attributes, '$.attributes') a WHERE a.key = ?)",
                [text(&attribute.key)],
            ),
            Some(value) => query.and(
                &format!(
                    "EXISTS (SELECT 1 FROM json_each(c.attributes, '$.attributes') a WHERE a.key = ?
                     AND ({} = ? OR (a.type = 'array' AND EXISTS (SELECT 1 FROM json_each(a.value) e WHERE {} = ?))))",
                    attribute_text("a"),
                    attribute_text("e"),
                ),
                [text(&attribute.key), text(value), text(value)],
            ),
        }
    }
    let after = match &page.starting_after {
        Some(cursor) => {
            let (seq, updated_at): (i64, i64) = sql::first(
                conn,
                "SELECT seq, updated_at FROM customers WHERE account_id = ?1 AND id = ?2",
                params![aid, cursor],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?
            .ok_or(StoreError::UnknownCursor)?;
            Some(match filter.since {
                Some(_) => ("(c.updated_at, c.seq) > (?, ?)", vec![Value::Integer(updated_at), Value::Integer(seq)]),
                None => ("c.seq > ?", vec![Value::Integer(seq)]),
            })
        }
        None => None,
    };
    let order_by = if filter.since.is_some() { "c.updated_at, c.seq" } else { "c.seq" };
    sql::keyset_page(conn, CUSTOMER_COLUMNS, "customers c", &query, after, order_by, page, customer_row)
}

/// The text an attribute filter value is compared with, for a `json_each` row `row`: a string
/// itself, a number or boolean as its JSON text, nothing for other JSON (so only arrays' elements
/// are looked into).
fn attribute_text(row: &str) -> String {
    format!(
        "(CASE {row}.type WHEN 'text' THEN {row}.value WHEN 'integer' THEN CAST({row}.value AS TEXT)
          WHEN 'real' THEN CAST({row}.value AS TEXT) WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' END)"
    )
}

fn delete_customer(
    conn: &Connection,
    account: &AccountId,
    customer_id: &str,
    delete_tokens: bool,
    actor: &str,
    at: Timestamp,
) -> StoreResult<Customer> {
    let (seq, customer) = require_customer(conn, account, customer_id)?;
    let mut deleted_tokens = Vec::new();
    if delete_tokens {
        deleted_tokens = sql::rows(
            conn,
            "SELECT id FROM customer_tokens WHERE customer_seq = ?1 AND deleted_at IS NULL ORDER BY seq",
            [seq],
            |r| r.get::<_, String>(0),
        )?;
        sql::execute(
            conn,
            "UPDATE customer_tokens SET deleted_at = ?2, deleted_by = ?3, updated_at = ?2
             WHERE customer_seq = ?1 AND deleted_at IS NULL",
            params![seq, at.millis(), actor],
        )?;
    }
    sql::execute(
        conn,
        // CustomerResponse requires `type`: a deleted customer keeps it (and only it).
        "UPDATE customers SET attributes = json_object('type', customer_type), email_key = NULL, phone_number = NULL,
                              name_key = NULL, updated_at = ?2, deleted_at = ?2, deleted_by = ?3
         WHERE seq = ?1",
        params![seq, at.millis(), actor],
    )?;
    sql::audit(conn, &NewAuditRecord::customer_deleted(account, &customer, &deleted_tokens, actor, at))?;
    let kept: Map<String, serde_json::Value> =
        customer.attributes.get("type").map(|t| ("type".to_owned(), t.clone())).into_iter().collect();
    Ok(Customer {
        attributes: kept,
        updated_at: at,
        deleted_at: Some(at),
        deleted_by: Some(actor.to_owned()),
        ..customer
    })
}

fn create_token(
    conn: &Connection,
    account: &AccountId,
    customer_id: &str,
    new: &NewCustomerToken,
    delete_token_events: bool,
) -> StoreResult<CustomerToken> {
    let (customer_seq, _) = require_customer(conn, account, customer_id)?;
    if sql::exists(
        conn,
        "SELECT 1 FROM customer_tokens WHERE customer_seq = ?1 AND token_id = ?2 AND deleted_at IS NULL",
        params![customer_seq, new.token_id],
    )? {
        return Err(StoreError::Duplicate(
            Duplicate::TokenId,
            format!("a live token with token_id '{}' already exists for this customer", new.token_id),
        ));
    }
    if live_token_by_value(conn, account, &new.token_type, &new.value)?.is_some() {
        return Err(StoreError::Duplicate(
            Duplicate::TokenTypeValue,
            "a live token with this type and value already belongs to a customer".into(),
        ));
    }
    let events_deleted = if delete_token_events {
        token_events::remove_entry(conn, account, &new.token_type, &new.value, new.created_at)?
            .map_or(0, |(_, deleted)| deleted)
    } else {
        0
    };
    insert_token(conn, account, customer_seq, customer_id, new, delete_token_events, events_deleted)
}

/// Stores a token of the customer (`customer_seq`) that the caller checked, with its audit record.
fn insert_token(
    conn: &Connection,
    account: &AccountId,
    customer_seq: i64,
    customer_id: &str,
    new: &NewCustomerToken,
    delete_token_events: bool,
    events_deleted: u64,
) -> StoreResult<CustomerToken> {
    let aid = account.as_str();
    sql::execute(
        conn,
        "INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, metadata,
                                      created_at, created_by, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?8)",
        params![
            new.id.to_string(),
            aid,
            customer_seq,
            new.token_id,
            new.token_type,
            new.value,
            sql::to_json_opt(new.metadata.as_ref())?,
            new.created_at.millis(),
            new.created_by,
        ],
    )?;
    // Added to a customer: the type/value's id is fixed from now on (TokenDetail.id).
    let type_value = TokenTypeValue { token_type: new.token_type.clone(), value: new.value.clone() };
    token_events::ensure_entry_with_id(conn, account, &type_value, new.id, new.created_at)?;
    sql::audit(
        conn,
        &NewAuditRecord::customer_token_created(account, customer_id, new, delete_token_events, events_deleted),
    )?;
    Ok(CustomerToken {
        token_type: new.token_type.clone(),
        value: new.value.clone(),
        id: new.id,
        created_at: new.created_at,
        created_by: new.created_by.clone(),
        updated_at: new.created_at,
        deleted_by: None,
        deleted_at: None,
        token_id: new.token_id.clone(),
        metadata: new.metadata.clone(),
    })
}

pub(super) fn list_tokens(
    conn: &Connection,
    account: &AccountId,
    customer_id: &str,
    filter: &CustomerTokenFilter,
    page: &PageRequest,
) -> StoreResult<Page<CustomerToken>> {
    let customer_seq = require_customer_seq(conn, account, customer_id)?;
    let mut query = Where::new("t.customer_seq = ?", [Value::Integer(customer_seq)]);
    if let Some(token_type) = &filter.token_type {
        query.and("t.token_type = ?", [text(token_type)]);
    }
    if !filter.include_deleted {
        query.and("t.deleted_at IS NULL", []);
    }
    let after = match &page.starting_after {
        Some(cursor) => {
            let seq = sql::cursor_seq(
                conn,
                "SELECT seq FROM customer_tokens WHERE customer_seq = ?1 AND id = ?2",
                params![customer_seq, cursor],
            )?;
            Some(("t.seq > ?", vec![Value::Integer(seq)]))
        }
        None => None,
    };
    sql::keyset_page(conn, TOKEN_COLUMNS, "customer_tokens t", &query, after, "t.seq", page, token_row)
}

pub(super) fn delete_token(
    conn: &Connection,
    account: &AccountId,
    customer_id: &str,
    token_id: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<CustomerToken> {
    let (customer_seq, customer) = require_customer(conn, account, customer_id)?;
    // The live one if any (at most one, found through the live token_id index), else the latest
    // deleted one (a walk over the customer's tokens, only for a repeated delete).
    let live = format!(
        "SELECT {TOKEN_COLUMNS}, t.seq FROM customer_tokens t
         WHERE t.customer_seq = ?1 AND t.token_id = ?2 AND t.deleted_at IS NULL"
    );
    let latest_deleted = format!(
        "SELECT {TOKEN_COLUMNS}, t.seq FROM customer_tokens t WHERE t.customer_seq = ?1 AND t.token_id = ?2
         ORDER BY t.seq DESC LIMIT 1"
    );
    let with_seq = |row: &rusqlite::Row<'_>| Ok((row.get::<_, i64>(10)?, token_row(row)?));
    let found = match sql::first(conn, &live, params![customer_seq, token_id], with_seq)? {
        Some(found) => Some(found),
        None => sql::first(conn, &latest_deleted, params![customer_seq, token_id], with_seq)?,
    };
    let (seq, token) = found.ok_or(StoreError::NotFound("token"))?;
    if token.is_deleted() {
        return Ok(token);
    }
    sql::execute(
        conn,
        "UPDATE customer_tokens SET deleted_at = ?2, deleted_by = ?3, updated_at = ?2 WHERE seq = ?1",
        params![seq, at.millis(), actor],
    )?;
    sql::audit(conn, &NewAuditRecord::customer_token_deleted(account, &customer.customer_id, &token, actor, at))?;
    Ok(CustomerToken { updated_at: at, deleted_at: Some(at), deleted_by: Some(actor.to_owned()), ..token })
}

/// Adds the customer's auto tokens, leaving out one whose type/value is already live (on another
/// customer, or on this one) or whose `token_id` the customer already uses.
fn add_auto_tokens(
    conn: &Connection,
    account: &AccountId,
    customer_seq: i64,
    customer_id: &str,
    tokens: &[NewCustomerToken],
) -> StoreResult<()> {
    for token in tokens {
        let taken = live_token_by_value(conn, account, &token.token_type, &token.value)?.is_some()
            || sql::exists(
                conn,
                "SELECT 1 FROM customer_tokens WHERE customer_seq = ?1 AND token_id = ?2 AND deleted_at IS NULL",
                params![customer_seq, token.token_id],
            )?;
        if !taken {
            insert_token(conn, account, customer_seq, customer_id, token, false, 0)?;
        }
    }
    Ok(())
}

/// Deletes the customer's live tokens with these `token_id`s (auto tokens a change replaces).
fn retire_tokens(
    conn: &Connection,
    account: &AccountId,
    customer_seq: i64,
    customer_id: &str,
    token_ids: &[String],
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let live = format!(
        "SELECT {TOKEN_COLUMNS}, t.seq FROM customer_tokens t
         WHERE t.customer_seq = ?1 AND t.token_id = ?2 AND t.deleted_at IS NULL"
    );
    for token_id in token_ids {
        let found = sql::first(conn, &live, params![customer_seq, token_id], |row| {
            Ok((row.get::<_, i64>(10)?, token_row(row)?))
        })?;
        if let Some((seq, token)) = found {
            sql::execute(
                conn,
                "UPDATE customer_tokens SET deleted_at = ?2, deleted_by = ?3, updated_at = ?2 WHERE seq = ?1",
                params![seq, at.millis(), actor],
            )?;
            sql::audit(conn, &NewAuditRecord::customer_token_deleted(account, customer_id, &token, actor, at))?;
        }
    }
    Ok(())
}

fn update_customer(
    conn: &Connection,
    account: &AccountId,
    customer_id: &str,
    update: &CustomerUpdate,
) -> StoreResult<Customer> {
    let aid = account.as_str();
    let (seq, customer) = require_customer(conn, account, customer_id)?;
    let attributes = update.apply(&customer.attributes);
    let keys = CustomerKeys::of(&attributes);
    let others = "SELECT 1 FROM customers WHERE account_id = ?1 AND deleted_at IS NULL AND seq <> ?2";
    if let Some(email) = &keys.email_key {
        if sql::exists(
            conn,
            &format!("{others} AND customer_type = ?3 AND email_key = ?4"),
            params![aid, seq, keys.customer_type, email],
        )? {
            return Err(StoreError::Duplicate(Duplicate::Email, "a customer with this email already exists".into()));
        }
    }
    if let Some(phone) = &keys.phone_number {
        if sql::exists(conn, &format!("{others} AND phone_number = ?3"), params![aid, seq, phone])? {
            return Err(StoreError::Duplicate(
                Duplicate::PhoneNumber,
                "a customer with this phone_number already exists".into(),
            ));
        }
    }
    let at = update.updated_at;
    sql::execute(
        conn,
        "UPDATE customers SET attributes = ?2, customer_type = ?3, email_key = ?4, phone_number = ?5, name_key = ?6,
                              updated_at = ?7
         WHERE seq = ?1",
        params![
            seq,
            sql::to_json(&attributes)?,
            keys.customer_type,
            keys.email_key,
            keys.phone_number,
            keys.name_key,
            at.millis()
        ],
    )?;
    sql::audit(conn, &NewAuditRecord::customer_updated(account, &customer, update))?;
    retire_tokens(conn, account, seq, customer_id, &update.retired_auto_tokens, &update.updated_by, at)?;
    add_auto_tokens(conn, account, seq, customer_id, &update.auto_tokens)?;
    Ok(Customer { attributes, updated_at: at, ..customer })
}

fn change_customer_id(
    conn: &Connection,
    account: &AccountId,
    customer_id: &str,
    new_customer_id: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<Customer> {
    let aid = account.as_str();
    let (seq, customer) = require_customer(conn, account, customer_id)?;
    if sql::exists(
        conn,
        "SELECT 1 FROM customers WHERE account_id = ?1 AND customer_id = ?2 AND deleted_at IS NULL",
        params![aid, new_customer_id],
    )? {
        return Err(StoreError::Duplicate(
            Duplicate::CustomerId,
            format!("a customer with customer_id '{new_customer_id}' already exists"),
        ));
    }
    let entry = customer_id_change_entry(customer_id, new_customer_id, actor, at);
    let attributes = with_customer_id_change(&customer.attributes, entry);
    sql::execute(
        conn,
        "UPDATE customers SET customer_id = ?2, attributes = ?3, updated_at = ?4 WHERE seq = ?1",
        params![seq, new_customer_id, sql::to_json(&attributes)?, at.millis()],
    )?;
    let changed = Customer { customer_id: new_customer_id.to_owned(), attributes, updated_at: at, ..customer };
    sql::audit(conn, &NewAuditRecord::customer_id_changed(account, &changed, customer_id, actor, at))?;
    Ok(changed)
}

fn put_settings(
    conn: &Connection,
    account: &AccountId,
    settings: &Map<String, serde_json::Value>,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    sql::execute(
        conn,
        "INSERT INTO customer_settings (account_id, settings, updated_at, updated_by) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (account_id) DO UPDATE SET settings = excluded.settings, updated_at = excluded.updated_at,
                                                updated_by = excluded.updated_by",
        params![account.as_str(), sql::to_json(settings)?, at.millis(), actor],
    )?;
    let fields = settings.keys().cloned().collect();
    sql::audit(conn, &NewAuditRecord::customer_settings_put(account, fields, actor, at))
}

/// The live token with this type and value in the account, with its customer's `seq`.
pub(super) fn live_token_by_value(
    conn: &Connection,
    account: &AccountId,
    token_type: &str,
    value: &str,
) -> StoreResult<Option<(i64, CustomerToken)>> {
    let sql = format!(
        "SELECT {TOKEN_COLUMNS}, t.customer_seq FROM customer_tokens t
         WHERE t.account_id = ?1 AND t.token_type = ?2 AND t.value = ?3 AND t.deleted_at IS NULL"
    );
    sql::first(conn, &sql, params![account.as_str(), token_type, value], |row| {
        Ok((row.get::<_, i64>(10)?, token_row(row)?))
    })
}

pub(super) fn live_customer_by_seq(conn: &Connection, seq: i64) -> StoreResult<Option<Customer>> {
    let sql = format!("SELECT {CUSTOMER_COLUMNS} FROM customers c WHERE c.seq = ?1 AND c.deleted_at IS NULL");
    sql::first(conn, &sql, [seq], customer_row)
}

#[async_trait]
impl CustomerStore for SqliteStore {
    async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> StoreResult<Customer> {
        let (account, customer) = (account.clone(), customer.clone());
        self.writer.submit(move |conn| create_customer(conn, &account, &customer)).await
    }

    async fn get_customer(&self, account: &AccountId, customer_id: &str) -> StoreResult<Option<Customer>> {
        let (account, customer_id) = (account.clone(), customer_id.to_owned());
        self.readers
            .read(move |conn| Ok(live_customer(conn, &account, &customer_id)?.map(|(_, customer)| customer)))
            .await
    }

    async fn list_customers(
        &self,
        account: &AccountId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Customer>> {
        let (account, filter, page) = (account.clone(), filter.clone(), page.clone());
        self.readers.read(move |conn| list_customers(conn, &account, &filter, &page)).await
    }

    async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer> {
        let (account, customer_id, actor) = (account.clone(), customer_id.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| delete_customer(conn, &account, &customer_id, delete_tokens, &actor, at)).await
    }

    async fn update_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        update: &CustomerUpdate,
    ) -> StoreResult<Customer> {
        let (account, customer_id, update) = (account.clone(), customer_id.to_owned(), update.clone());
        self.writer.submit(move |conn| update_customer(conn, &account, &customer_id, &update)).await
    }

    async fn change_customer_id(
        &self,
        account: &AccountId,
        customer_id: &str,
        new_customer_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer> {
        let (account, customer_id, new_customer_id, actor) =
            (account.clone(), customer_id.to_owned(), new_customer_id.to_owned(), actor.to_owned());
        self.writer
            .submit(move |conn| change_customer_id(conn, &account, &customer_id, &new_customer_id, &actor, at))
            .await
    }

    async fn customer_settings(&self, account: &AccountId) -> StoreResult<Option<Map<String, serde_json::Value>>> {
        let account = account.clone();
        self.readers
            .read(move |conn| {
                sql::first(
                    conn,
                    "SELECT settings FROM customer_settings WHERE account_id = ?1",
                    [account.as_str()],
                    |row| json_col(row, 0),
                )
            })
            .await
    }

    async fn put_customer_settings(
        &self,
        account: &AccountId,
        settings: &Map<String, serde_json::Value>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        let (account, settings, actor) = (account.clone(), settings.clone(), actor.to_owned());
        self.writer.submit(move |conn| put_settings(conn, &account, &settings, &actor, at)).await
    }

    async fn create_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token: &NewCustomerToken,
        delete_token_events: bool,
    ) -> StoreResult<CustomerToken> {
        let (account, customer_id, token) = (account.clone(), customer_id.to_owned(), token.clone());
        self.writer.submit(move |conn| create_token(conn, &account, &customer_id, &token, delete_token_events)).await
    }

    async fn list_customer_tokens(
        &self,
        account: &AccountId,
        customer_id: &str,
        filter: &CustomerTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CustomerToken>> {
        let (account, customer_id, filter, page) =
            (account.clone(), customer_id.to_owned(), filter.clone(), page.clone());
        self.readers.read(move |conn| list_tokens(conn, &account, &customer_id, &filter, &page)).await
    }

    async fn delete_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CustomerToken> {
        let (account, customer_id, token_id, actor) =
            (account.clone(), customer_id.to_owned(), token_id.to_owned(), actor.to_owned());
        self.writer.submit(move |conn| delete_token(conn, &account, &customer_id, &token_id, &actor, at)).await
    }
}
