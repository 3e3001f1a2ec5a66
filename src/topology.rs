//! The cluster description (`topology.toml`): its serde model, the defaults taken from the procedure, and the validation that every command runs before it touches a host.
//!
//! Every field and default here comes from `PROCEDURE.md` (steps 0 to 8). The
//! file is the single input of every command, so it is checked as a whole
//! before anything runs: a mistake in it (two hosts with one address, a VIP
//! outside the LAN, a port used twice) would otherwise surface much later as
//! a half-built cluster. Every error names the offending field in the form
//! used by the file itself, e.g. `` `hosts[1].address`: duplicate address
//! `10.20.0.1` (also used by `hosts[0]`) ``.
//!
//! Parsing happens in three passes: a plain TOML parse (syntax errors, with
//! the line), a scan of the raw values whose problems serde could only report
//! without the host index (unknown platform, malformed address, a port that
//! does not fit in 16 bits), and the typed deserialization (unknown keys,
//! missing keys, wrong types, again with the line). [`Topology::validate`]
//! then checks the rules that span several fields.

use std::fmt;
use std::fs;
use std::io::Write as _;
use std::net::Ipv4Addr;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use rand::Rng as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// `(name, text)` of each named file of `fixtures/topologies/`, embedded.
macro_rules! fixtures {
    ($($name:literal),* $(,)?) => {
        &[$(($name, include_str!(concat!("../fixtures/topologies/", $name, ".toml")))),*]
    };
}

/// Docker swarm's cluster management port (`2377/tcp`); not configurable.
pub const SWARM_MANAGEMENT_PORT: u16 = 2377;
/// Docker swarm's node gossip port (`7946/tcp+udp`); not configurable.
pub const SWARM_GOSSIP_PORT: u16 = 7946;
/// Docker's default VXLAN data-path port (`4789/udp`).
pub const DEFAULT_DATA_PATH_PORT: u16 = 4789;
/// The data-path port that `auto` picks when a host has a vmxnet3 NIC. The
/// procedure (step 3) only says "another port"; 7789 keeps the familiar
/// `_789` suffix and collides with nothing else the cluster opens.
pub const VMXNET3_DATA_PATH_PORT: u16 = 7789;
/// The smallest cluster the procedure describes: three swarm managers, three
/// Gluster replicas and three Pgpool-II watchdog members.
pub const MIN_HOSTS: usize = 3;
/// The largest cluster: Pgpool-II has at most 128 backends (`backend_hostname0`
/// to `backend_hostname127`), and every host is one.
pub const MAX_HOSTS: usize = 128;
/// The lowest port a service may take. Below it lie the privileged ports,
/// which PostgreSQL and Pgpool-II (run as `postgres`) cannot bind and where
/// sshd (`22/tcp`) and nginx (`80`, `443`) already listen; so the range also
/// covers those fixed ports.
pub const MIN_SERVICE_PORT: u16 = 1024;
/// How long a value echoed in a message may be, in characters.
const SHOWN_MAX: usize = 200;
/// The length of a generated password.
pub const GENERATED_PASSWORD_LEN: usize = 24;

/// Ports that the cluster opens on every host but that the topology cannot
/// change. A configurable port equal to one of them would make two services
/// fight over one socket, so validation rejects it.
const FIXED_PORTS: &[(u16, &str)] = &[
    (
        SWARM_MANAGEMENT_PORT,
        "the swarm management port (`2377/tcp`, fixed)",
    ),
    (
        SWARM_GOSSIP_PORT,
        "the swarm gossip port (`7946/tcp+udp`, fixed)",
    ),
    (80, "nginx's published HTTP port (`80/tcp`, fixed)"),
    (443, "nginx's published HTTPS port (`443/tcp`, fixed)"),
    (
        5671,
        "RabbitMQ's published AMQPS port (`5671/tcp`, fixed by the stack's `rabbitmq.yml`)",
    ),
];

/// glusterd's ports, fixed too, but only opened when the shared directory is
/// a Gluster volume.
const GLUSTER_PORTS: &[(u16, &str)] = &[
    (24007, "glusterd's management port (`24007/tcp`, fixed)"),
    (24008, "glusterd's RDMA port (`24008/tcp`, fixed)"),
];

/// The ports glusterd hands to brick processes (`base-port`..`max-port` of
/// `glusterd.vol`), one per brick and restart; a service there would take a
/// brick's port when it restarts. Only with a Gluster shared directory.
const GLUSTER_BRICK_PORTS: std::ops::RangeInclusive<u16> = 49152..=60999;

/// System directories that no topology path (mount point, brick, WAL archive)
/// may be or, where the flag is `true`, lie in: a mount would hide them,
/// Gluster would take over their contents, or an archive would fill them.
///
/// Some are refused only as themselves, not as parents: the document's WAL
/// archive `/var/lib/pgsql/archivedir` (the default of `postgres.archive_dir`)
/// lies in `/var/lib` and in `/var/lib/pgsql`, postgres's home on rhel9, and
/// `/var/lib/postgresql`, postgres's home on Debian, is where the same choice
/// lands there. `/` is every path's parent; it is refused by its own rule.
const SYSTEM_DIRS: &[(&str, bool)] = &[
    ("/etc", true),
    ("/usr", true),
    ("/bin", true),
    ("/sbin", true),
    ("/lib", true),
    ("/lib64", true),
    ("/var/lib", false),
    ("/var/lib/docker", true),
    ("/var/lib/postgresql", false),
    ("/var/lib/pgsql", false),
    ("/var/lib/glusterd", true),
    ("/boot", true),
    ("/proc", true),
    ("/sys", true),
    ("/dev", true),
    ("/run", true),
    ("/root", true),
    ("/home", true),
    ("/tmp", true),
];

// ---------------------------------------------------------------------------
// Errors and warnings
// ---------------------------------------------------------------------------

/// Why a topology (or a credentials file) could not be used.
///
/// Errors do not repeat the file's path: the caller knows it and adds it as
/// context, which keeps these messages identical for files and strings.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read. The OS error is part of the message and
    /// deliberately not the error's `source`: a caller printing the chain
    /// (`{:#}`) would show it twice.
    #[error("cannot read `{}`: {error}", path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    /// The file (the credentials file, or its directory) could not be
    /// written; the OS error is in the message, as for `Read`.
    #[error("cannot write `{}`: {error}", path.display())]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    /// TOML syntax error, unknown or missing key, or a value of the wrong
    /// type. The message is the toml crate's, which names the key and shows
    /// the line.
    #[error("{message}")]
    Parse { message: String },
    /// A value that parses but breaks a rule; `field` is the path of the
    /// field as written in the file, e.g. `hosts[1].address`.
    #[error("`{field}`: {message}")]
    Invalid { field: String, message: String },
}

impl TopologyError {
    /// The offending field of an [`TopologyError::Invalid`] error.
    pub fn field(&self) -> Option<&str> {
        match self {
            TopologyError::Invalid { field, .. } => Some(field),
            _ => None,
        }
    }

    fn parse(error: toml::de::Error) -> Self {
        TopologyError::Parse {
            message: shown_lines(error.to_string().trim_end()),
        }
    }
}

