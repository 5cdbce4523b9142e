//! Civil (calendar) time in UTC from Unix time and back, for the text
//! people and protocols read: the test pattern's clock line, the status
//! page, and the dates ONVIF's SOAP carries (`xs:dateTime`). Hand-written:
//! two standard era-based conversions, where a date crate would bring a
//! time-zone database the daemon never uses.

/// A moment in UTC, to the second.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    pub year: i64,
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
}

impl Civil {
    /// The UTC date and time of Unix time `secs`.
    pub fn from_unix(secs: u64) -> Self {
        let (year, month, day) = civil_from_days((secs / 86_400) as i64);
        let rem = (secs % 86_400) as u32;
        Self {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }

    /// Its Unix time; `None` before 1970 or for a field out of range.
    pub fn to_unix(self) -> Option<u64> {
        let valid = (1..=12).contains(&self.month)
            && (1..=31).contains(&self.day)
            && self.hour < 24
            && self.minute < 60
            && self.second <= 60;
        if !valid {
            return None;
        }
        let days = days_from_civil(self.year, self.month, self.day);
        let secs = days * 86_400
            + i64::from(self.hour) * 3600
            + i64::from(self.minute) * 60
            + i64::from(self.second);
        u64::try_from(secs).ok()
    }

    /// `xs:dateTime` in UTC: "2026-12-07T13:05:09Z".
    pub fn xml(self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// Reads an `xs:dateTime` with a time zone ("Z" or "+hh:mm"), with or
    /// without fractions of a second (dropped), as Unix time.
    pub fn parse_xml(text: &str) -> Option<u64> {
        let text = text.trim();
        let (date, time) = text.split_once('T')?;
        let mut d = date.splitn(3, '-');
        let (year, month, day) = (d.next()?, d.next()?, d.next()?);
        // The zone: "Z", or a signed offset after the seconds.
        let (clock, offset) = if let Some(clock) = time.strip_suffix('Z') {
            (clock, 0i64)
        } else {
            let at = time.rfind(['+', '-'])?;
            let (clock, zone) = time.split_at(at);
            let sign = if zone.starts_with('-') { -1 } else { 1 };
            let (h, m) = zone[1..].split_once(':')?;
            let minutes = digits(h)? * 60 + digits(m)?;
            (clock, sign * minutes * 60)
        };
        let clock = clock.split('.').next()?;
        let mut c = clock.splitn(3, ':');
        let civil = Civil {
            year: digits(year)?,
            month: u32::try_from(digits(month)?).ok()?,
            day: u32::try_from(digits(day)?).ok()?,
            hour: u32::try_from(digits(c.next()?)?).ok()?,
            minute: u32::try_from(digits(c.next()?)?).ok()?,
            second: u32::try_from(digits(c.next()?)?).ok()?,
        };
        u64::try_from(civil.to_unix()? as i64 - offset).ok()
    }
}

/// A run of ASCII digits (at most 9) as a number.
fn digits(text: &str) -> Option<i64> {
    (!text.is_empty() && text.len() <= 9 && text.bytes().all(|b| b.is_ascii_digit()))
        .then(|| text.parse().ok())
        .flatten()
}

/// "YYYY-MM-DD HH:MM:SS.mmm UTC" for Unix time `secs` + `millis` (the test
/// pattern's clock line, and the status page's times).
pub fn format_utc(secs: u64, millis: u32) -> String {
    let c = Civil::from_unix(secs);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{millis:03} UTC",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Gregorian date of a day count since 1970-01-01 (proleptic calendar,
/// the standard era-based conversion).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a Gregorian date: the inverse of
/// [`civil_from_days`].
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let yoe = year.rem_euclid(400);
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0, 0), "1970-01-01 00:00:00.000 UTC");
        assert_eq!(
            format_utc(951_782_400 + 3661, 7),
            "2000-02-29 01:01:01.007 UTC"
        );
        assert_eq!(
            format_utc(1_795_564_800 - 1, 999),
            "2026-11-24 23:59:59.999 UTC"
        );
    }

    #[test]
    fn days_and_dates_convert_both_ways() {
        for days in [-1, 0, 59, 60, 10_957, 11_016, 20_000, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        let c = Civil::from_unix(1_796_649_909);
        assert_eq!(c.xml(), "2026-12-07T13:25:09Z");
        assert_eq!(c.to_unix(), Some(1_796_649_909));
    }

    #[test]
    fn xml_date_times_in_the_forms_clients_send() {
        let at = Some(1_796_649_909);
        for text in [
            "2026-12-07T13:25:09Z",
            "2026-12-07T13:25:09+00:00",
            "2026-12-07T13:25:09.123456789Z",
            "2026-12-07T14:25:09+01:00",
            "2026-12-07T08:25:09.5-05:00",
        ] {
            assert_eq!(Civil::parse_xml(text), at, "{text}");
        }
        for bad in [
            "",
            "2026-12-07",
            "2026-12-07T13:25:09",
            "2026-13-07T13:25:09Z",
            "2026-12-07T25:25:09Z",
            "2026-12-07T13:25:x9Z",
            "1969-12-31T23:59:59Z",
            "99999999999-12-07T13:25:09Z",
        ] {
            assert_eq!(Civil::parse_xml(bad), None, "{bad:?}");
        }
    }
}
