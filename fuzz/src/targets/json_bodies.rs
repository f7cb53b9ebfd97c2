//! JSON request bodies → domain validation: customers, customer tokens, token type/value pairs
//! and token events, card-token create bodies (also each line of a card-token import) and
//! webhook subscriptions. The body is parsed as the `JsonObject` extractor does, then handed to
//! every validator. Invariants: a refusal names at least one field; what is accepted is
//! serialisable and satisfies the documented rules (identifiers, ACTIVE status, the caller's
//! account, http(s) hook URLs, distinct known events).

use serde_json::{Map, Value};
use tokenvault::domain::card_token::{CardToken, CardTokenStatus};
use tokenvault::domain::customer::NewCustomer;
use tokenvault::domain::customer_token::NewCustomerToken;
use tokenvault::domain::token_event::{TokenEvent, TokenTypeValue};
use tokenvault::domain::validation::identifier;
use tokenvault::domain::webhook::HookSubscription;
use tokenvault::domain::{Timestamp, ValidationError};

use super::fixture;

fn refused<T>(result: &Result<T, ValidationError>) {
    if let Err(error) = result {
        assert!(!error.errors.is_empty(), "a refusal without a field error");
    }
}

/// The target's body: one input, as libFuzzer hands it over.
pub fn run(data: &[u8]) {
    // The extractor's rule: only a JSON object is a body.
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else { return };
    let now = Timestamp::from_millis(1_760_000_000_000);
    let account = &fixture().account;

    let customer = NewCustomer::from_body(body.clone(), "fuzz", now);
    refused(&customer);
    if let Ok(customer) = customer {
        assert!(identifier("customer_id", &customer.customer_id).is_ok());
        assert_eq!(customer.attributes.get("type"), Some(&Value::String(customer.customer_type.clone())));
        for read_only in ["id", "created_at", "created_by", "password", "pin"] {
            assert!(!customer.attributes.contains_key(read_only), "{read_only} kept");
        }
        serde_json::to_string(&customer.attributes).expect("serialise attributes");
    }

    let token = NewCustomerToken::from_body(&body, "fuzz", now);
    refused(&token);

    let pair = TokenTypeValue::from_value("token", Some(&Value::Object(body.clone())));
    refused(&pair);
    if let Ok(pair) = pair {
        serde_json::to_string(&pair).expect("serialise pair");
    }
    for field in ["event", "token_event"] {
        if let Some(value) = body.get(field) {
            for required in [true, false] {
                let event = TokenEvent::from_value(field, value, required, now);
                refused(&event);
                if let Ok(event) = event {
                    serde_json::to_string(&event).expect("serialise event");
                }
            }
        }
    }
    let event = TokenEvent::from_value("event", &Value::Object(body.clone()), true, now);
    refused(&event);

    let card = CardToken::from_create_body(&body, account, "fuzz", now);
    refused(&card);
    if let Ok(card) = card {
        assert!(identifier("id", &card.id).is_ok(), "card id {:?}", card.id);
        assert_eq!(card.status, CardTokenStatus::Active);
        assert_eq!(&card.account_id, account);
        let rendered = serde_json::to_value(&card).expect("serialise card");
        assert!(rendered.is_object());
    }

    let hook = HookSubscription::from_body(&body, account, "fuzz", now);
    refused(&hook);
    if let Ok((hook, secret)) = hook {
        assert!(hook.config.url.starts_with("http://") || hook.config.url.starts_with("https://"));
        assert!(!hook.events.is_empty());
        let mut events = hook.events.clone();
        events.sort();
        events.dedup();
        assert_eq!(events.len(), hook.events.len(), "duplicate events kept");
        if let Some(secret) = secret {
            assert!((8..=256).contains(&secret.len()));
        }
        serde_json::to_string(&hook).expect("serialise hook");
    }
    let _: Map<String, Value> = body;
}
