//! Faults on demand for test accounts: rules that make matching requests fail on purpose (a
//! status with Dintero's error body, an added delay, or a dropped connection), so that an
//! integration can be tested against the failures it will meet in production. The rules are
//! data like any other (kept by the store, so every instance on one database applies them);
//! this module knows what a rule is, which requests it matches and, for a rule that fires by
//! chance, whether its n-th match fires: a pure function of the rule's seed and `n`, so that a
//! run repeats exactly.

use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::validation::{identifier, FieldError, ValidationError};
use super::{AccountId, Timestamp};

/// The statuses a rule may answer with: what a client of Dintero's APIs must be ready for.
pub const STATUSES: [u16; 5] = [429, 500, 502, 503, 504];
/// The methods a rule may name (any of them when it names none).
pub const METHODS: [&str; 6] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"];
/// The longest delay: a delay counts within the request timeout, so longer ones would only ever
/// end as that timeout's 503.
pub const MAX_DELAY_MS: u32 = 60_000;
/// How long a rule lives when `until` is not given: long enough for a test run, short enough
/// that a forgotten rule does not break tomorrow's.
pub const DEFAULT_LIFETIME_SECONDS: i64 = 3600;
/// The furthest `until` may lie ahead.
pub const MAX_LIFETIME_SECONDS: i64 = 30 * 24 * 3600;
/// The most `times` a rule may count down from.
pub const MAX_TIMES: u32 = 1_000_000;
/// The longest `Retry-After` a rule may send, in seconds.
pub const MAX_RETRY_AFTER: u32 = 86_400;
/// The longest path pattern.
pub const MAX_PATTERN_CHARS: usize = 1024;
/// Rules an account may hold at once; every request to the account is compared with each.
pub const MAX_RULES_PER_ACCOUNT: usize = 100;

/// What a faulted request gets instead of (or before) its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultEffect {
    /// This status with Dintero's error body; `retry_after` (seconds) only with 429 and 503.
    Status { status: u16, retry_after: Option<u32> },
    /// The request waits this long, then proceeds as usual.
    Delay { ms: u32 },
    /// The connection is closed without an answer.
    Drop,
}

/// How often a matching request is faulted.
#[derive(Debug, Clone, PartialEq)]
pub enum FaultFrequency {
    /// Every matching request.
    Always,
    /// The next `times` matching requests (counted by the store, across instances).
    Times(u32),
    /// Each matching request with this probability, decided by [`fires_by_chance`].
    Probability { probability: f64, seed: u64 },
}

/// One rule, as stored and shown.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    pub id: Uuid,
    pub account_id: AccountId,
    /// Upper-case; `None` matches every method.
    pub method: Option<String>,
    /// A path pattern, see [`path_matches`].
    pub path: String,
    /// Only requests of this client (the bearer token's, or the token endpoint's Basic user).
    pub client_id: Option<String>,
    pub effect: FaultEffect,
    pub frequency: FaultFrequency,
    /// For [`FaultFrequency::Times`]: faults left to apply.
    pub remaining: Option<i64>,
    /// Matching requests seen so far (fired or not).
    pub matched: i64,
    pub until: Timestamp,
    pub created_at: Timestamp,
    pub created_by: String,
}

/// The request a rule is compared with.
#[derive(Debug, Clone, Copy)]
pub struct FaultTarget<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub client_id: Option<&'a str>,
}

