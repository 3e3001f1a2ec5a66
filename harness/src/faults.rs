//! Fault injection, verbs in pairs: what a scenario breaks it can also mend.
//! Every fault goes into the lab's event log with its time, and stays in the
//! lab's list of active faults until its pair undoes it, so that teardown
//! can undo whatever a failing scenario left behind. The list is also kept
//! in the run directory (`faults.json`, written atomically, mode 0600), each
//! fault with a short id, so that another process (`ke2lab fault heal`) or
//! a later command can undo it.
//!
//! `ke2lab fault` parses its arguments here ([`Verb`] to [`Request`], pure,
//! unit-tested), checks the host names against the lab's topology, and
//! injects through [`Faults::apply`]. Everything a fault changes lives
//! inside the host containers (their network namespace, processes and
//! filesystems) or is a container's own state (stopped, paused): removing
//! the lab undoes every fault, and nothing on this machine outside the
//! containers needs undoing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use bollard::query_parameters::{StartContainerOptions, StopContainerOptionsBuilder};
use ke2lab::host::{Cmd, Host};
use ke2lab::layout::Layout;
use ke2lab::topology::shown;
use serde::{Deserialize, Serialize};

use crate::lab::Lab;

/// A service of a host that a fault can kill or freeze.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    Postgres,
    Pgpool,
    Glusterd,
    /// The host's Gluster brick processes (`glusterfsd`).
    Brick,
    Dockerd,
}

impl Service {
    /// Every service, in the order `fault list` names them.
    pub const ALL: [Service; 5] = [
        Service::Postgres,
        Service::Pgpool,
        Service::Brick,
        Service::Dockerd,
        Service::Glusterd,
    ];

    /// The process name `pkill -x` matches.
    fn process(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Pgpool => "pgpool",
            Service::Glusterd => "glusterd",
            Service::Brick => "glusterfsd",
            Service::Dockerd => "dockerd",
        }
    }

    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Service::Postgres => "postgres",
            Service::Pgpool => "pgpool",
            Service::Glusterd => "glusterd",
            Service::Brick => "brick",
            Service::Dockerd => "dockerd",
        }
    }

    /// `value` as the argument `arg` names it.
    pub fn parse(arg: &str, value: &str) -> Result<Service, BadFault> {
        Service::ALL
            .into_iter()
            .find(|s| s.name() == value)
            .ok_or_else(|| {
                BadFault(format!(
                    "`{arg}`: `{}` is not one of {}",
                    shown(value),
                    Service::ALL
                        .iter()
                        .map(|s| format!("`{}`", s.name()))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            })
    }
}

/// The filesystem a `disk-full` fault fills: the one under the Gluster
/// brick or under PGDATA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Area {
    Brick,
    Pgdata,
}

impl Area {
    pub fn name(self) -> &'static str {
        match self {
            Area::Brick => "brick",
            Area::Pgdata => "pgdata",
        }
    }

    pub fn parse(arg: &str, value: &str) -> Result<Area, BadFault> {
        match value {
            "brick" => Ok(Area::Brick),
            "pgdata" => Ok(Area::Pgdata),
            v => Err(BadFault(format!(
                "`{arg}`: `{}` is not `brick` or `pgdata`",
                shown(v)
            ))),
        }
    }
}

/// A fault in force.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    Stopped(String),
    Paused(String),
    Killed(String, Service),
    /// Two sides that cannot reach each other.
    Partition(Vec<String>, Vec<String>),
    VxlanTcpDropped(u16),
    /// netem delay on `dev` of `host` for packets to the hosts `to`.
    Slowed {
        host: String,
        to: Vec<String>,
        dev: String,
        delay_us: u64,
        jitter_us: u64,
    },
    /// Packets between `host` and the hosts `to` dropped at random, each
    /// way, by the nftables table `table` in `host`.
    Lossy {
        host: String,
        to: Vec<String>,
        permille: u16,
        table: String,
    },
    /// The main process of a service killed (SIGKILL).
    ProcessKilled {
        host: String,
        process: Service,
        pids: Vec<u32>,
    },
    /// Every process of a service stopped (SIGSTOP).
    Frozen {
        host: String,
        process: Service,
        pids: Vec<u32>,
    },
    /// A filler file of `bytes` on the filesystem under a brick or PGDATA.
    DiskFilled {
        host: String,
        area: Area,
        filler: String,
        bytes: u64,
    },
}

impl Fault {
    /// The hosts whose containers must run for the fault to be undone.
    fn is_host_state(&self) -> bool {
        matches!(self, Fault::Paused(_) | Fault::Stopped(_))
    }

    /// How the fault is undone, for people.
    pub fn undo(&self) -> String {
        match self {
            Fault::Stopped(h) => format!("start the container of `{h}`"),
            Fault::Paused(h) => format!("unpause the container of `{h}`"),
            Fault::Killed(h, s)
            | Fault::ProcessKilled {
                host: h,
                process: s,
                ..
            } => {
                format!("start {} on `{h}`", s.name())
            }
            Fault::Partition(..) => {
                "delete the nftables table `ke2lab_partition` on each side".into()
            }
            Fault::VxlanTcpDropped(_) => "delete the nftables table `ke2lab` on every host".into(),
            Fault::Slowed { host, dev, .. } => {
                format!("delete the root qdisc of `{dev}` on `{host}`")
            }
            Fault::Lossy { host, table, .. } => {
                format!("delete the nftables table `{table}` on `{host}`")
            }
            Fault::Frozen { host, pids, .. } => {
                format!("SIGCONT to {} on `{host}`", pids_shown(pids))
            }
            Fault::DiskFilled { host, filler, .. } => format!("remove `{filler}` on `{host}`"),
        }
    }
}

/// An argument of `ke2lab fault` that is wrong: bad input (exit 2), found
/// before anything is injected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadFault(pub String);

impl std::fmt::Display for BadFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadFault {}

/// The run directory's file of the faults in force.
pub const FAULTS_FILE: &str = "faults.json";

/// A fault in force with its id and when it was injected.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Active {
    /// `f1`, `f2`, …: what `ke2lab fault heal` takes.
    pub id: String,
    /// Wall-clock time of the injection (RFC 3339, UTC).
    pub since: String,
    pub what: String,
    pub undo: String,
    pub fault: Fault,
}

/// What `faults.json` holds: the faults in force, oldest first, and the
/// number of the next id (ids are never reused within a run).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub next: u32,
    pub active: Vec<Active>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            version: 1,
            next: 1,
            active: Vec::new(),
        }
    }
}

