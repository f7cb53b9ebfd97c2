//! Performance target 3 on PostgreSQL (list latency flat in the store's size): every statement a
//! list runs — customers, customer tokens, card tokens, token events; each filter, with a cursor
//! and a total — is answered by an index search. The statements are the ones the list functions
//! really prepared (read back from `pg_prepared_statements` on the connection that ran them),
//! planned generically (`plan_cache_mode = force_generic_plan`, as a prepared statement runs after
//! its fifth execution) on tables filled with other accounts' rows and analysed, with sequential
//! scans priced out (`enable_seqscan = off`: on tables this small the planner would rightly
//! prefer one, so without it the check would say nothing).
//! `enable_seqscan = off` only adds a penalty: a table without a usable index is still read by a
//! `Seq Scan`, which fails the check — and so does a sort of more than one row (the order must
//! come from an index) or
//! an index scan with no `Index Cond` (a walk over a whole index). The test drops two indexes at
//! the end and checks that the plans then fail, so the check cannot pass by construction.
//! (A sort of one row — the customer found through the unique live type+value index — passes.)

use super::*;

/// Nodes of an `EXPLAIN (FORMAT JSON)` plan that make it fail, described.
fn plan_offences(node: &Value, out: &mut Vec<String>) {
    let kind = node["Node Type"].as_str().unwrap_or("?");
    let relation = node["Relation Name"].as_str().unwrap_or("");
    match kind {
        "Seq Scan" => out.push(format!("Seq Scan on {relation}")),
        // A sort of at most one row (a unique-key lookup's result) costs nothing; any other means
        // the order does not come from an index.
        "Sort" | "Incremental Sort" if node["Plan Rows"].as_f64().unwrap_or(2.0) > 1.0 => {
            out.push(format!("{kind} by {}", node["Sort Key"]))
        }
        "Index Scan" | "Index Only Scan" | "Bitmap Index Scan" if node.get("Index Cond").is_none() => {
            out.push(format!("{kind} using {} without an Index Cond (a whole index)", node["Index Name"]))
        }
        _ => {}
    }
    for child in node["Plans"].as_array().into_iter().flatten() {
        plan_offences(child, out);
    }
}

/// Each statement with its offences (statements whose plan passes are left out).
async fn offenders(client: &tokio_postgres::Client, statements: &[(String, Vec<String>)]) -> Vec<String> {
    client.batch_execute("SET enable_seqscan = off; SET plan_cache_mode = force_generic_plan").await.unwrap();
    let mut found = Vec::new();
    for (sql, types) in statements {
        let prepare = if types.is_empty() {
            format!("PREPARE tv_plan_check AS {sql}")
        } else {
            format!("PREPARE tv_plan_check ({}) AS {sql}", types.join(", "))
        };
        client.batch_execute(&prepare).await.unwrap_or_else(|e| panic!("{prepare}: {e}"));
        let nulls = vec!["NULL"; types.len()].join(", ");
        let explain = if types.is_empty() {
            "EXPLAIN (FORMAT JSON) EXECUTE tv_plan_check".to_owned()
        } else {
            format!("EXPLAIN (FORMAT JSON) EXECUTE tv_plan_check ({nulls})")
        };
        let rows = client.simple_query(&explain).await.unwrap_or_else(|e| panic!("{explain}: {e}"));
        let json: String = rows
            .iter()
            .filter_map(|m| match m {
                tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
                _ => None,
            })
            .collect();
        client.batch_execute("DEALLOCATE tv_plan_check").await.unwrap();
        let plan: Value = serde_json::from_str(&json).unwrap();
        let mut offences = Vec::new();
        plan_offences(&plan[0]["Plan"], &mut offences);
        if !offences.is_empty() {
            found.push(format!("{sql}\n  -> {}", offences.join("\n  -> ")));
        }
    }
    client.batch_execute("RESET enable_seqscan; RESET plan_cache_mode").await.unwrap();
    found
}