impl FaultRule {
    /// Validates a `POST …/sandbox/faults` body:
    /// `{"method"?, "path", "client_id"?, "fault": {...}, "frequency"?: {...}, "until"?}`.
    pub fn from_body(
        body: &Map<String, Value>,
        account: &AccountId,
        created_by: &str,
        now: Timestamp,
    ) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        const FIELDS: [&str; 6] = ["method", "path", "client_id", "fault", "frequency", "until"];
        if let Some(unknown) = body.keys().find(|key| !FIELDS.contains(&key.as_str())) {
            errors.push(FieldError::new(unknown.clone(), "is not a field of a fault rule"));
        }
        let method = match body.get("method") {
            None | Some(Value::Null) => None,
            Some(Value::String(m)) if m == "*" => None,
            Some(Value::String(m)) if METHODS.contains(&m.to_ascii_uppercase().as_str()) => {
                Some(m.to_ascii_uppercase())
            }
            Some(_) => {
                errors.push(FieldError::new("method", format!("must be one of {} or *", METHODS.join(", "))));
                None
            }
        };
        let path = match body.get("path") {
            Some(Value::String(p)) => errors.check(check_pattern(p)).map(|()| p.clone()),
            None | Some(Value::Null) => {
                errors.push(FieldError::new("path", "is required"));
                None
            }
            Some(_) => {
                errors.push(FieldError::new("path", "must be a string"));
                None
            }
        };
        let client_id = match body.get("client_id") {
            None | Some(Value::Null) => None,
            Some(Value::String(c)) => errors.check(identifier("client_id", c)).map(|()| c.clone()),
            Some(_) => {
                errors.push(FieldError::new("client_id", "must be a string"));
                None
            }
        };
        let effect = match body.get("fault") {
            Some(Value::Object(fault)) => parse_effect(fault, &mut errors),
            None | Some(Value::Null) => {
                errors.push(FieldError::new("fault", "is required"));
                None
            }
            Some(_) => {
                errors.push(FieldError::new("fault", "must be an object"));
                None
            }
        };
        let frequency = match body.get("frequency") {
            None | Some(Value::Null) => Some(FaultFrequency::Always),
            Some(Value::Object(frequency)) => parse_frequency(frequency, &mut errors),
            Some(_) => {
                errors.push(FieldError::new("frequency", "must be an object"));
                None
            }
        };
        let until = match body.get("until") {
            None | Some(Value::Null) => Some(now.plus_seconds(DEFAULT_LIFETIME_SECONDS)),
            Some(Value::String(raw)) => match Timestamp::parse_rfc3339(raw) {
                Some(until) if until <= now => {
                    errors.push(FieldError::new("until", "must be in the future"));
                    None
                }
                Some(until) if until > now.plus_seconds(MAX_LIFETIME_SECONDS) => {
                    errors.push(FieldError::new("until", "must be at most 30 days ahead"));
                    None
                }
                Some(until) => Some(until),
                None => {
                    errors.push(FieldError::new("until", "must be an RFC 3339 date-time"));
                    None
                }
            },
            Some(_) => {
                errors.push(FieldError::new("until", "must be an RFC 3339 date-time"));
                None
            }
        };
        errors.finish(|| {
            let frequency = frequency.unwrap_or(FaultFrequency::Always);
            let remaining = match frequency {
                FaultFrequency::Times(times) => Some(i64::from(times)),
                _ => None,
            };
            FaultRule {
                id: Uuid::new_v4(),
                account_id: account.clone(),
                method,
                path: path.unwrap_or_default(),
                client_id,
                effect: effect.unwrap_or(FaultEffect::Drop),
                frequency,
                remaining,
                matched: 0,
                until: until.unwrap_or(now),
                created_at: now,
                created_by: created_by.to_owned(),
            }
        })
    }

    /// Whether the rule applies to this request at `now` (not whether it fires: see
    /// [`FaultFrequency`]). A rule whose `times` are used up matches nothing.
    pub fn matches(&self, target: &FaultTarget<'_>, now: Timestamp) -> bool {
        now < self.until
            && self.remaining.is_none_or(|left| left > 0)
            && self.method.as_deref().is_none_or(|method| method == target.method)
            && self.client_id.as_deref().is_none_or(|client| Some(client) == target.client_id)
            && path_matches(&self.path, target.path)
    }

    /// Whether the `n`-th matching request (counting from 1) is faulted, given that the store
    /// counted it (for `Times`, that it was one of the next `times`).
    pub fn fires(&self, n: i64) -> bool {
        match self.frequency {
            FaultFrequency::Always | FaultFrequency::Times(_) => true,
            FaultFrequency::Probability { probability, seed } => fires_by_chance(seed, n, probability),
        }
    }

    /// The rule as `GET …/sandbox/faults` shows it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "account_id": self.account_id,
            "method": self.method,
            "path": self.path,
            "client_id": self.client_id,
            "fault": self.effect.to_json(),
            "frequency": self.frequency_json(),
            "matched": self.matched,
            "until": self.until,
            "created_at": self.created_at,
            "created_by": self.created_by,
        })
    }

    fn frequency_json(&self) -> Value {
        match self.frequency {
            FaultFrequency::Always => json!({"type": "always"}),
            FaultFrequency::Times(times) => {
                json!({"type": "times", "times": times, "remaining": self.remaining.unwrap_or(0).max(0)})
            }
            FaultFrequency::Probability { probability, seed } => {
                json!({"type": "probability", "probability": probability, "seed": seed})
            }
        }
    }
}

