//! The procedure's steps. Each step first plans (reads state, decides what
//! differs from the topology) and then applies only those differences, and
//! reports what it changed; a step whose plan is empty changes nothing.

pub mod checkout;
pub mod deploy;
pub mod docker;
pub mod files;
pub mod firewall;
pub mod gluster;
pub mod pgpool;
pub mod pgssh;
pub mod postgres;
pub mod shared_dir;
pub mod stack;
pub mod swarm;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use thiserror::Error;

use crate::host::{Host, HostError};
use crate::probe::ProbeError;
use crate::topology::{Credentials, Topology};
use crate::wait::WaitError;

/// What every step works on: the topology and one `Host` per topology host,
/// in the topology's order (index 0 is the first host).
pub struct Cx<'a> {
    pub topology: &'a Topology,
    pub hosts: &'a [Arc<dyn Host>],
    /// The resolved passwords; the database steps need them, steps 1-4 not.
    pub credentials: Option<&'a Credentials>,
}

impl<'a> Cx<'a> {
    pub fn new(topology: &'a Topology, hosts: &'a [Arc<dyn Host>]) -> Self {
        assert_eq!(
            topology.hosts.len(),
            hosts.len(),
            "one Host per topology host, in order"
        );
        Cx {
            topology,
            hosts,
            credentials: None,
        }
    }

    pub fn with_credentials(mut self, credentials: &'a Credentials) -> Self {
        self.credentials = Some(credentials);
        self
    }

    /// The credentials, or an error naming the step that needs them.
    pub fn creds(&self, step: &'static str) -> Result<&'a Credentials, StepError> {
        self.credentials.ok_or_else(|| StepError::State {
            step,
            host: self.name(0).to_string(),
            message: "no credentials were given to the install".into(),
        })
    }

    pub fn host(&self, i: usize) -> &dyn Host {
        self.hosts[i].as_ref()
    }

    pub fn name(&self, i: usize) -> &str {
        &self.topology.hosts[i].name
    }
}

/// Errors of a step; each names the host and the action.
#[derive(Debug, Error)]
pub enum StepError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Probe(#[from] ProbeError),
    #[error(transparent)]
    Wait(#[from] WaitError),
    /// The host is in a state the step must not repair on its own.
    #[error("{step} on `{host}`: {message}")]
    State {
        step: &'static str,
        host: String,
        message: String,
    },
}

/// One planned change on one host.
#[derive(Clone, Debug)]
pub struct Planned<A> {
    pub host: usize,
    pub summary: String,
    pub action: A,
}

/// A step's plan: the changes it would make, and warnings for the operator.
#[derive(Clone, Debug)]
pub struct Plan<A> {
    pub items: Vec<Planned<A>>,
    pub warnings: Vec<String>,
}

impl<A> Default for Plan<A> {
    fn default() -> Self {
        Plan {
            items: Vec::new(),
            warnings: Vec::new(),
        }
    }
}

impl<A> Plan<A> {
    pub fn push(&mut self, host: usize, summary: impl Into<String>, action: A) {
        self.items.push(Planned {
            host,
            summary: summary.into(),
            action,
        });
    }
}

/// A change as reported after apply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    pub host: String,
    pub summary: String,
}

/// What one step did.
#[derive(Clone, Debug)]
pub struct StepReport {
    pub step: &'static str,
    pub changes: Vec<Change>,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

impl fmt::Display for StepReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:<10} {:>6.2}s  {} change(s)",
            self.step,
            self.elapsed.as_secs_f64(),
            self.changes.len()
        )?;
        for c in &self.changes {
            write!(f, "\n    [{}] {}", c.host, c.summary)?;
        }
        for w in &self.warnings {
            write!(f, "\n    warning: {w}")?;
        }
        Ok(())
    }
}

/// A unit of the procedure.
#[async_trait]
pub trait Step: Send + Sync {
    type Action: Send + Sync;

    fn name(&self) -> &'static str;

    /// Reads state and decides what differs. Changes nothing.
    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Self::Action>, StepError>;

