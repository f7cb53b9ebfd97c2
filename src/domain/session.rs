//! Payment-token sessions (`checkout_payment_token_session_post`) and the transactions their
//! completion creates (`transactions_id_get`), with the validation Dintero's spec states and the
//! test cards a tester may enter. The card number and CVC never leave [`TestCard`]: only the BIN,
//! the last four digits and the expiry are kept.

use std::fmt;
use std::str::FromStr;

use serde_json::{json, Map, Value};

use super::validation::{FieldError, ValidationError};
use super::{AccountId, Timestamp};

/// Where a session stands. A session is completed once, with one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionStatus {
    Open,
    Approved,
    Declined,
    Failed,
    Cancelled,
}

impl SessionStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Approved => "APPROVED",
            Self::Declined => "DECLINED",
            Self::Failed => "FAILED",
            Self::Cancelled => "CANCELLED",
        }
    }
}

impl FromStr for SessionStatus {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        [Self::Open, Self::Approved, Self::Declined, Self::Failed, Self::Cancelled]
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or(())
    }
}

impl fmt::Display for SessionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the tester chose on the session page (or the completion call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Approve,
    Decline,
    Fail,
    Cancel,
}

impl Outcome {
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        match raw {
            "approve" => Ok(Self::Approve),
            "decline" => Ok(Self::Decline),
            "fail" => Ok(Self::Fail),
            "cancel" => Ok(Self::Cancel),
            _ => Err(FieldError::new("outcome", "must be approve, decline, fail or cancel")),
        }
    }

    pub fn status(self) -> SessionStatus {
        match self {
            Self::Approve => SessionStatus::Approved,
            Self::Decline => SessionStatus::Declined,
            Self::Fail => SessionStatus::Failed,
            Self::Cancel => SessionStatus::Cancelled,
        }
    }

    /// The `error` query parameter Dintero appends to `return_url` (SessionUrls: `cancelled`,
    /// `authorization`, `failed`); none on approval.
    pub fn error_code(self) -> Option<&'static str> {
        match self {
            Self::Approve => None,
            Self::Decline => Some("authorization"),
            Self::Fail => Some("failed"),
            Self::Cancel => Some("cancelled"),
        }
    }
}

/// The payment product types whose token sessions tokenvault emulates (card products only).
pub const PAYMENT_PRODUCT_TYPES: &[&str] = &["dintero_psp.creditcard", "bambora.creditcard", "payex.creditcard"];

/// The product types whose token provider takes `token_types` (Dintero's `PayExTokenProvider` and
/// `BamboraTokenProvider`, where it is required): they can make recurrence tokens. The base
/// `TokenProvider` (dintero_psp.creditcard) has no `token_types`: payment tokens only.
pub const TOKEN_TYPE_PRODUCT_TYPES: &[&str] = &["bambora.creditcard", "payex.creditcard"];

/// Which card tokens an approved session creates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTypes {
    pub payment_token: bool,
    pub recurrence_token: bool,
}

/// A payment-token session as stored: the merchant's `session` object as given (validated), the
/// token provider, and once completed, the outcome and its transaction.
#[derive(Debug, Clone, PartialEq)]
pub struct PaymentTokenSession {
    pub id: String,
    pub account_id: AccountId,
    pub status: SessionStatus,
    /// The `session` object of the request (order, url, customer, metadata, ...).
    pub session: Map<String, Value>,
    /// The `token_provider` object of the request.
    pub token_provider: Map<String, Value>,
    pub transaction_id: Option<String>,
    /// The transaction an approval created, as shown by `GET /v1/transactions/{id}` (without the
    /// card token's secret, which is read from the card token).
    pub transaction: Option<Map<String, Value>>,
    /// The card token an approval created.
    pub card_token_id: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

fn object<'a>(
    errors: &mut ValidationError,
    parent: &'a Map<String, Value>,
    field: &str,
    path: &str,
) -> Option<&'a Map<String, Value>> {
    match parent.get(field) {
        None | Some(Value::Null) => {
            errors.push(FieldError::new(path, "is required"));
            None
        }
        Some(Value::Object(map)) => Some(map),
        Some(_) => {
            errors.push(FieldError::new(path, "must be an object"));
            None
        }
    }
}

