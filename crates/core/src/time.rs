//! Beijing time: the one place that turns stored instants into what people read, and back.
//!
//! Instants are stored as UTC milliseconds ([`Millis`]); members, leaders and staff read them as
//! Beijing wall time (UTC+8 all year, no daylight saving). Visit times are wall times already
//! (what the member typed) and are never shifted. Every conversion and display format of the
//! workspace lives here, so the CLI, the console, the ledger and the phone agree to the minute.
//!
//! Conversions are pure integer arithmetic on the offset, so they never panic: an instant that
//! chrono cannot represent (beyond about ±262,000 years) is `None` in the `try_` forms, and the
//! Unix epoch's Beijing time (1970-01-01 08:00) in the total forms, as the ledger always showed it.

use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime};

/// Milliseconds since the Unix epoch, given by the caller (the core has no clock).
pub type Millis = i64;

/// Beijing's offset from UTC in seconds (UTC+8).
pub const BEIJING_OFFSET_SECS: i32 = 8 * 3600;
/// Beijing's offset from UTC in milliseconds.
pub const BEIJING_OFFSET_MS: Millis = BEIJING_OFFSET_SECS as Millis * 1000;

/// A day as everyone reads it: `2025-05-19`.
pub const DATE_FORMAT: &str = "%Y-%m-%d";
/// A time to the minute, as the ledger and the console show it: `2025-05-19 09:30`.
pub const MINUTE_FORMAT: &str = "%Y-%m-%d %H:%M";
/// A time to the second, as the CLI shows a record's trace: `2025-05-19 09:30:05`.
pub const SECOND_FORMAT: &str = "%Y-%m-%d %H:%M:%S";
/// A wall time as records store it (visit start and end, index rows): `2025-05-19T09:30:00`.
pub const STORED_FORMAT: &str = "%Y-%m-%dT%H:%M:%S";

/// Beijing's offset as a chrono time zone.
pub fn beijing_offset() -> FixedOffset {
    FixedOffset::east_opt(BEIJING_OFFSET_SECS).expect("UTC+8 is a valid offset")
}

/// Beijing wall time of the instant `ms`, or `None` when chrono cannot represent it.
pub fn try_beijing(ms: Millis) -> Option<NaiveDateTime> {
    let local = ms.checked_add(BEIJING_OFFSET_MS)?;
    DateTime::from_timestamp_millis(local).map(|t| t.naive_utc())
}

/// Beijing wall time of the instant `ms`; an instant chrono cannot represent shows as the epoch
/// (1970-01-01 08:00).
pub fn beijing(ms: Millis) -> NaiveDateTime {
    try_beijing(ms).unwrap_or_else(epoch)
}

/// The calendar day in Beijing at `ms` — the day members see (1970-01-01 for an instant chrono
/// cannot represent).
pub fn beijing_date(ms: Millis) -> NaiveDate {
    beijing(ms).date()
}

/// The UTC instant of a Beijing wall time (the reverse of [`beijing`]).
pub fn from_beijing(t: NaiveDateTime) -> Millis {
    // Every representable wall time is within ±2^53 ms of the epoch: no overflow.
    t.and_utc().timestamp_millis() - BEIJING_OFFSET_MS
}

/// The UTC instant at which the Beijing day `d` begins (its 00:00).
pub fn beijing_day_start(d: NaiveDate) -> Millis {
    from_beijing(d.and_time(chrono::NaiveTime::MIN))
}

/// `2025-05-19`.
pub fn date(d: NaiveDate) -> String {
    d.format(DATE_FORMAT).to_string()
}

/// `2025-05-19 09:30`.
pub fn minutes(t: NaiveDateTime) -> String {
    t.format(MINUTE_FORMAT).to_string()
}

/// `2025-05-19 09:30:05`.
pub fn seconds(t: NaiveDateTime) -> String {
    t.format(SECOND_FORMAT).to_string()
}

/// `2025-05-19T09:30:00`, as records store wall times.
pub fn stored(t: NaiveDateTime) -> String {
    t.format(STORED_FORMAT).to_string()
}

/// A stored wall time (`2025-05-19T09:30:00`) back, or `None`.
pub fn parse_stored(s: &str) -> Option<NaiveDateTime> {
    NaiveDateTime::parse_from_str(s, STORED_FORMAT).ok()
}

/// The instant `ms` in Beijing time to the minute, or `None` when chrono cannot represent it.
pub fn beijing_minutes(ms: Millis) -> Option<String> {
    try_beijing(ms).map(minutes)
}

/// The instant `ms` in Beijing time to the second, or `None` when chrono cannot represent it.
pub fn beijing_seconds(ms: Millis) -> Option<String> {
    try_beijing(ms).map(seconds)
}