/// A value as a message echoes it: control characters escaped (`\u{1b}`), so
/// that no message carries a raw terminal escape or line break, and cut at
/// [`SHOWN_MAX`] characters (marked `…`), so that one huge value cannot
/// bury the message.
pub fn shown(value: &str) -> String {
    let mut out = String::new();
    for (i, c) in value.chars().enumerate() {
        if i == SHOWN_MAX {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

/// [`shown`] for each line of the toml crate's messages, which echo the
/// offending line of the file and the value; their own line breaks stay.
fn shown_lines(message: &str) -> String {
    message.lines().map(shown).collect::<Vec<_>>().join("\n")
}

fn invalid(field: impl Into<String>, message: impl Into<String>) -> TopologyError {
    TopologyError::Invalid {
        field: field.into(),
        message: message.into(),
    }
}

/// Something legal but unwise, reported without stopping the command.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Warning {
    pub field: String,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}`: {}", self.field, self.message)
    }
}

/// A topology that passed [`Topology::validate`], with the warnings it gave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validated {
    pub topology: Topology,
    pub warnings: Vec<Warning>,
}

impl Deref for Validated {
    type Target = Topology;

    fn deref(&self) -> &Topology {
        &self.topology
    }
}

// ---------------------------------------------------------------------------
// Keyword enums
// ---------------------------------------------------------------------------

/// Defines a fieldless enum written as a lowercase keyword in the file, with
/// `Display`, `FromStr` and serde going through that keyword. A hand-written
/// error keeps the wording of the messages the same whether it comes from the
/// raw scan or from serde.
macro_rules! keyword_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal, expected $expected:literal) {
            $( $(#[$vmeta:meta])* $variant:ident => $text:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            /// Every value, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The keyword as written in the topology file.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $text, )+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $( $text => Ok($name::$variant), )+
                    _ => Err(format!(concat!("unknown ", $what, " `{}` (expected ", $expected, ")"), shown(s))),
                }
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = String::deserialize(deserializer)?;
                text.parse().map_err(de::Error::custom)
            }
        }
    };
}

keyword_enum! {
    /// The operating-system family of a host. `platform.rs` attaches the
    /// per-family facts (package manager, paths, firewall) to it.
    pub enum Platform ("platform", expected "`debian` or `rhel9`") {
        /// Debian and its PostgreSQL/Pgpool-II packaging; the lab's hosts.
        #[default]
        Debian => "debian",
        /// The document's target: RHEL 9, CentOS Stream 9, Alma 9, Rocky 9.
        Rhel9 => "rhel9",
    }
}

keyword_enum! {
    /// The model of a host's network card. It matters for one reason: with
    /// vmxnet3, VXLAN traffic on UDP 4789 loses TCP (checksum offload), so
    /// the swarm must be initialised with another data-path port.
    pub enum Nic ("nic", expected "`virtio`, `vmxnet3`, `e1000` or `e1000e`") {
        #[default]
        Virtio => "virtio",
        Vmxnet3 => "vmxnet3",
        E1000 => "e1000",
        E1000e => "e1000e",
    }
}

keyword_enum! {
    /// Where `SHARED_DIR` comes from.
    pub enum SharedDirKind ("shared directory kind", expected "`gluster` or `existing`") {
        /// ke2lab builds a replicated Gluster volume and mounts it (step 4).
        #[default]
        Gluster => "gluster",
        /// The path is already mounted on every host (an existing file
        /// server); ke2lab only checks that it is writable.
        Existing => "existing",
    }
}

keyword_enum! {
    /// How nginx publishes ports 80 and 443 (`NGINX_PORT_MODE`, step 8).
    pub enum NginxPortMode ("nginx port mode", expected "`ingress` or `host`") {
        /// Load-balanced over all nodes by the swarm routing mesh.
        #[default]
        Ingress => "ingress",
        /// Only the node addressed receives the connection.
        Host => "host",
    }
}

// ---------------------------------------------------------------------------
// Data-path port
// ---------------------------------------------------------------------------

/// The swarm's VXLAN data-path port, fixed at `docker swarm init`.
///
/// Written as the string `"auto"` or an integer in the file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DataPathPort {
    /// 4789, unless a host has a vmxnet3 NIC; then 7789 (procedure step 3).
    #[default]
    Auto,
    /// An explicit port, 1024..=65535.
    Port(u16),
}

impl DataPathPort {
    /// The port to use, given whether any host has a vmxnet3 NIC.
    pub fn resolve(self, has_vmxnet3: bool) -> u16 {
        match self {
            DataPathPort::Port(port) => port,
            DataPathPort::Auto if has_vmxnet3 => VMXNET3_DATA_PATH_PORT,
            DataPathPort::Auto => DEFAULT_DATA_PATH_PORT,
        }
    }
}

impl fmt::Display for DataPathPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataPathPort::Auto => f.write_str("auto"),
            DataPathPort::Port(port) => write!(f, "{port}"),
        }
    }
}

impl Serialize for DataPathPort {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            DataPathPort::Auto => serializer.serialize_str("auto"),
            DataPathPort::Port(port) => serializer.serialize_u16(*port),
        }
    }
}

fn data_path_port_keyword(value: &str) -> String {
    format!("expected `auto` or a port number, found `{}`", shown(value))
}

impl<'de> Deserialize<'de> for DataPathPort {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;

        impl de::Visitor<'_> for Visitor {
            type Value = DataPathPort;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("`auto` or a port number")
            }

            fn visit_str<E: de::Error>(self, value: &str) -> Result<DataPathPort, E> {
                if value == "auto" {
                    Ok(DataPathPort::Auto)
                } else {
                    Err(E::custom(data_path_port_keyword(value)))
                }
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<DataPathPort, E> {
                // Ports below 1024 fit in a u16 and are rejected by
                // `validate`, so that a struct built in code is checked the
                // same way as a parsed file.
                u16::try_from(value)
                    .map(DataPathPort::Port)
                    .map_err(|_| E::custom(port_range(value)))
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<DataPathPort, E> {
                u16::try_from(value)
                    .map(DataPathPort::Port)
                    .map_err(|_| E::custom(port_range(value)))
            }
        }

        deserializer.deserialize_any(Visitor)
    }
}

// ---------------------------------------------------------------------------
// Secrets
// ---------------------------------------------------------------------------

/// A password or key. `Debug` and `Display` print `***`, so a secret cannot
/// leak into logs, error messages or test output by accident; read it with
/// [`Secret::expose`].
///
/// `Serialize` writes the real value: the credentials file and a stored
/// topology must hold it to be useful. Serialize a secret only into files
/// that are kept private (see [`Credentials::save`]).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret's value, for the places that must write it.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A fresh random password of [`GENERATED_PASSWORD_LEN`] ASCII letters
    /// and digits: safe in every file and command it ends up in without
    /// quoting.
    pub fn generate() -> Self {
        let value: String = rand::rng()
            .sample_iter(rand::distr::Alphanumeric)
            .take(GENERATED_PASSWORD_LEN)
            .map(char::from)
            .collect();
        Secret(value)
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(value: &str) -> Self {
        Secret::new(value)
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

// ---------------------------------------------------------------------------
// The topology model
// ---------------------------------------------------------------------------

/// The whole cluster description. Only `[cluster]`, `[[hosts]]` and
/// `network.vip` are required; every other value defaults to the procedure's.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Topology {
    pub cluster: ClusterSpec,
    /// In `CLUSTER_HOSTS` order: the first host is the initial PostgreSQL
    /// primary and each host's index is its Pgpool-II node id, so the order
    /// is significant and must never change for a running cluster.
    pub hosts: Vec<HostSpec>,
    pub network: NetworkSpec,
    #[serde(default)]
    pub swarm: SwarmSpec,
    #[serde(default)]
    pub ports: Ports,
    #[serde(default)]
    pub shared_dir: SharedDirSpec,
    #[serde(default)]
    pub credentials: CredentialSpec,
    #[serde(default)]
    pub postgres: PostgresSpec,
    /// Lab-only tuning of Pgpool-II; absent from the document's topologies.
    #[serde(default, skip_serializing_if = "PgpoolSpec::is_default")]
    pub pgpool: PgpoolSpec,
    #[serde(default)]
    pub stack: StackSpec,
}

/// `[cluster]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterSpec {
    /// A short name for the cluster, used to name lab resources.
    pub name: String,
}

/// One `[[hosts]]` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostSpec {
    /// The name every other host resolves (`/etc/hosts` or DNS); also the
    /// Pgpool-II backend and Gluster peer name.
    pub name: String,
    pub address: Ipv4Addr,
    #[serde(default)]
    pub platform: Platform,
    #[serde(default)]
    pub nic: Nic,
    /// Overrides the detected interface (the first non-loopback UP link).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
}

/// `[network]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The prefix length of the hosts' subnet; also the VIP's prefix in
    /// `if_up_cmd`.
    #[serde(default = "default_prefix")]
    pub prefix: u8,
    /// Pgpool-II's virtual IP (`delegate_ip`).
    pub vip: Ipv4Addr,
    /// Default interface override for every host without its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<String>,
    /// The HBA address of the cluster network in `pg_hba.conf` and
    /// `pool_hba.conf`.
    #[serde(default = "default_hba")]
    pub cluster_hba: String,
    /// The HBA address of Kompira's clients.
    #[serde(default = "default_hba")]
    pub kompira_hba: String,
}

fn default_prefix() -> u8 {
    24
}

fn default_hba() -> String {
    "samenet".to_string()
}

/// `[swarm]`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SwarmSpec {
    pub data_path_port: DataPathPort,
}

/// `[ports]`: the procedure's ports, each overridable.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Ports {
    pub postgres: u16,
    pub pgpool: u16,
    pub pcp: u16,
    pub watchdog: u16,
    pub heartbeat: u16,
}

