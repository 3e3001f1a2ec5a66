//! Cluster tier: the main job as a user runs it. `ke2lab up` boots the
//! default lab and installs everything; its output reports every phase, and
//! none of the run's passwords appears anywhere in what it printed.

use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use ke2lab::topology::Credentials;
use ke2lab_harness::lab::{self, home, leftovers};

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

#[tokio::test]
async fn up_reports_phases_and_never_prints_a_password() -> Result<()> {
    let out = tokio::process::Command::new(BIN)
        .arg("up")
        // Generated passwords (not the document's), so that a leak of any
        // of them is detectable.
        .args([
            "--topology",
            "../fixtures/topologies/generated-credentials.toml",
        ])
        .env("KE2LAB_LOG", "debug")
        .stdin(Stdio::null())
        .output()
        .await?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let run = text
        .split("run `")
        .nth(1)
        .and_then(|s| s.split('`').next())
        .context("no run id in the output")?
        .to_string();
    let outcome = async {
        ensure!(out.status.success(), "`ke2lab up` failed:\n{text}");
        for phase in [
            "image",
            "boot",
            "swarm",
            "gluster",
            "postgres",
            "pgpool-start",
            "recovery",
            "total",
        ] {
            ensure!(
                text.lines().any(|l| l.starts_with(phase)),
                "no `{phase}` line in the phase report:\n{text}"
            );
        }
        let creds = Credentials::load(&home().join("runs").join(&run).join("secrets.toml"))?;
        for (what, pw) in [
            ("postgres", &creds.postgres),
            ("repl", &creds.repl),
            ("pgpool", &creds.pgpool),
            ("kompira", &creds.kompira),
            ("pgpool key", &creds.pgpool_key),
        ] {
            ensure!(
                !text.contains(pw.expose()),
                "the {what} password appears in the output"
            );
        }
        Ok(())
    }
    .await;
    let down = tokio::process::Command::new(BIN)
        .args(["down", "--run", &run])
        .output()
        .await?;
    ensure!(down.status.success(), "down failed");
    let docker = lab::connect().await?;
    ensure!(
        leftovers(&docker, Some(&run)).await?.is_empty(),
        "run `{run}` left resources"
    );
    outcome
}
