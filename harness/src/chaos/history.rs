//! What a chaos run records, as plain data (`history.jsonl`,
//! `samples.jsonl`), and the checks over it. Pure: the checker sees only
//! what the workloads and the sampler wrote down, so a saved history can be
//! checked again, and every check is unit-tested on a made-up history that
//! breaks it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// One event of the run, `t_ms` from its start.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Event {
    /// A write attempt through the VIP: `id` inserted by `client`; `ok`
    /// when the commit was acknowledged, then `server` is the host whose
    /// PostgreSQL acknowledged it (`inet_server_addr()`).
    Write {
        t_ms: u64,
        end_ms: u64,
        client: u32,
        id: i64,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// A read through the VIP (Pgpool-II may balance it to a standby).
    Read {
        t_ms: u64,
        end_ms: u64,
        ok: bool,
        #[serde(skip_serializing_if = "Option::is_none")]
        server: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        rows: Option<i64>,
    },
    /// Host `host` appended line `n` to its file on the shared directory.
    Append {
        t_ms: u64,
        host: String,
        n: u64,
        ok: bool,
    },
    /// Step `step` (from 1) injected its fault(s).
    Inject {
        t_ms: u64,
        step: usize,
        what: String,
    },
    Heal {
        t_ms: u64,
        step: usize,
        what: String,
    },
    /// A service of rebooted host `host` failed to start, as a unit fails
    /// on a real boot (the boot goes on; convergence judges the state).
    UnitFailed {
        t_ms: u64,
        host: String,
        error: String,
    },
    /// A re-provision between steps (safe mode) or after the heal.
    Repair {
        t_ms: u64,
        end_ms: u64,
        changes: usize,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// The cluster's verdict came back empty.
    Converged { t_ms: u64 },
}

/// One look at the cluster, every host asked at once.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub t_ms: u64,
    /// Hosts whose interfaces carry the VIP.
    pub vip: Vec<String>,
    /// Hosts whose PostgreSQL runs out of recovery.
    pub primaries: Vec<String>,
    /// Each answering member's watchdog leader.
    pub leaders: BTreeMap<String, String>,
    /// Hosts that could not be asked (paused, stopped, cut off).
    pub unanswered: Vec<String>,
}

/// A check that failed, with what shows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub check: String,
    pub detail: String,
}

/// Writes acknowledged by two different servers whose attempts overlapped
/// in time: two primaries accepted commits at once (split brain). A
/// sequential failover cannot produce it: the old primary's last
/// acknowledgement ends before the promotion, which takes seconds, and the
/// new one's first begins after it.
pub fn dual_primary_acks(history: &[Event]) -> Option<Violation> {
    let mut acks: Vec<(u64, u64, &str, i64)> = history
        .iter()
        .filter_map(|e| match e {
            Event::Write {
                t_ms,
                end_ms,
                ok: true,
                server: Some(s),
                id,
                ..
            } => Some((*t_ms, *end_ms, s.as_str(), *id)),
            _ => None,
        })
        .collect();
    acks.sort();
    // Sweep: the latest-ending acknowledgement of each server so far.
    let mut open: BTreeMap<&str, (u64, i64)> = BTreeMap::new();
    for (start, end, server, id) in acks {
        for (other, (other_end, other_id)) in &open {
            if *other != server && *other_end >= start {
                return Some(Violation {
                    check: "no write acknowledged by two primaries at once".into(),
                    detail: format!(
                        "write {other_id} acknowledged by `{other}` until {other_end} ms and write \
                         {id} by `{server}` from {start} ms"
                    ),
                });
            }
        }
        let e = open.entry(server).or_insert((end, id));
        if end >= e.0 {
            *e = (end, id);
        }
    }
    None
}

/// A sample in which two hosts carried the VIP.
pub fn dual_vip(samples: &[Sample]) -> Option<Violation> {
    samples.iter().find(|s| s.vip.len() > 1).map(|s| Violation {
        check: "the VIP is never on two hosts".into(),
        detail: format!("at {} ms the VIP was on {}", s.t_ms, s.vip.join(" and ")),
    })
}

/// The acknowledged writes' ids.
pub fn acknowledged(history: &[Event]) -> Vec<i64> {
    history
        .iter()
        .filter_map(|e| match e {
            Event::Write { ok: true, id, .. } => Some(*id),
            _ => None,
        })
        .collect()
}

/// Which acknowledged ids `present` lacks.
pub fn lost(history: &[Event], present: &BTreeSet<i64>) -> Vec<i64> {
    acknowledged(history)
        .into_iter()
        .filter(|id| !present.contains(id))
        .collect()
}

