//! Delivers webhook events from the durable outbox: at least once, signed like Dintero's
//! (`event-signature`: HMAC-SHA1 of the body keyed with the subscription's secret), with
//! exponential back-off up to Dintero's 5 attempts, and safe with several instances (deliveries
//! are leased). Deliveries reach only the targets [`super::webhook_targets`] allows, checked after
//! DNS resolution, and follow no redirects. Every attempt is recorded (status, latency, error,
//! the request and the start of the answer) with its outcome, for Dintero's deliveries API; a
//! subscription whose deliveries keep failing is deleted, as Dintero does.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha1::Sha1;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::webhook_targets::TargetPolicy;
use super::Vault;
use crate::domain::webhook::{
    bounded, retry_delay_millis, DeliveryAttempt, DeliveryResult, WebhookDelivery, DEFAULT_DELETE_AFTER_FAILURES,
    DEFAULT_MAX_ATTEMPTS, MAX_ERROR_CHARS, MAX_HEADER_VALUE_CHARS, MAX_RESPONSE_BODY_BYTES, MAX_RESPONSE_HEADERS,
};
use crate::domain::Timestamp;
use crate::store::Store;

/// Deliveries taken per round.
const BATCH: u32 = 32;
/// How long a taken delivery is reserved for this worker.
const LEASE: Duration = Duration::from_secs(60);
const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// Beyond the send timeout, how long a stop waits for the round in flight to be recorded.
const STOP_SLACK: Duration = Duration::from_secs(2);

/// Tuning of the delivery loop.
#[derive(Debug, Clone, Copy)]
pub struct WebhookSettings {
    /// Delay before the first retry; doubles per failure up to an hour.
    pub retry_base: Duration,
    /// How often the outbox is polled when nothing wakes the worker.
    pub poll_interval: Duration,
    /// How long delivered and given-up deliveries stay in the outbox (for inspection) before the
    /// worker deletes them; pending ones stay until they are done.
    pub retention: Duration,
    /// Let subscriptions and deliveries reach loopback, private, link-local and other internal
    /// addresses (local development: `--webhook-allow-private-targets`, on with `serve --dev`).
    /// Off, such targets are refused at subscription and again after resolution on delivery.
    pub allow_private_targets: bool,
    /// Attempts per delivery before it is given up (`webhook_max_attempts`; Dintero's 5).
    pub max_attempts: u32,
    /// Deliveries given up in a row after which the subscription is deleted
    /// (`webhook_delete_after_failures`; 0: never). Dintero deletes such hooks without saying
    /// after how many.
    pub delete_after_failures: u32,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            retry_base: Duration::from_secs(10),
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(7 * 86_400),
            allow_private_targets: false,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            delete_after_failures: DEFAULT_DELETE_AFTER_FAILURES,
        }
    }
}

/// How often the worker prunes finished deliveries, and how many it deletes per transaction.
const PRUNE_INTERVAL: Duration = Duration::from_secs(3600);
const PRUNE_BATCH: u32 = 1000;

/// Deletes the deliveries finished longer than `retention` ago, a batch at a time.
async fn prune(store: &dyn Store, retention: Duration) {
    let cutoff = Timestamp::from_millis(Timestamp::now().millis() - retention.as_millis() as i64);
    loop {
        match store.prune_webhook_outbox(cutoff, PRUNE_BATCH).await {
            Ok(pruned) if pruned == u64::from(PRUNE_BATCH) => continue,
            Ok(pruned) => {
                if pruned > 0 {
                    tracing::debug!(pruned, "pruned finished webhook deliveries");
                }
                return;
            }
            Err(error) => {
                tracing::warn!(%error, "could not prune the webhook outbox");
                return;
            }
        }
    }
}

/// The signature Dintero sends in `event-signature`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = <Hmac<Sha1> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The running delivery loop.
pub struct Worker {
    task: JoinHandle<()>,
    stopping: Arc<AtomicBool>,
    wake: Arc<Notify>,
}