    /// Applies one planned change.
    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Self::Action>) -> Result<(), StepError>;

    /// Whether one host's changes never depend on another's, so hosts may be
    /// changed side by side (each host's items still in order).
    fn hosts_independent(&self) -> bool {
        false
    }

    /// Checks the step's outcome (runs also when nothing changed).
    async fn verify(&self, _cx: &Cx<'_>) -> Result<(), StepError> {
        Ok(())
    }

    /// [`Step::verify`] for a step whose verify may also repair what it
    /// finds (a stale Pgpool-II member); returns what it changed, which the
    /// report counts with the planned changes.
    async fn verify_and_repair(&self, cx: &Cx<'_>) -> Result<Vec<Change>, StepError> {
        self.verify(cx).await.map(|()| Vec::new())
    }
}

/// Plans, applies the plan in order, verifies, and reports.
pub async fn run<S: Step>(step: &S, cx: &Cx<'_>) -> Result<StepReport, StepError> {
    use tracing::Instrument;
    // One span per step, named `phase`: a front end (the CLI's progress
    // lines) shows the step while it runs and, once `changes` is recorded,
    // as done; a span closed without it is a failed step.
    let span = tracing::info_span!(
        "phase",
        phase = step.name(),
        changes = tracing::field::Empty
    );
    let report = run_step(step, cx).instrument(span.clone()).await?;
    span.record("changes", report.changes.len() as u64);
    Ok(report)
}

async fn run_step<S: Step>(step: &S, cx: &Cx<'_>) -> Result<StepReport, StepError> {
    let start = Instant::now();
    let plan = step.plan(cx).await?;
    for w in &plan.warnings {
        tracing::warn!(step = step.name(), "{w}");
    }
    if step.hosts_independent() {
        // Each host's items in their planned order, hosts side by side.
        let hosts: Vec<usize> = (0..cx.hosts.len()).collect();
        futures_util::future::try_join_all(hosts.iter().map(|h| {
            let mine: Vec<&Planned<S::Action>> =
                plan.items.iter().filter(|i| i.host == *h).collect();
            async move {
                for item in mine {
                    apply_logged(step, cx, item).await?;
                }
                Ok::<_, StepError>(())
            }
        }))
        .await?;
    } else {
        for item in &plan.items {
            apply_logged(step, cx, item).await?;
        }
    }
    let mut changes: Vec<Change> = plan
        .items
        .iter()
        .map(|item| Change {
            host: cx.name(item.host).to_string(),
            summary: item.summary.clone(),
        })
        .collect();
    changes.extend(step.verify_and_repair(cx).await?);
    Ok(StepReport {
        step: step.name(),
        changes,
        warnings: plan.warnings,
        elapsed: start.elapsed(),
    })
}

async fn apply_logged<S: Step>(
    step: &S,
    cx: &Cx<'_>,
    item: &Planned<S::Action>,
) -> Result<(), StepError> {
    tracing::info!(
        step = step.name(),
        host = cx.name(item.host),
        "{}",
        item.summary
    );
    step.apply(cx, item).await
}

/// Plans every host concurrently with `f` (one host's plan each) and merges
/// the plans in host order.
pub async fn plan_hosts<A, F, Fut>(cx: &Cx<'_>, f: F) -> Result<Plan<A>, StepError>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Result<Plan<A>, StepError>>,
{
    let plans = futures_util::future::try_join_all((0..cx.hosts.len()).map(f)).await?;
    let mut out = Plan::default();
    for p in plans {
        out.items.extend(p.items);
        out.warnings.extend(p.warnings);
    }
    Ok(out)
}

/// Runs `f` for every host concurrently and collects the results in host
/// order; the first error wins. Steps use it for per-host reads.
pub async fn each_host<'a, T, F, Fut>(cx: &'a Cx<'_>, f: F) -> Result<Vec<T>, StepError>
where
    F: Fn(usize, &'a dyn Host) -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let futs = (0..cx.hosts.len()).map(|i| f(i, cx.hosts[i].as_ref()));
    let results = futures_util::future::join_all(futs).await;
    results.into_iter().collect()
}