impl Default for Ports {
    fn default() -> Self {
        Ports {
            postgres: 5432,
            pgpool: 9999,
            pcp: 9898,
            watchdog: 9000,
            heartbeat: 9694,
        }
    }
}

impl Ports {
    /// Every configurable port with its field path, in file order.
    pub fn named(&self) -> [(&'static str, u16); 5] {
        [
            ("ports.postgres", self.postgres),
            ("ports.pgpool", self.pgpool),
            ("ports.pcp", self.pcp),
            ("ports.watchdog", self.watchdog),
            ("ports.heartbeat", self.heartbeat),
        ]
    }
}

/// `[shared_dir]`: `SHARED_DIR` and, for Gluster, the volume behind it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SharedDirSpec {
    pub kind: SharedDirKind,
    /// The mount point on every host.
    pub path: String,
    /// The Gluster volume name (Gluster only).
    pub volume: String,
    /// The brick directory on every host (Gluster only).
    pub brick: String,
    /// Lab-only tuning of the volume's `network.ping-timeout`, in seconds.
    /// The document leaves Gluster's default (42 s), which makes the lab's
    /// host-loss tests wait that long for the mount to recover.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ping_timeout: Option<u32>,
}

impl Default for SharedDirSpec {
    fn default() -> Self {
        SharedDirSpec {
            kind: SharedDirKind::Gluster,
            path: "/mnt/gluster".to_string(),
            volume: "gvol0".to_string(),
            brick: "/var/glustervol0".to_string(),
            ping_timeout: None,
        }
    }
}

/// `[pgpool]`: lab deviations of Pgpool-II's settings. A real server's
/// topology leaves this out and gets the document's `pgpool.conf`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PgpoolSpec {
    /// Lab-only: the shared memory behind Pgpool-II's shared relation cache,
    /// in MiB (`memqcache_total_size`, with `memqcache_max_num_cache`
    /// scaled to it at the defaults' ratio, one entry per 64 bytes).
    /// `enable_shared_relcache` is on by default, so Pgpool-II allocates
    /// and zeroes this segment at every start even with the query cache
    /// off: 64 MiB plus a hash of a million entries, about 133 MiB per
    /// host and 0.9 s of each start on this machine kind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_memory_mb: Option<u32>,
    /// Lab-only: the watchdog lifecheck's `wd_interval`, in seconds (the
    /// document keeps 10). Right after a start no peer's heartbeat has
    /// arrived yet, so the lifecheck's first readiness check fails and it
    /// sleeps `10 × wd_interval` before the next (`wd_lifecheck.c`): with
    /// the default, lifecheck starts 100 s after Pgpool-II, which every
    /// watchdog scenario waited out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub wd_interval: Option<u32>,
    /// Lab-only: each host's watchdog `wd_priority` is its place from the
    /// end of the host list (the first host `n`, the last 1; the document
    /// leaves every host at Pgpool-II's 1). Members that start together
    /// all stand for leader at once; with equal priorities the tie goes to
    /// the older `startup_time`, compared in whole seconds, so members
    /// started within the same second each reject the others
    /// (`watchdog.c`, `WD_STAND_FOR_COORDINATOR`) and retry after 5 s:
    /// measured 8-48 s to a leader. Distinct priorities end the first
    /// round with the first host as leader.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub ranked_priority: bool,
}

/// Pgpool-II's own defaults of the settings [`PgpoolSpec`] may change.
pub const PGPOOL_DEFAULTS: [(&str, &str); 4] = [
    ("memqcache_total_size", "64MB"),
    ("memqcache_max_num_cache", "1000000"),
    ("wd_interval", "10"),
    ("wd_priority", "1"),
];

impl PgpoolSpec {
    fn is_default(&self) -> bool {
        *self == PgpoolSpec::default()
    }

    /// `memqcache_max_num_cache` for `cache_memory_mb` MiB: Pgpool-II's
    /// default ratio (1000000 entries for 64 MiB, about 64 bytes each).
    pub fn max_num_cache(mb: u32) -> u64 {
        (u64::from(mb) << 20) / 64
    }

    /// The `pgpool.conf` settings this section changes, with their values
    /// (the renderer quotes a [`ConfValue::Str`]); empty for a real
    /// server's topology.
    pub fn settings(&self) -> Vec<(&'static str, ConfValue)> {
        let mut out = Vec::new();
        if let Some(mb) = self.cache_memory_mb {
            out.push(("memqcache_total_size", ConfValue::Str(format!("{mb}MB"))));
            out.push((
                "memqcache_max_num_cache",
                ConfValue::Int(Self::max_num_cache(mb)),
            ));
        }
        if let Some(s) = self.wd_interval {
            out.push(("wd_interval", ConfValue::Int(s.into())));
        }
        out
    }

    /// The `wd_priority` of node `node` of `hosts` when the section ranks
    /// them (`ranked_priority`), else `None` (Pgpool-II's default).
    pub fn wd_priority(&self, node: usize, hosts: usize) -> Option<u64> {
        self.ranked_priority
            .then(|| hosts.saturating_sub(node) as u64)
    }

    /// Every host's ranked `wd_priority` in host order, as the deviation
    /// is printed (`3, 2, 1`); `None` when the section does not rank.
    pub fn ranked_priorities(&self, hosts: usize) -> Option<String> {
        self.ranked_priority.then(|| {
            (0..hosts)
                .filter_map(|i| self.wd_priority(i, hosts))
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        })
    }
}

/// A configuration value: a number, or a string (a size with its unit),
/// which a configuration file quotes. Displayed bare.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfValue {
    Int(u64),
    Str(String),
}

impl fmt::Display for ConfValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfValue::Int(n) => write!(f, "{n}"),
            ConfValue::Str(s) => f.write_str(s),
        }
    }
}

/// `[credentials]`: how the cluster's passwords are chosen; see
/// [`CredentialSpec::resolve`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CredentialSpec {
    /// Use the document's well-known passwords for every value that is
    /// neither explicit nor stored. Only sensible for a throwaway lab.
    pub use_document_defaults: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub postgres: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repl: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgpool: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kompira: Option<Secret>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pgpool_key: Option<Secret>,
}

impl CredentialSpec {
    /// The explicit values with their field paths, in file order.
    fn named(&self) -> [(&'static str, Option<&Secret>); 5] {
        [
            ("credentials.postgres", self.postgres.as_ref()),
            ("credentials.repl", self.repl.as_ref()),
            ("credentials.pgpool", self.pgpool.as_ref()),
            ("credentials.kompira", self.kompira.as_ref()),
            ("credentials.pgpool_key", self.pgpool_key.as_ref()),
        ]
    }

    /// The cluster's credentials. Each value is, in order of preference:
    /// the explicit value in the topology; the value `stored` by an earlier
    /// run (so that a second run does not change the passwords of a running
    /// cluster); the document's value if `use_document_defaults`; otherwise
    /// a fresh random password. Save the result so the next run finds it.
    pub fn resolve(&self, stored: Option<&Credentials>) -> Credentials {
        let document = Credentials::document_defaults();
        let pick = |explicit: &Option<Secret>, stored: Option<&Secret>, document: Secret| {
            explicit
                .clone()
                .or_else(|| stored.cloned())
                .or_else(|| self.use_document_defaults.then_some(document))
                .unwrap_or_else(Secret::generate)
        };
        Credentials {
            postgres: pick(
                &self.postgres,
                stored.map(|s| &s.postgres),
                document.postgres,
            ),
            repl: pick(&self.repl, stored.map(|s| &s.repl), document.repl),
            pgpool: pick(&self.pgpool, stored.map(|s| &s.pgpool), document.pgpool),
            kompira: pick(&self.kompira, stored.map(|s| &s.kompira), document.kompira),
            pgpool_key: pick(
                &self.pgpool_key,
                stored.map(|s| &s.pgpool_key),
                document.pgpool_key,
            ),
        }
    }

    /// [`CredentialSpec::resolve`] against the passwords kept in `path`,
    /// written back (mode 0600) only when they changed, so every caller that
    /// asks again gets the same passwords without rewriting the file.
    pub fn resolve_kept(&self, path: &Path) -> Result<Credentials, TopologyError> {
        let stored = Credentials::load_if_exists(path)?;
        let creds = self.resolve(stored.as_ref());
        if stored.as_ref() != Some(&creds) {
            creds.save(path)?;
        }
        Ok(creds)
    }
}

/// The resolved passwords of the cluster's database users and the Pgpool-II
/// key. Stored by ke2lab between runs in a private TOML file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    pub postgres: Secret,
    pub repl: Secret,
    pub pgpool: Secret,
    pub kompira: Secret,
    pub pgpool_key: Secret,
}

