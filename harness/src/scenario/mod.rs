//! The fault scenarios as library functions, shared by the nextest
//! scenarios (`scenarios/tests/`, one thin test each calling [`run_test`])
//! and `ke2lab scenario list|run` ([`cli`]), so that support staff running
//! one against a customer's topology get the same figures ([`Report`]) and
//! the same evidence directory as the test.
//!
//! A [`Scenario`] is a name, one line, the nextest test it backs, its own
//! base topology (what the test boots), how it adapts a base topology (the
//! test's or `--topology FILE`) to itself, refusing one it cannot run on
//! before anything boots (exit 2), and its body. A body boots its labs
//! through [`Session::with_lab`], which finishes each on every exit path
//! (evidence on failure, faults undone, the lab removed) or, with `--keep`,
//! leaves it for `ke2lab status|down --run ID`. Bodies take every count,
//! name, port and path from `lab.topology`.
//!
//! Not here, and why (they stay nextest tests in `scenarios/tests/`):
//! `faults` tests the harness's fault verbs themselves on bare hosts and the
//! teardown of a failing scenario (no cluster, nothing to measure on a
//! customer's topology); `stack` needs the checkout's `fixtures/ke2-docker`
//! and the stand-in images built from the source tree (the shipped binary
//! holds no compile-time path); `topology_matrix` is a list of topologies
//! of its own, each with its own assertions (the matrix *is* the input);
//! `ssh_host` tests the SSH transport, not the cluster; `chaos` is the
//! short run of `ke2lab chaos`, a command of its own.

use std::cell::RefCell;
use std::fmt;

use anyhow::Result;
use futures_util::future::LocalBoxFuture;
use ke2lab::topology::{SharedDirKind, Topology};
use serde::Serialize;

use crate::Lab;
use crate::faults::Faults;
use crate::lab::{self, keep_on_failure};
use crate::measure::Summary;

pub mod brick_loss;
pub mod cli;
pub mod common;
pub mod failover;
pub mod gluster;
pub mod node_loss;
pub mod partition;
pub mod pgpool;
pub mod pgpool_leader_loss;
pub mod quorum_loss;
pub mod swarm;
pub mod vmxnet3;

/// How a scenario runs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    /// Fault cycles of a repeating scenario (`--cycles`, or
    /// `KE2LAB_CYCLES` for the tests); at least 1.
    pub cycles: usize,
}

impl Options {
    /// The tests' options: `KE2LAB_CYCLES`, else `default` (the scenario's
    /// [`Scenario::cycles`]).
    pub fn from_env(default: usize) -> Options {
        Options {
            cycles: crate::measure::cycles(default),
        }
    }
}

/// One measured value of a scenario.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Value {
    /// A duration or another real number, in the unit its name ends with
    /// (`_s`: seconds).
    Number(f64),
    Count(u64),
    /// min / median / max over the fault cycles.
    Summary(Summary),
    Text(String),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Number(x) => write!(f, "{x:.1}"),
            Value::Count(n) => write!(f, "{n}"),
            Value::Summary(s) => write!(f, "{s}"),
            Value::Text(t) => f.write_str(t),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Figure {
    pub name: String,
    pub value: Value,
}

/// What a scenario measured, as named values in the order it measured
/// them: `ke2lab scenario run` prints it as a table and writes it as
/// `scenario.json`; the tests print the table after their own lines.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Report {
    pub scenario: String,
    /// The runs (labs) the scenario booted, in order.
    pub runs: Vec<String>,
    pub cycles: usize,
    pub figures: Vec<Figure>,
}

impl Report {
    pub fn new(scenario: &str) -> Report {
        Report {
            scenario: scenario.into(),
            ..Report::default()
        }
    }

    fn push(&mut self, name: &str, value: Value) -> &mut Report {
        self.figures.push(Figure {
            name: name.into(),
            value,
        });
        self
    }

    /// Seconds, e.g. `rto_s`.
    pub fn secs(&mut self, name: &str, d: std::time::Duration) -> &mut Report {
        self.push(name, Value::Number(d.as_secs_f64()))
    }

    /// A real number, e.g. `database_steps_s`.
    pub fn push_number(&mut self, name: &str, x: f64) -> &mut Report {
        self.push(name, Value::Number(x))
    }

    pub fn count(&mut self, name: &str, n: usize) -> &mut Report {
        self.push(name, Value::Count(n as u64))
    }

    pub fn text(&mut self, name: &str, t: impl Into<String>) -> &mut Report {
        self.push(name, Value::Text(t.into()))
    }

