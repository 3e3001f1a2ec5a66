//! A lab's evidence: per host the service logs, configuration files and
//! state (command outputs), the cluster's snapshot and verdict, the
//! harness's event log, the run's topology and install log, every password
//! of the run replaced by `***` before anything is written. A failing
//! scenario's goes to the state directory's `artifacts/<run>/` ([`collect`]),
//! `ke2lab logs export` writes it into a directory of the user's
//! ([`export`]): the same code.

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use ke2lab::host::{Cmd, Host};
use ke2lab::layout::Layout;
use ke2lab::topology::{Credentials, HostSpec, SharedDirKind, Topology};

use crate::lab::{EVENTS_FILE, Lab, home, write_private};

/// Logs of the lab's host image (`fixtures/image/boot.sh` starts sshd and
/// dockerd without a service manager, their output in these files).
const LAB_LOGS: [&str; 2] = ["/var/log/dockerd.log", "/var/log/sshd.log"];

/// Every command's limit: a partitioned peer must not hold the export.
const COMMAND_DEADLINE: Duration = Duration::from_secs(60);

/// The exit code of the directory reader when the directory is absent.
const ABSENT: i32 = 44;

/// Where one exported file's content comes from.
#[derive(Clone, Debug)]
pub enum Source {
    /// A file of the host, copied whole.
    File(String),
    /// A directory of log files on the host: the tail of each.
    Dir(String),
    /// A command's output (stdout, then stderr).
    Command(Cmd),
}

/// One file of a host's export directory.
#[derive(Clone, Debug)]
pub struct Item {
    pub name: String,
    pub source: Source,
}

impl Item {
    fn file(path: impl Into<String>) -> Item {
        let path = path.into();
        Item {
            name: file_name(&path),
            source: Source::File(path),
        }
    }

    fn dir(path: impl Into<String>) -> Item {
        let path = path.into();
        Item {
            name: file_name(&path),
            source: Source::Dir(path),
        }
    }

    fn command(name: &str, cmd: Cmd) -> Item {
        let cmd = match cmd.deadline_of() {
            Some(_) => cmd,
            None => cmd.deadline(COMMAND_DEADLINE),
        };
        Item {
            name: name.to_string(),
            source: Source::Command(cmd),
        }
    }

    /// Where it comes from, for the host's `index.txt`.
    fn origin(&self) -> String {
        match &self.source {
            Source::File(p) => format!("file `{p}`"),
            Source::Dir(p) => format!("directory `{p}`"),
            Source::Command(c) => format!("`{c}`"),
        }
    }
}

/// The export name of a host file: its path with `/` as `_`
/// (`/etc/pgpool2/pgpool.conf` → `etc_pgpool2_pgpool.conf`).
pub fn file_name(path: &str) -> String {
    path.trim_start_matches('/').replace('/', "_")
}

