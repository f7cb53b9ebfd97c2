//! Fixtures for test accounts: `tokenvault seed --account T… FILE` and the demo data of
//! `serve --dev`. Loading goes through the same validation as the API, and entries already
//! present are skipped, so loading a file twice is harmless.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{test_accounts_only, ServiceError, Vault};
use crate::domain::card_token::CardToken;
use crate::domain::customer::NewCustomer;
use crate::domain::customer_token::NewCustomerToken;
use crate::domain::token_event::{TokenEvent, TokenTypeValue};
use crate::domain::{AccountId, ValidationError};

/// The small data set `serve --dev` loads so that `curl` shows something at once.
pub const DEMO: &str = include_str!("../../fixtures/demo.json");

/// Who fixtures are `created_by`.
pub const SEED_ACTOR: &str = "tokenvault-seed";

/// A fixture file: each list holds bodies as the API takes them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fixtures {
    #[serde(default)]
    pub customers: Vec<Map<String, Value>>,
    /// Customer token bodies plus the `customer_id` they belong to.
    #[serde(default)]
    pub customer_tokens: Vec<Map<String, Value>>,
    /// `{"token": {"type", "value"}, "event": {...}}`, as `POST …/tokens/events` takes them.
    #[serde(default)]
    pub token_events: Vec<Map<String, Value>>,
    #[serde(default)]
    pub card_tokens: Vec<Map<String, Value>>,
}

/// How many entries were added, and how many were there already.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct SeedSummary {
    pub added: u64,
    pub already_present: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("the fixture file is not valid: {0}")]
    Format(#[from] serde_json::Error),
    #[error("{section}[{index}]: {error}")]
    Invalid { section: &'static str, index: usize, error: ValidationError },
    #[error(transparent)]
    Service(#[from] ServiceError),
}

/// Loads `fixtures` into the test account `account`, through the same use cases as the API.
pub async fn load(vault: &Vault, account: &AccountId, fixtures: &Fixtures) -> Result<SeedSummary, SeedError> {
    test_accounts_only(account, "fixtures")?;
    let now = vault.now(account).await?;
    let mut summary = SeedSummary::default();
    let invalid = |section, index| move |error| SeedError::Invalid { section, index, error };

    for (index, body) in fixtures.customers.iter().enumerate() {
        let customer = NewCustomer::from_body(body.clone(), SEED_ACTOR, now).map_err(invalid("customers", index))?;
        count(&mut summary, vault.create_customer(account, &customer).await)?;
    }
    for (index, body) in fixtures.customer_tokens.iter().enumerate() {
        let mut body = body.clone();
        let customer_id = match body.shift_remove("customer_id") {
            Some(Value::String(id)) => id,
            _ => return Err(invalid("customer_tokens", index)(ValidationError::single("customer_id", "is required"))),
        };
        let token = NewCustomerToken::from_body(&body, SEED_ACTOR, now).map_err(invalid("customer_tokens", index))?;
        count(&mut summary, vault.create_customer_token(account, &customer_id, token, false).await)?;
    }
    for (index, body) in fixtures.token_events.iter().enumerate() {
        let token = TokenTypeValue::from_value("token", body.get("token")).map_err(invalid("token_events", index))?;
        let event = match body.get("event") {
            Some(value) => {
                Some(TokenEvent::from_value("event", value, true, now).map_err(invalid("token_events", index))?)
            }
            None => None,
        };
        let known = vault.token_detail(account, &token, None, SEED_ACTOR, now).await?;
        let recorded = event.as_ref().is_none_or(|event| {
            known
                .events
                .iter()
                .any(|e| e.event == event.event && e.status == event.status && e.metadata == event.metadata)
        });
        if recorded {
            summary.already_present += 1;
        } else {
            vault.token_detail(account, &token, event.as_ref(), SEED_ACTOR, now).await?;
            summary.added += 1;
        }
    }
    for (index, body) in fixtures.card_tokens.iter().enumerate() {
        let card =
            CardToken::from_create_body(body, account, SEED_ACTOR, now).map_err(invalid("card_tokens", index))?;
        count(&mut summary, vault.create_card_token(card).await)?;
    }
    Ok(summary)
}

/// Counts an insert; a conflict means the entry is there already.
fn count<T>(summary: &mut SeedSummary, result: Result<T, ServiceError>) -> Result<(), ServiceError> {
    match result {
        Ok(_) => summary.added += 1,
        Err(ServiceError::Conflict(_) | ServiceError::Duplicate(..)) => summary.already_present += 1,
        Err(error) => return Err(error),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_fixtures_parse() {
        let fixtures: Fixtures = serde_json::from_str(DEMO).unwrap();
        assert_eq!(
            (
                fixtures.customers.len(),
                fixtures.customer_tokens.len(),
                fixtures.token_events.len(),
                fixtures.card_tokens.len()
            ),
            (2, 3, 2, 2)
        );
    }
}