    /// min / median / max of `values` (nothing when there are none).
    pub fn summary(&mut self, name: &str, values: &[f64]) -> &mut Report {
        match Summary::of(values) {
            Some(s) => self.push(name, Value::Summary(s)),
            None => self,
        }
    }

    /// [`Report::summary`] of durations, in seconds.
    pub fn summary_secs(&mut self, name: &str, values: &[std::time::Duration]) -> &mut Report {
        let v: Vec<f64> = values.iter().map(|d| d.as_secs_f64()).collect();
        self.summary(name, &v)
    }

    /// The value named `name`.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.figures
            .iter()
            .find(|f| f.name == name)
            .map(|f| &f.value)
    }

    /// The report as `scenario.json` holds it.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a report serialises")
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width = self
            .figures
            .iter()
            .map(|x| x.name.len())
            .chain(["figure".len()])
            .max()
            .unwrap_or(0);
        writeln!(
            f,
            "scenario `{}` ({} cycle{}, runs {})",
            self.scenario,
            self.cycles,
            if self.cycles == 1 { "" } else { "s" },
            if self.runs.is_empty() {
                "none".to_string()
            } else {
                self.runs.join(", ")
            }
        )?;
        writeln!(f, "  {:width$}  value", "figure")?;
        for x in &self.figures {
            writeln!(f, "  {:width$}  {}", x.name, x.value)?;
        }
        Ok(())
    }
}

/// A topology the scenario cannot run on, or an unknown scenario or bad
/// option: bad input (exit 2), found before anything boots.
#[derive(Debug)]
pub struct BadScenario(pub String);