/// What is exported of host `spec`: the paths from its platform's
/// [`Layout`], the ports and names from the topology. Files a host lacks
/// are skipped and noted. Of the credential files only `.pgpass` and
/// `.pcppass` are copied (which entries exist is what a failed login
/// needs; their passwords are redacted); `pool_passwd`, `pcp.conf` and the
/// Pgpool-II key file are not: they hold derived forms of the passwords
/// (AES, MD5) that redaction cannot recognise.
pub fn host_items(spec: &HostSpec, t: &Topology) -> Vec<Item> {
    let l = Layout::of(spec.platform);
    let gluster = t.shared_dir.kind == SharedDirKind::Gluster;
    let mut items: Vec<Item> = LAB_LOGS.iter().map(|p| Item::file(*p)).collect();
    items.extend(["/etc/hosts", "/etc/fstab"].map(Item::file));
    // PostgreSQL: the configuration it reads, ALTER SYSTEM's and
    // primary_conninfo's file, its log.
    items.extend([
        Item::file(l.pg_conf),
        Item::file(l.pg_hba),
        Item::file(l.in_pgdata("postgresql.auto.conf")),
        if l.pg_log_is_dir {
            Item::dir(l.pg_log)
        } else {
            Item::file(l.pg_log)
        },
    ]);
    // Pgpool-II: its configuration and logs, the clients' password files.
    items.extend([
        Item::file(l.pgpool_conf()),
        Item::file(l.pool_hba()),
        Item::file(l.in_pgpool_dir(ke2lab::render::pg::BACKENDS_FILE)),
        Item::file(l.in_pgpool_dir("pgpool_node_id")),
        Item::dir(l.pgpool_log_dir),
        Item::file(l.in_home(".pgpass")),
        Item::file(l.in_home(".pcppass")),
    ]);
    if gluster {
        items.extend([
            Item::file(l.glusterd_log()),
            Item::file(l.gluster_mount_log(&t.shared_dir.path)),
            Item::dir(l.gluster_brick_logs()),
        ]);
    }
    let json_lines = |what: &[&str]| {
        Cmd::new(["docker"])
            .args_from(what.iter().copied())
            .args_from(["--format", "{{json .}}"])
    };
    items.extend([
        Item::command("docker-node-ls.json", json_lines(&["node", "ls"])),
        Item::command(
            "docker-info-swarm.json",
            Cmd::new(["docker", "info", "--format", "{{json .Swarm}}"]),
        ),
        Item::command("docker-ps.json", json_lines(&["ps", "--all"])),
        Item::command("ip-addr.json", Cmd::new(["ip", "-j", "addr", "show"])),
        // The faults' nftables tables (partitions, VXLAN drops) among them.
        Item::command("nft-ruleset.txt", Cmd::new(["nft", "list", "ruleset"])),
        Item::command(
            "pcp-watchdog-info.txt",
            ke2lab::probe::pgpool::watchdog_info_cmd(t.ports.pcp, &l.in_home(".pcppass")),
        ),
        Item::command(
            "pg-stat-replication.txt",
            Cmd::new([
                "psql",
                "-X",
                "-h",
                l.socket_dir,
                "-p",
                &t.ports.postgres.to_string(),
                "-c",
                "SELECT application_name, state, sync_state FROM pg_stat_replication",
            ])
            .user("postgres"),
        ),
    ]);
    if gluster {
        let volume = t.shared_dir.volume.as_str();
        items.extend([
            Item::command(
                "gluster-volume-info.xml",
                Cmd::new(["gluster", "volume", "info", volume, "--xml"]),
            ),
            Item::command(
                "gluster-volume-status.xml",
                Cmd::new(["gluster", "volume", "status", "all", "--xml"]),
            ),
            Item::command(
                "gluster-peer-status.xml",
                Cmd::new(["gluster", "peer", "status", "--xml"]),
            ),
        ]);
    }
    items
}

/// Writes redacted text: every file of an export goes through
/// [`Out::write`], mode 0600, in directories made 0700 ([`private_dir`]).
pub struct Out {
    secrets: Vec<String>,
}

impl Out {
    pub fn new(secrets: Vec<String>) -> Out {
        Out { secrets }
    }

    pub fn write(&self, dir: &Path, name: &str, text: &str) -> Result<()> {
        write_private(&dir.join(name), redact(text, &self.secrets).as_bytes())
    }
}

/// Creates `dir` (and its missing parents) readable by its owner only.
pub fn private_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create `{}`", dir.display()))
}

/// What a host gave for one item.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Gathered {
    /// The content; a command's exit code when it was not 0.
    Text(String, Option<i32>),
    Absent,
    Failed(String),
}

