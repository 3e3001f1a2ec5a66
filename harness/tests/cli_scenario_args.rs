//! `ke2lab scenario` as a user runs it, without Docker: `scenario list`
//! prints the registry (snapshot), and bad input (an unknown scenario, a
//! bad `--cycles`, a topology file that does not validate or that the
//! scenario cannot run on) exits 2 with an error naming it, before Docker
//! is asked: the Docker socket is pointed at nothing, so a command that got
//! as far as booting a lab would fail otherwise (exit 1), and the state
//! directory stays empty (no run, no container). Fast tier.

use anyhow::{Result, ensure};

mod offline;
use offline::ke2lab;

#[test]
fn scenario_list_prints_one_line_each_in_registry_order() -> Result<()> {
    let (code, stdout, stderr) = ke2lab(&["scenario", "list"])?;
    ensure!(code == Some(0), "exit {code:?}: {stderr}");
    insta::assert_snapshot!(stdout);
    Ok(())
}

#[test]
fn bad_scenario_arguments_exit_2_before_docker() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let bad_toml = dir.path().join("bad.toml");
    let text = include_str!("../../fixtures/topologies/three-node.toml");
    std::fs::write(&bad_toml, text.replace("pgpool = 9999", "pgpool = 80"))?;
    let existing = dir.path().join("existing.toml");
    std::fs::write(
        &existing,
        text.replace("kind = \"gluster\"", "kind = \"existing\""),
    )?;
    let plain = dir.path().join("plain.toml");
    std::fs::write(&plain, text)?;
    let missing = dir.path().join("missing.toml");
    let (bad_toml, existing, plain, missing) = (
        bad_toml.to_str().unwrap(),
        existing.to_str().unwrap(),
        plain.to_str().unwrap(),
        missing.to_str().unwrap(),
    );
    for (args, want) in [
        (
            &["scenario", "run", "no_such_scenario"][..],
            "error: unknown scenario `no_such_scenario`; known: pgpool, swarm, swarm_vmxnet3, gluster, primary_failover_async,",
        ),
        (
            &["scenario", "run", "pgpool", "--cycles", "0"],
            "`0`: a whole number of cycles from 1 to 100",
        ),
        (
            &["scenario", "run", "pgpool", "--cycles", "many"],
            "`many`: a whole number of cycles from 1 to 100",
        ),
        (
            &["scenario", "run", "pgpool", "--topology", bad_toml],
            "`ports.pgpool`",
        ),
        (
            &["scenario", "run", "pgpool", "--topology", missing],
            "missing.toml",
        ),
        (
            &["scenario", "run", "brick_loss", "--topology", existing],
            "error: scenario `brick_loss`: `shared_dir.kind`: this scenario needs `gluster`",
        ),
        (
            &["scenario", "run", "gluster", "--topology", existing],
            "error: scenario `gluster`: `shared_dir.kind`: this scenario needs `gluster`",
        ),
        (
            &["scenario", "run", "swarm_vmxnet3", "--topology", plain],
            "error: scenario `swarm_vmxnet3`: `hosts[].nic`",
        ),
    ] {
        let (code, stdout, stderr) = ke2lab(args)?;
        ensure!(code == Some(2), "`{args:?}`: exit {code:?}: {stderr}");
        ensure!(
            stderr.contains(want),
            "`{args:?}`: want `{want}` in:\n{stderr}"
        );
        ensure!(stdout.is_empty(), "`{args:?}` printed: {stdout}");
    }
    Ok(())
}
