//! `ke2lab chaos`: a seeded schedule of faults on a running lab, with
//! clients writing through the VIP and appending to the shared directory,
//! the cluster sampled throughout, then a heal, a convergence deadline and
//! checks over what was recorded (Jepsen's nemesis + checker, Pacemaker
//! CTS's seed and audit, on a one-machine lab).
//!
//! Layers: [`schedule`] is pure (seed → faults), [`history`] is pure
//! (events → violations), [`workload`] runs the clients and the sampler;
//! this module drives the steps through [`Faults`] (the same verbs and the
//! same record as `ke2lab fault`) and judges convergence by the cluster's
//! verdict, the one `ke2lab verify` gives.
//!
//! Invariant: every fault injected is healed before the checks run, on
//! every path out of [`run`] (an error included), so a lab a run leaves
//! has no fault in force that the run put there.

pub mod cli;
pub mod history;
pub mod schedule;
pub mod workload;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ke2lab::cluster::pgpool::{Decision, decide};
use ke2lab::wait::{Poll, wait_for, wait_for_every};
use serde::Serialize;

use crate::Lab;
use crate::faults::{Fault, Faults};
use history::{Event, Violation};
use schedule::{Kind, Mode, Schedule};

/// What a run is asked to do.
#[derive(Clone, Debug)]
pub struct Options {
    pub seed: u64,
    pub duration: Duration,
    pub kinds: Vec<Kind>,
    pub mode: Mode,
    /// Concurrent SQL writers (two, so that two primaries acknowledging at
    /// once can show as overlapping acknowledgements).
    pub writers: u32,
    pub sample_every: Duration,
    /// How long the cluster has to converge after a heal (repair included).
    pub converge_within: Duration,
}

impl Options {
    pub fn new(seed: u64, duration: Duration) -> Options {
        Options {
            seed,
            duration,
            kinds: Kind::DEFAULT.to_vec(),
            mode: Mode::Safe,
            writers: 2,
            sample_every: Duration::from_secs(2),
            converge_within: Duration::from_secs(300),
        }
    }

    /// The schedule for `lab_hosts`.
    pub fn schedule(&self, hosts: &[String]) -> Result<Schedule, schedule::BadSchedule> {
        schedule::generate(self.seed, hosts, self.duration, &self.kinds, self.mode)
    }

    /// The command that replays this run on a new lab.
    pub fn replay(&self, topology: Option<&Path>) -> String {
        let mut s = format!(
            "ke2lab chaos --seed {} --duration {} --mode {}",
            self.seed,
            humantime::format_duration(self.duration),
            self.mode.name()
        );
        if self.kinds != Kind::DEFAULT {
            let k: Vec<&str> = self.kinds.iter().map(|k| k.name()).collect();
            let _ = write!(s, " --faults {}", k.join(","));
        }
        if let Some(t) = topology {
            let _ = write!(s, " --topology {}", t.display());
        }
        s
    }
}

/// The summary table's figures (`summary.json`).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub run: String,
    pub seed: u64,
    pub mode: Mode,
    pub synchronous: bool,
    pub steps: usize,
    pub faults_injected: usize,
    pub planned_s: f64,
    pub wall_s: f64,
    pub repairs: usize,
    /// Services of rebooted hosts that failed to start (failed units).
    pub units_failed: usize,
    pub writes: history::Tally,
    pub lost: usize,
    pub reads: history::Tally,
    pub appends: history::Tally,
    pub longest_unavailability_s: f64,
    /// The longest time from a heal to the verdict empty again.
    pub converge_s: Option<f64>,
    pub samples: usize,
    pub max_vip_holders: usize,
    pub max_primaries: usize,
    pub violations: Vec<Violation>,
}

/// A run's result: where its files are, its figures, and the command that
/// replays it.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub dir: PathBuf,
    pub summary: Summary,
    pub replay: String,
}

impl Outcome {
    pub fn passed(&self) -> bool {
        self.summary.violations.is_empty()
    }
}

/// The directory of one run's files: `<state>/artifacts/<run>/chaos-<seed>`
/// (`-2`, `-3`… for a seed run again on the same lab).
fn out_dir(lab: &Lab, seed: u64) -> Result<PathBuf> {
    let base = crate::paths::home().join("artifacts").join(&lab.run);
    let mut dir = base.join(format!("chaos-{seed}"));
    let mut n = 2;
    while dir.exists() {
        dir = base.join(format!("chaos-{seed}-{n}"));
        n += 1;
    }
    crate::artifacts::private_dir(&dir)?;
    Ok(dir)
}

