//! `ke2lab chaos` refuses bad arguments with exit 2, an error naming the
//! argument, and nothing touched: the Docker socket is pointed at nothing
//! (a command that got as far as Docker would exit 1), and the state
//! directory stays empty. Fast tier.

use anyhow::{Result, ensure};

mod offline;
use offline::ke2lab;

#[test]
fn bad_chaos_arguments_exit_2_before_docker() -> Result<()> {
    for (args, want) in [
        (
            &["chaos", "--seed", "7", "--duration", "10x"][..],
            "`10x`: not a duration",
        ),
        (
            &["chaos", "--seed", "seven", "--duration", "60s"],
            "invalid value 'seven' for '--seed <SEED>'",
        ),
        (
            &[
                "chaos",
                "--seed",
                "7",
                "--duration",
                "60s",
                "--faults",
                "stop,reboot",
            ],
            "`--faults`: `reboot` is no fault kind (known: stop, pause, kill, kill-process, \
             freeze-process, partition, flaky, slow)",
        ),
        (
            &[
                "chaos",
                "--seed",
                "7",
                "--duration",
                "60s",
                "--faults",
                "kill,kill",
            ],
            "`--faults`: `kill` is named twice",
        ),
        (
            &[
                "chaos",
                "--seed",
                "7",
                "--duration",
                "60s",
                "--mode",
                "medium",
            ],
            "invalid value 'medium' for '--mode <MODE>'",
        ),
        // A schedule that holds no fault is refused before any host boots.
        (
            &["chaos", "--seed", "7", "--duration", "5s"],
            "error: `--duration`: `5s` holds no fault (one needs at least 26 s)",
        ),
        (
            &[
                "chaos",
                "--seed",
                "7",
                "--duration",
                "60s",
                "--run",
                "../etc",
            ],
            "`--run`",
        ),
        (
            &[
                "chaos",
                "--seed",
                "7",
                "--duration",
                "60s",
                "--run",
                "r1a2b3c",
                "--keep",
            ],
            "the argument '--run <RUN>' cannot be used with '--keep'",
        ),
    ] {
        let (code, _, stderr) = ke2lab(args)?;
        ensure!(
            code == Some(2),
            "`{args:?}`: exit {code:?}, not 2:\n{stderr}"
        );
        ensure!(
            stderr.contains(want),
            "`{args:?}`: no `{want}` in:\n{stderr}"
        );
    }
    Ok(())
}

#[test]
fn a_bad_topology_file_exits_2_naming_it() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("customer.toml");
    std::fs::write(&path, "[network]\nvip = \"not an address\"\n")?;
    let p = path.to_str().unwrap();
    let (code, _, stderr) =
        ke2lab(&["chaos", "--seed", "1", "--duration", "60s", "--topology", p])?;
    ensure!(code == Some(2), "exit {code:?}: {stderr}");
    ensure!(stderr.contains("customer.toml"), "{stderr}");
    Ok(())
}
