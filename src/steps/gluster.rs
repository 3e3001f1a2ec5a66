//! Step 4: the GlusterFS shared directory. [`Glusterd`] installs and starts
//! the server on every host; [`Gluster`] builds the trusted pool from the
//! first host, creates and starts the replicated volume, applies the lab's
//! ping-timeout (a visible deviation), and mounts the volume on every host
//! with its `/etc/fstab` line. The firewall part is
//! [`Firewall::for_gluster`](super::firewall::Firewall::for_gluster).

use std::time::Duration;

use async_trait::async_trait;

use super::{Cx, Plan, Planned, Step, StepError, each_host};
use crate::host::{Cmd, Host};
use crate::platform::Platform;
use crate::probe::gluster::{self as probe, GLUSTER_FSTYPE, PeerState, PoolSummary, VolumeState};
use crate::wait::{Poll, wait_for, wait_for_every};

/// The volume option the lab tunes (`shared_dir.ping_timeout`).
pub const PING_TIMEOUT: &str = "network.ping-timeout";

fn state_err(step: &'static str, cx: &Cx<'_>, i: usize, message: String) -> StepError {
    StepError::State {
        step,
        host: cx.name(i).to_string(),
        message,
    }
}

// ---------------------------------------------------------------------------
// glusterd
// ---------------------------------------------------------------------------

/// Whether glusterd is installed and running on one host.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlusterdState {
    pub installed: bool,
    pub running: bool,
}

/// Reads the state: the binary answers `--version`, and a process of that
/// name exists. The process check rather than `systemctl is-active` works
/// alike with systemd and on hosts without it (the lab's).
pub async fn glusterd_state(host: &dyn Host) -> Result<GlusterdState, StepError> {
    let version = host.run(&Cmd::new(["glusterd", "--version"])).await?;
    let running = host.run(&Cmd::new(["pgrep", "-x", "glusterd"])).await?;
    Ok(GlusterdState {
        installed: version.success(),
        running: running.success(),
    })
}

#[derive(Clone, Debug)]
pub enum DaemonAction {
    Install(Vec<Cmd>),
    Start(Cmd),
}

/// glusterd installed, enabled and running on every host.
pub struct Glusterd {
    /// How long verification waits for the daemons to appear.
    pub settle: Duration,
}

impl Default for Glusterd {
    fn default() -> Self {
        Glusterd {
            settle: Duration::from_secs(30),
        }
    }
}

#[async_trait]
impl Step for Glusterd {
    type Action = DaemonAction;

