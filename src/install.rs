//! The whole install: the procedure's steps in order on one set of hosts.
//! Every caller (CLI on real servers, the lab harness, scenarios) goes
//! through here, so the order and the idempotence contract live in one place.

use std::fmt;

use crate::steps::{self, Cx, StepError, StepReport};

/// What one install run did, step by step.
#[derive(Clone, Debug, Default)]
pub struct InstallReport {
    pub steps: Vec<StepReport>,
}

impl InstallReport {
    /// Total number of changes; zero on a re-run of a complete install.
    pub fn changes(&self) -> usize {
        self.steps.iter().map(|s| s.changes.len()).sum()
    }
}

impl fmt::Display for InstallReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for s in &self.steps {
            writeln!(f, "  {s}")?;
        }
        write!(f, "  total: {} change(s)", self.changes())
    }
}

/// The procedure in order: Docker engine, firewall and swarm (steps 1-3),
/// then PostgreSQL, postgres SSH trust, Pgpool-II, its start and the online
/// recovery of the standbys (steps 5-7). Steps 5-7 need `cx.credentials`.
pub async fn install(cx: &Cx<'_>) -> Result<InstallReport, StepError> {
    let mut report = InstallReport::default();
    install_swarm(cx, &mut report).await?;
    // Step 4 (GlusterFS) and the shared directory come here.
    install_database(cx, &mut report).await?;
    Ok(report)
}

/// Steps 1-3: Docker engine, firewall for the swarm, swarm of managers.
pub async fn install_swarm(cx: &Cx<'_>, report: &mut InstallReport) -> Result<(), StepError> {
    report
        .steps
        .push(steps::run(&steps::docker::DockerEngine, cx).await?);
    report
        .steps
        .push(steps::run(&steps::firewall::Firewall::for_swarm(cx), cx).await?);
    report
        .steps
        .push(steps::run(&steps::swarm::Swarm::default(), cx).await?);
    Ok(())
}

/// Steps 5-7: PostgreSQL streaming replication behind Pgpool-II.
pub async fn install_database(cx: &Cx<'_>, report: &mut InstallReport) -> Result<(), StepError> {
    use steps::{pgpool, pgssh, postgres};
    report
        .steps
        .push(steps::run(&postgres::PgPackages, cx).await?);
    report
        .steps
        .push(steps::run(&steps::firewall::Firewall::for_database(cx), cx).await?);
    report
        .steps
        .push(steps::run(&postgres::Postgres, cx).await?);
    report.steps.push(steps::run(&pgssh::PgSsh, cx).await?);
    report
        .steps
        .push(steps::run(&pgpool::PgpoolConfig, cx).await?);
    report
        .steps
        .push(steps::run(&pgpool::PgpoolStart::default(), cx).await?);
    report
        .steps
        .push(steps::run(&pgpool::Recovery::default(), cx).await?);
    Ok(())
}
