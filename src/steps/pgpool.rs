//! Step 5, Pgpool-II part (items 6-12), and step 7: node id, `pcp.conf`, the
//! KE2 blocks of `pgpool.conf` and `pool_hba.conf`, the backends file, the HA
//! scripts, `.pgpass`, `.pcppass`, the key and `pool_passwd`, the sudoers
//! entry for the VIP; then Pgpool-II started on every host (the primary's
//! first) and the standbys built by online recovery through PCP.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::files::{Act, want_block, want_dir, want_file, want_lines};
use super::postgres::{current_primary, psql};
use super::{Change, Cx, Plan, Planned, Step, StepError, plan_hosts};
use crate::cluster::pgpool;
use crate::host::Cmd;
use crate::layout::Layout;
use crate::probe::{net, pgpool as probe};
use crate::render::pg::{
    BACKENDS_FILE, PgParams, backends, pcp_line, pcppass, pgpass, pgpool_conf, pool_hba, sudoers,
};
use crate::render::scripts::{self, ScriptParams};
use crate::wait::{Poll, wait_for};

/// The users whose passwords Pgpool-II keeps in `pool_passwd`.
pub const POOL_USERS: [&str; 3] = ["pgpool", "postgres", "kompira"];

/// The interface that carries the VIP on host `i` and its prefix length:
/// the topology's override, else detected on the host.
pub async fn vip_interface(cx: &Cx<'_>, i: usize) -> Result<(String, u8), StepError> {
    let spec = &cx.topology.hosts[i];
    let links = net::links(cx.host(i)).await?;
    if let Some(name) = cx.topology.interface_for(spec) {
        let prefix = links
            .iter()
            .find(|l| l.ifname == name)
            .and_then(|l| l.ipv4_prefix())
            .unwrap_or(cx.topology.network.prefix);
        return Ok((name.to_string(), prefix));
    }
    match net::vip_interface(&links, spec.address) {
        Some((n, p)) => Ok((n.to_string(), p)),
        // A scripted host without interfaces: the topology's values.
        None if links.is_empty() => Ok(("eth0".into(), cx.topology.network.prefix)),
        None => Err(StepError::State {
            step: "pgpool",
            host: spec.name.clone(),
            message: "no UP interface with an IPv4 address to carry the VIP; set `interface` in the topology".into(),
        }),
    }
}

/// One file check of the pgpool step's plan, run beside the others.
type Check<'a> = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Option<Act>, StepError>> + Send + 'a>,
>;

fn pcppass_path(l: &Layout) -> String {
    l.in_home(".pcppass")
}

fn key_path(l: &Layout) -> String {
    l.in_home(".pgpoolkey")
}

/// `.pgpass`-style lines keyed by everything but the password, so a changed
/// password replaces its line instead of adding another.
fn keyed_by_all_but_password(text: &str) -> Vec<(String, String)> {
    text.lines()
        .map(|line| {
            let key = line.rsplit_once(':').map_or(line, |(k, _)| k);
            (format!("{key}:"), line.to_string())
        })
        .collect()
}

/// Pgpool-II's configuration on every host (items 6-12).
pub struct PgpoolConfig;

#[derive(Clone, Debug)]
pub enum PgpoolAction {
    Act(Act),
    /// `pg_enc -m` for one user. The password reaches it in an input file
    /// of mode 0600 that is removed afterwards, never as an argument
    /// (visible in `/proc/*/cmdline`); `pg_enc -p` would read stdin but
    /// insists on a terminal.
    PoolPasswd {
        user: &'static str,
        password: crate::topology::Secret,
    },
    /// Reload a running Pgpool-II after its configuration changed.
    Reload,
}

#[async_trait]
impl Step for PgpoolConfig {
    type Action = PgpoolAction;

