//! `ke2lab check` as a user runs it (no Docker, no lab): `--json` prints one
//! JSON document with the resolved values and exits 0; bad input exits 2
//! with the field-naming error on stderr and nothing on stdout, with or
//! without `--json`. No Docker is needed, but as a harness integration
//! test it runs with the cluster profile (the fast tier runs the same
//! checks on `check()` in `main.rs`).

use std::process::Command;

use anyhow::{Context, Result, ensure};

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

#[test]
fn check_json_prints_the_resolved_document() -> Result<()> {
    let out = Command::new(BIN)
        .args([
            "check",
            "--topology",
            "../fixtures/topologies/three-node.toml",
            "--json",
        ])
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    ensure!(
        out.status.code() == Some(0),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: serde_json::Value = serde_json::from_str(&stdout).context("stdout is not JSON")?;
    ensure!(doc["schema_version"] == 1, "{doc}");
    ensure!(doc["cluster"] == "ke2", "{doc}");
    ensure!(doc["swarm"]["data_path_port"] == 4789, "{doc}");
    ensure!(doc["shared_dir"]["replica"] == 3, "{doc}");
    ensure!(doc["postgres"]["initial_primary"] == "ke2-server1", "{doc}");
    ensure!(doc["pgpool"]["vip"] == "10.20.0.100", "{doc}");
    for q in ["swarm_raft", "pgpool_watchdog", "gluster_client"] {
        ensure!(doc["quorums"][q]["tolerates"] == 1, "{q}: {doc}");
    }
    let hosts = doc["firewall"].as_array().context("no firewall array")?;
    ensure!(hosts.len() == 3, "{doc}");
    let ports: Vec<String> = hosts[0]["ports"]
        .as_array()
        .context("no ports")?
        .iter()
        .map(|p| format!("{}/{}", p["port"].as_str().unwrap_or("?"), p["proto"]))
        .collect();
    for want in [
        "2377/\"tcp\"",
        "4789/\"udp\"",
        "9999/\"tcp\"",
        "9694/\"udp\"",
    ] {
        ensure!(ports.iter().any(|p| p == want), "no {want} in {ports:?}");
    }
    Ok(())
}

#[test]
fn check_of_bad_input_exits_2_with_nothing_on_stdout() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        include_str!("../../fixtures/topologies/three-node.toml")
            .replace("pgpool = 9999", "pgpool = 2377"),
    )?;
    for json in [true, false] {
        let mut cmd = Command::new(BIN);
        cmd.arg("check").arg("--topology").arg(&path);
        if json {
            cmd.arg("--json");
        }
        let out = cmd.output()?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        ensure!(
            out.status.code() == Some(2),
            "--json {json}: exit {:?}",
            out.status.code()
        );
        ensure!(
            out.stdout.is_empty(),
            "--json {json}: stdout {:?}",
            out.stdout
        );
        ensure!(
            stderr.contains("`ports.pgpool`: port `2377` collides with the swarm management port"),
            "--json {json}: {stderr}"
        );
    }
    Ok(())
}