fn write_json_lines<T: Serialize>(path: &Path, items: &[T]) -> Result<()> {
    let mut body = String::new();
    for i in items {
        body.push_str(&serde_json::to_string(i)?);
        body.push('\n');
    }
    crate::lab::write_private(path, body.as_bytes())
}

/// Runs `opts` on `lab` (installed and healthy, or repaired to be) and
/// checks the history. `Err` only when the run itself could not be carried
/// out; a violated check is in the outcome.
pub async fn run(lab: &mut Lab, opts: &Options, replay: String) -> Result<Outcome> {
    let hosts: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let schedule = opts.schedule(&hosts)?;
    let dir = out_dir(lab, opts.seed)?;
    crate::lab::write_private(
        &dir.join("schedule.json"),
        serde_json::to_string_pretty(&schedule)?.as_bytes(),
    )?;
    print!("{}", schedule.table());
    println!("files of this run: {}", dir.display());

    let wall = Instant::now();
    let rec = workload::Recorder::new();
    let mut repairs = 0usize;
    let mut violations = Vec::new();
    converge(lab, &rec, "before the schedule", opts, &mut repairs)
        .await
        .context("the lab is not healthy before the schedule")?;
    let t = lab.topology.clone();
    let tag = format!("{}-{}", opts.seed, rec.ms());
    let plan = workload::Plan {
        cluster: Arc::new(lab.cluster().clone()),
        hosts: lab.hosts(),
        addresses: t
            .hosts
            .iter()
            .map(|h| (h.address, h.name.clone()))
            .collect(),
        writers: opts.writers,
        sample_every: opts.sample_every,
        shared_path: t.shared_dir.path.clone(),
        tag: tag.clone(),
    };
    let loads = workload::start(plan, &rec).await?;

    let steps = run_steps(lab, &schedule, &rec, opts, &mut repairs).await;
    // Heal whatever is still in force, on every path.
    let healed = heal_all(lab, &rec).await;
    let converged = match (&steps, &healed) {
        (Err(e), _) | (Ok(()), Err(e)) => Err(anyhow::anyhow!("{e:#}")),
        _ => converge(lab, &rec, "after the heal", opts, &mut repairs).await,
    };
    if let Err(e) = &converged {
        violations.push(Violation {
            check: "the cluster converges after the heal".into(),
            detail: format!("{e:#}"),
        });
    }
    // Writes after the convergence show the cluster serving again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    loads.stop().await;
    let events = rec.events();
    let samples = rec.samples();
    // The longest heal-to-convergence of the run (safe mode converges
    // after every step; the final heal then finds little to do).
    let converge_s = converged.as_ref().ok().map(|_| {
        history::convergence_times(&events)
            .into_iter()
            .max()
            .unwrap_or(0) as f64
            / 1000.0
    });

    // The history's checks.
    let present = crate::scenario::common::ids_in(lab, workload::TABLE).await;
    let lost = match &present {
        Ok(p) => history::lost(&events, p),
        Err(e) => {
            violations.push(Violation {
                check: "every acknowledged write is present".into(),
                detail: format!("cannot read the table: {e:#}"),
            });
            Vec::new()
        }
    };
    if !lost.is_empty() && t.postgres.synchronous {
        violations.push(Violation {
            check: "every acknowledged write is present (synchronous replication)".into(),
            detail: format!(
                "{} acknowledged writes lost, first {:?}",
                lost.len(),
                &lost[..lost.len().min(10)]
            ),
        });
    }
    violations.extend(history::dual_primary_acks(&events));
    violations.extend(history::dual_vip(&samples));
    if converged.is_ok() {
        violations.extend(shared_files(lab, &events, &tag).await);
        violations.extend(members_agree(lab).await);
    }
    violations.extend(bugs_in_logs(lab, &dir).await);

    let s = Summary {
        run: lab.run.clone(),
        seed: opts.seed,
        mode: opts.mode,
        synchronous: t.postgres.synchronous,
        steps: schedule.steps.len(),
        faults_injected: events
            .iter()
            .filter(|e| matches!(e, Event::Inject { .. }))
            .count(),
        planned_s: schedule.planned().as_secs_f64(),
        wall_s: wall.elapsed().as_secs_f64(),
        repairs,
        units_failed: events
            .iter()
            .filter(|e| matches!(e, Event::UnitFailed { .. }))
            .count(),
        writes: history::writes(&events),
        lost: lost.len(),
        reads: history::reads(&events),
        appends: history::appends(&events),
        longest_unavailability_s: history::longest_unavailability(&events)
            .map_or(0.0, |(ms, _)| ms as f64 / 1000.0),
        converge_s,
        samples: samples.len(),
        max_vip_holders: samples.iter().map(|s| s.vip.len()).max().unwrap_or(0),
        max_primaries: samples.iter().map(|s| s.primaries.len()).max().unwrap_or(0),
        violations,
    };
    write_json_lines(&dir.join("history.jsonl"), &events)?;
    write_json_lines(&dir.join("samples.jsonl"), &samples)?;
    crate::lab::write_private(
        &dir.join("summary.json"),
        serde_json::to_string_pretty(&s)?.as_bytes(),
    )?;
    let table = summary_table(&s);
    crate::lab::write_private(&dir.join("summary.txt"), table.as_bytes())?;
    Ok(Outcome {
        dir,
        summary: s,
        replay,
    })
}

