//! Cluster tier: the operator's gates on a real lab. After an install,
//! `ke2lab verify` exits 0, `ke2lab provision --check` exits 0 (nothing to
//! change) and `ke2lab status -o json` validates against the committed
//! schema; with PostgreSQL killed on one standby, `verify` exits 1 and
//! names that host. The lab is finished on every path.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ke2lab::topology::Topology;
use ke2lab_harness::Lab;
use ke2lab_harness::faults::{Faults, Service};

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

async fn ke2lab(args: &[&str]) -> Result<(i32, String)> {
    let out = tokio::process::Command::new(BIN)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .await
        .with_context(|| format!("cannot run `ke2lab {}`", args.join(" ")))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.code().unwrap_or(-1), text))
}

#[tokio::test]
async fn verify_and_provision_check_on_a_healthy_and_a_broken_lab() -> Result<()> {
    let mut t = Topology::fixture("three-node")?.topology;
    // Generated passwords: what an operator's cluster has.
    t.credentials.use_document_defaults = false;
    let mut lab = Lab::boot(&t, ke2lab_harness::lab::keep_on_failure()).await?;
    let outcome = async {
        lab.install().await?;
        let run = lab.run.clone();

        // Right after the install the watchdog members may still be
        // joining: `verify` is asked until it passes, for a bounded time.
        let since = Instant::now();
        let (code, text) = loop {
            let (code, text) = ke2lab(&["verify", "--run", &run]).await?;
            if code == 0 || since.elapsed() > Duration::from_secs(180) {
                break (code, text);
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        };
        ensure!(
            code == 0,
            "`verify` on the installed lab exited {code}:\n{text}"
        );
        println!(
            "verify (healthy) exit {code} after {:.0}s: {}",
            since.elapsed().as_secs_f64(),
            text.trim()
        );

        let (code, text) = ke2lab(&["provision", "--run", &run, "--check"]).await?;
        ensure!(code == 0, "`provision --check` exited {code}:\n{text}");
        println!("provision --check exit {code}");

        let (code, text) = ke2lab(&["status", "--run", &run, "-o", "json"]).await?;
        ensure!(code == 0, "`status -o json` exited {code}:\n{text}");
        let doc: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("not JSON:\n{text}"))?;
        let schema: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/status.schema.json"))?;
        let validator = jsonschema::validator_for(&schema)?;
        let errors: Vec<String> = validator
            .iter_errors(&doc)
            .map(|e| format!("{e} at {}", e.instance_path))
            .collect();
        ensure!(
            errors.is_empty(),
            "`status -o json` against the schema: {errors:#?}"
        );
        ensure!(doc["labs"][0]["healthy"] == true, "status: {text}");

        // Break one standby's PostgreSQL (host 3 is a standby after a
        // fresh install): `verify` must fail naming that host.
        let broken = lab.topology.hosts[2].name.clone();
        Faults::new(&lab)
            .kill_service(&broken, Service::Postgres)
            .await?;
        let (code, text) = ke2lab(&["verify", "--run", &run]).await?;
        println!("verify (PostgreSQL killed on `{broken}`) exit {code}:\n{text}");
        ensure!(
            code == 1,
            "`verify` with PostgreSQL killed exited {code}:\n{text}"
        );
        ensure!(
            text.contains(&format!("host `{broken}`: PostgreSQL down")),
            "`verify` does not name `{broken}`:\n{text}"
        );
        Ok(())
    }
    .await;
    lab.finish(outcome).await
}
