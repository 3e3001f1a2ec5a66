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

/// The procedure: Docker engine, firewall and swarm (steps 1-3), the
/// Gluster shared directory and its layout (step 4, and the `SHARED_DIR`
/// part of step 8), then PostgreSQL, postgres SSH trust, Pgpool-II, its
/// start and the online recovery of the standbys (steps 5-7). Steps 5-7
/// need `cx.credentials`.
///
/// The steps run as [`Procedure::graph`] orders them: each after the
/// steps whose results it needs, side by side with the others, so the
/// swarm, the shared directory and the postgres SSH trust are made while
/// PostgreSQL starts and the database part waits on Pgpool-II's watchdog
/// and the base backups. What steps share on a host, the package manager,
/// the firewall and the engine's start, is changed by one step at a time
/// ([`steps::Step::host_wide`]).
///
/// Surveyed ([`steps::run_graph`]): every step's plan is made at once
/// first, and the steps with nothing to change that need only such steps
/// are only verified, side by side; a re-run on a healthy cluster costs
/// about its slowest step, not the sum of all.
///
/// A failed step stops only the steps after it (a step stopped
/// mid-command would leave more to repair than one that finished); the
/// error returned is the first in the procedure's order, and the others
/// are logged.
pub async fn install(cx: &Cx<'_>) -> Result<InstallReport, StepError> {
    let p = Procedure::new(cx);
    Ok(InstallReport {
        steps: steps::run_graph(&p.graph(cx), cx).await?,
    })
}

/// Steps 1-7 as step values, in the procedure's order, in three parts:
/// the one list that [`install`] and the part functions both run.
pub struct Procedure {
    docker: steps::docker::DockerEngine,
    swarm_fw: steps::firewall::Firewall,
    swarm: steps::swarm::Swarm,
    glusterd: steps::gluster::Glusterd,
    gluster_fw: steps::firewall::Firewall,
    gluster: steps::gluster::Gluster,
    shared_dir: steps::shared_dir::SharedDir,
    pg_packages: steps::postgres::PgPackages,
    pg_fw: steps::firewall::Firewall,
    postgres: steps::postgres::Postgres,
    pgssh_keys: steps::pgssh::PgSshKeys,
    pgssh: steps::pgssh::PgSsh,
    pgpool: steps::pgpool::PgpoolConfig,
    pgpool_start: steps::pgpool::PgpoolStart,
    recovery: steps::pgpool::Recovery,
    pg_sync: steps::postgres::PgSync,
}

impl Procedure {
    pub fn new(cx: &Cx<'_>) -> Self {
        use steps::firewall::Firewall;
        Procedure {
            docker: steps::docker::DockerEngine,
            swarm_fw: Firewall::for_swarm(cx),
            swarm: Default::default(),
            glusterd: Default::default(),
            gluster_fw: Firewall::for_gluster(),
            gluster: Default::default(),
            shared_dir: steps::shared_dir::SharedDir,
            pg_packages: steps::postgres::PgPackages,
            pg_fw: Firewall::for_database(cx),
            postgres: steps::postgres::Postgres,
            pgssh_keys: steps::pgssh::PgSshKeys,
            pgssh: steps::pgssh::PgSsh,
            pgpool: steps::pgpool::PgpoolConfig,
            pgpool_start: Default::default(),
            recovery: Default::default(),
            pg_sync: steps::postgres::PgSync,
        }
    }

