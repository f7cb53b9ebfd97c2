//! Property: walking `paging-token` from the start visits each matching item exactly once, in
//! creation order, whatever the page size and whichever items were deleted.

use std::sync::atomic::{AtomicUsize, Ordering};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use serde_json::{json, Value};

use crate::helpers::*;

const CASES: u32 = 12;

/// One generated item: its kind (two token types / card statuses) and whether it is deleted.
fn items() -> impl Strategy<Value = (Vec<(bool, bool)>, u32)> {
    (prop::collection::vec((any::<bool>(), prop::bool::weighted(0.3)), 0..25), 1u32..=10)
}

/// Walks a list by `paging-token` (`starting_after=<token>` appended to `base`), checking each
/// page's size and headers, and returns the ids in order.
async fn walk_ids(
    app: &TestApp,
    token: &str,
    base: &str,
    limit: u32,
    expected_total: usize,
) -> Result<Vec<String>, TestCaseError> {
    let mut ids = vec![];
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let path = match &cursor {
            None => format!("{base}&limit={limit}&total=true"),
            Some(after) => format!("{base}&limit={limit}&total=true&starting_after={after}"),
        };
        let response = app.get(&path, token).await;
        let list = response.expect_json(200);
        let total = expected_total.to_string();
        prop_assert_eq!(response.header("total-count"), Some(total.as_str()));
        let page: Vec<String> =
            list.as_array().unwrap().iter().map(|item| item["id"].as_str().unwrap().to_owned()).collect();
        prop_assert!(page.len() <= limit as usize);
        ids.extend(page.iter().cloned());
        match response.header("paging-token") {
            Some(next) => {
                prop_assert_eq!(page.len(), limit as usize, "a page before the last is full");
                prop_assert_eq!(Some(next), page.last().map(String::as_str));
                // `starting_after` is appended on the first page and replaced in place (it is
                // last) on the others.
                let expected_link = format!("{base}&limit={limit}&total=true&starting_after={next}");
                prop_assert_eq!(response.header("link").map(parse_next_link), Some(expected_link));
                cursor = Some(next.to_owned());
            }
            None => {
                prop_assert_eq!(response.header("link"), None);
                return Ok(ids);
            }
        }
    }
    Err(TestCaseError::fail("paging did not end"))
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: CASES, max_shrink_iters: 16, failure_persistence: None, ..Config::default() })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
}

fn customer_tokens_property(backend: Backend) {
    if !backend_available(backend) {
        return;
    }
    let rt = runtime();
    let app = rt.block_on(spawn_app(backend));
    let admin = rt.block_on(app.admin());
    let counter = AtomicUsize::new(0);
    runner()
        .run(&items(), |(items, limit)| {
            rt.block_on(async {
                let customer = format!("prop-{}", counter.fetch_add(1, Ordering::SeqCst));
                app.create_customer(&admin.token, &json!({"customer_id": customer})).await;
                let mut all = vec![];
                let mut live = vec![];
                let mut live_email = vec![];
                for (i, (email, deleted)) in items.iter().enumerate() {
                    let kind = if *email { "sha1:email" } else { "sha1:phone" };
                    let body = json!({"type": kind, "value": format!("{customer}-{i}"), "token_id": format!("t{i}")});
                    let token = app.create_token(&admin.token, &customer, &body).await;
                    let id = token["id"].as_str().unwrap().to_owned();
                    all.push(id.clone());
                    if *deleted {
                        app.delete(&format!("{}/t{i}", tokens_path(ACCOUNT, &customer)), &admin.token)
                            .await
                            .expect_json(200);
                    } else {
                        live.push(id.clone());
                        if *email {
                            live_email.push(id);
                        }
                    }
                }
                let path = tokens_path(ACCOUNT, &customer);
                let walked =
                    walk_ids(&app, &admin.token, &format!("{path}?include_deleted=false"), limit, live.len()).await?;
                prop_assert_eq!(walked, live);
                let walked =
                    walk_ids(&app, &admin.token, &format!("{path}?include_deleted=true"), limit, all.len()).await?;
                prop_assert_eq!(walked, all);
                let walked = walk_ids(
                    &app,
                    &admin.token,
                    &format!("{path}?type=sha1%3Aemail&include_deleted=false"),
                    limit,
                    live_email.len(),
                )
                .await?;
                prop_assert_eq!(walked, live_email);
                Ok(())
            })
        })
        .unwrap();
    drop(admin);
    rt.block_on(async move { drop(app) });
}

fn card_tokens_property(backend: Backend) {
    if !backend_available(backend) {
        return;
    }
    let rt = runtime();
    let app = rt.block_on(spawn_app(backend));
    let admin = rt.block_on(app.admin());
    let counter = AtomicUsize::new(0);
    runner()
        .run(&items(), |(items, limit)| {
            rt.block_on(async {
                let customer = format!("prop-{}", counter.fetch_add(1, Ordering::SeqCst));
                let mut all = vec![];
                let mut live = vec![];
                for (suspend, deleted) in &items {
                    let card = app
                        .create_card_token(
                            &admin.token,
                            &json!({"card_brand": "visa", "payment_product_type": "x", "customer_id": customer}),
                        )
                        .await;
                    let id = card["id"].as_str().unwrap().to_owned();
                    if *suspend {
                        let response = app
                            .put_json(
                                &format!("/v1/card-tokens/{id}/status"),
                                &admin.token,
                                &json!({"status": "SUSPENDED"}),
                            )
                            .await;
                        response.expect_json(200);
                    }
                    all.push(id.clone());
                    if *deleted {
                        let response = app.delete(&format!("/v1/card-tokens/{id}"), &admin.token).await;
                        prop_assert_eq!(response.expect_json(200)["status"].clone(), Value::from("DELETED"));
                    } else {
                        live.push(id);
                    }
                }
                let base = format!("/v1/card-tokens?customer_id={customer}");
                let walked = walk_ids(&app, &admin.token, &base, limit, live.len()).await?;
                prop_assert_eq!(walked, live);
                let walked =
                    walk_ids(&app, &admin.token, &format!("{base}&include_deleted=true"), limit, all.len()).await?;
                prop_assert_eq!(walked, all);
                Ok(())
            })
        })
        .unwrap();
    drop(admin);
    rt.block_on(async move { drop(app) });
}

mod sqlite {
    #[test]
    fn walking_customer_tokens_visits_each_live_token_once_in_order() {
        super::customer_tokens_property(super::Backend::Sqlite);
    }

    #[test]
    fn walking_card_tokens_visits_each_live_token_once_in_order() {
        super::card_tokens_property(super::Backend::Sqlite);
    }
}

mod postgres {
    #[test]
    fn walking_customer_tokens_visits_each_live_token_once_in_order() {
        super::customer_tokens_property(super::Backend::Postgres);
    }

    #[test]
    fn walking_card_tokens_visits_each_live_token_once_in_order() {
        super::card_tokens_property(super::Backend::Postgres);
    }
}
