//! The `ke2lab` binary run as a user runs it, with nothing to touch: the
//! Docker socket points at nothing (a command that got as far as Docker
//! fails, exit 1) and the state directory is a fresh temporary one that
//! must stay empty. Shared by the fast tier's argument tests.

use std::process::Command;

use anyhow::{Result, ensure};

const BIN: &str = env!("CARGO_BIN_EXE_ke2lab");

/// Exit code, stdout and stderr of `ke2lab ARGS`; an error when the
/// command wrote into the state directory.
pub fn ke2lab(args: &[&str]) -> Result<(Option<i32>, String, String)> {
    let home = tempfile::tempdir()?;
    let out = Command::new(BIN)
        .args(args)
        .env("KE2LAB_HOME", home.path())
        .env("DOCKER_HOST", "unix:///nonexistent/ke2lab-test/docker.sock")
        .output()?;
    ensure!(
        std::fs::read_dir(home.path())?.next().is_none(),
        "`{args:?}` wrote into the state directory"
    );
    Ok((
        out.status.code(),
        String::from_utf8(out.stdout)?,
        String::from_utf8(out.stderr)?,
    ))
}
