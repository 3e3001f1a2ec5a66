//! The harness's own event log: phases, injected faults and their undoing,
//! each with its wall-clock time and its offset from the lab's start, so a
//! failure's evidence can be lined up with the hosts' own logs.
//!
//! A lab's log is also appended to a file of its state directory
//! (`events.log`, mode 0600, the run's secrets replaced by `***`), so a
//! later process (`ke2lab logs export`, `provision`) sees what the one that
//! booted the lab recorded and adds its own.

use std::io::Write as _;
use std::path::{Path, PathBuf};
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
    sink: Mutex<Option<Sink>>,
}

/// The file every event is appended to, and the run's kept passwords
/// (`secrets.toml`), which must not reach it: read at each append, since
/// they are generated after the first events.
#[derive(Debug)]
struct Sink {
    path: PathBuf,
    secrets_file: PathBuf,
}

impl Sink {
    fn append(&self, lines: &[String]) -> std::io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt as _;
        if lines.is_empty() {
            return Ok(());
        }
        let secrets = self.secrets();
        let text: String = lines
            .iter()
            .map(|l| format!("{}\n", crate::artifacts::redact(l, &secrets)))
            .collect();
        std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o600)
            .open(&self.path)?
            .write_all(text.as_bytes())
    }

    fn secrets(&self) -> Vec<String> {
        crate::artifacts::kept_secrets(&self.secrets_file)
    }
}

impl Default for EventLog {
    fn default() -> Self {
        EventLog {
            start: Instant::now(),
            entries: Mutex::new(Vec::new()),
            sink: Mutex::new(None),
        }
    }
}

impl EventLog {
    /// From now on every event is also appended to `path` (created 0600),
    /// the passwords kept in `secrets_file` replaced by `***`; the events
    /// recorded so far are written first.
    pub fn persist_to(&self, path: &Path, secrets_file: &Path) -> std::io::Result<()> {
        let sink = Sink {
            path: path.to_path_buf(),
            secrets_file: secrets_file.to_path_buf(),
        };
        let entries = self.entries.lock().unwrap();
        sink.append(&entries.iter().map(Event::line).collect::<Vec<_>>())?;
        *self.sink.lock().unwrap() = Some(sink);
        Ok(())
    }

    /// The log of a lab booted by another process, continued in `path`:
    /// offsets count from the first event the file holds (the lab's boot),
    /// not from this process's start. Nothing is written until an event is
    /// recorded.
    pub fn resume(path: &Path, secrets_file: &Path) -> EventLog {
        let booted = std::fs::read_to_string(path)
            .ok()
            .and_then(|text| text.lines().next().and_then(start_of));
        let now = Instant::now();
        let start = booted
            .and_then(|wall| SystemTime::now().duration_since(wall).ok())
            .and_then(|ago| now.checked_sub(ago))
            .unwrap_or(now);
        EventLog {
            start,
            entries: Mutex::new(Vec::new()),
            sink: Mutex::new(Some(Sink {
                path: path.to_path_buf(),
                secrets_file: secrets_file.to_path_buf(),
            })),
        }
    }

    /// Records `what` now and returns the moment, for measurements.
    pub fn record(&self, what: impl Into<String>) -> Instant {
        let at = Instant::now();
        let e = Event {
            wall: SystemTime::now(),
            since: at.duration_since(self.start),
            what: what.into(),
        };
        tracing::info!("{}", e.what);
        let line = e.line();
        let mut entries = self.entries.lock().unwrap();
        entries.push(e);
        if let Some(s) = self.sink.lock().unwrap().as_ref()
            && let Err(err) = s.append(std::slice::from_ref(&line))
        {
            tracing::warn!("cannot append to `{}`: {err}", s.path.display());
        }
        at
    }

    pub fn events(&self) -> Vec<Event> {
        self.entries.lock().unwrap().clone()
    }

    /// Every event, one line each.
    pub fn lines(&self) -> Vec<String> {
        self.events().iter().map(Event::line).collect()
    }