async fn gather(h: &dyn Host, source: &Source) -> Gathered {
    match source {
        Source::File(p) => match h.read_file(p).await {
            Ok(Some(body)) => Gathered::Text(String::from_utf8_lossy(&body).into_owned(), None),
            Ok(None) => Gathered::Absent,
            Err(e) => Gathered::Failed(e.to_string()),
        },
        Source::Dir(p) => {
            let cmd = Cmd::sh(format!(
                "test -d \"$1\" || exit {ABSENT}; for f in \"$1\"/*; do \
                 [ -f \"$f\" ] || continue; echo \"==> $f <==\"; tail -n 5000 -- \"$f\"; done"
            ))
            .arg(p)
            .deadline(COMMAND_DEADLINE);
            match h.run(&cmd).await {
                Ok(o) if o.status == ABSENT => Gathered::Absent,
                Ok(o) => Gathered::Text(
                    format!("{}{}", o.stdout_lossy(), o.stderr_lossy()),
                    (o.status != 0).then_some(o.status),
                ),
                Err(e) => Gathered::Failed(e.to_string()),
            }
        }
        Source::Command(c) => match h.run(c).await {
            Ok(o) => Gathered::Text(
                format!("{}{}", o.stdout_lossy(), o.stderr_lossy()),
                (o.status != 0).then_some(o.status),
            ),
            Err(e) => Gathered::Failed(e.to_string()),
        },
    }
}

/// What was exported of one host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HostReport {
    pub host: String,
    /// The files written into the host's directory.
    pub written: Vec<String>,
    /// Host files and directories it does not have (skipped).
    pub absent: Vec<String>,
    /// Items that failed: a command's non-zero exit (its output is kept),
    /// or a read or command that could not run (the reason is kept).
    pub failed: Vec<String>,
}

/// Gathers `items` from `h` into `dir` (created 0700), with `extra`
/// already-known texts (name, text); writes `index.txt`, every item with
/// where it came from and what became of it.
pub async fn export_host(
    h: &dyn Host,
    items: &[Item],
    extra: &[(&str, String)],
    dir: &Path,
    out: &Out,
) -> Result<HostReport> {
    private_dir(dir)?;
    let mut report = HostReport {
        host: h.name().to_string(),
        ..Default::default()
    };
    let mut index = String::new();
    for (name, text) in extra {
        out.write(dir, name, text)?;
        report.written.push(name.to_string());
        index.push_str(&format!("{name}\tthe cluster's view\twritten\n"));
    }
    for item in items {
        let status = match gather(h, &item.source).await {
            Gathered::Text(text, exit) => {
                out.write(dir, &item.name, &text)?;
                report.written.push(item.name.clone());
                match exit {
                    Some(code) => {
                        report.failed.push(item.name.clone());
                        format!("written, exit {code}")
                    }
                    None => "written".to_string(),
                }
            }
            Gathered::Absent => {
                report.absent.push(match &item.source {
                    Source::File(p) | Source::Dir(p) => p.clone(),
                    Source::Command(_) => item.name.clone(),
                });
                "absent on the host, skipped".to_string()
            }
            Gathered::Failed(why) => {
                out.write(dir, &item.name, &format!("not collected: {why}\n"))?;
                report.written.push(item.name.clone());
                report.failed.push(item.name.clone());
                format!("not collected: {why}")
            }
        };
        index.push_str(&format!("{}\t{}\t{status}\n", item.name, item.origin()));
    }
    out.write(dir, "index.txt", &index)?;
    report.written.push("index.txt".into());
    Ok(report)
}

/// What [`export`] wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExportReport {
    pub run: String,
    pub dir: PathBuf,
    /// The run's files at the top of `dir`.
    pub files: Vec<String>,
    pub hosts: Vec<HostReport>,
}