/// Each step: pause, inject, hold, heal; in safe mode the cluster then
/// converges (repaired if need be) before the next.
async fn run_steps(
    lab: &mut Lab,
    schedule: &Schedule,
    rec: &workload::Recorder,
    opts: &Options,
    repairs: &mut usize,
) -> Result<()> {
    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    for (i, step) in schedule.steps.iter().enumerate() {
        let n = i + 1;
        tokio::time::sleep(Duration::from_millis(step.pause_ms)).await;
        let mut ids = Vec::new();
        for r in step.fault.requests() {
            let r = r.resolve(&refs).map_err(anyhow::Error::new)?;
            let id = Faults::new(lab)
                .apply(&r)
                .await
                .with_context(|| format!("step {n}: cannot inject `{}`", step.fault))?;
            ids.push(id);
        }
        rec.push(Event::Inject {
            t_ms: rec.ms(),
            step: n,
            what: step.fault.to_string(),
        });
        println!(
            "step {n}: {} (hold {:.1} s)",
            step.fault,
            step.hold_ms as f64 / 1000.0
        );
        tokio::time::sleep(Duration::from_millis(step.hold_ms)).await;
        heal_ids(lab, rec, &ids)
            .await
            .with_context(|| format!("step {n}: cannot heal `{}`", step.fault))?;
        rec.push(Event::Heal {
            t_ms: rec.ms(),
            step: n,
            what: step.fault.to_string(),
        });
        if opts.mode == Mode::Safe {
            converge(lab, rec, &format!("after step {n}"), opts, repairs)
                .await
                .with_context(|| format!("step {n} (`{}`)", step.fault))?;
        }
    }
    Ok(())
}

/// Heals the faults `ids` put in force. A stopped host comes back as a
/// rebooted machine would: its engine by the boot script, then glusterd,
/// PostgreSQL and Pgpool-II, as their units would start.
async fn heal_ids(lab: &Lab, rec: &workload::Recorder, ids: &[String]) -> Result<()> {
    let records = Faults::new(lab).records();
    for id in ids {
        let Some(a) = records.iter().find(|a| &a.id == id) else {
            // Mended by something else already (a repair).
            continue;
        };
        match &a.fault {
            Fault::Stopped(h) => {
                for error in crate::scenario::common::reboot(lab, h).await? {
                    println!("reboot of `{h}`: {error}");
                    rec.push(Event::UnitFailed {
                        t_ms: rec.ms(),
                        host: h.clone(),
                        error,
                    });
                }
            }
            f => Faults::new(lab).heal(f).await?,
        }
    }
    Ok(())
}

/// Heals every fault in force (stopped hosts rebooted first).
async fn heal_all(lab: &Lab, rec: &workload::Recorder) -> Result<()> {
    let ids: Vec<String> = Faults::new(lab)
        .records()
        .into_iter()
        .map(|a| a.id)
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut errors = Vec::new();
    for id in &ids {
        if let Err(e) = heal_ids(lab, rec, std::slice::from_ref(id)).await {
            errors.push(format!("{e:#}"));
        }
    }
    rec.push(Event::Heal {
        t_ms: rec.ms(),
        step: 0,
        what: format!("every fault in force ({})", ids.join(", ")),
    });
    if errors.is_empty() {
        Ok(())
    } else {
        Err(anyhow::anyhow!(
            "cannot heal every fault: {}",
            errors.join("; ")
        ))
    }
}

/// How long the cluster may take to converge by itself before the run
/// repairs it: the watchdog's and Pgpool-II's own reactions (a member
/// rejoining, a failback) take seconds; a failed-over primary or a
/// detached standby never comes back by itself.
const SELF_HEAL: Duration = Duration::from_secs(15);

