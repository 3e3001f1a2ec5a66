//! The whole install: the procedure's steps in order on one set of hosts.
//! Every caller (CLI on real servers, the lab harness, scenarios) goes
//! through here, so the order and the idempotence contract live in one place.

use std::fmt;

use crate::steps::{self, Cx, StepError, StepReport};
use crate::topology::SharedDirKind;

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
/// the Gluster shared directory and its layout (step 4, and the `SHARED_DIR`
/// part of step 8), then PostgreSQL, postgres SSH trust, Pgpool-II, its start and the online
/// recovery of the standbys (steps 5-7). Steps 5-7 need `cx.credentials`.
pub async fn install(cx: &Cx<'_>) -> Result<InstallReport, StepError> {
    let mut report = InstallReport::default();
    install_swarm(cx, &mut report).await?;
    install_shared_dir(cx, &mut report).await?;
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

/// Step 4 and the shared directory's layout: glusterd, its firewall
/// service, the pool, volume and mounts (skipped when `shared_dir.kind =
/// "existing"`: the directory is then an operator's file server), then the
/// `SHARED_DIR` layout that step 8 needs.
pub async fn install_shared_dir(cx: &Cx<'_>, report: &mut InstallReport) -> Result<(), StepError> {
    if cx.topology.shared_dir.kind == SharedDirKind::Gluster {
        report
            .steps
            .push(steps::run(&steps::gluster::Glusterd::default(), cx).await?);
        report
            .steps
            .push(steps::run(&steps::firewall::Firewall::for_gluster(), cx).await?);
        report
            .steps
            .push(steps::run(&steps::gluster::Gluster::default(), cx).await?);
    }
    report
        .steps
        .push(steps::run(&steps::shared_dir::SharedDir, cx).await?);
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
    report.steps.push(steps::run(&pgssh::PgSshKeys, cx).await?);
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
    report.steps.push(steps::run(&postgres::PgSync, cx).await?);
    Ok(())
}

/// Step 8: the operator's ke2-docker checkout onto the manager, the
/// certificates, `setup_stack.sh`'s files, and `docker stack deploy`. The
/// checkout is read before any host is touched (a bad one is bad input).
pub async fn install_stack(
    cx: &Cx<'_>,
    tree: steps::checkout::Tree,
    report: &mut InstallReport,
) -> Result<(), StepError> {
    use steps::checkout::{Checkout, DEFAULT_DEST};
    use steps::stack::{Certs, SetupStack, StackOptions};
    let opts = StackOptions::from_topology(cx.topology, DEFAULT_DEST);
    report.steps.push(
        steps::run(
            &Checkout {
                tree,
                dest: DEFAULT_DEST.into(),
                manager: opts.manager,
            },
            cx,
        )
        .await?,
    );
    report.steps.push(steps::run(&Certs::new(&opts), cx).await?);
    report
        .steps
        .push(steps::run(&SetupStack::new(opts.clone()), cx).await?);
    report
        .steps
        .push(steps::run(&steps::deploy::Deploy { opts }, cx).await?);
    Ok(())
}