impl fmt::Display for ExportReport {
    /// One line for the run's files, then one per host.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "run `{}` exported to `{}`: {}",
            self.run,
            self.dir.display(),
            self.files.join(", ")
        )?;
        for h in &self.hosts {
            write!(f, "  {}/: {} file(s)", h.host, h.written.len(),)?;
            if !h.failed.is_empty() {
                write!(f, ", {} failed ({})", h.failed.len(), h.failed.join(", "))?;
            }
            if !h.absent.is_empty() {
                write!(f, ", {} absent ({})", h.absent.len(), h.absent.join(", "))?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Why `dir` cannot receive an export (`None`: it can): it exists and is
/// not an empty directory. An export never overwrites anything.
pub fn export_dir_problem(dir: &Path) -> Option<String> {
    let shown = ke2lab::topology::shown(&dir.to_string_lossy());
    match std::fs::metadata(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => Some(format!("cannot read `{shown}`: {e}")),
        Ok(m) if !m.is_dir() => Some(format!("`{shown}` exists and is not a directory")),
        Ok(_) => match std::fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some().then(|| {
                format!("`{shown}` is not empty (an export goes into a new or empty directory)")
            }),
            Err(e) => Some(format!("cannot read `{shown}`: {e}")),
        },
    }
}

/// Writes everything the lab can tell into `dir` (created 0700 if
/// missing; files 0600, every one redacted): at the top the cluster's
/// snapshot (`snapshot.json`, the Pgpool-II view and its decision
/// included) and verdict (`verdict.txt`), `show pool_nodes` through the
/// VIP, the event log (`events.log`, every process's), the run's
/// `topology.toml` and `install.log` (when the run has one); per host a
/// directory of [`host_items`] and its own `show pool_nodes`. Failing to
/// collect one item is noted in its file, never raised: evidence must not
/// hide the failure it documents. Refuses (before writing) when the run's
/// passwords cannot be read: nothing would be redacted.
pub async fn export(lab: &Lab, dir: &Path) -> Result<ExportReport> {
    let secrets = lab
        .credentials()
        .with_context(|| format!("run `{}`: no redaction without its passwords", lab.run))?;
    let out = Out::new(secret_values(&secrets));
    private_dir(dir)?;
    let mut files = Vec::new();
    write_events_with(lab, dir, &out)?;
    files.push("events.log".to_string());
    for name in ["topology.toml", "install.log"] {
        if copy_local(&lab.state_dir.join(name), dir, name, &out)? {
            files.push(name.to_string());
        }
    }
    // `show pool_nodes` through the VIP (the clients' view) and through
    // each host's own Pgpool-II (each member's view: they differ in a
    // partition).
    out.write(
        dir,
        "show-pool-nodes-via-vip.txt",
        &pool_nodes(lab, lab.topology.network.vip).await,
    )?;
    files.push("show-pool-nodes-via-vip.txt".into());
    // The whole typed view (swarm, Gluster, PostgreSQL, the Pgpool-II view
    // with its decision, the stack) and its verdict: the cluster's own
    // account of what is wrong, the same one `ke2lab status` and `verify`
    // print.
    match lab.snapshot().await {
        Ok(snapshot) => {
            out.write(
                dir,
                "snapshot.json",
                &serde_json::to_string_pretty(&snapshot).unwrap_or_default(),
            )?;
            files.push("snapshot.json".into());
            let found: String = ke2lab::cluster::verdict(&snapshot)
                .iter()
                .map(|f| format!("{f}\n"))
                .collect();
            out.write(
                dir,
                "verdict.txt",
                if found.is_empty() {
                    "healthy\n"
                } else {
                    &found
                },
            )?;
            files.push("verdict.txt".into());
        }
        Err(e) => {
            out.write(dir, "snapshot.json", &format!("not collected: {e:#}\n"))?;
            files.push("snapshot.json".into());
        }
    }
    let jobs = lab.topology.hosts.iter().zip(lab.hosts()).map(|(spec, h)| {
        let out = &out;
        async move {
            if !is_plain_name(&spec.name) {
                bail!("host name `{}` cannot name a directory", spec.name);
            }
            let pool = pool_nodes(lab, spec.address).await;
            export_host(
                h.as_ref(),
                &host_items(spec, &lab.topology),
                &[("show-pool-nodes.txt", pool)],
                &dir.join(&spec.name),
                out,
            )
            .await
        }
    });
    let hosts = futures_util::future::try_join_all(jobs).await?;
    Ok(ExportReport {
        run: lab.run.clone(),
        dir: dir.to_path_buf(),
        files,
        hosts,
    })
}

/// A single path component of its own (no `/`, not `.` or `..`).
fn is_plain_name(name: &str) -> bool {
    !name.is_empty() && name != "." && name != ".." && !name.contains('/')
}

/// Copies a file of this machine, redacted, when it exists; `true` when
/// it did.
fn copy_local(from: &Path, dir: &Path, name: &str, out: &Out) -> Result<bool> {
    match std::fs::read(from) {
        Ok(body) => {
            out.write(dir, name, &String::from_utf8_lossy(&body))?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).with_context(|| format!("cannot read `{}`", from.display())),
    }
}

/// A failing scenario's evidence: [`export`] into
/// the state directory's `artifacts/<run>/`; returns that directory.
pub async fn collect(lab: &Lab) -> Result<PathBuf> {
    let dir = home().join("artifacts").join(&lab.run);
    export(lab, &dir).await.map(|r| r.dir)
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
/// Public for the argv watch (the same list, the same exemption); empty
/// when they cannot be read.
pub fn secrets(lab: &Lab) -> Vec<String> {
    lab.credentials()
        .map(|c| secret_values(&c))
        .unwrap_or_default()
}

/// The passwords of `c` that are secrets. A document-default password is
/// no secret (the published procedure prints it) and is an ordinary word
/// of every log (`postgres`, `pgpool`): replacing it would erase the
/// evidence, so it is left alone.
pub fn secret_values(c: &Credentials) -> Vec<String> {
    let published = Credentials::document_defaults();
    let all = |c: &Credentials| {
        [&c.postgres, &c.repl, &c.pgpool, &c.kompira, &c.pgpool_key].map(|s| s.expose().to_string())
    };
    let published = all(&published);
    all(c)
        .into_iter()
        .filter(|s| !s.is_empty() && !published.contains(s))
        .collect()
}

/// The secrets among the passwords kept in `path` (a run's
/// `secrets.toml`); none while it does not exist or cannot be read.
pub fn kept_secrets(path: &Path) -> Vec<String> {
    match Credentials::load_if_exists(path) {
        Ok(Some(c)) => secret_values(&c),
        _ => Vec::new(),
    }
}

/// (Re)writes `events.log`: the lab's event log, a line per event with its
/// wall-clock time and offset, redacted; the run's file (every process
/// that recorded into it) merged with this process's own.
pub fn write_events(lab: &Lab, dir: &Path) -> Result<()> {
    write_events_with(lab, dir, &Out::new(secrets(lab)))
}

fn write_events_with(lab: &Lab, dir: &Path, out: &Out) -> Result<()> {
    let mut text = lab.events.all_lines().join("\n");
    text.push('\n');
    out.write(dir, EVENTS_FILE, &text)
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

#[cfg(test)]
mod tests {
    use super::*;
    use ke2lab::host::{Output, Recorder, Rule};
    use ke2lab::topology::Platform;

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

    /// The document's example with every port and name moved, on `platform`.
    fn topology(platform: Platform) -> Topology {
        let mut t = Topology::fixture("three-node").unwrap().topology;
        for h in &mut t.hosts {
            h.platform = platform;
        }
        t.ports.pcp = 19898;
        t.ports.postgres = 15432;
        t.shared_dir.volume = "evidence0".into();
        t.shared_dir.path = "/srv/ke2/shared".into();
        t
    }

    fn sources(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match &i.source {
                Source::File(p) | Source::Dir(p) => p.clone(),
                Source::Command(c) => c.to_string(),
            })
            .collect()
    }

    #[test]
    fn host_paths_come_from_the_platform_and_the_topology() {
        let debian = topology(Platform::Debian);
        let d = host_items(&debian.hosts[0], &debian);
        let ds = sources(&d);
        for want in [
            "/etc/postgresql/17/main/postgresql.conf",
            "/etc/postgresql/17/main/pg_hba.conf",
            "/var/lib/postgresql/17/main/postgresql.auto.conf",
            "/var/log/postgresql/postgresql-17-main.log",
            "/etc/pgpool2/pgpool.conf",
            "/etc/pgpool2/pool_hba.conf",
            "/var/lib/postgresql/.pgpass",
            "/var/log/glusterfs/glusterd.log",
            "/var/log/glusterfs/srv-ke2-shared.log",
            "/var/log/dockerd.log",
            "/var/log/sshd.log",
        ] {
            assert!(
                ds.iter().any(|s| s == want),
                "debian lacks `{want}`: {ds:#?}"
            );
        }
        let names: Vec<&str> = d.iter().map(|i| i.name.as_str()).collect();
        assert!(names.contains(&"etc_pgpool2_pgpool.conf"), "{names:?}");
        assert!(matches!(
            d.iter()
                .find(|i| i.name == "var_log_postgresql_postgresql-17-main.log")
                .map(|i| &i.source),
            Some(Source::File(_))
        ));

        let rhel = topology(Platform::Rhel9);
        let r = host_items(&rhel.hosts[0], &rhel);
        let rs = sources(&r);
        for want in [
            "/var/lib/pgsql/16/data/postgresql.conf",
            "/var/lib/pgsql/16/data/pg_hba.conf",
            "/etc/pgpool-II/pgpool.conf",
            "/etc/pgpool-II/pool_hba.conf",
            "/var/lib/pgsql/.pcppass",
        ] {
            assert!(
                rs.iter().any(|s| s == want),
                "rhel9 lacks `{want}`: {rs:#?}"
            );
        }
        // The logging collector's directory, read as one.
        assert!(matches!(
            r.iter()
                .find(|i| i.name == "var_lib_pgsql_16_data_log")
                .map(|i| &i.source),
            Some(Source::Dir(_))
        ));
        for debian_only in [
            "/etc/postgresql",
            "pgpool2/",
            "postgresql-17",
            "/var/lib/postgresql",
        ] {
            assert!(
                !rs.iter().any(|s| s.contains(debian_only)),
                "rhel9 names `{debian_only}`: {rs:#?}"
            );
        }
        // Ports and names from the topology, never the defaults.
        for items in [&ds, &rs] {
            let all = items.join("\n");
            assert!(all.contains("-p 19898"), "{all}");
            assert!(all.contains("-p 15432"), "{all}");
            assert!(all.contains("gluster volume info evidence0 --xml"), "{all}");
            for default in ["9898", "5432", "gvol0", "mnt-gluster"] {
                assert!(
                    !all.split(|c: char| !c.is_ascii_alphanumeric() && c != '-')
                        .any(|w| w == default),
                    "a default `{default}` in:\n{all}"
                );
            }
        }
        // Every name is one plain, distinct file name.
        for items in [&d, &r] {
            let mut names: Vec<&str> = items.iter().map(|i| i.name.as_str()).collect();
            assert!(names.iter().all(|n| is_plain_name(n)), "{names:?}");
            names.sort();
            let n = names.len();
            names.dedup();
            assert_eq!(names.len(), n, "duplicate names");
        }
        // No Gluster items on an existing shared directory.
        let mut existing = debian.clone();
        existing.shared_dir.kind = SharedDirKind::Existing;
        let e = sources(&host_items(&existing.hosts[0], &existing));
        assert!(!e.iter().any(|s| s.contains("gluster")), "{e:#?}");
    }

    /// Every file written goes through the redaction: a host whose every
    /// file and command answers with the secret in each of its forms
    /// leaves none of them in the export, and `***` in every file; absent
    /// files are skipped and noted; modes are 0600 and 0700.
    #[tokio::test]
    async fn every_written_item_is_redacted_and_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let secret = "Zq9@p/w:d%\"x".to_string();
        let forms = secret_forms(&secret);
        assert_eq!(forms.len(), 3, "{forms:?}");
        let leak = forms.join(" | ");
        let t = topology(Platform::Debian);
        let items = host_items(&t.hosts[0], &t);
        let rec = Recorder::new();
        let h = rec.host(&t.hosts[0].name);
        let mut absent = None;
        for i in &items {
            if let Source::File(p) = &i.source {
                // One file the host lacks.
                if p.ends_with("sshd.log") {
                    absent = Some(p.clone());
                    continue;
                }
                rec.file(h.name(), p, format!("{}: {leak}\n", i.name));
            }
        }
        rec.rule(Rule::any("", vec![Output::ok(format!("out {leak}\n"))]));
        let dir = tempfile::tempdir().unwrap();
        let hd = dir.path().join("host");
        let out = Out::new(vec![secret.clone()]);
        let report = export_host(
            &h,
            &items,
            &[("show-pool-nodes.txt", format!("pool {leak}"))],
            &hd,
            &out,
        )
        .await
        .unwrap();
        let absent = absent.unwrap();
        assert_eq!(report.absent, std::slice::from_ref(&absent));
        assert!(report.failed.is_empty(), "{report:?}");
        // Every item but the absent one, the extra, the index.
        assert_eq!(report.written.len(), items.len() - 1 + 2);
        assert_eq!(
            std::fs::metadata(&hd).unwrap().permissions().mode() & 0o777,
            0o700
        );
        let mut seen = 0;
        for e in std::fs::read_dir(&hd).unwrap() {
            let p = e.unwrap().path();
            let text = std::fs::read_to_string(&p).unwrap();
            for f in &forms {
                assert!(!text.contains(f.as_str()), "{p:?} holds `{f}`:\n{text}");
            }
            if p.file_name().unwrap() != "index.txt" {
                assert!(text.contains("***"), "{p:?}:\n{text}");
            }
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600,
                "{p:?}"
            );
            seen += 1;
        }
        assert_eq!(seen, report.written.len());
        let index = std::fs::read_to_string(hd.join("index.txt")).unwrap();
        assert!(
            index.contains(&format!("file `{absent}`\tabsent on the host, skipped")),
            "{index}"
        );

        // The run's own files (topology, install log) likewise.
        let state = tempfile::tempdir().unwrap();
        std::fs::write(state.path().join("install.log"), format!("log {leak}\n")).unwrap();
        assert!(
            copy_local(
                &state.path().join("install.log"),
                dir.path(),
                "install.log",
                &out
            )
            .unwrap()
        );
        assert!(!copy_local(&state.path().join("none"), dir.path(), "none", &out).unwrap());
        let copied = std::fs::read_to_string(dir.path().join("install.log")).unwrap();
        assert_eq!(copied, "log *** | *** | ***\n");
    }

    #[test]
    fn an_export_goes_into_a_new_or_empty_directory_only() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(export_dir_problem(&d.path().join("new")), None);
        assert_eq!(export_dir_problem(d.path()), None);
        std::fs::write(d.path().join("x"), "keep").unwrap();
        assert_eq!(
            export_dir_problem(d.path()),
            Some(format!(
                "`{}` is not empty (an export goes into a new or empty directory)",
                d.path().display()
            ))
        );
        assert_eq!(
            export_dir_problem(&d.path().join("x")),
            Some(format!(
                "`{}` exists and is not a directory",
                d.path().join("x").display()
            ))
        );
        assert_eq!(std::fs::read_to_string(d.path().join("x")).unwrap(), "keep");
    }

    #[test]
    fn document_defaults_are_no_secrets() {
        let mut c = Credentials::document_defaults();
        assert!(secret_values(&c).is_empty());
        c.kompira = ke2lab::topology::Secret::new("g3n3rated");
        assert_eq!(secret_values(&c), ["g3n3rated"]);
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("secrets.toml");
        assert!(kept_secrets(&p).is_empty());
        c.save(&p).unwrap();
        assert_eq!(kept_secrets(&p), ["g3n3rated"]);
    }
}
