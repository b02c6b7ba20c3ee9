//! Schedules (issue 12 item 8): a pool's `min_instances` and `spare_executors` by cron
//! window in a named time zone.
//!
//! ```toml
//! [[pool.schedule]]
//! cron = "0 8 * * MON-FRI"      # when a window starts (minute hour day month weekday)
//! duration = "11h"              # how long it lasts, in elapsed time
//! timezone = "Europe/Berlin"    # IANA name; the cron fields are wall-clock times there
//! min_instances = 2             # in force during the window (each optional)
//! spare_executors = 4
//! ```
//!
//! Pure: the window in force is a function of the schedule and a wall-clock instant, which
//! the loop takes from its (injected) clock; `decide` then sees the pool with the values in
//! force ([`Config::at`]). Cron expressions are `croner`'s, zones `jiff`'s (the IANA
//! database bundled, so a host without /usr/share/zoneinfo knows the same names).

use super::{Config, Pool};
use croner::Cron;
use jiff::tz::TimeZone;
use jiff::Timestamp;
use std::str::FromStr;

/// The longest window: a month.
pub const MAX_DURATION_MS: u64 = 31 * 86_400_000;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub cron: String,
    pub duration_ms: u64,
    pub timezone: String,
    /// In force during a window; `None` keeps the pool's own value.
    pub min_instances: Option<u32>,
    pub spare_executors: Option<u32>,
}

/// One window: from `start_ms` (a cron match) for the schedule's duration.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    pub start_ms: u64,
    pub end_ms: u64,
}

/// A cron expression, or what is wrong with it.
pub fn parse_cron(s: &str) -> Result<Cron, String> {
    Cron::from_str(s.trim()).map_err(|e| {
        format!(
            "`{}` is not a cron expression ({e}): use five fields, minute hour day-of-month month day-of-week, e.g. \"0 8 * * MON-FRI\"",
            super::spans::shorten(s, 80)
        )
    })
}

/// A cron expression that matches some time (`0 0 30 2 *` never does; croner would search
/// for years at every poll). Checked from a fixed date, so the answer does not depend on
/// when the file is read.
pub fn check_cron(s: &str) -> Result<(), String> {
    let cron = parse_cron(s)?;
    let from = zoned(946_684_800_000, &TimeZone::UTC); // 2000-01-01
    match from.map(|z| cron.find_next_occurrence(&z, false)) {
        Some(Ok(_)) => Ok(()),
        _ => Err(format!(
            "`{}` never matches a date (check the day-of-month and month fields)",
            super::spans::shorten(s, 80)
        )),
    }
}

/// A time zone of the IANA database, by name.
pub fn parse_zone(s: &str) -> Result<TimeZone, String> {
    TimeZone::get(s).map_err(|_| {
        format!(
            "`{}` is not a time zone name of the IANA database: use one such as \"Europe/Berlin\", \"America/New_York\" or \"UTC\"",
            super::spans::shorten(s, 80)
        )
    })
}

fn zoned(ms: u64, tz: &TimeZone) -> Option<jiff::Zoned> {
    let ts = Timestamp::from_millisecond(i64::try_from(ms).ok()?).ok()?;
    Some(ts.to_zoned(tz.clone()))
}

fn millis(z: &jiff::Zoned) -> Option<u64> {
    u64::try_from(z.timestamp().as_millisecond()).ok()
}

impl Schedule {
    /// The window in force at `now_ms` (its start ≤ now < its end), if any. Windows of one
    /// schedule may overlap (a duration longer than the gap between starts); the latest
    /// start then has the latest end, so it is the one returned.
    pub fn window_at(&self, now_ms: u64) -> Option<Window> {
        let cron = parse_cron(&self.cron).ok()?;
        let tz = parse_zone(&self.timezone).ok()?;
        let start = cron
            .find_previous_occurrence(&zoned(now_ms, &tz)?, true)
            .ok()?;
        let start_ms = millis(&start)?;
        let end_ms = start_ms.saturating_add(self.duration_ms);
        (start_ms <= now_ms && now_ms < end_ms).then_some(Window { start_ms, end_ms })
    }

    /// The first window starting after `now_ms`.
    pub fn next_window(&self, now_ms: u64) -> Option<Window> {
        let cron = parse_cron(&self.cron).ok()?;
        let tz = parse_zone(&self.timezone).ok()?;
        let start = cron
            .find_next_occurrence(&zoned(now_ms, &tz)?, false)
            .ok()?;
        let start_ms = millis(&start)?;
        Some(Window {
            start_ms,
            end_ms: start_ms.saturating_add(self.duration_ms),
        })
    }