fn string(
    errors: &mut ValidationError,
    parent: &Map<String, Value>,
    field: &str,
    path: &str,
    required: bool,
) -> Option<String> {
    match parent.get(field) {
        None | Some(Value::Null) => {
            if required {
                errors.push(FieldError::new(path, "is required"));
            }
            None
        }
        Some(Value::String(s)) if s.is_empty() => {
            errors.push(FieldError::new(path, "must not be empty"));
            None
        }
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            errors.push(FieldError::new(path, "must be a string"));
            None
        }
    }
}

fn http_url(errors: &mut ValidationError, path: &str, raw: Option<String>) {
    if let Some(raw) = raw {
        let ok = raw.len() <= 2048
            && (raw.starts_with("https://") || raw.starts_with("http://"))
            && raw.split("://").nth(1).is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
        if !ok {
            errors.push(FieldError::new(path, "must be an absolute http(s) URL"));
        }
    }
}

impl PaymentTokenSession {
    /// Validates a `checkout_payment_token_session_post` body: `session` (SessionPaymentToken
    /// & Metadata: required `order.currency` (ISO 4217) and `order.merchant_reference`, required
    /// `url.return_url`, optional `url.callback_url`, `customer`, `metadata`) and
    /// `token_provider` (required `payment_product_type`, optional `token_types`).
    pub fn from_create_body(
        body: &Map<String, Value>,
        account: &AccountId,
        id: String,
        actor: &str,
        now: Timestamp,
    ) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        let session = object(&mut errors, body, "session", "session");
        let provider = object(&mut errors, body, "token_provider", "token_provider");
        if let Some(session) = session {
            if let Some(order) = object(&mut errors, session, "order", "session.order") {
                if let Some(currency) = string(&mut errors, order, "currency", "session.order.currency", true) {
                    if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
                        errors.push(FieldError::new(
                            "session.order.currency",
                            "must be a three-letter ISO 4217 currency code",
                        ));
                    }
                }
                string(&mut errors, order, "merchant_reference", "session.order.merchant_reference", true);
                string(&mut errors, order, "merchant_reference_2", "session.order.merchant_reference_2", false);
            }
            if let Some(url) = object(&mut errors, session, "url", "session.url") {
                let return_url = string(&mut errors, url, "return_url", "session.url.return_url", true);
                http_url(&mut errors, "session.url.return_url", return_url);
                let callback_url = string(&mut errors, url, "callback_url", "session.url.callback_url", false);
                http_url(&mut errors, "session.url.callback_url", callback_url);
                let terms = string(&mut errors, url, "merchant_terms_url", "session.url.merchant_terms_url", false);
                http_url(&mut errors, "session.url.merchant_terms_url", terms);
            }
            for field in ["customer", "metadata"] {
                if let Some(value) = session.get(field) {
                    if !value.is_object() {
                        errors.push(FieldError::new(format!("session.{field}"), "must be an object"));
                    }
                }
            }
            if let Some(expires_at) = session.get("expires_at") {
                if expires_at.as_str().and_then(Timestamp::parse_rfc3339).is_none() {
                    errors.push(FieldError::new("session.expires_at", "must be a date-time"));
                }
            }
        }
        if let Some(provider) = provider {
            if let Some(ppt) =
                string(&mut errors, provider, "payment_product_type", "token_provider.payment_product_type", true)
            {
                if !PAYMENT_PRODUCT_TYPES.contains(&ppt.as_str()) {
                    errors.push(FieldError::new(
                        "token_provider.payment_product_type",
                        format!("must be one of {}", PAYMENT_PRODUCT_TYPES.join(", ")),
                    ));
                }
            }
            let takes_types = provider
                .get("payment_product_type")
                .and_then(Value::as_str)
                .is_some_and(|ppt| TOKEN_TYPE_PRODUCT_TYPES.contains(&ppt));
            match provider.get("token_types") {
                None | Some(Value::Null) if takes_types => {
                    errors.push(FieldError::new("token_provider.token_types", "is required"));
                }
                None | Some(Value::Null) => {}
                Some(types) => {
                    let valid = types.as_array().is_some_and(|types| {
                        !types.is_empty()
                            && types.iter().all(|t| matches!(t.as_str(), Some("payment_token" | "recurrence_token")))
                    });
                    if !valid {
                        errors.push(FieldError::new(
                            "token_provider.token_types",
                            "must be a non-empty array of payment_token, recurrence_token",
                        ));
                    } else if !takes_types
                        && types.as_array().is_some_and(|t| t.iter().any(|t| t == "recurrence_token"))
                    {
                        errors.push(FieldError::new(
                            "token_provider.token_types",
                            format!("recurrence_token is offered by {} only", TOKEN_TYPE_PRODUCT_TYPES.join(", ")),
                        ));
                    }
                }
            }
        }
        let (session, provider) = (session.cloned(), provider.cloned());
        errors.finish(|| Self {
            id,
            account_id: account.clone(),
            status: SessionStatus::Open,
            session: session.unwrap_or_default(),
            token_provider: provider.unwrap_or_default(),
            transaction_id: None,
            transaction: None,
            card_token_id: None,
            created_by: actor.to_owned(),
            created_at: now,
            updated_at: now,
        })
    }

    fn order_field(&self, field: &str) -> Option<&str> {
        self.session.get("order").and_then(|o| o.get(field)).and_then(Value::as_str)
    }

    fn url_field(&self, field: &str) -> Option<&str> {
        self.session.get("url").and_then(|o| o.get(field)).and_then(Value::as_str)
    }

    pub fn merchant_reference(&self) -> &str {
        self.order_field("merchant_reference").unwrap_or_default()
    }

    pub fn currency(&self) -> &str {
        self.order_field("currency").unwrap_or_default()
    }

    pub fn return_url(&self) -> &str {
        self.url_field("return_url").unwrap_or_default()
    }

    pub fn callback_url(&self) -> Option<&str> {
        self.url_field("callback_url")
    }

    pub fn payment_product_type(&self) -> &str {
        self.token_provider.get("payment_product_type").and_then(Value::as_str).unwrap_or_default()
    }

    /// The tokens an approval creates: those of `token_provider.token_types`, a payment token
    /// when it names none.
    pub fn token_types(&self) -> TokenTypes {
        let named = |name: &str| {
            self.token_provider
                .get("token_types")
                .and_then(Value::as_array)
                .is_some_and(|types| types.iter().any(|t| t == name))
        };
        let recurrence_token = named("recurrence_token");
        TokenTypes { payment_token: named("payment_token") || !recurrence_token, recurrence_token }
    }

    pub fn customer_id(&self) -> Option<String> {
        self.session.get("customer").and_then(|c| c.get("customer_id")).and_then(Value::as_str).map(str::to_owned)
    }

    /// Whether the session has passed its `expires_at`.
    pub fn expired(&self, now: Timestamp) -> bool {
        self.session
            .get("expires_at")
            .and_then(Value::as_str)
            .and_then(Timestamp::parse_rfc3339)
            .is_some_and(|at| at.millis() <= now.millis())
    }

    /// The session as `GET /v1/sessions/{session_id}` shows it: `id`, the merchant's fields,
    /// `created_at`, `updated_at`, and `transaction_id` once a transaction exists.
    pub fn to_json(&self) -> Value {
        let mut out = Map::new();
        out.insert("id".into(), json!(self.id));
        for (key, value) in &self.session {
            out.insert(key.clone(), value.clone());
        }
        out.insert("created_at".into(), json!(self.created_at.to_rfc3339()));
        out.insert("updated_at".into(), json!(self.updated_at.to_rfc3339()));
        if let Some(transaction_id) = &self.transaction_id {
            out.insert("transaction_id".into(), json!(transaction_id));
        }
        Value::Object(out)
    }

    /// The query of the redirect to `return_url` (and of the `callback_url` call, with `time`):
    /// `transaction_id` on approval, `error` otherwise, `merchant_reference` and `session_id`.
    pub fn redirect_query(&self, outcome: Outcome) -> Vec<(&'static str, String)> {
        let mut query = Vec::new();
        if let Some(transaction_id) = &self.transaction_id {
            query.push(("transaction_id", transaction_id.clone()));
        }
        if let Some(error) = outcome.error_code() {
            query.push(("error", error.to_owned()));
        }
        query.push(("merchant_reference", self.merchant_reference().to_owned()));
        query.push(("session_id", self.id.clone()));
        query
    }
}

