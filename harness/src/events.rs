//! The harness's own event log: phases, injected faults and their undoing,
//! each with its wall-clock time and its offset from the lab's start, so a
//! failure's evidence can be lined up with the hosts' own logs.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

/// One event.
#[derive(Clone, Debug)]
pub struct Event {
    pub wall: SystemTime,
    /// Since the log was opened (the lab's start).
    pub since: Duration,
    pub what: String,
}

impl Event {
    /// `2026-11-27T23:59:01.123Z +12.345s what`.
    pub fn line(&self) -> String {
        format!(
            "{} +{:.3}s {}",
            humantime::format_rfc3339_millis(self.wall),
            self.since.as_secs_f64(),
            self.what
        )
    }
}

/// An append-only, shareable log.
#[derive(Debug)]
pub struct EventLog {
    start: Instant,
    entries: Mutex<Vec<Event>>,
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            start: Instant::now(),
            entries: Mutex::new(Vec::new()),
        }
    }
}

impl EventLog {
    /// Records `what` now and returns the moment, for measurements.
    pub fn record(&self, what: impl Into<String>) -> Instant {
        let at = Instant::now();
        let e = Event {
            wall: SystemTime::now(),
            since: at.duration_since(self.start),
            what: what.into(),
        };
        tracing::info!("{}", e.what);
        self.entries.lock().unwrap().push(e);
        at
    }

    pub fn events(&self) -> Vec<Event> {
        self.entries.lock().unwrap().clone()
    }

    /// Every event, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.events().iter().map(Event::line).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_carry_wall_time_and_offset_in_order() {
        let log = EventLog::default();
        log.record("fault: stop host `a`");
        log.record("undo: start host `a`");
        let lines = log.lines();
        assert_eq!(lines.len(), 2);
        for (l, what) in lines
            .iter()
            .zip(["fault: stop host `a`", "undo: start host `a`"])
        {
            let mut parts = l.splitn(3, ' ');
            let wall = parts.next().unwrap();
            assert!(humantime::parse_rfc3339(wall).is_ok(), "{wall}");
            let off = parts.next().unwrap();
            assert!(off.starts_with('+') && off.ends_with('s'), "{off}");
            assert_eq!(parts.next().unwrap(), what);
        }
        let ev = log.events();
        assert!(ev[0].since <= ev[1].since);
    }
}
