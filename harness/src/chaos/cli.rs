//! `ke2lab chaos`: the arguments, checked before anything is touched, and
//! the lab's lifecycle around [`super::run`] (booted and installed unless
//! `--run` names one, removed afterwards unless `--keep`, every fault
//! healed on an interrupt).

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use ke2lab::topology::Topology;

use super::schedule::{BadSchedule, Kind, Mode};
use super::{Options, summary_table};
use crate::Lab;
use crate::faults::Faults;

#[derive(Clone, Debug, clap::Args)]
pub struct Args {
    /// The schedule's seed: the same seed and topology give the same faults.
    #[arg(long)]
    pub seed: u64,
    /// How long the schedule runs (pauses and holds; repairs come on top),
    /// e.g. `120s`, `10m`.
    #[arg(long, value_parser = duration)]
    pub duration: Duration,
    /// Topology of the lab to boot (default: the document's example with
    /// generated passwords).
    #[arg(long, short, conflicts_with = "run")]
    pub topology: Option<PathBuf>,
    /// The fault kinds to draw from, comma-separated (default: every kind
    /// but `slow`): stop, pause, kill, kill-process, freeze-process,
    /// partition, flaky, slow.
    #[arg(long, value_parser = kinds)]
    pub faults: Option<KindList>,
    /// `safe`: one fault at a time on a minority, the cluster converged
    /// before the next; `hard`: up to all hosts but one, no repair before
    /// the end.
    #[arg(long, value_enum, default_value_t = Mode::Safe)]
    pub mode: Mode,
    /// Boot the lab with synchronous replication (`ANY 1`), so that the
    /// zero-loss check is asserted.
    #[arg(long, conflicts_with = "run")]
    pub synchronous: bool,
    /// Run on this lab (installed) instead of booting one.
    #[arg(long)]
    pub run: Option<String>,
    /// Keep the lab this command booted, passed or failed.
    #[arg(long, conflicts_with = "run")]
    pub keep: bool,
    /// Print the schedule (for the topology, or the lab `--run` names) and
    /// stop: nothing is booted or injected.
    #[arg(long)]
    pub dry_run: bool,
    /// How long the cluster has to converge after the heal.
    #[arg(long, value_parser = duration, default_value = "300s")]
    pub converge_within: Duration,
}

fn duration(s: &str) -> Result<Duration, String> {
    match humantime::parse_duration(s) {
        Ok(d) if d >= Duration::from_secs(1) && d <= Duration::from_secs(24 * 3600) => Ok(d),
        Ok(_) => Err(format!("`{s}`: from 1 s to 24 h")),
        Err(e) => Err(format!("`{s}`: not a duration like `90s` or `10m` ({e})")),
    }
}

/// `--faults`' value: one argument, comma-separated.
#[derive(Clone, Debug)]
pub struct KindList(pub Vec<Kind>);

fn kinds(s: &str) -> Result<KindList, String> {
    Kind::parse_list(s).map(KindList)
}

/// Bad input of `ke2lab chaos` (exit 2): found before any host is touched.
pub fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<BadSchedule>()
}

/// The lab's topology: the file's, or the fault scenarios' default.
fn topology(a: &Args) -> Result<Topology> {
    let mut t = match &a.topology {
        Some(p) => crate::lab::load_topology(p)?.topology,
        None => crate::scenario::common::fault_topology()?,
    };
    if a.synchronous {
        t.postgres.synchronous = true;
    }
    Ok(t)
}

fn options(a: &Args) -> Options {
    let mut o = Options::new(a.seed, a.duration);
    if let Some(k) = &a.faults {
        o.kinds = k.0.clone();
    }
    o.mode = a.mode;
    o.converge_within = a.converge_within;
    o
}