impl Credentials {
    /// The values the document (and `setup_pgpool.sh`) uses when none are
    /// given: every password equals its user name.
    pub fn document_defaults() -> Self {
        Credentials {
            postgres: Secret::new("postgres"),
            repl: Secret::new("repl"),
            pgpool: Secret::new("pgpool"),
            kompira: Secret::new("kompira"),
            pgpool_key: Secret::new("ke2pgpoolkey"),
        }
    }

    /// Reads a credentials file written by [`Credentials::save`].
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let text = fs::read_to_string(path).map_err(|error| TopologyError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        toml::from_str(&text).map_err(TopologyError::parse)
    }

    /// Like [`Credentials::load`], but a missing file is `None` (the first
    /// run of a new cluster).
    pub fn load_if_exists(path: &Path) -> Result<Option<Self>, TopologyError> {
        match fs::metadata(path) {
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(None),
            _ => Self::load(path).map(Some),
        }
    }

    /// Writes the credentials as TOML with mode 0600, creating the parent
    /// directory. The file is written beside its destination and renamed
    /// over it, so it is never readable by others, not even for a moment,
    /// and an interrupted save leaves the previous file intact.
    pub fn save(&self, path: &Path) -> Result<(), TopologyError> {
        let write_error = |error| TopologyError::Write {
            path: path.to_path_buf(),
            error,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(write_error)?;
        }
        let body = format!(
            "# ke2lab: the cluster's passwords. Keep this file private (mode 0600).\n{}",
            toml::to_string(self).expect("credentials always serialize to TOML")
        );
        let mut temporary = path.as_os_str().to_owned();
        temporary.push(".tmp");
        let temporary = PathBuf::from(temporary);

        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let mut file = options.open(&temporary).map_err(write_error)?;
        // A leftover temporary file from an interrupted save keeps its old
        // mode when reopened, so the mode is set again explicitly.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            file.set_permissions(fs::Permissions::from_mode(0o600))
                .map_err(write_error)?;
        }
        file.write_all(body.as_bytes()).map_err(write_error)?;
        file.sync_all().map_err(write_error)?;
        drop(file);
        fs::rename(&temporary, path).map_err(write_error)
    }
}

/// `[postgres]`: the overridable settings of `setup_pgpool.sh` (step 5).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PostgresSpec {
    /// Kompira's database, owned by the `kompira` role.
    pub database: String,
    /// Where `archive_command` copies WAL files.
    pub archive_dir: String,
    pub max_connections: u32,
    /// Synchronous replication instead of the document's asynchronous
    /// streaming.
    pub synchronous: bool,
}

impl Default for PostgresSpec {
    fn default() -> Self {
        PostgresSpec {
            database: "kompira".to_string(),
            archive_dir: "/var/lib/pgsql/archivedir".to_string(),
            max_connections: 256,
            synchronous: false,
        }
    }
}

/// `[stack]`: the Kompira Enterprise stack (step 8).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StackSpec {
    pub nginx_port_mode: NginxPortMode,
    /// `SWARM_REPLICAS`: replicas of each replicated service, at most one
    /// per node.
    pub swarm_replicas: u32,
    /// `KOMPIRA_LOG_DIR` (default `<shared_dir.path>/log`). May lie outside
    /// the shared directory: each node then keeps its own containers' logs,
    /// and the directory is made on every host.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_dir: Option<String>,
    /// `KOMPIRA_VAR_DIR` (default `<shared_dir.path>/var`). Inside the
    /// shared directory: it holds `.secret_key`, which every node's Kompira
    /// must read the same.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub var_dir: Option<String>,
    /// `KOMPIRA_SSL_DIR` (default `<shared_dir.path>/ssl`). Inside the
    /// shared directory: the certificates are copied there once, on the
    /// manager, and nginx reads them on every node.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ssl_dir: Option<String>,
}

impl Default for StackSpec {
    fn default() -> Self {
        StackSpec {
            nginx_port_mode: NginxPortMode::Ingress,
            swarm_replicas: 3,
            log_dir: None,
            var_dir: None,
            ssl_dir: None,
        }
    }
}

/// An IPv4 subnet: a network address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Subnet {
    pub network: Ipv4Addr,
    pub prefix: u8,
}

impl Subnet {
    /// The subnet of `prefix` bits that contains `address`.
    pub fn containing(address: Ipv4Addr, prefix: u8) -> Self {
        Subnet {
            network: Ipv4Addr::from(u32::from(address) & mask(prefix)),
            prefix,
        }
    }

    pub fn contains(&self, address: Ipv4Addr) -> bool {
        u32::from(address) & mask(self.prefix) == u32::from(self.network)
    }

    pub fn broadcast(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network) | !mask(self.prefix))
    }
}

impl fmt::Display for Subnet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

fn mask(prefix: u8) -> u32 {
    match prefix {
        0 => 0,
        1..=31 => u32::MAX << (32 - u32::from(prefix)),
        _ => u32::MAX,
    }
}

// ---------------------------------------------------------------------------
// Loading and queries
// ---------------------------------------------------------------------------

impl Topology {
    /// Parses and validates a topology.
    pub fn from_toml_str(s: &str) -> Result<Validated, TopologyError> {
        let raw: toml::Table = toml::from_str(s).map_err(TopologyError::parse)?;
        scan_raw(&raw)?;
        let topology: Topology = toml::from_str(s).map_err(TopologyError::parse)?;
        let warnings = topology.validate()?;
        Ok(Validated { topology, warnings })
    }

    /// Reads, parses and validates a topology file.
    pub fn load(path: &Path) -> Result<Validated, TopologyError> {
        let text = fs::read_to_string(path).map_err(|error| TopologyError::Read {
            path: path.to_path_buf(),
            error,
        })?;
        Self::from_toml_str(&text)
    }

    /// The topologies shipped in this repository's `fixtures/topologies/`
    /// (name, text), embedded when compiled: a test or scenario finds them
    /// wherever it runs, and no compile-time path is kept.
    pub const FIXTURES: &[(&str, &str)] = fixtures![
        "generated-credentials",
        "matrix-custom-paths",
        "matrix-five-fqdn",
        "matrix-four-sync",
        "matrix-ports",
        "matrix-stack",
        "three-node",
        "three-node-vmxnet3",
    ];

    /// Reads and validates a topology shipped in `fixtures/topologies/`
    /// (`three-node` for `three-node.toml`), from [`Topology::FIXTURES`].
    pub fn fixture(name: &str) -> Result<Validated, TopologyError> {
        let (_, text) = Self::FIXTURES
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| TopologyError::Read {
                path: PathBuf::from(format!("fixtures/topologies/{name}.toml")),
                error: std::io::ErrorKind::NotFound.into(),
            })?;
        Self::from_toml_str(text)
    }

    /// The topology as TOML; [`Topology::from_toml_str`] reads it back to an
    /// equal value. Explicit credentials are written in clear (see
    /// [`Secret`]).
    pub fn to_toml_string(&self) -> String {
        toml::to_string(self).expect("a topology always serializes to TOML")
    }

    /// `KOMPIRA_LOG_DIR` with its default resolved, normalised.
    pub fn kompira_log_dir(&self) -> String {
        self.stack_dir(self.stack.log_dir.as_deref(), "log")
    }

    /// `KOMPIRA_VAR_DIR` with its default resolved, normalised.
    pub fn kompira_var_dir(&self) -> String {
        self.stack_dir(self.stack.var_dir.as_deref(), "var")
    }

    /// `KOMPIRA_SSL_DIR` with its default resolved, normalised.
    pub fn kompira_ssl_dir(&self) -> String {
        self.stack_dir(self.stack.ssl_dir.as_deref(), "ssl")
    }

    /// The three stack directories with their variables, in
    /// `setup_stack.sh`'s order.
    pub fn kompira_dirs(&self) -> [(&'static str, String); 3] {
        [
            ("KOMPIRA_LOG_DIR", self.kompira_log_dir()),
            ("KOMPIRA_VAR_DIR", self.kompira_var_dir()),
            ("KOMPIRA_SSL_DIR", self.kompira_ssl_dir()),
        ]
    }

    /// Whether `dir` (normalised) lies in the shared directory, so that one
    /// host's view of it is every host's.
    pub fn in_shared_dir(&self, dir: &str) -> bool {
        let shared = normalise(&self.shared_dir.path).unwrap_or_default();
        Path::new(dir).starts_with(shared)
    }

    fn stack_dir(&self, explicit: Option<&str>, default: &str) -> String {
        let dir = match explicit {
            Some(d) => d.to_string(),
            None => format!("{}/{default}", self.shared_dir.path.trim_end_matches('/')),
        };
        normalise(&dir).unwrap_or(dir)
    }

    /// The swarm's data-path port with `auto` resolved.
    pub fn data_path_port(&self) -> u16 {
        self.swarm.data_path_port.resolve(self.has_vmxnet3())
    }

    /// Whether any host has a vmxnet3 NIC (procedure step 3's caveat).
    pub fn has_vmxnet3(&self) -> bool {
        self.hosts.iter().any(|host| host.nic == Nic::Vmxnet3)
    }

    /// The initial PostgreSQL primary and swarm leader: the first host.
    ///
    /// Panics on a topology without hosts, which validation rejects.
    pub fn primary(&self) -> &HostSpec {
        &self.hosts[0]
    }

    /// The host of that name. Host names compare case-insensitively, as DNS
    /// names do.
    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts
            .iter()
            .find(|host| host.name.eq_ignore_ascii_case(name))
    }

    /// The Pgpool-II node id of a host: its index in `hosts`.
    pub fn node_id(&self, name: &str) -> Option<usize> {
        self.hosts
            .iter()
            .position(|host| host.name.eq_ignore_ascii_case(name))
    }

    /// The interface override for a host: its own, else the network's.
    /// `None` means "detect": the first non-loopback UP link.
    pub fn interface_for<'a>(&'a self, host: &'a HostSpec) -> Option<&'a str> {
        host.interface
            .as_deref()
            .or(self.network.interface.as_deref())
    }

    /// The hosts' subnet: the first host's address with `network.prefix`.
    ///
    /// Panics on a topology without hosts, which validation rejects.
    pub fn subnet(&self) -> Subnet {
        Subnet::containing(self.primary().address, self.network.prefix)
    }
}

