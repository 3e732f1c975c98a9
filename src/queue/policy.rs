//! Queue policy, pure: call windows in the callee's time zone (DST-correct with jiff). When a
//! failed attempt is tried again is `lifecycle::retry`.

use jiff::civil::{Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan, Zoned};

/// Why a call window is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("unknown time zone {0:?}")]
    TimeZone(String),
    #[error("{field} must be HH:MM, got {value:?}")]
    Time { field: &'static str, value: String },
    #[error("start must be before end (overnight windows are not supported)")]
    Order,
    #[error("unknown day {0:?}; use mon, tue, wed, thu, fri, sat, sun")]
    Day(String),
    #[error("days must name at least one day")]
    NoDays,
}

/// When a callee may be called: local `start`..`end` on the given weekdays in `tz`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallWindow {
    tz: TimeZone,
    start: Time,
    end: Time,
    days: [bool; 7],
}

impl CallWindow {
    /// Validates the contract's `call_window` fields.
    pub fn parse(timezone: &str, start: &str, end: &str, days: &[String]) -> Result<CallWindow, WindowError> {
        let tz = TimeZone::get(timezone).map_err(|_| WindowError::TimeZone(timezone.to_string()))?;
        let start_t = parse_hhmm(start).ok_or_else(|| WindowError::Time { field: "start", value: start.into() })?;
        let end_t = parse_hhmm(end).ok_or_else(|| WindowError::Time { field: "end", value: end.into() })?;
        if start_t >= end_t {
            return Err(WindowError::Order);
        }
        let mut set = [false; 7];
        if days.is_empty() {
            set = [true; 7];
        }
        for d in days {
            let wd = match d.to_ascii_lowercase().as_str() {
                "mon" => Weekday::Monday,
                "tue" => Weekday::Tuesday,
                "wed" => Weekday::Wednesday,
                "thu" => Weekday::Thursday,
                "fri" => Weekday::Friday,
                "sat" => Weekday::Saturday,
                "sun" => Weekday::Sunday,
                _ => return Err(WindowError::Day(d.clone())),
            };
            set[wd.to_monday_zero_offset() as usize] = true;
        }
        if !set.iter().any(|&d| d) {
            return Err(WindowError::NoDays);
        }
        Ok(CallWindow { tz, start: start_t, end: end_t, days: set })
    }

    /// A window stored as the contract's JSON object (`timezone`, `start`, `end`, `days`).
    pub fn from_json(json: &str) -> Option<CallWindow> {
        let v: serde_json::Value = serde_json::from_str(json).ok()?;
        let s = |k: &str| v[k].as_str().unwrap_or_default().to_string();
        let days: Vec<String> = v["days"]
            .as_array()
            .map(|a| a.iter().filter_map(|d| d.as_str().map(str::to_string)).collect())
            .unwrap_or_default();
        CallWindow::parse(&s("timezone"), &s("start"), &s("end"), &days).ok()
    }

    /// True when `at` falls inside the window (local time, start inclusive, end exclusive).
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned(self.tz.clone());
        self.day_allowed(&local) && local.time() >= self.start && local.time() < self.end
    }

    /// `at` itself if inside the window, else the next opening. Opening times that do not exist
    /// locally (a DST gap) move forward by the gap, as jiff's "compatible" rule does.
    pub fn next_opening(&self, at: Timestamp) -> Timestamp {
        if self.contains(at) {
            return at;
        }
        let local = at.to_zoned(self.tz.clone());
        let mut date = local.date();
        for _ in 0..8 {
            if self.days[date.weekday().to_monday_zero_offset() as usize]
                && let Ok(open) = date.to_datetime(self.start).to_zoned(self.tz.clone())
                && open.timestamp() > at
            {
                return open.timestamp();
            }
            date = match date.checked_add(1.day()) {
                Ok(d) => d,
                Err(_) => break,
            };
        }
        // Unreachable with at least one allowed day; fall back to "now" rather than panic.
        at
    }

    fn day_allowed(&self, local: &Zoned) -> bool {
        self.days[local.weekday().to_monday_zero_offset() as usize]
    }
}

fn parse_hhmm(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn weekdays() -> Vec<String> {
        ["mon", "tue", "wed", "thu", "fri"].iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn window_validation_names_the_problem() {
        let d = weekdays();
        assert_eq!(
            CallWindow::parse("Mars/Olympus", "09:00", "17:00", &d).unwrap_err(),
            WindowError::TimeZone("Mars/Olympus".into())
        );
        assert!(matches!(
            CallWindow::parse("UTC", "9:00", "17:00", &d).unwrap_err(),
            WindowError::Time { field: "start", .. }
        ));
        assert!(matches!(
            CallWindow::parse("UTC", "09:00", "25:00", &d).unwrap_err(),
            WindowError::Time { field: "end", .. }
        ));
        assert_eq!(CallWindow::parse("UTC", "17:00", "09:00", &d).unwrap_err(), WindowError::Order);
        assert_eq!(
            CallWindow::parse("UTC", "09:00", "17:00", &["funday".into()]).unwrap_err(),
            WindowError::Day("funday".into())
        );
    }

    #[test]
    fn outside_the_window_moves_to_the_next_weekday_opening() {
        let w = CallWindow::parse("America/Los_Angeles", "09:00", "17:00", &weekdays()).unwrap();
        // Friday 2026-11-20 18:00 PST (02:00 UTC Saturday) → Monday 2026-11-23 09:00 PST = 17:00 UTC.
        assert_eq!(w.next_opening(ts("2026-11-21T02:00:00Z")), ts("2026-11-23T17:00:00Z"));
        // Inside: unchanged.
        assert_eq!(w.next_opening(ts("2026-11-20T20:00:00Z")), ts("2026-11-20T20:00:00Z"));
        // Early morning the same weekday → that day's opening.
        assert_eq!(w.next_opening(ts("2026-11-20T14:00:00Z")), ts("2026-11-20T17:00:00Z"));
        assert!(!w.contains(ts("2026-11-21T18:00:00Z")), "Saturday is closed");
    }

    #[test]
    fn windows_follow_daylight_saving_changes() {
        let w = CallWindow::parse("America/Los_Angeles", "09:00", "17:00", &weekdays()).unwrap();
        // Friday 2026-03-06 after hours (PST, UTC−8); DST starts Sunday 03-08.
        // Monday 09:00 is now PDT (UTC−7): 16:00 UTC, not 17:00.
        assert_eq!(w.next_opening(ts("2026-03-07T02:00:00Z")), ts("2026-03-09T16:00:00Z"));
        // Back to PST after 2026-11-01: Monday 11-02 09:00 = 17:00 UTC.
        assert_eq!(w.next_opening(ts("2026-10-31T02:00:00Z")), ts("2026-11-02T17:00:00Z"));
        // An opening inside the spring-forward gap (02:30 does not exist on 03-08) moves to 03:30 PDT.
        let gap = CallWindow::parse("America/Los_Angeles", "02:30", "05:00", &["sun".into()]).unwrap();
        assert_eq!(gap.next_opening(ts("2026-03-08T08:00:00Z")), ts("2026-03-08T10:30:00Z"));
        // An opening in the repeated hour (01:30 happens twice on 11-01) takes the first one (PDT).
        let fold = CallWindow::parse("America/Los_Angeles", "01:30", "05:00", &["sun".into()]).unwrap();
        assert_eq!(fold.next_opening(ts("2026-11-01T07:00:00Z")), ts("2026-11-01T08:30:00Z"));
    }
}
