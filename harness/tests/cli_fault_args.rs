//! `ke2lab fault` as a user runs it, without Docker: `fault list` prints the
//! vocabulary, and bad arguments (an unknown verb, a malformed duration,
//! percentage or size, a process that is not in the list) exit 2 with an
//! error naming the argument and the value, before Docker is asked. The
//! Docker socket is pointed at nothing, so a command that got as far as
//! Docker would fail otherwise (exit 1). An unknown host needs the lab's
//! topology: `cli_fault` (cluster tier) checks it. Fast tier.

use anyhow::{Result, ensure};

mod offline;
use offline::ke2lab;

#[test]
fn fault_list_prints_the_vocabulary_without_docker() -> Result<()> {
    let (code, stdout, stderr) = ke2lab(&["fault", "list"])?;
    ensure!(code == Some(0), "exit {code:?}: {stderr}");
    for verb in [
        "stop HOST",
        "pause HOST",
        "kill HOST",
        "kill-process HOST",
        "freeze-process HOST",
        "partition HOSTS [--from HOSTS]",
        "slow HOST [--from HOSTS] --delay 200ms [--jitter 20ms]",
        "flaky HOST [--from HOSTS] --loss 10%",
        "disk-full HOST brick|pgdata [--leave 10MiB]",
        "drop-vxlan-tcp [--port PORT]",
    ] {
        ensure!(
            stdout.lines().any(|l| l.starts_with(verb)),
            "no `{verb}` line in:\n{stdout}"
        );
    }
    Ok(())
}

#[test]
fn bad_fault_arguments_exit_2_before_docker() -> Result<()> {
    for (args, want) in [
        (
            &["fault", "bogus", "ke2-server1"][..],
            "error: `VERB`: unknown fault verb `bogus` (`ke2lab fault list` shows the verbs)",
        ),
        (
            &["fault", "slow", "ke2-server2", "--delay", "200x"],
            "error: `--delay`: `200x` is not a duration",
        ),
        (
            &[
                "fault",
                "--run",
                "r1a2b3c",
                "slow",
                "ke2-server2",
                "--delay",
                "fast",
            ],
            "error: `--delay`: `fast` is not a duration",
        ),
        (
            &["fault", "flaky", "ke2-server2", "--loss", "110%"],
            "error: `--loss`: `110%` is out of range",
        ),
        (
            &["fault", "kill-process", "ke2-server1", "sshd"],
            "error: `PROCESS`: `sshd` is not one of `postgres`, `pgpool`, `brick`, `dockerd`, `glusterd`",
        ),
        (
            &["fault", "freeze-process", "ke2-server1", "nginx"],
            "error: `PROCESS`: `nginx` is not one of",
        ),
        (
            &[
                "fault",
                "disk-full",
                "ke2-server1",
                "brick",
                "--leave",
                "lots",
            ],
            "error: `--leave`: `lots` is not a size",
        ),
        (
            &["fault", "--run", "../x", "active"],
            "error: `--run`: invalid run id `../x`",
        ),
    ] {
        let (code, stdout, stderr) = ke2lab(args)?;
        ensure!(code == Some(2), "{args:?}: exit {code:?}: {stderr}");
        ensure!(stdout.is_empty(), "{args:?}: stdout {stdout:?}");
        ensure!(stderr.starts_with(want), "{args:?}: {stderr}");
    }
    // clap's own refusals (a missing value) are bad input too.
    let (code, _, stderr) = ke2lab(&["fault", "slow", "ke2-server2"])?;
    ensure!(code == Some(2), "exit {code:?}: {stderr}");
    ensure!(stderr.contains("--delay"), "{stderr}");
    Ok(())
}