impl fmt::Display for BadScenario {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadScenario {}

/// A scenario's body: boots its labs through the session.
pub type Body =
    for<'a> fn(&'a Session, Topology, &'a Options) -> LocalBoxFuture<'a, Result<Report>>;

/// One scenario of the registry.
pub struct Scenario {
    /// What `ke2lab scenario run` takes.
    pub name: &'static str,
    /// One line for `ke2lab scenario list`.
    pub about: &'static str,
    /// The nextest test it backs: `file::function` under `scenarios/tests/`.
    pub test: &'static str,
    /// The base topology the test boots (a shipped fixture).
    pub base: &'static str,
    /// The scenario's own changes to a base topology, or why it cannot run
    /// on it (a lowercase fragment naming the field).
    pub adapt: fn(&mut Topology) -> Result<(), String>,
    /// Fault cycles when neither `--cycles` nor `KE2LAB_CYCLES` says (1
    /// for the slowest).
    pub cycles: usize,
    pub body: Body,
}

/// The fault scenarios' credentials: generated, since the document's
/// passwords (`postgres`, `pgpool`) are ordinary words of every log and
/// evidence redacted of them would be unreadable.
fn generated_credentials(t: &mut Topology) -> Result<(), String> {
    t.credentials.use_document_defaults = false;
    Ok(())
}

fn synchronous(t: &mut Topology) -> Result<(), String> {
    generated_credentials(t)?;
    t.postgres.synchronous = true;
    Ok(())
}

fn asynchronous(t: &mut Topology) -> Result<(), String> {
    generated_credentials(t)?;
    t.postgres.synchronous = false;
    Ok(())
}

fn needs_gluster(t: &Topology) -> Result<(), String> {
    if t.shared_dir.kind == SharedDirKind::Gluster {
        Ok(())
    } else {
        Err(
            "`shared_dir.kind`: this scenario needs `gluster` (it faults the volume's bricks)"
                .into(),
        )
    }
}

fn gluster_faults(t: &mut Topology) -> Result<(), String> {
    needs_gluster(t)?;
    generated_credentials(t)
}

fn gluster_only(t: &mut Topology) -> Result<(), String> {
    if t.shared_dir.kind == SharedDirKind::Gluster {
        Ok(())
    } else {
        Err(
            "`shared_dir.kind`: this scenario needs `gluster` (it checks the volume and its bricks)"
                .into(),
        )
    }
}

fn unchanged(_: &mut Topology) -> Result<(), String> {
    Ok(())
}

fn vmxnet3_nic(t: &mut Topology) -> Result<(), String> {
    if t.hosts
        .iter()
        .any(|h| h.nic == ke2lab::topology::Nic::Vmxnet3)
    {
        Ok(())
    } else {
        Err("`hosts[].nic`: this scenario needs a host with `nic = \"vmxnet3\"` (it checks that `auto` avoids port 4789 for it)".into())
    }
}

/// Every scenario, in `ke2lab scenario list`'s order.
pub static SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "pgpool",
        about: "install; one primary and streaming standbys behind the VIP, a row through it on every standby, re-provision changes nothing",
        test: "pgpool::primary_with_two_streaming_standbys_behind_the_vip",
        base: "three-node",
        adapt: unchanged,
        cycles: 3,
        body: pgpool::body,
    },
    Scenario {
        name: "swarm",
        about: "the whole install; every host a Ready manager, one leader, the topology's data-path port everywhere, re-provision changes nothing, nothing left after teardown",
        test: "swarm::three_managers_form_and_reprovision_changes_nothing",
        base: "three-node",
        adapt: unchanged,
        cycles: 3,
        body: swarm::whole,
    },
    Scenario {
        name: "swarm_vmxnet3",
        about: "steps 1-3 with a vmxnet3 NIC: the swarm on a data-path port other than VXLAN's 4789 on every host, re-provision changes nothing",
        test: "swarm::vmxnet3_topology_gets_a_non_vxlan_data_path_port",
        base: "three-node-vmxnet3",
        adapt: vmxnet3_nic,
        cycles: 3,
        body: swarm::steps_1_to_3,
    },
    Scenario {
        name: "gluster",
        about: "the install; Gluster pool, replica volume on the topology's bricks, mounts, a MiB replicated, the shared layout on every host, re-provision changes nothing",
        test: "gluster::gluster_replica_3_shared_dir_and_reprovision_changes_nothing",
        base: "three-node",
        adapt: gluster_only,
        cycles: 3,
        body: gluster::body,
    },
    Scenario {
        name: "primary_failover_async",
        about: "the primary's PostgreSQL killed under a writer (asynchronous replication): RTO, promotion, lost commits reported",
        test: "failover::primary_failover_async_reports_rto_and_lost_commits",
        base: "three-node",
        adapt: asynchronous,
        cycles: 3,
        body: failover::asynchronous,
    },
    Scenario {
        name: "primary_failover_sync",
        about: "the primary's PostgreSQL killed under a writer (synchronous replication): RTO, no acknowledged commit lost",
        test: "failover::primary_failover_sync_loses_no_acknowledged_commit",
        base: "three-node",
        adapt: synchronous,
        cycles: 3,
        body: failover::synchronous,
    },
    Scenario {
        name: "pgpool_leader_loss",
        about: "the watchdog leader's Pgpool-II killed: a new leader takes the VIP once, clients reconnect, roles unchanged, the old leader rejoins as standby",
        test: "pgpool_leader_loss::pgpool_leader_loss_moves_the_vip_once",
        base: "three-node",
        adapt: generated_credentials,
        cycles: 3,
        body: pgpool_leader_loss::body,
    },
    Scenario {
        name: "node_loss",
        about: "the last host stops and returns: swarm, Gluster and Pgpool-II detect it, writes go on, re-provision converges",
        test: "node_loss::node_loss_and_return",
        base: "three-node",
        adapt: gluster_faults,
        cycles: 3,
        body: node_loss::body,
    },
    Scenario {
        name: "brick_loss",
        about: "one host's brick and glusterd killed under appenders: appends go on, heal reaches zero, bricks identical",
        test: "brick_loss::gluster_brick_loss_writes_go_on_and_heal",
        base: "three-node",
        adapt: gluster_faults,
        cycles: 3,
        body: brick_loss::body,
    },
    Scenario {
        name: "quorum_loss",
        about: "a majority of hosts stops (the primary's among them): nothing acts without quorum, converges on return",
        test: "quorum_loss::quorum_loss_acts_nowhere_and_converges_on_return",
        base: "three-node",
        adapt: generated_credentials,
        cycles: 3,
        body: quorum_loss::body,
    },
    Scenario {
        name: "partition_async",
        about: "the primary's host, the VIP holder, cut off under a writer (asynchronous): one primary and the VIP on the majority, the minority lets the VIP go, lost writes counted",
        test: "partition::partition_primary_isolated_async_counts_lost_writes",
        base: "three-node",
        adapt: asynchronous,
        cycles: 3,
        body: partition::asynchronous,
    },
    Scenario {
        name: "partition_sync",
        about: "the primary's host, the VIP holder, cut off under a writer (synchronous): no split brain, the minority acknowledges nothing, no acknowledged write lost",
        test: "partition::partition_primary_isolated_sync_no_split_brain",
        base: "three-node",
        adapt: synchronous,
        cycles: 1,
        body: partition::synchronous,
    },
    Scenario {
        name: "vmxnet3",
        about: "the vmxnet3 VXLAN model: TCP across nodes fails on port 4789, works on the port `auto` picks",
        test: "vmxnet3::vmxnet3_breaks_tcp_on_4789_and_auto_port_avoids_it",
        base: "three-node-vmxnet3",
        adapt: vmxnet3_nic,
        cycles: 3,
        body: vmxnet3::body,
    },
];