/// Repairs tried before convergence counts as failed. A repair that meets
/// the cluster still in motion (Pgpool-II failing over, a swarm manager
/// re-electing after a partition: the swarm step refuses until a Raft
/// leader is reachable) fails or leaves work behind; the next one, after
/// another [`SELF_HEAL`], starts from where it stopped, as an operator's
/// re-run would.
const REPAIRS: usize = 3;

/// How long a successful repair's result may take to show in the verdict
/// (Gluster's self-heal, Pgpool-II's status) before the next repair.
const SETTLE: Duration = Duration::from_secs(90);

/// Waits for an empty verdict; if the cluster does not get there by
/// itself within [`SELF_HEAL`], re-provisions it (what an operator does
/// after a failover: the old primary rebuilt by online recovery) and waits
/// again, up to [`REPAIRS`] times within `converge_within`. Returns when it
/// converged (ms of the run).
async fn converge(
    lab: &mut Lab,
    rec: &workload::Recorder,
    what: &str,
    opts: &Options,
    repairs: &mut usize,
) -> Result<u64> {
    let deadline = Instant::now() + opts.converge_within;
    let left = || {
        deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_secs(1))
    };
    let mut wait = SELF_HEAL.min(opts.converge_within);
    let mut attempt = 0;
    loop {
        let Err(unhealthy) = healthy_within(lab, what, wait).await else {
            let at = rec.ms();
            rec.push(Event::Converged { t_ms: at });
            return Ok(at);
        };
        if attempt == REPAIRS || Instant::now() >= deadline {
            return Err(unhealthy);
        }
        attempt += 1;
        let t_ms = rec.ms();
        *repairs += 1;
        println!("repair {what}: re-provisioning");
        let r = lab.install().await;
        rec.push(Event::Repair {
            t_ms,
            end_ms: rec.ms(),
            changes: r.as_ref().map_or(0, |r| r.changes()),
            error: r.as_ref().err().map(|e| format!("{e:#}")),
        });
        wait = match &r {
            Ok(_) if attempt == REPAIRS => left(),
            Ok(_) => SETTLE.min(left()),
            Err(e) => {
                println!("repair {what} failed: {e:#}");
                SELF_HEAL.min(left())
            }
        };
    }
}

/// The pause between two verdicts: each is a whole snapshot (dozens of
/// commands on every host), and polling it back to back would load the
/// machine the cluster runs on.
const VERDICT_EVERY: Duration = Duration::from_secs(2);

async fn healthy_within(lab: &Lab, what: &str, timeout: Duration) -> Result<()> {
    wait_for_every(
        &format!("an empty verdict {what}"),
        timeout,
        VERDICT_EVERY,
        || async {
            match lab.verdict().await {
                Ok(v) if v.is_empty() => Poll::Ready(()),
                Ok(v) => Poll::NotYet(
                    v.iter()
                        .map(|f| f.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                ),
                Err(e) => Poll::NotYet(format!("{e:#}")),
            }
        },
    )
    .await?;
    Ok(())
}

/// Every appender's file: the same bytes on every host's brick, every
/// acknowledged line in it. Gluster's self-heal may still be copying just
/// after the verdict turned healthy, so this polls (60 s) before it fails.
async fn shared_files(lab: &Lab, events: &[Event], tag: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    for spec in &lab.topology.hosts {
        let file = workload::shared_file(tag, &spec.name);
        let acked = history::acked_lines(events, &spec.name);
        let last = std::sync::Mutex::new(None);
        let r = wait_for(
            &format!("`{file}` identical on every host"),
            Duration::from_secs(60),
            || async {
                let mut copies = Vec::new();
                for h in &lab.topology.hosts {
                    let c = match lab.cluster().shared_copy_on(&h.name, &file).await {
                        Ok(Some(b)) => Ok(b),
                        Ok(None) => Err("absent".to_string()),
                        Err(e) => Err(e.to_string()),
                    };
                    copies.push((h.name.clone(), c));
                }
                match history::shared_file(&file, &acked, &copies) {
                    None => Poll::Ready(()),
                    Some(v) => {
                        let d = v.detail.clone();
                        *last.lock().unwrap() = Some(v);
                        Poll::NotYet(d)
                    }
                }
            },
        )
        .await;
        if r.is_err()
            && let Some(v) = last.into_inner().unwrap()
        {
            out.push(v);
        }
    }
    out
}

/// Every Pgpool-II member agrees with the watchdog leader.
async fn members_agree(lab: &Lab) -> Option<Violation> {
    match decide(&lab.cluster().pgpool_view().await) {
        Decision::Healthy { .. } => None,
        other => Some(Violation {
            check: "every Pgpool-II member agrees with the leader".into(),
            detail: format!("{other:?}"),
        }),
    }
}

/// Exports the lab's logs into `<dir>/logs` and looks for the patterns of
/// `bug-patterns.txt` in every file.
async fn bugs_in_logs(lab: &Lab, dir: &Path) -> Vec<Violation> {
    let logs = dir.join("logs");
    let check = "no service log shows a bug";
    let patterns = match history::bug_patterns(history::BUG_PATTERNS) {
        Ok(p) => p,
        Err(e) => {
            return vec![Violation {
                check: check.into(),
                detail: e,
            }];
        }
    };
    if let Err(e) = crate::artifacts::export(lab, &logs).await {
        return vec![Violation {
            check: check.into(),
            detail: format!("cannot export the logs: {e:#}"),
        }];
    }
    let mut out = Vec::new();
    let mut stack = vec![logs.clone()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(bytes) = std::fs::read(&p) {
                let name = p.strip_prefix(&logs).unwrap_or(&p).display().to_string();
                out.extend(history::bug_in(
                    &patterns,
                    &name,
                    &String::from_utf8_lossy(&bytes),
                ));
            }
        }
    }
    out
}

