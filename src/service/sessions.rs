//! Payment-token sessions (`checkout_payment_token_session_post`, `checkout_session_get`) and
//! their completion on tokenvault's session page or through the test-account completion call:
//! an approval creates the card token (through [`Vault::create_card_token`], which announces
//! `checkout_token_add`) and a transaction that references it; the other outcomes create
//! nothing. The card number and CVC are dropped once the masked PAN is derived.

use rand::distributions::Alphanumeric;
use rand::Rng;
use serde_json::{Map, Value};

use super::{test_accounts_only, ServiceError, ServiceResult, Vault};
use crate::domain::card_token::{CardToken, CardTokenStatus, PAYMENT_TOKEN_TYPE, RECURRENCE_TOKEN_TYPE};
use crate::domain::session::{token_transaction, CreatedTokens, Outcome, PaymentTokenSession, TestCard};
use crate::domain::AccountId;

/// A Dintero-shaped id: the account, a dot, and 22 random characters
/// (`T12345678.4YmrGGyNPumBm4gPtkDSaG`).
fn checkout_id(account: &AccountId) -> String {
    let suffix: String = rand::thread_rng().sample_iter(&Alphanumeric).take(22).map(char::from).collect();
    format!("{}.{suffix}", account.as_str())
}

/// What completing a session did: where the browser goes next, and the callback to make.
#[derive(Debug, Clone)]
pub struct Completion {
    pub session: PaymentTokenSession,
    /// `return_url` with `transaction_id` or `error`, `merchant_reference` and `session_id`.
    pub redirect_url: String,
    /// The `callback_url` call, when the session has one and the outcome calls it (an approval,
    /// or any outcome with `report_error=true`).
    pub callback: Option<SessionCallback>,
}

/// The call Dintero makes to a session's `callback_url` (its `CallbackUrl` description): `GET`
/// with the redirect's parameters and `time`, or, when the URL holds `method=POST`, a `POST`
/// with the transaction as its JSON body (none when no transaction was created).
#[derive(Debug, Clone, PartialEq)]
pub struct SessionCallback {
    pub url: String,
    pub method: CallbackMethod,
}

/// How a callback is delivered: `GET` by default, `POST` when the `callback_url` asks for it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallbackMethod {
    Get,
    /// With the transaction as the body; without a body for an error callback.
    Post(Option<Map<String, Value>>),
}

fn with_query(base: &str, query: &[(&str, String)]) -> String {
    match url::Url::parse(base) {
        Ok(mut url) => {
            {
                let mut pairs = url.query_pairs_mut();
                for (key, value) in query {
                    pairs.append_pair(key, value);
                }
            }
            url.to_string()
        }
        Err(_) => base.to_owned(),
    }
}

impl Vault {
    /// Validates and stores a new `OPEN` session.
    pub async fn create_payment_token_session(
        &self,
        account: &AccountId,
        body: &Map<String, Value>,
        actor: &str,
    ) -> ServiceResult<PaymentTokenSession> {
        let session = PaymentTokenSession::from_create_body(
            body,
            account,
            checkout_id(account),
            actor,
            self.now(account).await?,
        )?;
        self.store.create_session(&session).await?;
        Ok(session)
    }

    /// A session of the caller's account; another account's is simply not found.
    pub async fn payment_token_session(&self, account: &AccountId, id: &str) -> ServiceResult<PaymentTokenSession> {
        self.store.get_session(account, id).await?.ok_or(ServiceError::NotFound("session"))
    }

    /// The session page's view of a session, found by id alone (the page is opened by the
    /// customer's browser, without an access token; the id is the account plus 22 random
    /// characters, as hard to guess as Dintero's).
    pub async fn session_for_page(&self, id: &str) -> ServiceResult<PaymentTokenSession> {
        let account = id
            .split_once('.')
            .and_then(|(aid, _)| AccountId::parse("session_id", aid).ok())
            .ok_or(ServiceError::NotFound("session"))?;
        self.payment_token_session(&account, id).await
    }

    /// [`Vault::session_for_page`] for a session that can still be completed: the page offers
    /// no choice on a completed one.
    pub async fn open_session_for_page(&self, id: &str) -> ServiceResult<PaymentTokenSession> {
        let session = self.session_for_page(id).await?;
        require_open(&session)?;
        Ok(session)
    }

