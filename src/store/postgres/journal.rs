//! The request journal on PostgreSQL: a batch of entries is one `INSERT … SELECT FROM UNNEST`, so
//! every instance's entries land in the one table all instances list.

use async_trait::async_trait;
use deadpool_postgres::GenericClient;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::rows::{account, get};
use super::sql::{overfetch, ListQuery};
use super::PostgresStore;
use crate::domain::journal::{JournalEntry, JournalFilter};
use crate::domain::{AccountId, Page, PageRequest, Timestamp};
use crate::store::{JournalStore, StoreError, StoreResult};

const COLUMNS: &str = "id, account_id, recorded_at, method, path, query, status, latency_ms, request_id, client_id, \
                       idempotency_key, request_headers, request_body, response_body, fault, received_at";

fn entry(row: &Row) -> StoreResult<JournalEntry> {
    Ok(JournalEntry {
        id: get(row, "id")?,
        account: account(row, "account_id")?,
        recorded_at: Timestamp::from_millis(get(row, "recorded_at")?),
        method: get(row, "method")?,
        path: get(row, "path")?,
        query: get(row, "query")?,
        status: u16::try_from(get::<i32>(row, "status")?).unwrap_or_default(),
        latency_ms: u64::try_from(get::<i64>(row, "latency_ms")?).unwrap_or_default(),
        request_id: get(row, "request_id")?,
        client_id: get(row, "client_id")?,
        idempotency_key: get(row, "idempotency_key")?,
        request_headers: get(row, "request_headers")?,
        request_body: get(row, "request_body")?,
        response_body: get(row, "response_body")?,
        fault: get(row, "fault")?,
        received_at: Timestamp::from_millis(get(row, "received_at")?),
    })
}

async fn append(client: &impl GenericClient, entries: &[JournalEntry]) -> StoreResult<()> {
    if entries.is_empty() {
        return Ok(());
    }
    let texts = |f: fn(&JournalEntry) -> &str| entries.iter().map(f).collect::<Vec<&str>>();
    let options = |f: fn(&JournalEntry) -> Option<&str>| entries.iter().map(f).collect::<Vec<Option<&str>>>();
    let ids = texts(|e| &e.id);
    let accounts = texts(|e| e.account.as_str());
    let at: Vec<i64> = entries.iter().map(|e| e.recorded_at.millis()).collect();
    let received: Vec<i64> = entries.iter().map(|e| e.received_at.millis()).collect();
    let methods = texts(|e| &e.method);
    let paths = texts(|e| &e.path);
    let queries = options(|e| e.query.as_deref());
    let statuses: Vec<i32> = entries.iter().map(|e| i32::from(e.status)).collect();
    let latencies: Vec<i64> = entries.iter().map(|e| i64::try_from(e.latency_ms).unwrap_or(i64::MAX)).collect();
    let request_ids = options(|e| e.request_id.as_deref());
    let client_ids = options(|e| e.client_id.as_deref());
    let keys = options(|e| e.idempotency_key.as_deref());
    let headers = options(|e| e.request_headers.as_deref());
    let requests = options(|e| e.request_body.as_deref());
    let responses = options(|e| e.response_body.as_deref());
    let faults = options(|e| e.fault.as_deref());
    let statement = client
        .prepare_cached(
            "INSERT INTO request_journal (id, account_id, recorded_at, method, path, query, status, latency_ms, \
             request_id, client_id, idempotency_key, request_headers, request_body, response_body, fault, received_at) \
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::bigint[], $4::text[], $5::text[], $6::text[], \
             $7::int[], $8::bigint[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[], $14::text[], \
             $15::text[], $16::bigint[])",
        )
        .await?;
    let params: [&(dyn ToSql + Sync); 16] = [
        &ids,
        &accounts,
        &at,
        &methods,
        &paths,
        &queries,
        &statuses,
        &latencies,
        &request_ids,
        &client_ids,
        &keys,
        &headers,
        &requests,
        &responses,
        &faults,
        &received,
    ];
    client.execute(&statement, &params).await?;
    Ok(())
}

