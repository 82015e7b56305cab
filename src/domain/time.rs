//! Timestamps: milliseconds since the epoch inside, RFC 3339 UTC with milliseconds outside.

use chrono::{DateTime, NaiveDate, SecondsFormat, Utc};

/// Milliseconds since the Unix epoch, the one clock every event uses.
pub(crate) fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// `2025-11-10T15:30:45.123Z`.
pub(crate) fn fmt_ms(ms: i64) -> String {
    Ts(ms).to_string()
}

/// A timestamp that writes itself as [`fmt_ms`] does, straight into the
/// output: answers render two or three per record, and building a `String`
/// for each showed in the read path's profile.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Ts(pub(crate) i64);

impl std::fmt::Display for Ts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use chrono::{Datelike, Timelike};
        match DateTime::<Utc>::from_timestamp_millis(self.0) {
            Some(t) if (0..=9999).contains(&t.year()) => {
                // Digits by hand into one buffer: `write!` with widths costs
                // more than the allocation this replaces.
                let mut b = *b"0000-00-00T00:00:00.000Z";
                let mut put = |at: usize, width: usize, mut v: u32| {
                    for i in (at..at + width).rev() {
                        b[i] = b'0' + (v % 10) as u8;
                        v /= 10;
                    }
                };
                put(0, 4, t.year() as u32);
                put(5, 2, t.month());
                put(8, 2, t.day());
                put(11, 2, t.hour());
                put(14, 2, t.minute());
                put(17, 2, t.second());
                put(20, 3, t.timestamp_subsec_millis());
                f.write_str(std::str::from_utf8(&b).map_err(|_| std::fmt::Error)?)
            }
            Some(t) => f.write_str(&t.to_rfc3339_opts(SecondsFormat::Millis, true)),
            // Out-of-range values cannot come from our own clock; show the epoch rather than panic.
            None => f.write_str("1970-01-01T00:00:00.000Z"),
        }
    }
}

impl serde::Serialize for Ts {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
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

    proptest::proptest! {
        /// The hand-written layout is chrono's RFC 3339 with milliseconds, for
        /// every instant a timestamp can hold (years 0 to 9999 and beyond).
        #[test]
        fn ts_writes_what_chrono_writes(ms in -62_167_219_200_000i64..400_000_000_000_000i64) {
            let chrono = DateTime::<Utc>::from_timestamp_millis(ms)
                .map(|t| t.to_rfc3339_opts(SecondsFormat::Millis, true));
            proptest::prop_assert_eq!(Some(Ts(ms).to_string()), chrono);
        }
    }

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
