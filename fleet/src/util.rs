//! Small helpers: time formatting without a date crate, durations, randomness, URL encoding.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch. The only clock read in the crate outside tests; the
/// reconcile loop reads it through [`Clock`] and hands the value to the pure layers.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What the reconcile loop takes from its surroundings besides Jenkins and the cloud: the
/// time, waits, and fresh launch tokens. [`SystemClock`] is the real one; the soak test
/// swaps in a virtual clock and a seeded token generator so a run replays from its seed.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    fn sleep_ms(&self, ms: u64);
    /// `n` random bytes as lowercase hex (launch tokens, hence node names).
    fn random_hex(&self, n: usize) -> String {
        random_hex(n)
    }
}

/// The wall clock, real sleeps and OS randomness.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        now_ms()
    }
    fn sleep_ms(&self, ms: u64) {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let m = m as i64;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

struct Civil {
    y: i64,
    mo: u32,
    d: u32,
    h: u64,
    mi: u64,
    s: u64,
    ms: u64,
}

fn civil(ms: u64) -> Civil {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    Civil {
        y,
        mo,
        d,
        h: rem / 3600,
        mi: (rem % 3600) / 60,
        s: rem % 60,
        ms: ms % 1000,
    }
}

/// `2026-11-22T04:30:00.123Z`
pub fn format_iso8601_ms(ms: u64) -> String {
    let c = civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.y, c.mo, c.d, c.h, c.mi, c.s, c.ms
    )
}

/// SigV4 `X-Amz-Date` form: `20261122T043000Z`.
pub fn format_amz_date(ms: u64) -> String {
    let c = civil(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.y, c.mo, c.d, c.h, c.mi, c.s
    )
}

/// Parse `YYYY-MM-DDTHH:MM:SS[.fff]Z` (the EC2 `launchTime` form) into epoch milliseconds.
pub fn parse_iso8601_ms(s: &str) -> Option<u64> {
    let s = s.trim();
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || (b[10] != b'T' && b[10] != b' ') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<u64> { s.get(r)?.parse::<u64>().ok() };
    let y = num(0..4)? as i64;
    let mo = num(5..7)? as u32;
    let d = num(8..10)? as u32;
    let h = num(11..13)?;
    let mi = num(14..16)?;
    let sec = num(17..19)?;
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let mut rest = &s[19..];
    let mut millis = 0u64;
    if let Some(frac) = rest.strip_prefix('.') {
        let digits: String = frac.chars().take_while(|c| c.is_ascii_digit()).collect();
        if digits.is_empty() {
            return None;
        }
        let mut padded = digits.clone();
        padded.truncate(3);
        while padded.len() < 3 {
            padded.push('0');
        }
        millis = padded.parse().ok()?;
        rest = &frac[digits.len()..];
    }
    if rest != "Z" && rest != "+00:00" && !rest.is_empty() {
        return None;
    }
    let days = days_from_civil(y, mo, d);
    if days < 0 {
        return None;
    }
    Some(((days as u64) * 86_400 + h * 3600 + mi * 60 + sec) * 1000 + millis)
}

/// Parse a duration: an integer number of seconds, or a string like `90s`, `5m`, `1h30m`,
/// `250ms`. Returns milliseconds.
pub fn parse_duration_ms(s: &str) -> Result<u64, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(n) = s.parse::<u64>() {
        return n
            .checked_mul(1000)
            .ok_or_else(|| "duration too large".to_string());
    }
    let mut total: u64 = 0;
    let mut rest = s;
    while !rest.is_empty() {
        let digits = rest.chars().take_while(|c| c.is_ascii_digit()).count();
        if digits == 0 {
            return Err(format!(
                "`{s}` is not a duration: write a number followed by ms, s, m or h, e.g. \"30s\" or \"5m\""
            ));
        }
        let n: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("`{s}`: number too large"))?;
        rest = &rest[digits..];
        let unit_len = rest.chars().take_while(|c| c.is_ascii_alphabetic()).count();
        let unit = &rest[..unit_len];
        let mult = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            _ => {
                return Err(format!(
                    "`{s}` has unit `{unit}`: use ms, s, m, h or d, e.g. \"30s\" or \"5m\""
                ))
            }
        };
        total = total
            .checked_add(n.checked_mul(mult).ok_or("duration too large")?)
            .ok_or("duration too large")?;
        rest = &rest[unit_len..];
    }
    Ok(total)
}

/// Human form of a millisecond duration, for messages: `90s`, `5m`, `1h30m`, `250ms`.
pub fn format_duration_ms(ms: u64) -> String {
    if ms % 1000 != 0 {
        return format!("{ms}ms");
    }
    let mut secs = ms / 1000;
    if secs == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    let h = secs / 3600;
    secs %= 3600;
    let m = secs / 60;
    secs %= 60;
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if secs > 0 {
        out.push_str(&format!("{secs}s"));
    }
    out
}

