//! What the poller reads from response headers: where the status is
//! (`Operation-Location`, `Azure-AsyncOperation`, `Location`) and how long
//! to wait (`Retry-After`, in seconds or as an HTTP date).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::{HeaderMap, LOCATION, RETRY_AFTER};
use reqwest::Url;

/// The longest wait a `Retry-After` can ask for; `max_wait` usually cuts
/// it much shorter.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The status URL of a 202: `Operation-Location` or `Azure-AsyncOperation`
/// when present (they name the status monitor, while `Location` may name
/// the final resource), else `Location`. Relative URLs are resolved against
/// `base`; `Err` when the header is there but unusable.
pub fn status_url(headers: &HeaderMap, base: &Url) -> Option<Result<Url, String>> {
    ["operation-location", "azure-asyncoperation", "location"]
        .iter()
        .find_map(|name| headers.get(*name))
        .map(|v| match v.to_str() {
            Ok(text) => resolve(base, text),
            Err(_) => Err("status URL header is not text".to_owned()),
        })
}

/// Where the result will be, from a 202 that named its status monitor in
/// `Operation-Location` or `Azure-AsyncOperation`: its `Location`, when
/// that is another URL (Azure's rule for long-running POSTs).
pub fn result_url(headers: &HeaderMap, base: &Url, status_url: &Url) -> Option<Url> {
    if !headers.contains_key("operation-location") && !headers.contains_key("azure-asyncoperation")
    {
        return None;
    }
    location(headers, base)?.ok().filter(|u| u != status_url)
}

/// The `Location` header, resolved against `base`.
pub fn location(headers: &HeaderMap, base: &Url) -> Option<Result<Url, String>> {
    headers.get(LOCATION).map(|v| match v.to_str() {
        Ok(text) => resolve(base, text),
        Err(_) => Err("Location header is not text".to_owned()),
    })
}

/// Resolves a (possibly relative) URL; only http and https are followed.
pub fn resolve(base: &Url, text: &str) -> Result<Url, String> {
    let url = base.join(text.trim()).map_err(|e| format!("{e}: {text}"))?;
    match url.scheme() {
        "http" | "https" => Ok(url),
        other => Err(format!("unsupported URL scheme: {other}")),
    }
}

/// The wait a `Retry-After` asks for. `None` when absent, unreadable, zero
/// or a date already past: the caller then uses its own interval, which
/// also keeps a server answering `0` from being polled in a tight loop.
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let text = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let wait = if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Duration::from_secs(
            text.parse::<u64>()
                .unwrap_or(u64::MAX)
                .min(MAX_RETRY_AFTER.as_secs()),
        )
    } else {
        parse_http_date(text)?.duration_since(now).ok()?
    };
    (!wait.is_zero()).then(|| wait.min(MAX_RETRY_AFTER))
}

