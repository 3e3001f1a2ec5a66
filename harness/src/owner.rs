//! Who owns a lab, so that one person's cleanup never removes another's
//! lab. Every labelled resource records its owner: the process that created
//! it (pid and start time, which together survive pid reuse), the machine's
//! boot id (a pid means nothing after a reboot) and the state directory.
//! A lab that `ke2lab up` completed is *kept* (a marker file in its run
//! directory): the user meant it to outlive the command.
//!
//! A lab is live while its owner process runs, kept when `up` left it for
//! its user, and stale otherwise (a killed run, a test that died):
//! `ke2lab down --stale` removes only stale labs.

use std::collections::HashMap;
use std::path::Path;

/// Labels of the owner.
pub const PID_LABEL: &str = "ke2lab.owner.pid";
pub const START_LABEL: &str = "ke2lab.owner.start";
pub const BOOT_LABEL: &str = "ke2lab.owner.boot";
/// A name the user gave the lab (`ke2lab up --name`).
pub const NAME_LABEL: &str = "ke2lab.name";
/// The marker file of a kept lab, in its run directory.
pub const KEPT_FILE: &str = "kept";

/// The machine's boot id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// A process's start time in clock ticks since boot (`/proc/<pid>/stat`
/// field 22), `None` when the process does not exist.
pub fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: fields
    // are counted after its closing parenthesis.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19)?.parse().ok()
}

/// The labels that name this process as the owner.
pub fn labels() -> HashMap<String, String> {
    let pid = std::process::id();
    HashMap::from([
        (PID_LABEL.to_string(), pid.to_string()),
        (
            START_LABEL.to_string(),
            start_time(pid).unwrap_or_default().to_string(),
        ),
        (BOOT_LABEL.to_string(), boot_id()),
    ])
}

/// What a lab's owner labels and run directory say.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// Its owner process runs.
    Live,
    /// `ke2lab up` completed and left it for its user.
    Kept,
    /// Its owner is gone and nobody kept it.
    Stale,
}

impl std::fmt::Display for Liveness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Liveness::Live => "live",
            Liveness::Kept => "kept",
            Liveness::Stale => "stale",
        })
    }
}

/// Judges a lab by its labels (any of its containers') and its run
/// directory. Labels without an owner (labs made before owners were
/// recorded) count as stale unless kept.
pub fn liveness(labels: &HashMap<String, String>, run_dir: &Path) -> Liveness {
    let alive = (|| {
        let pid: u32 = labels.get(PID_LABEL)?.parse().ok()?;
        let start: u64 = labels.get(START_LABEL)?.parse().ok()?;
        let same_boot = labels.get(BOOT_LABEL)? == &boot_id();
        Some(same_boot && start_time(pid) == Some(start))
    })()
    .unwrap_or(false);
    if alive {
        Liveness::Live
    } else if run_dir.join(KEPT_FILE).exists() {
        Liveness::Kept
    } else {
        Liveness::Stale
    }
}

/// Marks the lab of `run_dir` kept: `up` finished and leaves it to its user.
pub fn keep(run_dir: &Path) -> std::io::Result<()> {
    std::fs::write(
        run_dir.join(KEPT_FILE),
        b"left by `ke2lab up` for its user\n",
    )
}

/// Whether `name` is a lab name a user may give (`--name`): lowercase
/// letters, digits and `-`, starting with a letter, at most 32 bytes. It
/// becomes a label value only, never a path. A name shaped like a run id
/// (`r` and hex digits only) is refused, so `--run` is never ambiguous.
pub fn is_lab_name(name: &str) -> bool {
    lab_name_problem(name).is_none()
}

/// Why `name` is not a lab name, if it is not, as a message fragment.
pub fn lab_name_problem(name: &str) -> Option<&'static str> {
    let shaped = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if !shaped {
        return Some("lowercase letters, digits and `-`, starting with a letter, at most 32");
    }
    let run_like = name.starts_with('r')
        && name[1..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    run_like.then_some(
        "shaped like a run id (`r` and hex digits only), which `--run` would confuse; \
         add a letter past `f` or a `-`",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn this_process_is_alive_and_a_dead_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let mine = labels();
        assert_eq!(liveness(&mine, dir.path()), Liveness::Live);
        // Same pid, other start time: a reused pid is not the owner.
        let mut reused = mine.clone();
        reused.insert(START_LABEL.into(), "1".into());
        assert_eq!(liveness(&reused, dir.path()), Liveness::Stale);
        // Another boot.
        let mut rebooted = mine.clone();
        rebooted.insert(BOOT_LABEL.into(), "another-boot".into());
        assert_eq!(liveness(&rebooted, dir.path()), Liveness::Stale);
        // No owner labels at all.
        assert_eq!(liveness(&HashMap::new(), dir.path()), Liveness::Stale);
        keep(dir.path()).unwrap();
        assert_eq!(liveness(&reused, dir.path()), Liveness::Kept);
        assert_eq!(liveness(&mine, dir.path()), Liveness::Live);
    }

    #[test]
    fn start_time_survives_odd_command_names() {
        assert!(start_time(std::process::id()).is_some());
        assert_eq!(start_time(u32::MAX), None);
    }

    #[test]
    fn lab_names() {
        for good in ["alice", "repro-4711", "a"] {
            assert!(is_lab_name(good), "{good}");
        }
        for bad in [
            "",
            "Alice",
            "-x",
            "1abc",
            "a/b",
            "../x",
            "a b",
            &"a".repeat(33),
        ] {
            assert!(!is_lab_name(bad), "{bad}");
        }
        assert!(lab_name_problem("rec3b").unwrap().contains("run id"));
        assert!(lab_name_problem("Rec").unwrap().contains("lowercase"));
    }
}