    /// Completes an `OPEN` session once. Approval needs a valid test card; it creates the card
    /// token (`ACTIVE`, masked PAN and expiry only) and the transaction referencing it.
    pub async fn complete_payment_token_session(
        &self,
        mut session: PaymentTokenSession,
        outcome: Outcome,
        card: Option<TestCard>,
    ) -> ServiceResult<Completion> {
        let now = self.now(&session.account_id).await?;
        require_open(&session)?;
        if session.expired(now) {
            return Err(ServiceError::Conflict(format!("session '{}' has expired", session.id)));
        }
        session.status = outcome.status();
        session.updated_at = now;
        let mut card_tokens = Vec::new();
        if outcome == Outcome::Approve {
            let card = card.ok_or_else(|| {
                ServiceError::Invalid(crate::domain::ValidationError::single("card", "is required to approve"))
            })?;
            let transaction_id = checkout_id(&session.account_id);
            let wanted = session.token_types();
            let mut created = CreatedTokens::default();
            for (token_type, prefix, wanted) in [
                (PAYMENT_TOKEN_TYPE, "tv_pt", wanted.payment_token),
                (RECURRENCE_TOKEN_TYPE, "tv_rt", wanted.recurrence_token),
            ] {
                if !wanted {
                    continue;
                }
                let token_id = uuid::Uuid::new_v4().to_string();
                card_tokens.push(CardToken {
                    id: token_id.clone(),
                    token_type,
                    status: CardTokenStatus::Active,
                    card_brand: card.brand,
                    account_id: session.account_id.clone(),
                    payment_product_type: session.payment_product_type().to_owned(),
                    created_at: now,
                    updated_at: now,
                    token: Some(format!("{prefix}_{}", uuid::Uuid::new_v4().simple())),
                    masked_pan: Some(card.masked_pan()),
                    pan_expiry_date: Some(card.expiry_date()),
                    token_expiry_date: None,
                    links: None,
                    customer_id: session.customer_id(),
                    relationship_id: None,
                    transaction_id: Some(transaction_id.clone()),
                    external_token_references: None,
                    created_by: session.created_by.clone(),
                    deleted_at: None,
                    deleted_by: None,
                });
                if token_type == PAYMENT_TOKEN_TYPE {
                    created.payment_token_id = Some(token_id);
                } else {
                    created.recurrence_token_id = Some(token_id);
                }
            }
            session.transaction = Some(token_transaction(&session, &transaction_id, &card, &created, now));
            session.transaction_id = Some(transaction_id);
            session.card_token_id = created.payment_token_id.or(created.recurrence_token_id);
        }
        // The session is claimed first, so that two submissions cannot both create a token.
        self.store.complete_session(&session).await?;
        for token in card_tokens {
            self.create_card_token(token).await?;
        }
        let query = session.redirect_query(outcome);
        let redirect_url = with_query(session.return_url(), &query);
        let callback = session.callback_url().and_then(|callback| {
            let given: Vec<(String, String)> =
                url::Url::parse(callback).map(|u| u.query_pairs().into_owned().collect()).unwrap_or_default();
            let flag = |name: &str, value: &str| given.iter().any(|(k, v)| k == name && v.eq_ignore_ascii_case(value));
            let report_error = flag("report_error", "true");
            (outcome == Outcome::Approve || report_error).then(|| {
                let mut query = query.clone();
                query.push(("time", now.to_rfc3339()));
                SessionCallback {
                    url: with_query(callback, &query),
                    method: if flag("method", "POST") {
                        CallbackMethod::Post(session.transaction.clone())
                    } else {
                        CallbackMethod::Get
                    },
                }
            })
        });
        Ok(Completion { session, redirect_url, callback })
    }

    /// The completion call (tokenvault extension): test accounts only.
    pub async fn complete_session_for_test(
        &self,
        account: &AccountId,
        id: &str,
        outcome: Outcome,
        card: Option<TestCard>,
    ) -> ServiceResult<Completion> {
        test_accounts_only(account, "session completion calls")?;
        let session = self.payment_token_session(account, id).await?;
        self.complete_payment_token_session(session, outcome, card).await
    }

    /// Calls a session's `callback_url` (GET, or POST with the transaction for `method=POST`,
    /// as Dintero does); failures are logged, not retried. The webhook target policy applies as
    /// to deliveries: internal addresses are refused unless allowed, also after name resolution,
    /// and no redirect is followed.
    pub async fn call_session_callback(&self, callback: SessionCallback) {
        if let Err(error) = self.targets.check_destination(&callback.url).await {
            tracing::warn!(%error, "session callback refused by the target policy");
            return;
        }
        let client = self.targets.client(std::time::Duration::from_secs(10));
        let request = match callback.method {
            CallbackMethod::Get => client.get(&callback.url),
            CallbackMethod::Post(None) => client.post(&callback.url),
            CallbackMethod::Post(Some(transaction)) => client
                .post(&callback.url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(Value::Object(transaction).to_string()),
        };
        match request.send().await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => tracing::warn!(status = response.status().as_u16(), "session callback refused"),
            Err(error) => tracing::warn!(%error, "session callback failed"),
        }
    }

    /// `GET /v1/transactions/{id}`: a transaction an approved payment-token session created,
    /// with `card.payment_token` and `card.recurrence_token` when asked for (each read from its
    /// card token; a token deleted since has no `token` left to show).
    pub async fn token_transaction(
        &self,
        account: &AccountId,
        id: &str,
        includes: TransactionIncludes,
    ) -> ServiceResult<Map<String, Value>> {
        let session =
            self.store.get_session_by_transaction(account, id).await?.ok_or(ServiceError::NotFound("transaction"))?;
        let mut transaction = session.transaction.clone().ok_or(ServiceError::NotFound("transaction"))?;
        for (wanted, id_field, field) in [
            (includes.payment_token, "payment_token_id", "payment_token"),
            (includes.recurrence_token, "recurrence_token_id", "recurrence_token"),
        ] {
            let Some(Value::Object(card)) = transaction.get_mut("card") else { break };
            let Some(token_id) = card.get(id_field).and_then(Value::as_str).map(str::to_owned) else { continue };
            if wanted {
                if let Some(token) = self.card_token(account, &token_id).await?.token {
                    card.insert(field.into(), Value::String(token));
                }
            }
        }
        Ok(transaction)
    }
}

/// What `includes` asks `transactions_id_get` to add.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TransactionIncludes {
    /// `card.payment_token`
    pub payment_token: bool,
    /// `card.recurrence_token`
    pub recurrence_token: bool,
}

/// A session is completed once: later attempts (and the page) find it completed.
fn require_open(session: &PaymentTokenSession) -> ServiceResult<()> {
    if session.status == crate::domain::session::SessionStatus::Open {
        Ok(())
    } else {
        Err(ServiceError::Conflict(format!("session '{}' is already completed", session.id)))
    }
}