impl FaultEffect {
    /// `{"type": "status", "status", "retry_after"?}`, `{"type": "delay", "delay_ms"}` or
    /// `{"type": "drop"}`: as shown, and as stored.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Status { status, retry_after: Some(seconds) } => {
                json!({"type": "status", "status": status, "retry_after": seconds})
            }
            Self::Status { status, retry_after: None } => json!({"type": "status", "status": status}),
            Self::Delay { ms } => json!({"type": "delay", "delay_ms": ms}),
            Self::Drop => json!({"type": "drop"}),
        }
    }

    /// Reads back what [`FaultEffect::to_json`] wrote.
    pub fn from_json(value: &Value) -> Option<Self> {
        let mut errors = ValidationError::default();
        let effect = parse_effect(value.as_object()?, &mut errors);
        effect.filter(|_| errors.errors.is_empty())
    }

    /// The one-off fault of the `tokenvault-fault` request header: `429`, `500`, `502`, `503`,
    /// `504` (with `Retry-After: 1` where it belongs), `delay=<ms>` or `drop`.
    pub fn from_header(value: &str) -> Option<Self> {
        let value = value.trim();
        if value.eq_ignore_ascii_case("drop") {
            return Some(Self::Drop);
        }
        if let Some(ms) = value.strip_prefix("delay=") {
            let ms: u32 = ms.parse().ok()?;
            return (1..=MAX_DELAY_MS).contains(&ms).then_some(Self::Delay { ms });
        }
        let status: u16 = value.parse().ok()?;
        STATUSES.contains(&status).then(|| Self::Status { status, retry_after: default_retry_after(status) })
    }
}

impl FaultFrequency {
    /// As stored: `{"type": "always"}`, `{"type": "times", "times"}` or
    /// `{"type": "probability", "probability", "seed"}`.
    pub fn to_json(&self) -> Value {
        match self {
            Self::Always => json!({"type": "always"}),
            Self::Times(times) => json!({"type": "times", "times": times}),
            Self::Probability { probability, seed } => {
                json!({"type": "probability", "probability": probability, "seed": seed})
            }
        }
    }

    /// Reads back what [`FaultFrequency::to_json`] wrote.
    pub fn from_json(value: &Value) -> Option<Self> {
        let mut errors = ValidationError::default();
        let frequency = parse_frequency(value.as_object()?, &mut errors);
        frequency.filter(|_| errors.errors.is_empty())
    }
}

/// `Retry-After` belongs to 429 and 503 (RFC 9110); one second unless the rule says otherwise.
fn default_retry_after(status: u16) -> Option<u32> {
    matches!(status, 429 | 503).then_some(1)
}

fn parse_effect(fault: &Map<String, Value>, errors: &mut ValidationError) -> Option<FaultEffect> {
    let before = errors.errors.len();
    let allowed: &[&str] = match fault.get("type").and_then(Value::as_str) {
        Some("status") => &["type", "status", "retry_after"],
        Some("delay") => &["type", "delay_ms"],
        Some("drop") => &["type"],
        _ => {
            errors.push(FieldError::new("fault.type", "must be one of status, delay, drop"));
            return None;
        }
    };
    if let Some(unknown) = fault.keys().find(|key| !allowed.contains(&key.as_str())) {
        errors.push(FieldError::new(format!("fault.{unknown}"), "is not a field of this fault type"));
    }
    let effect = match fault.get("type").and_then(Value::as_str) {
        Some("status") => {
            let status = match fault.get("status").and_then(Value::as_u64) {
                Some(status) if STATUSES.iter().any(|s| u64::from(*s) == status) => status as u16,
                _ => {
                    errors.push(FieldError::new("fault.status", "must be one of 429, 500, 502, 503, 504"));
                    return None;
                }
            };
            let retry_after = match fault.get("retry_after") {
                None | Some(Value::Null) => default_retry_after(status),
                Some(_) if default_retry_after(status).is_none() => {
                    errors.push(FieldError::new("fault.retry_after", "is only sent with 429 and 503"));
                    None
                }
                Some(value) => match value.as_u64() {
                    Some(seconds) if seconds <= u64::from(MAX_RETRY_AFTER) => Some(seconds as u32),
                    _ => {
                        errors.push(FieldError::new(
                            "fault.retry_after",
                            format!("must be an integer from 0 to {MAX_RETRY_AFTER}"),
                        ));
                        None
                    }
                },
            };
            FaultEffect::Status { status, retry_after }
        }
        Some("delay") => match fault.get("delay_ms").and_then(Value::as_u64) {
            Some(ms) if (1..=u64::from(MAX_DELAY_MS)).contains(&ms) => FaultEffect::Delay { ms: ms as u32 },
            _ => {
                errors.push(FieldError::new("fault.delay_ms", format!("must be an integer from 1 to {MAX_DELAY_MS}")));
                return None;
            }
        },
        _ => FaultEffect::Drop,
    };
    (errors.errors.len() == before).then_some(effect)
}