#[tokio::test]
async fn every_list_query_searches_an_index() {
    let Some(db) = TestDb::create().await else { return };
    let store =
        PostgresStore::connect(&db.url, &StoreOptions { pool_size: 1, acquire_timeout: Duration::from_secs(5) })
            .await
            .expect("connect");
    let aid = account();
    let customer = store.create_customer(&aid, &new_customer(json!({"customer_id": "c1"}))).await.unwrap();
    let token = store
        .create_customer_token(
            &aid,
            "c1",
            &new_token(json!({"token_id": "t1", "type": "sha1:email", "value": "v1"})),
            false,
        )
        .await
        .unwrap();
    let card = store
        .create_card_token(
            &new_card(json!({"card_brand": "visa", "payment_product_type": "bambora.creditcard",
                             "customer_id": "c1", "relationship_id": "r1"})),
            None,
        )
        .await
        .unwrap();
    let email = tv("sha1:email", "e1");
    store.token_detail(&aid, &email, Some(&event("seen", None, 5)), "x", at(5)).await.unwrap();
    store.clear_token_events(&aid, &email, Some(&event("gone", Some("DELETED"), 5)), "x", at(5)).await.unwrap();
    let entry = store.list_token_events(&aid, None, &page(10, None)).await.unwrap().items[0].id.to_string();

    // 500 other accounts' rows, so the planner has statistics of tables that are not empty (on an
    // empty one it happily walks a whole index instead of a seq scan, which says nothing) and
    // sees an account as the small part of a table it is in a shared database.
    db.sql()
        .await
        .batch_execute(
            "INSERT INTO customers (id, account_id, customer_id, customer_type, attributes, created_at, created_by, updated_at)
               SELECT 'fill-' || i, 'T9' || lpad((i % 500)::text, 7, '0'), 'fill-' || i, 'customer', '{}', 0, 'x', 0
               FROM generate_series(1, 5000) i;
             INSERT INTO customer_tokens (id, account_id, customer_seq, token_id, token_type, value, created_at, created_by, updated_at)
               SELECT 'fill-' || i, c.account_id, c.seq, 't' || i, 'sha1:email', 'fill-' || i, 0, 'x', 0
               FROM generate_series(1, 50000) i JOIN customers c ON c.id = 'fill-' || (1 + i % 5000);
             INSERT INTO card_tokens (account_id, id, status, card_brand, payment_product_type, customer_id, relationship_id,
                                      created_at, created_by, updated_at)
               SELECT 'T9' || lpad((i % 500)::text, 7, '0'), 'fill-' || i, 'ACTIVE', 'visa', 'x', 'fill-' || (i % 5000), 'r' || (i % 5000), 0, 'x', 0
               FROM generate_series(1, 50000) i;
             INSERT INTO token_event_entries (id, account_id, token_type, value, updated_at)
               SELECT 'fill-' || i, 'T9' || lpad((i % 500)::text, 7, '0'), 'sha1:email', 'fill-' || i, i FROM generate_series(1, 50000) i;
             ANALYZE",
        )
        .await
        .unwrap();

    // The pool's only connection: what it prepared before the lists is not theirs.
    let mut conn = store.conn().await.unwrap();
    let prepared = "SELECT statement, parameter_types::text[] FROM pg_prepared_statements WHERE NOT from_sql";
    let before: Vec<String> =
        conn.query(prepared, &[]).await.unwrap().iter().map(|row| row.get::<_, String>(0)).collect();
    let pages = |cursor: String| [page(10, None), page(10, Some(cursor))];
    // A customer's tokens are listed by one statement that holds the count when asked for one:
    // each list, with a total and without, is a statement of its own.
    for mut request in pages(token.id.to_string()) {
        for include_total in [true, false] {
            request.include_total = include_total;
            for filter in crate::store::conformance::customer_token_filters() {
                customers::list_customer_tokens(&mut conn, &aid, "c1", &filter, &request).await.unwrap();
            }
        }
    }
    for request in pages(customer.id.to_string()) {
        for filter in crate::store::conformance::customer_filters() {
            customers::list_customers(&mut conn, &aid, &filter, &request).await.unwrap();
        }
    }
    // Card tokens too: one statement per list, with a total and without.
    for mut request in pages(card.card.id.clone()) {
        for include_total in [true, false] {
            request.include_total = include_total;
            for filter in crate::store::conformance::card_token_filters() {
                card_tokens::list_card_tokens(&mut conn, &aid, &filter, &request).await.unwrap();
            }
        }
    }
    for request in pages(entry) {
        for since in [None, Some(at(5))] {
            token_events::list_token_events(&mut conn, &aid, since, &request).await.unwrap();
        }
        token_events::list_deleted_token_events(&mut conn, &aid, at(5), &request).await.unwrap();
    }
    let statements: Vec<(String, Vec<String>)> = conn
        .query(prepared, &[])
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get::<_, String>(0), row.get::<_, Vec<String>>(1)))
        .filter(|(sql, _)| !before.contains(sql))
        .collect();
    drop(conn);
    assert!(statements.len() >= 16, "too few list statements prepared: {statements:#?}");
    for table in ["customers", "customer_tokens", "card_tokens", "token_event_entries"] {
        assert!(
            statements.iter().any(|(sql, _)| sql.contains(&format!("SELECT COUNT(*) FROM {table} "))),
            "no counted list of {table} among {statements:#?}"
        );
    }

    let client = db.sql().await;
    let found = offenders(&client, &statements).await;
    assert!(found.is_empty(), "list statements not answered by an index search:\n{}", found.join("\n\n"));

    // The check can fail: without the index that orders a customer's tokens, or the one that
    // orders an account's card tokens, those lists sort (or scan), and are reported.
    client.batch_execute("DROP INDEX customer_tokens_by_customer; DROP INDEX card_tokens_by_account").await.unwrap();
    let found = offenders(&client, &statements).await;
    let hit = |table: &str| found.iter().any(|o| o.contains(&format!(" FROM {table} ")));
    assert!(hit("customer_tokens"), "dropping customer_tokens_by_customer went unnoticed: {found:#?}");
    assert!(hit("card_tokens"), "dropping card_tokens_by_account went unnoticed: {found:#?}");
}