// ---------------------------------------------------------------------------
// The raw scan
// ---------------------------------------------------------------------------

/// Checks the values whose errors serde could report only without their
/// field path (serde does not know the index of a host in `[[hosts]]`) or
/// only as a bare type error (a port of 70000 does not fit in a `u16`).
/// Values of the wrong TOML type are left to serde, whose message shows the
/// line, except for the mistakes whose fix serde's "invalid type" does not
/// suggest: a quoted number, and `[hosts]` written for `[[hosts]]` (or the
/// reverse for a section).
fn scan_raw(raw: &toml::Table) -> Result<(), TopologyError> {
    use toml::Value;

    if let Some(Value::Table(_)) = raw.get("hosts") {
        return Err(invalid(
            "hosts",
            "`[hosts]` is a single table; write each host as its own `[[hosts]]` \
             (an array of tables)",
        ));
    }
    for section in [
        "cluster",
        "network",
        "swarm",
        "ports",
        "shared_dir",
        "credentials",
        "postgres",
        "stack",
    ] {
        if let Some(Value::Array(items)) = raw.get(section)
            && items.iter().all(Value::is_table)
        {
            return Err(invalid(
                section,
                format!("`[[{section}]]` is an array of tables; write `[{section}]` (one table)"),
            ));
        }
    }

    if let Some(Value::Array(hosts)) = raw.get("hosts") {
        for (i, host) in hosts.iter().enumerate() {
            let Value::Table(host) = host else { continue };
            scan_str(
                host,
                "address",
                || format!("hosts[{i}].address"),
                parse_address,
            )?;
            scan_str(
                host,
                "platform",
                || format!("hosts[{i}].platform"),
                |s| s.parse::<Platform>().map(drop),
            )?;
            scan_str(
                host,
                "nic",
                || format!("hosts[{i}].nic"),
                |s| s.parse::<Nic>().map(drop),
            )?;
        }
    }
    if let Some(Value::Table(network)) = raw.get("network") {
        scan_str(network, "vip", || "network.vip".into(), parse_address)?;
        scan_quoted_number(network, "prefix", "network.prefix")?;
        scan_int(network, "prefix", "network.prefix", |n| {
            u8::try_from(n).map(drop).map_err(|_| prefix_range(n))
        })?;
    }
    if let Some(Value::Table(swarm)) = raw.get("swarm") {
        scan_str(
            swarm,
            "data_path_port",
            || "swarm.data_path_port".into(),
            |s| {
                if s == "auto" {
                    Ok(())
                } else {
                    Err(quoted_number("data_path_port", s)
                        .unwrap_or_else(|| data_path_port_keyword(s)))
                }
            },
        )?;
        scan_int(swarm, "data_path_port", "swarm.data_path_port", |n| {
            u16::try_from(n).map(drop).map_err(|_| port_range(n))
        })?;
    }
    if let Some(Value::Table(ports)) = raw.get("ports") {
        for (field, _) in Ports::default().named() {
            let key = field.trim_start_matches("ports.");
            scan_quoted_number(ports, key, field)?;
        }
        for (key, value) in ports {
            if let Value::Integer(n) = value
                && u16::try_from(*n).is_err()
            {
                return Err(invalid(format!("ports.{key}"), port_range(*n)));
            }
        }
    }
    if let Some(Value::Table(shared_dir)) = raw.get("shared_dir") {
        scan_str(
            shared_dir,
            "kind",
            || "shared_dir.kind".into(),
            |s| s.parse::<SharedDirKind>().map(drop),
        )?;
        scan_quoted_number(shared_dir, "ping_timeout", "shared_dir.ping_timeout")?;
        scan_int(
            shared_dir,
            "ping_timeout",
            "shared_dir.ping_timeout",
            fits_u32,
        )?;
    }
    if let Some(Value::Table(pgpool)) = raw.get("pgpool") {
        scan_quoted_number(pgpool, "cache_memory_mb", "pgpool.cache_memory_mb")?;
        scan_int(
            pgpool,
            "cache_memory_mb",
            "pgpool.cache_memory_mb",
            fits_u32,
        )?;
        scan_quoted_number(pgpool, "wd_interval", "pgpool.wd_interval")?;
        scan_int(pgpool, "wd_interval", "pgpool.wd_interval", fits_u32)?;
    }
    if let Some(Value::Table(postgres)) = raw.get("postgres") {
        scan_quoted_number(postgres, "max_connections", "postgres.max_connections")?;
        scan_int(
            postgres,
            "max_connections",
            "postgres.max_connections",
            fits_u32,
        )?;
    }
    if let Some(Value::Table(stack)) = raw.get("stack") {
        scan_str(
            stack,
            "nginx_port_mode",
            || "stack.nginx_port_mode".into(),
            |s| s.parse::<NginxPortMode>().map(drop),
        )?;
        scan_quoted_number(stack, "swarm_replicas", "stack.swarm_replicas")?;
        scan_int(stack, "swarm_replicas", "stack.swarm_replicas", fits_u32)?;
    }
    Ok(())
}

fn scan_str(
    table: &toml::Table,
    key: &str,
    field: impl FnOnce() -> String,
    check: impl FnOnce(&str) -> Result<(), String>,
) -> Result<(), TopologyError> {
    match table.get(key) {
        Some(toml::Value::String(s)) => check(s).map_err(|message| invalid(field(), message)),
        _ => Ok(()),
    }
}

fn scan_int(
    table: &toml::Table,
    key: &str,
    field: &str,
    check: impl FnOnce(i64) -> Result<(), String>,
) -> Result<(), TopologyError> {
    match table.get(key) {
        Some(toml::Value::Integer(n)) => check(*n).map_err(|message| invalid(field, message)),
        _ => Ok(()),
    }
}

/// A number field written as a string: serde would only say "invalid type".
fn scan_quoted_number(table: &toml::Table, key: &str, field: &str) -> Result<(), TopologyError> {
    scan_str(
        table,
        key,
        || field.into(),
        |s| match quoted_number(key, s) {
            Some(message) => Err(message),
            None => Ok(()),
        },
    )
}

/// The message for a number in quotes, if `s` is one.
fn quoted_number(key: &str, s: &str) -> Option<String> {
    s.parse::<i64>().ok().map(|n| {
        format!(
            "the number `\"{}\"` is quoted, which makes it a string; drop the quotes: \
             `{key} = {n}`",
            shown(s)
        )
    })
}

fn parse_address(s: &str) -> Result<(), String> {
    s.parse::<Ipv4Addr>()
        .map(drop)
        .map_err(|_| format!("invalid IPv4 address `{}`", shown(s)))
}