fn parse_frequency(frequency: &Map<String, Value>, errors: &mut ValidationError) -> Option<FaultFrequency> {
    let before = errors.errors.len();
    let allowed: &[&str] = match frequency.get("type").and_then(Value::as_str) {
        Some("always") => &["type"],
        Some("times") => &["type", "times"],
        Some("probability") => &["type", "probability", "seed"],
        _ => {
            errors.push(FieldError::new("frequency.type", "must be one of always, times, probability"));
            return None;
        }
    };
    if let Some(unknown) = frequency.keys().find(|key| !allowed.contains(&key.as_str())) {
        errors.push(FieldError::new(format!("frequency.{unknown}"), "is not a field of this frequency type"));
    }
    let parsed = match frequency.get("type").and_then(Value::as_str) {
        Some("times") => match frequency.get("times").and_then(Value::as_u64) {
            Some(times) if (1..=u64::from(MAX_TIMES)).contains(&times) => FaultFrequency::Times(times as u32),
            _ => {
                errors.push(FieldError::new("frequency.times", format!("must be an integer from 1 to {MAX_TIMES}")));
                return None;
            }
        },
        Some("probability") => {
            let probability = match frequency.get("probability").and_then(Value::as_f64) {
                Some(p) if p > 0.0 && p <= 1.0 => p,
                _ => {
                    errors.push(FieldError::new("frequency.probability", "must be a number above 0 and at most 1"));
                    return None;
                }
            };
            let seed = match frequency.get("seed") {
                // A seed of its own, shown with the rule, so that the run can be repeated.
                None | Some(Value::Null) => rand::random::<u64>() >> 11,
                Some(value) => match value.as_u64() {
                    Some(seed) => seed,
                    None => {
                        errors.push(FieldError::new("frequency.seed", "must be a non-negative integer"));
                        return None;
                    }
                },
            };
            FaultFrequency::Probability { probability, seed }
        }
        _ => FaultFrequency::Always,
    };
    (errors.errors.len() == before).then_some(parsed)
}

fn check_pattern(pattern: &str) -> Result<(), FieldError> {
    if !pattern.starts_with('/') {
        return Err(FieldError::new("path", "must start with /"));
    }
    if pattern.chars().count() > MAX_PATTERN_CHARS {
        return Err(FieldError::new("path", format!("must be at most {MAX_PATTERN_CHARS} characters")));
    }
    if pattern.chars().any(|c| c.is_control() || c == '?' || c == '#') {
        return Err(FieldError::new("path", "must be a path without query, fragment or control characters"));
    }
    if pattern.split('/').any(|segment| segment.contains("**") && segment != "**") {
        return Err(FieldError::new("path", "** must be a whole segment"));
    }
    Ok(())
}

/// Whether a request path matches a pattern. The pattern is compared segment by segment (split
/// at `/`): `*` within a segment stands for any run of characters but `/`
/// (`/v1/accounts/*/customers/users/*/tokens`), a whole segment `**` for any number of segments,
/// none included (`/v1/**`); everything else must be equal.
pub fn path_matches(pattern: &str, path: &str) -> bool {
    let pattern: Vec<&str> = pattern.split('/').collect();
    let path: Vec<&str> = path.split('/').collect();
    segments_match(&pattern, &path)
}

fn segments_match(pattern: &[&str], path: &[&str]) -> bool {
    match pattern.split_first() {
        None => path.is_empty(),
        Some((&"**", rest)) => (0..=path.len()).any(|skip| segments_match(rest, &path[skip..])),
        Some((first, rest)) => path
            .split_first()
            .is_some_and(|(segment, others)| segment_matches(first, segment) && segments_match(rest, others)),
    }
}

