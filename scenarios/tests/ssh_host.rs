//! Cluster tier: `SshHost` against the lab hosts' real sshd, so the transport
//! used on real servers is exercised where it can be.

use anyhow::{Result, ensure};
use ke2lab::host::{Cmd, HostError};
use ke2lab::topology::Topology;
use ke2lab_harness::Lab;

async fn check(lab: &Lab) -> Result<()> {
    for (spec, h) in lab.topology.hosts.iter().zip(lab.ssh_hosts()) {
        let out = Cmd::new(["hostname"]).check(h.as_ref()).await?;
        ensure!(out.stdout_lossy().trim() == spec.name, "hostname over ssh");

        // Files: binary-safe round trip, mode and owner as asked, absent = None.
        let body: Vec<u8> = (0u8..=255).cycle().take(70_000).collect();
        h.write_file("/tmp/ke2lab-ssh/blob", &body, 0o640, "postgres")
            .await?;
        ensure!(
            h.read_file("/tmp/ke2lab-ssh/blob").await? == Some(body),
            "read back"
        );
        let stat = Cmd::new(["stat", "-c", "%a %U", "/tmp/ke2lab-ssh/blob"])
            .check(h.as_ref())
            .await?;
        ensure!(
            stat.stdout_lossy().trim() == "640 postgres",
            "mode/owner: {}",
            stat.stdout_lossy()
        );
        ensure!(
            h.read_file("/tmp/ke2lab-ssh/absent").await?.is_none(),
            "absent file"
        );

        // Another user, stdin, quoting of awkward arguments.
        let who = Cmd::new(["id", "-un"])
            .user("postgres")
            .check(h.as_ref())
            .await?;
        ensure!(who.stdout_lossy().trim() == "postgres", "runuser");
        let echo = Cmd::new(["cat"])
            .stdin("it's {{json .}} $HOME")
            .check(h.as_ref())
            .await?;
        ensure!(
            echo.stdout_lossy() == "it's {{json .}} $HOME",
            "stdin/quoting"
        );
        let odd = Cmd::new(["printf", "%s|", "a b", "it's", "$x"])
            .check(h.as_ref())
            .await?;
        ensure!(
            odd.stdout_lossy() == "a b|it's|$x|",
            "argv survives the remote shell"
        );

        // A failing command names host, command and stderr, with secrets redacted.
        let err = Cmd::sh("echo \"bad password $1\" >&2; exit 3")
            .secret_arg("hunter2")
            .check(h.as_ref())
            .await
            .unwrap_err();
        match &err {
            HostError::Failed { host, code, .. } => {
                ensure!(host == &spec.name && *code == 3, "{err}")
            }
            other => anyhow::bail!("expected a command failure, got {other}"),
        }
        let text = err.to_string();
        ensure!(
            !text.contains("hunter2") && text.contains("bad password ***"),
            "{text}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn ssh_host_runs_commands_and_files_on_lab_hosts() -> Result<()> {
    let topology = Topology::fixture("three-node")?.topology;
    ke2lab_scenarios::with_lab(&topology, async |lab| check(lab).await).await
}
