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
///
/// One `Cx` is shared by every step of an install that runs side by side
/// ([`run_graph`]), so it also holds what they must share: each host's
/// lock for host-wide changes ([`Step::host_wide`]) and the survey's
/// places ([`SURVEY_WIDTH`] for all of them together).
pub struct Cx<'a> {
    pub topology: &'a Topology,
    pub hosts: &'a [Arc<dyn Host>],
    /// The resolved passwords; the database steps need them, steps 1-4 not.
    pub credentials: Option<&'a Credentials>,
    host_wide: Vec<tokio::sync::Mutex<()>>,
    survey_places: tokio::sync::Semaphore,
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
            host_wide: hosts.iter().map(|_| tokio::sync::Mutex::new(())).collect(),
            survey_places: tokio::sync::Semaphore::new(SURVEY_WIDTH),
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

    /// One of the [`SURVEY_WIDTH`] places that everything surveyed on this
    /// `Cx` shares: held while one step's survey plan or verify runs.
    async fn survey_place(&self) -> tokio::sync::SemaphorePermit<'_> {
        self.survey_places
            .acquire()
            .await
            .expect("the survey's semaphore is never closed")
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

    /// Whether the step's changes are host-wide: the package manager (apt
    /// and dnf take one lock per host, a second install fails rather than
    /// waits), the firewall (a firewalld reload rewrites the rules a
    /// starting dockerd is writing), or the engine's start. Such a step's
    /// changes on a host are applied under that host's lock, so steps that
    /// run side by side never make two at once; plans and verifies take no
    /// lock.
    fn host_wide(&self) -> bool {
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
    warn_of(step.name(), &plan.warnings);
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

fn warn_of(step: &'static str, warnings: &[String]) {
    for w in warnings {
        tracing::warn!(step, "{w}");
    }
}

/// A step of any action type, for a list of steps (the procedure in
/// `install`): [`run`] it, or look first ([`AnyStep::survey`]) and, when
/// it has nothing to change, only verify it ([`AnyStep::finish_surveyed`]).
#[async_trait]
pub trait AnyStep: Send + Sync {
    fn name(&self) -> &'static str;

    /// [`run`]: plan, apply, verify, in the step's own `phase` span.
    async fn run(&self, cx: &Cx<'_>) -> Result<StepReport, StepError>;

    /// The step's plan alone, reduced to whether it is empty: reads only
    /// ([`Step::plan`] changes nothing), so surveys of several steps may
    /// run at once.
    async fn survey(&self, cx: &Cx<'_>) -> Result<Survey, StepError>;

    /// The rest of a step whose survey found nothing to change: its
    /// warnings, then its verify (and repair); reported as [`run`] would.
    async fn finish_surveyed(&self, cx: &Cx<'_>, survey: Survey) -> Result<StepReport, StepError>;
}

/// What a step's survey saw: nothing to change (`empty`), or something.
#[derive(Clone, Debug)]
pub struct Survey {
    pub empty: bool,
    pub warnings: Vec<String>,
    pub elapsed: Duration,
}

#[async_trait]
impl<S: Step> AnyStep for S {
    fn name(&self) -> &'static str {
        Step::name(self)
    }

    async fn run(&self, cx: &Cx<'_>) -> Result<StepReport, StepError> {
        run(self, cx).await
    }

    async fn survey(&self, cx: &Cx<'_>) -> Result<Survey, StepError> {
        let start = Instant::now();
        let plan = self.plan(cx).await?;
        Ok(Survey {
            empty: plan.items.is_empty(),
            warnings: plan.warnings,
            elapsed: start.elapsed(),
        })
    }

    async fn finish_surveyed(&self, cx: &Cx<'_>, survey: Survey) -> Result<StepReport, StepError> {
        debug_assert!(survey.empty, "only an empty plan is finished unapplied");
        let start = Instant::now();
        warn_of(Step::name(self), &survey.warnings);
        let changes = self.verify_and_repair(cx).await?;
        Ok(StepReport {
            step: Step::name(self),
            changes,
            warnings: survey.warnings,
            elapsed: survey.elapsed + start.elapsed(),
        })
    }
}

/// How many steps a survey plans, or verifies, at once: enough to overlap
/// their round trips, few enough that a host's command channels stay
/// under sshd's `MaxSessions` (10) and a lab host's session pool small.
/// For everything that runs on one `Cx` together (the places are the
/// `Cx`'s): callers surveyed side by side do not multiply it.
pub const SURVEY_WIDTH: usize = 8;

/// Steps and what each needs: a step starts once every step it needs has
/// ended, and steps that need nothing of each other run side by side. A
/// step only needs steps added before it, so the order of addition is an
/// order in which the steps may run one by one.
#[derive(Default)]
pub struct Graph<'s> {
    steps: Vec<&'s dyn AnyStep>,
    needs: Vec<Vec<usize>>,
}

impl<'s> Graph<'s> {
    /// Adds `step`, needing the steps at `needs`; returns its index.
    pub fn add(&mut self, step: &'s dyn AnyStep, needs: &[usize]) -> usize {
        assert!(
            needs.iter().all(|&n| n < self.steps.len()),
            "a step needs only steps added before it"
        );
        self.steps.push(step);
        self.needs.push(needs.to_vec());
        self.steps.len() - 1
    }

    /// Adds `steps` one after another, the first needing `needs`; returns
    /// the last one's index (`None` for no steps).
    pub fn chain(&mut self, steps: &[&'s dyn AnyStep], needs: &[usize]) -> Option<usize> {
        let mut last: Option<usize> = None;
        for s in steps {
            let i = match last {
                Some(l) => self.add(*s, &[l]),
                None => self.add(*s, needs),
            };
            last = Some(i);
        }
        last
    }

    /// The steps, in the order they were added.
    pub fn steps(&self) -> &[&'s dyn AnyStep] {
        &self.steps
    }

    /// The indices of the steps `i` needs.
    pub fn needs(&self, i: usize) -> &[usize] {
        &self.needs[i]
    }

    /// The indices of every step after `i`: needing it, or a step after it.
    fn after(&self, i: usize) -> Vec<usize> {
        let mut after = vec![false; self.steps.len()];
        after[i] = true;
        for j in i + 1..self.steps.len() {
            after[j] = self.needs[j].iter().any(|&p| after[p]);
        }
        (i + 1..self.steps.len()).filter(|&j| after[j]).collect()
    }
}

/// Runs `steps` in order, as [`run`] one by one would, but looks first
/// ([`run_graph`] of a chain).
pub async fn run_surveyed(
    steps: &[&dyn AnyStep],
    cx: &Cx<'_>,
) -> Result<Vec<StepReport>, StepError> {
    let mut g = Graph::default();
    g.chain(steps, &[]);
    run_graph(&g, cx).await
}

/// Runs a graph's steps, each after the steps it needs, as running them
/// one by one in the graph's order would, but looks first: every step's
/// plan at once ([`SURVEY_WIDTH`] at a time). Plans only read, and a plan
/// made while the plans of every step it needs (and theirs) are empty saw
/// the state a one-by-one run would show it, so those steps are only
/// verified, side by side, from the start. A step with something to change
/// (or a failed plan), and every step after it in the graph, runs:
/// planning again, applying, verifying, as soon as the steps it needs have
/// ended, side by side with the steps it does not need. So do the steps
/// after a verified one whose verify repaired something. A healthy cluster
/// (the no-op re-provision) so costs its longest plan and verify, not the
/// sum of all. A verified step's `phase` span is opened once its outcome
/// and those of the steps it needs are known, with its own time
/// (`elapsed_ms`).
///
/// A failed step stops only the steps after it; the others run to their
/// end, and the error returned is the first in the graph's order (the
/// others are logged). Reports are in the graph's order.
pub async fn run_graph(g: &Graph<'_>, cx: &Cx<'_>) -> Result<Vec<StepReport>, StepError> {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;
    use tracing::Instrument;
    type Outcome = (usize, bool, Result<StepReport, StepError>);
    let n = g.steps.len();
    let mut surveys = survey_clean(g, cx).await;
    tracing::debug!(
        surveyed = n,
        clean = surveys.iter().flatten().count(),
        "survey: the steps that have nothing to change and need only such steps"
    );
    // `again`: the step runs (no clean survey: it, or a step it needs,
    // has something to change). A step's report is final once in `reports`.
    let mut again: Vec<bool> = surveys.iter().map(Option::is_none).collect();
    let mut started = vec![false; n];
    let mut verified: Vec<Option<StepReport>> = (0..n).map(|_| None).collect();
    let mut reports: Vec<Option<StepReport>> = (0..n).map(|_| None).collect();
    let mut errors: Vec<(usize, StepError)> = Vec::new();
    let mut running: FuturesUnordered<futures_util::future::BoxFuture<'_, Outcome>> =
        FuturesUnordered::new();
    loop {
        for i in 0..n {
            let s = g.steps[i];
            if started[i] {
                continue;
            }
            if !again[i] {
                started[i] = true;
                let survey = surveys[i].take().expect("a clean step's survey");
                running.push(Box::pin(async move {
                    let _place = cx.survey_place().await;
                    let r = s
                        .finish_surveyed(cx, survey)
                        .instrument(tracing::debug_span!("verify", step = s.name()))
                        .await;
                    (i, false, r)
                }));
            } else if g.needs[i].iter().all(|&p| reports[p].is_some()) {
                started[i] = true;
                running.push(Box::pin(async move { (i, true, s.run(cx).await) }));
            }
        }
        let Some((i, ran, r)) = running.next().await else {
            break;
        };
        match r {
            // A verify made stale by a repair before it: the step runs.
            _ if !ran && again[i] => {}
            Ok(r) if ran => reports[i] = Some(r),
            Ok(r) => verified[i] = Some(r),
            Err(e) => errors.push((i, e)),
        }
        // Verified steps whose needs are settled settle, in order; one
        // that repaired sends every step after it to run.
        for i in 0..n {
            if reports[i].is_some() || !g.needs[i].iter().all(|&p| reports[p].is_some()) {
                continue;
            }
            let Some(r) = verified[i].take() else {
                continue;
            };
            let span = tracing::info_span!(
                "phase",
                phase = g.steps[i].name(),
                changes = tracing::field::Empty,
                elapsed_ms = tracing::field::Empty
            );
            span.record("elapsed_ms", r.elapsed.as_millis() as u64);
            span.record("changes", r.changes.len() as u64);
            let repaired = !r.changes.is_empty();
            reports[i] = Some(r);
            if repaired {
                for j in g.after(i) {
                    if !again[j] {
                        again[j] = true;
                        started[j] = false;
                        verified[j] = None;
                        errors.retain(|(k, _)| *k != j);
                    }
                }
            }
        }
    }
    errors.sort_by_key(|(i, _)| *i);
    let mut errors = errors.into_iter();
    if let Some((_, first)) = errors.next() {
        for (i, e) in errors {
            tracing::error!(step = g.steps[i].name(), "{e}");
        }
        return Err(first);
    }
    Ok(reports
        .into_iter()
        .map(|r| r.expect("every step ended"))
        .collect())
}

/// The surveys of the steps that have nothing to change and need only
/// such steps (`None` for the others), [`SURVEY_WIDTH`] at a time in the
/// graph's order. A step after one found with something to change (or a
/// failed plan) is not surveyed, and the surveys of such steps still
/// running are dropped: on fresh hosts (`up`) the survey costs a few plans,
/// not all of them.
async fn survey_clean(g: &Graph<'_>, cx: &Cx<'_>) -> Vec<Option<Survey>> {
    use futures_util::StreamExt;
    use futures_util::stream::FuturesUnordered;
    use tracing::Instrument;
    #[derive(Clone)]
    enum Seen {
        Unknown,
        Clean(Survey),
        /// Something to change, here or in a step it needs.
        Dirty,
    }
    let n = g.steps.len();
    let survey = |i: usize| {
        let s = g.steps[i];
        async move {
            let _place = cx.survey_place().await;
            let r = s
                .survey(cx)
                .instrument(tracing::debug_span!("survey", step = s.name()))
                .await;
            (i, r)
        }
    };
    let mut seen = vec![Seen::Unknown; n];
    let mut launched = vec![false; n];
    let mut running = FuturesUnordered::new();
    loop {
        // After a step with changes, a survey (made or not) does not see
        // what the step's run will leave: in the graph's order, so that
        // it reaches every step after it.
        for i in 0..n {
            if g.needs[i].iter().any(|&p| matches!(seen[p], Seen::Dirty)) {
                seen[i] = Seen::Dirty;
            }
        }
        if !seen.iter().any(|s| matches!(s, Seen::Unknown)) {
            break;
        }
        for i in 0..n {
            if running.len() >= SURVEY_WIDTH {
                break;
            }
            if !launched[i] && matches!(seen[i], Seen::Unknown) {
                launched[i] = true;
                running.push(survey(i));
            }
        }
        let Some((i, r)) = running.next().await else {
            break;
        };
        if matches!(seen[i], Seen::Unknown) {
            seen[i] = match r {
                Ok(s) if s.empty => Seen::Clean(s),
                _ => Seen::Dirty,
            };
        }
    }
    seen.into_iter()
        .map(|s| match s {
            Seen::Clean(s) => Some(s),
            _ => None,
        })
        .collect()
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
    let _held = match step.host_wide() {
        true => Some(cx.host_wide[item.host].lock().await),
        false => None,
    };
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};

    use super::*;
    use crate::host::Recorder;

    /// A step that has `pending` changes to make (one per apply) and
    /// counts its plans, applies and verifies; its plan or verify may fail.
    #[derive(Default)]
    struct Counted {
        pending: AtomicUsize,
        plans: AtomicUsize,
        applies: AtomicUsize,
        verifies: AtomicUsize,
        fail_plan: AtomicBool,
        fail_verify: AtomicBool,
        /// Its verify repairs something (once).
        repairs: AtomicBool,
        /// Its plan takes a moment (others end first).
        slow_plan: AtomicBool,
    }

    impl Counted {
        fn counts(&self) -> (usize, usize, usize) {
            (
                self.plans.load(SeqCst),
                self.applies.load(SeqCst),
                self.verifies.load(SeqCst),
            )
        }
    }

    fn broken(what: &str) -> StepError {
        StepError::State {
            step: "counted",
            host: "h".into(),
            message: what.into(),
        }
    }

    #[async_trait]
    impl Step for Counted {
        type Action = ();
        fn name(&self) -> &'static str {
            "counted"
        }
        async fn plan(&self, _cx: &Cx<'_>) -> Result<Plan<()>, StepError> {
            self.plans.fetch_add(1, SeqCst);
            // A real plan waits on its hosts: let the others run meanwhile.
            tokio::task::yield_now().await;
            if self.slow_plan.load(SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            if self.fail_plan.load(SeqCst) {
                return Err(broken("plan"));
            }
            let mut p = Plan::default();
            if self.pending.load(SeqCst) > 0 {
                p.push(0, "change", ());
            }
            Ok(p)
        }
        async fn apply(&self, _cx: &Cx<'_>, _item: &Planned<()>) -> Result<(), StepError> {
            self.applies.fetch_add(1, SeqCst);
            self.pending.fetch_sub(1, SeqCst);
            Ok(())
        }
        async fn verify(&self, _cx: &Cx<'_>) -> Result<(), StepError> {
            self.verifies.fetch_add(1, SeqCst);
            if self.fail_verify.load(SeqCst) {
                return Err(broken("verify"));
            }
            Ok(())
        }
        async fn verify_and_repair(&self, cx: &Cx<'_>) -> Result<Vec<Change>, StepError> {
            self.verify(cx).await?;
            Ok(if self.repairs.swap(false, SeqCst) {
                vec![Change {
                    host: "h".into(),
                    summary: "repair".into(),
                }]
            } else {
                Vec::new()
            })
        }
    }

    /// The default topology and a recording host for each of its hosts.
    fn three_hosts() -> (crate::topology::Topology, Vec<Arc<dyn Host>>) {
        let t = crate::topology::Topology::fixture("three-node")
            .unwrap()
            .topology;
        let hosts = Recorder::new().hosts(t.hosts.iter().map(|h| h.name.as_str()));
        (t, hosts)
    }

    async fn surveyed(steps: &[Counted]) -> Result<Vec<StepReport>, StepError> {
        let (t, hosts) = three_hosts();
        let cx = Cx::new(&t, &hosts);
        let list: Vec<&dyn AnyStep> = steps.iter().map(|s| s as &dyn AnyStep).collect();
        run_surveyed(&list, &cx).await
    }

    fn steps(n: usize) -> Vec<Counted> {
        (0..n).map(|_| Counted::default()).collect()
    }

    #[tokio::test]
    async fn a_clean_survey_plans_and_verifies_each_step_once() {
        let s = steps(SURVEY_WIDTH * 2 + 1);
        let reports = surveyed(&s).await.unwrap();
        assert_eq!(reports.len(), s.len());
        assert!(reports.iter().all(|r| r.changes.is_empty()));
        for st in &s {
            assert_eq!(st.counts(), (1, 0, 1));
        }
    }

    #[tokio::test]
    async fn from_the_first_step_with_changes_the_steps_run_one_by_one() {
        let s = steps(SURVEY_WIDTH * 3);
        let first = 2;
        s[first].pending.store(1, SeqCst);
        s[first + 3].pending.store(1, SeqCst);
        let reports = surveyed(&s).await.unwrap();
        let changes: Vec<usize> = reports.iter().map(|r| r.changes.len()).collect();
        let mut expected = vec![0; s.len()];
        expected[first] = 1;
        expected[first + 3] = 1;
        assert_eq!(changes, expected);
        for (i, st) in s.iter().enumerate() {
            let (plans, applies, verifies) = st.counts();
            assert_eq!(verifies, 1, "step {i}");
            assert_eq!(applies, expected[i], "step {i}");
            match i {
                // Surveyed clean: the survey's plan is the only one.
                i if i < first => assert_eq!(plans, 1, "step {i}"),
                // Planned again by its sequential run.
                i if i == first => assert_eq!(plans, 2, "step {i}"),
                // Perhaps surveyed while the survey ran, then run.
                _ => assert!((1..=2).contains(&plans), "step {i}"),
            }
        }
        // The survey stopped at `first`: the last step was never surveyed.
        assert_eq!(s[s.len() - 1].counts(), (1, 0, 1));
    }

    #[tokio::test]
    async fn after_a_verify_that_repaired_the_later_steps_run_again() {
        let s = steps(4);
        s[1].repairs.store(true, SeqCst);
        let reports = surveyed(&s).await.unwrap();
        let changes: Vec<usize> = reports.iter().map(|r| r.changes.len()).collect();
        assert_eq!(changes, [0, 1, 0, 0]);
        assert_eq!(s[0].counts(), (1, 0, 1));
        assert_eq!(s[1].counts(), (1, 0, 1));
        // Surveyed and verified with the others, then run again.
        for st in &s[2..] {
            assert_eq!(st.counts(), (2, 0, 2));
        }
    }

    #[tokio::test]
    async fn a_failed_plan_fails_as_in_a_sequential_run() {
        let s = steps(4);
        s[1].fail_plan.store(true, SeqCst);
        let e = surveyed(&s).await.unwrap_err();
        assert!(e.to_string().contains("plan"), "{e}");
        assert_eq!(s[0].counts(), (1, 0, 1));
        // Its survey's plan and its run's; nothing after it runs.
        assert_eq!(s[1].counts(), (2, 0, 0));
        assert_eq!(s[3].verifies.load(SeqCst), 0);
    }

    #[tokio::test]
    async fn a_failed_verify_of_a_clean_step_fails_the_run() {
        let s = steps(3);
        s[1].fail_verify.store(true, SeqCst);
        let e = surveyed(&s).await.unwrap_err();
        assert!(e.to_string().contains("verify"), "{e}");
        assert_eq!(s[1].counts(), (1, 0, 1));
    }

    /// How many of a kind of call run at once, and the most there were.
    #[derive(Default)]
    struct InFlight {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    impl InFlight {
        /// Counts one call in for a moment long enough that calls made
        /// side by side overlap.
        async fn hold(&self) {
            let n = self.now.fetch_add(1, SeqCst) + 1;
            self.most.fetch_max(n, SeqCst);
            // Counted out also when the call is dropped (a survey stops
            // the plans it no longer needs).
            let _out = Out(&self.now);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    struct Out<'a>(&'a AtomicUsize);

    impl Drop for Out<'_> {
        fn drop(&mut self) {
            self.0.fetch_sub(1, SeqCst);
        }
    }

    /// A step with one change per host, applied while it counts in the
    /// host's `applying`; its plan counts in `planning`.
    struct Overlaps<'a> {
        host_wide: bool,
        applied: AtomicBool,
        applying: &'a [InFlight],
        planning: &'a InFlight,
    }

    #[async_trait]
    impl Step for Overlaps<'_> {
        type Action = ();
        fn name(&self) -> &'static str {
            "overlaps"
        }
        async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<()>, StepError> {
            self.planning.hold().await;
            let mut p = Plan::default();
            if !self.applied.load(SeqCst) {
                for h in 0..cx.hosts.len() {
                    p.push(h, "change", ());
                }
            }
            Ok(p)
        }
        async fn apply(&self, _cx: &Cx<'_>, item: &Planned<()>) -> Result<(), StepError> {
            self.applying[item.host].hold().await;
            self.applied.store(true, SeqCst);
            Ok(())
        }
        fn hosts_independent(&self) -> bool {
            true
        }
        fn host_wide(&self) -> bool {
            self.host_wide
        }
    }

    /// Runs two parts of `per_part` `Overlaps` steps (already `applied`,
    /// or each with a change per host) side by side on one `Cx`, as
    /// `install::install` runs its parts, and returns the most applies seen
    /// at once on any host and the most plans at once.
    async fn two_parts(host_wide: bool, applied: bool, per_part: usize) -> (usize, usize) {
        let (t, hosts) = three_hosts();
        let cx = Cx::new(&t, &hosts);
        let applying: Vec<InFlight> = hosts.iter().map(|_| InFlight::default()).collect();
        let planning = InFlight::default();
        let part = || -> Vec<Overlaps<'_>> {
            (0..per_part)
                .map(|_| Overlaps {
                    host_wide,
                    applied: AtomicBool::new(applied),
                    applying: &applying,
                    planning: &planning,
                })
                .collect()
        };
        let (a, b) = (part(), part());
        let la: Vec<&dyn AnyStep> = a.iter().map(|s| s as &dyn AnyStep).collect();
        let lb: Vec<&dyn AnyStep> = b.iter().map(|s| s as &dyn AnyStep).collect();
        let (ra, rb) = tokio::join!(run_surveyed(&la, &cx), run_surveyed(&lb, &cx));
        assert_eq!(ra.unwrap().len() + rb.unwrap().len(), 2 * per_part);
        let most_applies = applying.iter().map(|f| f.most.load(SeqCst)).max().unwrap();
        (most_applies, planning.most.load(SeqCst))
    }

    #[tokio::test]
    async fn host_wide_changes_of_parts_side_by_side_are_one_at_a_time_per_host() {
        assert_eq!(two_parts(true, false, 2).await.0, 1);
        // Without the lock the same parts do overlap: the check can fail.
        assert_eq!(two_parts(false, false, 2).await.0, 2);
    }

    #[tokio::test]
    async fn parts_side_by_side_share_the_survey_s_width() {
        // Clean parts (a no-op provision): every plan is a survey's, and
        // each part alone would make SURVEY_WIDTH of them at once.
        assert_eq!(two_parts(false, true, SURVEY_WIDTH).await.1, SURVEY_WIDTH);
    }

    /// Runs `steps` as a graph in which step `i` needs `needs[i]`.
    async fn graphed(steps: &[Counted], needs: &[&[usize]]) -> Result<Vec<StepReport>, StepError> {
        let (t, hosts) = three_hosts();
        let cx = Cx::new(&t, &hosts);
        let mut g = Graph::default();
        for (s, n) in steps.iter().zip(needs) {
            g.add(s, n);
        }
        run_graph(&g, &cx).await
    }

    /// Two branches from nothing: 0 -> 1 -> 2 and 3 -> 4.
    const BRANCHES: [&[usize]; 5] = [&[], &[0], &[1], &[], &[3]];

    #[tokio::test]
    async fn changes_in_one_branch_leave_the_other_only_verified() {
        let s = steps(5);
        s[1].pending.store(1, SeqCst);
        let reports = graphed(&s, &BRANCHES).await.unwrap();
        let changes: Vec<usize> = reports.iter().map(|r| r.changes.len()).collect();
        assert_eq!(changes, [0, 1, 0, 0, 0]);
        assert_eq!(s[0].counts(), (1, 0, 1));
        assert_eq!(s[1].counts(), (2, 1, 1));
        // After the change: planned again by its run.
        assert!(
            matches!(s[2].counts(), (1..=2, 0, 1)),
            "{:?}",
            s[2].counts()
        );
        for st in &s[3..] {
            assert_eq!(st.counts(), (1, 0, 1));
        }
    }

    #[tokio::test]
    async fn a_step_surveyed_clean_before_a_step_it_needs_changed_runs() {
        let s = steps(3);
        s[0].pending.store(1, SeqCst);
        s[0].slow_plan.store(true, SeqCst);
        let reports = graphed(&s, &[&[], &[0], &[1]]).await.unwrap();
        assert_eq!(reports[0].changes.len(), 1);
        // Its survey ended first and was clean, but saw the state before
        // step 0's change: it is planned again, not only verified.
        assert_eq!(s[1].counts(), (2, 0, 1));
    }

    #[tokio::test]
    async fn a_failed_step_stops_only_the_steps_after_it() {
        let s = steps(5);
        for st in &s {
            st.pending.store(1, SeqCst);
        }
        s[1].fail_verify.store(true, SeqCst);
        // Fails first in time: its plan, before step 1's verify.
        s[4].fail_plan.store(true, SeqCst);
        let e = graphed(&s, &BRANCHES).await.unwrap_err();
        // The first failure in the graph's order, not the first in time.
        assert!(e.to_string().contains("verify"), "{e}");
        assert_eq!(s[1].counts(), (2, 1, 1));
        // After the failed step: never run.
        assert_eq!(s[2].counts().1, 0);
        // The other branch ran to its end.
        assert_eq!(s[3].counts(), (2, 1, 1));
        assert_eq!(s[4].counts(), (2, 0, 0));
    }

    #[tokio::test]
    async fn branches_run_side_by_side() {
        // Two steps with changes on every host, alone in their branches,
        // then the same two as a chain: the most applies at once on a host.
        async fn most(chained: bool) -> usize {
            let (t, hosts) = three_hosts();
            let cx = Cx::new(&t, &hosts);
            let applying: Vec<InFlight> = hosts.iter().map(|_| InFlight::default()).collect();
            let planning = InFlight::default();
            let step = || Overlaps {
                host_wide: false,
                applied: AtomicBool::new(false),
                applying: &applying,
                planning: &planning,
            };
            let (a, b) = (step(), step());
            let mut g = Graph::default();
            let first = g.add(&a, &[]);
            let needs: Vec<usize> = if chained { vec![first] } else { Vec::new() };
            g.add(&b, &needs);
            run_graph(&g, &cx).await.unwrap();
            applying.iter().map(|f| f.most.load(SeqCst)).max().unwrap()
        }
        assert_eq!(most(false).await, 2);
        assert_eq!(most(true).await, 1);
    }
}
