//! Cluster tier: the short chaos run of CI. One lab with synchronous
//! replication (`ANY 1`, so zero lost acknowledged writes is asserted), a
//! fixed list of seeds in safe mode run one after the other on it; every
//! check of the history must hold for each (`ke2lab chaos` with the same
//! seed replays a failure). The files a run writes are checked as typed
//! data: the schedule replays from its seed, the summary agrees with the
//! history.

use std::time::Duration;

use anyhow::{Result, ensure};
use ke2lab_harness::chaos::history::{self, Event};
use ke2lab_harness::chaos::schedule::Schedule;
use ke2lab_harness::chaos::{self, Options};

/// The seeds CI runs, each for [`DURATION`] (`ke2lab chaos --seed 2
/// --duration 40s --dry-run` prints a schedule). Between them: the first
/// host (the initial primary) stopped, Pgpool-II killed, a host losing
/// half its packets, a host cut off; the schedules are pinned by the seed.
const SEEDS: [u64; 2] = [2, 3];
const DURATION: Duration = Duration::from_secs(40);

#[tokio::test]
async fn chaos_seeds_in_safe_mode_keep_every_check() -> Result<()> {
    let mut topology = ke2lab_scenarios::fault_topology()?;
    topology.postgres.synchronous = true;
    ke2lab_scenarios::with_lab(&topology, async |lab| {
        lab.install().await?;
        let mut failed = Vec::new();
        for seed in SEEDS {
            let o = Options::new(seed, DURATION);
            let replay = o.replay(None);
            let outcome = chaos::run(lab, &o, replay).await?;
            print!("{}", chaos::summary_table(&outcome.summary));

            // What was written is what was run.
            let schedule: Schedule =
                serde_json::from_str(&std::fs::read_to_string(outcome.dir.join("schedule.json"))?)?;
            let hosts: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
            ensure!(
                schedule == o.schedule(&hosts)?,
                "seed {seed}: schedule.json is not the seed's schedule"
            );
            let events: Vec<Event> = std::fs::read_to_string(outcome.dir.join("history.jsonl"))?
                .lines()
                .map(serde_json::from_str)
                .collect::<Result<_, _>>()?;
            let s = &outcome.summary;
            ensure!(
                history::writes(&events) == s.writes && s.writes.ok > 0,
                "seed {seed}: the summary's writes {:?} are not the history's",
                s.writes
            );
            ensure!(
                s.faults_injected == schedule.steps.len(),
                "seed {seed}: {} faults injected of {} steps",
                s.faults_injected,
                schedule.steps.len()
            );
            ensure!(s.samples > 0, "seed {seed}: no sample taken");
            if !outcome.passed() {
                failed.push(format!(
                    "seed {seed}: {:?} (replay: {})",
                    s.violations, outcome.replay
                ));
            }
        }
        ensure!(failed.is_empty(), "chaos checks violated: {failed:#?}");
        Ok(())
    })
    .await
}