    fn name(&self) -> &'static str {
        "glusterd"
    }

    /// Installs packages and starts a daemon.
    fn host_wide(&self) -> bool {
        true
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<DaemonAction>, StepError> {
        let states = each_host(cx, |_, h| glusterd_state(h)).await?;
        let mut plan = Plan::default();
        for (i, st) in states.iter().enumerate() {
            let platform: Platform = cx.topology.hosts[i].platform;
            if !st.installed {
                plan.push(
                    i,
                    format!("install glusterfs-server ({platform})"),
                    DaemonAction::Install(platform.gluster_install()),
                );
            }
            if !st.running {
                plan.push(
                    i,
                    "enable and start glusterd",
                    DaemonAction::Start(platform.start_glusterd()),
                );
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<DaemonAction>) -> Result<(), StepError> {
        let host = cx.host(item.host);
        match &item.action {
            DaemonAction::Install(cmds) => {
                for c in cmds {
                    c.check(host).await?;
                }
            }
            DaemonAction::Start(c) => {
                c.check(host).await?;
            }
        }
        Ok(())
    }

    /// Waits until every glusterd answers its CLI: the daemon listens only
    /// after its initialisation, which may still run in the background.
    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let ask = Cmd::new(["gluster", "peer", "status", "--xml"]);
        each_host(cx, |i, h| {
            let ask = &ask;
            async move {
                wait_for(
                    &format!(
                        "glusterd to answer on `{}` (its log: /var/log/glusterfs/glusterd.log)",
                        cx.name(i)
                    ),
                    self.settle,
                    || async {
                        match ask.check(h).await {
                            Ok(_) => Poll::Ready(()),
                            Err(e) => Poll::NotYet(e.to_string()),
                        }
                    },
                )
                .await?;
                Ok(())
            }
        })
        .await?;
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Pool, volume, mounts
// ---------------------------------------------------------------------------

/// The `/etc/fstab` line of the procedure for the volume at `path`.
pub fn fstab_line(volume: &str, path: &str) -> String {
    format!("localhost:/{volume} {path} glusterfs _netdev,defaults 0 0")
}

/// What `/etc/fstab` must become so that it holds `line` exactly once:
/// `Ok(None)` when it already does, `Ok(Some(body))` otherwise. Lines are
/// compared field by field, so spacing does not matter. Another entry for
/// the same mount point is an operator's, which the step must not replace:
/// it is returned as the error.
pub fn fstab_with(current: &str, line: &str) -> Result<Option<String>, String> {
    let want: Vec<&str> = line.split_whitespace().collect();
    let is_entry = |l: &str| !l.trim().is_empty() && !l.trim_start().starts_with('#');
    let mut ours = 0;
    for l in current.lines().filter(|l| is_entry(l)) {
        let fields: Vec<&str> = l.split_whitespace().collect();
        if fields == want {
            ours += 1;
        } else if fields.get(1).map(|p| p.trim_end_matches('/'))
            == want.get(1).map(|p| p.trim_end_matches('/'))
        {
            return Err(l.trim().to_string());
        }
    }
    match ours {
        1 => Ok(None),
        0 => {
            let mut body = current.to_string();
            if !body.is_empty() && !body.ends_with('\n') {
                body.push('\n');
            }
            body.push_str(line);
            body.push('\n');
            Ok(Some(body))
        }
        _ => {
            // Keep the first copy where it stands and drop the others.
            let mut seen = false;
            let mut body = String::new();
            for l in current.lines() {
                if is_entry(l) && l.split_whitespace().collect::<Vec<_>>() == want {
                    if seen {
                        continue;
                    }
                    seen = true;
                }
                body.push_str(l);
                body.push('\n');
            }
            Ok(Some(body))
        }
    }
}

#[derive(Clone, Debug)]
pub enum Action {
    /// `gluster peer probe <name of host peer>` from the first host.
    Probe { peer: usize },
    /// Waits for the pool, then creates the replicated volume.
    Create,
    /// Starts the volume and waits for its bricks.
    Start,
    /// `gluster volume set <vol> <key> <value>`.
    Set { key: &'static str, value: String },
    /// Creates the mount point and mounts the volume from localhost.
    Mount,
    /// Unmount a dead FUSE mount and mount it again.
    Remount,
    /// Writes `/etc/fstab` with the procedure's line exactly once.
    Fstab { body: String },
    /// `gluster volume heal <vol>`: an index heal of the entries pending.
    Heal,
}

/// How long an entry must stay in `heal info` to count as pending: a file
/// written in the last second is listed too (AFR keeps its changelog
/// marked until the delayed post-op), and a re-provision right after
/// writes must not count a heal it does not need.
const PENDING_FOR: Duration = Duration::from_secs(3);

/// `heal info` of `volume`, asked again after [`PENDING_FOR`] when it lists
/// entries: the second answer is the one that counts.
async fn pending_heal(
    host: &dyn Host,
    volume: &str,
) -> Result<probe::HealInfo, crate::probe::ProbeError> {
    let first = probe::heal_info(host, volume).await?;
    if first.total_pending() == 0 {
        return Ok(first);
    }
    tokio::time::sleep(PENDING_FOR).await;
    probe::heal_info(host, volume).await
}

/// How long glusterd may refuse an index heal while the self-heal daemons
/// attach.
const HEAL_ACCEPTED: Duration = Duration::from_secs(60);

/// A mount point as the plan finds it.
enum MountState {
    Absent,
    Alive,
    /// Listed in the mount table but its client answers nothing.
    Dead(String),
}

/// Exit 0 when the mount point answers (bounded: a hung client must not
/// hang the plan).
pub fn mount_alive_cmd(path: &str) -> Cmd {
    Cmd::new(["timeout", "10", "stat", "-c", "%F"]).arg(path.to_string())
}

/// Makes the brick directory, parents included (before `volume create`).
pub fn brick_dir_cmd(brick: &str) -> Cmd {
    Cmd::new(["mkdir", "-p"]).arg(brick.to_string())
}

/// The trusted pool, the volume and its mounts.
pub struct Gluster {
    /// How long a wait for peers, bricks or glusterd may take.
    pub settle: Duration,
}

impl Default for Gluster {
    fn default() -> Self {
        Gluster {
            settle: Duration::from_secs(60),
        }
    }
}

impl Gluster {
    /// `host:brick` for every host, in topology order: replica sets follow
    /// the order bricks are given, and every host holds one copy.
    fn bricks(cx: &Cx<'_>) -> Vec<String> {
        let brick = &cx.topology.shared_dir.brick;
        cx.topology
            .hosts
            .iter()
            .map(|h| format!("{}:{brick}", h.name))
            .collect()
    }

    fn others<'a>(cx: &'a Cx<'_>) -> Vec<&'a str> {
        cx.topology.hosts[1..]
            .iter()
            .map(|h| h.name.as_str())
            .collect()
    }

    /// Waits until the first host sees every other host connected in its
    /// pool, and every other host sees as many peers, all connected.
    /// `volume create` is staged on every peer, and each refuses a brick
    /// of a host it is not connected to yet ("Staging failed on
    /// ke2-server2. Error: Host ke2-server3 not connected": the first
    /// host's probes make the others learn of each other a moment later;
    /// CI, chaos). The others are counted, not named: a peer may list the
    /// first host by the address it probed from.
    async fn wait_pool(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let n = cx.hosts.len();
        let others = Self::others(cx);
        wait_for(
            &format!("{n} gluster peers connected, as every host sees them"),
            self.settle,
            || async {
                let views = each_host(cx, |_, h| async move {
                    probe::pool_list(h).await.map_err(StepError::from)
                })
                .await;
                let views = match views {
                    Ok(v) => v,
                    Err(e) => return Poll::NotYet(e.to_string()),
                };
                for (i, peers) in views.iter().enumerate() {
                    let s = if i == 0 {
                        PoolSummary::of(peers, &others)
                    } else {
                        PoolSummary::of(peers, &[])
                    };
                    if !s.is_complete(n) {
                        return Poll::NotYet(format!("`{}`: {s}", cx.name(i)));
                    }
                }
                Poll::Ready(())
            },
        )
        .await?;
        Ok(())
    }

    /// Waits until every brick of the volume is online.
    async fn wait_bricks(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let n = cx.hosts.len();
        let volume = &cx.topology.shared_dir.volume;
        let first = cx.host(0);
        wait_for(
            &format!("{n} bricks of volume `{volume}` online"),
            self.settle,
            || async {
                match probe::volume_status(first, volume).await {
                    Ok(s) if s.online_bricks() == n => Poll::Ready(()),
                    Ok(s) => Poll::NotYet(s.to_string()),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
        Ok(())
    }
}

#[async_trait]
impl Step for Gluster {
    type Action = Action;

    fn name(&self) -> &'static str {
        "gluster"
    }

    async fn plan(&self, cx: &Cx<'_>) -> Result<Plan<Action>, StepError> {
        let spec = &cx.topology.shared_dir;
        let n = cx.hosts.len();
        let first = cx.host(0);
        let mut plan = Plan::default();

        let pool = probe::pool_list(first).await?;
        for i in 1..n {
            let name = cx.name(i);
            match pool.iter().find(|p| p.answers_to(name)) {
                None => plan.push(
                    0,
                    format!("probe gluster peer `{name}`"),
                    Action::Probe { peer: i },
                ),
                Some(p) if p.state == PeerState::Rejected => {
                    return Err(state_err(
                        "gluster",
                        cx,
                        0,
                        format!(
                            "gluster peer `{name}` is `Peer Rejected` (its volume configuration \
                             differs); resolve it by hand before re-running"
                        ),
                    ));
                }
                Some(_) => {}
            }
        }
        let strangers: Vec<String> = pool
            .iter()
            .filter(|p| !p.is_local() && !cx.topology.hosts.iter().any(|h| p.answers_to(&h.name)))
            .map(|p| format!("`{}`", p.hostname))
            .collect();
        if !strangers.is_empty() {
            plan.warnings.push(format!(
                "the gluster pool of `{}` also holds {}, which the topology does not list",
                cx.name(0),
                strangers.join(", ")
            ));
        }

        let bricks = Self::bricks(cx);
        let volume = probe::volume_info(first, &spec.volume).await?;
        match &volume {
            None => {
                plan.push(
                    0,
                    format!(
                        "create replica-{n} volume `{}` from {}",
                        spec.volume,
                        bricks.join(" ")
                    ),
                    Action::Create,
                );
                plan.push(0, format!("start volume `{}`", spec.volume), Action::Start);
            }
            Some(v) => {
                let have: Vec<String> = v.bricks.iter().map(|b| b.spec()).collect();
                let same = have.len() == bricks.len()
                    && have
                        .iter()
                        .zip(&bricks)
                        .all(|(a, b)| a.eq_ignore_ascii_case(b));
                if !same || v.replica_count as usize != n {
                    return Err(state_err(
                        "gluster",
                        cx,
                        0,
                        format!(
                            "volume `{}` exists with replica {} and bricks `{}`, but the topology \
                             asks for replica {n} and `{}`; remove or rename it first",
                            v.name,
                            v.replica_count,
                            have.join(" "),
                            bricks.join(" ")
                        ),
                    ));
                }
                if v.state != VolumeState::Started {
                    plan.push(0, format!("start volume `{}`", spec.volume), Action::Start);
                } else {
                    // Writes that missed a brick without its connection
                    // dropping (packet loss, a brick frozen for less than
                    // the ping timeout) leave entries that the self-heal
                    // daemon only finds on its periodic crawl
                    // (`cluster.heal-timeout`, 600 s): found by `ke2lab
                    // chaos`, a flaky host left the volume unhealthy through
                    // a re-provision. A reconnect triggers the heal by
                    // itself; this is the operator's `gluster volume heal`.
                    match pending_heal(first, &spec.volume).await {
                        Ok(h) if h.total_pending() > 0 => {
                            let on: Vec<String> = h
                                .bricks
                                .iter()
                                .filter(|b| b.pending.unwrap_or(0) > 0)
                                .map(|b| format!("{} on `{}`", b.pending.unwrap_or(0), b.host))
                                .collect();
                            plan.push(
                                0,
                                format!(
                                    "heal volume `{}` ({} entries pending: {})",
                                    spec.volume,
                                    h.total_pending(),
                                    on.join(", ")
                                ),
                                Action::Heal,
                            );
                        }
                        Ok(_) => {}
                        Err(e) => plan.warnings.push(format!(
                            "cannot read the heal info of volume `{}` on `{}`: {e}",
                            spec.volume,
                            cx.name(0)
                        )),
                    }
                }
            }
        }

        if let Some(t) = spec.ping_timeout {
            plan.warnings.push(format!(
                "lab deviation: volume `{}` has `{PING_TIMEOUT}` = {t}s (`shared_dir.ping_timeout`); \
                 the document keeps Gluster's default of 42s",
                spec.volume
            ));
            let have = volume.as_ref().and_then(|v| v.option(PING_TIMEOUT));
            if have != Some(t.to_string().as_str()) {
                plan.push(
                    0,
                    format!(
                        "set `{PING_TIMEOUT}` to {t} on volume `{}` (lab deviation)",
                        spec.volume
                    ),
                    Action::Set {
                        key: PING_TIMEOUT,
                        value: t.to_string(),
                    },
                );
            }
        }

        let source = format!("localhost:/{}", spec.volume);
        let line = fstab_line(&spec.volume, &spec.path);
        let hosts = each_host(cx, |i, h| {
            let (source, line) = (&source, &line);
            async move {
                let mounts = probe::mounts(h).await?;
                let mounted = match probe::mount_at(&mounts, &spec.path) {
                    None => MountState::Absent,
                    Some(m) if m.fstype == GLUSTER_FSTYPE && m.source == *source => {
                        // Listed is not enough: a FUSE mount whose client
                        // process is gone stays in the table and answers
                        // every access with "Transport endpoint is not
                        // connected".
                        let out = h.run(&mount_alive_cmd(&spec.path)).await?;
                        if out.success() {
                            MountState::Alive
                        } else {
                            MountState::Dead(out.stderr_lossy().trim().to_string())
                        }
                    }
                    Some(m) => {
                        return Err(state_err(
                            "gluster",
                            cx,
                            i,
                            format!(
                                "`{}` is already a mount of `{}` (type `{}`), not of `{source}`",
                                spec.path, m.source, m.fstype
                            ),
                        ));
                    }
                };
                let fstab = h.read_file("/etc/fstab").await?.unwrap_or_default();
                let fstab =
                    fstab_with(&String::from_utf8_lossy(&fstab), line).map_err(|other| {
                        state_err(
                            "gluster",
                            cx,
                            i,
                            format!(
                                "`/etc/fstab` already has another entry for `{}`: `{other}`",
                                spec.path
                            ),
                        )
                    })?;
                Ok((mounted, fstab))
            }
        })
        .await?;
        for (i, (mounted, fstab)) in hosts.into_iter().enumerate() {
            match mounted {
                MountState::Alive => {}
                MountState::Absent => plan.push(
                    i,
                    format!("mount `{source}` at `{}`", spec.path),
                    Action::Mount,
                ),
                MountState::Dead(why) => plan.push(
                    i,
                    format!(
                        "remount `{source}` at `{}` (its client is gone: {why})",
                        spec.path
                    ),
                    Action::Remount,
                ),
            }
            if let Some(body) = fstab {
                plan.push(
                    i,
                    format!("add `{line}` to `/etc/fstab`"),
                    Action::Fstab { body },
                );
            }
        }
        Ok(plan)
    }

    async fn apply(&self, cx: &Cx<'_>, item: &Planned<Action>) -> Result<(), StepError> {
        let spec = &cx.topology.shared_dir;
        let host = cx.host(item.host);
        match &item.action {
            Action::Probe { peer } => {
                Cmd::new(["gluster", "peer", "probe"])
                    .arg(cx.name(*peer))
                    .check(host)
                    .await?;
            }
            Action::Create => {
                self.wait_pool(cx).await?;
                // glusterd makes a missing brick directory with a plain
                // mkdir, so a brick whose parent is missing (`/data/brick`
                // on a host without `/data`) fails the create; every host
                // gets the whole path first, as Gluster's own guide does.
                each_host(cx, |_, h| async move {
                    brick_dir_cmd(&spec.brick).check(h).await?;
                    Ok(())
                })
                .await?;
                let n = cx.hosts.len();
                let create = Cmd::new(["gluster", "volume", "create"])
                    .arg(spec.volume.clone())
                    .arg("replica")
                    .arg(n.to_string());
                Self::bricks(cx)
                    .into_iter()
                    .fold(create, Cmd::arg)
                    // The document's `force`: the bricks sit on the root
                    // file system, which gluster refuses otherwise.
                    .arg("force")
                    .check(host)
                    .await?;
            }
            Action::Start => {
                Cmd::new(["gluster", "volume", "start"])
                    .arg(spec.volume.clone())
                    .check(host)
                    .await?;
                // Mounting before the bricks listen gives a client that
                // refuses writes until it reconnects.
                self.wait_bricks(cx).await?;
            }
            Action::Set { key, value } => {
                Cmd::new(["gluster", "volume", "set"])
                    .arg(spec.volume.clone())
                    .arg(*key)
                    .arg(value.clone())
                    .check(host)
                    .await?;
            }
            Action::Remount | Action::Mount => {
                let first = if matches!(item.action, Action::Remount) {
                    // Lazy: the dead mount may still be some process's cwd.
                    Cmd::new(["umount", "-l"])
                } else {
                    Cmd::new(["mkdir", "-p"])
                };
                first.arg(spec.path.clone()).check(host).await?;
                Cmd::new(["mount", "-t", "glusterfs"])
                    .arg(format!("localhost:/{}", spec.volume))
                    .arg(spec.path.clone())
                    .check(host)
                    .await?;
            }
            Action::Fstab { body } => {
                host.write_file("/etc/fstab", body.as_bytes(), 0o644, "root")
                    .await?;
            }
            Action::Heal => {
                // glusterd refuses the heal (`brick op 'Heal' failed`) until
                // every self-heal daemon is attached, which comes seconds
                // after a returning host's glusterd (the node-loss scenario
                // met it): the request is retried under a deadline.
                let heal = Cmd::new(["gluster", "volume", "heal"]).arg(spec.volume.clone());
                wait_for_every(
                    &format!("`gluster volume heal {}` to be accepted", spec.volume),
                    HEAL_ACCEPTED,
                    Duration::from_secs(2),
                    || async {
                        match host.run(&heal).await {
                            Ok(o) if o.success() => Poll::Ready(()),
                            Ok(o) => Poll::NotYet(o.stderr_lossy().trim().to_string()),
                            Err(e) => Poll::NotYet(e.to_string()),
                        }
                    },
                )
                .await
                .map_err(|e| state_err("gluster", cx, item.host, e.to_string()))?;
            }
        }
        Ok(())
    }

    async fn verify(&self, cx: &Cx<'_>) -> Result<(), StepError> {
        let spec = &cx.topology.shared_dir;
        let n = cx.hosts.len();
        self.wait_pool(cx).await?;
        match probe::volume_info(cx.host(0), &spec.volume).await? {
            Some(v) if v.state == VolumeState::Started && v.replica_count as usize == n => {}
            other => {
                return Err(state_err(
                    "gluster",
                    cx,
                    0,
                    format!(
                        "volume `{}` should be started with replica {n}, found {}",
                        spec.volume,
                        match other {
                            None => "no volume".to_string(),
                            Some(v) => format!("{:?} with replica {}", v.state, v.replica_count),
                        }
                    ),
                ));
            }
        }
        self.wait_bricks(cx).await?;
        let source = format!("localhost:/{}", spec.volume);
        each_host(cx, |i, h| {
            let source = &source;
            async move {
                let mounts = probe::mounts(h).await?;
                match probe::mount_at(&mounts, &spec.path) {
                    Some(m) if m.fstype == GLUSTER_FSTYPE && m.source == *source => Ok(()),
                    _ => Err(state_err(
                        "gluster",
                        cx,
                        i,
                        format!("`{source}` is not mounted at `{}`", spec.path),
                    )),
                }
            }
        })
        .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::{Output, Recorder, Rule};

    /// A brick under a directory the hosts lack (`/data`) is made on every
    /// host, parents included, before the volume is created from it.
    #[tokio::test]
    async fn create_makes_every_brick_directory_first() {
        let mut t = crate::topology::Topology::fixture("three-node")
            .unwrap()
            .topology;
        t.shared_dir.brick = "/data/brick-ke2".into();
        let rec = Recorder::new();
        rec.rule(Rule::any(
            "gluster pool list --xml",
            vec![Output::ok(include_str!(
                "../../tests/fixtures/gluster/pool_list_connected.xml"
            ))],
        ));
        let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
        let cx = Cx::new(&t, &hosts);
        let item = Planned {
            host: 0,
            summary: "create".into(),
            action: Action::Create,
        };
        Gluster::default().apply(&cx, &item).await.unwrap();
        let lines: Vec<String> = rec.transcript().lines().map(String::from).collect();
        let create = lines
            .iter()
            .position(|l| l.contains("gluster volume create gvol0 replica 3"))
            .expect("no volume create");
        for h in &t.hosts {
            let mkdir = format!("[{}] $ mkdir -p /data/brick-ke2", h.name);
            let at = lines.iter().position(|l| *l == mkdir);
            assert!(
                at.is_some_and(|at| at < create),
                "`{mkdir}` not before the create in:\n{}",
                lines.join("\n")
            );
        }
    }

    /// glusterd refuses an index heal until the self-heal daemons attach
    /// (a host just back): the heal is asked again until it is accepted.
    #[tokio::test]
    async fn a_refused_heal_is_asked_again() {
        let t = crate::topology::Topology::fixture("three-node")
            .unwrap()
            .topology;
        let rec = Recorder::new();
        rec.rule(Rule::on(
            "ke2-server1",
            "gluster volume heal gvol0",
            vec![
                Output::fail(1, "Glusterd Syncop Mgmt brick op 'Heal' failed"),
                Output::ok("Launching heal operation to perform index self heal on volume gvol0 has been successful"),
            ],
        ));
        let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
        let cx = Cx::new(&t, &hosts);
        let item = Planned {
            host: 0,
            summary: "heal".into(),
            action: Action::Heal,
        };
        Gluster::default().apply(&cx, &item).await.unwrap();
        let heals = rec
            .transcript()
            .lines()
            .filter(|l| l.ends_with("$ gluster volume heal gvol0"))
            .count();
        assert_eq!(heals, 2, "{}", rec.transcript());
    }

    const LINE: &str = "localhost:/gvol0 /mnt/gluster glusterfs _netdev,defaults 0 0";

    #[test]
    fn fstab_gets_the_line_once() {
        let base = "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n";
        let once = fstab_with(base, LINE).unwrap().unwrap();
        assert_eq!(once, format!("{base}{LINE}\n"));
        assert_eq!(fstab_with(&once, LINE).unwrap(), None);
        // No trailing newline, and an empty file.
        assert_eq!(
            fstab_with("/dev/sda1 / ext4 defaults 0 1", LINE)
                .unwrap()
                .unwrap(),
            format!("/dev/sda1 / ext4 defaults 0 1\n{LINE}\n")
        );
        assert_eq!(fstab_with("", LINE).unwrap().unwrap(), format!("{LINE}\n"));
    }

    #[test]
    fn fstab_spacing_does_not_matter_and_duplicates_are_dropped() {
        let spaced = "localhost:/gvol0\t/mnt/gluster  glusterfs _netdev,defaults 0 0\n";
        assert_eq!(fstab_with(spaced, LINE).unwrap(), None);
        let twice = format!("{LINE}\n# keep me\n{LINE}\n");
        assert_eq!(
            fstab_with(&twice, LINE).unwrap().unwrap(),
            format!("{LINE}\n# keep me\n")
        );
        // A commented-out copy is not an entry.
        let commented = format!("# {LINE}\n");
        assert_eq!(
            fstab_with(&commented, LINE).unwrap().unwrap(),
            format!("# {LINE}\n{LINE}\n")
        );
    }

    #[test]
    fn fstab_with_another_entry_for_the_mount_point_is_refused() {
        let nfs = "nas:/export /mnt/gluster nfs defaults 0 0\n";
        assert_eq!(
            fstab_with(nfs, LINE).unwrap_err(),
            "nas:/export /mnt/gluster nfs defaults 0 0"
        );
    }
}
