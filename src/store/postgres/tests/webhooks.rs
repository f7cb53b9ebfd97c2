//! PostgreSQL-specific webhook checks: what must hold with several instances on one database.

use std::sync::Arc;

use serde_json::json;

use super::{account, new_card, TestDb};
use crate::domain::webhook::{HookSubscription, EVENTS};
use crate::domain::Timestamp;
use crate::store::prelude::*;

fn subscription() -> HookSubscription {
    let body = json!({"config": {"url": "https://hooks.example/race"}, "events": EVENTS});
    HookSubscription::from_body(body.as_object().unwrap(), &account(), "client", Timestamp::now()).unwrap().0
}

/// A subscription deleted while card tokens are being created on two instances leaves no
/// pending delivery behind: each change either committed its rows before the delete (which then
/// drops them) or ran after it and wrote none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_subscription_during_changes_leaves_no_pending_rows() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [Arc::new(db.store().await), Arc::new(db.store().await)];
    let sql = db.sql().await;
    for round in 0..6 {
        let doomed = subscription();
        stores[0].create_hook_subscription(&doomed, b"sealed").await.unwrap();
        let mut creates = tokio::task::JoinSet::new();
        for i in 0..24 {
            let store = Arc::clone(&stores[i % 2]);
            creates.spawn(async move {
                store.create_card_token(&new_card(json!({"id": format!("ct-{round}-{i}"), "card_brand": "visa", "payment_product_type": "bambora.creditcard"})), None).await.unwrap();
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(2 * round)).await;
        stores[round as usize % 2]
            .delete_hook_subscription(&account(), doomed.id, "admin", Timestamp::now())
            .await
            .unwrap();
        while let Some(created) = creates.join_next().await {
            created.unwrap();
        }
        let left: i64 = sql
            .query_one(
                "SELECT COUNT(*) FROM webhook_outbox \
                 WHERE subscription_id = $1 AND delivered_at IS NULL AND gave_up_at IS NULL",
                &[&doomed.id.to_string()],
            )
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "round {round}: pending rows outlived their subscription");
    }
    // Every delivery still pending belongs to a live subscription.
    let orphans: i64 = sql
        .query_one(
            "SELECT COUNT(*) FROM webhook_outbox o WHERE o.delivered_at IS NULL AND o.gave_up_at IS NULL \
             AND NOT EXISTS (SELECT 1 FROM hook_subscriptions s WHERE s.id = o.subscription_id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(orphans, 0);
}

/// Workers on two instances draining one outbox take every delivery exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_on_two_instances_never_share_a_delivery() {
    let Some(db) = TestDb::create().await else {
        return;
    };
    let stores: [Arc<dyn Store>; 2] = [Arc::new(db.store().await), Arc::new(db.store().await)];
    stores[0].create_hook_subscription(&subscription(), b"sealed").await.unwrap();
    let batch: Vec<_> = (0..120)
        .map(|i| {
            let body =
                json!({"id": format!("ct-{i}"), "card_brand": "visa", "payment_product_type": "bambora.creditcard"});
            (new_card(body), None)
        })
        .collect();
    stores[1].import_card_tokens(&batch).await.unwrap();

    let now = Timestamp::now().plus_seconds(1);
    let mut workers = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let store = Arc::clone(&stores[worker % 2]);
        workers.spawn(async move {
            let mut taken = Vec::new();
            loop {
                let claimed = store.claim_webhook_deliveries(now, now.plus_seconds(60), 7).await.unwrap();
                if claimed.is_empty() {
                    return taken;
                }
                taken.extend(claimed.into_iter().map(|d| d.id));
            }
        });
    }
    let mut taken = Vec::new();
    while let Some(ids) = workers.join_next().await {
        taken.extend(ids.unwrap());
    }
    let claims = taken.len();
    taken.sort_unstable();
    taken.dedup();
    // The 120 card tokens' events and the subscription's ping.
    assert_eq!((claims, taken.len()), (121, 121));
}