/// The scenario named `name`, or bad input naming it and the known names.
pub fn find(name: &str) -> Result<&'static Scenario, BadScenario> {
    SCENARIOS.iter().find(|s| s.name == name).ok_or_else(|| {
        BadScenario(format!(
            "unknown scenario `{}`; known: {}",
            ke2lab::topology::shown(name),
            names().join(", ")
        ))
    })
}

pub fn names() -> Vec<&'static str> {
    SCENARIOS.iter().map(|s| s.name).collect()
}

/// What `ke2lab scenario list` prints: one line each, registry order.
pub fn list() -> String {
    let width = SCENARIOS.iter().map(|s| s.name.len()).max().unwrap_or(0);
    SCENARIOS
        .iter()
        .map(|s| format!("{:width$}  {}\n", s.name, s.about))
        .collect()
}

impl Scenario {
    /// `base` with the scenario's own changes, validated again as a whole
    /// (the changes are the scenario's, the rest the file's), or bad input.
    pub fn topology(&self, base: Topology) -> Result<Topology> {
        let mut t = base;
        (self.adapt)(&mut t)
            .map_err(|why| BadScenario(format!("scenario `{}`: {why}", self.name)))?;
        let text = toml::to_string(&t)?;
        let v = Topology::from_toml_str(&text).map_err(|e| {
            anyhow::Error::new(e).context(format!(
                "the topology with scenario `{}`'s changes",
                self.name
            ))
        })?;
        Ok(v.topology)
    }

    /// The test's base topology (a shipped fixture).
    pub fn base_topology(&self) -> Result<Topology> {
        Ok(Topology::fixture(self.base)?.topology)
    }

    /// Runs the scenario on `topology` (already adapted).
    pub async fn run(&self, session: &Session, topology: Topology, o: &Options) -> Result<Report> {
        let mut r = (self.body)(session, topology, o).await?;
        r.scenario = self.name.into();
        r.runs = session.runs();
        r.cycles = o.cycles;
        Ok(r)
    }
}

/// The nextest test of scenario `name`: its base topology, `KE2LAB_CYCLES`
/// (else its own cycles), labs finished as every scenario test finishes
/// them; the report printed.
pub async fn run_test(name: &str) -> Result<()> {
    let s = find(name)?;
    let t = s.topology(s.base_topology()?)?;
    let session = Session::new(false);
    let report = s.run(&session, t, &Options::from_env(s.cycles)).await?;
    println!("{report}");
    Ok(())
}

/// The labs of one scenario run: the runs it booted, and whether they stay.
pub struct Session {
    keep: bool,
    runs: RefCell<Vec<String>>,
}

impl Session {
    /// `keep`: leave every lab after the run (success or failure), marked
    /// kept, for `ke2lab status|down --run ID`. Without it a lab is
    /// finished as the tests finish it ([`Lab::finish`]: evidence on
    /// failure, kept then only with `KE2LAB_KEEP_ON_FAILURE=1`).
    pub fn new(keep: bool) -> Session {
        Session {
            keep,
            runs: RefCell::new(Vec::new()),
        }
    }

    pub fn keep(&self) -> bool {
        self.keep
    }

    /// The runs booted so far (also those whose boot failed).
    pub fn runs(&self) -> Vec<String> {
        self.runs.borrow().clone()
    }

    /// After its labs are removed: no labelled resource of any of its runs
    /// left (with `keep` they stay, and nothing is checked).
    pub async fn ensure_nothing_left(&self) -> Result<()> {
        if self.keep {
            return Ok(());
        }
        let docker = lab::connect().await?;
        for run in self.runs() {
            let left = lab::leftovers(&docker, Some(&run)).await?;
            anyhow::ensure!(
                left.is_empty(),
                "run `{run}`: labelled resources left after teardown: {left:?}"
            );
        }
        Ok(())
    }