    fn name(&self) -> &'static str {
        "pgpool"
    }

    fn hosts_independent(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<PgpoolAction>, StepError> {
        let creds = cx.creds("pgpool")?;
        let t = cx.topology;
        let primary = current_primary(cx).await?;
        let mut plan = plan_hosts(cx, |i| async move {
            let mut plan = Plan::default();
            let h = cx.host(i);
            let l = Layout::of(t.hosts[i].platform);
            let (iface, prefix) = vip_interface(cx, i).await?;
            let p = PgParams {
                topology: t,
                layout: l,
                interface: &iface,
                prefix,
                node: i,
            };
            let sp = ScriptParams {
                layout: l,
                topology: t,
                interface: &iface,
                prefix,
            };
            // The files of this host are checked side by side (one round
            // trip each); the writes keep this order.
            let mut checks: Vec<(String, Check<'_>)> = Vec::new();
            let file = |path: String, body: Vec<u8>, mode: u32, owner: &'static str| -> Check<'_> {
                Box::pin(async move { want_file(h, &path, &body, mode, owner).await })
            };
            let lines = |path: String,
                         lines: Vec<(String, String)>,
                         mode: u32,
                         owner: &'static str|
             -> Check<'_> {
                Box::pin(async move { want_lines(h, &path, &lines, mode, owner).await })
            };
            let block = |path: String, body: String, mode: u32, owner: &'static str| -> Check<'_> {
                Box::pin(async move { want_block(h, &path, &body, mode, owner).await })
            };
            checks.push((
                format!("write the sudoers entry `{}`", l.sudoers_file),
                file(
                    l.sudoers_file.to_string(),
                    sudoers(l).into_bytes(),
                    0o440,
                    "root:root",
                ),
            ));
            let log_dir = l.pgpool_log_dir;
            checks.push((
                format!("create the log directory `{log_dir}`"),
                Box::pin(async move { want_dir(h, log_dir, "postgres:postgres", 0o755).await }),
            ));
            checks.push((
                "write `pgpool_node_id`".into(),
                file(
                    l.in_pgpool_dir("pgpool_node_id"),
                    format!("{i}\n").into_bytes(),
                    0o644,
                    "root:root",
                ),
            ));
            checks.push((
                "add the pgpool user to `pcp.conf`".into(),
                lines(
                    l.in_pgpool_dir("pcp.conf"),
                    vec![("pgpool:".into(), pcp_line(creds))],
                    0o640,
                    "root:postgres",
                ),
            ));
            checks.push((
                "set the KE2 block of `pgpool.conf`".into(),
                block(l.pgpool_conf(), pgpool_conf(&p), 0o640, "root:postgres"),
            ));
            checks.push((
                format!("write `{BACKENDS_FILE}`"),
                file(
                    l.in_pgpool_dir(BACKENDS_FILE),
                    backends(&p).into_bytes(),
                    0o644,
                    "root:root",
                ),
            ));
            checks.push((
                "set the KE2 block of `pool_hba.conf`".into(),
                block(
                    l.in_pgpool_dir("pool_hba.conf"),
                    pool_hba(&p),
                    0o644,
                    "root:root",
                ),
            ));
            for (path, body, mode) in scripts::all(&sp) {
                // The recovery scripts live in PGDATA; only the primary's
                // matter (pg_basebackup copies them to the standbys).
                if path.starts_with(l.pgdata) && i != primary {
                    continue;
                }
                let name = path.rsplit('/').next().unwrap_or(&path).to_string();
                checks.push((
                    format!("install `{name}`"),
                    file(path, body.into_bytes(), mode, "postgres:postgres"),
                ));
            }
            checks.push((
                "write `.pgpass`".into(),
                lines(
                    l.in_home(".pgpass"),
                    keyed_by_all_but_password(&pgpass(t, creds)),
                    0o600,
                    "postgres:postgres",
                ),
            ));
            checks.push((
                "write `.pcppass`".into(),
                lines(
                    pcppass_path(l),
                    keyed_by_all_but_password(&pcppass(t, creds)),
                    0o600,
                    "postgres:postgres",
                ),
            ));
            checks.push((
                "write the pool_passwd key `.pgpoolkey`".into(),
                file(
                    key_path(l),
                    format!("{}\n", creds.pgpool_key.expose()).into_bytes(),
                    0o600,
                    "postgres:postgres",
                ),
            ));
            // Three at a time: more would mostly wait for the transport to
            // open connections (a new exec or ssh session per extra one).
            use futures_util::{StreamExt, TryStreamExt};
            let labelled: Vec<_> = checks
                .into_iter()
                .map(|(what, check)| async move { Ok::<_, StepError>((what, check.await?)) })
                .collect();
            let acts: Vec<(String, Act)> = futures_util::stream::iter(labelled)
                .buffered(3)
                .try_collect::<Vec<_>>()
                .await?
                .into_iter()
                .filter_map(|(what, act)| act.map(|a| (what, a)))
                .collect();
            let changed = !acts.is_empty();
            for (what, a) in acts {
                plan.push(i, what, PgpoolAction::Act(a));
            }
            // pool_passwd entries: added with pg_enc once pgpool.conf and
            // the key are in place (so after the writes above).
            let current = h
                .read_file(&l.in_pgpool_dir("pool_passwd"))
                .await?
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            for (user, pw) in [
                ("pgpool", &creds.pgpool),
                ("postgres", &creds.postgres),
                ("kompira", &creds.kompira),
            ] {
                let present = current
                    .lines()
                    .any(|line| line.starts_with(&format!("{user}:AES")));
                if !present {
                    plan.push(
                        i,
                        format!("add `{user}` to `pool_passwd` (AES)"),
                        PgpoolAction::PoolPasswd {
                            user,
                            password: pw.clone(),
                        },
                    );
                }
            }
            if changed && h.run(&l.pgpool_running()).await?.success() {
                plan.push(i, "reload Pgpool-II", PgpoolAction::Reload);
            }
            Ok(plan)
        })
        .await?;
        for (key, value) in t.pgpool.settings() {
            let default = crate::topology::PGPOOL_DEFAULTS
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("its default", |(_, d)| d);
            plan.warnings.push(format!(
                "lab deviation: Pgpool-II has `{key}` = {value} (`[pgpool]`); \
                 the document keeps Pgpool-II's default of {default}"
            ));
        }
        if let Some(ranks) = t.pgpool.ranked_priorities(t.hosts.len()) {
            plan.warnings.push(format!(
                "lab deviation: Pgpool-II's `wd_priority` is {ranks} by host order (`pgpool.ranked_priority`); \
                 the document keeps Pgpool-II's default of 1 on every host"
            ));
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<PgpoolAction>) -> Result<(), StepError> {
        let h = cx.host(item.host);
        let l = Layout::of(cx.topology.hosts[item.host].platform);
        match &item.action {
            PgpoolAction::Act(a) => a.apply(h).await,
            PgpoolAction::PoolPasswd { user, password } => {
                let input = l.in_pgpool_dir(".ke2lab-pg_enc.input");
                h.write_file(
                    &input,
                    format!("{user}:{}\n", password.expose()).as_bytes(),
                    0o600,
                    "root:root",
                )
                .await?;
                Cmd::sh("pg_enc -m -k \"$1\" -f \"$2\" -i \"$3\"; rc=$?; rm -f \"$3\"; exit $rc")
                    .arg(key_path(l))
                    .arg(l.pgpool_conf())
                    .arg(&input)
                    .check(h)
                    .await?;
                Ok(())
            }
            PgpoolAction::Reload => {
                Cmd::new(["pgpool", "-f"])
                    .arg(l.pgpool_conf())
                    .arg("reload")
                    .user("postgres")
                    .check(h)
                    .await?;
                Ok(())
            }
        }
    }
}

/// Step 7, first half: Pgpool-II running on every host, the primary's first,
/// until the watchdog has a leader with quorum and exactly one host holds
/// the VIP.
pub struct PgpoolStart {
    pub settle: Duration,
}

impl Default for PgpoolStart {
    fn default() -> Self {
        PgpoolStart {
            settle: Duration::from_secs(120),
        }
    }
}

/// Which hosts carry `vip` now (every host is asked).
pub async fn vip_holders(cx: &Cx<'_>, vip: Ipv4Addr) -> Result<Vec<usize>, StepError> {
    Ok(net::holders(cx.hosts, vip).await?)
}

#[async_trait]
impl Step for PgpoolStart {
    type Action = ();

    fn name(&self) -> &'static str {
        "pgpool-start"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<()>, StepError> {
        let primary = current_primary(cx).await?;
        let mut order: Vec<usize> = vec![primary];
        order.extend((0..cx.hosts.len()).filter(|i| *i != primary));
        let mut plan = Plan::default();
        for i in order {
            let l = Layout::of(cx.topology.hosts[i].platform);
            if !cx.host(i).run(&l.pgpool_running()).await?.success() {
                plan.push(i, "start Pgpool-II", ());
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<()>) -> Result<(), StepError> {
        let h = cx.host(item.host);
        let l = Layout::of(cx.topology.hosts[item.host].platform);
        l.pgpool_start().check(h).await?;
        // The next host starts once this one's Pgpool-II process runs, so the
        // primary's is started first (document order). Waiting for it to
        // answer PCP would cost the lone watchdog's whole start-up (about
        // 14 s of LOADING/JOINING timers); members that start together form
        // the cluster at once. Verification waits for all of them.
        let running = l.pgpool_running();
        wait_for(
            &format!("the Pgpool-II process on `{}`", h.name()),
            self.settle,
            || async {
                match h.run(&running).await {
                    Ok(o) if o.success() => Poll::Ready(()),
                    Ok(_) => Poll::NotYet("not running".into()),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
        Ok(())
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let vip = cx.topology.network.vip;
        let l = Layout::of(cx.topology.hosts[0].platform);
        let pcp = cx.topology.ports.pcp;
        let pass = pcppass_path(l);
        let h0 = cx.host(0);
        wait_for(
            "the Pgpool-II watchdog to have a leader with quorum holding the VIP alone",
            self.settle,
            || async {
                let wd = match probe::watchdog_info(h0, pcp, &pass).await {
                    Ok(w) => w,
                    Err(e) => return Poll::NotYet(e.to_string()),
                };
                let holders = match vip_holders(cx, vip).await {
                    Ok(h) => h,
                    Err(e) => return Poll::NotYet(e.to_string()),
                };
                let leader = cx
                    .topology
                    .hosts
                    .iter()
                    .position(|h| h.name == wd.leader_host);
                if wd.quorum && leader.is_some() && holders == [leader.unwrap()] {
                    Poll::Ready(())
                } else {
                    Poll::NotYet(format!(
                        "quorum {}, leader `{}`, VIP on hosts {holders:?}",
                        wd.quorum, wd.leader_host
                    ))
                }
            },
        )
        .await?;
        Ok(())
    }
}

/// What the recovery step does.
#[derive(Clone, Debug)]
pub enum RecoveryAction {
    /// Before the first rebuild: every node to rebuild has its PostgreSQL
    /// stopped (if it runs) and is down in the Pgpool-II of host `via`.
    Prepare { nodes: Vec<usize>, via: usize },
    /// Rebuild the node from the primary (`pcp_recovery_node`) through the
    /// Pgpool-II of host `via`, the watchdog leader.
    Recover { node: usize, via: usize },
    /// The node's standby streams; only the watchdog leader (host `leader`),
    /// which decides attaches, must take it back.
    Attach { node: usize, leader: usize },
}

/// Step 7, second half: every node whose PostgreSQL does not run as a
/// standby is rebuilt from the primary by online recovery
/// (`pcp_recovery_node`, through the watchdog leader as the document's
/// `-h <VIP>`), as the document does; a streaming standby that the watchdog
/// leader counts down is attached through the leader. The verify waits
/// until [`pgpool::decide`] calls the cluster healthy: the leader and every
/// member agree, a stale member resynced on the way, and a standby that
/// runs but has not streamed for [`pgpool::STALL_GRACE`] rebuilt the same
/// way ([`pgpool::StallWatch`]).
///
/// Pgpool-II runs one online recovery at a time per member
/// (`process_recovery_request` refuses a second one: "pgpool-II is already
/// processing another recovery request"), so the rebuilds are serial; what
/// this step keeps short is everything around each base backup (see
/// [`PCP_RESTART`] and `pgpool_remote_start`).
pub struct Recovery {
    pub settle: Duration,
    /// How long the verify lets a running standby go without streaming
    /// before it rebuilds it ([`pgpool::STALL_GRACE`]).
    pub stall_grace: Duration,
    /// When the last failover or failback this step caused (or awaited)
    /// ended on the member that runs the recoveries.
    last_failover: std::sync::Mutex<Option<Failover>>,
    /// The view an empty plan was made from: nothing is applied after it,
    /// so the verify's first look is that view, not a second observation
    /// (nine PCP and SQL probes at once, the no-op provision's costliest
    /// round). Any apply forgets it.
    planned_view: std::sync::Mutex<Option<pgpool::PgpoolView>>,
}

impl Default for Recovery {
    fn default() -> Self {
        Recovery {
            settle: Duration::from_secs(300),
            stall_grace: pgpool::STALL_GRACE,
            last_failover: std::sync::Mutex::new(None),
            planned_view: std::sync::Mutex::new(None),
        }
    }
}

/// How long a rebuild waits for the standbys before it to catch up.
const CATCH_UP: Duration = Duration::from_secs(30);

/// How often the verify may repeat an attach the leader has not acted on.
const ATTACH_EVERY: Duration = Duration::from_secs(20);

/// How long after a failover or failback a member's PCP process is replaced.
/// Pgpool-II (4.5, 4.6: `exec_notice_pcp_child` in `pgpool_main.c`) wakes
/// the PCP process when a failover or failback ends, then `sleep(1)`s and
/// restarts it. A `pcp_recovery_node` whose worker that old PCP process
/// forked is orphaned by the restart: the wake-up for its own failback goes
/// to the new PCP process, which does not know the worker, so the worker
/// waits out `FAILBACK_WAIT_MAX_RETRY` (5 s, `start_recovery` in
/// `recovery.c`; logged as "waiting for wake up request is timeout"). The
/// next recovery therefore waits until the PCP process that was running
/// when the last failover or failback ended is gone, at most this long.
pub const PCP_RESTART: Duration = Duration::from_millis(1200);

/// The PCP process of the Pgpool-II on a host (its title, `set_ps_display`
/// in `pcp_child.c`; the workers' titles say "processing").
fn pcp_process() -> Cmd {
    Cmd::new([
        "pgrep",
        "-u",
        "postgres",
        "-f",
        "^pgpool: PCP: wait for connection request",
    ])
    .deadline(pgpool::PROBE_DEADLINE)
}

/// The pid of the PCP process on host `on`; `None` when there is none (it is
/// being replaced) or the host cannot tell.
async fn pcp_pid(cx: &Cx<'_>, on: usize) -> Option<String> {
    match cx.host(on).run(&pcp_process()).await {
        Ok(o) if o.success() => o.stdout_lossy().lines().next().map(str::to_string),
        _ => None,
    }
}

/// The last failover or failback on the member that runs the recoveries:
/// when it ended, and its PCP process then.
#[derive(Clone, Debug)]
struct Failover {
    at: Instant,
    pcp: Option<String>,
}

/// `pcp_<tool> -n <node>` on host `on` against its own Pgpool-II.
fn pcp_node(cx: &Cx<'_>, on: usize, tool: &str, node: usize) -> Cmd {
    let l = Layout::of(cx.topology.hosts[on].platform);
    pgpool::pcp(cx.topology, l, tool, "localhost")
        .arg("-n")
        .arg(node.to_string())
}

/// The watchdog leader in `view`: the one the VIP's Pgpool-II names with
/// quorum, else the one a majority of the answering members name.
fn watchdog_leader(view: &pgpool::PgpoolView) -> Option<usize> {
    let by_name = |name: &str| view.hosts.iter().position(|h| h == name);
    if let Ok(w) = &view.via_vip
        && w.quorum
        && let Some(i) = by_name(&w.leader_host)
    {
        return Some(i);
    }
    let named: Vec<usize> = view
        .members
        .iter()
        .filter_map(|m| m.watchdog.as_ref().ok())
        .filter(|w| w.quorum)
        .filter_map(|w| by_name(&w.leader_host))
        .collect();
    let need = view.hosts.len() / 2 + 1;
    named
        .iter()
        .copied()
        .find(|i| named.iter().filter(|j| *j == i).count() >= need)
}

impl Recovery {
    /// Rebuilds node `node` from the primary (`pcp_recovery_node` through
    /// the Pgpool-II of host `via`), after the standbys before it caught up
    /// and the last failover's PCP restart.
    async fn recover(&self, cx: &Cx<'_>, node: usize, via: usize) -> Result<(), StepError> {
        self.standbys_caught_up(cx).await;
        self.after_pcp_restart(cx, via).await;
        // The recovery runs the base backup and the remote start: its own
        // limit, not a probe's.
        let run = pcp_node(cx, via, "pcp_recovery_node", node)
            .deadline(Duration::from_secs(600))
            .check(cx.host(via))
            .await;
        // Its failback (or a failed recovery's) restarts the PCP process a
        // second later.
        self.note_failover(cx, via).await;
        run?;
        Ok(())
    }

    /// A failover or failback on host `via`'s Pgpool-II has just ended: its
    /// PCP process (still the old one: the restart comes a second later).
    async fn note_failover(&self, cx: &Cx<'_>, via: usize) {
        let at = Instant::now();
        let pcp = pcp_pid(cx, via).await;
        *self.last_failover.lock().unwrap_or_else(|e| e.into_inner()) = Some(Failover { at, pcp });
    }

    /// Waits until host `via`'s PCP process is no longer the one that ran
    /// when the last failover or failback ended, at most [`PCP_RESTART`]
    /// after it (a host that cannot tell is not waited for).
    async fn after_pcp_restart(&self, cx: &Cx<'_>, via: usize) {
        let last = self
            .last_failover
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let Some(Failover { at, pcp: Some(old) }) = last else {
            return;
        };
        while at.elapsed() < PCP_RESTART {
            match pcp_pid(cx, via).await {
                Some(now) if now == old => tokio::time::sleep(Duration::from_millis(100)).await,
                _ => return,
            }
        }
    }

    /// Waits (at most [`CATCH_UP`]) until every standby streaming from the
    /// primary has flushed the primary's WAL up to its position now. No
    /// slot or `wal_keep_size` holds WAL for a standby (the document sets
    /// none), and the next rebuild's `pg_basebackup -c fast` checkpoints:
    /// a standby that streamed but still read the previous segment lost it
    /// ("requested WAL segment … has already been removed", for ever; seen
    /// in CI with two labs on 2 cores). A standby that does not catch up in
    /// time is logged and the rebuild goes on, as before this wait.
    async fn standbys_caught_up(&self, cx: &Cx<'_>) {
        let Ok(primary) = current_primary(cx).await else {
            return;
        };
        let h = cx.host(primary);
        let l = Layout::of(cx.topology.hosts[primary].platform);
        let port = cx.topology.ports.postgres;
        let target = match h
            .run(&psql(l, port, "postgres", "SELECT pg_current_wal_lsn()"))
            .await
        {
            Ok(o) if o.success() => o.stdout_lossy().trim().to_string(),
            _ => return,
        };
        if target.is_empty() || !target.chars().all(|c| c.is_ascii_hexdigit() || c == '/') {
            return;
        }
        let sql = format!(
            "SELECT count(*) FROM pg_stat_replication \
             WHERE NOT (state = 'streaming' AND flush_lsn >= '{target}'::pg_lsn)"
        );
        let waited = wait_for(
            &format!(
                "every standby of `{}` to flush its WAL up to {target} before the next rebuild",
                cx.name(primary)
            ),
            CATCH_UP,
            || async {
                match h.run(&psql(l, port, "postgres", &sql)).await {
                    Ok(o) if o.success() && o.stdout_lossy().trim() == "0" => Poll::Ready(()),
                    Ok(o) => Poll::NotYet(format!("{} standby(s) behind", o.stdout_lossy().trim())),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await;
        if let Err(e) = waited {
            tracing::warn!(step = "recovery", "{e}");
        }
    }

    /// Every node of `nodes` stopped where its PostgreSQL runs (the
    /// package's own cluster on a fresh Debian host would be overwritten
    /// under its feet) and down in the Pgpool-II of host `via`, all before
    /// the first rebuild. Pgpool-II refuses to recover a node it still
    /// counts alive ("node id: 1 is alive"), as it does right after its
    /// start until the health check gives up; that health check's failover
    /// would then land in the middle of a recovery and orphan its worker
    /// ([`PCP_RESTART`]). The nodes do not run, so detaching them says what
    /// is true, at once.
    async fn prepare(&self, cx: &Cx<'_>, nodes: &[usize], via: usize) -> Result<(), StepError> {
        let port = cx.topology.ports.postgres;
        futures_util::future::try_join_all(nodes.iter().map(|&id| async move {
            let h = cx.host(id);
            let l = Layout::of(cx.topology.hosts[id].platform);
            if h.run(&l.pg_isready(port)).await?.success() {
                l.pg_stop().check(h).await?;
            }
            Ok::<_, StepError>(())
        }))
        .await?;
        let vh = cx.host(via);
        let pass = pcppass_path(Layout::of(cx.topology.hosts[via].platform));
        let pcp = cx.topology.ports.pcp;
        for &id in nodes {
            if probe::node_info(vh, pcp, &pass, id).await?.is_up()
                && let Err(e) = pcp_node(cx, via, "pcp_detach_node", id).check(vh).await
            {
                // The health check may have detached it in the meantime.
                if probe::node_info(vh, pcp, &pass, id).await?.is_up() {
                    return Err(e.into());
                }
            }
        }
        let names: Vec<&str> = nodes.iter().map(|&id| cx.name(id)).collect();
        wait_for(
            &format!(
                "Pgpool-II on `{}` to count `{}` down before their rebuild",
                cx.name(via),
                names.join("`, `")
            ),
            Duration::from_secs(60),
            || async {
                for &id in nodes {
                    match probe::node_info(vh, pcp, &pass, id).await {
                        Ok(n) if !n.is_up() => {}
                        Ok(n) => {
                            return Poll::NotYet(format!("`{}` is {}", cx.name(id), n.status_name));
                        }
                        Err(e) => return Poll::NotYet(e.to_string()),
                    }
                }
                Poll::Ready(())
            },
        )
        .await?;
        // A failover (ours, or the health check's just before) may have
        // ended a moment ago: the first recovery waits for its PCP restart.
        self.note_failover(cx, via).await;
        Ok(())
    }
}

#[async_trait]
impl Step for Recovery {
    type Action = RecoveryAction;

    fn name(&self) -> &'static str {
        "recovery"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<RecoveryAction>, StepError> {
        let primary = current_primary(cx).await?;
        let view = pgpool::observe(cx.topology, cx.hosts).await;
        // The recoveries run on the watchdog leader (the document's `-h
        // <VIP>`): a failback asked of another member is forwarded to the
        // leader ("will be handled by watchdog"), and the asking member's
        // recovery worker, never woken, waits out its 5 s for each node.
        let via = watchdog_leader(&view).unwrap_or(primary);
        // PostgreSQL's own answer decides, not Pgpool-II's status: right
        // after Pgpool-II starts, a node that does not run yet can still
        // show as up until its health check fails.
        let rebuild: Vec<usize> = (0..cx.hosts.len())
            .filter(|id| *id != primary && view.pg[*id] != pgpool::PgState::Standby)
            .collect();
        let mut plan = Plan::default();
        if !rebuild.is_empty() {
            let names: Vec<&str> = rebuild.iter().map(|&id| cx.name(id)).collect();
            plan.push(
                via,
                format!(
                    "take `{}` out of Pgpool-II for their rebuild (PostgreSQL stopped where it runs, detached through `{}`)",
                    names.join("`, `"),
                    cx.name(via)
                ),
                RecoveryAction::Prepare {
                    nodes: rebuild.clone(),
                    via,
                },
            );
        }
        for id in (0..cx.hosts.len()).filter(|id| *id != primary) {
            if rebuild.contains(&id) {
                plan.push(
                    id,
                    format!(
                        "rebuild node {id} by online recovery from the primary (through `{}`)",
                        cx.name(via)
                    ),
                    RecoveryAction::Recover { node: id, via },
                );
            } else if let pgpool::Decision::Attach { node, leader } = pgpool::decide(&view)
                && node == id
            {
                plan.push(
                    id,
                    format!(
                        "attach node {id} (a streaming standby the watchdog leader `{}` counts down)",
                        cx.name(leader)
                    ),
                    RecoveryAction::Attach { node, leader },
                );
            }
        }
        *self.planned_view.lock().unwrap_or_else(|e| e.into_inner()) =
            plan.items.is_empty().then_some(view);
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<RecoveryAction>) -> Result<(), StepError> {
        *self.planned_view.lock().unwrap_or_else(|e| e.into_inner()) = None;
        match &item.action {
            RecoveryAction::Attach { node, leader } => {
                pcp_node(cx, *leader, "pcp_attach_node", *node)
                    .check(cx.host(*leader))
                    .await?;
            }
            RecoveryAction::Prepare { nodes, via } => self.prepare(cx, nodes, *via).await?,
            RecoveryAction::Recover { node, via } => self.recover(cx, *node, *via).await?,
        }
        Ok(())
    }

    async fn verify_and_repair(&self, cx: &Cx<'_>) -> Result<Vec<Change>, StepError> {
        let deadline = Instant::now() + self.settle;
        let mut repairs = Vec::new();
        let mut repaired = |host: usize, summary: String| {
            tracing::warn!(step = "recovery", host = cx.name(host), "{summary}");
            repairs.push(Change {
                host: cx.name(host).to_string(),
                summary,
            });
        };
        let mut restarted: BTreeSet<usize> = BTreeSet::new();
        let mut bounced: BTreeSet<(usize, usize)> = BTreeSet::new();
        let mut last_attach: Option<Instant> = None;
        let mut seen: Option<String> = None;
        let mut stalls = pgpool::StallWatch::new(self.stall_grace);
        let mut rebuilt: BTreeSet<usize> = BTreeSet::new();
        let mut planned = self
            .planned_view
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        loop {
            let view = match planned.take() {
                Some(v) => v,
                None => pgpool::observe(cx.topology, cx.hosts).await,
            };
            let last = match pgpool::decide(&view) {
                pgpool::Decision::Healthy { leader, primary } => {
                    tracing::info!(
                        "pgpool: healthy: leader `{}`, primary `{}`, every member agrees",
                        cx.name(leader),
                        cx.name(primary)
                    );
                    return Ok(repairs);
                }
                pgpool::Decision::Error { reason } => {
                    return Err(StepError::State {
                        step: "recovery",
                        host: cx.name(0).to_string(),
                        message: reason,
                    });
                }
                pgpool::Decision::Wait { reason } => {
                    // What the verify waits for, once per change: where its
                    // time goes (`KE2LAB_LOG=debug`).
                    if seen.as_deref() != Some(reason.as_str()) {
                        tracing::debug!(step = "recovery", "pgpool: waiting: {reason}");
                        seen = Some(reason.clone());
                    }
                    // A standby that runs but has not streamed for the
                    // grace will not by itself (its WAL is gone from the
                    // primary, or its timeline forked): the plan only
                    // rebuilds nodes that do not run as standbys, so it is
                    // rebuilt here, once per verify.
                    let stalled = stalls.observe(&view, Instant::now());
                    if let Some(&node) = stalled.iter().find(|n| !rebuilt.contains(n))
                        && let Some(primary) =
                            view.pg.iter().position(|p| *p == pgpool::PgState::Primary)
                    {
                        let via = watchdog_leader(&view).unwrap_or(primary);
                        repaired(
                            node,
                            format!(
                                "`{}` has run as a standby for {}s without streaming from the primary `{}`: rebuild it by online recovery through `{}`",
                                cx.name(node),
                                self.stall_grace.as_secs(),
                                cx.name(primary),
                                cx.name(via)
                            ),
                        );
                        rebuilt.insert(node);
                        self.prepare(cx, &[node], via).await?;
                        self.recover(cx, node, via).await?;
                        stalls.forget(node);
                    }
                    reason
                }
                pgpool::Decision::Attach { node, leader } => {
                    if last_attach.is_none_or(|t| t.elapsed() >= ATTACH_EVERY) {
                        repaired(
                            node,
                            format!(
                                "attach streaming standby `{}` through the watchdog leader `{}`, which counted it down",
                                cx.name(node),
                                cx.name(leader)
                            ),
                        );
                        last_attach = Some(Instant::now());
                        if let Err(e) = pcp_node(cx, leader, "pcp_attach_node", node)
                            .check(cx.host(leader))
                            .await
                        {
                            tracing::warn!("pgpool: attach through `{}`: {e}", cx.name(leader));
                        }
                    }
                    format!("attach of `{}` sent to the leader", cx.name(node))
                }
                pgpool::Decision::Resync {
                    member,
                    leader,
                    node,
                    reason,
                } => {
                    if restarted.insert(member) {
                        // The member rejoins as STANDBY and copies the
                        // leader's backend status (the leader is never
                        // restarted: that would move the VIP).
                        repaired(
                            member,
                            format!(
                                "{reason}: restart Pgpool-II on `{}` so it resyncs from the leader `{}`",
                                cx.name(member),
                                cx.name(leader)
                            ),
                        );
                        let l = Layout::of(cx.topology.hosts[member].platform);
                        l.pgpool_restart()
                            .deadline(Duration::from_secs(60))
                            .check(cx.host(member))
                            .await?;
                    } else if node
                        != view
                            .pg
                            .iter()
                            .position(|p| *p == pgpool::PgState::Primary)
                            .unwrap_or(usize::MAX)
                        && bounced.insert((member, node))
                    {
                        // Still stale after its restart: two real changes
                        // through the leader, two broadcasts every member
                        // applies. Never for the primary (a detach of the
                        // primary is a failover).
                        repaired(
                            member,
                            format!(
                                "{reason} after its restart: detach and attach `{}` through the leader `{}`",
                                cx.name(node),
                                cx.name(leader)
                            ),
                        );
                        let lh = cx.host(leader);
                        pcp_node(cx, leader, "pcp_detach_node", node)
                            .check(lh)
                            .await?;
                        pcp_node(cx, leader, "pcp_attach_node", node)
                            .check(lh)
                            .await?;
                    }
                    reason
                }
            };
            if Instant::now() >= deadline {
                return Err(StepError::Wait(crate::wait::WaitError {
                    what: "the watchdog leader and every Pgpool-II member to agree on one primary and streaming standbys".into(),
                    timeout: self.settle,
                    last,
                }));
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}