async fn list(
    client: &impl GenericClient,
    account: &AccountId,
    filter: &JournalFilter,
    page: &PageRequest,
) -> StoreResult<Page<JournalEntry>> {
    let aid = account.as_str();
    let limit = overfetch(page);
    let (min, max) = filter.status.map_or((0, 0), |s| (i32::from(s.min), i32::from(s.max)));
    let since = filter.since.map(Timestamp::millis);
    let mut query = ListQuery::new("request_journal", COLUMNS);
    let p = query.bind(&aid);
    query.filter(format!("account_id = {p}"));
    if let Some(method) = &filter.method {
        let p = query.bind(method);
        query.filter(format!("method = {p}"));
    }
    if let Some(prefix) = &filter.path_prefix {
        let p = query.bind(prefix);
        query.filter(format!("left(path, char_length({p}::text)) = {p}"));
    }
    if filter.status.is_some() {
        let (lo, hi) = (query.bind(&min), query.bind(&max));
        query.filter(format!("status BETWEEN {lo} AND {hi}"));
    }
    if let Some(client_id) = &filter.client_id {
        let p = query.bind(client_id);
        query.filter(format!("client_id = {p}"));
    }
    if let Some(request_id) = &filter.request_id {
        let p = query.bind(request_id);
        query.filter(format!("request_id = {p}"));
    }
    if let Some(since) = &since {
        let p = query.bind(since);
        query.filter(format!("recorded_at >= {p}"));
    }
    let cursor_seq: Option<i64> = match &page.starting_after {
        Some(id) => {
            let statement =
                client.prepare_cached("SELECT seq FROM request_journal WHERE account_id = $1 AND id = $2").await?;
            let row = client.query_opt(&statement, &[&aid, id]).await?.ok_or(StoreError::UnknownCursor)?;
            Some(row.try_get(0)?)
        }
        None => None,
    };
    if let Some(seq) = &cursor_seq {
        query.after(|query| format!("seq < {}", query.bind(seq)));
    }
    let (rows, total) = query.fetch(client, "seq DESC", &limit, page.include_total).await?;
    let items = rows.iter().map(entry).collect::<StoreResult<Vec<_>>>()?;
    Ok(Page::from_overfetch(items, page.limit, total))
}

async fn get_entry(client: &impl GenericClient, account: &AccountId, id: &str) -> StoreResult<JournalEntry> {
    let statement = client
        .prepare_cached(&format!("SELECT {COLUMNS} FROM request_journal WHERE account_id = $1 AND id = $2"))
        .await?;
    let row = client.query_opt(&statement, &[&account.as_str(), &id]).await?.ok_or(StoreError::NotFound("request"))?;
    entry(&row)
}

async fn prune(
    client: &impl GenericClient,
    accounts: &[AccountId],
    max_entries: u64,
    older_than: Timestamp,
) -> StoreResult<u64> {
    let statement = client.prepare_cached("DELETE FROM request_journal WHERE received_at < $1").await?;
    let mut removed = client.execute(&statement, &[&older_than.millis()]).await?;
    let keep = i64::try_from(max_entries).unwrap_or(i64::MAX);
    let statement = client
        .prepare_cached(
            "DELETE FROM request_journal WHERE account_id = $1 AND seq <= \
             (SELECT seq FROM request_journal WHERE account_id = $1 ORDER BY seq DESC LIMIT 1 OFFSET $2)",
        )
        .await?;
    for account in accounts {
        removed += client.execute(&statement, &[&account.as_str(), &keep]).await?;
    }
    Ok(removed)
}

#[async_trait]
impl JournalStore for PostgresStore {
    async fn append_journal(&self, entries: &[JournalEntry]) -> StoreResult<()> {
        with_conn!(self, |conn| append(&conn, entries).await)
    }

    async fn list_journal(
        &self,
        account: &AccountId,
        filter: &JournalFilter,
        page: &PageRequest,
    ) -> StoreResult<Page<JournalEntry>> {
        with_conn!(self, |conn| list(&conn, account, filter, page).await)
    }

    async fn get_journal_entry(&self, account: &AccountId, id: &str) -> StoreResult<JournalEntry> {
        with_conn!(self, |conn| get_entry(&conn, account, id).await)
    }

    async fn clear_journal(&self, account: &AccountId) -> StoreResult<u64> {
        with_conn!(self, |conn| {
            let statement = conn.prepare_cached("DELETE FROM request_journal WHERE account_id = $1").await?;
            Ok(conn.execute(&statement, &[&account.as_str()]).await?)
        })
    }

    async fn prune_journal(&self, accounts: &[AccountId], max_entries: u64, older_than: Timestamp) -> StoreResult<u64> {
        with_conn!(self, |conn| prune(&conn, accounts, max_entries, older_than).await)
    }
}
