//! Failure evidence: when a scenario fails, each host's logs and state go to
//! `target/ke2lab/artifacts/<run>/<host>/`, with every password of the run
//! replaced by `***` before anything is written.

use std::path::{Path, PathBuf};

use anyhow::Result;
use ke2lab::host::Cmd;
use ke2lab::layout::Layout;

use crate::lab::{Lab, home};

/// Files copied from each host (absent ones are skipped).
const FILES: [&str; 5] = [
    "/var/log/dockerd.log",
    "/var/log/glusterfs/glusterd.log",
    "/var/log/postgresql/postgresql-17-main.log",
    "/var/log/sshd.log",
    "/etc/pgpool2/pgpool.conf",
];

/// Commands whose output is kept, by file name.
fn commands(l: &Layout, pcp_port: u16, pg_port: u16) -> Vec<(&'static str, Cmd)> {
    vec![
        (
            "docker-node-ls.json",
            Cmd::new(["docker", "node", "ls", "--format", "{{json .}}"]),
        ),
        (
            "docker-info-swarm.json",
            Cmd::new(["docker", "info", "--format", "{{json .Swarm}}"]),
        ),
        (
            "gluster-volume-status.xml",
            Cmd::new(["gluster", "volume", "status", "all", "--xml"]),
        ),
        ("ip-addr.json", Cmd::new(["ip", "-j", "addr", "show"])),
        (
            "pcp-watchdog-info.txt",
            ke2lab::probe::pgpool::watchdog_info_cmd(pcp_port, &l.in_home(".pcppass")),
        ),
        (
            "pgpool-logs.txt",
            Cmd::sh("tail -n 2000 \"$1\"/* 2>/dev/null").arg(l.pgpool_log_dir),
        ),
        (
            "pg-stat-replication.txt",
            Cmd::new([
                "psql",
                "-X",
                "-h",
                l.socket_dir,
                "-p",
                &pg_port.to_string(),
                "-c",
                "SELECT application_name, state, sync_state FROM pg_stat_replication",
            ])
            .user("postgres"),
        ),
    ]
}

/// Collects what the lab's hosts can tell into the artifacts directory and
/// returns it. Failures to collect one item are noted in the item's file,
/// never raised: evidence gathering must not hide the original failure.
pub async fn collect(lab: &Lab) -> Result<PathBuf> {
    let dir = home().join("artifacts").join(&lab.run);
    std::fs::create_dir_all(&dir)?;
    let secrets = secrets(lab);
    let redact = |text: &str| redact(text, &secrets);
    write_events(lab, &dir)?;
    // `show pool_nodes` through the VIP (the clients' view) and through
    // each host's own Pgpool-II (each member's view: they differ in a
    // partition).
    write(
        &dir,
        "show-pool-nodes-via-vip.txt",
        &redact(&pool_nodes(lab, lab.topology.network.vip).await),
    )?;
    // The whole typed view (swarm, Gluster, PostgreSQL, the Pgpool-II view
    // with its decision, the stack) and its verdict: the cluster's own
    // account of what is wrong, the same one `ke2lab status` and `verify`
    // print.
    match lab.snapshot().await {
        Ok(snapshot) => {
            write(
                &dir,
                "snapshot.json",
                &redact(&serde_json::to_string_pretty(&snapshot).unwrap_or_default()),
            )?;
            let found: String = ke2lab::cluster::verdict(&snapshot)
                .iter()
                .map(|f| format!("{f}\n"))
                .collect();
            write(
                &dir,
                "verdict.txt",
                &redact(if found.is_empty() {
                    "healthy\n"
                } else {
                    &found
                }),
            )?;
        }
        Err(e) => write(&dir, "snapshot.json", &format!("not collected: {e:#}\n"))?,
    }
    for (spec, h) in lab.topology.hosts.iter().zip(lab.hosts()) {
        let hd = dir.join(&spec.name);
        std::fs::create_dir_all(&hd)?;
        write(
            &hd,
            "show-pool-nodes.txt",
            &redact(&pool_nodes(lab, spec.address).await),
        )?;
        let l = Layout::of(spec.platform);
        // The FUSE client's own log is named after the mount point.
        let client_log = format!(
            "/var/log/glusterfs/{}.log",
            lab.topology
                .shared_dir
                .path
                .trim_start_matches('/')
                .replace('/', "-")
        );
        for f in FILES.iter().copied().chain([client_log.as_str()]) {
            if let Ok(Some(body)) = h.read_file(f).await {
                write(
                    &hd,
                    &f.replace('/', "_"),
                    &redact(&String::from_utf8_lossy(&body)),
                )?;
            }
        }
        for (name, cmd) in commands(l, lab.topology.ports.pcp, lab.topology.ports.postgres) {
            let text = match h.run(&cmd).await {
                Ok(o) => format!("{}{}", o.stdout_lossy(), o.stderr_lossy()),
                Err(e) => format!("not collected: {e}"),
            };
            write(&hd, name, &redact(&text))?;
        }
    }
    Ok(dir)
}