    /// `2026-03-30 08:00 CEST` for an instant, in the schedule's zone.
    pub fn local_time(&self, ms: u64) -> String {
        match parse_zone(&self.timezone)
            .ok()
            .and_then(|tz| zoned(ms, &tz))
        {
            Some(z) => z.strftime("%Y-%m-%d %H:%M %Z").to_string(),
            None => crate::util::format_iso8601_ms(ms),
        }
    }

    /// `"0 8 * * MON-FRI" for 11h (Europe/Berlin): min_instances 2, spare_executors 4`
    pub fn describe(&self) -> String {
        let mut values = Vec::new();
        if let Some(m) = self.min_instances {
            values.push(format!("min_instances {m}"));
        }
        if let Some(s) = self.spare_executors {
            values.push(format!("spare_executors {s}"));
        }
        format!(
            "\"{}\" for {} ({}): {}",
            self.cron,
            crate::util::format_duration_ms(self.duration_ms),
            self.timezone,
            values.join(", ")
        )
    }
}

/// What a pool runs with at one instant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InForce {
    pub min_instances: u32,
    pub spare_executors: u32,
    /// The schedules (by index in `Pool::schedules`) whose window is in force.
    pub windows: Vec<(usize, Window)>,
}

impl Pool {
    /// `min_instances` and `spare_executors` at `now_ms`: the pool's own values outside
    /// every window; inside one, the window's values (each key it sets); inside several,
    /// the largest of each.
    pub fn in_force(&self, now_ms: u64) -> InForce {
        let windows: Vec<(usize, Window)> = self
            .schedules
            .iter()
            .enumerate()
            .filter_map(|(i, s)| s.window_at(now_ms).map(|w| (i, w)))
            .collect();
        let pick = |f: fn(&Schedule) -> Option<u32>, own: u32| {
            windows
                .iter()
                .filter_map(|(i, _)| f(&self.schedules[*i]))
                .max()
                .unwrap_or(own)
        };
        InForce {
            min_instances: pick(|s| s.min_instances, self.min_instances).min(self.max_instances),
            spare_executors: pick(|s| s.spare_executors, self.spare_executors),
            windows,
        }
    }
}

