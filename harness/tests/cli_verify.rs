//! Cluster tier: the operator's gates on a real lab. After an install,
//! `ke2lab verify` exits 0, `ke2lab provision --check` exits 0 (nothing to
//! change) and `ke2lab status -o json` validates against the committed
//! schema; with PostgreSQL killed on one standby, `verify` exits 1 and
//! names that host. On the healthy lab, `ke2lab logs export` writes every
//! host's evidence with no password in any form (and `***` where one was),
//! and refuses a directory that is not empty. The lab is finished on every
//! path.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use ke2lab::layout::Layout;
use ke2lab::topology::{Credentials, Topology};
use ke2lab_harness::Lab;
use ke2lab_harness::artifacts::{file_name, secret_forms};
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

        logs_export(&lab).await?;

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

/// `ke2lab logs export` on the healthy lab (the binary: another process
/// than the one that booted it), checked file by file.
async fn logs_export(lab: &Lab) -> Result<()> {
    use std::os::unix::fs::PermissionsExt as _;
    let run = &lab.run;
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join("export");
    let dir_s = dir.to_string_lossy().to_string();
    let (code, text) = ke2lab(&["logs", "export", "--run", run, &dir_s]).await?;
    ensure!(code == 0, "`logs export` exited {code}:\n{text}");
    println!("logs export exit {code}:\n{}", text.trim_end());
    let files = tree(&dir)?;

    // Per host: its directory with the platform's files, one summary line.
    for spec in &lab.topology.hosts {
        let hd = dir.join(&spec.name);
        let l = Layout::of(spec.platform);
        for f in [
            file_name(&l.pgpool_conf()),
            file_name(&l.pool_hba()),
            file_name(l.pg_conf),
            file_name(l.pg_hba),
            file_name(l.pg_log),
            file_name(&l.glusterd_log()),
            "var_log_dockerd.log".into(),
            "docker-node-ls.json".into(),
            "gluster-volume-info.xml".into(),
            "pcp-watchdog-info.txt".into(),
            "show-pool-nodes.txt".into(),
            "index.txt".into(),
        ] {
            ensure!(hd.join(&f).is_file(), "no `{f}` for `{}`", spec.name);
        }
        let conf = std::fs::read_to_string(hd.join(file_name(&l.pgpool_conf())))?;
        ensure!(
            conf.contains("# KE2-BEGIN"),
            "pgpool.conf of `{}` lacks ke2lab's block",
            spec.name
        );
        ensure!(
            text.lines()
                .any(|line| line.starts_with(&format!("  {}/: ", spec.name))),
            "no summary line for `{}`:\n{text}",
            spec.name
        );
    }
    // `docker node ls` as JSON, one node per line, every host named.
    let nodes = std::fs::read_to_string(
        dir.join(&lab.topology.hosts[0].name)
            .join("docker-node-ls.json"),
    )?;
    let mut seen = Vec::new();
    for line in nodes.lines().filter(|l| !l.trim().is_empty()) {
        let node: serde_json::Value =
            serde_json::from_str(line).with_context(|| format!("not JSON: {line}"))?;
        seen.push(node["Hostname"].as_str().unwrap_or_default().to_string());
    }
    seen.sort();
    let mut names: Vec<String> = lab.topology.hosts.iter().map(|h| h.name.clone()).collect();
    names.sort();
    ensure!(seen == names, "docker node ls names {seen:?}");
    // The snapshot: the cluster's own view, of this run's hosts.
    let snapshot: ke2lab::cluster::Snapshot =
        serde_json::from_str(&std::fs::read_to_string(dir.join("snapshot.json"))?)
            .context("`snapshot.json` is not a snapshot")?;
    let mut in_snapshot: Vec<String> = snapshot.hosts.iter().map(|h| h.name.clone()).collect();
    in_snapshot.sort();
    ensure!(in_snapshot == names, "snapshot of {in_snapshot:?}");
    let verdict = std::fs::read_to_string(dir.join("verdict.txt"))?;
    ensure!(verdict == "healthy\n", "verdict.txt: {verdict}");
    // The event log the booting process (this one) recorded, read by the
    // exporting process from the run's state directory.
    let events = std::fs::read_to_string(dir.join("events.log"))?;
    ensure!(
        events.contains(&format!("run `{run}` booting")) && events.contains(" phase boot "),
        "events.log lacks the boot's events:\n{events}"
    );
    ensure!(dir.join("topology.toml").is_file(), "no topology.toml");

    // Modes: 0700 directories, 0600 files.
    for (p, _) in &files {
        let mode = std::fs::metadata(p)?.permissions().mode() & 0o777;
        ensure!(mode == 0o600, "`{}` has mode {mode:o}", p.display());
    }
    for spec in &lab.topology.hosts {
        let mode = std::fs::metadata(dir.join(&spec.name))?
            .permissions()
            .mode()
            & 0o777;
        ensure!(mode == 0o700, "`{}/` has mode {mode:o}", spec.name);
    }

    // No password of the run in any form anywhere; and the check can
    // fail: the postgres user's `.pgpass` held them before redaction.
    let creds = Credentials::load(&lab.state_dir.join("secrets.toml"))?;
    let secrets = [
        &creds.postgres,
        &creds.repl,
        &creds.pgpool,
        &creds.kompira,
        &creds.pgpool_key,
    ];
    for (p, body) in &files {
        let body = String::from_utf8_lossy(body);
        for s in &secrets {
            for form in secret_forms(s.expose()) {
                ensure!(
                    !body.contains(&form),
                    "`{}` holds a password of the run",
                    p.display()
                );
            }
        }
    }
    for spec in &lab.topology.hosts {
        let l = Layout::of(spec.platform);
        let pgpass =
            std::fs::read_to_string(dir.join(&spec.name).join(file_name(&l.in_home(".pgpass"))))?;
        ensure!(
            pgpass.contains(":replication:repl:***") && pgpass.contains(":postgres:postgres:***"),
            "`.pgpass` of `{}` not redacted where its passwords were:\n{pgpass}",
            spec.name
        );
    }

    // A directory that is not empty is refused (bad input) and untouched.
    let (code, text) = ke2lab(&["logs", "export", "--run", run, &dir_s]).await?;
    ensure!(
        code == 2,
        "`logs export` into a non-empty directory exited {code}:\n{text}"
    );
    ensure!(
        text.contains(&format!("`{dir_s}` is not empty")),
        "the refusal does not name `{dir_s}`:\n{text}"
    );
    ensure!(tree(&dir)? == files, "the refused export changed `{dir_s}`");
    println!("logs export into the non-empty `{dir_s}` exit {code}");
    Ok(())
}

/// Every file under `dir` with its content, in path order.
fn tree(dir: &Path) -> Result<Vec<(PathBuf, Vec<u8>)>> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                let body = std::fs::read(&p)?;
                out.push((p, body));
            }
        }
    }
    out.sort();
    Ok(out)
}