/// The longest stretch without an acknowledged write, from the first
/// attempt to the last (ms), and where it began.
pub fn longest_unavailability(history: &[Event]) -> Option<(u64, u64)> {
    let mut attempts: Vec<(u64, bool)> = history
        .iter()
        .filter_map(|e| match e {
            Event::Write {
                end_ms, ok, t_ms, ..
            } => Some((if *ok { *end_ms } else { *t_ms }, *ok)),
            _ => None,
        })
        .collect();
    attempts.sort();
    let first = attempts.first()?.0;
    let last = attempts.last()?.0;
    let mut since = first;
    let mut worst = (0u64, first);
    for (t, ok) in attempts {
        if ok {
            if t - since > worst.0 {
                worst = (t - since, since);
            }
            since = t;
        }
    }
    if last - since > worst.0 {
        worst = (last - since, since);
    }
    Some(worst)
}

/// For each heal, how long until the cluster next converged (ms); a heal
/// never followed by convergence is absent.
pub fn convergence_times(history: &[Event]) -> Vec<u64> {
    let mut out = Vec::new();
    let mut healed: Option<u64> = None;
    for e in history {
        match e {
            Event::Heal { t_ms, .. } => {
                healed.get_or_insert(*t_ms);
            }
            Event::Converged { t_ms } => {
                if let Some(h) = healed.take() {
                    out.push(t_ms.saturating_sub(h));
                }
            }
            _ => {}
        }
    }
    out
}

/// Counts of one kind of attempt.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tally {
    pub attempted: usize,
    pub ok: usize,
}

pub fn writes(history: &[Event]) -> Tally {
    tally(history, |e| match e {
        Event::Write { ok, .. } => Some(*ok),
        _ => None,
    })
}

pub fn reads(history: &[Event]) -> Tally {
    tally(history, |e| match e {
        Event::Read { ok, .. } => Some(*ok),
        _ => None,
    })
}

pub fn appends(history: &[Event]) -> Tally {
    tally(history, |e| match e {
        Event::Append { ok, .. } => Some(*ok),
        _ => None,
    })
}

fn tally(history: &[Event], f: impl Fn(&Event) -> Option<bool>) -> Tally {
    let mut t = Tally::default();
    for ok in history.iter().filter_map(f) {
        t.attempted += 1;
        t.ok += usize::from(ok);
    }
    t
}

/// The lines host `host` appended with success, in order: each must be in
/// its file on every brick once healed.
pub fn acked_lines(history: &[Event], host: &str) -> Vec<String> {
    history
        .iter()
        .filter_map(|e| match e {
            Event::Append {
                host: h,
                n,
                ok: true,
                ..
            } if h == host => Some(append_line(h, *n)),
            _ => None,
        })
        .collect()
}

/// The line an appender writes (without its newline).
pub fn append_line(host: &str, n: u64) -> String {
    format!("{host} {n}")
}

/// Shared-file copies (one per host) that differ, or that lack an
/// acknowledged line. `copies` is (host, bytes or why not read).
pub fn shared_file(
    file: &str,
    acked: &[String],
    copies: &[(String, Result<Vec<u8>, String>)],
) -> Option<Violation> {
    let check = "the shared files are identical on every brick".to_string();
    let mut first: Option<(&str, &[u8])> = None;
    for (host, copy) in copies {
        let bytes = match copy {
            Ok(b) => b.as_slice(),
            Err(e) => {
                return Some(Violation {
                    check,
                    detail: format!("`{file}` on `{host}`: {e}"),
                });
            }
        };
        match first {
            None => first = Some((host, bytes)),
            Some((h0, b0)) if b0 != bytes => {
                return Some(Violation {
                    check,
                    detail: format!(
                        "`{file}` differs: {} bytes on `{h0}`, {} on `{host}`",
                        b0.len(),
                        bytes.len()
                    ),
                });
            }
            Some(_) => {}
        }
    }
    let (_, bytes) = first?;
    let text = String::from_utf8_lossy(bytes);
    let lines: BTreeSet<&str> = text.lines().collect();
    acked
        .iter()
        .find(|l| !lines.contains(l.as_str()))
        .map(|l| Violation {
            check: "every acknowledged append is in the shared file".into(),
            detail: format!("`{file}` lacks the acknowledged line `{l}`"),
        })
}

/// One pattern that means a bug in a service's log: lines of `bug-patterns.txt`
/// are `<part of the exported file's name>: <text of a line>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BugPattern {
    pub file: String,
    pub text: String,
}

pub const BUG_PATTERNS: &str = include_str!("bug-patterns.txt");