/// A card entered on the session page. Only [`TestCard::masked_pan`], the brand and the expiry
/// are kept; the number and CVC are dropped with the value.
#[derive(Clone, PartialEq, Eq)]
pub struct TestCard {
    number: String,
    pub brand: super::card_token::CardBrand,
    pub expiry_month: u32,
    pub expiry_year: u32,
}

/// Never print a card number or CVC.
impl fmt::Debug for TestCard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TestCard({})", self.masked_pan())
    }
}

/// Published test numbers tokenvault's page offers (Visa and Mastercard test cards).
pub const TEST_CARDS: &[(&str, &str)] = &[
    ("Visa", "4111111111111111"),
    ("Visa", "4012888888881881"),
    ("Mastercard", "5555555555554444"),
    ("Mastercard", "5105105105105100"),
    ("Mastercard (2-series)", "2223003122003222"),
];

fn luhn(digits: &str) -> bool {
    let sum: u32 = digits
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| {
            let d = u32::from(b - b'0');
            if i % 2 == 1 {
                let d = d * 2;
                if d > 9 {
                    d - 9
                } else {
                    d
                }
            } else {
                d
            }
        })
        .sum();
    sum % 10 == 0
}

impl TestCard {
    /// A Visa or Mastercard number (spaces allowed, Luhn-valid), an expiry `MM/YY` or `MM/YYYY`
    /// not in the past, and a three-digit CVC (checked, then dropped).
    pub fn parse(number: &str, expiry: &str, cvc: &str, now: Timestamp) -> Result<Self, ValidationError> {
        use super::card_token::CardBrand;
        let mut errors = ValidationError::default();
        let digits: String = number.chars().filter(|c| *c != ' ').collect();
        let mut brand = None;
        if digits.len() < 12 || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) || !luhn(&digits) {
            errors.push(FieldError::new("card.number", "must be a valid card number"));
        } else {
            let prefix2: u32 = digits[..2].parse().unwrap_or(0);
            let prefix4: u32 = digits[..4].parse().unwrap_or(0);
            if digits.starts_with('4') {
                brand = Some(CardBrand::Visa);
            } else if (51..=55).contains(&prefix2) || (2221..=2720).contains(&prefix4) {
                brand = Some(CardBrand::Mastercard);
            } else {
                errors.push(FieldError::new("card.number", "must be a Visa or Mastercard number"));
            }
        }
        let mut month_year = None;
        let parts: Vec<&str> = expiry.trim().split('/').collect();
        if let [month, year] = parts[..] {
            if let (Ok(month), Ok(year)) = (month.trim().parse::<u32>(), year.trim().parse::<u32>()) {
                let year = if year < 100 { 2000 + year } else { year };
                if (1..=12).contains(&month) && (2000..=2099).contains(&year) {
                    month_year = Some((month, year));
                }
            }
        }
        match month_year {
            None => errors.push(FieldError::new("card.expiry", "must be MM/YY or MM/YYYY")),
            Some((month, year)) => {
                let (now_year, now_month) = now.year_month();
                if (year, month) < (now_year, now_month) {
                    errors.push(FieldError::new("card.expiry", "the card has expired"));
                }
            }
        }
        if cvc.len() != 3 || !cvc.bytes().all(|b| b.is_ascii_digit()) {
            errors.push(FieldError::new("card.cvc", "must be three digits"));
        }
        let (month, year) = month_year.unwrap_or((1, 2000));
        errors.finish(|| Self {
            number: digits,
            brand: brand.unwrap_or(CardBrand::Visa),
            expiry_month: month,
            expiry_year: year,
        })
    }

    /// At most the BIN (first six digits) and the last four, as PCI DSS allows.
    pub fn masked_pan(&self) -> String {
        let n = &self.number;
        format!("{}{}{}", &n[..6], "*".repeat(n.len() - 10), &n[n.len() - 4..])
    }

    /// `MM/YYYY`, as `pan_expiry_date`.
    pub fn expiry_date(&self) -> String {
        format!("{:02}/{}", self.expiry_month, self.expiry_year)
    }
}

