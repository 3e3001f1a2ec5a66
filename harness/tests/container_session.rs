//! Cluster tier: the container transport's command sessions behave like
//! one exec per command at the `Host` interface: exact bytes both ways,
//! stdout and stderr apart, the exit status, the user, many commands at
//! once, a deadline that ends only its own command, and a host whose
//! container restarted (its sessions ended) answers again.

use std::time::Duration;

use anyhow::{Result, ensure};
use ke2lab::host::{Cmd, HostError};
use ke2lab::topology::Topology;
use ke2lab_harness::lab::Lab;

#[tokio::test]
async fn sessions_answer_like_an_exec() -> Result<()> {
    let topology =
        Topology::from_toml_str(include_str!("../../fixtures/topologies/three-node.toml"))?;
    let lab = Lab::boot(&topology, false).await?;
    let outcome = async {
        let hosts = lab.hosts();
        let h = hosts[0].as_ref();

        // Every byte value through stdin and back, twice in a row (the
        // second on the same session).
        let all: Vec<u8> = (0..=255u8).cycle().take(70_000).collect();
        for _ in 0..2 {
            let out = h.run(&Cmd::new(["cat"]).stdin(all.clone())).await?;
            ensure!(out.success() && out.stdout == all, "cat changed the bytes");
        }

        let out = h
            .run(&Cmd::sh("printf 'a\\0b'; echo err >&2; exit 7"))
            .await?;
        ensure!(out.status == 7, "status {}", out.status);
        ensure!(out.stdout == b"a\0b", "stdout {:?}", out.stdout);
        ensure!(out.stderr == b"err\n", "stderr {:?}", out.stderr);

        // Another user's command: its uid, primary group, supplementary
        // groups and login variables as `runuser -u` gives them, its
        // input, and no input read as an empty one.
        let want_groups = h.run(&Cmd::new(["id", "-G", "postgres"])).await?;
        ensure!(want_groups.success(), "id -G postgres failed");
        let out = h
            .run(
                &Cmd::sh("echo \"$(id -un) $(id -gn) $HOME $USER $LOGNAME\"; id -G; cat")
                    .user("postgres")
                    .stdin(b"input".to_vec()),
            )
            .await?;
        let want = format!(
            "postgres postgres /var/lib/postgresql postgres postgres\n{}input",
            want_groups.stdout_lossy()
        );
        ensure!(
            out.success() && out.stdout_lossy() == want,
            "user {:?}",
            out.stdout_lossy()
        );
        let out = h.run(&Cmd::new(["cat"]).user("postgres")).await?;
        ensure!(
            out.success() && out.stdout.is_empty(),
            "no input {:?}",
            out.stdout_lossy()
        );
        // The session's own locale setting is not the commands'.
        let out = h.run(&Cmd::sh("echo \"${LC_ALL-unset} $LANG\"")).await?;
        ensure!(
            out.stdout_lossy().trim() == "unset C.UTF-8",
            "env {:?}",
            out.stdout_lossy()
        );

        // Many at once, each its own answer.
        let cmds: Vec<Cmd> = (0..12)
            .map(|i| Cmd::sh(format!("sleep 0.3; echo {i}")))
            .collect();
        let runs = cmds.iter().map(|c| h.run(c));
        for (i, out) in futures_util::future::join_all(runs)
            .await
            .into_iter()
            .enumerate()
        {
            ensure!(
                out?.stdout_lossy().trim() == i.to_string(),
                "answer {i} mixed up"
            );
        }

        // A deadline ends its command; the next one is answered.
        let slow = h
            .run(&Cmd::new(["sleep", "30"]).deadline(Duration::from_secs(2)))
            .await;
        ensure!(
            matches!(slow, Err(HostError::Deadline { .. })),
            "no deadline error: {slow:?}"
        );
        ensure!(
            h.run(&Cmd::new(["true"])).await?.success(),
            "nothing after the deadline"
        );

        // The container restarts: its idle sessions ended with it.
        let c = lab.container_hosts()[0].container().to_string();
        let st = tokio::process::Command::new("docker")
            .args(["restart", "-t", "1", &c])
            .status()
            .await?;
        ensure!(st.success(), "docker restart `{c}` failed");
        let out = h.run(&Cmd::new(["echo", "back"])).await?;
        ensure!(
            out.stdout_lossy().trim() == "back",
            "after restart {:?}",
            out.stdout_lossy()
        );
        Ok(())
    }
    .await;
    let down = lab.teardown().await;
    outcome.and(down)
}