fn fits_u32(n: i64) -> Result<(), String> {
    u32::try_from(n)
        .map(drop)
        .map_err(|_| format!("`{n}` out of range 0..={}", u32::MAX))
}

/// Every port of the topology, the data-path port too, lies in
/// [`MIN_SERVICE_PORT`]`..=65535`.
fn port_range(port: impl fmt::Display) -> String {
    format!("port `{port}` out of range {MIN_SERVICE_PORT}..=65535")
}

fn prefix_range(prefix: impl fmt::Display) -> String {
    format!("prefix `{prefix}` out of range 8..=30")
}

// ---------------------------------------------------------------------------
// Validation
// ---------------------------------------------------------------------------

impl Topology {
    /// Checks every rule that the types alone do not enforce. Returns the
    /// warnings (legal but unwise choices) or the first error found, in file
    /// order.
    pub fn validate(&self) -> Result<Vec<Warning>, TopologyError> {
        let mut warnings = Vec::new();
        self.validate_cluster()?;
        self.validate_hosts(&mut warnings)?;
        self.validate_network()?;
        self.validate_ports(&mut warnings)?;
        self.validate_shared_dir()?;
        self.validate_credentials()?;
        self.validate_postgres()?;
        self.validate_pgpool()?;
        self.validate_stack()?;
        Ok(warnings)
    }

    fn validate_pgpool(&self) -> Result<(), TopologyError> {
        // Pgpool-II refuses a cache smaller than one block
        // (`memqcache_cache_block_size`, 1 MiB by default) and fails to
        // start; more than the default 64 MiB only costs memory.
        if let Some(mb) = self.pgpool.cache_memory_mb
            && !(1..=1024).contains(&mb)
        {
            return Err(invalid(
                "pgpool.cache_memory_mb",
                format!("`{mb}` is out of range (1 to 1024 MiB; Pgpool-II's default is 64)"),
            ));
        }
        // Heartbeats go out every 2 s (`wd_heartbeat_keepalive`) and a peer
        // is dead after 30 s (`wd_heartbeat_deadtime`): an interval past
        // that would check less often than a peer can die.
        if let Some(s) = self.pgpool.wd_interval
            && !(1..=30).contains(&s)
        {
            return Err(invalid(
                "pgpool.wd_interval",
                format!("`{s}` is out of range (1 to 30 seconds; Pgpool-II's default is 10)"),
            ));
        }
        Ok(())
    }