fn epoch() -> NaiveDateTime {
    DateTime::from_timestamp_millis(BEIJING_OFFSET_MS)
        .expect("1970-01-01 08:00 is representable")
        .naive_utc()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wall(y: i32, m: u32, d: u32, h: u32, min: u32, s: u32) -> NaiveDateTime {
        NaiveDate::from_ymd_opt(y, m, d)
            .unwrap()
            .and_hms_opt(h, min, s)
            .unwrap()
    }

    #[test]
    fn issue11_beijing_round_trips() {
        let t = wall(2025, 5, 19, 9, 30, 0);
        assert_eq!(beijing(from_beijing(t)), t);
        assert_eq!(from_beijing(t), 1_747_618_200_000);
        for ms in [
            0,
            1,
            -1,
            1_747_618_200_123,
            -62_135_596_800_000, // 0001-01-01T00:00Z
            253_402_300_799_999, // 9999-12-31T23:59:59.999Z
        ] {
            assert_eq!(from_beijing(beijing(ms)), ms, "{ms}");
            assert_eq!(try_beijing(ms), Some(beijing(ms)), "{ms}");
        }
    }

    #[test]
    fn issue11_midnight_rolls_over_at_16_utc() {
        // 2026-05-18T15:59:59.999Z is still the 18th in Beijing; one millisecond later the 19th.
        let last = 1_779_119_999_999;
        assert_eq!(
            beijing(last),
            wall(2026, 5, 18, 23, 59, 59) + chrono::Duration::milliseconds(999)
        );
        assert_eq!(date(beijing_date(last)), "2026-05-18");
        assert_eq!(date(beijing_date(last + 1)), "2026-05-19");
        assert_eq!(beijing_minutes(last + 1).unwrap(), "2026-05-19 00:00");
        assert_eq!(beijing_day_start(beijing_date(last + 1)), last + 1);
        // New year's eve: the year rolls over too.
        let ny = from_beijing(wall(2026, 1, 1, 0, 0, 0));
        assert_eq!(date(beijing_date(ny - 1)), "2025-12-31");
        assert_eq!(date(beijing_date(ny)), "2026-01-01");
        // Before the epoch: 1969-12-31T16:00Z is 1970-01-01 00:00 in Beijing.
        assert_eq!(beijing(-8 * 3600 * 1000), wall(1970, 1, 1, 0, 0, 0));
        assert_eq!(date(beijing_date(-8 * 3600 * 1000 - 1)), "1969-12-31");
    }

    #[test]
    fn issue11_formats() {
        let t = wall(2025, 5, 19, 9, 30, 5);
        assert_eq!(minutes(t), "2025-05-19 09:30");
        assert_eq!(seconds(t), "2025-05-19 09:30:05");
        assert_eq!(stored(t), "2025-05-19T09:30:05");
        assert_eq!(parse_stored("2025-05-19T09:30:05"), Some(t));
        assert_eq!(parse_stored("2025-05-19 09:30"), None);
        assert_eq!(date(t.date()), "2025-05-19");
        assert_eq!(
            beijing_seconds(from_beijing(t)).as_deref(),
            Some("2025-05-19 09:30:05")
        );
        // The same instant through chrono's own time zone arithmetic.
        let utc = DateTime::from_timestamp_millis(from_beijing(t)).unwrap();
        assert_eq!(utc.with_timezone(&beijing_offset()).naive_local(), t);
    }

    #[test]
    fn issue11_huge_and_negative_instants_never_panic() {
        for ms in [
            i64::MAX,
            i64::MIN,
            i64::MAX - BEIJING_OFFSET_MS,
            i64::MIN + 1,
        ] {
            assert_eq!(try_beijing(ms), None, "{ms}");
            assert_eq!(beijing(ms), wall(1970, 1, 1, 8, 0, 0), "{ms}");
            assert_eq!(date(beijing_date(ms)), "1970-01-01");
            assert_eq!(beijing_minutes(ms), None);
            assert_eq!(beijing_seconds(ms), None);
        }
        // The edges of what chrono represents: the last instant whose Beijing time exists.
        let max = NaiveDateTime::MAX; // …23:59:59.999999999; instants are whole milliseconds
        let last = from_beijing(max);
        assert_eq!(
            try_beijing(last),
            Some(max - chrono::Duration::nanoseconds(999_999))
        );
        assert_eq!(try_beijing(last + 1), None);
        let min = NaiveDateTime::MIN;
        let first = from_beijing(min);
        assert_eq!(try_beijing(first), Some(min));
        assert_eq!(try_beijing(first - 1), None);
        // The reverse never overflows, even at chrono's extremes.
        assert!(from_beijing(max) > 0 && from_beijing(min) < 0);
    }
}
