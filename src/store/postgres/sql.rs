//! SQL helpers the aggregates share: the audit append, keyset-paged list queries and their
//! snapshots, the per-list insert lock, and compare-and-set rewrites.

use deadpool_postgres::{GenericClient, Object};
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, Row};

use crate::domain::audit::NewAuditRecord;
use crate::domain::PageRequest;
use crate::store::StoreResult;

/// Sets `column` of each row (by `seq`) to its new value where the row still holds the old one,
/// in one transaction, so that a change made meanwhile wins; returns how many rows changed. For
/// rewrites that walk a table beside running servers (key rotation, sealing token values).
pub(super) async fn compare_and_set<V: ToSql + Sync>(
    conn: &mut Object,
    table: &str,
    column: &str,
    changes: Vec<(i64, V, V)>,
) -> StoreResult<u64> {
    let tx = conn.transaction().await?;
    let statement =
        tx.prepare_cached(&format!("UPDATE {table} SET {column} = $1 WHERE seq = $2 AND {column} = $3")).await?;
    let mut changed = 0;
    for (row, old, new) in changes {
        changed += tx.execute(&statement, &[&new, &row, &old]).await?;
    }
    tx.commit().await?;
    Ok(changed)
}

/// Appends one audit record; callers pass their transaction so the record commits with the
/// change it describes.
pub(super) async fn append_audit(client: &impl GenericClient, record: NewAuditRecord) -> StoreResult<()> {
    let statement = client
        .prepare_cached(
            "INSERT INTO audit_log (at, account_id, actor, action, resource_type, resource_id, details) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .await?;
    let details = record.details.to_string();
    client
        .execute(
            &statement,
            &[
                &record.at.millis(),
                &record.account_id,
                &record.actor,
                &record.action,
                &record.resource_type,
                &record.resource_id,
                &details,
            ],
        )
        .await?;
    Ok(())
}

/// A keyset-paged list query: filters (shared by the page and its count), an optional cursor
/// condition and the page order. Parameters are numbered as they are bound, filters first, so
/// that the count query can use a prefix of them.
pub(super) struct ListQuery<'a> {
    from: &'static str,
    columns: &'static str,
    filters: Vec<String>,
    params: Vec<&'a (dyn ToSql + Sync)>,
    filter_params: Option<usize>,
    cursor: Option<String>,
}

impl<'a> ListQuery<'a> {
    pub(super) fn new(from: &'static str, columns: &'static str) -> Self {
        Self { from, columns, filters: Vec::new(), params: Vec::new(), filter_params: None, cursor: None }
    }

    /// Binds a parameter and returns its placeholder.
    pub(super) fn bind(&mut self, value: &'a (dyn ToSql + Sync)) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    pub(super) fn filter(&mut self, clause: String) {
        self.filters.push(clause);
    }

    /// Restricts the page (not the count) to items after the cursor; call after all filters.
    pub(super) fn after(&mut self, build: impl FnOnce(&mut Self) -> String) {
        self.filter_params = Some(self.params.len());
        let clause = build(self);
        self.cursor = Some(clause);
    }

    pub(super) async fn fetch(
        mut self,
        client: &impl GenericClient,
        order_by: &str,
        limit: &'a i64,
        include_total: bool,
    ) -> StoreResult<(Vec<Row>, Option<u64>)> {
        let filter_params = self.filter_params.unwrap_or(self.params.len());
        let where_filters = self.filters.join(" AND ");
        let total = if include_total {
            let sql = format!("SELECT COUNT(*) FROM {} WHERE {}", self.from, where_filters);
            let statement = client.prepare_cached(&sql).await?;
            let count: i64 = client.query_one(&statement, &self.params[..filter_params]).await?.try_get(0)?;
            Some(u64::try_from(count).unwrap_or_default())
        } else {
            None
        };
        let mut conditions = where_filters;
        if let Some(cursor) = &self.cursor {
            conditions = format!("{conditions} AND {cursor}");
        }
        let limit_placeholder = self.bind(limit);
        let sql = format!(
            "SELECT {} FROM {} WHERE {} ORDER BY {} LIMIT {}",
            self.columns, self.from, conditions, order_by, limit_placeholder
        );
        let statement = client.prepare_cached(&sql).await?;
        let rows = client.query(&statement, &self.params).await?;
        Ok((rows, total))
    }
}

/// `limit + 1`: the extra row only tells whether another page follows.
pub(super) fn overfetch(page: &PageRequest) -> i64 {
    i64::from(page.limit) + 1
}

/// Escapes `%`, `_` and `\` so a client's prefix matches literally in `LIKE … ESCAPE '\'`.
pub(super) fn like_prefix(prefix: &str) -> String {
    let mut pattern = String::with_capacity(prefix.len() + 1);
    for c in prefix.chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// A read-only transaction on one snapshot, so a page, its cursor and its count agree.
pub(super) async fn snapshot(conn: &mut Object) -> StoreResult<deadpool_postgres::Transaction<'_>> {
    Ok(conn.build_transaction().isolation_level(IsolationLevel::RepeatableRead).read_only(true).start().await?)
}

/// Ends a [`snapshot`] without waiting on the server: a read-only transaction has nothing to
/// commit, and dropping it sends `ROLLBACK` without awaiting the answer (tokio-postgres queues
/// it ahead of the connection's next statement). One round trip fewer per list.
pub(super) fn end_snapshot(tx: deadpool_postgres::Transaction<'_>) {
    drop(tx);
}

/// Serialises the inserts into one account-wide list (`customers`, `card_tokens`,
/// `token_event_entries`) until the transaction ends. Call it before the insert allocates a
/// `seq`.
///
/// Why: lists are keyset-paged by `seq`, and an identity value is allocated when a row is
/// inserted but becomes visible only when its transaction commits. Two concurrent inserts can
/// commit in the opposite order of their `seq`s; a client paging meanwhile can then see the
/// higher one, move its cursor past it, and never see the lower one once it commits. Holding this
/// lock from before `seq` allocation until commit makes `seq` order equal commit order within
/// the list, so everything below a cursor was already visible when the cursor was handed out.
///
/// Why a lock rather than another cursor: the alternatives (paging only up to the oldest
/// in-flight transaction's snapshot `xmin`, or a commit-time sequence) need per-row transaction
/// ids or a second ordering column and still let a page "wait" on a slow writer. The price of the
/// lock is that inserts into one account's list (not reads, updates or other accounts) take turns
/// for the length of their transaction: a few milliseconds each. A customer's tokens use the
/// customer row's lock instead (see `customers::live_customer_seq`). SQLite needs none of this: its
/// single writer commits in `seq` order anyway.
pub(super) async fn lock_list(client: &impl GenericClient, list: &str, account: &str) -> StoreResult<()> {
    let statement = client
        .prepare_cached("SELECT pg_advisory_xact_lock(hashtextextended('tokenvault list ' || $1 || ' ' || $2, 0))")
        .await?;
    client.execute(&statement, &[&list, &account]).await?;
    Ok(())
}
