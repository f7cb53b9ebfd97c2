use std::fmt;

use chrono::{DateTime, SecondsFormat, TimeZone, Utc};
use serde::{Serialize, Serializer};

/// A point in time, kept as Unix milliseconds so both stores hold it as one portable integer.
/// On the wire it is RFC 3339 UTC with a `Z` suffix and whole seconds, like the seeds' examples.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now().timestamp_millis())
    }

    pub fn from_millis(millis: i64) -> Self {
        Self(millis)
    }

    pub fn millis(self) -> i64 {
        self.0
    }

    pub fn plus_millis(self, millis: i64) -> Self {
        Self(self.0.saturating_add(millis))
    }

    pub fn plus_seconds(self, seconds: i64) -> Self {
        Self(self.0.saturating_add(seconds.saturating_mul(1000)))
    }

    /// Parses a client-supplied RFC 3339 date-time (any offset).
    pub fn parse_rfc3339(raw: &str) -> Option<Self> {
        DateTime::parse_from_rfc3339(raw).ok().map(|t| Self(t.timestamp_millis()))
    }

    /// The UTC (year, month) of this moment.
    pub fn year_month(self) -> (u32, u32) {
        use chrono::Datelike;
        let t = Utc.timestamp_millis_opt(self.0).single().unwrap_or_default();
        (t.year() as u32, t.month())
    }

    /// With milliseconds: a moment that reads back exactly (a paging link's `since_datetime`).
    pub fn to_rfc3339_millis(self) -> String {
        Utc.timestamp_millis_opt(self.0).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Millis, true)
    }

    pub fn to_rfc3339(self) -> String {
        Utc.timestamp_millis_opt(self.0).single().unwrap_or_default().to_rfc3339_opts(SecondsFormat::Secs, true)
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_rfc3339())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_utc_with_z_and_whole_seconds() {
        let t = Timestamp::from_millis(1_699_335_116_789);
        assert_eq!(t.to_rfc3339(), "2023-11-07T05:31:56Z");
        assert_eq!(
            Timestamp::parse_rfc3339("2023-11-07T06:31:56+01:00"),
            Some(Timestamp::from_millis(1_699_335_116_000))
        );
        assert_eq!(Timestamp::parse_rfc3339("yesterday"), None);
    }
}
