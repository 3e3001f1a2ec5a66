//! Cluster tier: the fault vocabulary itself, on bare lab hosts (no install):
//! each verb has the effect it claims on the hosts' real network and
//! processes, its pair undoes it, and a failing scenario's teardown undoes
//! whatever is still in force and logs it with times in `events.log`.

use std::net::Ipv4Addr;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use ke2lab::host::{Cmd, Host};
use ke2lab::wait::{Poll, wait_for};
use ke2lab_harness::Lab;
use ke2lab_harness::faults::{Fault, Faults, Service};
use ke2lab_harness::lab::{home, keep_on_failure, leftovers};

/// sshd's port: every lab host listens on it, so it stands for "a peer's
/// service answers".
const SSH: u16 = 22;

fn addr(lab: &Lab, host: &str) -> Result<Ipv4Addr> {
    Ok(lab
        .topology
        .host(host)
        .ok_or_else(|| anyhow!("no host `{host}`"))?
        .address)
}

/// Which ordered pairs of hosts can open a TCP connection to each other.
async fn reachability(lab: &Lab) -> Result<Vec<(String, String, bool)>> {
    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let mut out = Vec::new();
    for from in &names {
        for to in names.iter().filter(|n| *n != from) {
            let ok = lab
                .cluster()
                .tcp_connects_from(from, addr(lab, to)?, SSH, 3)
                .await?;
            out.push((from.clone(), to.clone(), ok));
        }
    }
    Ok(out)
}

/// The harness's nftables tables on a host (`nft -j list tables`; the
/// nested engine's own `ip nat`/`ip filter` tables are not ours).
async fn nft_tables(h: &dyn Host) -> Result<Vec<String>> {
    let out = Cmd::new(["nft", "-j", "list", "tables"]).check(h).await?;
    let v: serde_json::Value = serde_json::from_str(&out.stdout_lossy())?;
    Ok(v["nftables"]
        .as_array()
        .context("`nft -j` without `nftables`")?
        .iter()
        .filter_map(|e| e["table"]["name"].as_str().map(str::to_string))
        .filter(|t| t.starts_with("ke2lab"))
        .collect())
}

/// Whether the host's sshd completes a command over SSH in time: a frozen
/// host accepts the TCP handshake (the kernel does it) but never greets.
async fn ssh_answers(lab: &Lab, host: &str) -> bool {
    let i = lab
        .topology
        .hosts
        .iter()
        .position(|h| h.name == host)
        .unwrap();
    let h = lab.ssh_hosts().swap_remove(i);
    matches!(
        tokio::time::timeout(Duration::from_secs(20), h.run(&Cmd::new(["true"]))).await,
        Ok(Ok(o)) if o.success()
    )
}

async fn all_reach(lab: &Lab, what: &str) -> Result<()> {
    wait_for(what, Duration::from_secs(30), || async {
        match reachability(lab).await {
            Ok(r) if r.iter().all(|(_, _, ok)| *ok) => Poll::Ready(()),
            Ok(r) => Poll::NotYet(format!("{r:?}")),
            Err(e) => Poll::NotYet(e.to_string()),
        }
    })
    .await?;
    Ok(())
}

