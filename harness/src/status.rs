//! What `ke2lab status` and `ke2lab verify` print: the core's snapshot of
//! each lab ([`ke2lab::cluster::Snapshot`]) with its verdict, as a compact
//! table or as one JSON document of a documented, versioned schema
//! (`docs/status.schema.json`, checked by a test), and the exit codes.

use serde::{Deserialize, Serialize};

use ke2lab::cluster::pgpool::{Decision, PgState};
use ke2lab::cluster::snapshot::brief;
use ke2lab::cluster::{Finding, Snapshot};

/// The schema's `$id` (`docs/status.schema.json`).
pub const SCHEMA_ID: &str = "urn:ke2lab:status:1";
/// Raised with the snapshot's version when a field changes meaning.
pub const SCHEMA_VERSION: u32 = ke2lab::cluster::snapshot::SNAPSHOT_VERSION;

/// Exit code of `verify` when the verdict lists anything.
pub const EXIT_UNHEALTHY: u8 = 1;
/// Exit code of `provision --check` (and `install --check`) when the
/// install changed something: not idempotent on this cluster.
pub const EXIT_CHANGED: u8 = 3;

/// `status -o json`: every lab asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    /// [`SCHEMA_ID`].
    pub schema: String,
    /// [`SCHEMA_VERSION`].
    pub version: u32,
    pub labs: Vec<LabStatus>,
}

/// One lab: its snapshot and verdict, or why it could not be asked.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LabStatus {
    pub run: String,
    /// The name given with `up --name`.
    pub name: Option<String>,
    /// Why the lab could not be attached (then no snapshot).
    pub error: Option<String>,
    pub snapshot: Option<Snapshot>,
    /// Every unhealthy fact; empty when healthy.
    pub verdict: Vec<Finding>,
    /// The verdict is empty and the lab was asked.
    pub healthy: bool,
}

impl LabStatus {
    pub fn of(run: String, name: Option<String>, snapshot: Snapshot) -> Self {
        let verdict = ke2lab::cluster::verdict(&snapshot);
        LabStatus {
            run,
            name,
            error: None,
            healthy: verdict.is_empty(),
            snapshot: Some(snapshot),
            verdict,
        }
    }

    pub fn unreachable(run: String, error: String) -> Self {
        LabStatus {
            run,
            name: None,
            error: Some(error),
            snapshot: None,
            verdict: Vec::new(),
            healthy: false,
        }
    }
}

impl StatusDoc {
    pub fn new(labs: Vec<LabStatus>) -> Self {
        StatusDoc {
            schema: SCHEMA_ID.into(),
            version: SCHEMA_VERSION,
            labs,
        }
    }
}

/// `verify`'s exit code: 0 when the verdict is empty.
pub fn verify_exit(verdict: &[Finding]) -> u8 {
    if verdict.is_empty() {
        0
    } else {
        EXIT_UNHEALTHY
    }
}

/// `--check`'s exit code: 0 when the install changed nothing.
pub fn check_exit(changes: usize) -> u8 {
    if changes == 0 { 0 } else { EXIT_CHANGED }
}

/// The verdict as `verify` prints it: one line per finding.
pub fn verdict_lines(verdict: &[Finding]) -> String {
    verdict.iter().map(|f| format!("  {f}\n")).collect()
}

fn yes(b: bool) -> &'static str {
    if b { "yes" } else { "no" }
}