    /// Every event of the lab: the file's (every process that recorded
    /// into it) merged with this process's own that the file lacks (a
    /// failed append), in time order.
    pub fn all_lines(&self) -> Vec<String> {
        let (path, secrets) = match self.sink.lock().unwrap().as_ref() {
            Some(s) => (Some(s.path.clone()), s.secrets()),
            None => (None, Vec::new()),
        };
        let file = path
            .and_then(|p| std::fs::read_to_string(p).ok())
            .unwrap_or_default();
        // As the file holds them, so that the same event matches.
        let own = self
            .lines()
            .iter()
            .map(|l| crate::artifacts::redact(l, &secrets))
            .collect();
        merge(file.lines().map(str::to_string).collect(), own)
    }
}

/// The wall-clock time the log was opened at, from one of its lines
/// (its time less its offset).
fn start_of(line: &str) -> Option<SystemTime> {
    let mut parts = line.splitn(3, ' ');
    let wall = humantime::parse_rfc3339(parts.next()?).ok()?;
    let offset: f64 = parts
        .next()?
        .strip_prefix('+')?
        .strip_suffix('s')?
        .parse()
        .ok()?;
    wall.checked_sub(Duration::try_from_secs_f64(offset).ok()?)
}

/// `persisted` plus the lines of `own` it does not hold (counted, so a
/// line recorded twice stays twice), ordered by their times (the lines
/// begin with fixed-width RFC 3339 times; the sort is stable).
fn merge(persisted: Vec<String>, own: Vec<String>) -> Vec<String> {
    let mut unmatched: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for l in &persisted {
        *unmatched.entry(l.as_str()).or_default() += 1;
    }
    let mut extra = Vec::new();
    for l in own {
        match unmatched.get_mut(l.as_str()) {
            Some(n) if *n > 0 => *n -= 1,
            _ => extra.push(l),
        }
    }
    let mut all = persisted;
    all.extend(extra);
    all.sort_by(|a, b| {
        let time = |l: &str| l.split(' ').next().unwrap_or_default().to_string();
        time(a).cmp(&time(b))
    });
    all
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

    /// What one process records is in the file; another process resumes
    /// it, keeps the offsets counting from the boot, adds its own events,
    /// and keeps the run's secrets out of the file.
    #[test]
    fn the_file_carries_the_log_to_a_later_process() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let secrets = dir.path().join("secrets.toml");
        let booting = EventLog::default();
        booting.record("run `r1` booting");
        booting.persist_to(&path, &secrets).unwrap();
        booting.record("phase boot 1.00s ok");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::thread::sleep(Duration::from_millis(20));

        // The passwords are generated after the boot's first events.
        let mut creds = ke2lab::topology::Credentials::document_defaults();
        creds.repl = ke2lab::topology::Secret::new("s3cr3t");
        creds.save(&secrets).unwrap();
        let later = EventLog::resume(&path, &secrets);
        later.record("phase provision with s3cr3t in it");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert!(lines[0].ends_with("run `r1` booting"), "{text}");
        assert!(
            lines[2].ends_with("phase provision with *** in it"),
            "{text}"
        );
        assert!(!text.contains("s3cr3t"));
        // The later process's offset counts from the boot's event.
        let offset = |l: &str| -> f64 {
            l.split(' ').nth(1).unwrap()[1..]
                .trim_end_matches('s')
                .parse()
                .unwrap()
        };
        assert!(offset(lines[2]) >= 0.02, "{text}");
        // Every event once, in order, the file's and the process's own.
        let all = later.all_lines();
        assert_eq!(all.len(), 3, "{all:#?}");
        assert_eq!(all[0], lines[0]);
    }

    #[test]
    fn merge_adds_what_the_file_lacks_in_time_order() {
        let a = "2026-01-01T00:00:01.000Z +1.000s a".to_string();
        let b = "2026-01-01T00:00:02.000Z +2.000s b".to_string();
        let c = "2026-01-01T00:00:03.000Z +3.000s c".to_string();
        assert_eq!(
            merge(vec![a.clone(), c.clone()], vec![b.clone(), c.clone()]),
            [a.clone(), b.clone(), c.clone()]
        );
        assert_eq!(merge(vec![], vec![a.clone(), a.clone()]), [a.clone(), a]);
        assert_eq!(
            start_of("2026-01-01T00:00:03.000Z +3.000s c"),
            humantime::parse_rfc3339("2026-01-01T00:00:00Z").ok()
        );
        assert_eq!(start_of("garbage"), None);
    }
}