/// `show pool_nodes` asked of the Pgpool-II at `addr`, one row per line,
/// or why it could not be asked.
async fn pool_nodes(lab: &Lab, addr: std::net::Ipv4Addr) -> String {
    match lab.cluster().pool_nodes_at(addr).await {
        Ok(rows) => rows.iter().map(|r| format!("{r:?}\n")).collect(),
        Err(e) => format!("not collected: {e}\n"),
    }
}

/// The run's passwords, as they must never appear in what is written.
/// Public for the argv watch (the same list, the same exemption).
/// A document-default password is no secret (the published procedure
/// prints it) and is an ordinary word of every log (`postgres`,
/// `pgpool`): replacing it would erase the evidence, so it is left alone.
pub fn secrets(lab: &Lab) -> Vec<String> {
    let published = ke2lab::topology::Credentials::document_defaults();
    let published: Vec<&str> = [
        &published.postgres,
        &published.repl,
        &published.pgpool,
        &published.kompira,
        &published.pgpool_key,
    ]
    .iter()
    .map(|s| s.expose())
    .collect();
    match lab.credentials() {
        Ok(c) => [&c.postgres, &c.repl, &c.pgpool, &c.kompira, &c.pgpool_key]
            .iter()
            .map(|s| s.expose().to_string())
            .filter(|s| !s.is_empty() && !published.contains(&s.as_str()))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// (Re)writes `events.log`: the lab's event log, a line per event with its
/// wall-clock time and offset, redacted.
pub fn write_events(lab: &Lab, dir: &Path) -> Result<()> {
    let mut text = lab.events.lines().join("\n");
    text.push('\n');
    std::fs::write(dir.join("events.log"), redact(&text, &secrets(lab)))?;
    Ok(())
}

/// `text` with every secret replaced by `***`: as it is, and in the forms
/// a URL (the database URL of the stack) or a JSON string carries it.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut t = text.to_string();
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        for f in secret_forms(s) {
            t = t.replace(f.as_str(), "***");
        }
    }
    t
}

/// The forms a secret takes in text: as it is, percent-encoded, and as
/// the inside of a JSON string; longest first, so that a form containing
/// another is replaced whole.
pub fn secret_forms(s: &str) -> Vec<String> {
    let json = serde_json::to_string(s).unwrap_or_default();
    let json = json
        .strip_prefix('"')
        .and_then(|j| j.strip_suffix('"'))
        .unwrap_or("")
        .to_string();
    let mut forms = vec![s.to_string(), percent_encoded(s), json];
    forms.retain(|f| !f.is_empty());
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    forms.dedup();
    forms
}

/// Every byte outside RFC 3986's unreserved set as `%XX`, upper and lower
/// case hex alike (both are valid, tools differ).
fn percent_encoded(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    std::fs::write(dir.join(name.trim_start_matches('_')), text)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_forms_are_replaced_and_words_kept() {
        let secrets = vec!["p@ss/w:rd%".to_string()];
        assert_eq!(
            redact(
                "url=pgsql://kompira:p%40ss%2Fw%3Ard%25@vip/db raw=p@ss/w:rd% postgres",
                &secrets
            ),
            "url=pgsql://kompira:***@vip/db raw=*** postgres"
        );
        let quoted = vec!["a\"b".to_string()];
        assert_eq!(redact(r#"{"pw":"a\"b"}"#, &quoted), r#"{"pw":"***"}"#);
    }

    #[test]
    fn every_secret_is_replaced() {
        let secrets = vec!["s3cr3t".to_string(), String::new(), "k3y".to_string()];
        assert_eq!(
            redact("pw=s3cr3t key=k3y again s3cr3t", &secrets),
            "pw=*** key=*** again ***"
        );
    }
}