/// The ids of the card tokens an approval created.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreatedTokens {
    pub payment_token_id: Option<String>,
    pub recurrence_token_id: Option<String>,
}

/// The transaction an approved payment-token session creates, as `transactions_id_get` shows it
/// (no amount is reserved: `amount` 0), with `card.payment_token_id` and/or
/// `card.recurrence_token_id` (Dintero's `TransactionPayEx` card fields). The tokens themselves
/// (`card.payment_token`, `card.recurrence_token`) are added only when asked for.
pub fn token_transaction(
    session: &PaymentTokenSession,
    transaction_id: &str,
    card: &TestCard,
    tokens: &CreatedTokens,
    now: Timestamp,
) -> Map<String, Value> {
    let ppt = session.payment_product_type();
    let product = ppt.split('.').next().unwrap_or(ppt);
    let mut transaction = json!({
        "id": transaction_id,
        "session_id": session.id,
        "merchant_reference": session.merchant_reference(),
        "amount": 0,
        "currency": session.currency(),
        "status": "AUTHORIZED",
        "payment_product": product,
        "payment_product_type": ppt,
        "card": {
            "brand": card.brand.as_str(),
            "masked_pan": card.masked_pan(),
            "expiry_date": card.expiry_date(),
        },
        "created_at": now.to_rfc3339(),
        "updated_at": now.to_rfc3339(),
    });
    let out = transaction.as_object_mut().expect("object");
    if let Some(Value::Object(card)) = out.get_mut("card") {
        if let Some(id) = &tokens.payment_token_id {
            card.insert("payment_token_id".into(), json!(id));
        }
        if let Some(id) = &tokens.recurrence_token_id {
            card.insert("recurrence_token_id".into(), json!(id));
        }
    }
    if let Some(reference) = session.order_field("merchant_reference_2") {
        out.insert("merchant_reference_2".into(), json!(reference));
    }
    for field in ["url", "customer", "metadata"] {
        if let Some(value) = session.session.get(field) {
            out.insert(field.into(), value.clone());
        }
    }
    out.clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_to_bin_and_last_four() {
        let card = TestCard::parse("4111 1111 1111 1111", "12/99", "123", Timestamp::now()).unwrap();
        assert_eq!(card.masked_pan(), "411111******1111");
        assert_eq!(card.expiry_date(), "12/2099");
        assert_eq!(format!("{card:?}"), "TestCard(411111******1111)");
    }

    #[test]
    fn token_types_default_to_a_payment_token() {
        let session = |provider: Value| {
            let body = json!({
                "session": {"order": {"currency": "NOK", "merchant_reference": "r"}, "url": {"return_url": "https://x.example/r"}},
                "token_provider": provider,
            });
            let account = AccountId::parse("aid", "T12345678").unwrap();
            PaymentTokenSession::from_create_body(
                body.as_object().unwrap(),
                &account,
                "id".into(),
                "c",
                Timestamp::now(),
            )
        };
        let types = |provider: Value| session(provider).unwrap().token_types();
        let both = TokenTypes { payment_token: true, recurrence_token: true };
        assert_eq!(
            types(json!({"payment_product_type": "dintero_psp.creditcard"})),
            TokenTypes { payment_token: true, recurrence_token: false }
        );
        assert_eq!(
            types(json!({"payment_product_type": "payex.creditcard", "token_types": ["recurrence_token"]})),
            TokenTypes { payment_token: false, recurrence_token: true }
        );
        assert_eq!(
            types(
                json!({"payment_product_type": "bambora.creditcard", "token_types": ["recurrence_token", "payment_token"]})
            ),
            both
        );
        let error = session(json!({"payment_product_type": "payex.creditcard"})).unwrap_err();
        assert_eq!(error.errors, [FieldError::new("token_provider.token_types", "is required")]);
        let error =
            session(json!({"payment_product_type": "dintero_psp.creditcard", "token_types": ["recurrence_token"]}))
                .unwrap_err();
        assert_eq!(error.errors[0].message, "recurrence_token is offered by bambora.creditcard, payex.creditcard only");
    }

    #[test]
    fn refuses_bad_cards() {
        let error = TestCard::parse("4111111111111112", "13/20", "12", Timestamp::now()).unwrap_err();
        let fields: Vec<_> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["card.number", "card.expiry", "card.cvc"]);
    }
}