impl Worker {
    /// Stops after the round in flight: its attempts finish (each is bounded by the send
    /// timeout) and are recorded, so that a clean restart strands no lease. Only a round that
    /// outlasts the grace period is cut short; its leases then run out as after a crash.
    pub async fn stop(mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        if tokio::time::timeout(SEND_TIMEOUT + STOP_SLACK, &mut self.task).await.is_err() {
            tracing::warn!("the webhook worker did not stop in time; its leased deliveries will be retried later");
            self.task.abort();
            let _ = self.task.await;
        }
    }
}

/// Starts the delivery loop; the vault's outbox bell makes it look at the outbox at once (after a
/// card-token change) instead of at the next poll.
pub fn spawn(vault: Arc<Vault>, settings: WebhookSettings) -> Worker {
    let wake = vault.outbox.clone();
    let policy = TargetPolicy { allow_private: settings.allow_private_targets };
    let client = policy.client(SEND_TIMEOUT);
    let stopping = Arc::new(AtomicBool::new(false));
    let (flag, woken) = (stopping.clone(), wake.clone());
    let task = tokio::spawn(async move {
        let mut pruned_at: Option<std::time::Instant> = None;
        while !flag.load(Ordering::SeqCst) {
            if pruned_at.is_none_or(|at| at.elapsed() >= PRUNE_INTERVAL) {
                prune(vault.store.as_ref(), settings.retention).await;
                pruned_at = Some(std::time::Instant::now());
            }
            let now = Timestamp::now();
            let lease_until = now.plus_seconds(LEASE.as_secs() as i64);
            match vault.store.claim_webhook_deliveries(now, lease_until, BATCH).await {
                Ok(deliveries) if !deliveries.is_empty() => {
                    let sends = deliveries.into_iter().map(|delivery| {
                        let (vault, client) = (vault.clone(), client.clone());
                        async move {
                            let (result, attempt) = send(&client, &vault, &delivery, settings).await;
                            let recorded = vault
                                .store
                                .complete_webhook_delivery(delivery.id, &result, &attempt, settings.delete_after_failures)
                                .await;
                            match recorded {
                                Ok(Some(subscription)) => tracing::warn!(
                                    %subscription,
                                    failures = settings.delete_after_failures,
                                    "deleted a webhook subscription after consecutive failed deliveries"
                                ),
                                Ok(None) => {}
                                Err(error) => {
                                    tracing::warn!(%error, delivery = %delivery.id, "could not record a webhook attempt")
                                }
                            }
                        }
                    });
                    futures_join_all(sends).await;
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "could not read the webhook outbox"),
            }
            tokio::select! {
                () = woken.notified() => {}
                () = tokio::time::sleep(settings.poll_interval) => {}
            }
        }
    });
    Worker { task, stopping, wake }
}

async fn futures_join_all<F: std::future::Future<Output = ()> + Send + 'static>(futures: impl Iterator<Item = F>) {
    let mut set = tokio::task::JoinSet::new();
    for future in futures {
        set.spawn(future);
    }
    while set.join_next().await.is_some() {}
}

