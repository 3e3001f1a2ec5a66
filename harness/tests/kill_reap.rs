//! Cluster tier: a `ke2lab up` killed with SIGKILL mid-boot leaves labelled
//! resources behind; `ke2lab down --stale` must reap every one of them and
//! leave a live lab (owned by this test process) alone. With two labs,
//! commands without `--run` refuse and list them; `down --all` without a
//! terminal refuses unless `--yes`.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Result, ensure};
use ke2lab::topology::Topology;
use ke2lab::wait::{Poll, wait_for};
use ke2lab_harness::Lab;
use ke2lab_harness::lab::{self, leftovers};
use ke2lab_harness::owner::Liveness;

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

async fn ke2lab(args: &[&str]) -> Result<std::process::Output> {
    Ok(tokio::process::Command::new(BIN)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .await?)
}

#[tokio::test]
async fn down_stale_reaps_a_killed_run_and_leaves_a_live_one() -> Result<()> {
    let docker = lab::connect().await?;
    let topology = Topology::fixture("three-node")?.topology;
    let live = Lab::boot(&topology, false).await?;
    let outcome = check(&docker, &live).await;
    live.teardown().await?;
    outcome
}

async fn check(docker: &bollard::Docker, live: &Lab) -> Result<()> {
    let mut up = tokio::process::Command::new(BIN)
        .args(["up", "--no-install"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    // Kill it once it has made a network, volumes and containers (the image
    // may need building first on a fresh machine, hence the long timeout).
    let killed = wait_for(
        "the killed run to have created containers, a network and volumes",
        Duration::from_secs(900),
        || async {
            let labs = match lab::labs(docker).await {
                Ok(l) => l,
                Err(e) => return Poll::NotYet(e.to_string()),
            };
            let Some(other) = labs.iter().find(|l| l.run != live.run) else {
                return Poll::NotYet("no second lab yet".into());
            };
            match leftovers(docker, Some(&other.run)).await {
                Ok(l)
                    if l.containers.len() >= 3
                        && !l.networks.is_empty()
                        && l.volumes.len() >= 3 =>
                {
                    Poll::Ready(other.run.clone())
                }
                Ok(l) => Poll::NotYet(format!("{l:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    up.start_kill()?; // SIGKILL
    up.wait().await?;

    let labs = lab::labs(docker).await?;
    let state = |run: &str| labs.iter().find(|l| l.run == run).map(|l| l.liveness);
    ensure!(
        state(&live.run) == Some(Liveness::Live) && state(&killed) == Some(Liveness::Stale),
        "liveness: {labs:?}"
    );

    // Two labs: no command guesses which one is meant.
    let out = ke2lab(&["exec", "ke2-server1", "--", "true"]).await?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2) && err.contains(&live.run) && err.contains(&killed),
        "exec without --run beside two labs: {:?} {err}",
        out.status
    );
    // `--all` on no terminal asks for `--yes` and removes nothing.
    let out = ke2lab(&["down", "--all"]).await?;
    ensure!(
        out.status.code() == Some(2) && String::from_utf8_lossy(&out.stderr).contains("--yes"),
        "down --all without --yes: {:?} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        leftovers(docker, Some(&killed)).await?.containers.len() >= 3,
        "down --all without --yes removed something"
    );

    let out = ke2lab(&["down", "--stale"]).await?;
    ensure!(
        out.status.success(),
        "down --stale failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let after = leftovers(docker, Some(&killed)).await?;
    ensure!(
        after.is_empty(),
        "resources of the killed run left after down --stale: {after:?}"
    );
    let kept = leftovers(docker, Some(&live.run)).await?;
    ensure!(
        kept.containers.len() == 3 && kept.networks.len() == 1 && kept.volumes.len() == 3,
        "down --stale touched the live lab: {kept:?}"
    );
    Ok(())
}

/// Ctrl-C during `up` stops it, removes the lab it was creating and exits
/// 130.
#[tokio::test]
async fn sigint_during_up_removes_its_lab_and_exits_130() -> Result<()> {
    let docker = lab::connect().await?;
    let before: Vec<String> = lab::labs(&docker)
        .await?
        .into_iter()
        .map(|l| l.run)
        .collect();
    // Its stderr goes to a file: a pipe nobody reads yet could fill and
    // block it.
    let log = tempfile::NamedTempFile::new()?;
    let mut up = tokio::process::Command::new(BIN)
        .args(["up", "--no-install"])
        .stdout(Stdio::null())
        .stderr(log.reopen()?)
        .kill_on_drop(true)
        .spawn()?;
    let run = wait_for(
        "the interrupted run to have created its containers",
        Duration::from_secs(900),
        || async {
            let labs = match lab::labs(&docker).await {
                Ok(l) => l,
                Err(e) => return Poll::NotYet(e.to_string()),
            };
            match labs.iter().find(|l| !before.contains(&l.run)) {
                Some(l) if l.containers >= 3 => Poll::Ready(l.run.clone()),
                other => Poll::NotYet(format!("{other:?}")),
            }
        },
    )
    .await?;
    let pid = up.id().expect("running").to_string();
    std::process::Command::new("kill")
        .args(["-INT", &pid])
        .status()?;
    let status = tokio::time::timeout(Duration::from_secs(180), up.wait()).await??;
    let err = std::fs::read_to_string(log.path())?;
    ensure!(status.code() == Some(130), "exit {status:?}: {err}");
    ensure!(err.contains(&format!("removing run `{run}`")), "{err}");
    let left = leftovers(&docker, Some(&run)).await?;
    ensure!(left.is_empty(), "the interrupted run left {left:?}");
    Ok(())
}

/// Runs `ke2lab` with `args`; it must exit 2 with `needle` in its stderr
/// and leave every labelled resource as it was.
async fn refused(docker: &bollard::Docker, args: &[&std::ffi::OsStr], needle: &str) -> Result<()> {
    let before = leftovers(docker, None).await?;
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .output()
        .await?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    ensure!(
        out.status.code() == Some(2),
        "exit {:?}: {stderr}",
        out.status.code()
    );
    ensure!(stderr.contains(needle), "{stderr}");
    ensure!(
        leftovers(docker, None).await? == before,
        "a host was touched"
    );
    Ok(())
}

#[tokio::test]
async fn bad_topology_exits_2_naming_the_field_and_touches_nothing() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        include_str!("../../fixtures/topologies/three-node.toml")
            .replace("10.20.0.100", "10.99.0.100"),
    )?;
    let docker = lab::connect().await?;
    refused(
        &docker,
        &["up".as_ref(), "--topology".as_ref(), path.as_os_str()],
        "`network.vip`",
    )
    .await?;
    // A directory that is no ke2-docker checkout: the same, before any
    // image or host work.
    refused(
        &docker,
        &["up".as_ref(), "--stack".as_ref(), dir.path().as_os_str()],
        &format!(
            "cannot read the ke2-docker checkout at `{}`",
            dir.path().display()
        ),
    )
    .await
}