    fn validate_cluster(&self) -> Result<(), TopologyError> {
        let name = &self.cluster.name;
        if name.is_empty() {
            return Err(invalid("cluster.name", "must not be empty"));
        }
        if let Some(c) = name.chars().find(|c| c.is_control()) {
            return Err(invalid("cluster.name", control_character(name, c)));
        }
        // The name prefixes lab resources (containers, networks, files), so
        // it keeps to characters that all of them accept.
        let valid = name.len() <= 63
            && name.starts_with(|c: char| c.is_ascii_alphanumeric())
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(invalid(
                "cluster.name",
                format!(
                    "invalid cluster name `{}` (letters, digits, `-` and `_`, \
                     starting with a letter or digit, at most 63 characters)",
                    shown(name)
                ),
            ));
        }
        Ok(())
    }

    fn validate_hosts(&self, warnings: &mut Vec<Warning>) -> Result<(), TopologyError> {
        let count = self.hosts.len();
        if count < MIN_HOSTS {
            return Err(invalid(
                "hosts",
                format!("a cluster needs at least {MIN_HOSTS} hosts, found {count}"),
            ));
        }
        if count > MAX_HOSTS {
            return Err(invalid(
                "hosts",
                format!(
                    "{count} hosts exceed Pgpool-II's limit of {MAX_HOSTS} backends \
                     (each host is one)"
                ),
            ));
        }
        for (i, host) in self.hosts.iter().enumerate() {
            if let Some(problem) = hostname_problem(&host.name) {
                return Err(invalid(format!("hosts[{i}].name"), problem));
            }
            if let Some(j) = self.hosts[..i]
                .iter()
                .position(|other| other.name.eq_ignore_ascii_case(&host.name))
            {
                return Err(invalid(
                    format!("hosts[{i}].name"),
                    format!(
                        "duplicate host name `{}` (also used by `hosts[{j}]`)",
                        shown(&host.name)
                    ),
                ));
            }
            if let Some(what) = unusable_address(host.address) {
                return Err(invalid(
                    format!("hosts[{i}].address"),
                    format!("`{}` is {what}", host.address),
                ));
            }
            if let Some(j) = self.hosts[..i]
                .iter()
                .position(|other| other.address == host.address)
            {
                return Err(invalid(
                    format!("hosts[{i}].address"),
                    format!(
                        "duplicate address `{}` (also used by `hosts[{j}]`)",
                        host.address
                    ),
                ));
            }
            if let Some(interface) = &host.interface {
                check_interface(&format!("hosts[{i}].interface"), interface)?;
            }
        }
        if count.is_multiple_of(2) {
            // Swarm's Raft and the Pgpool-II watchdog need a strict majority:
            // `n` members survive `(n - 1) / 2` failures, so 4 survive 1,
            // as 3 do.
            let tolerated = (count - 1) / 2;
            let failures = if tolerated == 1 {
                "failure"
            } else {
                "failures"
            };
            warnings.push(Warning {
                field: "hosts".to_string(),
                message: format!(
                    "an even number of hosts ({count}) tolerates {tolerated} {failures}, \
                     as {} hosts do (swarm and the Pgpool-II watchdog need a strict \
                     majority); the procedure expects an odd count",
                    count - 1
                ),
            });
        }
        Ok(())
    }

    fn validate_network(&self) -> Result<(), TopologyError> {
        let prefix = self.network.prefix;
        // Below /8 is not a LAN; /31 and /32 leave no room for three hosts
        // and a VIP besides the network and broadcast addresses.
        if !(8..=30).contains(&prefix) {
            return Err(invalid("network.prefix", prefix_range(prefix)));
        }
        let subnet = self.subnet();
        for (i, host) in self.hosts.iter().enumerate() {
            let field = format!("hosts[{i}].address");
            if !subnet.contains(host.address) {
                return Err(invalid(
                    field,
                    format!(
                        "`{}` is outside the subnet `{subnet}` of `hosts[0]` \
                         (all hosts must share one subnet)",
                        host.address
                    ),
                ));
            }
            check_not_network_or_broadcast(&field, host.address, subnet)?;
        }

        let vip = self.network.vip;
        if let Some(what) = unusable_address(vip) {
            return Err(invalid("network.vip", format!("`{vip}` is {what}")));
        }
        if let Some((i, host)) = self
            .hosts
            .iter()
            .enumerate()
            .find(|(_, host)| host.address == vip)
        {
            return Err(invalid(
                "network.vip",
                format!(
                    "`{vip}` is the address of `hosts[{i}]` (`{}`); the VIP must be unused",
                    host.name
                ),
            ));
        }
        if !subnet.contains(vip) {
            return Err(invalid(
                "network.vip",
                format!("`{vip}` is outside the hosts' subnet `{subnet}`"),
            ));
        }
        check_not_network_or_broadcast("network.vip", vip, subnet)?;

        if let Some(interface) = &self.network.interface {
            check_interface("network.interface", interface)?;
        }
        self.check_hba("network.cluster_hba", &self.network.cluster_hba, true)?;
        self.check_hba("network.kompira_hba", &self.network.kompira_hba, false)?;
        Ok(())
    }

    /// An HBA address is written into `pg_hba.conf` and `pool_hba.conf`. A
    /// CIDR for the cluster network must contain every host, or replication
    /// and Pgpool-II's own connections would be refused.
    fn check_hba(&self, field: &str, value: &str, cluster: bool) -> Result<(), TopologyError> {
        let problem = || {
            invalid(
                field,
                format!(
                    "invalid HBA address `{}` (expected `samenet`, `samehost`, `all` \
                     or an IPv4 CIDR such as `10.10.0.0/16`)",
                    shown(value)
                ),
            )
        };
        if matches!(value, "samenet" | "samehost" | "all") {
            return Ok(());
        }
        let Some((address, prefix)) = value.split_once('/') else {
            return Err(problem());
        };
        // Only digits: `u8::from_str` would also take a leading `+`, which
        // PostgreSQL does not.
        if !prefix.chars().all(|c| c.is_ascii_digit()) {
            return Err(problem());
        }
        let (Ok(address), Ok(prefix)) = (address.parse::<Ipv4Addr>(), prefix.parse::<u8>()) else {
            return Err(problem());
        };
        if prefix > 32 {
            return Err(problem());
        }
        if cluster {
            let range = Subnet::containing(address, prefix);
            if let Some((i, host)) = self
                .hosts
                .iter()
                .enumerate()
                .find(|(_, host)| !range.contains(host.address))
            {
                return Err(invalid(
                    field,
                    format!(
                        "`{value}` does not contain `hosts[{i}]` (`{}`), whose replication \
                         and Pgpool-II connections would be refused",
                        host.address
                    ),
                ));
            }
        }
        Ok(())
    }

    fn validate_ports(&self, warnings: &mut Vec<Warning>) -> Result<(), TopologyError> {
        for (field, port) in self.ports.named() {
            if port < MIN_SERVICE_PORT {
                return Err(invalid(field, port_range(port)));
            }
        }
        let data_path = self.data_path_port();
        // Docker refuses data-path ports below 1024.
        if data_path < MIN_SERVICE_PORT {
            return Err(invalid("swarm.data_path_port", port_range(data_path)));
        }

        let mut all: Vec<(&str, u16)> = self.ports.named().to_vec();
        all.push(("swarm.data_path_port", data_path));
        let gluster = self.shared_dir.kind == SharedDirKind::Gluster;
        let fixed = FIXED_PORTS
            .iter()
            .chain(GLUSTER_PORTS.iter().filter(|_| gluster));
        let auto_note = |field: &str| {
            if field == "swarm.data_path_port" && self.swarm.data_path_port == DataPathPort::Auto {
                format!(" (`auto` resolves to `{data_path}`)")
            } else {
                String::new()
            }
        };
        for (i, &(field, port)) in all.iter().enumerate() {
            if let Some((_, what)) = fixed.clone().find(|(fixed, _)| *fixed == port) {
                return Err(invalid(
                    field,
                    format!("port `{port}`{} collides with {what}", auto_note(field)),
                ));
            }
            if gluster && GLUSTER_BRICK_PORTS.contains(&port) {
                return Err(invalid(
                    field,
                    format!(
                        "port `{port}`{} is inside Gluster's brick port range \
                         (`{}-{}/tcp`, fixed)",
                        auto_note(field),
                        GLUSTER_BRICK_PORTS.start(),
                        GLUSTER_BRICK_PORTS.end()
                    ),
                ));
            }
            if let Some((other, _)) = all[..i].iter().find(|(_, other)| *other == port) {
                return Err(invalid(
                    field,
                    format!("port `{port}`{} collides with `{other}`", auto_note(field)),
                ));
            }
        }

        if self.swarm.data_path_port == DataPathPort::Port(DEFAULT_DATA_PATH_PORT)
            && let Some(i) = self.hosts.iter().position(|h| h.nic == Nic::Vmxnet3)
        {
            warnings.push(Warning {
                field: "swarm.data_path_port".to_string(),
                message: format!(
                    "port `{DEFAULT_DATA_PATH_PORT}` with a vmxnet3 nic (`hosts[{i}]`) \
                     is known to lose TCP between containers on different nodes \
                     (VXLAN checksum offload); use `auto` or another port"
                ),
            });
        }
        Ok(())
    }

    fn validate_shared_dir(&self) -> Result<(), TopologyError> {
        let spec = &self.shared_dir;
        let path = check_path("shared_dir.path", &spec.path)?;
        let brick = check_path("shared_dir.brick", &spec.brick)?;
        let volume_ok = !spec.volume.is_empty()
            && spec
                .volume
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !volume_ok {
            return Err(invalid(
                "shared_dir.volume",
                format!(
                    "invalid volume name `{}` (letters, digits, `-` and `_`, not empty)",
                    shown(&spec.volume)
                ),
            ));
        }
        if spec.kind == SharedDirKind::Gluster {
            // Gluster would serve the brick through a mount of itself, or
            // the mount would hide the brick's contents. Compared once
            // normalised, so `/mnt//gluster/../gluster` is `/mnt/gluster`.
            if overlaps(&path, &brick) {
                return Err(invalid(
                    "shared_dir.brick",
                    format!(
                        "`{}` overlaps the mount point `{}` (`shared_dir.path`)",
                        shown(&spec.brick),
                        shown(&spec.path)
                    ),
                ));
            }
        }
        if spec.ping_timeout == Some(0) {
            return Err(invalid(
                "shared_dir.ping_timeout",
                "must be at least 1 second",
            ));
        }
        Ok(())
    }

    fn validate_credentials(&self) -> Result<(), TopologyError> {
        for (field, secret) in self.credentials.named() {
            if let Some(secret) = secret {
                check_secret(field, secret)?;
            }
        }
        Ok(())
    }

    fn validate_postgres(&self) -> Result<(), TopologyError> {
        let spec = &self.postgres;
        // The name is written unquoted into SQL and `pg_hba.conf`.
        let database = &spec.database;
        let valid = !database.is_empty()
            && database.len() <= 63
            && database.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
            && database
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !valid {
            return Err(invalid(
                "postgres.database",
                format!(
                    "invalid database name `{}` (lowercase letters, digits and `_`, \
                     not starting with a digit, at most 63 characters)",
                    shown(database)
                ),
            ));
        }
        let archive = check_path("postgres.archive_dir", &spec.archive_dir)?;
        self.check_archive_place(&archive)?;
        if spec.max_connections == 0 {
            return Err(invalid("postgres.max_connections", "must be at least 1"));
        }
        Ok(())
    }

    /// The WAL archive is each host's own directory (the postgres step and
    /// `recovery_1st_stage` make it on every host). In the shared directory
    /// every host would archive into one place, and `archive_command` (a
    /// plain `cp`) would overwrite one host's segment with another's of the
    /// same name once archiving is on (the document ships
    /// `archive_mode = off`, the command is still written).
    fn check_archive_place(&self, archive: &str) -> Result<(), TopologyError> {
        let field = "postgres.archive_dir";
        let written = shown(&self.postgres.archive_dir);
        let spec = &self.shared_dir;
        // Both were checked by `validate_shared_dir` before.
        let shared = normalise(&spec.path).unwrap_or_default();
        if Path::new(archive).starts_with(&shared) {
            return Err(invalid(
                field,
                format!(
                    "`{written}` {} the shared directory `{}` (`shared_dir.path`); \
                     every host would archive its WAL into one place",
                    if archive == shared { "is" } else { "is inside" },
                    shown(&spec.path)
                ),
            ));
        }
        if Path::new(&shared).starts_with(archive) {
            return Err(invalid(
                field,
                format!(
                    "`{written}` holds the shared directory `{}` (`shared_dir.path`), \
                     which every host would mount inside its WAL archive",
                    shown(&spec.path)
                ),
            ));
        }
        let brick = normalise(&spec.brick).unwrap_or_default();
        if spec.kind == SharedDirKind::Gluster && overlaps(archive, &brick) {
            return Err(invalid(
                field,
                format!(
                    "`{written}` overlaps the Gluster brick `{}` (`shared_dir.brick`), \
                     whose contents only Gluster may write",
                    shown(&spec.brick)
                ),
            ));
        }
        Ok(())
    }

    fn validate_stack(&self) -> Result<(), TopologyError> {
        let replicas = self.stack.swarm_replicas;
        let hosts = self.hosts.len();
        if replicas == 0 {
            return Err(invalid("stack.swarm_replicas", "must be at least 1"));
        }
        if usize::try_from(replicas).map_or(true, |r| r > hosts) {
            return Err(invalid(
                "stack.swarm_replicas",
                format!(
                    "`{replicas}` exceeds the host count {hosts} \
                     (the stack places at most one replica per node)"
                ),
            ));
        }
        let spec = &self.stack;
        let shared = normalise(&self.shared_dir.path).unwrap_or_default();
        let brick = normalise(&self.shared_dir.brick).unwrap_or_default();
        let archive = normalise(&self.postgres.archive_dir).unwrap_or_default();
        for (field, dir, shared_only) in [
            ("stack.log_dir", &spec.log_dir, false),
            ("stack.var_dir", &spec.var_dir, true),
            ("stack.ssl_dir", &spec.ssl_dir, true),
        ] {
            let Some(dir) = dir else { continue };
            let normal = check_path(field, dir)?;
            let written = shown(dir);
            if shared_only && !Path::new(&normal).starts_with(&shared) {
                let why = if field == "stack.var_dir" {
                    "it holds `.secret_key`, which every node must read the same"
                } else {
                    "the certificates are copied there on the manager and read by nginx on every node"
                };
                return Err(invalid(
                    field,
                    format!(
                        "`{written}` is outside the shared directory `{}` (`shared_dir.path`); {why}",
                        shown(&self.shared_dir.path)
                    ),
                ));
            }
            if self.shared_dir.kind == SharedDirKind::Gluster && overlaps(&normal, &brick) {
                return Err(invalid(
                    field,
                    format!(
                        "`{written}` overlaps the Gluster brick `{}` (`shared_dir.brick`), \
                         whose contents only Gluster may write",
                        shown(&self.shared_dir.brick)
                    ),
                ));
            }
            if overlaps(&normal, &archive) {
                return Err(invalid(
                    field,
                    format!(
                        "`{written}` overlaps the WAL archive `{}` (`postgres.archive_dir`)",
                        shown(&self.postgres.archive_dir)
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Why a host name cannot name a host, if it cannot. The name is an RFC 1123
/// host name (dot-separated labels of ASCII letters, digits and `-`, 1 to
/// 63 characters each, not starting or ending with `-`, 253 in all), and
/// more: the container's host name (its first label, at most 63 bytes),
/// Pgpool-II's backend, Gluster's peer and PostgreSQL's `application_name`,
/// which PostgreSQL cuts at 63 bytes, so the whole name is at most 63 bytes.
fn hostname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("must not be empty".to_string());
    }
    let n = shown(name);
    if let Some(c) = name.chars().find(|c| c.is_control()) {
        return Some(control_character(name, c));
    }
    // Every host resolves its peers by name; an address here would become a
    // Gluster peer and a swarm node named by a number.
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Some(format!(
            "`{n}` is an IP address, not a host name (put it in `address`)"
        ));
    }
    let lower = name.to_ascii_lowercase();
    if lower == "localhost" || lower.ends_with(".localhost") {
        return Some(format!(
            "`{n}` resolves to the loopback address on every host, not to this host"
        ));
    }
    if name.len() > 253 {
        return Some(format!(
            "`{n}` is {} bytes long, beyond DNS's 253",
            name.len()
        ));
    }
    let first = name.split('.').next().unwrap_or_default();
    if first.len() > 63 {
        return Some(format!(
            "the first label of `{n}` is {} bytes long, beyond the 63 of a container's \
             host name",
            first.len()
        ));
    }
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    };
    if !name.split('.').all(label_ok) {
        return Some(format!(
            "invalid host name `{n}` (dot-separated labels of letters, digits and `-`, \
             1 to 63 characters each, not starting or ending with `-`)"
        ));
    }
    if name.len() > 63 {
        return Some(format!(
            "`{n}` is {} bytes long; it is PostgreSQL's `application_name`, which keeps \
             63 bytes, so a host name is at most 63",
            name.len()
        ));
    }
    None
}

/// The message for a name with a control character, shown escaped.
fn control_character(value: &str, c: char) -> String {
    format!(
        "`{}` contains the control character `{}`",
        shown(value),
        c.escape_unicode()
    )
}

/// Why an address cannot be a host's or the VIP, if it cannot.
fn unusable_address(address: Ipv4Addr) -> Option<&'static str> {
    if address.is_unspecified() {
        Some("the unspecified address")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else if address.is_broadcast() {
        Some("the limited broadcast address")
    } else {
        None
    }
}

fn check_not_network_or_broadcast(
    field: &str,
    address: Ipv4Addr,
    subnet: Subnet,
) -> Result<(), TopologyError> {
    if address == subnet.network {
        return Err(invalid(
            field,
            format!("`{address}` is the network address of `{subnet}`"),
        ));
    }
    if address == subnet.broadcast() {
        return Err(invalid(
            field,
            format!("`{address}` is the broadcast address of `{subnet}`"),
        ));
    }
    Ok(())
}

/// Linux's rules for interface names (`dev_valid_name`): 1 to 15 bytes, not
/// `.` or `..`, no `/`, `:` or whitespace.
fn check_interface(field: &str, name: &str) -> Result<(), TopologyError> {
    let reason = if name.is_empty() {
        Some("empty")
    } else if name.len() > 15 {
        Some("longer than 15 bytes")
    } else if name == "." || name == ".." {
        Some("a reserved name")
    } else if name.contains('/') {
        Some("contains `/`")
    } else if name.contains(':') {
        Some("contains `:`")
    } else if name.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Some("contains whitespace")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(invalid(
            field,
            format!("invalid interface name `{}` ({reason})", shown(name)),
        )),
        None => Ok(()),
    }
}

/// Checks a directory of the topology and returns it normalised. Paths end up
/// in commands and in `/etc/fstab`, whose fields are separated by
/// whitespace, so they must be absolute and without whitespace. They are
/// compared normalised (`.`, `..` and repeated `/` resolved), so that
/// `/mnt//x/../../etc` is refused as `/etc` is: not `/`, not a
/// [`SYSTEM_DIRS`] entry, and, where marked, not inside one.
fn check_path(field: &str, path: &str) -> Result<String, TopologyError> {
    let p = shown(path);
    if !path.starts_with('/') {
        return Err(invalid(field, format!("`{p}` is not an absolute path")));
    }
    if let Some(c) = path.chars().find(|c| c.is_control()) {
        return Err(invalid(field, control_character(path, c)));
    }
    if path.chars().any(char::is_whitespace) {
        return Err(invalid(field, format!("`{p}` contains whitespace")));
    }
    let Some(normal) = normalise(path) else {
        return Err(invalid(
            field,
            format!("`{p}` climbs above the root directory `/` with `..`"),
        ));
    };
    if normal == "/" {
        return Err(invalid(field, "must not be the root directory `/`"));
    }
    let written = if normal == path {
        format!("`{p}`")
    } else {
        format!("`{p}` (`{}` once normalised)", shown(&normal))
    };
    for &(system, inside) in SYSTEM_DIRS {
        if normal == system {
            return Err(invalid(
                field,
                format!("{written} is the system directory `{system}`"),
            ));
        }
        if inside && Path::new(&normal).starts_with(system) {
            return Err(invalid(
                field,
                format!("{written} is inside the system directory `{system}`"),
            ));
        }
    }
    Ok(normal)
}

/// An absolute path with `.` and empty components dropped and each `..`
/// taking away the component before it, as the kernel resolves a path
/// without symlinks; `None` when a `..` would climb above `/`.
pub fn normalise(path: &str) -> Option<String> {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            part => parts.push(part),
        }
    }
    Some(format!("/{}", parts.join("/")))
}

