//! The GlusterFS shared directory (PROCEDURE.md step 4) and the
//! `SHARED_DIR` layout on the topology's hosts: pool, volume (replica as
//! many as hosts, the topology's bricks and ping-timeout), brick
//! processes, mounts and replication through the typed probes, the
//! Kompira directories and secret key on every host; a re-provision
//! changes nothing, and nothing labelled is left after the teardown.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use futures_util::future::LocalBoxFuture;
use ke2lab::host::Host;
use ke2lab::install::InstallReport;
use ke2lab::probe::gluster::{GLUSTER_FSTYPE, PoolSummary, VolumeState, VolumeType, mount_at};
use ke2lab::steps::shared_dir::secret_key;
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};

use super::common::random_bytes;
use super::{Options, Report, Session};
use crate::Lab;

/// The install steps that make up the Gluster phase.
const GLUSTER_STEPS: [&str; 3] = ["glusterd", "gluster-fw", "gluster"];

/// Prints the Gluster steps' measured times and returns their sum.
fn gluster_phase(label: &str, report: &InstallReport) -> Duration {
    let mut total = Duration::ZERO;
    for s in report
        .steps
        .iter()
        .filter(|s| GLUSTER_STEPS.contains(&s.step))
    {
        println!("  {label}: {s}");
        total += s.elapsed;
    }
    println!(
        "gluster phase ({label}): {:.2}s over {}",
        total.as_secs_f64(),
        GLUSTER_STEPS.join(" + ")
    );
    total
}

