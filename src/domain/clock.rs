//! A test account's clock (`sandbox/clock`): how far the account's "now" lies from real time.
//! The clock runs at real speed from wherever it was set, so it is kept as one offset; every
//! moment tokenvault derives from "now" for the account (`created_at`, expiries, webhook retry
//! schedules, journal times) is real time plus that offset. An account without a clock runs on
//! real time (offset 0).

use serde_json::{json, Map, Value};

use super::validation::{FieldError, ValidationError};
use super::{AccountId, Timestamp};

/// The furthest a single `advance_seconds` goes: a hundred years.
pub const MAX_ADVANCE_SECONDS: i64 = 100 * 365 * 86_400 + 25 * 86_400;
/// The earliest moment a clock may be set to (1970-01-01T00:00:00Z).
pub const EARLIEST_MILLIS: i64 = 0;
/// The latest moment a clock may be set to, or advanced to (2999-12-31T23:59:59Z): four-digit
/// years, as RFC 3339 renders them.
pub const LATEST_MILLIS: i64 = 32_503_679_999_000;

/// An account's clock as stored: the offset from real time, and who set it when (real time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountClock {
    pub account_id: AccountId,
    /// Account time minus real time, in milliseconds.
    pub offset_ms: i64,
    pub updated_at: Timestamp,
    pub updated_by: String,
}

impl AccountClock {
    /// The account's "now" when real time is `real_now`.
    pub fn at(offset_ms: i64, real_now: Timestamp) -> Timestamp {
        Timestamp::from_millis(real_now.millis().saturating_add(offset_ms))
    }

    /// Validates a `PUT …/sandbox/clock` body: exactly one of `{"time": RFC 3339}` (the account's
    /// now becomes that moment, earlier or later) and `{"advance_seconds": n}` (its now moves n
    /// seconds ahead of where it is, `current_offset_ms` from real time).
    pub fn from_body(
        body: &Map<String, Value>,
        account: &AccountId,
        current_offset_ms: i64,
        actor: &str,
        real_now: Timestamp,
    ) -> Result<Self, ValidationError> {
        let mut errors = ValidationError::default();
        if let Some(unknown) = body.keys().find(|key| !["time", "advance_seconds"].contains(&key.as_str())) {
            errors.push(FieldError::new(unknown.clone(), "is not a field of a clock change"));
        }
        let present = |field: &str| body.get(field).is_some_and(|value| !value.is_null());
        let target = match (present("time"), present("advance_seconds")) {
            (true, true) => {
                errors.push(FieldError::new("advance_seconds", "cannot be given together with time"));
                None
            }
            (false, false) => {
                errors.push(FieldError::new("time", "is required (or advance_seconds)"));
                None
            }
            (true, false) => match body.get("time") {
                Some(Value::String(raw)) => match Timestamp::parse_rfc3339(raw) {
                    Some(time) => Some(time),
                    None => {
                        errors.push(FieldError::new("time", "must be an RFC 3339 date-time"));
                        None
                    }
                },
                _ => {
                    errors.push(FieldError::new("time", "must be an RFC 3339 date-time"));
                    None
                }
            },
            (false, true) => match body.get("advance_seconds").and_then(Value::as_i64) {
                Some(seconds) if (1..=MAX_ADVANCE_SECONDS).contains(&seconds) => {
                    Some(Self::at(current_offset_ms, real_now).plus_seconds(seconds))
                }
                _ => {
                    errors.push(FieldError::new(
                        "advance_seconds",
                        format!("must be a whole number of seconds from 1 to {MAX_ADVANCE_SECONDS}"),
                    ));
                    None
                }
            },
        };
        if let Some(time) = target {
            if !(EARLIEST_MILLIS..=LATEST_MILLIS).contains(&time.millis()) {
                let field = if present("time") { "time" } else { "advance_seconds" };
                errors.push(FieldError::new(
                    field,
                    "must bring the clock to a moment from 1970-01-01T00:00:00Z to 2999-12-31T23:59:59Z",
                ));
            }
        }
        errors.finish(|| AccountClock {
            account_id: account.clone(),
            offset_ms: target.map_or(current_offset_ms, |time| time.millis() - real_now.millis()),
            updated_at: real_now,
            updated_by: actor.to_owned(),
        })
    }

    /// The `sandbox/clock` answer for an account whose clock is `clock` (`None`: real time).
    pub fn to_json(account: &AccountId, clock: Option<&AccountClock>, real_now: Timestamp) -> Value {
        let offset_ms = clock.map_or(0, |clock| clock.offset_ms);
        json!({
            "account_id": account,
            "time": Self::at(offset_ms, real_now).to_rfc3339_millis(),
            "real_time": real_now.to_rfc3339_millis(),
            "offset_ms": offset_ms,
            "updated_at": clock.map(|clock| clock.updated_at),
            "updated_by": clock.map(|clock| clock.updated_by.as_str()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Map<String, Value> {
        value.as_object().unwrap().clone()
    }

    fn account() -> AccountId {
        AccountId::parse("aid", "T11112542").unwrap()
    }

    #[test]
    fn time_sets_the_offset_from_real_time_and_advance_adds_to_the_current_one() {
        let real = Timestamp::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
        let set =
            AccountClock::from_body(&body(json!({"time": "2027-01-01T00:00:00Z"})), &account(), 0, "c", real).unwrap();
        assert_eq!(AccountClock::at(set.offset_ms, real).to_rfc3339(), "2027-01-01T00:00:00Z");
        let advanced =
            AccountClock::from_body(&body(json!({"advance_seconds": 86_400})), &account(), set.offset_ms, "c", real)
                .unwrap();
        assert_eq!(AccountClock::at(advanced.offset_ms, real).to_rfc3339(), "2027-01-02T00:00:00Z");
        let back =
            AccountClock::from_body(&body(json!({"time": "2020-02-29T12:00:00+01:00"})), &account(), 5, "c", real)
                .unwrap();
        assert_eq!(AccountClock::at(back.offset_ms, real).to_rfc3339(), "2020-02-29T11:00:00Z");
    }

    #[test]
    fn refuses_both_neither_unknown_and_out_of_range() {
        let real = Timestamp::parse_rfc3339("2026-12-03T10:00:00Z").unwrap();
        let fields = |value: Value| {
            AccountClock::from_body(&body(value), &account(), 0, "c", real)
                .unwrap_err()
                .errors
                .into_iter()
                .map(|error| error.field)
                .collect::<Vec<_>>()
        };
        assert_eq!(fields(json!({})), ["time"]);
        assert_eq!(fields(json!({"time": "2027-01-01T00:00:00Z", "advance_seconds": 1})), ["advance_seconds"]);
        assert_eq!(fields(json!({"advance_seconds": 0})), ["advance_seconds"]);
        assert_eq!(fields(json!({"advance_seconds": 1.5})), ["advance_seconds"]);
        assert_eq!(fields(json!({"advance_seconds": MAX_ADVANCE_SECONDS + 1})), ["advance_seconds"]);
        assert_eq!(fields(json!({"time": "tomorrow"})), ["time"]);
        assert_eq!(fields(json!({"time": "3000-01-01T00:00:00Z"})), ["time"]);
        assert_eq!(fields(json!({"time": "1969-12-31T23:59:59Z"})), ["time"]);
        assert_eq!(fields(json!({"speed": 2, "advance_seconds": 60})), ["speed"]);
    }
}
