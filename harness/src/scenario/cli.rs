//! `ke2lab scenario list|run`: the registry's scenarios run by the binary,
//! against the scenario's own base topology or `--topology FILE`.

use std::path::PathBuf;

use anyhow::{Context, Result};
use ke2lab::topology::Topology;

use super::{BadScenario, Options, Report, Session, find};
use crate::lab;

#[derive(clap::Subcommand)]
pub enum Action {
    /// The scenarios, one line each.
    List,
    /// Boot a lab (or two, for `vmxnet3`) for the scenario, run it, print
    /// its figures and write them as `scenario.json` into the run's
    /// evidence directory; the lab is removed afterwards (evidence kept on
    /// failure) unless `--keep`.
    Run {
        /// The scenario (`ke2lab scenario list`).
        name: String,
        /// Base topology (default: the scenario's own, the document's
        /// example); the scenario's own changes (e.g. synchronous
        /// replication, generated passwords) are applied on top.
        #[arg(long, short)]
        topology: Option<PathBuf>,
        /// Fault cycles of a repeating scenario (default: the scenario's
        /// own, 3, or 1 for `partition_sync`).
        #[arg(long, value_parser = cycles)]
        cycles: Option<usize>,
        /// Keep the lab after the run, passed or failed, for `ke2lab
        /// status|down --run ID`.
        #[arg(long)]
        keep: bool,
    },
}

fn cycles(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=100).contains(&n) => Ok(n),
        _ => Err(format!("`{s}`: a whole number of cycles from 1 to 100")),
    }
}

/// Runs `action`; its exit code on success.
pub async fn main(action: Action) -> Result<u8> {
    match action {
        Action::List => {
            print!("{}", super::list());
            Ok(0)
        }
        Action::Run {
            name,
            topology,
            cycles,
            keep,
        } => run(&name, topology.as_ref(), cycles, keep).await,
    }
}

/// The scenario's topology from `file` (or its own base), validated as
/// `ke2lab up --topology` validates it, the scenario's changes applied.
pub fn topology_for(name: &str, file: Option<&PathBuf>) -> Result<Topology> {
    let s = find(name)?;
    let base = match file {
        Some(p) => lab::load_topology(p)?.topology,
        None => s.base_topology()?,
    };
    s.topology(base)
}

async fn run(name: &str, file: Option<&PathBuf>, cycles: Option<usize>, keep: bool) -> Result<u8> {
    // Bad input is found before anything boots.
    let s = find(name)?;
    let topology = topology_for(name, file)?;
    let session = Session::new(keep);
    let o = Options {
        cycles: cycles.unwrap_or(s.cycles),
    };
    let work = s.run(&session, topology, &o);
    let outcome = tokio::select! {
        r = work => r,
        code = lab::interrupt() => {
            let runs = session.runs();
            if !keep {
                for run in &runs {
                    eprintln!("interrupted; removing run `{run}`");
                    if let Err(e) = remove(run).await {
                        eprintln!("warning: removing run `{run}`: {e:#}");
                    }
                }
            } else {
                eprintln!("interrupted; left runs {runs:?}");
            }
            std::process::exit(code)
        }
    };
    let runs = session.runs();
    let report = outcome?;
    print!("{report}");
    for run in &runs {
        write_report(&report, run, keep)?;
    }
    Ok(0)
}

/// Where a run's evidence goes (`artifacts::collect`), kept after the lab.
pub fn evidence_dir(run: &str) -> PathBuf {
    lab::home().join("artifacts").join(run)
}

/// `scenario.json` beside the run's evidence, and in the run's own
/// directory when the lab is kept.
fn write_report(r: &Report, run: &str, keep: bool) -> Result<()> {
    let mut dirs = vec![evidence_dir(run)];
    if keep {
        dirs.push(lab::run_dir(run));
    }
    for d in dirs {
        std::fs::create_dir_all(&d).with_context(|| format!("cannot make `{}`", d.display()))?;
        let path = d.join("scenario.json");
        lab::write_private(&path, format!("{}\n", r.to_json()).as_bytes())?;
        eprintln!("figures of run `{run}` in `{}`", path.display());
    }
    Ok(())
}

async fn remove(run: &str) -> Result<()> {
    let docker = lab::connect().await?;
    lab::down_run(&docker, run).await
}

/// Whether `e` is a scenario's bad input (exit 2).
pub fn is_bad_input(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<BadScenario>()
}
