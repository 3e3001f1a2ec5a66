//! Cluster tier: a `ke2lab up` killed with SIGKILL mid-boot leaves labelled
//! resources behind; `ke2lab down --all` must reap every one of them.

use std::process::Stdio;
use std::time::Duration;

use anyhow::{Result, ensure};
use ke2lab::wait::{Poll, wait_for};
use ke2lab_harness::lab::{self, leftovers};

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

#[tokio::test]
async fn down_all_reaps_a_run_killed_with_sigkill() -> Result<()> {
    let docker = lab::connect().await?;
    let before = leftovers(&docker, None).await?;
    ensure!(
        before.is_empty(),
        "labelled resources exist before the test: {before:?}"
    );

    let mut up = tokio::process::Command::new(BIN)
        .args(["up", "--no-install"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    // Kill it once it has made a network, volumes and containers (the image
    // may need building first on a fresh machine, hence the long timeout).
    let seen = wait_for(
        "the killed run to have created containers, a network and volumes",
        Duration::from_secs(900),
        || async {
            match leftovers(&docker, None).await {
                Ok(l)
                    if l.containers.len() >= 3
                        && !l.networks.is_empty()
                        && l.volumes.len() >= 3 =>
                {
                    Poll::Ready(l)
                }
                Ok(l) => Poll::NotYet(format!("{l:?}")),
                Err(e) => Poll::NotYet(e.to_string()),
            }
        },
    )
    .await?;
    up.start_kill()?; // SIGKILL
    up.wait().await?;
    println!("left by the killed run: {seen:?}");

    let out = tokio::process::Command::new(BIN)
        .args(["down", "--all"])
        .output()
        .await?;
    ensure!(
        out.status.success(),
        "down --all failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    print!("{}", String::from_utf8_lossy(&out.stdout));
    let after = leftovers(&docker, None).await?;
    ensure!(
        after.is_empty(),
        "labelled resources left after down --all: {after:?}"
    );
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