/// Whether two normalised paths are equal or one lies inside the other.
fn overlaps(a: &str, b: &str) -> bool {
    Path::new(a).starts_with(b) || Path::new(b).starts_with(a)
}

/// Passwords are written into `.pgpass` (`:`-separated, `\` escapes), SQL
/// string literals and shell commands. Rather than escape for each, explicit
/// values are limited to printable ASCII without the characters that any of
/// them would treat specially. The value itself is never part of the message.
fn check_secret(field: &str, secret: &Secret) -> Result<(), TopologyError> {
    const SPECIAL: &[char] = &['\'', '"', '`', '\\', '$', ':'];
    let value = secret.expose();
    if value.is_empty() {
        return Err(invalid(field, "must not be empty"));
    }
    if value.chars().any(|c| c.is_control()) {
        return Err(invalid(
            field,
            "contains a control character (use printable ASCII without quotes, `$`, `\\` or `:`)",
        ));
    }
    if let Some(c) = value.chars().find(|c| !c.is_ascii_graphic()) {
        let what = if c.is_whitespace() {
            "whitespace"
        } else {
            "a character that is not printable ASCII"
        };
        return Err(invalid(
            field,
            format!("contains {what} (use printable ASCII without quotes, `$`, `\\` or `:`)"),
        ));
    }
    if let Some(c) = value.chars().find(|c| SPECIAL.contains(c)) {
        return Err(invalid(
            field,
            format!(
                "contains `{c}`, which configuration files or commands would have to escape \
                 (use printable ASCII without quotes, `$`, `\\` or `:`)"
            ),
        ));
    }
    // Passwords are arguments of commands (`pg_enc`, `pcp_*`); one starting
    // with `-` would be read as an option.
    if value.starts_with('-') {
        return Err(invalid(
            field,
            "starts with `-`, which commands would read as an option",
        ));
    }
    Ok(())
}