/// A lab's snapshot as a compact table: per host one line (swarm, Gluster
/// pool and mount, PostgreSQL, Pgpool-II's watchdog, the VIP), then the
/// volume, Pgpool-II, the stack and the verdict.
pub fn table(l: &LabStatus) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let title = match &l.name {
        Some(n) => format!("lab `{}` (`{n}`)", l.run),
        None => format!("lab `{}`", l.run),
    };
    let Some(s) = &l.snapshot else {
        let _ = writeln!(o, "{title}: {}", l.error.as_deref().unwrap_or("not asked"));
        return o;
    };
    let _ = writeln!(
        o,
        "{title}: cluster `{}`, {} hosts, VIP {}",
        s.cluster,
        s.hosts.len(),
        s.vip
    );
    let _ = writeln!(
        o,
        "  {:<16} {:<15} {:<17} {:<8} {:<6} {:<9} {:<9} vip",
        "host", "address", "swarm", "gluster", "mount", "postgres", "pgpool"
    );
    let n = s.hosts.len();
    for (i, h) in s.hosts.iter().enumerate() {
        let swarm = s
            .swarm
            .as_ref()
            .and_then(|sw| sw.nodes.iter().find(|x| x.hostname == h.name))
            .map_or("?".to_string(), |x| {
                format!(
                    "{:?} {}",
                    x.status,
                    x.manager.map_or("worker".to_string(), |m| format!("{m:?}"))
                )
            });
        let peers = h.gluster_peers.as_ref().map_or("-".to_string(), |p| {
            format!(
                "{}/{n}",
                p.iter()
                    .filter(|p| p.connected && (p.state == "in_cluster" || p.state == "local"))
                    .count()
            )
        });
        let mount = h.shared_mount.as_ref().map_or("-", |m| yes(m.mounted));
        let pg = match &h.postgres {
            PgState::Primary => "primary",
            PgState::Standby => match &h.replication {
                Some(r) if r.state == "streaming" => "streaming",
                _ => "standby",
            },
            PgState::Down(_) => "down",
        };
        let wd = s
            .pgpool
            .view
            .members
            .get(i)
            .and_then(|m| match &m.watchdog {
                Ok(_) => m.own_state(&h.name).map(str::to_string),
                Err(_) => Some("down".into()),
            })
            .unwrap_or_else(|| "?".into());
        let vip = match h.holds_vip {
            Some(true) => "*",
            Some(false) => "",
            None => "?",
        };
        let _ = writeln!(
            o,
            "  {:<16} {:<15} {:<17} {:<8} {:<6} {:<9} {:<9} {vip}",
            h.name,
            h.address.to_string(),
            swarm,
            peers,
            mount,
            pg,
            wd
        );
    }
    if let Some(g) = &s.gluster {
        let pending: u64 = g.heal.iter().filter_map(|b| b.pending).sum();
        let _ = writeln!(
            o,
            "  volume `{}`: {}, replica {}, {}/{} bricks online, {pending} pending heal",
            g.volume,
            g.state.as_deref().unwrap_or("absent"),
            g.replica,
            g.bricks.iter().filter(|b| b.online).count(),
            g.bricks.len()
        );
    }
    let p = &s.pgpool;
    let decision = match &p.decision {
        Decision::Healthy { .. } => "healthy".to_string(),
        Decision::Wait { reason } => format!("waiting: {}", brief(reason)),
        Decision::Error { reason } => format!("error: {}", brief(reason)),
        Decision::Attach { .. } | Decision::Resync { .. } => "repair needed".to_string(),
    };
    let _ = writeln!(
        o,
        "  pgpool: leader {}, quorum {}, VIP on {}, {decision}",
        p.leader.as_deref().unwrap_or("none"),
        p.quorum.map_or("?", yes),
        if p.vip_holders.is_empty() {
            "no host".to_string()
        } else {
            p.vip_holders.join(", ")
        }
    );
    match &s.stack {
        Some(st) => {
            let _ = writeln!(
                o,
                "  stack `{}`: {}/{} services converged, HTTPS 200 on {}/{} hosts",
                st.name,
                st.services.iter().filter(|x| x.converged).count(),
                st.services.len(),
                st.https.iter().filter(|x| x.status == Some(200)).count(),
                st.https.len()
            );
        }
        None => {
            let _ = writeln!(o, "  stack: not deployed");
        }
    }
    if l.verdict.is_empty() {
        let _ = writeln!(o, "  verdict: healthy");
    } else {
        let _ = writeln!(o, "  verdict: {} finding(s)", l.verdict.len());
        for f in &l.verdict {
            let _ = writeln!(o, "    {f}");
        }
    }
    o
}

/// What `up` (and `stack`) end with: the run, its health, and what to do
/// next with the addresses and paths a person needs.
#[derive(Clone, Debug)]
pub struct Summary<'a> {
    pub run: &'a str,
    pub name: Option<&'a str>,
    pub topology: &'a ke2lab::topology::Topology,
    pub run_dir: &'a std::path::Path,
    pub snapshot: &'a Snapshot,
    pub total: std::time::Duration,
    /// The stack's local CA, written beside the run (with the stack).
    pub ca: Option<&'a std::path::Path>,
    /// The stack runs the lab's stand-ins, not the real images.
    pub standins: bool,
    /// The hosts' memory in all, bytes.
    pub memory: Option<u64>,
}