/// An HTTP date in any of the three forms RFC 9110 asks recipients to
/// accept: IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), RFC 850
/// (`Sunday, 06-Nov-94 08:49:37 GMT`) and asctime (`Sun Nov  6 08:49:37 1994`).
pub fn parse_http_date(text: &str) -> Option<SystemTime> {
    let t: Vec<&str> = text.split_whitespace().collect();
    let (day, month, year, time) = match t.as_slice() {
        [wd, d, m, y, time, "GMT"] if wd.ends_with(',') => (*d, *m, parse_num(y)?, *time),
        [wd, dmy, time, "GMT"] if wd.ends_with(',') => {
            let mut parts = dmy.split('-');
            let (d, m, y) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() || y.len() != 2 {
                return None;
            }
            // Two-digit years: RFC 9110 reads one more than 50 years ahead
            // as the past; for a Retry-After, 19xx vs 20xx split at 70 is that.
            let yy = parse_num(y)?;
            (d, m, if yy < 70 { 2000 + yy } else { 1900 + yy }, *time)
        }
        [_wd, m, d, time, y] => (*d, *m, parse_num(y)?, *time),
        _ => return None,
    };
    let day = parse_num(day)?;
    let month = month_number(month)?;
    let mut hms = time.split(':');
    let (h, mi, s) = (
        parse_num(hms.next()?)?,
        parse_num(hms.next()?)?,
        parse_num(hms.next()?)?,
    );
    if hms.next().is_some()
        || !(1..=31).contains(&day)
        || h > 23
        || mi > 59
        || s > 60
        || year < 1970
    {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = u64::try_from(days).ok()? * 86_400 + h * 3600 + mi * 60 + s;
    UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn parse_num(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 4 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

fn month_number(m: &str) -> Option<u64> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    MONTHS.iter().position(|n| *n == m).map(|i| i as u64 + 1)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's
/// `days_from_civil`), for years from 1970 on.
fn days_from_civil(year: u64, month: u64, day: u64) -> i64 {
    let y = year as i64 - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = month as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    #[test]
    fn the_three_date_forms_agree() {
        let want = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), Some(want));
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(want)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(want));
    }

    #[test]
    fn dates_around_leap_days() {
        let d = parse_http_date("Thu, 29 Feb 2024 00:00:00 GMT").unwrap();
        assert_eq!(
            d.duration_since(UNIX_EPOCH).unwrap().as_secs(),
            1_709_164_800
        );
        let d = parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT").unwrap();
        assert_eq!(d, UNIX_EPOCH);
    }

    #[test]
    fn bad_dates_are_refused() {
        for bad in [
            "",
            "tomorrow",
            "Sun, 06 Nov 1994 08:49:37 CET",
            "Sun, 06 Foo 1994 08:49:37 GMT",
            "Sun, 32 Nov 1994 08:49:37 GMT",
            "Sun, 06 Nov 1994 25:49:37 GMT",
            "Sun, 06 Nov 1994 08:49 GMT",
            "Sun, 06 Nov 99999 08:49:37 GMT",
        ] {
            assert_eq!(parse_http_date(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "3")]), now),
            Some(Duration::from_secs(3))
        );
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:40 GMT")]),
                now
            ),
            Some(Duration::from_secs(3))
        );
        // Zero, the past and junk are no hint at all.
        assert_eq!(retry_after(&headers(&[("retry-after", "0")]), now), None);
        assert_eq!(
            retry_after(
                &headers(&[("retry-after", "Sun, 06 Nov 1994 08:49:00 GMT")]),
                now
            ),
            None
        );
        assert_eq!(retry_after(&headers(&[("retry-after", "-5")]), now), None);
        assert_eq!(retry_after(&headers(&[("retry-after", "1.5")]), now), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
        assert_eq!(
            retry_after(&headers(&[("retry-after", "99999999999999999999999")]), now),
            Some(MAX_RETRY_AFTER)
        );
    }

    #[test]
    fn operation_location_wins_and_relative_urls_resolve() {
        let base = Url::parse("http://h:1/jobs?x=1").unwrap();
        let h = headers(&[("location", "/result/1"), ("operation-location", "/ops/1")]);
        assert_eq!(
            status_url(&h, &base).unwrap().unwrap().as_str(),
            "http://h:1/ops/1"
        );
        let h = headers(&[
            ("location", "ops/2"),
            ("azure-asyncoperation", "http://o/ops/2"),
        ]);
        assert_eq!(
            status_url(&h, &base).unwrap().unwrap().as_str(),
            "http://o/ops/2"
        );
        let h = headers(&[("location", "ops/3")]);
        assert_eq!(
            status_url(&h, &base).unwrap().unwrap().as_str(),
            "http://h:1/ops/3"
        );
        assert!(status_url(&HeaderMap::new(), &base).is_none());
        let h = headers(&[("location", "ftp://h/x")]);
        assert!(status_url(&h, &base).unwrap().is_err());
    }

    #[test]
    fn location_beside_a_monitor_header_is_the_result() {
        let base = Url::parse("http://h/jobs").unwrap();
        let monitor = Url::parse("http://h/ops/1").unwrap();
        let h = headers(&[
            ("azure-asyncoperation", "/ops/1"),
            ("location", "/results/1"),
        ]);
        assert_eq!(
            result_url(&h, &base, &monitor).unwrap().as_str(),
            "http://h/results/1"
        );
        // Location alone is the monitor itself, not the result.
        let h = headers(&[("location", "/ops/1")]);
        assert_eq!(result_url(&h, &base, &monitor), None);
        let h = headers(&[("operation-location", "/ops/1"), ("location", "/ops/1")]);
        assert_eq!(result_url(&h, &base, &monitor), None);
    }
}