/// The summary as a table.
pub fn summary_table(s: &Summary) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "chaos run `{}`, seed {} ({} mode, {} replication)",
        s.run,
        s.seed,
        s.mode.name(),
        if s.synchronous {
            "synchronous"
        } else {
            "asynchronous"
        }
    );
    let rows: Vec<(&str, String)> = vec![
        (
            "faults injected",
            format!("{} in {} steps", s.faults_injected, s.steps),
        ),
        (
            "time",
            format!(
                "{:.0} s planned, {:.0} s in all, {} repairs, {} failed units on reboots",
                s.planned_s, s.wall_s, s.repairs, s.units_failed
            ),
        ),
        (
            "writes",
            format!(
                "{} attempted, {} acknowledged, {} lost",
                s.writes.attempted, s.writes.ok, s.lost
            ),
        ),
        (
            "reads",
            format!("{} attempted, {} answered", s.reads.attempted, s.reads.ok),
        ),
        (
            "appends",
            format!(
                "{} attempted, {} acknowledged",
                s.appends.attempted, s.appends.ok
            ),
        ),
        (
            "longest unavailability",
            format!("{:.1} s", s.longest_unavailability_s),
        ),
        (
            "longest convergence",
            s.converge_s
                .map_or_else(|| "did not converge".into(), |c| format!("{c:.1} s")),
        ),
        (
            "samples",
            format!(
                "{} (most VIP holders at once {}, most PostgreSQL primaries {})",
                s.samples, s.max_vip_holders, s.max_primaries
            ),
        ),
    ];
    for (k, v) in rows {
        let _ = writeln!(t, "  {k:<24} {v}");
    }
    if s.violations.is_empty() {
        let _ = writeln!(t, "  every check holds");
    } else {
        for v in &s.violations {
            let _ = writeln!(t, "  violated: {}: {}", v.check, v.detail);
        }
    }
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_replay_command_names_what_differs_from_the_defaults() {
        let mut o = Options::new(7, Duration::from_secs(120));
        assert_eq!(
            o.replay(None),
            "ke2lab chaos --seed 7 --duration 2m --mode safe"
        );
        o.kinds = vec![Kind::Stop, Kind::Partition];
        o.mode = Mode::Hard;
        assert_eq!(
            o.replay(Some(Path::new("customer.toml"))),
            "ke2lab chaos --seed 7 --duration 2m --mode hard --faults stop,partition --topology customer.toml"
        );
    }

    #[test]
    fn the_summary_table() {
        let s = Summary {
            run: "r1a2b3c".into(),
            seed: 7,
            mode: Mode::Safe,
            synchronous: true,
            steps: 3,
            faults_injected: 3,
            planned_s: 54.0,
            wall_s: 403.2,
            repairs: 3,
            units_failed: 1,
            writes: history::Tally {
                attempted: 30212,
                ok: 30185,
            },
            lost: 0,
            reads: history::Tally {
                attempted: 683,
                ok: 679,
            },
            appends: history::Tally {
                attempted: 1525,
                ok: 1354,
            },
            longest_unavailability_s: 17.4,
            converge_s: Some(61.2),
            samples: 179,
            max_vip_holders: 1,
            max_primaries: 2,
            violations: vec![Violation {
                check: "the VIP is never on two hosts".into(),
                detail: "at 4200 ms the VIP was on ke2-server1 and ke2-server2".into(),
            }],
        };
        insta::assert_snapshot!(summary_table(&s));
    }
}