impl Record {
    /// The record in `dir` (an empty one when the file is missing).
    pub fn load(dir: &Path) -> Result<Record> {
        let path = dir.join(FAULTS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Record::parse(&text).with_context(|| format!("`{}`", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Record::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read `{}`", path.display())),
        }
    }

    pub fn parse(text: &str) -> Result<Record> {
        let r: Record = serde_json::from_str(text).context("not a faults record")?;
        if r.version != 1 {
            bail!("faults record version {} (this ke2lab reads 1)", r.version);
        }
        Ok(r)
    }

    /// Writes the record into `dir` atomically (a temporary file of mode
    /// 0600 renamed over `faults.json`), so a reader never sees half of it.
    pub fn save(&self, dir: &Path) -> Result<PathBuf> {
        use std::io::Write as _;
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = dir.join(FAULTS_FILE);
        let tmp = dir.join(format!(".{FAULTS_FILE}.{}", std::process::id()));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("cannot write `{}`", tmp.display()))?;
        let mut body = serde_json::to_string_pretty(self)?;
        body.push('\n');
        f.write_all(body.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
            .with_context(|| format!("cannot write `{}`", path.display()))?;
        Ok(path)
    }

    /// Adds `fault`; returns its id.
    fn push(&mut self, fault: Fault, what: String) -> String {
        let id = format!("f{}", self.next);
        self.next += 1;
        self.active.push(Active {
            id: id.clone(),
            since: humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string(),
            what,
            undo: fault.undo(),
            fault,
        });
        id
    }

    fn remove(&mut self, fault: &Fault) {
        self.active.retain(|a| &a.fault != fault);
    }

    /// The fault with id `id`.
    pub fn find(&self, id: &str) -> Result<&Active, BadFault> {
        self.active.iter().find(|a| a.id == id).ok_or_else(|| {
            BadFault(format!(
                "`ID`: no fault `{}` is in force (in force: {})",
                shown(id),
                if self.active.is_empty() {
                    "none".to_string()
                } else {
                    self.active
                        .iter()
                        .map(|a| format!("`{}`", a.id))
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ))
        })
    }
}

/// `fault active`'s table: one line per fault (id, since, what, undo).
pub fn active_table(active: &[Active]) -> String {
    if active.is_empty() {
        return "no fault is in force\n".into();
    }
    active
        .iter()
        .map(|a| format!("{:<4} {}  {}  (heal: {})\n", a.id, a.since, a.what, a.undo))
        .collect()
}

/// The vocabulary: verb, arguments, what it does, how it is undone.
pub const VOCABULARY: &[(&str, &str, &str, &str)] = &[
    (
        "stop",
        "HOST",
        "stops the host's container (the machine goes away, connections are refused)",
        "heal starts it; its boot script runs as on a reboot",
    ),
    (
        "pause",
        "HOST",
        "freezes every process of the host (cgroup freezer): it hangs, peers time out",
        "heal unpauses it",
    ),
    (
        "kill",
        "HOST postgres|pgpool|brick|dockerd|glusterd",
        "SIGKILL to every process of the service, as a crash",
        "heal starts the service as the host's service manager would",
    ),
    (
        "kill-process",
        "HOST postgres|pgpool|brick|dockerd|glusterd",
        "SIGKILL to the service's main process only (the postmaster, Pgpool-II's parent, every glusterfsd)",
        "heal starts the service",
    ),
    (
        "freeze-process",
        "HOST postgres|pgpool|brick|dockerd|glusterd",
        "SIGSTOP to every process of the service: it hangs without dying",
        "heal sends SIGCONT to the same processes",
    ),
    (
        "partition",
        "HOSTS [--from HOSTS]",
        "drops every packet between the two groups (default: the other hosts), both ways (nftables)",
        "heal deletes the partition table on every host of both sides",
    ),
    (
        "slow",
        "HOST [--from HOSTS] --delay 200ms [--jitter 20ms]",
        "delays what HOST sends to the group (netem under a prio qdisc, a u32 filter per address); fails, injecting nothing, where the kernel has no netem",
        "heal deletes the root qdisc",
    ),
    (
        "flaky",
        "HOST [--from HOSTS] --loss 10%",
        "drops that share of packets at random between HOST and the group, each way (nftables numgen)",
        "heal deletes its nftables table",
    ),
    (
        "disk-full",
        "HOST brick|pgdata [--leave 10MiB]",
        "fills the filesystem under the brick or PGDATA with a filler file until only --leave is free (refused on the container's root, which is this machine's disk)",
        "heal removes the filler",
    ),
    (
        "drop-vxlan-tcp",
        "[--port PORT]",
        "the vmxnet3 model: every host drops VXLAN frames carrying TCP on the data-path port (default: the topology's)",
        "heal deletes the nftables table `ke2lab` on every host",
    ),
];

/// `fault list`'s text: one line per verb.
pub fn vocabulary() -> String {
    let mut out = String::new();
    for (verb, args, what, undo) in VOCABULARY {
        out.push_str(&format!("{verb} {args}: {what}; {undo}\n"));
    }
    out.push_str(
        "active [--json]: the faults in force with their ids; heal ID|--all: undoes one or all; list: this vocabulary\n",
    );
    out
}

/// `ke2lab fault`'s verbs, as the command line gives them (values are
/// strings, parsed by [`Verb::request`] so that every error is ours).
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum Verb {
    /// The vocabulary: one line per verb (arguments, effect, undo).
    List,
    /// The faults in force, with their ids.
    Active {
        /// One JSON document (the run's `faults.json`) on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Undo one fault (by id) or every fault in force.
    Heal {
        #[arg(required_unless_present = "all", conflicts_with = "all")]
        id: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Stop a host's container.
    Stop { host: String },
    /// Freeze a host (cgroup freezer).
    Pause { host: String },
    /// SIGKILL every process of a service.
    Kill { host: String, service: String },
    /// SIGKILL a service's main process.
    KillProcess { host: String, process: String },
    /// SIGSTOP every process of a service.
    FreezeProcess { host: String, process: String },
    /// Cut HOSTS (comma-separated) from the others or `--from HOSTS`.
    Partition {
        hosts: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// Delay what HOST sends to the others (or `--from HOSTS`).
    Slow {
        host: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        delay: String,
        #[arg(long)]
        jitter: Option<String>,
    },
    /// Drop a share of the packets between HOST and the others.
    Flaky {
        host: String,
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        loss: String,
    },
    /// Fill the filesystem under the brick or PGDATA.
    DiskFull {
        host: String,
        area: String,
        #[arg(long)]
        leave: Option<String>,
    },
    /// The vmxnet3 model on every host.
    DropVxlanTcp {
        #[arg(long)]
        port: Option<String>,
    },
    #[command(external_subcommand)]
    Unknown(Vec<String>),
}

/// A fault to inject, its arguments parsed; `from` of `None` means every
/// other host of the lab.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Stop(String),
    Pause(String),
    Kill(String, Service),
    KillProcess(String, Service),
    FreezeProcess(String, Service),
    Partition(Vec<String>, Option<Vec<String>>),
    Slow {
        host: String,
        from: Option<Vec<String>>,
        delay: Duration,
        jitter: Duration,
    },
    Flaky {
        host: String,
        from: Option<Vec<String>>,
        permille: u16,
    },
    DiskFull {
        host: String,
        area: Area,
        leave: u64,
    },
    DropVxlanTcp(Option<u16>),
}

/// What `disk-full` leaves free without `--leave`.
pub const DEFAULT_LEAVE: u64 = 10 << 20;
/// The most a `disk-full` filler may be: a filesystem that would take more
/// is not a small dedicated one, and filling it could fill this machine.
pub const MAX_FILLER: u64 = 4 << 30;
/// The longest delay or jitter `slow` takes.
const MAX_DELAY: Duration = Duration::from_secs(60);

impl Verb {
    /// The fault this verb injects, its arguments checked (`None` for
    /// `list`, `active` and `heal`).
    pub fn request(&self) -> Result<Option<Request>, BadFault> {
        Ok(Some(match self {
            Verb::List | Verb::Active { .. } | Verb::Heal { .. } => return Ok(None),
            Verb::Unknown(argv) => {
                return Err(BadFault(format!(
                    "`VERB`: unknown fault verb `{}` (`ke2lab fault list` shows the verbs)",
                    shown(argv.first().map(String::as_str).unwrap_or(""))
                )));
            }
            Verb::Stop { host } => Request::Stop(host_name("HOST", host)?),
            Verb::Pause { host } => Request::Pause(host_name("HOST", host)?),
            Verb::Kill { host, service } => Request::Kill(
                host_name("HOST", host)?,
                Service::parse("SERVICE", service)?,
            ),
            Verb::KillProcess { host, process } => Request::KillProcess(
                host_name("HOST", host)?,
                Service::parse("PROCESS", process)?,
            ),
            Verb::FreezeProcess { host, process } => Request::FreezeProcess(
                host_name("HOST", host)?,
                Service::parse("PROCESS", process)?,
            ),
            Verb::Partition { hosts, from } => Request::Partition(
                parse_hosts("HOSTS", hosts)?,
                from.as_deref()
                    .map(|f| parse_hosts("--from", f))
                    .transpose()?,
            ),
            Verb::Slow {
                host,
                from,
                delay,
                jitter,
            } => Request::Slow {
                host: host_name("HOST", host)?,
                from: from
                    .as_deref()
                    .map(|f| parse_hosts("--from", f))
                    .transpose()?,
                delay: parse_delay("--delay", delay, false)?,
                jitter: jitter
                    .as_deref()
                    .map(|j| parse_delay("--jitter", j, true))
                    .transpose()?
                    .unwrap_or_default(),
            },
            Verb::Flaky { host, from, loss } => Request::Flaky {
                host: host_name("HOST", host)?,
                from: from
                    .as_deref()
                    .map(|f| parse_hosts("--from", f))
                    .transpose()?,
                permille: parse_percent("--loss", loss)?,
            },
            Verb::DiskFull { host, area, leave } => Request::DiskFull {
                host: host_name("HOST", host)?,
                area: Area::parse("AREA", area)?,
                leave: leave
                    .as_deref()
                    .map(|l| parse_size("--leave", l))
                    .transpose()?
                    .unwrap_or(DEFAULT_LEAVE),
            },
            Verb::DropVxlanTcp { port } => Request::DropVxlanTcp(
                port.as_deref()
                    .map(|p| parse_port("--port", p))
                    .transpose()?,
            ),
        }))
    }
}

fn host_name(arg: &str, value: &str) -> Result<String, BadFault> {
    if value.is_empty() {
        return Err(BadFault(format!("`{arg}`: an empty host name")));
    }
    Ok(value.to_string())
}

/// A comma-separated list of host names, none empty, none twice.
pub fn parse_hosts(arg: &str, value: &str) -> Result<Vec<String>, BadFault> {
    let mut out: Vec<String> = Vec::new();
    for n in value.split(',').map(str::trim) {
        if n.is_empty() {
            return Err(BadFault(format!(
                "`{arg}`: `{}` has an empty host name (expected e.g. `ke2-server2,ke2-server3`)",
                shown(value)
            )));
        }
        if out.iter().any(|o| o == n) {
            return Err(BadFault(format!(
                "`{arg}`: `{}` names `{}` twice",
                shown(value),
                shown(n)
            )));
        }
        out.push(n.to_string());
    }
    Ok(out)
}

/// A delay such as `200ms`, `1s`, `1500us` (at most a minute; zero only
/// where `zero_ok`).
pub fn parse_delay(arg: &str, value: &str, zero_ok: bool) -> Result<Duration, BadFault> {
    let bad = |why: &str| {
        BadFault(format!(
            "`{arg}`: `{}` is {why} (expected a number and a unit, e.g. `200ms`, `1s`)",
            shown(value)
        ))
    };
    // humantime reads a bare number as an error and `1h` as an hour; both
    // are checked below.
    let d = humantime::parse_duration(value.trim()).map_err(|_| bad("not a duration"))?;
    if d.is_zero() && !zero_ok {
        return Err(bad("zero"));
    }
    if d > MAX_DELAY {
        return Err(bad("longer than a minute"));
    }
    if d.subsec_nanos() % 1000 != 0 {
        return Err(bad("finer than a microsecond"));
    }
    Ok(d)
}

/// A share such as `10%`, `10` or `0.5%`, in per mille: more than 0, at
/// most 100 %, at most one decimal.
pub fn parse_percent(arg: &str, value: &str) -> Result<u16, BadFault> {
    let bad = |why: &str| {
        BadFault(format!(
            "`{arg}`: `{}` is {why} (expected a percentage above 0 and at most 100, e.g. `10%` or `0.5%`)",
            shown(value)
        ))
    };
    let v = value.trim();
    let v = v.strip_suffix('%').unwrap_or(v);
    let (whole, frac) = match v.split_once('.') {
        Some((w, f)) => (w, f),
        None => (v, ""),
    };
    if whole.is_empty()
        || whole.len() > 3
        || frac.len() > 1
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (v.contains('.') && frac.is_empty())
    {
        return Err(bad("not a percentage"));
    }
    let permille = whole.parse::<u16>().map_err(|_| bad("not a percentage"))? * 10
        + frac.parse::<u16>().unwrap_or(0);
    if permille == 0 || permille > 1000 {
        return Err(bad("out of range"));
    }
    Ok(permille)
}

/// A size such as `10MiB`, `512KiB`, `1GiB`, `4096` (bytes); `K`, `M`, `G`
/// are binary units too.
pub fn parse_size(arg: &str, value: &str) -> Result<u64, BadFault> {
    let bad = || {
        BadFault(format!(
            "`{arg}`: `{}` is not a size (expected a whole number and a unit, e.g. `10MiB`, `512KiB`, `1GiB`)",
            shown(value)
        ))
    };
    let v = value.trim();
    let digits = v.bytes().take_while(|b| b.is_ascii_digit()).count();
    if digits == 0 {
        return Err(bad());
    }
    let n: u64 = v[..digits].parse().map_err(|_| bad())?;
    let unit: u64 = match &v[digits..] {
        "" | "B" => 1,
        "K" | "KiB" => 1 << 10,
        "M" | "MiB" => 1 << 20,
        "G" | "GiB" => 1 << 30,
        _ => return Err(bad()),
    };
    n.checked_mul(unit).ok_or_else(bad)
}

fn parse_port(arg: &str, value: &str) -> Result<u16, BadFault> {
    match value.parse::<u16>() {
        Ok(p) if p > 0 => Ok(p),
        _ => Err(BadFault(format!(
            "`{arg}`: `{}` is not a port (1..=65535)",
            shown(value)
        ))),
    }
}

impl Request {
    /// The request with every host checked against `hosts` (the lab's, in
    /// topology order) and an absent `--from` made the other hosts.
    pub fn resolve(self, hosts: &[&str]) -> Result<Request, BadFault> {
        let known = |arg: &str, n: &str| -> Result<(), BadFault> {
            if hosts.contains(&n) {
                Ok(())
            } else {
                Err(BadFault(format!(
                    "`{arg}`: the lab has no host `{}` (its hosts: {})",
                    shown(n),
                    hosts.join(", ")
                )))
            }
        };
        let group = |arg: &str, mine: &[String], from: Option<Vec<String>>| {
            for n in mine {
                known(if arg == "--from" { "HOSTS" } else { "HOST" }, n)?;
            }
            let from = match from {
                Some(f) => {
                    for n in &f {
                        known("--from", n)?;
                    }
                    f
                }
                None => hosts
                    .iter()
                    .filter(|h| !mine.iter().any(|m| m == *h))
                    .map(|h| h.to_string())
                    .collect(),
            };
            if from.is_empty() {
                return Err(BadFault(format!(
                    "`--from`: no other host to act against (the lab's hosts: {})",
                    hosts.join(", ")
                )));
            }
            if let Some(both) = from.iter().find(|f| mine.contains(f)) {
                return Err(BadFault(format!(
                    "`--from`: `{}` is on both sides",
                    shown(both)
                )));
            }
            Ok(from)
        };
        Ok(match self {
            Request::Stop(h) => {
                known("HOST", &h)?;
                Request::Stop(h)
            }
            Request::Pause(h) => {
                known("HOST", &h)?;
                Request::Pause(h)
            }
            Request::Kill(h, s) => {
                known("HOST", &h)?;
                Request::Kill(h, s)
            }
            Request::KillProcess(h, s) => {
                known("HOST", &h)?;
                Request::KillProcess(h, s)
            }
            Request::FreezeProcess(h, s) => {
                known("HOST", &h)?;
                Request::FreezeProcess(h, s)
            }
            Request::DiskFull { host, area, leave } => {
                known("HOST", &host)?;
                Request::DiskFull { host, area, leave }
            }
            Request::DropVxlanTcp(p) => Request::DropVxlanTcp(p),
            Request::Partition(a, from) => {
                let b = group("--from", &a, from)?;
                Request::Partition(a, Some(b))
            }
            Request::Slow {
                host,
                from,
                delay,
                jitter,
            } => {
                let from = group("HOST", std::slice::from_ref(&host), from)?;
                Request::Slow {
                    host,
                    from: Some(from),
                    delay,
                    jitter,
                }
            }
            Request::Flaky {
                host,
                from,
                permille,
            } => {
                let from = group("HOST", std::slice::from_ref(&host), from)?;
                Request::Flaky {
                    host,
                    from: Some(from),
                    permille,
                }
            }
        })
    }
}

/// The nftables table of a partition (one per host, whatever the sides).
const PARTITION_TABLE: &str = "ke2lab_partition";
/// The nftables table of the vmxnet3 model.
const VXLAN_TABLE: &str = "ke2lab";

/// `dev`'s root qdisc that `slow` adds: band 4 of a prio qdisc is reached
/// only through the u32 filters (the priomap uses bands 1-3), so traffic
/// to other addresses is untouched; netem delays band 4.
pub fn slow_cmd(own: &str, to: &[String], delay: Duration, jitter: Duration) -> Cmd {
    let mut netem = format!("delay {}us", delay.as_micros());
    if !jitter.is_zero() {
        netem.push_str(&format!(" {}us", jitter.as_micros()));
    }
    Cmd::sh(
        "dev=$(ip -o -4 addr show to \"$1\" | awk '{print $2; exit}') && test -n \"$dev\" \
         || { echo \"no interface holds $1\" >&2; exit 3; }; \
         netem=$2; shift 2; \
         tc qdisc add dev \"$dev\" root handle 1: prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1 \
         || exit 4; \
         undo() { tc qdisc del dev \"$dev\" root; exit 4; }; \
         tc qdisc add dev \"$dev\" parent 1:4 handle 40: netem $netem || undo; \
         for a in \"$@\"; do tc filter add dev \"$dev\" parent 1: protocol ip prio 1 u32 \
         match ip dst \"$a\"/32 flowid 1:4 || undo; done; \
         echo \"$dev\"",
    )
    .arg(own)
    .arg(netem)
    .args_from(to.iter().cloned())
}

/// Undoes [`slow_cmd`]: deletes the prio root qdisc of `dev` when it is there.
pub fn unslow_cmd(dev: &str) -> Cmd {
    Cmd::sh(
        "if tc qdisc show dev \"$1\" | grep -q '^qdisc prio 1: root'; then tc qdisc del dev \"$1\" root; fi",
    )
    .arg(dev)
}

/// Whether the host's kernel has the qdiscs `slow` needs, tried in a
/// network namespace of its own (the host's links are not touched). On
/// failure it prints tc's answer and the kernel's settings for them.
pub fn netem_probe_cmd() -> Cmd {
    Cmd::sh(
        "out=$(unshare -n sh -c 'tc qdisc add dev lo root handle 1: prio bands 4 && \
         tc qdisc add dev lo parent 1:4 handle 40: netem delay 1ms' 2>&1) && exit 0; \
         echo \"$out\"; \
         zcat /proc/config.gz 2>/dev/null | grep -E 'CONFIG_NET_SCH_(NETEM|PRIO)[= ]'; exit 1",
    )
}

/// Why `slow` cannot be injected, from [`netem_probe_cmd`]'s output.
pub fn netem_refusal(host: &str, probe_output: &str) -> String {
    let lines: Vec<&str> = probe_output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let config: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("CONFIG_NET_SCH_"))
        .collect();
    let tc: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.contains("CONFIG_NET_SCH_"))
        .collect();
    let mut why = format!(
        "`slow`: the kernel of `{host}` cannot delay packets: `tc qdisc add … prio` / `netem` answered `{}`",
        tc.join(" ")
    );
    if !config.is_empty() {
        why.push_str(&format!(" (kernel: {})", config.join(", ")));
    }
    why.push_str(
        "; netem (sch_netem) is the only delay qdisc, and nftables can drop but not delay: nothing injected",
    );
    why
}

/// The nftables ruleset of a `flaky` fault: packets from and to `to`
/// dropped with probability `permille`/1000 each way.
pub fn loss_ruleset(table: &str, to: &[String], permille: u16) -> String {
    let set = to.join(", ");
    format!(
        "table inet {table} {{\n\
         \tchain in {{\n\t\ttype filter hook input priority -10; policy accept;\n\
         \t\tip saddr {{ {set} }} numgen random mod 1000 < {permille} drop\n\t}}\n\
         \tchain out {{\n\t\ttype filter hook output priority -10; policy accept;\n\
         \t\tip daddr {{ {set} }} numgen random mod 1000 < {permille} drop\n\t}}\n\
         }}\n"
    )
}

/// Loads a ruleset in one transaction: all of it or nothing.
pub fn nft_load_cmd(ruleset: String) -> Cmd {
    Cmd::new(["nft", "-f", "-"]).stdin(ruleset)
}

/// Deletes the nftables table `table` when it is there.
pub fn nft_drop_table_cmd(table: &str) -> Cmd {
    Cmd::sh("! nft list table inet \"$1\" >/dev/null 2>&1 || nft delete table inet \"$1\"")
        .arg(table)
}

/// The pids `kill-process` (main: the oldest process of the name, except
/// for bricks, one process each) or `freeze-process` (every process of the
/// name) acts on, one per line.
pub fn pids_cmd(s: Service, main_only: bool) -> Cmd {
    if main_only && s != Service::Brick {
        Cmd::new(["pgrep", "-o", "-x", s.process()])
    } else {
        Cmd::new(["pgrep", "-x", s.process()])
    }
}

/// `pgrep`'s output as pids.
pub fn parse_pids(out: &str) -> Result<Vec<u32>> {
    out.split_whitespace()
        .map(|p| {
            p.parse()
                .map_err(|_| anyhow!("`pgrep` printed `{}`, not a pid", shown(p)))
        })
        .collect()
}

/// Pids for people: all of a few, the first three and the count of many
/// (the record keeps every one).
pub fn pids_shown(pids: &[u32]) -> String {
    if pids.len() <= 4 {
        format!("{pids:?}")
    } else {
        format!(
            "[{}, … {} processes]",
            pids[..3]
                .iter()
                .map(u32::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            pids.len()
        )
    }
}

/// Sends `signal` (`KILL`, `STOP`, `CONT`) to `pids`; with `gone_ok`, a
/// process that no longer exists is no error (undoing after a reboot).
pub fn signal_cmd(signal: &str, pids: &[u32], gone_ok: bool) -> Cmd {
    let pids = pids.iter().map(u32::to_string);
    if gone_ok {
        Cmd::sh("sig=$1; shift; for p in \"$@\"; do kill -\"$sig\" \"$p\" 2>/dev/null || ! kill -0 \"$p\" 2>/dev/null || exit 1; done")
            .arg(signal)
            .args_from(pids)
    } else {
        Cmd::new(["kill".to_string(), format!("-{signal}")]).args_from(pids)
    }
}

/// The filesystem under a directory, as `df` reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Df {
    pub fstype: String,
    pub avail: u64,
    pub target: String,
}

/// `df` of the filesystem under `dir` in bytes (`fstype avail target`); a
/// `dir` not made yet (PGDATA before the install) is on its nearest
/// existing parent's filesystem.
pub fn df_cmd(dir: &str) -> Cmd {
    Cmd::sh(
        "d=$1; while [ ! -e \"$d\" ]; do d=$(dirname -- \"$d\"); done; \
         df -B1 --output=fstype,avail,target -- \"$d\"",
    )
    .arg(dir)
}

/// [`df_cmd`]'s output.
pub fn parse_df(out: &str) -> Result<Df> {
    let line = out
        .lines()
        .rfind(|l| !l.trim().is_empty())
        .ok_or_else(|| anyhow!("`df` printed nothing"))?;
    let mut f = line.split_whitespace();
    let (Some(fstype), Some(avail), Some(target)) = (f.next(), f.next(), f.next()) else {
        bail!("`df` printed `{}`", shown(line));
    };
    Ok(Df {
        fstype: fstype.into(),
        avail: avail
            .parse()
            .map_err(|_| anyhow!("`df` printed `{}`", shown(line)))?,
        target: target.into(),
    })
}

/// Where the filler of fault `id` goes and how big it is, so that `leave`
/// bytes stay free on `df`'s filesystem; refused where filling would reach
/// outside the host (the container's root and the host's data volume at
/// [`crate::lab::HOST_DISK`] are this machine's own disk) or where the filler would be huge.
pub fn disk_plan(host: &str, dir: &str, df: &Df, leave: u64, id: &str) -> Result<(String, u64)> {
    let mib = |b: u64| b >> 20;
    let disk = crate::lab::HOST_DISK;
    if df.target == "/" || df.target == disk || df.target.starts_with(&format!("{disk}/")) {
        bail!(
            "`disk-full`: `{dir}` on `{host}` is on `{}` ({}), a lab host's {} filesystem, which is this machine's own disk ({} MiB free): filling it would fill the machine; nothing injected (a filesystem of the host's own mounted there is filled instead: on a lab booted with `up --no-install`, e.g. `mount -t tmpfs -o size=256m tmpfs {dir}` before the install)",
            df.target,
            df.fstype,
            if df.target == "/" {
                "root"
            } else {
                "data volume's"
            },
            mib(df.avail)
        );
    }
    if df.avail <= leave {
        bail!(
            "`disk-full`: `{}` on `{host}` has {} MiB free, not more than `--leave` ({} MiB): nothing to fill",
            df.target,
            mib(df.avail),
            mib(leave)
        );
    }
    let bytes = df.avail - leave;
    if bytes > MAX_FILLER {
        bail!(
            "`disk-full`: filling `{}` on `{host}` takes {} MiB, more than ke2lab writes ({} MiB); nothing injected",
            df.target,
            mib(bytes),
            mib(MAX_FILLER)
        );
    }
    let filler = format!("{}/.ke2lab-filler-{id}", df.target.trim_end_matches('/'));
    Ok((filler, bytes))
}

/// Writes the filler: `fallocate` where the filesystem has it, else zeros.
pub fn fill_cmd(filler: &str, bytes: u64) -> Cmd {
    Cmd::sh(
        "umask 077; fallocate -l \"$2\" -- \"$1\" 2>/dev/null || { rm -f -- \"$1\"; \
         head -c \"$2\" /dev/zero > \"$1\" || { rm -f -- \"$1\"; exit 1; }; }",
    )
    .arg(filler)
    .arg(bytes.to_string())
}

/// Removes the filler (none there is no error).
pub fn unfill_cmd(filler: &str) -> Cmd {
    Cmd::new(["rm", "-f", "--", filler])
}

/// The fault injector of a lab.
pub struct Faults<'a> {
    lab: &'a Lab,
}

impl<'a> Faults<'a> {
    pub fn new(lab: &'a Lab) -> Self {
        Faults { lab }
    }

    /// Takes `faults.lock` in the run directory for as long as the returned
    /// file lives and reads `faults.json` again, so that two commands on one
    /// lab do not overwrite each other's record.
    pub fn lock(&self) -> Result<std::fs::File> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let path = self.lab.state_dir.join("faults.lock");
        let f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .with_context(|| format!("cannot open `{}`", path.display()))?;
        f.lock()
            .with_context(|| format!("cannot lock `{}`", path.display()))?;
        *self.lab.active_faults.lock().unwrap() = Record::load(&self.lab.state_dir)?;
        Ok(f)
    }

    /// Writes the record into the run directory (when it has one).
    pub fn persist(&self) -> Result<()> {
        if !self.lab.state_dir.is_dir() {
            return Ok(());
        }
        self.lab
            .active_faults
            .lock()
            .unwrap()
            .save(&self.lab.state_dir)
            .map(|_| ())
    }

    fn persist_or_warn(&self) {
        if let Err(e) = self.persist() {
            eprintln!("warning: cannot record the faults in force: {e:#}");
        }
    }

    fn inject(&self, f: Fault, what: String) -> Instant {
        eprintln!("fault: {what}");
        let at = self.lab.events.record(format!("fault: {what}"));
        self.lab.active_faults.lock().unwrap().push(f, what);
        self.persist_or_warn();
        at
    }

    fn mend(&self, f: &Fault, what: String) -> Instant {
        eprintln!("repair: {what}");
        let at = self.lab.events.record(format!("repair: {what}"));
        self.lab.active_faults.lock().unwrap().remove(f);
        self.persist_or_warn();
        at
    }

    /// Records that something other than its pair mended `f` (a
    /// re-provision restarted a killed service, say), so teardown leaves it.
    pub fn mended(&self, f: &Fault, how: &str) {
        self.mend(f, format!("{f:?} mended: {how}"));
    }

    /// Forgets every fault without undoing it: the lab is being removed,
    /// which undoes them all (they live in its containers). Returns them.
    pub fn forget_all(&self) -> Vec<Active> {
        let gone = std::mem::take(&mut self.lab.active_faults.lock().unwrap().active);
        for a in &gone {
            self.lab.events.record(format!(
                "forget fault {}: {} (the lab is removed)",
                a.id, a.what
            ));
        }
        self.persist_or_warn();
        gone
    }

    /// The faults in force now, oldest first.
    pub fn active(&self) -> Vec<Fault> {
        self.records().into_iter().map(|a| a.fault).collect()
    }

    /// The faults in force with their ids, oldest first.
    pub fn records(&self) -> Vec<Active> {
        self.lab.active_faults.lock().unwrap().active.clone()
    }

    /// The id of the newest fault equal to `f` in force.
    fn id_of(&self, f: &Fault) -> Option<String> {
        self.records()
            .into_iter()
            .rev()
            .find(|a| &a.fault == f)
            .map(|a| a.id)
    }

    fn spec(&self, host: &str) -> Result<&ke2lab::topology::HostSpec> {
        self.lab
            .topology
            .host(host)
            .ok_or_else(|| anyhow!("the lab has no host `{host}`"))
    }

    fn addr(&self, host: &str) -> Result<String> {
        Ok(self.spec(host)?.address.to_string())
    }

    /// Injects a request [`Request::resolve`]d against the lab; returns the
    /// new fault's id.
    pub async fn apply(&mut self, r: &Request) -> Result<String> {
        let mine = |v: &Option<Vec<String>>| v.clone().unwrap_or_default();
        let fault = match r {
            Request::Stop(h) => {
                self.stop(h).await?;
                Fault::Stopped(h.clone())
            }
            Request::Pause(h) => {
                self.pause(h).await?;
                Fault::Paused(h.clone())
            }
            Request::Kill(h, s) => {
                // Nothing to kill is an error before anything is recorded.
                self.pids(self.lab.host(h)?.as_ref(), *s, false).await?;
                self.kill_service(h, *s).await?;
                Fault::Killed(h.clone(), *s)
            }
            Request::KillProcess(h, s) => self.kill_process(h, *s).await?,
            Request::FreezeProcess(h, s) => self.freeze_process(h, *s).await?,
            Request::Partition(a, b) => {
                if let Some(p) = self
                    .records()
                    .into_iter()
                    .find(|x| matches!(x.fault, Fault::Partition(..)))
                {
                    return Err(anyhow::Error::new(BadFault(format!(
                        "`partition`: fault `{}` ({}) is a partition in force already; heal it first",
                        p.id, p.what
                    ))));
                }
                let a: Vec<&str> = a.iter().map(String::as_str).collect();
                let b = mine(b);
                let b: Vec<&str> = b.iter().map(String::as_str).collect();
                self.partition(&a, &b).await?;
                Fault::Partition(
                    a.iter().map(|s| s.to_string()).collect(),
                    b.iter().map(|s| s.to_string()).collect(),
                )
            }
            Request::Slow {
                host,
                from,
                delay,
                jitter,
            } => self.slow(host, &mine(from), *delay, *jitter).await?,
            Request::Flaky {
                host,
                from,
                permille,
            } => self.flaky(host, &mine(from), *permille).await?,
            Request::DiskFull { host, area, leave } => self.disk_full(host, *area, *leave).await?,
            Request::DropVxlanTcp(port) => {
                let port = port.unwrap_or_else(|| self.lab.topology.data_path_port());
                self.drop_vxlan_tcp(port).await?;
                Fault::VxlanTcpDropped(port)
            }
        };
        self.id_of(&fault)
            .ok_or_else(|| anyhow!("fault {fault:?} is not in the record"))
    }

    /// Kills a service's processes with SIGKILL, as a crash would; returns
    /// the moment of the kill.
    pub async fn kill_service(&mut self, host: &str, s: Service) -> Result<Instant> {
        let h = self.lab.host(host)?;
        let at = self.inject(
            Fault::Killed(host.into(), s),
            format!("kill {s:?} on `{host}`"),
        );
        Cmd::new(["pkill", "-KILL", "-x", s.process()])
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot kill {s:?} on `{host}`"))?;
        Ok(at)
    }

    /// Starts a killed service again as the host's service manager would.
    pub async fn start_service(&mut self, host: &str, s: Service) -> Result<()> {
        self.mend(
            &Fault::Killed(host.into(), s),
            format!("start {s:?} on `{host}`"),
        );
        self.restart_service(host, s).await
    }

    async fn restart_service(&self, host: &str, s: Service) -> Result<()> {
        let h = self.lab.host(host)?;
        let spec = self.spec(host)?;
        let l = Layout::of(spec.platform);
        let cmd = match s {
            Service::Postgres => l.pg_start(),
            Service::Pgpool => l.pgpool_start(),
            Service::Glusterd => spec.platform.start_glusterd(),
            // glusterd respawns a started volume's missing bricks on `start
            // force`; it changes nothing where they run.
            Service::Brick => Cmd::new(["gluster", "--mode=script", "volume", "start"])
                .arg(self.lab.topology.shared_dir.volume.clone())
                .arg("force"),
            Service::Dockerd => Cmd::sh(
                "setsid /usr/sbin/dockerd --storage-driver overlay2 >>/var/log/dockerd.log 2>&1 </dev/null &",
            ),
        };
        cmd.check(h.as_ref())
            .await
            .with_context(|| format!("cannot start {s:?} on `{host}`"))?;
        Ok(())
    }

    /// The pids of `s` on `host` (see [`pids_cmd`]); none is an error.
    async fn pids(&self, h: &dyn Host, s: Service, main_only: bool) -> Result<Vec<u32>> {
        let out = h.run(&pids_cmd(s, main_only)).await?;
        let pids = parse_pids(&out.stdout_lossy())?;
        if pids.is_empty() {
            bail!("no `{}` process runs on `{}`", s.process(), h.name());
        }
        Ok(pids)
    }

    /// SIGKILL to the main process of `s` (the postmaster, Pgpool-II's
    /// parent, dockerd, glusterd; every brick process): its children are
    /// left to notice, as after a real crash. Undone by starting `s`.
    pub async fn kill_process(&mut self, host: &str, s: Service) -> Result<Fault> {
        let h = self.lab.host(host)?;
        let pids = self.pids(h.as_ref(), s, true).await?;
        let f = Fault::ProcessKilled {
            host: host.into(),
            process: s,
            pids: pids.clone(),
        };
        self.inject(
            f.clone(),
            format!(
                "kill-process {} {} on `{host}`",
                s.name(),
                pids_shown(&pids)
            ),
        );
        signal_cmd("KILL", &pids, false)
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot kill {} on `{host}`", s.name()))?;
        Ok(f)
    }

    /// SIGSTOP to every process of `s`: the service hangs without dying.
    pub async fn freeze_process(&mut self, host: &str, s: Service) -> Result<Fault> {
        let h = self.lab.host(host)?;
        let pids = self.pids(h.as_ref(), s, false).await?;
        let f = Fault::Frozen {
            host: host.into(),
            process: s,
            pids: pids.clone(),
        };
        self.inject(
            f.clone(),
            format!(
                "freeze-process {} {} on `{host}`",
                s.name(),
                pids_shown(&pids)
            ),
        );
        signal_cmd("STOP", &pids, false)
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot freeze {} on `{host}`", s.name()))?;
        Ok(f)
    }

    /// Delays what `host` sends to `to` by `delay` (± `jitter`) with netem.
    /// Where the kernel has no netem this fails, naming why, and injects
    /// nothing.
    pub async fn slow(
        &mut self,
        host: &str,
        to: &[String],
        delay: Duration,
        jitter: Duration,
    ) -> Result<Fault> {
        let h = self.lab.host(host)?;
        if let Some(other) = self
            .records()
            .into_iter()
            .find(|a| matches!(&a.fault, Fault::Slowed { host: x, .. } if x == host))
        {
            return Err(anyhow::Error::new(BadFault(format!(
                "`HOST`: `{host}` is slowed already by fault `{}`; heal it first",
                other.id
            ))));
        }
        let probe = h.run(&netem_probe_cmd()).await?;
        if !probe.success() {
            bail!(netem_refusal(
                host,
                &format!("{}\n{}", probe.stdout_lossy(), probe.stderr_lossy())
            ));
        }
        let addrs = to
            .iter()
            .map(|n| self.addr(n))
            .collect::<Result<Vec<_>>>()?;
        let out = slow_cmd(&self.addr(host)?, &addrs, delay, jitter)
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot slow `{host}`; nothing injected"))?;
        let f = Fault::Slowed {
            host: host.into(),
            to: to.to_vec(),
            dev: out.stdout_lossy().trim().to_string(),
            delay_us: delay.as_micros() as u64,
            jitter_us: jitter.as_micros() as u64,
        };
        self.inject(
            f.clone(),
            format!("slow `{host}` to {to:?} by {delay:?} (jitter {jitter:?})"),
        );
        Ok(f)
    }

    /// Drops `permille`/1000 of the packets between `host` and `to`, each
    /// way, in an nftables table of the fault's own.
    pub async fn flaky(&mut self, host: &str, to: &[String], permille: u16) -> Result<Fault> {
        let h = self.lab.host(host)?;
        let addrs = to
            .iter()
            .map(|n| self.addr(n))
            .collect::<Result<Vec<_>>>()?;
        let next = self.lab.active_faults.lock().unwrap().next;
        let table = format!("ke2lab_loss_f{next}");
        nft_load_cmd(loss_ruleset(&table, &addrs, permille))
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot make `{host}` flaky; nothing injected"))?;
        let f = Fault::Lossy {
            host: host.into(),
            to: to.to_vec(),
            permille,
            table,
        };
        self.inject(
            f.clone(),
            format!(
                "flaky `{host}` with {to:?}: {}.{}% loss each way",
                permille / 10,
                permille % 10
            ),
        );
        Ok(f)
    }

    /// Fills the filesystem under the brick or PGDATA of `host` until
    /// `leave` bytes are free, with a filler file at its mount point.
    pub async fn disk_full(&mut self, host: &str, area: Area, leave: u64) -> Result<Fault> {
        let h = self.lab.host(host)?;
        let dir = match area {
            Area::Brick => self.lab.topology.shared_dir.brick.clone(),
            Area::Pgdata => Layout::of(self.spec(host)?.platform).pgdata.to_string(),
        };
        let out = df_cmd(&dir)
            .check(h.as_ref())
            .await
            .with_context(|| format!("`disk-full`: no filesystem under `{dir}` on `{host}`"))?;
        let df = parse_df(&out.stdout_lossy())?;
        let next = self.lab.active_faults.lock().unwrap().next;
        let (filler, bytes) = disk_plan(host, &dir, &df, leave, &format!("f{next}"))?;
        let f = Fault::DiskFilled {
            host: host.into(),
            area,
            filler: filler.clone(),
            bytes,
        };
        self.inject(
            f.clone(),
            format!(
                "disk-full {} on `{host}`: `{filler}` of {} MiB, {} MiB left free",
                area.name(),
                bytes >> 20,
                leave >> 20
            ),
        );
        fill_cmd(&filler, bytes)
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot write `{filler}` on `{host}`"))?;
        Ok(f)
    }

    /// Undoes one fault (by its pair); a fault whose effect is already gone
    /// (its host rebooted) is no error.
    pub async fn heal(&mut self, f: &Fault) -> Result<()> {
        match f {
            Fault::Paused(h) => self.unpause(h).await,
            Fault::Stopped(h) => self.start(h).await,
            Fault::Killed(h, s) => self.start_service(h, *s).await,
            Fault::VxlanTcpDropped(p) => self.restore_vxlan(*p).await,
            Fault::Partition(..) => self.repair().await.map(|_| ()),
            Fault::ProcessKilled { host, process, .. } => {
                self.mend(f, format!("start {} on `{host}`", process.name()));
                self.restart_service(host, *process).await
            }
            Fault::Frozen {
                host,
                process,
                pids,
            } => {
                self.mend(
                    f,
                    format!("thaw {} {} on `{host}`", process.name(), pids_shown(pids)),
                );
                signal_cmd("CONT", pids, true)
                    .check(self.lab.host(host)?.as_ref())
                    .await
                    .with_context(|| format!("cannot thaw {} on `{host}`", process.name()))
                    .map(|_| ())
            }
            Fault::Slowed { host, dev, .. } => {
                self.mend(f, format!("unslow `{host}`"));
                unslow_cmd(dev)
                    .check(self.lab.host(host)?.as_ref())
                    .await
                    .with_context(|| format!("cannot unslow `{host}`"))
                    .map(|_| ())
            }
            Fault::Lossy { host, table, .. } => {
                self.mend(f, format!("end the packet loss of `{host}`"));
                nft_drop_table_cmd(table)
                    .check(self.lab.host(host)?.as_ref())
                    .await
                    .with_context(|| format!("cannot end the packet loss on `{host}`"))
                    .map(|_| ())
            }
            Fault::DiskFilled { host, filler, .. } => {
                self.mend(f, format!("remove `{filler}` on `{host}`"));
                unfill_cmd(filler)
                    .check(self.lab.host(host)?.as_ref())
                    .await
                    .with_context(|| format!("cannot remove `{filler}` on `{host}`"))
                    .map(|_| ())
            }
        }
    }

    /// Stops a host's container (the machine goes away).
    pub async fn stop(&mut self, host: &str) -> Result<Instant> {
        let c = self.lab.container_of(host)?;
        let at = self.inject(Fault::Stopped(host.into()), format!("stop host `{host}`"));
        self.lab
            .docker()
            .stop_container(&c, Some(StopContainerOptionsBuilder::new().t(0).build()))
            .await
            .with_context(|| format!("cannot stop host `{host}`"))?;
        Ok(at)
    }

    /// Starts a stopped host; its boot script runs again as on a reboot.
    pub async fn start(&mut self, host: &str) -> Result<()> {
        let c = self.lab.container_of(host)?;
        self.mend(&Fault::Stopped(host.into()), format!("start host `{host}`"));
        self.lab
            .docker()
            .start_container(&c, None::<StartContainerOptions>)
            .await
            .with_context(|| format!("cannot start host `{host}`"))?;
        Ok(())
    }

    /// Freezes every process of a host (cgroup freezer): the machine hangs
    /// without going away, its connections time out instead of closing.
    pub async fn pause(&mut self, host: &str) -> Result<Instant> {
        let c = self.lab.container_of(host)?;
        let at = self.inject(Fault::Paused(host.into()), format!("pause host `{host}`"));
        self.lab
            .docker()
            .pause_container(&c)
            .await
            .with_context(|| format!("cannot pause host `{host}`"))?;
        Ok(at)
    }

    /// Thaws a paused host.
    pub async fn unpause(&mut self, host: &str) -> Result<()> {
        let c = self.lab.container_of(host)?;
        self.mend(
            &Fault::Paused(host.into()),
            format!("unpause host `{host}`"),
        );
        self.lab
            .docker()
            .unpause_container(&c)
            .await
            .with_context(|| format!("cannot unpause host `{host}`"))?;
        Ok(())
    }
    /// Cuts every host of `a` from every host of `b`, both ways, as a
    /// switch failure would: packets are dropped (not rejected), so peers
    /// see timeouts. Each host drops what goes to or comes from the other
    /// side's addresses in an nftables table of its own; traffic inside a
    /// side and to the lab's gateway (the test process) still flows.
    pub async fn partition(&mut self, a: &[&str], b: &[&str]) -> Result<Instant> {
        if a.is_empty() || b.is_empty() || a.iter().any(|x| b.contains(x)) {
            return Err(anyhow!(
                "a partition needs two disjoint, non-empty sides, not `{a:?}` and `{b:?}`"
            ));
        }
        let addr = |n: &str| -> Result<String> {
            Ok(self
                .lab
                .topology
                .host(n)
                .ok_or_else(|| anyhow!("the lab has no host `{n}`"))?
                .address
                .to_string())
        };
        let mut plan = Vec::new();
        for (mine, theirs) in [(a, b), (b, a)] {
            let others = theirs
                .iter()
                .map(|n| addr(n))
                .collect::<Result<Vec<_>>>()?
                .join(", ");
            for h in mine {
                plan.push((self.lab.host(h)?, others.clone()));
            }
        }
        let at = self.inject(
            Fault::Partition(
                a.iter().map(|s| s.to_string()).collect(),
                b.iter().map(|s| s.to_string()).collect(),
            ),
            format!("partition {a:?} from {b:?}"),
        );
        for (h, others) in plan {
            Cmd::sh(format!(
                "nft add table inet {PARTITION_TABLE} && \
                 nft add chain inet {PARTITION_TABLE} in '{{ type filter hook input priority -10 ; }}' && \
                 nft add chain inet {PARTITION_TABLE} out '{{ type filter hook output priority -10 ; }}' && \
                 nft add rule inet {PARTITION_TABLE} in ip saddr '{{ '\"$1\"' }}' drop && \
                 nft add rule inet {PARTITION_TABLE} out ip daddr '{{ '\"$1\"' }}' drop"
            ))
            .arg(others)
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot partition `{}`", h.name()))?;
        }
        Ok(at)
    }

    /// Ends every partition: each host involved drops its partition table.
    pub async fn repair(&mut self) -> Result<Instant> {
        let parts: Vec<Fault> = self
            .active()
            .into_iter()
            .filter(|f| matches!(f, Fault::Partition(..)))
            .collect();
        let mut hosts: Vec<String> = Vec::new();
        for p in &parts {
            if let Fault::Partition(a, b) = p {
                for h in a.iter().chain(b) {
                    if !hosts.contains(h) {
                        hosts.push(h.clone());
                    }
                }
            }
        }
        let mut at = Instant::now();
        for p in &parts {
            at = self.mend(p, format!("repair the partition {p:?}"));
        }
        for n in hosts {
            let h = self.lab.host(&n)?;
            Cmd::sh(format!(
                "! nft list table inet {PARTITION_TABLE} >/dev/null 2>&1 || nft delete table inet {PARTITION_TABLE}"
            ))
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot repair the partition on `{n}`"))?;
        }
        Ok(at)
    }

    /// The VMware vmxnet3 model: on every host, VXLAN frames on UDP `port`
    /// whose inner IP protocol is TCP are dropped, ICMP passes (the field
    /// symptom, not just a closed port). Byte 39 after the UDP header is the
    /// inner IPv4 protocol (UDP 8 + VXLAN 8 + Ethernet 14 + 9), bit 312.
    pub async fn drop_vxlan_tcp(&mut self, port: u16) -> Result<()> {
        self.inject(
            Fault::VxlanTcpDropped(port),
            format!("drop TCP inside VXLAN on udp/{port} (vmxnet3 model)"),
        );
        for h in self.lab.hosts() {
            Cmd::sh(format!(
                "nft add table inet {VXLAN_TABLE} && \
                 nft add chain inet {VXLAN_TABLE} out '{{ type filter hook output priority 0 ; }}' && \
                 nft add rule inet {VXLAN_TABLE} out udp dport \"$1\" @th,312,8 6 drop"
            ))
            .arg(port.to_string())
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot inject the vmxnet3 model on `{}`", h.name()))?;
        }
        Ok(())
    }

    /// Undoes [`Faults::drop_vxlan_tcp`].
    pub async fn restore_vxlan(&mut self, port: u16) -> Result<()> {
        self.mend(
            &Fault::VxlanTcpDropped(port),
            format!("restore VXLAN on udp/{port}"),
        );
        for h in self.lab.hosts() {
            Cmd::sh(format!(
                "! nft list table inet {VXLAN_TABLE} >/dev/null 2>&1 || nft delete table inet {VXLAN_TABLE}"
            ))
            .check(h.as_ref())
            .await
            .with_context(|| format!("cannot restore VXLAN on `{}`", h.name()))?;
        }
        Ok(())
    }

    /// Undoes every fault still in force, newest first (a host is thawed or
    /// started before its partition is lifted, since lifting it needs the
    /// host to answer). Goes on past a failing undo and reports all of them.
    pub async fn undo_all(&mut self) -> Result<()> {
        let mut errors = Vec::new();
        // Hosts first: every other undo runs commands on them.
        let mut active = self.active();
        active.sort_by_key(|f| !f.is_host_state());
        let mut repaired = false;
        for f in active {
            let r = match &f {
                Fault::Partition(..) if repaired => Ok(()),
                Fault::Partition(..) => {
                    repaired = true;
                    self.heal(&f).await
                }
                f => self.heal(f).await,
            };
            if let Err(e) = r {
                errors.push(format!("{e:#}"));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(anyhow!("cannot undo every fault: {}", errors.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Line {
        #[command(subcommand)]
        verb: Verb,
    }

    fn verb(args: &[&str]) -> Verb {
        Line::try_parse_from(std::iter::once("fault").chain(args.iter().copied()))
            .unwrap()
            .verb
    }

    fn request(args: &[&str]) -> Result<Option<Request>, BadFault> {
        verb(args).request()
    }

    const HOSTS: [&str; 3] = ["ke2-server1", "ke2-server2", "ke2-server3"];

    fn strings(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_issues_examples_parse() {
        let r = request(&["slow", "ke2-server2", "--delay", "200ms"])
            .unwrap()
            .unwrap()
            .resolve(&HOSTS)
            .unwrap();
        assert_eq!(
            r,
            Request::Slow {
                host: "ke2-server2".into(),
                from: Some(strings(&["ke2-server1", "ke2-server3"])),
                delay: Duration::from_millis(200),
                jitter: Duration::ZERO,
            }
        );
        let r = request(&[
            "partition",
            "ke2-server1",
            "--from",
            "ke2-server2,ke2-server3",
        ])
        .unwrap()
        .unwrap()
        .resolve(&HOSTS)
        .unwrap();
        assert_eq!(
            r,
            Request::Partition(
                strings(&["ke2-server1"]),
                Some(strings(&["ke2-server2", "ke2-server3"]))
            )
        );
        assert_eq!(verb(&["active"]), Verb::Active { json: false });
        assert_eq!(
            verb(&["heal", "--all"]),
            Verb::Heal {
                id: None,
                all: true
            }
        );
        assert_eq!(
            verb(&["heal", "f3"]),
            Verb::Heal {
                id: Some("f3".into()),
                all: false
            }
        );
        assert!(Line::try_parse_from(["fault", "heal"]).is_err());
        assert!(Line::try_parse_from(["fault", "heal", "f1", "--all"]).is_err());
        assert_eq!(request(&["list"]), Ok(None));
    }

    #[test]
    fn every_verb_parses_to_its_request() {
        let cases: Vec<(Vec<&str>, Request)> = vec![
            (
                vec!["stop", "ke2-server1"],
                Request::Stop("ke2-server1".into()),
            ),
            (
                vec!["pause", "ke2-server2"],
                Request::Pause("ke2-server2".into()),
            ),
            (
                vec!["kill", "ke2-server1", "pgpool"],
                Request::Kill("ke2-server1".into(), Service::Pgpool),
            ),
            (
                vec!["kill-process", "ke2-server1", "postgres"],
                Request::KillProcess("ke2-server1".into(), Service::Postgres),
            ),
            (
                vec!["freeze-process", "ke2-server3", "brick"],
                Request::FreezeProcess("ke2-server3".into(), Service::Brick),
            ),
            (
                vec![
                    "flaky",
                    "ke2-server2",
                    "--from",
                    "ke2-server1",
                    "--loss",
                    "12.5%",
                ],
                Request::Flaky {
                    host: "ke2-server2".into(),
                    from: Some(strings(&["ke2-server1"])),
                    permille: 125,
                },
            ),
            (
                vec!["slow", "ke2-server2", "--delay", "1s", "--jitter", "20ms"],
                Request::Slow {
                    host: "ke2-server2".into(),
                    from: None,
                    delay: Duration::from_secs(1),
                    jitter: Duration::from_millis(20),
                },
            ),
            (
                vec!["disk-full", "ke2-server1", "pgdata"],
                Request::DiskFull {
                    host: "ke2-server1".into(),
                    area: Area::Pgdata,
                    leave: DEFAULT_LEAVE,
                },
            ),
            (
                vec!["disk-full", "ke2-server1", "brick", "--leave", "1GiB"],
                Request::DiskFull {
                    host: "ke2-server1".into(),
                    area: Area::Brick,
                    leave: 1 << 30,
                },
            ),
            (vec!["drop-vxlan-tcp"], Request::DropVxlanTcp(None)),
            (
                vec!["drop-vxlan-tcp", "--port", "4789"],
                Request::DropVxlanTcp(Some(4789)),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(request(&args), Ok(Some(want)), "{args:?}");
        }
    }

    #[test]
    fn bad_arguments_name_the_argument_and_the_value() {
        for (args, want) in [
            (
                vec!["bogus", "x"],
                "`VERB`: unknown fault verb `bogus` (`ke2lab fault list` shows the verbs)",
            ),
            (
                vec!["slow", "ke2-server2", "--delay", "200x"],
                "`--delay`: `200x` is not a duration (expected a number and a unit, e.g. `200ms`, `1s`)",
            ),
            (
                vec!["slow", "ke2-server2", "--delay", "200"],
                "`--delay`: `200` is not a duration (expected a number and a unit, e.g. `200ms`, `1s`)",
            ),
            (
                vec!["slow", "ke2-server2", "--delay", "0ms"],
                "`--delay`: `0ms` is zero (expected a number and a unit, e.g. `200ms`, `1s`)",
            ),
            (
                vec!["slow", "ke2-server2", "--delay", "2m"],
                "`--delay`: `2m` is longer than a minute (expected a number and a unit, e.g. `200ms`, `1s`)",
            ),
            (
                vec!["slow", "ke2-server2", "--delay", "1ms", "--jitter", "x"],
                "`--jitter`: `x` is not a duration (expected a number and a unit, e.g. `200ms`, `1s`)",
            ),
            (
                vec!["flaky", "ke2-server2", "--loss", "150%"],
                "`--loss`: `150%` is out of range (expected a percentage above 0 and at most 100, e.g. `10%` or `0.5%`)",
            ),
            (
                vec!["flaky", "ke2-server2", "--loss", "ten"],
                "`--loss`: `ten` is not a percentage (expected a percentage above 0 and at most 100, e.g. `10%` or `0.5%`)",
            ),
            (
                vec!["kill-process", "ke2-server1", "sshd"],
                "`PROCESS`: `sshd` is not one of `postgres`, `pgpool`, `brick`, `dockerd`, `glusterd`",
            ),
            (
                vec!["kill", "ke2-server1", "nginx"],
                "`SERVICE`: `nginx` is not one of `postgres`, `pgpool`, `brick`, `dockerd`, `glusterd`",
            ),
            (
                vec!["disk-full", "ke2-server1", "root"],
                "`AREA`: `root` is not `brick` or `pgdata`",
            ),
            (
                vec![
                    "disk-full",
                    "ke2-server1",
                    "brick",
                    "--leave",
                    "10 potatoes",
                ],
                "`--leave`: `10 potatoes` is not a size (expected a whole number and a unit, e.g. `10MiB`, `512KiB`, `1GiB`)",
            ),
            (
                vec!["partition", "a,,b"],
                "`HOSTS`: `a,,b` has an empty host name (expected e.g. `ke2-server2,ke2-server3`)",
            ),
            (
                vec!["partition", "a", "--from", "b,b"],
                "`--from`: `b,b` names `b` twice",
            ),
            (
                vec!["drop-vxlan-tcp", "--port", "0"],
                "`--port`: `0` is not a port (1..=65535)",
            ),
        ] {
            assert_eq!(request(&args), Err(BadFault(want.into())), "{args:?}");
        }
    }

    #[test]
    fn hosts_are_checked_against_the_lab() {
        let resolve = |args: &[&str]| request(args).unwrap().unwrap().resolve(&HOSTS);
        assert_eq!(
            resolve(&["stop", "ke2-server9"]),
            Err(BadFault(
                "`HOST`: the lab has no host `ke2-server9` (its hosts: ke2-server1, ke2-server2, ke2-server3)"
                    .into()
            ))
        );
        assert_eq!(
            resolve(&["slow", "ke2-server1", "--from", "nope", "--delay", "1ms"]),
            Err(BadFault(
                "`--from`: the lab has no host `nope` (its hosts: ke2-server1, ke2-server2, ke2-server3)"
                    .into()
            ))
        );
        assert_eq!(
            resolve(&[
                "partition",
                "ke2-server1,ke2-server2",
                "--from",
                "ke2-server2"
            ]),
            Err(BadFault("`--from`: `ke2-server2` is on both sides".into()))
        );
        assert_eq!(
            resolve(&["partition", "ke2-server1,ke2-server2,ke2-server3"]),
            Err(BadFault(
                "`--from`: no other host to act against (the lab's hosts: ke2-server1, ke2-server2, ke2-server3)"
                    .into()
            ))
        );
        assert_eq!(
            resolve(&["flaky", "ke2-server3", "--loss", "5"]),
            Ok(Request::Flaky {
                host: "ke2-server3".into(),
                from: Some(strings(&["ke2-server1", "ke2-server2"])),
                permille: 50
            })
        );
    }

    #[test]
    fn values_parse() {
        assert_eq!(
            parse_delay("d", "1500us", false),
            Ok(Duration::from_micros(1500))
        );
        assert_eq!(parse_delay("d", "0ms", true), Ok(Duration::ZERO));
        assert!(parse_delay("d", "", false).is_err());
        assert_eq!(parse_percent("l", "100%"), Ok(1000));
        assert_eq!(parse_percent("l", "0.1"), Ok(1));
        for bad in ["0", "0%", "100.1%", "1.", ".5", "1.25", "-1", "%", "1e1"] {
            assert!(parse_percent("l", bad).is_err(), "{bad}");
        }
        assert_eq!(parse_size("s", "10MiB"), Ok(10 << 20));
        assert_eq!(parse_size("s", "512K"), Ok(512 << 10));
        assert_eq!(parse_size("s", "0"), Ok(0));
        assert_eq!(parse_size("s", "4096B"), Ok(4096));
        for bad in [
            "",
            "MiB",
            "10 MiB",
            "10TiB",
            "1.5G",
            "99999999999999999999G",
        ] {
            assert!(parse_size("s", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn command_builders() {
        let c = slow_cmd(
            "172.20.0.2",
            &strings(&["172.20.0.1", "172.20.0.3"]),
            Duration::from_millis(200),
            Duration::from_millis(20),
        );
        let argv: Vec<&str> = c.argv().collect();
        assert_eq!(
            &argv[3..],
            [
                "sh",
                "172.20.0.2",
                "delay 200000us 20000us",
                "172.20.0.1",
                "172.20.0.3"
            ]
        );
        assert!(argv[2].contains("prio bands 4 priomap 1 2 2 2 1 2 0 0 1 1 1 1 1 1 1 1"));
        assert!(argv[2].contains("parent 1:4 handle 40: netem $netem"));
        assert!(argv[2].contains("u32 match ip dst \"$a\"/32 flowid 1:4"));
        let c = slow_cmd(
            "a",
            &strings(&["b"]),
            Duration::from_millis(5),
            Duration::ZERO,
        );
        assert_eq!(c.argv().nth(5), Some("delay 5000us"));
        assert_eq!(
            loss_ruleset(
                "ke2lab_loss_f2",
                &strings(&["172.20.0.1", "172.20.0.3"]),
                100
            ),
            "table inet ke2lab_loss_f2 {\n\
             \tchain in {\n\t\ttype filter hook input priority -10; policy accept;\n\
             \t\tip saddr { 172.20.0.1, 172.20.0.3 } numgen random mod 1000 < 100 drop\n\t}\n\
             \tchain out {\n\t\ttype filter hook output priority -10; policy accept;\n\
             \t\tip daddr { 172.20.0.1, 172.20.0.3 } numgen random mod 1000 < 100 drop\n\t}\n\
             }\n"
        );
        let c = nft_load_cmd("x".into());
        assert_eq!(c.argv().collect::<Vec<_>>(), ["nft", "-f", "-"]);
        assert_eq!(c.stdin_bytes(), Some(&b"x"[..]));
        assert_eq!(
            pids_cmd(Service::Postgres, true).argv().collect::<Vec<_>>(),
            ["pgrep", "-o", "-x", "postgres"]
        );
        assert_eq!(
            pids_cmd(Service::Brick, true).argv().collect::<Vec<_>>(),
            ["pgrep", "-x", "glusterfsd"]
        );
        assert_eq!(
            pids_cmd(Service::Pgpool, false).argv().collect::<Vec<_>>(),
            ["pgrep", "-x", "pgpool"]
        );
        assert_eq!(
            signal_cmd("KILL", &[12, 34], false)
                .argv()
                .collect::<Vec<_>>(),
            ["kill", "-KILL", "12", "34"]
        );
        let cont: Vec<String> = signal_cmd("CONT", &[7], true)
            .argv()
            .map(String::from)
            .collect();
        assert_eq!(&cont[3..], ["sh", "CONT", "7"]);
        assert_eq!(parse_pids("12\n345\n").unwrap(), vec![12, 345]);
        assert_eq!(pids_shown(&[1, 2]), "[1, 2]");
        assert_eq!(pids_shown(&[1, 2, 3, 4, 5, 6]), "[1, 2, 3, … 6 processes]");
        assert!(parse_pids("12 x").is_err());
        let df = df_cmd("/var/glustervol0");
        let df: Vec<&str> = df.argv().collect();
        assert!(df[2].contains("df -B1 --output=fstype,avail,target -- \"$d\""));
        assert_eq!(df[4], "/var/glustervol0");
        assert_eq!(
            fill_cmd("/x/.ke2lab-filler-f1", 1024)
                .argv()
                .skip(4)
                .collect::<Vec<_>>(),
            ["/x/.ke2lab-filler-f1", "1024"]
        );
        assert_eq!(
            unfill_cmd("/x/f").argv().collect::<Vec<_>>(),
            ["rm", "-f", "--", "/x/f"]
        );
        assert_eq!(
            nft_drop_table_cmd("ke2lab_loss_f1").argv().last(),
            Some("ke2lab_loss_f1")
        );
        assert_eq!(unslow_cmd("eth0").argv().last(), Some("eth0"));
    }

    #[test]
    fn disk_full_plans_and_refusals() {
        let df =
            parse_df("Type         Avail Target\ntmpfs     67108864 /var/glustervol0\n").unwrap();
        assert_eq!(
            df,
            Df {
                fstype: "tmpfs".into(),
                avail: 64 << 20,
                target: "/var/glustervol0".into()
            }
        );
        assert_eq!(
            disk_plan("h", "/var/glustervol0", &df, 10 << 20, "f4").unwrap(),
            ("/var/glustervol0/.ke2lab-filler-f4".to_string(), 54 << 20)
        );
        let e = disk_plan("h", "/var/glustervol0", &df, 64 << 20, "f4").unwrap_err();
        assert_eq!(
            e.to_string(),
            "`disk-full`: `/var/glustervol0` on `h` has 64 MiB free, not more than `--leave` (64 MiB): nothing to fill"
        );
        let root = parse_df("Type Avail Target\nfuse.fuse-overlayfs 50000000000 /\n").unwrap();
        let e = disk_plan(
            "ke2-server1",
            "/var/lib/postgresql/17/main",
            &root,
            10 << 20,
            "f1",
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with(
                "`disk-full`: `/var/lib/postgresql/17/main` on `ke2-server1` is on `/` (fuse.fuse-overlayfs), a lab host's root filesystem, which is this machine's own disk"
            ),
            "{e}"
        );
        let big = Df {
            fstype: "xfs".into(),
            avail: 100 << 30,
            target: "/data".into(),
        };
        assert!(
            disk_plan("h", "/data/brick", &big, 0, "f1")
                .unwrap_err()
                .to_string()
                .contains("more than ke2lab writes (4096 MiB)")
        );
        let docker = Df {
            target: "/var/lib/docker".into(),
            ..big.clone()
        };
        assert!(disk_plan("h", "/var/lib/docker/x", &docker, 0, "f1").is_err());
        // The hosts' data volume (PGDATA, bricks under /var/lib) is the
        // machine's disk too.
        let data = Df {
            target: "/var/lib".into(),
            ..big
        };
        let e = disk_plan("h", "/var/lib/postgresql/17/main", &data, 0, "f1").unwrap_err();
        assert!(e.to_string().contains("data volume's filesystem"), "{e}");
        assert!(parse_df("").is_err());
        assert!(parse_df("tmpfs many /x").is_err());
    }

    #[test]
    fn netem_refusal_names_the_kernel_and_tc() {
        let why = netem_refusal(
            "ke2-server2",
            "Error: Specified qdisc kind is unknown.\n# CONFIG_NET_SCH_PRIO is not set\n# CONFIG_NET_SCH_NETEM is not set\n",
        );
        assert_eq!(
            why,
            "`slow`: the kernel of `ke2-server2` cannot delay packets: `tc qdisc add … prio` / \
             `netem` answered `Error: Specified qdisc kind is unknown.` (kernel: # \
             CONFIG_NET_SCH_PRIO is not set, # CONFIG_NET_SCH_NETEM is not set); netem \
             (sch_netem) is the only delay qdisc, and nftables can drop but not delay: nothing \
             injected"
        );
    }

    #[test]
    fn the_record_round_trips_atomically_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Record::load(dir.path()).unwrap(), Record::default());
        let mut r = Record::default();
        let every = vec![
            Fault::Stopped("a".into()),
            Fault::Paused("a".into()),
            Fault::Killed("a".into(), Service::Brick),
            Fault::Partition(strings(&["a"]), strings(&["b", "c"])),
            Fault::VxlanTcpDropped(4789),
            Fault::Slowed {
                host: "a".into(),
                to: strings(&["b"]),
                dev: "eth0".into(),
                delay_us: 200_000,
                jitter_us: 0,
            },
            Fault::Lossy {
                host: "a".into(),
                to: strings(&["b"]),
                permille: 100,
                table: "ke2lab_loss_f7".into(),
            },
            Fault::ProcessKilled {
                host: "a".into(),
                process: Service::Postgres,
                pids: vec![42],
            },
            Fault::Frozen {
                host: "a".into(),
                process: Service::Dockerd,
                pids: vec![1, 2],
            },
            Fault::DiskFilled {
                host: "a".into(),
                area: Area::Pgdata,
                filler: "/x/.ke2lab-filler-f10".into(),
                bytes: 1 << 20,
            },
        ];
        for f in &every {
            r.push(f.clone(), format!("{f:?}"));
        }
        let path = r.save(dir.path()).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // Nothing but the record is left in the directory.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from(FAULTS_FILE)]);
        let back = Record::load(dir.path()).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.next, 11);
        assert_eq!(back.find("f3").unwrap().fault, every[2]);
        assert_eq!(
            back.find("f99"),
            Err(BadFault(
                "`ID`: no fault `f99` is in force (in force: `f1`, `f2`, `f3`, `f4`, `f5`, `f6`, \
                 `f7`, `f8`, `f9`, `f10`)"
                    .into()
            ))
        );
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("\"kill-process\"") || text.contains("\"process-killed\""),
            "{text}"
        );
        r.remove(&every[0]);
        assert_eq!(r.active.len(), 9);
        assert_eq!(r.active[0].id, "f2");
        assert!(Record::parse("{\"version\":2,\"next\":1,\"active\":[]}").is_err());
        assert!(Record::parse("[]").is_err());
        assert!(active_table(&[]).contains("no fault is in force"));
        let table = active_table(&r.active);
        assert_eq!(table.lines().count(), 9);
        assert!(table.starts_with("f2 "), "{table}");
    }

    #[test]
    fn the_vocabulary_names_every_verb() {
        use clap::CommandFactory;
        let text = vocabulary();
        let cmd = Line::command();
        for sub in cmd.get_subcommands() {
            let name = sub.get_name();
            assert!(
                text.lines().any(|l| l.starts_with(&format!("{name} ")))
                    || ["list", "heal"].contains(&name) && text.contains(&format!("; {name}")),
                "`{name}` is not in `fault list`:\n{text}"
            );
        }
        assert_eq!(text.lines().count(), VOCABULARY.len() + 1);
    }
}
