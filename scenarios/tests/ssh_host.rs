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

/// The control sockets in `dir`.
fn sockets(dir: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    use std::os::unix::fs::FileTypeExt;
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries {
            let e = e?;
            if e.file_type()?.is_socket() {
                out.push(e.path());
            }
        }
    }
    Ok(out)
}

/// One master connection per host: after commands to every host the
/// lab's control directory (0700) holds one socket per host, which later
/// commands reuse; `close` ends every master and commands still work
/// after it (a new master). Prints what 20 sequential commands cost with and
/// without it.
async fn multiplexed(lab: &Lab) -> Result<()> {
    let dir = lab.state_dir.join("mux");
    let hosts = lab.ssh_hosts();
    for h in &hosts {
        Cmd::new(["true"]).check(h.as_ref()).await?;
    }
    let socks = sockets(&dir)?;
    ensure!(
        socks.len() == hosts.len(),
        "{} control socket(s) in `{}` for {} hosts",
        socks.len(),
        dir.display(),
        hosts.len()
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&dir)?.permissions().mode() & 0o777;
        ensure!(mode == 0o700, "`{}` has mode {mode:o}", dir.display());
    }
    let time = |hs: Vec<std::sync::Arc<dyn ke2lab::host::Host>>| async move {
        let t = std::time::Instant::now();
        for _ in 0..20 {
            Cmd::new(["true"]).check(hs[0].as_ref()).await?;
        }
        Ok::<_, anyhow::Error>(t.elapsed())
    };
    let with = time(hosts.clone()).await?;
    for h in &hosts {
        h.close().await?;
    }
    ensure!(
        sockets(&dir)?.is_empty(),
        "control sockets left after close: {:?}",
        sockets(&dir)?
    );
    let single = ke2lab::host::SshHost::new({
        let spec = &lab.topology.hosts[0];
        let mut c = ke2lab::host::SshConfig::new(spec.name.clone(), spec.address.to_string());
        c.identity = Some(lab.state_dir.join("id_ed25519"));
        c.known_hosts = Some(lab.state_dir.join("known_hosts"));
        c
    });
    let without = time(vec![std::sync::Arc::new(single)]).await?;
    println!(
        "20 sequential commands over ssh: {:.2}s multiplexed, {:.2}s with a connection each",
        with.as_secs_f64(),
        without.as_secs_f64()
    );
    // After close a command opens a new master.
    Cmd::new(["true"]).check(hosts[0].as_ref()).await?;
    ensure!(sockets(&dir)?.len() == 1, "no new master after close");
    hosts[0].close().await?;
    Ok(())
}

#[tokio::test]
async fn ssh_host_runs_commands_and_files_on_lab_hosts() -> Result<()> {
    let topology = Topology::fixture("three-node")?.topology;
    ke2lab_scenarios::with_lab(&topology, async |lab| {
        check(lab).await?;
        multiplexed(lab).await
    })
    .await
}
