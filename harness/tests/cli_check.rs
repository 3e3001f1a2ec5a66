//! `ke2lab check` as a user runs it (no Docker, no lab): `--json` prints one
//! JSON document with the resolved values and exits 0; bad input exits 2
//! with the field-naming error on stderr and nothing on stdout, with or
//! without `--json`. It runs from any directory and writes nothing, and
//! the binary holds no compile-time path where it could read one. No
//! Docker is needed, so these run in the fast tier.

use std::path::Path;
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

/// The checkout this test was compiled in (test code may know it; the
/// binary must not).
fn checkout() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the harness lies in the checkout")
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// Run from a directory outside the checkout, with a topology named by its
/// absolute path and the user's directories in temporary places, `check`
/// works (no compile-time path is needed) and writes nothing: not in the
/// current directory, not in HOME or XDG_STATE_HOME, not in the checkout.
#[test]
fn check_runs_from_any_directory_and_creates_nothing() -> Result<()> {
    let cwd = tempfile::tempdir()?;
    let home = tempfile::tempdir()?;
    let state = tempfile::tempdir()?;
    let topology = checkout().join("fixtures/topologies/three-node.toml");
    let state_before = checkout().join("target/ke2lab").exists();
    let top_before = entries(checkout());
    let out = Command::new(BIN)
        .args(["check", "-t"])
        .arg(&topology)
        .current_dir(cwd.path())
        .env_remove("KE2LAB_HOME")
        .env("HOME", home.path())
        .env("XDG_STATE_HOME", state.path())
        .output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.code() == Some(0),
        "exit {:?}: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    ensure!(
        stdout.starts_with(&format!("topology `{}` is valid", topology.display())),
        "{stdout}"
    );
    for (what, dir) in [
        ("the current directory", cwd.path()),
        ("HOME", home.path()),
        ("XDG_STATE_HOME", state.path()),
    ] {
        ensure!(entries(dir).is_empty(), "{what}: {:?}", entries(dir));
    }
    ensure!(
        entries(checkout()) == top_before,
        "the checkout's top level changed: {:?} -> {:?}",
        top_before,
        entries(checkout())
    );
    ensure!(
        state_before || !checkout().join("target/ke2lab").exists(),
        "`check` made the checkout's state directory"
    );
    Ok(())
}

/// The sections of an ELF64 little-endian file that are loaded at run time
/// (`SHF_ALLOC` and not `NOBITS`), as (name, bytes): what the program can
/// read while it runs. Debug information (`.debug_*`) is not among them.
fn loaded_sections(elf: &[u8]) -> Result<Vec<(String, &[u8])>> {
    let u16_at = |o: usize| u16::from_le_bytes([elf[o], elf[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(elf[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(elf[o..o + 8].try_into().unwrap()) as usize;
    ensure!(
        elf.len() > 64 && &elf[..4] == b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "not an ELF64 little-endian file"
    );
    let (shoff, shentsize, shnum, shstrndx) =
        (u64_at(0x28), u16_at(0x3a), u16_at(0x3c), u16_at(0x3e));
    let header = |i: usize| shoff + i * shentsize;
    let names = u64_at(header(shstrndx) + 24);
    let mut out = Vec::new();
    for i in 0..shnum {
        let h = header(i);
        let (name, kind, flags) = (u32_at(h) as usize, u32_at(h + 4), u64_at(h + 8));
        let (offset, size) = (u64_at(h + 24), u64_at(h + 32));
        const SHF_ALLOC: usize = 2;
        const SHT_NOBITS: u32 = 8;
        if flags & SHF_ALLOC == 0 || kind == SHT_NOBITS {
            continue;
        }
        let n = &elf[names + name..];
        let n = String::from_utf8_lossy(&n[..n.iter().position(|&b| b == 0).unwrap_or(0)]);
        out.push((n.into_owned(), &elf[offset..offset + size]));
    }
    ensure!(
        out.iter().any(|(n, _)| n == ".rodata"),
        "no .rodata among {:?}",
        out.iter().map(|(n, _)| n).collect::<Vec<_>>()
    );
    Ok(out)
}

/// The binary the tests built holds the checkout's absolute path nowhere the
/// program can read it: no `env!("CARGO_MANIFEST_DIR")` or other
/// compile-time path in its code or data. (The dev profile's debug
/// information names the compile directory; it is never loaded, and the
/// release profile has none.)
#[test]
fn the_binary_reads_no_compile_time_path() -> Result<()> {
    let elf = std::fs::read(BIN)?;
    let needle = checkout().to_str().context("checkout path is not UTF-8")?;
    for (name, bytes) in loaded_sections(&elf)? {
        ensure!(
            !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
            "section `{name}` of `{BIN}` holds `{needle}`"
        );
    }
    Ok(())
}
