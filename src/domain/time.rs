//! Timestamps: milliseconds since the epoch inside, RFC 3339 UTC with milliseconds outside.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, the one clock every event uses.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2025-11-10T15:30:45.123Z`.
pub(crate) fn fmt_ms(ms: i64) -> String {
    match DateTime::<Utc>::from_timestamp_millis(ms) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
        // Out-of-range values cannot come from our own clock; show the epoch rather than panic.
        None => "1970-01-01T00:00:00.000Z".to_string(),
    }
}

/// Parses an RFC 3339 timestamp back to milliseconds (used when importing backups).
pub(crate) fn parse_ms(s: &str) -> Option<i64> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

/// A calendar date in `YYYY-MM-DD` form, strictly.
pub(crate) fn valid_date(s: &str) -> bool {
    // chrono alone accepts signs, spaces and unpadded fields; the shape is checked first
    // (which also makes these dates compare correctly as strings).
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| {
            if i == 4 || i == 7 {
                *c == b'-'
            } else {
                c.is_ascii_digit()
            }
        })
        && NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_with_millis_and_z() {
        assert_eq!(fmt_ms(1_762_788_645_123), "2025-11-10T15:30:45.123Z");
        assert_eq!(
            parse_ms("2025-11-10T15:30:45.123Z"),
            Some(1_762_788_645_123)
        );
    }

    #[test]
    fn dates_are_strict() {
        assert!(valid_date("2025-02-28"));
        assert!(!valid_date("2025-02-30"));
        assert!(!valid_date("2025-2-3"));
        assert!(!valid_date("20250203"));
        assert!(!valid_date("+202-01-01"));
        assert!(!valid_date(" 2025-1-01"));
        assert!(!valid_date("-001-01-01"));
    }
}