/// `n` random bytes as lowercase hex, from the OS (`/dev/urandom`), with a time-and-counter
/// fallback that is unique within the process.
pub fn random_hex(n: usize) -> String {
    use std::io::Read;
    let mut buf = vec![0u8; n];
    let ok = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    if !ok {
        use std::sync::atomic::{AtomicU64, Ordering};
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let seed =
            now_ms() ^ (COUNTER.fetch_add(1, Ordering::Relaxed) << 40) ^ std::process::id() as u64;
        let mut x = seed | 1;
        for b in buf.iter_mut() {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *b = x as u8;
        }
    }
    hex::encode(buf)
}

/// RFC 3986 percent-encoding of everything but unreserved characters. Used for form bodies,
/// query strings and path segments (and by SigV4, which requires exactly this set).
/// A URL without its query string and fragment: error messages name the resource, not the
/// percent-encoded `tree=` filter.
pub fn strip_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// The messages of `e` and each of its sources, outermost first.
pub fn error_messages(e: &(dyn std::error::Error + 'static)) -> Vec<String> {
    let mut out = vec![e.to_string()];
    let mut src = e.source();
    while let Some(s) = src {
        out.push(s.to_string());
        src = s.source();
    }
    out
}

/// One readable cause chain from the messages of an error and its sources, outermost first.
/// Libraries often repeat their source's text in their own (`Network Error: Network Error:
/// …`); each `: `-separated segment is kept once, and URLs (named separately by the caller)
/// are left out.
pub fn cause_chain(messages: impl IntoIterator<Item = String>) -> String {
    let mut seen: Vec<String> = Vec::new();
    for m in messages {
        for seg in m.split(": ") {
            let seg = seg.trim();
            if seg.is_empty()
                || seg.starts_with("http://")
                || seg.starts_with("https://")
                || seen.iter().any(|s| s == seg)
            {
                continue;
            }
            seen.push(seg.to_string());
        }
    }
    seen.join(": ")
}

/// `%XX` sequences decoded (invalid ones and non-UTF-8 results kept as they are).
pub fn pct_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = |c: u8| (c as char).to_digit(16).unwrap_or(0) as u8;
            out.push(hex(b[i + 1]) * 16 + hex(b[i + 2]));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_string())
}

pub fn pct_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Encode `key=value&...` with [`pct_encode`] applied to both sides.
pub fn form_encode(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", pct_encode(k), pct_encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Lower-case hex SHA-256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_round_trip() {
        let ms = 1_767_000_000_123;
        let s = format_iso8601_ms(ms);
        assert_eq!(s, "2025-12-29T09:20:00.123Z");
        assert_eq!(parse_iso8601_ms(&s), Some(ms));
        assert_eq!(
            parse_iso8601_ms("2015-08-30T12:36:00Z"),
            Some(1_440_938_160_000)
        );
        assert_eq!(format_amz_date(1_440_938_160_000), "20150830T123600Z");
        assert_eq!(parse_iso8601_ms("garbage"), None);
        assert_eq!(parse_iso8601_ms("2015-13-30T12:36:00Z"), None);
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration_ms("30"), Ok(30_000));
        assert_eq!(parse_duration_ms("30s"), Ok(30_000));
        assert_eq!(parse_duration_ms("5m"), Ok(300_000));
        assert_eq!(parse_duration_ms("1h30m"), Ok(5_400_000));
        assert_eq!(parse_duration_ms("250ms"), Ok(250));
        assert!(parse_duration_ms("5 minutes").is_err());
        assert!(parse_duration_ms("m5").is_err());
        assert!(parse_duration_ms("").is_err());
        assert_eq!(format_duration_ms(5_400_000), "1h30m");
        assert_eq!(format_duration_ms(250), "250ms");
    }

    #[test]
    fn encoding() {
        assert_eq!(pct_encode("a b&c=d/é"), "a%20b%26c%3Dd%2F%C3%A9");
        assert_eq!(random_hex(8).len(), 16);
        assert_ne!(random_hex(8), random_hex(8));
    }

    #[test]
    fn cause_chains_say_each_thing_once_without_urls() {
        assert_eq!(
            cause_chain([
                "Network Error".to_string(),
                "Network Error: Error encountered in the status line: timed out reading response"
                    .into(),
                "timed out reading response".into(),
            ]),
            "Network Error: Error encountered in the status line: timed out reading response"
        );
        assert_eq!(
            cause_chain(["http://h/x?tree=a%5Bb%5D: Connection Failed: Connect error".to_string()]),
            "Connection Failed: Connect error"
        );
        assert_eq!(
            strip_query("http://h:1/queue/api/json?tree=a%5B"),
            "http://h:1/queue/api/json"
        );
        assert_eq!(strip_query("http://h/"), "http://h/");
    }
}