async fn verbs(lab: &Lab) -> Result<()> {
    let n: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let (a, b, c) = (n[0].as_str(), n[1].as_str(), n[2].as_str());
    all_reach(lab, "every host reaching every other before any fault").await?;
    let mut f = Faults::new(lab);

    // partition / repair: `a` alone against `b` and `c`.
    f.partition(&[a], &[b, c]).await?;
    let r = reachability(lab).await?;
    for (from, to, ok) in &r {
        let cut = (from == a) != (to == a);
        ensure!(
            *ok != cut,
            "partition [{a}] | [{b}, {c}]: `{from}` → `{to}` reachable = {ok}: {r:?}"
        );
    }
    ensure!(
        f.active() == vec![Fault::Partition(vec![a.into()], vec![b.into(), c.into()])],
        "active faults: {:?}",
        f.active()
    );
    f.repair().await?;
    all_reach(lab, "every host reaching every other after repair").await?;
    for h in lab.hosts() {
        let t = nft_tables(h.as_ref()).await?;
        ensure!(
            t.is_empty(),
            "`{}` keeps nft tables after repair: {t:?}",
            h.name()
        );
    }

    // pause / unpause: the host hangs; exec and ssh get no answer. The
    // command's own deadline bounds the wait: without one it would wait
    // the default 900 s for a host that never answers.
    f.pause(c).await?;
    ensure!(
        lab.host(c)?
            .run(&Cmd::new(["true"]).deadline(Duration::from_secs(5)))
            .await
            .is_err(),
        "a command ran on the paused host `{c}`"
    );
    ensure!(
        !ssh_answers(lab, c).await,
        "`{c}` answered ssh while paused"
    );
    f.unpause(c).await?;
    ensure!(
        ssh_answers(lab, c).await,
        "`{c}` does not answer ssh after unpause"
    );

    // kill_service / start_service: the nested engine dies and comes back.
    let hb = lab.host(b)?;
    let engine = Cmd::new(["docker", "version", "--format", "{{json .Server.Version}}"]);
    f.kill_service(b, Service::Dockerd).await?;
    wait_for(
        "the killed engine to stop answering",
        Duration::from_secs(30),
        || async {
            match hb.run(&engine).await {
                Ok(o) if !o.success() => Poll::Ready(()),
                Ok(_) => Poll::NotYet("still answers".into()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    f.start_service(b, Service::Dockerd).await?;
    wait_for(
        "the restarted engine to answer",
        Duration::from_secs(60),
        || async {
            match hb.run(&engine).await {
                Ok(o) if o.success() => Poll::Ready(()),
                Ok(o) => Poll::NotYet(o.stderr_lossy()),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;

    // undo_all: several faults at once, all mended.
    // (the vmxnet3 model first: it is injected on every host, and a paused
    // one runs no command.)
    f.drop_vxlan_tcp(4789).await?;
    f.partition(&[a], &[b]).await?;
    f.pause(c).await?;
    ensure!(f.active().len() == 3, "active faults: {:?}", f.active());
    f.undo_all().await?;
    ensure!(f.active().is_empty(), "left in force: {:?}", f.active());
    all_reach(lab, "every host reaching every other after undo_all").await?;
    ensure!(
        ssh_answers(lab, c).await,
        "`{c}` does not answer after undo_all"
    );
    for h in lab.hosts() {
        let t = nft_tables(h.as_ref()).await?;
        ensure!(
            t.is_empty(),
            "`{}` keeps nft tables after undo_all: {t:?}",
            h.name()
        );
    }
    Ok(())
}

#[tokio::test]
async fn fault_verbs_in_pairs_and_teardown_undoes_what_a_failure_left() -> Result<()> {
    let topology = ke2lab_scenarios::fault_topology()?;
    let lab = Lab::boot(&topology, keep_on_failure()).await?;
    let outcome = verbs(&lab).await;
    if outcome.is_err() {
        return lab.finish(outcome).await;
    }

    // A scenario fails with faults in force: teardown undoes them after
    // collecting the evidence, and the event log has both, with times.
    let names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    let mut f = Faults::new(&lab);
    f.partition(&[&names[0]], &[&names[1]]).await?;
    f.pause(&names[2]).await?;
    let run = lab.run.clone();
    let docker = lab.docker().clone();
    let failed = lab
        .finish_with::<()>(
            Err(anyhow!("deliberate failure with faults in force")),
            false,
        )
        .await;
    let e = failed
        .err()
        .context("finish turned a failure into success")?;
    ensure!(
        format!("{e:#}") == "deliberate failure with faults in force",
        "finish replaced the failure: {e:#}"
    );
    let left = leftovers(&docker, Some(&run)).await?;
    ensure!(left.is_empty(), "run `{run}` left {left:?}");

    // The evidence set of every host is there.
    let dir = home().join("artifacts").join(&run);
    ensure!(
        dir.join("show-pool-nodes-via-vip.txt").is_file(),
        "no `show pool_nodes` through the VIP in {}",
        dir.display()
    );
    // The cluster's own account: the snapshot, and its verdict naming the
    // faults still in force when the evidence was taken.
    let snapshot: ke2lab::cluster::Snapshot =
        serde_json::from_str(&std::fs::read_to_string(dir.join("snapshot.json"))?)
            .context("`snapshot.json` is not a snapshot")?;
    ensure!(
        snapshot.hosts.len() == names.len(),
        "snapshot of {} hosts",
        snapshot.hosts.len()
    );
    ensure!(
        dir.join("verdict.txt").is_file(),
        "no `verdict.txt` in {}",
        dir.display()
    );
    for n in &names {
        for f in [
            "docker-node-ls.json",
            "gluster-volume-status.xml",
            "ip-addr.json",
            "show-pool-nodes.txt",
            "pcp-watchdog-info.txt",
        ] {
            ensure!(dir.join(n).join(f).is_file(), "no `{f}` for `{n}`");
        }
    }
    let log = std::fs::read_to_string(dir.join("events.log"))?;
    let whats: Vec<&str> = log
        .lines()
        .map(|l| {
            let mut p = l.splitn(3, ' ');
            let wall = p.next().unwrap_or_default();
            assert!(
                humantime::parse_rfc3339(wall).is_ok(),
                "event without a time: {l}"
            );
            p.nth(1).unwrap_or_default()
        })
        .collect();
    let pos = |prefix: &str| {
        whats
            .iter()
            .rposition(|w| w.starts_with(prefix))
            .ok_or_else(|| anyhow!("no `{prefix}` event in {whats:#?}"))
    };
    let failure = pos("failure: deliberate")?;
    ensure!(pos("fault: pause host")? < failure, "fault after failure");
    ensure!(
        pos("repair: unpause host")? > failure,
        "no unpause at teardown"
    );
    ensure!(
        pos("repair: repair the partition")? > failure,
        "no repair at teardown"
    );
    Ok(())
}