/// [`Summary`] as lines.
pub fn summary(s: &Summary<'_>) -> String {
    use std::fmt::Write;
    let snap = s.snapshot;
    let verdict = ke2lab::cluster::verdict(snap);
    let mut o = String::new();
    let title = match s.name {
        Some(n) => format!("run `{}` (`{n}`)", s.run),
        None => format!("run `{}`", s.run),
    };
    let health = if verdict.is_empty() {
        "healthy".to_string()
    } else {
        format!(
            "{} unhealthy fact(s), `ke2lab verify` lists them",
            verdict.len()
        )
    };
    let _ = writeln!(
        o,
        "{title} is up in {:.1}s: {} hosts, {health}",
        s.total.as_secs_f64(),
        snap.hosts.len()
    );
    let hosts: Vec<String> = snap
        .hosts
        .iter()
        .map(|h| format!("{} {}", h.name, h.address))
        .collect();
    let _ = writeln!(o, "  hosts      {}", hosts.join(", "));
    let p = &snap.pgpool;
    let holders = if p.vip_holders.is_empty() {
        "no host".to_string()
    } else {
        p.vip_holders.join(", ")
    };
    let _ = writeln!(
        o,
        "  VIP        {} on {holders} (watchdog leader {}, quorum {})",
        snap.vip,
        p.leader.as_deref().unwrap_or("none"),
        p.quorum.map_or("unknown", yes)
    );
    let primary = snap
        .hosts
        .iter()
        .find(|h| h.postgres == PgState::Primary)
        .map_or("none", |h| h.name.as_str());
    let streaming = snap
        .hosts
        .iter()
        .filter(|h| {
            h.replication
                .as_ref()
                .is_some_and(|r| r.state == "streaming")
        })
        .count();
    let _ = writeln!(
        o,
        "  database   primary {primary}, {streaming} streaming standby(s)"
    );
    let t = s.topology;
    let _ = writeln!(
        o,
        "  psql       psql -h {} -p {} -U kompira {}",
        snap.vip, t.ports.pgpool, t.postgres.database
    );
    let _ = writeln!(
        o,
        "  passwords  {} (mode 0600)",
        s.run_dir.join("secrets.toml").display()
    );
    if let Some(st) = &snap.stack {
        let urls: Vec<String> = st
            .https
            .iter()
            .filter(|h| h.serves)
            .filter_map(|h| snap.hosts.iter().find(|x| x.name == h.host))
            .map(|h| format!("https://{}/", h.address))
            .collect();
        let _ = writeln!(
            o,
            "  kompira    {}{}",
            urls.join(" "),
            if s.standins { " (stand-in images)" } else { "" }
        );
        if let Some(ca) = s.ca {
            let _ = writeln!(
                o,
                "  CA         {} (trust it, e.g. `curl --cacert`)",
                ca.display()
            );
        }
    }
    if let Some(m) = s.memory {
        let _ = writeln!(o, "  memory     {} MiB in all hosts", m >> 20);
    }
    let _ = writeln!(
        o,
        "  log        {}, phases in {}",
        s.run_dir.join("install.log").display(),
        s.run_dir.join("phases.json").display()
    );
    let _ = writeln!(
        o,
        "next: `ke2lab status`, `ke2lab exec {} -- docker node ls`, `ke2lab down --run {}`",
        t.hosts[0].name, s.run
    );
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;
    use std::time::Duration;

    fn topology() -> ke2lab::topology::Topology {
        ke2lab::topology::Topology::from_toml_str(include_str!(
            "../../fixtures/topologies/three-node.toml"
        ))
        .unwrap()
        .topology
    }

    #[test]
    fn the_summary_says_what_to_do_next() {
        let t = topology();
        let snap = Snapshot::example();
        let s = summary(&Summary {
            run: "r1a2b3c",
            name: Some("demo"),
            topology: &t,
            run_dir: Path::new("/state/runs/r1a2b3c"),
            snapshot: &snap,
            total: Duration::from_millis(62_140),
            ca: Some(Path::new("/state/runs/r1a2b3c/ca.crt")),
            standins: true,
            memory: Some(1100 << 20),
        });
        insta::assert_snapshot!(s);
        // Without the stack: no URL, no CA, no stand-in note.
        let mut bare = Snapshot::example();
        bare.stack = None;
        let s = summary(&Summary {
            run: "r1a2b3c",
            name: None,
            topology: &t,
            run_dir: Path::new("/state/runs/r1a2b3c"),
            snapshot: &bare,
            total: Duration::from_secs(30),
            ca: None,
            standins: false,
            memory: None,
        });
        assert!(!s.contains("https://") && !s.contains("stand-in") && !s.contains("CA "));
        assert!(s.contains(&format!("psql -h {} -p 9999 -U kompira kompira", bare.vip)));
    }

    #[test]
    fn an_unhealthy_summary_points_at_verify() {
        let t = topology();
        let mut snap = Snapshot::example();
        snap.pgpool.vip_holders.clear();
        let s = summary(&Summary {
            run: "r1a2b3c",
            name: None,
            topology: &t,
            run_dir: Path::new("/s"),
            snapshot: &snap,
            total: Duration::from_secs(1),
            ca: None,
            standins: false,
            memory: None,
        });
        let first = s.lines().next().unwrap();
        assert!(
            first.contains("unhealthy fact(s), `ke2lab verify` lists them"),
            "{first}"
        );
        assert!(s.contains("on no host"), "{s}");
    }
}