fn segment_matches(pattern: &str, segment: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = segment.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether the `n`-th match of a rule with this seed and probability fires: a SplitMix64 hash of
/// seed and `n` read as a number in [0, 1). The same seed gives the same sequence on every run,
/// every instance and either backend, since `n` is counted by the store.
pub fn fires_by_chance(seed: u64, n: i64, probability: f64) -> bool {
    let mut z = seed.wrapping_add((n as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^= z >> 31;
    let unit = (z >> 11) as f64 / (1u64 << 53) as f64;
    unit < probability
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn account() -> AccountId {
        AccountId::parse("aid", "T12345678").unwrap()
    }

    #[test]
    fn patterns_match_segment_by_segment() {
        let tokens = "/v1/accounts/*/customers/users/*/tokens";
        assert!(path_matches(tokens, "/v1/accounts/T12345678/customers/users/c1/tokens"));
        assert!(!path_matches(tokens, "/v1/accounts/T12345678/customers/users/c1/tokens/t1"));
        assert!(!path_matches(tokens, "/v1/accounts/T12345678/customers/users/a/b/tokens"));
        assert!(path_matches("/v1/**", "/v1/card-tokens"));
        assert!(path_matches("/v1/**", "/v1"));
        assert!(path_matches("/**/tokens", "/v1/accounts/T1/customers/users/c1/tokens"));
        assert!(path_matches("/v1/card-tokens/k*", "/v1/card-tokens/k1"));
        assert!(!path_matches("/v1/card-tokens/k*", "/v1/card-tokens/x1"));
        assert!(path_matches("/v1/card-tokens/*1*", "/v1/card-tokens/a1b"));
        assert!(path_matches("/v1/*-tokens", "/v1/card-tokens"));
        assert!(!path_matches("/v1/card-tokens", "/v1/card-tokens/k1"));
        assert!(path_matches("/v1/card-tokens", "/v1/card-tokens"));
    }

    #[test]
    fn a_seed_gives_the_same_sequence_every_time() {
        let run = |seed| (1..=1000).filter(|n| fires_by_chance(seed, *n, 0.3)).collect::<Vec<i64>>();
        assert_eq!(run(42), run(42));
        assert_ne!(run(42), run(43));
        let fired = run(42).len();
        assert!((250..350).contains(&fired), "{fired} of 1000 at 0.3");
        assert!((1..=100).all(|n| fires_by_chance(7, n, 1.0)));
    }

    #[test]
    fn bodies_are_validated_field_by_field() {
        let now = Timestamp::from_millis(1_000_000);
        let rule = FaultRule::from_body(
            &object(json!({"method": "post", "path": "/v1/**", "fault": {"type": "status", "status": 503},
                           "frequency": {"type": "times", "times": 2}})),
            &account(),
            "c",
            now,
        )
        .unwrap();
        assert_eq!(rule.method.as_deref(), Some("POST"));
        assert_eq!(rule.effect, FaultEffect::Status { status: 503, retry_after: Some(1) });
        assert_eq!(rule.remaining, Some(2));
        assert_eq!(rule.until, now.plus_seconds(DEFAULT_LIFETIME_SECONDS));

        let error = FaultRule::from_body(
            &object(json!({"method": "GETS", "path": "v1", "fault": {"type": "status", "status": 404},
                           "frequency": {"type": "probability", "probability": 2}, "until": "soon", "extra": 1})),
            &account(),
            "c",
            now,
        )
        .unwrap_err();
        let fields: Vec<&str> = error.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["extra", "method", "path", "fault.status", "frequency.probability", "until"]);

        let error = FaultRule::from_body(
            &object(json!({"path": "/a", "fault": {"type": "status", "status": 500, "retry_after": 3}})),
            &account(),
            "c",
            now,
        )
        .unwrap_err();
        assert_eq!(error.errors, [FieldError::new("fault.retry_after", "is only sent with 429 and 503")]);
    }

    #[test]
    fn stored_forms_read_back() {
        for effect in [
            FaultEffect::Status { status: 429, retry_after: Some(7) },
            FaultEffect::Status { status: 500, retry_after: None },
            FaultEffect::Delay { ms: 250 },
            FaultEffect::Drop,
        ] {
            assert_eq!(FaultEffect::from_json(&effect.to_json()), Some(effect));
        }
        for frequency in [
            FaultFrequency::Always,
            FaultFrequency::Times(3),
            FaultFrequency::Probability { probability: 0.25, seed: u64::MAX },
        ] {
            assert_eq!(FaultFrequency::from_json(&frequency.to_json()), Some(frequency));
        }
    }

    #[test]
    fn header_values() {
        assert_eq!(FaultEffect::from_header("503"), Some(FaultEffect::Status { status: 503, retry_after: Some(1) }));
        assert_eq!(FaultEffect::from_header("502"), Some(FaultEffect::Status { status: 502, retry_after: None }));
        assert_eq!(FaultEffect::from_header("delay=250"), Some(FaultEffect::Delay { ms: 250 }));
        assert_eq!(FaultEffect::from_header("drop"), Some(FaultEffect::Drop));
        for bad in ["404", "delay=0", "delay=x", "delay=60001", "", "dropped"] {
            assert_eq!(FaultEffect::from_header(bad), None, "{bad}");
        }
    }
}
