//! The log file `<LOGGING_DIR>/<LOGGING_NAME>.log` (and stdout when
//! `LOGGING_STREAM` is true), one line per event.
//!
//! Every line carries the hostname, because the three replicas of a service
//! append to one file on the shared log directory and a test must tell them
//! apart. Passwords are kept out by construction (URLs show themselves
//! redacted); as a second guard the logger replaces any registered secret
//! with `***` before a line is written.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// Python's logging levels, which `LOGGING_LEVEL` names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
}

impl Level {
    pub fn parse(s: &str) -> Option<Level> {
        match s.trim().to_ascii_uppercase().as_str() {
            "DEBUG" => Some(Level::Debug),
            "INFO" => Some(Level::Info),
            "WARNING" | "WARN" => Some(Level::Warning),
            "ERROR" | "CRITICAL" => Some(Level::Error),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
        }
    }
}

/// A duration as people write it: `300 ms`, `5s`, `2.5s`.
pub fn human(d: std::time::Duration) -> String {
    if d.as_secs() == 0 {
        format!("{} ms", d.as_millis())
    } else if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

/// `2023-11-14T22:13:20.000Z`: UTC, so lines of replicas in different
/// time zones sort together.
pub fn utc_rfc3339(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = d.as_secs() as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, day) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{day:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        d.subsec_millis()
    )
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian
/// calendar: shift the year to start in March so the leap day is last,
/// then count 400-year eras of 146097 days.
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

pub struct Logger {
    file: Mutex<File>,
    path: PathBuf,
    stream: bool,
    min: Level,
    /// `<hostname> <role>[<pid>]`
    origin: String,
    secrets: Vec<String>,
}

impl Logger {
    /// Opens (appends to) `<dir>/<name>.log`, creating `dir` if needed.
    pub fn open(
        dir: &Path,
        name: &str,
        stream: bool,
        min: Level,
        hostname: &str,
        role: &str,
    ) -> io::Result<Logger> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("{name}.log"));
        let file = OpenOptions::new().create(true).append(true).open(&path)?;
        Ok(Logger {
            file: Mutex::new(file),
            path,
            stream,
            min,
            origin: format!("{hostname} {role}[{}]", std::process::id()),
            secrets: Vec::new(),
        })
    }

    /// Values never to be written, whatever line they turn up in. Empty
    /// ones are ignored (they would match everywhere).
    pub fn with_secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Logger {
        self.secrets
            .extend(secrets.into_iter().filter(|s| !s.is_empty()));
        // Longest first, so a secret containing another is replaced whole.
        self.secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        self
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The line as written, for tests of the format.
    pub fn format(&self, level: Level, at: SystemTime, msg: &str) -> String {
        let mut msg = msg.replace(['\r', '\n'], " ");
        for s in &self.secrets {
            msg = msg.replace(s.as_str(), "***");
        }
        format!(
            "{} {} {}: {msg}\n",
            utc_rfc3339(at),
            level.as_str(),
            self.origin
        )
    }

    pub fn log(&self, level: Level, msg: &str) {
        if level < self.min {
            return;
        }
        let line = self.format(level, SystemTime::now(), msg);
        // One write per line on an O_APPEND file: lines of the replicas
        // sharing the file do not interleave mid-line.
        if let Ok(mut f) = self.file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
        if self.stream {
            let _ = io::stdout().lock().write_all(line.as_bytes());
        }
    }

    pub fn debug(&self, msg: &str) {
        self.log(Level::Debug, msg)
    }
    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg)
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg)
    }
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_formatting() {
        let at = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(utc_rfc3339(at(0)), "1970-01-01T00:00:00.000Z");
        assert_eq!(utc_rfc3339(at(951_782_400)), "2000-02-29T00:00:00.000Z");
        assert_eq!(utc_rfc3339(at(1_700_000_000)), "2023-11-14T22:13:20.000Z");
        assert_eq!(
            utc_rfc3339(at(4_107_542_399) + Duration::from_millis(7)),
            "2100-02-28T23:59:59.007Z"
        );
    }

    #[test]
    fn durations() {
        assert_eq!(human(Duration::from_millis(300)), "300 ms");
        assert_eq!(human(Duration::from_secs(5)), "5s");
        assert_eq!(human(Duration::from_millis(2500)), "2.5s");
    }

    #[test]
    fn levels() {
        assert_eq!(Level::parse("info"), Some(Level::Info));
        assert_eq!(Level::parse("WARNING"), Some(Level::Warning));
        assert_eq!(Level::parse("loud"), None);
        assert!(Level::Debug < Level::Info);
    }

    #[test]
    fn lines_are_single_scrubbed_and_filtered() {
        let dir = tempfile::tempdir().unwrap();
        let log = Logger::open(dir.path(), "kompira", false, Level::Info, "ap-h1", "uwsgi")
            .unwrap()
            .with_secrets(["pw".to_string(), "pw-longer".to_string(), String::new()]);
        log.info("a\nb pw-longer and pw");
        log.debug("not written");
        let text = std::fs::read_to_string(dir.path().join("kompira.log")).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        let pid = std::process::id();
        assert!(
            text.ends_with(&format!(" INFO ap-h1 uwsgi[{pid}]: a b *** and ***\n")),
            "{text}"
        );
    }
}
