//! Cluster tier: the main job as a user runs it. `ke2lab up` boots the
//! default lab and installs everything; its output reports every phase, and
//! none of the run's passwords appears anywhere in what it printed or
//! logged; piped, it prints no ANSI sequence, and `phases.json` and
//! `install.log` land in the run directory.

use std::process::Stdio;

use anyhow::{Context, Result, ensure};
use ke2lab::topology::Credentials;
use ke2lab_harness::lab::{self, leftovers};

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
        // Piped: plain lines, no ANSI sequence anywhere.
        ensure!(
            !text.contains('\u{1b}'),
            "an ANSI escape in piped output:\n{text}"
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        for phase in [
            "image",
            "boot",
            "swarm",
            "gluster",
            "postgres",
            "pgpool-start",
            "recovery",
        ] {
            let lines = stderr
                .lines()
                .filter(|l| l.split_whitespace().take(2).eq(["✓", phase]))
                .count();
            ensure!(
                lines == 1,
                "{lines} `✓ {phase}` line(s), not one:\n{stderr}"
            );
        }
        // The per-host detail is in the log, not on the console (no `-v`).
        ensure!(
            !stderr.contains("[docker ke2-server1]"),
            "per-host detail on the console without -v:\n{stderr}"
        );
        let mut warnings: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("warning:"))
            .collect();
        let n = warnings.len();
        warnings.dedup();
        ensure!(warnings.len() == n, "a warning printed twice:\n{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        for what in ["VIP", "psql", "passwords", "next:"] {
            ensure!(
                stdout.lines().any(|l| l.trim_start().starts_with(what)),
                "no `{what}` line in the summary:\n{stdout}"
            );
        }
        let dir = lab::run_dir(&run);
        let phases: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("phases.json"))?)?;
        ensure!(
            phases["total_seconds"].as_f64().is_some_and(|t| t > 0.0),
            "phases.json has no total: {phases}"
        );
        let names: Vec<&str> = phases["phases"]
            .as_array()
            .context("phases.json has no phases")?
            .iter()
            .filter_map(|p| p["name"].as_str())
            .collect();
        for phase in ["image", "boot", "postgres", "recovery"] {
            ensure!(
                names.contains(&phase),
                "phases.json lacks `{phase}`: {names:?}"
            );
        }
        let log_path = dir.join("install.log");
        let log = std::fs::read_to_string(&log_path)?;
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&log_path)?.permissions().mode() & 0o777;
            ensure!(mode == 0o600, "install.log has mode {mode:o}");
        }
        ensure!(
            log.contains("ke2-server2") && log.contains("recovery"),
            "install.log lacks the per-host detail:\n{log}"
        );
        let creds = Credentials::load(&dir.join("secrets.toml"))?;
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
            ensure!(
                !log.contains(pw.expose()),
                "the {what} password appears in install.log"
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