    /// Boots a lab for `topology`, runs `f` on it (a panic becomes its
    /// error), then finishes it or, with `keep`, leaves it.
    pub async fn with_lab<T>(
        &self,
        topology: &Topology,
        f: impl AsyncFnOnce(&mut Lab) -> Result<T>,
    ) -> Result<T> {
        let run = lab::new_run_id();
        self.runs.borrow_mut().push(run.clone());
        eprintln!("scenario: booting run `{run}`");
        let mut lab = Lab::boot_as(topology, self.keep || keep_on_failure(), run, None).await?;
        let outcome = common::catching(f(&mut lab)).await;
        if !self.keep {
            return lab.finish(outcome).await;
        }
        let run = lab.run.clone();
        let outcome = match outcome {
            Ok(v) => {
                // The cluster stays as the scenario left it, its faults
                // ended (a passing scenario has mended them already).
                let undone = Faults::new(&lab).undo_all().await;
                undone.map(|()| v)
            }
            Err(e) => lab.finish_with(Err(e), true).await,
        };
        if let Err(e) = crate::owner::keep(&lab::run_dir(&run)) {
            eprintln!("warning: cannot mark run `{run}` kept: {e}");
        }
        eprintln!(
            "kept run `{run}`: `ke2lab status --run {run}`, `ke2lab down --run {run}` when done"
        );
        outcome
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_each_backs_an_existing_test() {
        let mut seen = std::collections::BTreeSet::new();
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../scenarios/tests");
        for s in SCENARIOS {
            assert!(seen.insert(s.name), "duplicate scenario name `{}`", s.name);
            let (file, function) = s.test.split_once("::").expect("file::function");
            let text = std::fs::read_to_string(dir.join(format!("{file}.rs")))
                .unwrap_or_else(|e| panic!("`{}`: scenarios/tests/{file}.rs: {e}", s.name));
            assert!(
                text.contains(&format!("async fn {function}() -> Result<()>")),
                "`{}`: no test `{function}` in scenarios/tests/{file}.rs",
                s.name
            );
            assert!(
                text.contains(&format!("run_test(\"{}\")", s.name)),
                "`{}`: scenarios/tests/{file}.rs does not run it",
                s.name
            );
            assert!(!s.about.contains('\n'), "`{}`: one line", s.name);
            // Its base topology is a shipped fixture, and the scenario
            // accepts it.
            s.topology(s.base_topology().unwrap()).unwrap();
        }
    }

    #[test]
    fn an_unknown_name_is_bad_input_listing_the_known() {
        let Err(e) = find("nope") else {
            panic!("`nope` found")
        };
        let e = e.to_string();
        assert!(
            e.starts_with("unknown scenario `nope`; known: pgpool, "),
            "{e}"
        );
        assert!(e.contains("primary_failover_sync"), "{e}");
    }

    #[test]
    fn scenario_changes_apply_on_top_of_the_base() {
        let s = find("primary_failover_sync").unwrap();
        let t = s
            .topology(Topology::fixture("matrix-ports").unwrap().topology)
            .unwrap();
        assert!(t.postgres.synchronous);
        assert!(!t.credentials.use_document_defaults);
        assert_eq!(
            t.ports,
            Topology::fixture("matrix-ports").unwrap().topology.ports
        );
        let mut existing = Topology::fixture("three-node").unwrap().topology;
        existing.shared_dir.kind = SharedDirKind::Existing;
        let e = find("brick_loss").unwrap().topology(existing).unwrap_err();
        assert!(e.is::<BadScenario>(), "{e:#}");
        assert!(e.to_string().contains("`shared_dir.kind`"), "{e:#}");
        let e = find("vmxnet3")
            .unwrap()
            .topology(Topology::fixture("three-node").unwrap().topology)
            .unwrap_err();
        assert!(e.to_string().contains("`hosts[].nic`"), "{e:#}");
    }

    #[test]
    fn report_table_and_json() {
        let mut r = Report::new("x");
        r.secs("rto_s", std::time::Duration::from_millis(2500))
            .count("lost", 0)
            .summary("promotion_s", &[1.0, 3.0, 2.0]);
        r.cycles = 3;
        r.runs = vec!["r1".into()];
        assert_eq!(
            r.to_string(),
            "scenario `x` (3 cycles, runs r1)\n  figure       value\n  rto_s        2.5\n  lost         0\n  promotion_s  min 1.0 / median 2.0 / max 3.0 (n=3)\n"
        );
        let j: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(j["figures"][0]["name"], "rto_s");
        assert_eq!(j["figures"][0]["value"]["number"], 2.5);
        assert_eq!(j["figures"][2]["value"]["summary"]["median"], 2.0);
    }
}