/// Refuses `slow` where the hosts' kernel has no netem (the machine's
/// kernel: every lab host shares it), before the schedule starts.
async fn netem_present(lab: &Lab, o: &Options) -> Result<()> {
    if !o.kinds.contains(&Kind::Slow) {
        return Ok(());
    }
    let h = lab.hosts()[0].clone();
    let out = h.run(&crate::faults::netem_probe_cmd()).await?;
    if !out.success() {
        return Err(anyhow::Error::new(BadSchedule(format!(
            "`--faults`: `slow`: {}",
            crate::faults::netem_refusal(h.name(), &out.stderr_lossy())
        ))));
    }
    Ok(())
}

/// Runs `ke2lab chaos`: 0 when every check holds, 1 otherwise (the first
/// violated check and the replay command printed).
pub async fn main(a: Args) -> Result<u8> {
    let o = options(&a);
    if a.dry_run {
        let hosts = match &a.run {
            Some(run) => host_names(&Lab::attach(run).await?.topology),
            None => host_names(&topology(&a)?),
        };
        print!(
            "{}",
            o.schedule(&hosts).map_err(anyhow::Error::new)?.table()
        );
        println!("replay: {}", o.replay(a.topology.as_deref()));
        return Ok(0);
    }
    let mut lab = match &a.run {
        Some(run) => {
            let lab = Lab::attach(run).await?;
            // The schedule is checked against the lab's hosts before any
            // fault.
            o.schedule(&host_names(&lab.topology))
                .map_err(anyhow::Error::new)?;
            lab
        }
        None => {
            let t = topology(&a)?;
            o.schedule(&host_names(&t)).map_err(anyhow::Error::new)?;
            let mut lab = Lab::boot(&t, a.keep).await?;
            println!(
                "run `{}`: booted {} hosts; installing",
                lab.run,
                t.hosts.len()
            );
            if let Err(e) = lab.install().await {
                return lab.finish_with(Err(e), a.keep).await;
            }
            lab
        }
    };
    let booted = a.run.is_none();
    let replay = o.replay(a.topology.as_deref());
    let result = match netem_present(&lab, &o).await {
        Err(e) => Err(e),
        Ok(()) => {
            tokio::select! {
                r = super::run(&mut lab, &o, replay.clone()) => r,
                code = crate::lab::interrupt() => {
                    eprintln!("interrupted; healing every fault in force");
                    if let Err(e) = Faults::new(&lab).undo_all().await {
                        eprintln!("warning: {e:#}");
                    }
                    if booted && !a.keep {
                        let run = lab.run.clone();
                        eprintln!("removing run `{run}`");
                        lab.teardown().await.ok();
                    }
                    std::process::exit(code)
                }
            }
        }
    };
    let outcome = match result {
        // On a lab named by `--run` the schedule came from that lab's
        // hosts: the replay boots a lab from its topology, as exported
        // with the run's logs (a lab's own addresses are remapped again).
        Ok(mut out) if !booted => {
            let t = out.dir.join("logs").join("topology.toml");
            if t.is_file() {
                out.replay = o.replay(Some(&t));
            }
            out
        }
        Ok(o) => o,
        Err(e) => {
            eprintln!("replay: {replay}");
            return if booted {
                lab.finish_with(Err(e), a.keep).await
            } else {
                Err(e)
            };
        }
    };
    print!("{}", summary_table(&outcome.summary));
    println!("files: {}", outcome.dir.display());
    if booted {
        if a.keep {
            println!(
                "kept run `{}`: `ke2lab status --run {0}`, `ke2lab down --run {0}`",
                lab.run
            );
            crate::owner::keep(&lab.state_dir).ok();
        } else {
            lab.finish_with(Ok(()), false).await?;
        }
    }
    match outcome.summary.violations.first() {
        None => Ok(0),
        Some(v) => {
            eprintln!("chaos: violated: {}: {}", v.check, v.detail);
            eprintln!("replay: {}", outcome.replay);
            Ok(1)
        }
    }
}

fn host_names(t: &Topology) -> Vec<String> {
    t.hosts.iter().map(|h| h.name.clone()).collect()
}
