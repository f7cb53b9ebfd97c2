//! Customers and their tokens.

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Object};
use serde_json::{Map, Value};
use tokio_postgres::types::ToSql;

use super::rows::{self, CUSTOMER_COLUMNS, TOKEN_COLUMNS};
use super::sql::{append_audit, end_snapshot, like_prefix, lock_list, overfetch, snapshot, ListQuery};
use super::{token_events, unique_violation, PostgresStore};
use crate::domain::audit::NewAuditRecord;
use crate::domain::customer::{
    customer_id_change_entry, with_customer_id_change, Customer, CustomerFilter, CustomerKeys, CustomerUpdate,
    NewCustomer,
};
use crate::domain::customer_token::{CustomerToken, CustomerTokenFilter, NewCustomerToken};
use crate::domain::token_event::TokenTypeValue;
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{CustomerStore, Duplicate, StoreError, StoreResult};

async fn create_customer(conn: &mut Object, account: &AccountId, customer: &NewCustomer) -> StoreResult<Customer> {
    let tx = conn.transaction().await?;
    // Keeps the account's customer list in commit order for paging (see `lock_list`).
    lock_list(&tx, "customers", account.as_str()).await?;
    let sql = format!(
        "INSERT INTO customers (id, account_id, customer_id, customer_type, email_key, phone_number, attributes, \
         created_at, created_by, updated_at, name_key) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8, $10) \
         RETURNING {CUSTOMER_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let id = customer.id.to_string();
    let attributes = rows::json_text(&customer.attributes)?;
    let row = tx
        .query_one(
            &statement,
            &[
                &id,
                &account.as_str(),
                &customer.customer_id,
                &customer.customer_type,
                &customer.email_key,
                &customer.phone_number,
                &attributes,
                &customer.created_at.millis(),
                &customer.created_by,
                &customer.name_key,
            ],
        )
        .await
        .map_err(|e| customer_conflict(e, &customer.customer_id))?;
    let seq: i64 = rows::get(&row, "seq")?;
    let created = rows::customer(&row)?;
    append_audit(&tx, NewAuditRecord::customer_created(account, customer)).await?;
    add_auto_tokens(&tx, account, seq, &customer.customer_id, &customer.auto_tokens).await?;
    tx.commit().await?;
    Ok(created)
}

/// The friendly message for a customer write that clashes with a live customer.
fn customer_conflict(error: tokio_postgres::Error, customer_id: &str) -> StoreError {
    match unique_violation(&error) {
        Some("customers_live_customer_id") => customer_conflict_id(customer_id),
        Some("customers_live_email") => {
            StoreError::Duplicate(Duplicate::Email, "a customer with this email already exists".into())
        }
        Some("customers_live_phone") => {
            StoreError::Duplicate(Duplicate::PhoneNumber, "a customer with this phone_number already exists".into())
        }
        _ => error.into(),
    }
}

fn customer_conflict_id(customer_id: &str) -> StoreError {
    StoreError::Duplicate(Duplicate::CustomerId, format!("a customer with customer_id '{customer_id}' already exists"))
}

/// Adds the customer's auto tokens in the caller's transaction, leaving out one whose type/value
/// is already live or whose `token_id` the customer already uses (`ON CONFLICT DO NOTHING` on
/// either unique index, which also waits for a concurrent insert of the same token).
async fn add_auto_tokens(
    tx: &deadpool_postgres::Transaction<'_>,
    account: &AccountId,
    customer_seq: i64,
    customer_id: &str,
    tokens: &[NewCustomerToken],
) -> StoreResult<()> {
    if tokens.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, metadata, created_at, \
         created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8) ON CONFLICT DO NOTHING \
         RETURNING {TOKEN_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    for token in tokens {
        let id = token.id.to_string();
        let metadata = token.metadata.as_ref().map(rows::json_text).transpose()?;
        let inserted = tx
            .query_opt(
                &statement,
                &[
                    &id,
                    &account.as_str(),
                    &customer_seq,
                    &token.token_id,
                    &token.token_type,
                    &token.value,
                    &metadata,
                    &token.created_at.millis(),
                    &token.created_by,
                ],
            )
            .await?;
        if inserted.is_some() {
            let token_value = TokenTypeValue { token_type: token.token_type.clone(), value: token.value.clone() };
            token_events::ensure_entry_with_id(tx, account, &token_value, &id, token.created_at).await?;
            append_audit(tx, NewAuditRecord::customer_token_created(account, customer_id, token, false, 0)).await?;
        }
    }
    Ok(())
}

/// Deletes the customer's live tokens with these `token_id`s (auto tokens a change replaces).
async fn retire_tokens(
    tx: &deadpool_postgres::Transaction<'_>,
    account: &AccountId,
    customer_seq: i64,
    customer_id: &str,
    token_ids: &[String],
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let sql = format!(
        "UPDATE customer_tokens SET deleted_at = $3, deleted_by = $4, updated_at = $3 \
         WHERE customer_seq = $1 AND token_id = $2 AND deleted_at IS NULL RETURNING {TOKEN_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    for token_id in token_ids {
        if let Some(row) = tx.query_opt(&statement, &[&customer_seq, token_id, &at.millis(), &actor]).await? {
            let deleted = rows::customer_token(&row)?;
            append_audit(tx, NewAuditRecord::customer_token_deleted(account, customer_id, &deleted, actor, at)).await?;
        }
    }
    Ok(())
}

/// The live customer, locked until the transaction ends (`FOR NO KEY UPDATE`, as token creates
/// lock it), with its `seq`.
async fn locked_customer(
    tx: &deadpool_postgres::Transaction<'_>,
    account: &AccountId,
    customer_id: &str,
) -> StoreResult<(i64, Customer)> {
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL \
         FOR NO KEY UPDATE"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let row =
        tx.query_opt(&statement, &[&account.as_str(), &customer_id]).await?.ok_or(StoreError::NotFound("customer"))?;
    Ok((rows::get(&row, "seq")?, rows::customer(&row)?))
}

async fn update_customer(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    update: &CustomerUpdate,
) -> StoreResult<Customer> {
    let tx = conn.transaction().await?;
    let (seq, customer) = locked_customer(&tx, account, customer_id).await?;
    let attributes = update.apply(&customer.attributes);
    let keys = CustomerKeys::of(&attributes);
    let sql = format!(
        "UPDATE customers SET attributes = $2, customer_type = $3, email_key = $4, phone_number = $5, name_key = $6, \
         updated_at = $7 WHERE seq = $1 RETURNING {CUSTOMER_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let text = rows::json_text(&attributes)?;
    let at = update.updated_at;
    let row = tx
        .query_one(
            &statement,
            &[&seq, &text, &keys.customer_type, &keys.email_key, &keys.phone_number, &keys.name_key, &at.millis()],
        )
        .await
        .map_err(|e| customer_conflict(e, customer_id))?;
    let updated = rows::customer(&row)?;
    append_audit(&tx, NewAuditRecord::customer_updated(account, &customer, update)).await?;
    retire_tokens(&tx, account, seq, customer_id, &update.retired_auto_tokens, &update.updated_by, at).await?;
    add_auto_tokens(&tx, account, seq, customer_id, &update.auto_tokens).await?;
    tx.commit().await?;
    Ok(updated)
}

async fn change_customer_id(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    new_customer_id: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<Customer> {
    let tx = conn.transaction().await?;
    let (seq, customer) = locked_customer(&tx, account, customer_id).await?;
    if new_customer_id == customer_id {
        // Its own id: a live duplicate too (an update to the same value violates no index).
        return Err(customer_conflict_id(new_customer_id));
    }
    let entry = customer_id_change_entry(customer_id, new_customer_id, actor, at);
    let attributes = with_customer_id_change(&customer.attributes, entry);
    let sql = format!(
        "UPDATE customers SET customer_id = $2, attributes = $3, updated_at = $4 WHERE seq = $1 \
         RETURNING {CUSTOMER_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let text = rows::json_text(&attributes)?;
    // The customer's own id is a live duplicate too: the unique index reports it.
    let row = tx
        .query_one(&statement, &[&seq, &new_customer_id, &text, &at.millis()])
        .await
        .map_err(|e| customer_conflict(e, new_customer_id))?;
    let changed = rows::customer(&row)?;
    append_audit(&tx, NewAuditRecord::customer_id_changed(account, &changed, customer_id, actor, at)).await?;
    tx.commit().await?;
    Ok(changed)
}

async fn customer_settings(
    client: &impl GenericClient,
    account: &AccountId,
) -> StoreResult<Option<Map<String, Value>>> {
    let statement = client.prepare_cached("SELECT settings FROM customer_settings WHERE account_id = $1").await?;
    match client.query_opt(&statement, &[&account.as_str()]).await? {
        Some(row) => {
            let text: String = rows::get(&row, "settings")?;
            let settings = serde_json::from_str(&text)
                .map_err(|e| StoreError::Internal(format!("customer settings are not a JSON object: {e}")))?;
            Ok(Some(settings))
        }
        None => Ok(None),
    }
}

async fn put_customer_settings(
    conn: &mut Object,
    account: &AccountId,
    settings: &Map<String, Value>,
    actor: &str,
    at: Timestamp,
) -> StoreResult<()> {
    let tx = conn.transaction().await?;
    let statement = tx
        .prepare_cached(
            "INSERT INTO customer_settings (account_id, settings, updated_at, updated_by) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (account_id) DO UPDATE SET settings = EXCLUDED.settings, updated_at = EXCLUDED.updated_at, \
             updated_by = EXCLUDED.updated_by",
        )
        .await?;
    let text = rows::json_text(settings)?;
    tx.execute(&statement, &[&account.as_str(), &text, &at.millis(), &actor]).await?;
    let fields = settings.keys().cloned().collect();
    append_audit(&tx, NewAuditRecord::customer_settings_put(account, fields, actor, at)).await?;
    tx.commit().await?;
    Ok(())
}

async fn get_customer(
    client: &impl GenericClient,
    account: &AccountId,
    customer_id: &str,
) -> StoreResult<Option<Customer>> {
    let sql = format!(
        "SELECT {CUSTOMER_COLUMNS} FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL"
    );
    let statement = client.prepare_cached(&sql).await?;
    let row = client.query_opt(&statement, &[&account.as_str(), &customer_id]).await?;
    row.as_ref().map(rows::customer).transpose()
}

pub(super) async fn list_customers(
    conn: &mut Object,
    account: &AccountId,
    filter: &CustomerFilter,
    page: &PageRequest,
) -> StoreResult<Page<Customer>> {
    let tx = snapshot(conn).await?;
    let account = account.as_str();
    let cursor = match &page.starting_after {
        None => None,
        Some(id) => {
            let statement =
                tx.prepare_cached("SELECT seq, updated_at FROM customers WHERE account_id = $1 AND id = $2").await?;
            let row = tx.query_opt(&statement, &[&account, id]).await?.ok_or(StoreError::UnknownCursor)?;
            Some((rows::get::<i64>(&row, "seq")?, rows::get::<i64>(&row, "updated_at")?))
        }
    };
    let email = filter.email_prefix.as_deref().map(|p| like_prefix(&p.to_lowercase()));
    let phone = filter.phone_number_prefix.as_deref().map(like_prefix);
    let limit = overfetch(page);

    let mut query = ListQuery::new("customers c", CUSTOMER_COLUMNS);
    let p = query.bind(&account);
    query.filter(format!("c.account_id = {p}"));
    if let Some((token_type, value)) = &filter.token {
        let (t, v) = (query.bind(token_type), query.bind(value));
        query.filter(format!(
            "EXISTS (SELECT 1 FROM customer_tokens t WHERE t.customer_seq = c.seq AND t.account_id = c.account_id \
             AND t.token_type = {t} AND t.value = {v} AND t.deleted_at IS NULL)"
        ));
    }
    if let Some(email) = &email {
        let p = query.bind(email);
        query.filter(format!("c.email_key LIKE {p} ESCAPE '\\'"));
    }
    if let Some(phone) = &phone {
        let p = query.bind(phone);
        query.filter(format!("c.phone_number LIKE {p} ESCAPE '\\'"));
    }
    if let Some(customer_type) = &filter.customer_type {
        let p = query.bind(customer_type);
        query.filter(format!("c.customer_type = {p}"));
    } else if !filter.all_types {
        query.filter("c.customer_type <> 'contact'".into());
    }
    if !filter.include_deleted {
        query.filter("c.deleted_at IS NULL".into());
    }
    // Bound values must outlive the query: made here, bound below.
    let search = filter.search.as_ref().map(|search| {
        let lower = like_prefix(&search.lower);
        let word = format!("% {lower}");
        let length = i32::try_from(search.exact.chars().count()).unwrap_or(i32::MAX);
        (length, search.exact.clone(), like_prefix(&search.exact), lower, word)
    });
    if let Some((length, exact, exact_like, lower, word)) = &search {
        // Prefixes: of the customer_id and phone number as given, of the lower-cased e-mail, and
        // of the lower-cased name or any word in it.
        let (n, e, el) = (query.bind(length), query.bind(exact), query.bind(exact_like));
        let (l, w) = (query.bind(lower), query.bind(word));
        query.filter(format!(
            "(substr(c.customer_id, 1, {n}) = {e} OR c.phone_number LIKE {el} ESCAPE '\\' \
             OR c.email_key LIKE {l} ESCAPE '\\' OR c.name_key LIKE {l} ESCAPE '\\' OR c.name_key LIKE {w} ESCAPE '\\')"
        ));
    }
    let since = filter.since.map(Timestamp::millis);
    if let Some(since) = &since {
        let p = query.bind(since);
        query.filter(format!("c.updated_at >= {p}"));
    }
    if filter.tag_id.is_some() {
        // No customer has tags in tokenvault (see CustomerFilter::tag_id).
        query.filter("FALSE".into());
    }
    for attribute in &filter.attributes {
        let k = query.bind(&attribute.key);
        let attributes = "jsonb_each(CASE WHEN jsonb_typeof(c.attributes::jsonb -> 'attributes') = 'object' \
                          THEN c.attributes::jsonb -> 'attributes' ELSE '{}'::jsonb END) a";
        match &attribute.value {
            None => query.filter(format!("EXISTS (SELECT 1 FROM {attributes} WHERE a.key = {k})")),
            Some(value) => {
                let v = query.bind(value);
                query.filter(format!(
                    "EXISTS (SELECT 1 FROM {attributes} WHERE a.key = {k} AND ({} = {v} OR \
                     (jsonb_typeof(a.value) = 'array' AND EXISTS (SELECT 1 FROM jsonb_array_elements(a.value) e \
                     WHERE {} = {v}))))",
                    attribute_text("a.value"),
                    attribute_text("e"),
                ));
            }
        }
    }
    if let Some((seq, updated_at)) = &cursor {
        if filter.since.is_some() {
            query.after(|q| format!("(c.updated_at, c.seq) > ({}, {})", q.bind(updated_at), q.bind(seq)));
        } else {
            query.after(|q| format!("c.seq > {}", q.bind(seq)));
        }
    }
    let order_by = if filter.since.is_some() { "c.updated_at, c.seq" } else { "c.seq" };
    let (rows, total) = query.fetch(&tx, order_by, &limit, page.include_total).await?;

    let items = rows.iter().map(rows::customer).collect::<StoreResult<Vec<_>>>()?;
    end_snapshot(tx);
    Ok(Page::from_overfetch(items, page.limit, total))
}

/// The text an attribute filter value is compared with, for a JSON value `value`: a string
/// itself, a number or boolean as its JSON text, nothing for other JSON (so only arrays'
/// elements are looked into).
fn attribute_text(value: &str) -> String {
    format!(
        "(CASE jsonb_typeof({value}) WHEN 'string' THEN {value} #>> '{{}}' WHEN 'number' THEN {value}::TEXT \
         WHEN 'boolean' THEN {value}::TEXT END)"
    )
}

async fn delete_customer(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    delete_tokens: bool,
    actor: &str,
    at: Timestamp,
) -> StoreResult<Customer> {
    let tx = conn.transaction().await?;
    let sql = format!(
        // CustomerResponse requires `type`: a deleted customer keeps it (and only it).
        "UPDATE customers SET attributes = json_build_object('type', customer_type)::TEXT, email_key = NULL, \
         phone_number = NULL, name_key = NULL, deleted_at = $3, \
         deleted_by = $4, updated_at = $3 WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL \
         RETURNING {CUSTOMER_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let row = tx
        .query_opt(&statement, &[&account.as_str(), &customer_id, &at.millis(), &actor])
        .await?
        .ok_or(StoreError::NotFound("customer"))?;
    let seq: i64 = rows::get(&row, "seq")?;
    let deleted = rows::customer(&row)?;
    let deleted_tokens: Vec<String> = if delete_tokens {
        let statement = tx
            .prepare_cached(
                "UPDATE customer_tokens SET deleted_at = $2, deleted_by = $3, updated_at = $2 \
                 WHERE customer_seq = $1 AND deleted_at IS NULL RETURNING seq, id",
            )
            .await?;
        let rows = tx.query(&statement, &[&seq, &at.millis(), &actor]).await?;
        // RETURNING has no order; the audit record lists them in creation order.
        let mut tokens = rows
            .iter()
            .map(|row| Ok((rows::get::<i64>(row, "seq")?, rows::get(row, "id")?)))
            .collect::<StoreResult<Vec<_>>>()?;
        tokens.sort_unstable();
        tokens.into_iter().map(|(_, id)| id).collect()
    } else {
        Vec::new()
    };
    append_audit(&tx, NewAuditRecord::customer_deleted(account, &deleted, &deleted_tokens, actor, at)).await?;
    tx.commit().await?;
    Ok(deleted)
}

/// The internal key of the live customer, optionally locked until the transaction ends. Token
/// creates lock it so that a concurrent delete of the customer waits for (and then also sees) a
/// token being added, and so that creates for one customer take turns: the customer's token list
/// is paged by `seq`, which must then be commit order (see `lock_list`). `FOR NO KEY UPDATE`
/// conflicts with itself and with the delete's update, not with readers or foreign-key checks.
async fn live_customer_seq(
    client: &impl GenericClient,
    account: &AccountId,
    customer_id: &str,
    lock: bool,
) -> StoreResult<i64> {
    let statement = client
        .prepare_cached(if lock {
            "SELECT seq FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL \
             FOR NO KEY UPDATE"
        } else {
            "SELECT seq FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL"
        })
        .await?;
    let row = client
        .query_opt(&statement, &[&account.as_str(), &customer_id])
        .await?
        .ok_or(StoreError::NotFound("customer"))?;
    rows::get(&row, "seq")
}

async fn create_customer_token(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    token: &NewCustomerToken,
    delete_token_events: bool,
) -> StoreResult<CustomerToken> {
    if !delete_token_events {
        return create_customer_token_at_once(conn, account, customer_id, token).await;
    }
    // Clearing the token's events must commit with the token: a transaction of its own.
    let tx = conn.transaction().await?;
    let customer_seq = live_customer_seq(&tx, account, customer_id, true).await?;
    let token_value = TokenTypeValue { token_type: token.token_type.clone(), value: token.value.clone() };
    let events_deleted = token_events::delete_entry(&tx, account, &token_value, token.created_at)
        .await?
        .map_or(0, |(_, deleted)| deleted);
    let sql = format!(
        "INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, metadata, created_at, \
         created_by, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $8) RETURNING {TOKEN_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let id = token.id.to_string();
    let metadata = token.metadata.as_ref().map(rows::json_text).transpose()?;
    let row = tx
        .query_one(
            &statement,
            &[
                &id,
                &account.as_str(),
                &customer_seq,
                &token.token_id,
                &token.token_type,
                &token.value,
                &metadata,
                &token.created_at.millis(),
                &token.created_by,
            ],
        )
        .await
        .map_err(|e| token_conflict(e, token))?;
    let created = rows::customer_token(&row)?;
    token_events::ensure_entry_with_id(&tx, account, &token_value, &id, token.created_at).await?;
    append_audit(
        &tx,
        NewAuditRecord::customer_token_created(account, customer_id, token, delete_token_events, events_deleted),
    )
    .await?;
    tx.commit().await?;
    Ok(created)
}

/// A token create without `delete_token_events`: one statement, sent once and run in autocommit
/// (its own implicit transaction; the rows are read up to the server's ReadyForQuery, so a failed
/// commit is an error here too), that does what the transaction of [`create_customer_token`]
/// does step by step:
///
/// - `locked` takes the live customer's row lock (`FOR NO KEY UPDATE`, as [`live_customer_seq`]
///   does), so a concurrent delete of the customer waits for the token (and its
///   `delete_tokens` then sees it), or the create, having waited for the delete, finds no live
///   customer: the re-check of `deleted_at IS NULL` on the row's latest version drops it.
/// - `inserted` selects its row FROM `locked`, so it depends on it: the token's `seq` (the
///   identity default, `nextval` in the projection over the rows the INSERT reads) is drawn only
///   for a row that has come out of the lock, i.e. once the lock is held. The lock is kept until
///   the implicit transaction commits at the end of the statement. So another create for this
///   customer either committed before this one got the lock (and drew its `seq` before) or
///   waits for this commit before drawing its own: `seq` order is commit order, as keyset paging
///   needs (see `lock_list`). Without a live customer there is no row to insert, no audit row,
///   and the statement returns nothing: `NotFound`; a clash with a live token is a unique
///   violation, mapped as on the other path.
/// - `audited` appends the audit record (built by the same constructor as on every path) FROM
///   `inserted`, so it exists exactly when the token does and commits with it. Audit rows take no
///   lock: `append_audit` is a plain INSERT as well.
async fn create_customer_token_at_once(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    token: &NewCustomerToken,
) -> StoreResult<CustomerToken> {
    let sql = format!(
        "WITH locked AS (\
             SELECT seq FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL \
             FOR NO KEY UPDATE\
         ), inserted AS (\
             INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, metadata, \
             created_at, created_by, updated_at) \
             SELECT $3::TEXT, $1::TEXT, locked.seq, $4::TEXT, $5::TEXT, $6::TEXT, $7::TEXT, $8::BIGINT, $9::TEXT, \
             $8::BIGINT FROM locked \
             RETURNING {TOKEN_COLUMNS}\
         ), identified AS (\
             INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at, has_events) \
             SELECT $3::TEXT, $1::TEXT, $5::TEXT, $6::TEXT, $8::BIGINT, FALSE FROM inserted \
             ON CONFLICT (account_id, token_type, value) DO NOTHING\
         ), audited AS (\
             INSERT INTO audit_log (at, account_id, actor, action, resource_type, resource_id, details) \
             SELECT $10::BIGINT, $11::TEXT, $12::TEXT, $13::TEXT, $14::TEXT, $15::TEXT, $16::TEXT FROM inserted\
         ) \
         SELECT {TOKEN_COLUMNS} FROM inserted"
    );
    let statement = conn.prepare_cached(&sql).await?;
    let id = token.id.to_string();
    let metadata = token.metadata.as_ref().map(rows::json_text).transpose()?;
    let audit = NewAuditRecord::customer_token_created(account, customer_id, token, false, 0);
    let details = audit.details.to_string();
    let row = conn
        .query_opt(
            &statement,
            &[
                &account.as_str(),
                &customer_id,
                &id,
                &token.token_id,
                &token.token_type,
                &token.value,
                &metadata,
                &token.created_at.millis(),
                &token.created_by,
                &audit.at.millis(),
                &audit.account_id,
                &audit.actor,
                &audit.action,
                &audit.resource_type,
                &audit.resource_id,
                &details,
            ],
        )
        .await
        .map_err(|e| token_conflict(e, token))?
        .ok_or(StoreError::NotFound("customer"))?;
    rows::customer_token(&row)
}

/// The friendly message for a token create that clashes with a live token.
fn token_conflict(error: tokio_postgres::Error, token: &NewCustomerToken) -> StoreError {
    match unique_violation(&error) {
        Some("customer_tokens_live_token_id") => StoreError::Duplicate(
            Duplicate::TokenId,
            format!("a live token with token_id '{}' already exists for this customer", token.token_id),
        ),
        Some("customer_tokens_live_type_value") => StoreError::Duplicate(
            Duplicate::TokenTypeValue,
            "a live token with this type and value already belongs to a customer".into(),
        ),
        _ => error.into(),
    }
}

/// A customer's tokens in one statement, sent once and run in autocommit: a single statement
/// reads one snapshot, so the customer, the cursor, the page and its count agree as they did in
/// a read-only transaction, without the `BEGIN` and the cursor's and the customer's own round
/// trips. The statement, for a cursor, a type filter, live tokens only and a total:
///
/// ```sql
/// WITH c AS (SELECT seq FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL),
///      cur AS (SELECT t.seq FROM customer_tokens t, c WHERE t.customer_seq = c.seq AND t.id = $4)
/// SELECT c.seq AS customer_seq, (SELECT seq FROM cur) AS cursor_seq,
///        (SELECT COUNT(*) FROM customer_tokens t, c WHERE t.customer_seq = c.seq
///         AND t.token_type = $3 AND t.deleted_at IS NULL) AS total, p.*
/// FROM c LEFT JOIN LATERAL (SELECT <TOKEN_COLUMNS> FROM customer_tokens t
///     WHERE t.customer_seq = c.seq AND t.token_type = $3 AND t.deleted_at IS NULL
///     AND t.seq > (SELECT seq FROM cur) ORDER BY t.seq LIMIT $5) p ON TRUE
/// ```
///
/// - No row: no live customer, `NotFound` (as [`live_customer_seq`] says).
/// - `cursor_seq` NULL for a given cursor: it names none of this customer's tokens (live or
///   deleted, whatever the filters), `UnknownCursor`; checked before the page.
/// - One row whose token columns are NULL: the customer has no tokens past the cursor that pass
///   the filters, an empty page; `total` (the filters' count, cursor or not) is still there.
///
/// `cur` and the count are uncorrelated subqueries (init plans): each runs once, not per row.
/// The page's order is the lateral's `ORDER BY … LIMIT` (which rows make the page); rows are
/// sorted by `seq` here rather than by an outer `ORDER BY`, which would be a sort node over the
/// join (see the plan test), as SQL promises no order without one.
pub(super) async fn list_customer_tokens(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    filter: &CustomerTokenFilter,
    page: &PageRequest,
) -> StoreResult<Page<CustomerToken>> {
    let account = account.as_str();
    let limit = overfetch(page);
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&account, &customer_id];
    // The filters, shared by the page and its count; `t` is customer_tokens in both.
    let mut filters = String::new();
    if let Some(token_type) = &filter.token_type {
        params.push(token_type);
        filters.push_str(&format!(" AND t.token_type = ${}", params.len()));
    }
    if !filter.include_deleted {
        filters.push_str(" AND t.deleted_at IS NULL");
    }
    let mut ctes =
        "c AS (SELECT seq FROM customers WHERE account_id = $1 AND customer_id = $2 AND deleted_at IS NULL)".to_owned();
    let mut columns = "c.seq AS customer_seq".to_owned();
    let mut after = String::new();
    if let Some(id) = &page.starting_after {
        params.push(id);
        ctes.push_str(&format!(
            ", cur AS (SELECT t.seq FROM customer_tokens t, c WHERE t.customer_seq = c.seq AND t.id = ${})",
            params.len()
        ));
        columns.push_str(", (SELECT seq FROM cur) AS cursor_seq");
        after.push_str(" AND t.seq > (SELECT seq FROM cur)");
    }
    if page.include_total {
        columns.push_str(&format!(
            ", (SELECT COUNT(*) FROM customer_tokens t, c WHERE t.customer_seq = c.seq{filters}) AS total"
        ));
    }
    params.push(&limit);
    let sql = format!(
        "WITH {ctes} SELECT {columns}, p.* FROM c LEFT JOIN LATERAL (SELECT {TOKEN_COLUMNS} FROM customer_tokens t \
         WHERE t.customer_seq = c.seq{filters}{after} ORDER BY t.seq LIMIT ${}) p ON TRUE",
        params.len()
    );
    let statement = conn.prepare_cached(&sql).await?;
    let rows = conn.query(&statement, &params).await?;
    let first = rows.first().ok_or(StoreError::NotFound("customer"))?;
    if page.starting_after.is_some() && rows::get::<Option<i64>>(first, "cursor_seq")?.is_none() {
        return Err(StoreError::UnknownCursor);
    }
    let total = if page.include_total {
        Some(u64::try_from(rows::get::<i64>(first, "total")?).unwrap_or_default())
    } else {
        None
    };
    let items = rows::page_items(&rows, rows::customer_token)?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

async fn delete_customer_token(
    conn: &mut Object,
    account: &AccountId,
    customer_id: &str,
    token_id: &str,
    actor: &str,
    at: Timestamp,
) -> StoreResult<CustomerToken> {
    let tx = conn.transaction().await?;
    let customer_seq = live_customer_seq(&tx, account, customer_id, false).await?;
    // Of two concurrent deletes, the second waits for the first and then matches no live row.
    let sql = format!(
        "UPDATE customer_tokens SET deleted_at = $3, deleted_by = $4, updated_at = $3 \
         WHERE customer_seq = $1 AND token_id = $2 AND deleted_at IS NULL RETURNING {TOKEN_COLUMNS}"
    );
    let statement = tx.prepare_cached(&sql).await?;
    if let Some(row) = tx.query_opt(&statement, &[&customer_seq, &token_id, &at.millis(), &actor]).await? {
        let deleted = rows::customer_token(&row)?;
        append_audit(&tx, NewAuditRecord::customer_token_deleted(account, customer_id, &deleted, actor, at)).await?;
        tx.commit().await?;
        return Ok(deleted);
    }
    let sql = format!(
        "SELECT {TOKEN_COLUMNS} FROM customer_tokens WHERE customer_seq = $1 AND token_id = $2 ORDER BY seq DESC LIMIT 1"
    );
    let statement = tx.prepare_cached(&sql).await?;
    let row = tx.query_opt(&statement, &[&customer_seq, &token_id]).await?.ok_or(StoreError::NotFound("token"))?;
    let latest = rows::customer_token(&row)?;
    tx.commit().await?;
    Ok(latest)
}

#[async_trait]
impl CustomerStore for PostgresStore {
    async fn create_customer(&self, account: &AccountId, customer: &NewCustomer) -> StoreResult<Customer> {
        with_conn!(self, |conn| create_customer(&mut conn, account, customer).await)
    }

    async fn get_customer(&self, account: &AccountId, customer_id: &str) -> StoreResult<Option<Customer>> {
        with_conn!(self, |conn| get_customer(&conn, account, customer_id).await)
    }

    async fn list_customers(
        &self,
        account: &AccountId,
        filter: &CustomerFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<Customer>> {
        with_conn!(self, |conn| list_customers(&mut conn, account, filter, page).await)
    }

    async fn delete_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        delete_tokens: bool,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer> {
        with_conn!(self, |conn| delete_customer(&mut conn, account, customer_id, delete_tokens, actor, at).await)
    }

    async fn update_customer(
        &self,
        account: &AccountId,
        customer_id: &str,
        update: &CustomerUpdate,
    ) -> StoreResult<Customer> {
        with_conn!(self, |conn| update_customer(&mut conn, account, customer_id, update).await)
    }

    async fn change_customer_id(
        &self,
        account: &AccountId,
        customer_id: &str,
        new_customer_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<Customer> {
        with_conn!(self, |conn| change_customer_id(&mut conn, account, customer_id, new_customer_id, actor, at).await)
    }

    async fn customer_settings(&self, account: &AccountId) -> StoreResult<Option<Map<String, Value>>> {
        with_conn!(self, |conn| customer_settings(&conn, account).await)
    }

    async fn put_customer_settings(
        &self,
        account: &AccountId,
        settings: &Map<String, Value>,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<()> {
        with_conn!(self, |conn| put_customer_settings(&mut conn, account, settings, actor, at).await)
    }

    async fn create_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token: &NewCustomerToken,
        delete_token_events: bool,
    ) -> StoreResult<CustomerToken> {
        with_conn!(self, |conn| {
            create_customer_token(&mut conn, account, customer_id, token, delete_token_events).await
        })
    }

    async fn list_customer_tokens(
        &self,
        account: &AccountId,
        customer_id: &str,
        filter: &CustomerTokenFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<CustomerToken>> {
        with_conn!(self, |conn| list_customer_tokens(&mut conn, account, customer_id, filter, page).await)
    }

    async fn delete_customer_token(
        &self,
        account: &AccountId,
        customer_id: &str,
        token_id: &str,
        actor: &str,
        at: Timestamp,
    ) -> StoreResult<CustomerToken> {
        with_conn!(self, |conn| delete_customer_token(&mut conn, account, customer_id, token_id, actor, at).await)
    }
}