pub fn bug_patterns(source: &str) -> Result<Vec<BugPattern>, String> {
    let mut out = Vec::new();
    for (i, line) in source.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (file, text) = line
            .split_once(": ")
            .ok_or_else(|| format!("bug-patterns.txt:{}: no `: ` in `{line}`", i + 1))?;
        out.push(BugPattern {
            file: file.trim().to_string(),
            text: text.to_string(),
        });
    }
    Ok(out)
}

/// The first line of a log (named `name`, its exported path) that matches
/// a pattern.
pub fn bug_in(patterns: &[BugPattern], name: &str, text: &str) -> Option<Violation> {
    let applies: Vec<&BugPattern> = patterns.iter().filter(|p| name.contains(&p.file)).collect();
    if applies.is_empty() {
        return None;
    }
    for (i, line) in text.lines().enumerate() {
        if let Some(p) = applies.iter().find(|p| line.contains(&p.text)) {
            return Some(Violation {
                check: "no service log shows a bug".into(),
                detail: format!(
                    "`{name}` line {}: `{}` (pattern `{}: {}`)",
                    i + 1,
                    line.chars().take(200).collect::<String>(),
                    p.file,
                    p.text
                ),
            });
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(t: u64, id: i64, server: &str) -> Event {
        Event::Write {
            t_ms: t,
            end_ms: t + 5,
            client: 0,
            id,
            ok: true,
            server: Some(server.into()),
            error: None,
        }
    }

    fn fail(t: u64, id: i64) -> Event {
        Event::Write {
            t_ms: t,
            end_ms: t + 2000,
            client: 0,
            id,
            ok: false,
            server: None,
            error: Some("timeout".into()),
        }
    }

    #[test]
    fn a_failover_is_no_dual_primary_but_interleaved_acks_are() {
        let failover = [w(0, 1, "a"), w(10, 2, "a"), fail(20, 3), w(5000, 4, "b")];
        assert_eq!(dual_primary_acks(&failover), None);
        let both = [w(0, 1, "a"), w(2, 2, "b"), w(20, 3, "a")];
        let v = dual_primary_acks(&both).unwrap();
        assert!(
            v.detail.contains("`a`") && v.detail.contains("`b`"),
            "{v:?}"
        );
    }

    #[test]
    fn two_vip_holders_in_one_sample_fail() {
        let ok = Sample {
            vip: vec!["a".into()],
            ..Default::default()
        };
        let bad = Sample {
            t_ms: 42,
            vip: vec!["a".into(), "b".into()],
            ..Default::default()
        };
        assert_eq!(dual_vip(std::slice::from_ref(&ok)), None);
        assert!(dual_vip(&[ok, bad]).unwrap().detail.contains("42 ms"));
    }

    #[test]
    fn lost_and_unavailability_come_from_the_history() {
        let h = [w(0, 1, "a"), fail(100, 2), fail(2200, 3), w(5000, 4, "b")];
        let present: BTreeSet<i64> = [1].into();
        assert_eq!(lost(&h, &present), vec![4]);
        assert_eq!(longest_unavailability(&h), Some((5000, 5)));
        assert_eq!(
            writes(&h),
            Tally {
                attempted: 4,
                ok: 2
            }
        );
    }

    #[test]
    fn shared_files_must_match_and_hold_every_acknowledged_line() {
        let acked = vec![append_line("h1", 0), append_line("h1", 1)];
        let good = b"h1 0\nh1 1\nh1 2\n".to_vec();
        let copies = vec![
            ("h1".to_string(), Ok(good.clone())),
            ("h2".to_string(), Ok(good.clone())),
        ];
        assert_eq!(shared_file("f", &acked, &copies), None);
        let differ = vec![
            ("h1".to_string(), Ok(good.clone())),
            ("h2".to_string(), Ok(b"h1 0\n".to_vec())),
        ];
        assert!(
            shared_file("f", &acked, &differ)
                .unwrap()
                .detail
                .contains("differs")
        );
        let short = vec![("h1".to_string(), Ok(b"h1 0\n".to_vec()))];
        assert!(
            shared_file("f", &acked, &short)
                .unwrap()
                .detail
                .contains("`h1 1`")
        );
    }

    #[test]
    fn the_bug_patterns_file_parses_and_matches_by_file() {
        let p = bug_patterns(BUG_PATTERNS).unwrap();
        assert!(p.iter().any(|p| p.text.contains("PANIC")));
        let pg = "2026-12-01 LOG:  ok\n2026-12-01 PANIC:  could not write to file\n";
        let v = bug_in(&p, "ke2-server1/var_lib_postgresql_log_postgresql.log", pg);
        assert!(v.unwrap().detail.contains("line 2"));
        // A pattern applies to its own logs only.
        assert_eq!(bug_in(&p, "ke2-server1/etc_hosts", pg), None);
        assert!(bug_patterns("no separator").is_err());
    }
}