async fn shared_dir_works(lab: &mut Lab) -> Result<Report> {
    let first = lab.install().await?;
    println!("first install:\n{first}");
    ensure!(
        first.changes() > 0,
        "a fresh lab must need changes:\n{first}"
    );
    let first_phase = gluster_phase("first install", &first);
    let shared = first
        .steps
        .iter()
        .find(|s| s.step == "gluster")
        .context("the install has no gluster step")?;
    // The lab deviation is reported exactly when the topology asks for a
    // ping-timeout other than Gluster's default.
    let spec = lab.topology.shared_dir.clone();
    let deviation = shared.warnings.iter().any(|w| w.contains("lab deviation"));
    ensure!(
        deviation == spec.ping_timeout.is_some(),
        "`shared_dir.ping_timeout` {:?}, yet the ping-timeout deviation was {}reported: {:?}",
        spec.ping_timeout,
        if deviation { "" } else { "not " },
        shared.warnings
    );

    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let hosts = lab.hosts();
    let h1 = hosts[0].clone();

    // The pool from host 1: every host, itself as localhost, all connected.
    let count = names.len();
    let others: Vec<&str> = names[1..].iter().map(String::as_str).collect();
    let cluster = lab.cluster();
    let peers = cluster.gluster_peers_from(&names[0]).await?;
    let pool = PoolSummary::of(&peers, &others);
    println!("pool as `{}` sees it: {pool}", names[0]);
    for p in &peers {
        println!("  {} connected={} {:?}", p.hostname, p.connected, p.state);
    }
    ensure!(pool.is_complete(count), "pool incomplete: {pool}");
    ensure!(
        peers.iter().filter(|p| p.is_local()).count() == 1,
        "no localhost entry"
    );

    // The volume: started, replicate, one replica per host, the topology's
    // bricks.
    let volume = cluster
        .volume_from(&names[0])
        .await?
        .with_context(|| format!("volume `{}` does not exist", spec.volume))?;
    println!(
        "volume `{}`: {:?} {:?} replica {} bricks {:?}",
        volume.name,
        volume.state,
        volume.kind,
        volume.replica_count,
        volume.bricks.iter().map(|b| b.spec()).collect::<Vec<_>>()
    );
    ensure!(volume.state == VolumeState::Started);
    ensure!(volume.kind == VolumeType::Replicate);
    ensure!(
        volume.replica_count as usize == count && volume.bricks.len() == count,
        "replica {} with {} bricks, want {count} of each",
        volume.replica_count,
        volume.bricks.len()
    );
    for (b, name) in volume.bricks.iter().zip(&names) {
        ensure!(
            b.host == *name && b.path == spec.brick,
            "brick `{}` is not `{name}:{}`",
            b.spec(),
            spec.brick
        );
    }
    let want_timeout = spec.ping_timeout.map(|t| t.to_string());
    ensure!(
        volume.option(ke2lab::steps::gluster::PING_TIMEOUT) == want_timeout.as_deref(),
        "ping-timeout {:?}, want {want_timeout:?}",
        volume.option(ke2lab::steps::gluster::PING_TIMEOUT)
    );

    // Every brick online with a port and a process.
    let status = cluster.volume_status_from(&names[0]).await?;
    println!("volume status: {status}");
    ensure!(
        status.online_bricks() == count,
        "bricks not all online: {status}"
    );
    ensure!(
        status
            .bricks
            .iter()
            .all(|b| b.port.is_some() && b.pid.is_some())
    );

    // The FUSE mount on every host, read from the kernel's table.
    for h in &hosts {
        let mounts = cluster.mounts_on(h.name()).await?;
        let m = mount_at(&mounts, &spec.path)
            .with_context(|| format!("nothing mounted at `{}` on `{}`", spec.path, h.name()))?;
        ensure!(
            m.fstype == GLUSTER_FSTYPE && m.source == format!("localhost:/{}", spec.volume),
            "`{}` on `{}` is `{}` ({})",
            spec.path,
            h.name(),
            m.source,
            m.fstype
        );
    }

    // A MiB of random bytes written on host 1 reads back identical on every
    // other host.
    let body = random_bytes(1 << 20);
    let file = format!("{}/ke2lab-replication-check.bin", spec.path);
    h1.write_file(&file, &body, 0o644, "root").await?;
    for h in &hosts[1..] {
        let h: &dyn Host = h.as_ref();
        wait_for(
            &format!("`{file}` to read back identical on `{}`", h.name()),
            Duration::from_secs(60),
            || async {
                match h.read_file(&file).await {
                    Ok(Some(b)) if b == body => Poll::Ready(()),
                    Ok(Some(b)) => Poll::NotYet(format!("{} bytes, different", b.len())),
                    Ok(None) => Poll::NotYet("absent".into()),
                    Err(e) => Poll::NotYet(e.to_string()),
                }
            },
        )
        .await?;
    }
    println!(
        "1 MiB written on `{}` read back identical on the others",
        names[0]
    );
    ke2lab::host::Cmd::new(["rm", "-f"])
        .arg(file.clone())
        .check(h1.as_ref())
        .await?;

    // No heal pending once the file is everywhere.
    let heal = wait_for("no pending heal", Duration::from_secs(60), || async {
        match cluster.heal_info_from(&names[0]).await {
            Ok(h) if h.is_clean() => Poll::Ready(h),
            Ok(h) => Poll::NotYet(format!("{} pending", h.total_pending())),
            Err(e) => Poll::NotYet(e.to_string()),
        }
    })
    .await?;
    println!(
        "heal info: {} pending over {} bricks",
        heal.total_pending(),
        heal.bricks.len()
    );

    // The SHARED_DIR layout, seen from every host.
    for h in &hosts {
        for (_, dir) in lab.topology.kompira_dirs() {
            let out = h
                .run(&ke2lab::host::Cmd::new(["test", "-d"]).arg(dir.clone()))
                .await?;
            ensure!(
                out.success(),
                "`{dir}` is not a directory on `{}`",
                h.name()
            );
        }
        let key = secret_key(&lab.topology);
        let out = h
            .run(&ke2lab::host::Cmd::new(["test", "-f"]).arg(key.clone()))
            .await?;
        ensure!(out.success(), "`{key}` does not exist on `{}`", h.name());
    }

    let second = lab.install().await?;
    println!("second install:\n{second}");
    let second_phase = gluster_phase("re-provision", &second);
    ensure!(
        second.changes() == 0,
        "re-provisioning changed things:\n{second}"
    );
    let mut r = Report::new("");
    r.secs("gluster_phase_first_s", first_phase)
        .secs("gluster_phase_reprovision_s", second_phase)
        .count("peers", peers.len())
        .count("replica", volume.replica_count as usize)
        .count("bricks_online", status.online_bricks())
        .count("heal_pending", heal.total_pending() as usize)
        .count("reprovision_changes", second.changes());
    Ok(r)
}

/// The lab for `t`, then, once it is removed, no labelled resource of its
/// run left (with `--keep` the lab stays and nothing is checked).
pub fn body<'a>(s: &'a Session, t: Topology, _: &'a Options) -> LocalBoxFuture<'a, Result<Report>> {
    Box::pin(async move {
        let r = s
            .with_lab(&t, async |lab| shared_dir_works(lab).await)
            .await?;
        s.ensure_nothing_left().await?;
        Ok(r)
    })
}