impl Config {
    /// The config as `decide` sees it at `now_ms`: each pool with the `min_instances` and
    /// `spare_executors` of its schedules' windows in force. Without schedules, a copy.
    pub fn at(&self, now_ms: u64) -> Config {
        let mut c = self.clone();
        for p in c.pools.iter_mut().filter(|p| !p.schedules.is_empty()) {
            let f = p.in_force(now_ms);
            p.min_instances = f.min_instances;
            p.spare_executors = f.spare_executors;
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(rfc3339: &str) -> u64 {
        let ts: Timestamp = rfc3339.parse().expect("timestamp");
        ts.as_millisecond() as u64
    }

    fn pool() -> Pool {
        let text = "fleet_id = \"t\"\n[jenkins]\nurl = \"https://ci/\"\nuser = \"u\"\ntoken_file = \"t\"\n[aws]\nregion = \"us-east-1\"\n[[pool]]\nname = \"p\"\nlabels = [\"l\"]\ninstance_types = [\"c5.xlarge\"]\nami = \"ami-1\"\nmax_instances = 1\n";
        let mut cfg = crate::config::load_str(text, std::path::Path::new("/")).expect("valid");
        cfg.pools.remove(0)
    }

    fn office_hours() -> Schedule {
        Schedule {
            cron: "0 8 * * MON-FRI".into(),
            duration_ms: 11 * 3_600_000,
            timezone: "Europe/Berlin".into(),
            min_instances: Some(2),
            spare_executors: Some(4),
        }
    }

    #[test]
    fn office_hours_start_and_end_at_the_edges() {
        let s = office_hours();
        // Monday 2026-11-30, Berlin is UTC+1: the window is 07:00Z .. 18:00Z.
        assert_eq!(s.window_at(ms("2026-11-30T06:59:59.999Z")), None);
        let w = Window {
            start_ms: ms("2026-11-30T07:00:00Z"),
            end_ms: ms("2026-11-30T18:00:00Z"),
        };
        assert_eq!(s.window_at(ms("2026-11-30T07:00:00Z")), Some(w));
        assert_eq!(s.window_at(ms("2026-11-30T17:59:59.999Z")), Some(w));
        assert_eq!(s.window_at(ms("2026-11-30T18:00:00Z")), None);
        // Saturday: none; the next starts on Monday.
        assert_eq!(s.window_at(ms("2026-12-05T10:00:00Z")), None);
        assert_eq!(
            s.next_window(ms("2026-12-05T10:00:00Z"))
                .map(|w| w.start_ms),
            Some(ms("2026-12-07T07:00:00Z"))
        );
        assert_eq!(s.local_time(w.start_ms), "2026-11-30 08:00 CET");
    }

    #[test]
    fn a_named_zone_follows_its_daylight_saving_changes() {
        let s = Schedule {
            cron: "0 8 * * *".into(),
            ..office_hours()
        };
        // Sunday 2026-03-29, 02:00 CET -> 03:00 CEST: 08:00 is 06:00Z that day, 07:00Z the
        // day before. A fixed UTC+1 offset would have the window start an hour late.
        assert_eq!(s.window_at(ms("2026-03-28T06:30:00Z")), None);
        assert!(s.window_at(ms("2026-03-28T07:00:00Z")).is_some());
        assert_eq!(
            s.window_at(ms("2026-03-29T06:00:00Z")).map(|w| w.start_ms),
            Some(ms("2026-03-29T06:00:00Z"))
        );
        assert_eq!(s.window_at(ms("2026-03-29T05:59:59Z")), None);
        assert_eq!(
            s.local_time(ms("2026-03-29T06:00:00Z")),
            "2026-03-29 08:00 CEST"
        );
        // A nightly window across the autumn change (Sunday 2026-10-25, 03:00 CEST -> 02:00
        // CET): 22:00 CEST = 20:00Z, six hours of elapsed time end at 02:00Z (03:00 CET).
        let night = Schedule {
            cron: "0 22 * * SAT".into(),
            duration_ms: 6 * 3_600_000,
            ..office_hours()
        };
        let w = night
            .window_at(ms("2026-10-25T01:59:59Z"))
            .expect("in force");
        assert_eq!(w.start_ms, ms("2026-10-24T20:00:00Z"));
        assert_eq!(night.window_at(ms("2026-10-25T02:00:00Z")), None);
        assert_eq!(night.local_time(w.end_ms), "2026-10-25 03:00 CET");
    }

    #[test]
    fn windows_longer_than_their_period_and_several_schedules() {
        // Every hour for 90 minutes: always in force once started.
        let s = Schedule {
            cron: "0 * * * *".into(),
            duration_ms: 90 * 60_000,
            timezone: "UTC".into(),
            min_instances: Some(1),
            spare_executors: None,
        };
        let w = s.window_at(ms("2026-12-01T10:45:00Z")).expect("in force");
        assert_eq!(w.start_ms, ms("2026-12-01T10:00:00Z"));
        let mut pool = pool();
        pool.min_instances = 0;
        pool.spare_executors = 1;
        pool.max_instances = 3;
        pool.schedules = vec![
            s,
            Schedule {
                min_instances: Some(5),
                spare_executors: Some(2),
                ..office_hours()
            },
        ];
        // Tuesday 10:45Z: both in force; the largest of each, min capped at max_instances.
        let f = pool.in_force(ms("2026-12-01T10:45:00Z"));
        assert_eq!((f.min_instances, f.spare_executors), (3, 2));
        assert_eq!(f.windows.len(), 2);
        // Saturday: only the hourly one; spare stays the pool's own.
        let f = pool.in_force(ms("2026-12-05T10:45:00Z"));
        assert_eq!((f.min_instances, f.spare_executors), (1, 1));
    }

    #[test]
    fn bad_expressions_and_zones_say_what_to_use() {
        assert!(parse_cron("0 8 * * MON-FRI").is_ok());
        let e = parse_cron("0 25 * * *").unwrap_err();
        assert!(
            e.contains("not a cron expression") && e.contains("0 8 * * MON-FRI"),
            "{e}"
        );
        let e = parse_zone("Europe/Berln").unwrap_err();
        assert!(e.contains("`Europe/Berln` is not a time zone name"), "{e}");
        assert!(parse_zone("America/New_York").is_ok());
        assert!(check_cron("0 8 29 2 *").is_ok(), "leap days exist");
        let e = check_cron("0 0 30 2 *").unwrap_err();
        assert!(e.contains("never matches"), "{e}");
    }

    #[test]
    fn a_start_time_skipped_by_spring_forward_begins_at_the_end_of_the_gap() {
        let s = Schedule {
            cron: "30 2 * * *".into(),
            duration_ms: 3_600_000,
            ..office_hours()
        };
        // 2026-03-29 in Berlin: 02:00 CET jumps to 03:00 CEST (01:00Z); 02:30 does not exist.
        let w = s.window_at(ms("2026-03-29T01:30:00Z")).expect("in force");
        assert_eq!(w.start_ms, ms("2026-03-29T01:00:00Z"));
        assert_eq!(s.local_time(w.start_ms), "2026-03-29 03:00 CEST");
    }
}