    /// Steps 1-7 in the procedure's order, each needing what it reads.
    /// The three parts need nothing of each other (the stack, step 8,
    /// needs all three and comes after `install`), and each runs in the
    /// document's order but for one fork: the postgres SSH trust (the
    /// postgres user's keys, from the packages) does not need PostgreSQL,
    /// and only the online recovery (its `ssh` to the standbys) needs it.
    /// Pgpool-II's files need PostgreSQL's step: they go where the primary
    /// is (`current_primary` asks the running servers) and into its data
    /// directory, which rhel9's `initdb` makes.
    pub fn graph(&self, cx: &Cx<'_>) -> steps::Graph<'_> {
        let mut g = steps::Graph::default();
        g.chain(&self.swarm(), &[]);
        g.chain(&self.shared_dir(cx), &[]);
        let packages = g.add(&self.pg_packages, &[]);
        let pg_fw = g.add(&self.pg_fw, &[packages]);
        let postgres = g.add(&self.postgres, &[pg_fw]);
        let trust = g
            .chain(&[&self.pgssh_keys, &self.pgssh], &[packages])
            .expect("two steps");
        let pgpool = g.add(&self.pgpool, &[postgres]);
        let start = g.add(&self.pgpool_start, &[pgpool]);
        let recovery = g.add(&self.recovery, &[start, trust]);
        g.add(&self.pg_sync, &[recovery]);
        g
    }

    /// Steps 1-3.
    pub fn swarm(&self) -> Vec<&dyn steps::AnyStep> {
        vec![&self.docker, &self.swarm_fw, &self.swarm]
    }

    /// Step 4 (glusterd, its firewall service, the pool, volume and mounts;
    /// none of it when `shared_dir.kind = "existing"`: the directory is
    /// then an operator's file server), then the `SHARED_DIR` layout.
    pub fn shared_dir(&self, cx: &Cx<'_>) -> Vec<&dyn steps::AnyStep> {
        let mut v: Vec<&dyn steps::AnyStep> = Vec::new();
        if cx.topology.shared_dir.kind == SharedDirKind::Gluster {
            v.extend([
                &self.glusterd as &dyn steps::AnyStep,
                &self.gluster_fw,
                &self.gluster,
            ]);
        }
        v.push(&self.shared_dir);
        v
    }

    /// Steps 5-7.
    pub fn database(&self) -> Vec<&dyn steps::AnyStep> {
        vec![
            &self.pg_packages,
            &self.pg_fw,
            &self.postgres,
            &self.pgssh_keys,
            &self.pgssh,
            &self.pgpool,
            &self.pgpool_start,
            &self.recovery,
            &self.pg_sync,
        ]
    }
}

/// Runs `steps` one by one into `report`.
async fn run_each(
    steps: &[&dyn steps::AnyStep],
    cx: &Cx<'_>,
    report: &mut InstallReport,
) -> Result<(), StepError> {
    for s in steps {
        report.steps.push(s.run(cx).await?);
    }
    Ok(())
}

/// Steps 1-3: Docker engine, firewall for the swarm, swarm of managers.
pub async fn install_swarm(cx: &Cx<'_>, report: &mut InstallReport) -> Result<(), StepError> {
    run_each(&Procedure::new(cx).swarm(), cx, report).await
}

/// Step 4 and the shared directory's layout: glusterd, its firewall
/// service, the pool, volume and mounts (skipped when `shared_dir.kind =
/// "existing"`), then the `SHARED_DIR` layout that step 8 needs.
pub async fn install_shared_dir(cx: &Cx<'_>, report: &mut InstallReport) -> Result<(), StepError> {
    run_each(&Procedure::new(cx).shared_dir(cx), cx, report).await
}

/// Steps 5-7: PostgreSQL streaming replication behind Pgpool-II.
pub async fn install_database(cx: &Cx<'_>, report: &mut InstallReport) -> Result<(), StepError> {
    run_each(&Procedure::new(cx).database(), cx, report).await
}

/// Step 8: the operator's ke2-docker checkout onto the manager, the
/// certificates, `setup_stack.sh`'s files, and `docker stack deploy`. The
/// checkout is read before any host is touched (a bad one is bad input).
pub async fn install_stack(
    cx: &Cx<'_>,
    tree: steps::checkout::Tree,
    report: &mut InstallReport,
) -> Result<(), StepError> {
    let opts = prepare_stack(cx, tree, report).await?;
    deploy_stack(cx, opts, report).await
}

/// Step 8 up to the stack file: the checkout copied to the manager, the
/// certificates, `setup_stack.sh`'s rules. Returns the options used, for
/// [`deploy_stack`] (a caller may make the images available in between).
pub async fn prepare_stack(
    cx: &Cx<'_>,
    tree: steps::checkout::Tree,
    report: &mut InstallReport,
) -> Result<steps::stack::StackOptions, StepError> {
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
    Ok(opts)
}

/// `docker stack deploy` of the prepared stack file.
pub async fn deploy_stack(
    cx: &Cx<'_>,
    opts: steps::stack::StackOptions,
    report: &mut InstallReport,
) -> Result<(), StepError> {
    report
        .steps
        .push(steps::run(&steps::deploy::Deploy { opts }, cx).await?);
    Ok(())
}

/// The images the prepared stack file names, by service (read from the
/// manager).
pub async fn stack_images(
    cx: &Cx<'_>,
    opts: &steps::stack::StackOptions,
) -> Result<std::collections::BTreeMap<String, String>, StepError> {
    let m = opts.manager;
    let path = format!("{}/{}", opts.swarm_dir(), steps::stack::STACK_FILE);
    let body = cx.host(m).read_file(&path).await?.ok_or_else(|| {
        steps::stack::state(
            cx,
            "stack images",
            m,
            format!("no `{path}`: set-up must run first"),
        )
    })?;
    crate::render::stack::service_images(&String::from_utf8_lossy(&body))
        .map_err(|e| steps::stack::state(cx, "stack images", m, format!("`{path}`: {e}")))
}

/// Waits until every service of the deployed stack runs all its desired
/// tasks, as the manager's `docker service ls` reports it.
pub async fn wait_stack_converged(
    cx: &Cx<'_>,
    manager: usize,
    timeout: std::time::Duration,
) -> Result<Vec<crate::probe::stack::Service>, StepError> {
    use crate::probe::stack::services;
    use crate::wait::{Poll, wait_for_every};
    let h = cx.host(manager);
    let what = format!(
        "every service of stack `{}` at its desired replicas (seen from `{}`)",
        steps::deploy::STACK_NAME,
        cx.name(manager)
    );
    Ok(wait_for_every(
        &what,
        timeout,
        std::time::Duration::from_secs(1),
        || async move {
            match services(h, steps::deploy::STACK_NAME).await {
                Ok(s) if !s.is_empty() && s.iter().all(|x| x.converged()) => Poll::Ready(s),
                Ok(s) => Poll::NotYet(
                    s.iter()
                        .map(|x| format!("{} {}", x.name, x.replicas))
                        .collect::<Vec<_>>()
                        .join(", "),
                ),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?)
}

/// `docker stack rm` of the ke2 stack on `manager` (how the procedure stops
/// Kompira), then waits until no service of it is listed and no container
/// of it is left on any host.
pub async fn remove_stack(
    cx: &Cx<'_>,
    manager: usize,
    timeout: std::time::Duration,
) -> Result<(), StepError> {
    use crate::host::Cmd;
    use crate::probe::stack::{services, stack_containers};
    use crate::wait::{Poll, wait_for_every};
    let stack = steps::deploy::STACK_NAME;
    Cmd::new(["docker", "stack", "rm", stack])
        .check(cx.host(manager))
        .await?;
    let what = format!("stack `{stack}` gone: no service, no container on any host");
    wait_for_every(
        &what,
        timeout,
        std::time::Duration::from_secs(1),
        || async move {
            let mut left = Vec::new();
            match services(cx.host(manager), stack).await {
                Ok(s) => left.extend(s.into_iter().map(|s| format!("service {}", s.name))),
                Err(e) => return Poll::NotYet(e.to_string()),
            }
            for i in 0..cx.hosts.len() {
                match stack_containers(cx.host(i), stack).await {
                    Ok(c) => left.extend(c.into_iter().map(|c| format!("{}: {c}", cx.name(i)))),
                    Err(e) => return Poll::NotYet(e.to_string()),
                }
            }
            if left.is_empty() {
                Poll::Ready(())
            } else {
                Poll::NotYet(left.join(", "))
            }
        },
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::Recorder;
    use crate::topology::Topology;

    /// `f` of the procedure on recording hosts for `t`.
    fn with_procedure<T>(t: &Topology, f: impl FnOnce(&Cx<'_>, &Procedure) -> T) -> T {
        let hosts = Recorder::new().hosts(t.hosts.iter().map(|h| h.name.as_str()));
        let cx = Cx::new(t, &hosts);
        f(&cx, &Procedure::new(&cx))
    }

    /// Each step of the graph with the names of the steps it needs.
    fn edges(t: &Topology) -> Vec<(&'static str, Vec<&'static str>)> {
        with_procedure(t, |cx, p| {
            let g = p.graph(cx);
            (0..g.steps().len())
                .map(|i| {
                    let needs = g.needs(i).iter().map(|&n| g.steps()[n].name()).collect();
                    (g.steps()[i].name(), needs)
                })
                .collect()
        })
    }

    #[test]
    fn the_graph_is_the_procedure_with_the_ssh_trust_beside_postgres() {
        let t = Topology::fixture("three-node").unwrap().topology;
        let e = edges(&t);
        let want: Vec<(&str, Vec<&str>)> = vec![
            ("docker", vec![]),
            ("firewall", vec!["docker"]),
            ("swarm", vec!["firewall"]),
            ("glusterd", vec![]),
            ("gluster-fw", vec!["glusterd"]),
            ("gluster", vec!["gluster-fw"]),
            ("shared_dir", vec!["gluster"]),
            ("pg-packages", vec![]),
            ("pg-firewall", vec!["pg-packages"]),
            ("postgres", vec!["pg-firewall"]),
            ("pgssh-keys", vec!["pg-packages"]),
            ("pgssh", vec!["pgssh-keys"]),
            ("pgpool", vec!["postgres"]),
            ("pgpool-start", vec!["pgpool"]),
            ("recovery", vec!["pgpool-start", "pgssh"]),
            ("pg-sync", vec!["recovery"]),
        ];
        assert_eq!(e, want);
    }

    #[test]
    fn the_graph_s_order_is_the_parts_order() {
        // Run one by one in the graph's order, the install is the parts'.
        let mut t = Topology::fixture("three-node").unwrap().topology;
        for kind in [SharedDirKind::Gluster, SharedDirKind::Existing] {
            t.shared_dir.kind = kind;
            let parts: Vec<&str> = with_procedure(&t, |cx, p| {
                [p.swarm(), p.shared_dir(cx), p.database()]
                    .concat()
                    .iter()
                    .map(|s| s.name())
                    .collect()
            });
            let graph: Vec<&str> = edges(&t).into_iter().map(|(n, _)| n).collect();
            assert_eq!(graph, parts, "{kind:?}");
        }
    }
}