/// One attempt: what happened to the delivery, and the record of the attempt.
async fn send(
    client: &reqwest::Client,
    vault: &Vault,
    delivery: &WebhookDelivery,
    settings: WebhookSettings,
) -> (DeliveryResult, DeliveryAttempt) {
    let policy = TargetPolicy { allow_private: settings.allow_private_targets };
    let secret = match vault.ensure_keys([delivery.sealed_secret.as_slice()]).await {
        Ok(()) => vault
            .cipher
            .open(&delivery.account_id, &delivery.subscription_id.to_string(), &delivery.sealed_secret)
            .map_err(|error| error.to_string()),
        Err(error) => Err(error.to_string()),
    };
    let attempted_at = account_now(vault, &delivery.account_id).await;
    let started = std::time::Instant::now();
    let mut attempt = DeliveryAttempt {
        attempted_at,
        duration_millis: 0,
        status: None,
        error: None,
        request_headers: Vec::new(),
        response_headers: Vec::new(),
        response_body: None,
    };
    let outcome = match (policy.check_delivery(&delivery.url, &delivery.account_id), secret) {
        (Err(refused), _) => Err(format!("refused before sending: the URL {refused}")),
        (Ok(()), Err(error)) => Err(error),
        (Ok(()), Ok(secret)) => {
            let headers = [
                ("content-type", "application/json".to_owned()),
                ("event", delivery.event.clone()),
                ("event-delivery", delivery.event_delivery.to_string()),
                ("event-signature", signature(&secret, delivery.body.as_bytes())),
            ];
            let mut request = client.post(&delivery.url);
            for (name, value) in &headers {
                request = request.header(*name, value);
            }
            attempt.request_headers = headers.iter().map(|(name, value)| ((*name).to_owned(), value.clone())).collect();
            attempt.request_headers.push(("user-agent".to_owned(), super::webhook_targets::USER_AGENT.to_owned()));
            match request.body(delivery.body.clone()).send().await {
                Err(error) => Err(with_causes(&error.without_url())),
                Ok(response) => {
                    let status = response.status();
                    attempt.status = Some(status.as_u16());
                    attempt.response_headers = response
                        .headers()
                        .iter()
                        .filter(|(name, _)| *name != reqwest::header::SET_COOKIE)
                        .take(MAX_RESPONSE_HEADERS)
                        .map(|(name, value)| {
                            (
                                name.as_str().to_owned(),
                                bounded(&String::from_utf8_lossy(value.as_bytes()), MAX_HEADER_VALUE_CHARS),
                            )
                        })
                        .collect();
                    attempt.response_body = Some(read_bounded(response).await);
                    if status.is_success() {
                        Ok(())
                    } else {
                        Err(format!("the receiver answered {status}"))
                    }
                }
            }
        }
    };
    attempt.duration_millis = i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX);
    let finished_at = attempted_at.plus_millis(attempt.duration_millis);
    let result = match outcome {
        Ok(()) => DeliveryResult::Delivered { at: finished_at },
        Err(error) if delivery.attempts + 1 >= settings.max_attempts.max(1) => {
            tracing::warn!(delivery = %delivery.id, %error, "giving up on a webhook delivery");
            attempt.error = Some(bounded(&error, MAX_ERROR_CHARS));
            DeliveryResult::GiveUp { error }
        }
        Err(error) => {
            let delay = retry_delay_millis(settings.retry_base.as_millis() as i64, delivery.attempts);
            tracing::info!(delivery = %delivery.id, %error, delay_ms = delay, "webhook delivery failed; will retry");
            attempt.error = Some(bounded(&error, MAX_ERROR_CHARS));
            DeliveryResult::Retry { at: finished_at.plus_millis(delay), error }
        }
    };
    (result, attempt)
}

/// The account's "now" (its `sandbox/clock`), in which a delivery's moments and retry schedule
/// are kept; real time when the clock cannot be read (the attempt goes ahead regardless).
async fn account_now(vault: &Vault, account: &crate::domain::AccountId) -> Timestamp {
    vault.now(account).await.unwrap_or_else(|error| {
        tracing::warn!(%error, "could not read the account's clock; the attempt is timed in real time");
        Timestamp::now()
    })
}

/// The first [`MAX_RESPONSE_BODY_BYTES`] of an answer (the rest is not read), as text.
async fn read_bounded(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while body.len() < MAX_RESPONSE_BODY_BYTES {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    let cut = body.len() > MAX_RESPONSE_BODY_BYTES;
    body.truncate(MAX_RESPONSE_BODY_BYTES);
    let mut text = String::from_utf8_lossy(&body).into_owned();
    if cut {
        // A cut may split a character: drop the replacement it left.
        if text.ends_with('\u{FFFD}') {
            text.pop();
        }
        text.push('…');
    }
    text
}

/// An error and its causes, `outer: inner: …`: reqwest's own text alone ("error sending
/// request") does not say that a target was refused or a connection failed.
fn with_causes(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        cause = inner.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hex_hmac_sha1() {
        // RFC 2202 test case 2.
        assert_eq!(signature("Jefe", b"what do ya want for nothing?"), "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    }
}
