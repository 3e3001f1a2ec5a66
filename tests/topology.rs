//! Tests of the topology file: the shipped fixtures, the defaults, one
//! malformed topology per validation rule, TOML round trips and credentials.

use std::net::Ipv4Addr;
use std::path::Path;

use ke2lab::topology::{
    ClusterSpec, CredentialSpec, Credentials, DataPathPort, HostSpec, NetworkSpec, NginxPortMode,
    Nic, Platform, Ports, PostgresSpec, Secret, SharedDirKind, SharedDirSpec, StackSpec, SwarmSpec,
    Topology, TopologyError,
};
use proptest::prelude::*;
use toml::{Table, Value};

/// The smallest valid topology: only what is required.
const MINIMAL: &str = r#"
[cluster]
name = "ke2"

[[hosts]]
name = "ke2-server1"
address = "10.20.0.1"

[[hosts]]
name = "ke2-server2"
address = "10.20.0.2"

[[hosts]]
name = "ke2-server3"
address = "10.20.0.3"

[network]
vip = "10.20.0.100"
"#;

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/topologies")
        .join(format!("{name}.toml"))
}

// ---------------------------------------------------------------------------
// Fixtures and defaults
// ---------------------------------------------------------------------------

#[test]
fn three_node_fixture_is_the_documents_example() {
    let validated = Topology::load(&fixture("three-node")).expect("three-node.toml is valid");
    assert_eq!(validated.warnings, vec![]);
    let topology = &validated.topology;
    assert_eq!(topology.cluster.name, "ke2");
    let names: Vec<_> = topology.hosts.iter().map(|h| h.name.as_str()).collect();
    assert_eq!(names, ["ke2-server1", "ke2-server2", "ke2-server3"]);
    for (i, host) in topology.hosts.iter().enumerate() {
        assert_eq!(host.address, Ipv4Addr::new(10, 20, 0, i as u8 + 1));
        assert_eq!(host.platform, Platform::Debian);
        assert_eq!(host.nic, Nic::Virtio);
        assert_eq!(topology.node_id(&host.name), Some(i));
    }
    assert_eq!(topology.network.vip, Ipv4Addr::new(10, 20, 0, 100));
    assert_eq!(topology.network.prefix, 24);
    assert_eq!(topology.swarm.data_path_port, DataPathPort::Auto);
    assert!(!topology.has_vmxnet3());
    assert_eq!(topology.data_path_port(), 4789);
    assert_eq!(topology.primary().name, "ke2-server1");
    assert_eq!(topology.subnet().to_string(), "10.20.0.0/24");
    assert_eq!(topology.shared_dir.ping_timeout, Some(5));
    assert!(topology.credentials.use_document_defaults);
    assert_eq!(
        topology.credentials.resolve(None),
        Credentials::document_defaults()
    );
}

#[test]
fn fixture_helper_finds_the_shipped_topologies() {
    assert_eq!(Topology::fixture_path("three-node"), fixture("three-node"));
    let validated = Topology::fixture("three-node").unwrap();
    assert_eq!(validated.hosts.len(), 3, "Validated derefs to its topology");
}

#[test]
fn vmxnet3_fixture_moves_the_data_path_port_off_4789() {
    let validated = Topology::load(&fixture("three-node-vmxnet3")).expect("valid");
    assert_eq!(validated.warnings, vec![]);
    let topology = &validated.topology;
    assert!(topology.hosts.iter().all(|h| h.nic == Nic::Vmxnet3));
    assert!(topology.has_vmxnet3());
    assert_eq!(topology.swarm.data_path_port, DataPathPort::Auto);
    assert_ne!(topology.data_path_port(), 4789);
    assert_eq!(topology.data_path_port(), 7789);
}

#[test]
fn the_fixtures_differ_only_in_nic() {
    let plain = Topology::load(&fixture("three-node")).unwrap().topology;
    let mut vmxnet3 = Topology::load(&fixture("three-node-vmxnet3"))
        .unwrap()
        .topology;
    for host in &mut vmxnet3.hosts {
        host.nic = Nic::Virtio;
    }
    assert_eq!(plain, vmxnet3);
}

#[test]
fn minimal_topology_gets_the_procedures_defaults() {
    let validated = Topology::from_toml_str(MINIMAL).expect("valid");
    assert_eq!(validated.warnings, vec![]);
    let t = validated.topology;
    assert_eq!(t.hosts[0].platform, Platform::Debian);
    assert_eq!(t.hosts[0].nic, Nic::Virtio);
    assert_eq!(t.hosts[0].interface, None);
    assert_eq!(
        t.network,
        NetworkSpec {
            prefix: 24,
            vip: Ipv4Addr::new(10, 20, 0, 100),
            interface: None,
            cluster_hba: "samenet".into(),
            kompira_hba: "samenet".into(),
        }
    );
    assert_eq!(t.swarm.data_path_port, DataPathPort::Auto);
    assert_eq!(
        t.ports,
        Ports {
            postgres: 5432,
            pgpool: 9999,
            pcp: 9898,
            watchdog: 9000,
            heartbeat: 9694,
        }
    );
    assert_eq!(
        t.shared_dir,
        SharedDirSpec {
            kind: SharedDirKind::Gluster,
            path: "/mnt/gluster".into(),
            volume: "gvol0".into(),
            brick: "/var/glustervol0".into(),
            ping_timeout: None,
        }
    );
    assert_eq!(t.credentials, CredentialSpec::default());
    assert!(!t.credentials.use_document_defaults);
    assert_eq!(
        t.postgres,
        PostgresSpec {
            database: "kompira".into(),
            archive_dir: "/var/lib/pgsql/archivedir".into(),
            max_connections: 256,
            synchronous: false,
        }
    );
    assert_eq!(
        t.stack,
        StackSpec {
            nginx_port_mode: NginxPortMode::Ingress,
            swarm_replicas: 3,
        }
    );
}

#[test]
fn queries_answer_by_name_and_interface_overrides_fall_back() {
    let mut t = Topology::from_toml_str(MINIMAL).unwrap().topology;
    assert_eq!(
        t.host("ke2-server2").unwrap().address,
        Ipv4Addr::new(10, 20, 0, 2)
    );
    assert_eq!(
        t.host("KE2-Server2").map(|h| h.name.as_str()),
        Some("ke2-server2")
    );
    assert_eq!(t.host("ke2-server9"), None);
    assert_eq!(t.node_id("ke2-server3"), Some(2));
    assert_eq!(t.node_id("nope"), None);

    assert_eq!(t.interface_for(&t.hosts[0]), None);
    t.network.interface = Some("eth0".into());
    t.hosts[1].interface = Some("ens192".into());
    assert_eq!(t.interface_for(&t.hosts[0]), Some("eth0"));
    assert_eq!(t.interface_for(&t.hosts[1]), Some("ens192"));
}

#[test]
fn keywords_display_as_written() {
    assert_eq!(Platform::Debian.to_string(), "debian");
    assert_eq!(Platform::Rhel9.to_string(), "rhel9");
    assert_eq!("rhel9".parse::<Platform>(), Ok(Platform::Rhel9));
    assert_eq!(Nic::Vmxnet3.to_string(), "vmxnet3");
    assert_eq!(Nic::E1000e.to_string(), "e1000e");
    assert_eq!(DataPathPort::Auto.to_string(), "auto");
    assert_eq!(DataPathPort::Port(7789).to_string(), "7789");
    assert_eq!(DataPathPort::Auto.resolve(false), 4789);
    assert_eq!(DataPathPort::Auto.resolve(true), 7789);
    assert_eq!(DataPathPort::Port(5000).resolve(true), 5000);
}

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

#[test]
fn an_even_host_count_is_a_warning_not_an_error() {
    let mut table = minimal();
    let mut fourth = Table::new();
    fourth.insert("name".into(), "ke2-server4".into());
    fourth.insert("address".into(), "10.20.0.4".into());
    hosts(&mut table).push(Value::Table(fourth));
    let validated = Topology::from_toml_str(&render(&table)).expect("four hosts are allowed");
    assert_eq!(validated.warnings.len(), 1);
    let warning = &validated.warnings[0];
    assert_eq!(warning.field, "hosts");
    assert!(
        warning
            .to_string()
            .starts_with("`hosts`: an even number of hosts (4)"),
        "{warning}"
    );
}

#[test]
fn vmxnet3_with_an_explicit_4789_is_a_warning() {
    let mut table = minimal();
    set(&mut table, "hosts[1].nic", "vmxnet3");
    set(&mut table, "swarm.data_path_port", 4789);
    let validated = Topology::from_toml_str(&render(&table)).unwrap();
    assert_eq!(validated.data_path_port(), 4789);
    assert_eq!(validated.warnings.len(), 1);
    assert_eq!(validated.warnings[0].field, "swarm.data_path_port");
    assert!(validated.warnings[0].message.contains("`hosts[1]`"));
}

// ---------------------------------------------------------------------------
// Malformed topologies
// ---------------------------------------------------------------------------

fn minimal() -> Table {
    toml::from_str(MINIMAL).unwrap()
}

fn render(table: &Table) -> String {
    toml::to_string(table).unwrap()
}

fn hosts(table: &mut Table) -> &mut Vec<Value> {
    table["hosts"].as_array_mut().unwrap()
}

/// Sets a value at a path such as `hosts[1].address` or `ports.pcp`,
/// creating missing tables on the way.
fn set(table: &mut Table, path: &str, value: impl Into<Value>) {
    let (parent, key) = walk(table, path);
    parent.insert(key, value.into());
}

fn remove(table: &mut Table, path: &str) {
    let (parent, key) = walk(table, path);
    parent.remove(&key);
}

fn walk<'a>(table: &'a mut Table, path: &str) -> (&'a mut Table, String) {
    let mut segments: Vec<&str> = path.split('.').collect();
    let key = segments.pop().unwrap().to_string();
    let mut current = table;
    for segment in segments {
        current = match segment.split_once('[') {
            Some((name, index)) => {
                let index: usize = index.trim_end_matches(']').parse().unwrap();
                current[name].as_array_mut().unwrap()[index]
                    .as_table_mut()
                    .unwrap()
            }
            None => current
                .entry(segment)
                .or_insert_with(|| Value::Table(Table::new()))
                .as_table_mut()
                .unwrap(),
        };
    }
    (current, key)
}

type Edit = fn(&mut Table);

/// One malformed topology per rule, each with the exact message expected.
const INVALID: &[(&str, Edit, &str)] = &[
    (
        "empty cluster name",
        |t| set(t, "cluster.name", ""),
        "`cluster.name`: must not be empty",
    ),
    (
        "cluster name with a space",
        |t| set(t, "cluster.name", "ke2 lab"),
        "`cluster.name`: invalid cluster name `ke2 lab` (letters, digits, `-` and `_`, \
         starting with a letter or digit, at most 63 characters)",
    ),
    (
        "fewer than three hosts",
        |t| {
            hosts(t).pop();
        },
        "`hosts`: a cluster needs at least 3 hosts, found 2",
    ),
    (
        "duplicate host names",
        |t| set(t, "hosts[1].name", "ke2-server1"),
        "`hosts[1].name`: duplicate host name `ke2-server1` (also used by `hosts[0]`)",
    ),
    (
        "duplicate host names differing in case",
        |t| set(t, "hosts[2].name", "KE2-Server2"),
        "`hosts[2].name`: duplicate host name `KE2-Server2` (also used by `hosts[1]`)",
    ),
    (
        "empty host name",
        |t| set(t, "hosts[0].name", ""),
        "`hosts[0].name`: must not be empty",
    ),
    (
        "host name with an underscore",
        |t| set(t, "hosts[1].name", "ke2_server2"),
        "`hosts[1].name`: invalid host name `ke2_server2` (dot-separated labels of letters, \
         digits and `-`, 1 to 63 characters each, not starting or ending with `-`)",
    ),
    (
        "host name label starting with a hyphen",
        |t| set(t, "hosts[2].name", "-ke2-server3"),
        "`hosts[2].name`: invalid host name `-ke2-server3` (dot-separated labels of letters, \
         digits and `-`, 1 to 63 characters each, not starting or ending with `-`)",
    ),
    (
        "host name with an empty label",
        |t| set(t, "hosts[2].name", "ke2-server3..lab"),
        "`hosts[2].name`: invalid host name `ke2-server3..lab` (dot-separated labels of \
         letters, digits and `-`, 1 to 63 characters each, not starting or ending with `-`)",
    ),
    (
        "duplicate addresses",
        |t| set(t, "hosts[1].address", "10.20.0.1"),
        "`hosts[1].address`: duplicate address `10.20.0.1` (also used by `hosts[0]`)",
    ),
    (
        "malformed address",
        |t| set(t, "hosts[1].address", "10.20.0.300"),
        "`hosts[1].address`: invalid IPv4 address `10.20.0.300`",
    ),
    (
        "loopback host address",
        |t| set(t, "hosts[0].address", "127.0.0.1"),
        "`hosts[0].address`: `127.0.0.1` is a loopback address",
    ),
    (
        "hosts in two subnets",
        |t| set(t, "hosts[2].address", "10.20.1.3"),
        "`hosts[2].address`: `10.20.1.3` is outside the subnet `10.20.0.0/24` of `hosts[0]` \
         (all hosts must share one subnet)",
    ),
    (
        "host on the broadcast address",
        |t| set(t, "hosts[2].address", "10.20.0.255"),
        "`hosts[2].address`: `10.20.0.255` is the broadcast address of `10.20.0.0/24`",
    ),
    (
        "vip equal to a host address",
        |t| set(t, "network.vip", "10.20.0.2"),
        "`network.vip`: `10.20.0.2` is the address of `hosts[1]` (`ke2-server2`); \
         the VIP must be unused",
    ),
    (
        "vip outside the hosts' subnet",
        |t| set(t, "network.vip", "10.30.0.100"),
        "`network.vip`: `10.30.0.100` is outside the hosts' subnet `10.20.0.0/24`",
    ),
    (
        "vip outside a narrower prefix",
        |t| {
            set(t, "network.prefix", 28);
            set(t, "network.vip", "10.20.0.20");
        },
        "`network.vip`: `10.20.0.20` is outside the hosts' subnet `10.20.0.0/28`",
    ),
    (
        "vip on the network address",
        |t| set(t, "network.vip", "10.20.0.0"),
        "`network.vip`: `10.20.0.0` is the network address of `10.20.0.0/24`",
    ),
    (
        "vip on the broadcast address",
        |t| set(t, "network.vip", "10.20.0.255"),
        "`network.vip`: `10.20.0.255` is the broadcast address of `10.20.0.0/24`",
    ),
    (
        "malformed vip",
        |t| set(t, "network.vip", "10.20.0"),
        "`network.vip`: invalid IPv4 address `10.20.0`",
    ),
    (
        "prefix too long",
        |t| set(t, "network.prefix", 31),
        "`network.prefix`: prefix `31` out of range 8..=30",
    ),
    (
        "prefix too short",
        |t| set(t, "network.prefix", 7),
        "`network.prefix`: prefix `7` out of range 8..=30",
    ),
    (
        "prefix beyond a byte",
        |t| set(t, "network.prefix", 300),
        "`network.prefix`: prefix `300` out of range 8..=30",
    ),
    (
        "unknown hba keyword",
        |t| set(t, "network.kompira_hba", "everywhere"),
        "`network.kompira_hba`: invalid HBA address `everywhere` (expected `samenet`, \
         `samehost`, `all` or an IPv4 CIDR such as `10.10.0.0/16`)",
    ),
    (
        "cluster hba that excludes the hosts",
        |t| set(t, "network.cluster_hba", "10.30.0.0/16"),
        "`network.cluster_hba`: `10.30.0.0/16` does not contain `hosts[0]` (`10.20.0.1`), \
         whose replication and Pgpool-II connections would be refused",
    ),
    (
        "port zero",
        |t| set(t, "ports.pcp", 0),
        "`ports.pcp`: port `0` out of range 1..=65535",
    ),
    (
        "port beyond 65535",
        |t| set(t, "ports.postgres", 70000),
        "`ports.postgres`: port `70000` out of range 1..=65535",
    ),
    (
        "negative port",
        |t| set(t, "ports.heartbeat", -1),
        "`ports.heartbeat`: port `-1` out of range 1..=65535",
    ),
    (
        "two ports equal",
        |t| set(t, "ports.pcp", 9999),
        "`ports.pcp`: port `9999` collides with `ports.pgpool`",
    ),
    (
        "port on swarm management",
        |t| set(t, "ports.watchdog", 2377),
        "`ports.watchdog`: port `2377` collides with the swarm management port \
         (`2377/tcp`, fixed)",
    ),
    (
        "port on swarm gossip",
        |t| set(t, "ports.heartbeat", 7946),
        "`ports.heartbeat`: port `7946` collides with the swarm gossip port \
         (`7946/tcp+udp`, fixed)",
    ),
    (
        "data path port on a configured port",
        |t| set(t, "swarm.data_path_port", 5432),
        "`swarm.data_path_port`: port `5432` collides with `ports.postgres`",
    ),
    (
        "auto data path port on a configured port",
        |t| set(t, "ports.watchdog", 4789),
        "`swarm.data_path_port`: port `4789` (`auto` resolves to `4789`) collides with \
         `ports.watchdog`",
    ),
    (
        "data path port on swarm gossip",
        |t| set(t, "swarm.data_path_port", 7946),
        "`swarm.data_path_port`: port `7946` collides with the swarm gossip port \
         (`7946/tcp+udp`, fixed)",
    ),
    (
        "privileged data path port",
        |t| set(t, "swarm.data_path_port", 80),
        "`swarm.data_path_port`: port `80` out of range 1024..=65535",
    ),
    (
        "data path port beyond 65535",
        |t| set(t, "swarm.data_path_port", 70000),
        "`swarm.data_path_port`: port `70000` out of range 1024..=65535",
    ),
    (
        "data path keyword other than auto",
        |t| set(t, "swarm.data_path_port", "automatic"),
        "`swarm.data_path_port`: expected `auto` or a port number, found `automatic`",
    ),
    (
        "unknown platform",
        |t| set(t, "hosts[0].platform", "windows"),
        "`hosts[0].platform`: unknown platform `windows` (expected `debian` or `rhel9`)",
    ),
    (
        "unknown nic",
        |t| set(t, "hosts[2].nic", "rtl8139"),
        "`hosts[2].nic`: unknown nic `rtl8139` (expected `virtio`, `vmxnet3`, `e1000` or \
         `e1000e`)",
    ),
    (
        "empty host interface",
        |t| set(t, "hosts[1].interface", ""),
        "`hosts[1].interface`: invalid interface name `` (empty)",
    ),
    (
        "interface longer than 15 bytes",
        |t| set(t, "network.interface", "enp0s31f6-bridge0"),
        "`network.interface`: invalid interface name `enp0s31f6-bridge0` \
         (longer than 15 bytes)",
    ),
    (
        "interface with a slash",
        |t| set(t, "hosts[0].interface", "eth/0"),
        "`hosts[0].interface`: invalid interface name `eth/0` (contains `/`)",
    ),
    (
        "interface with whitespace",
        |t| set(t, "hosts[2].interface", "eth 0"),
        "`hosts[2].interface`: invalid interface name `eth 0` (contains whitespace)",
    ),
    (
        "relative shared directory",
        |t| set(t, "shared_dir.path", "mnt/gluster"),
        "`shared_dir.path`: `mnt/gluster` is not an absolute path",
    ),
    (
        "relative brick",
        |t| set(t, "shared_dir.brick", "var/glustervol0"),
        "`shared_dir.brick`: `var/glustervol0` is not an absolute path",
    ),
    (
        "brick inside the mount point",
        |t| set(t, "shared_dir.brick", "/mnt/gluster/brick"),
        "`shared_dir.brick`: `/mnt/gluster/brick` overlaps the mount point `/mnt/gluster` \
         (`shared_dir.path`)",
    ),
    (
        "volume name with a slash",
        |t| set(t, "shared_dir.volume", "g/vol"),
        "`shared_dir.volume`: invalid volume name `g/vol` (letters, digits, `-` and `_`, \
         not empty)",
    ),
    (
        "zero ping timeout",
        |t| set(t, "shared_dir.ping_timeout", 0),
        "`shared_dir.ping_timeout`: must be at least 1 second",
    ),
    (
        "unknown shared directory kind",
        |t| set(t, "shared_dir.kind", "nfs"),
        "`shared_dir.kind`: unknown shared directory kind `nfs` (expected `gluster` or \
         `existing`)",
    ),
    (
        "empty password",
        |t| set(t, "credentials.postgres", ""),
        "`credentials.postgres`: must not be empty",
    ),
    (
        "password with a colon",
        |t| set(t, "credentials.repl", "re:pl"),
        "`credentials.repl`: contains `:`, which configuration files or commands would have \
         to escape (use printable ASCII without quotes, `$`, `\\` or `:`)",
    ),
    (
        "database name with capitals",
        |t| set(t, "postgres.database", "Kompira"),
        "`postgres.database`: invalid database name `Kompira` (lowercase letters, digits \
         and `_`, not starting with a digit, at most 63 characters)",
    ),
    (
        "zero max connections",
        |t| set(t, "postgres.max_connections", 0),
        "`postgres.max_connections`: must be at least 1",
    ),
    (
        "zero replicas",
        |t| set(t, "stack.swarm_replicas", 0),
        "`stack.swarm_replicas`: must be at least 1",
    ),
    (
        "more replicas than hosts",
        |t| set(t, "stack.swarm_replicas", 4),
        "`stack.swarm_replicas`: `4` exceeds the host count 3 (the stack places at most \
         one replica per node)",
    ),
    (
        "negative replicas",
        |t| set(t, "stack.swarm_replicas", -3),
        "`stack.swarm_replicas`: `-3` out of range 0..=4294967295",
    ),
    (
        "unknown nginx port mode",
        |t| set(t, "stack.nginx_port_mode", "nodeport"),
        "`stack.nginx_port_mode`: unknown nginx port mode `nodeport` (expected `ingress` or \
         `host`)",
    ),
];

#[test]
fn malformed_topologies_are_rejected_naming_the_field() {
    assert!(INVALID.len() >= 20);
    let mut failures = Vec::new();
    for (label, edit, expected) in INVALID {
        let mut table = minimal();
        edit(&mut table);
        match Topology::from_toml_str(&render(&table)) {
            Err(error @ TopologyError::Invalid { .. }) => {
                if error.to_string() != *expected {
                    failures.push(format!(
                        "{label}:\n  expected {expected}\n  got      {error}"
                    ));
                }
                let field = error.field().unwrap();
                if !expected.starts_with(&format!("`{field}`")) {
                    failures.push(format!("{label}: field `{field}` not first in the message"));
                }
            }
            Err(other) => failures.push(format!("{label}: wrong kind of error: {other:?}")),
            Ok(_) => failures.push(format!("{label}: accepted")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

/// Topologies that serde rejects: the toml crate's message names the key and
/// shows the line.
const UNPARSABLE: &[(&str, Edit, &[&str])] = &[
    (
        "unknown key in a host",
        |t| set(t, "hosts[1].nick", "virtio"),
        &["unknown field `nick`", "line"],
    ),
    (
        "unknown section",
        |t| set(t, "extras.colour", "blue"),
        &["unknown field `extras`", "line"],
    ),
    (
        "unknown key in ports",
        |t| set(t, "ports.ssh", 22),
        &["unknown field `ssh`", "line"],
    ),
    (
        "unknown key in credentials",
        |t| set(t, "credentials.root", "x"),
        &["unknown field `root`", "line"],
    ),
    (
        "missing vip",
        |t| remove(t, "network.vip"),
        &["missing field `vip`"],
    ),
    (
        "missing cluster",
        |t| {
            t.remove("cluster");
        },
        &["missing field `cluster`"],
    ),
    (
        "missing hosts",
        |t| {
            t.remove("hosts");
        },
        &["missing field `hosts`"],
    ),
    (
        "missing host address",
        |t| remove(t, "hosts[2].address"),
        &["missing field `address`"],
    ),
    (
        "prefix as a string",
        |t| set(t, "network.prefix", "24"),
        &["invalid type", "prefix", "line"],
    ),
    (
        "platform as a number",
        |t| set(t, "hosts[0].platform", 9),
        &["invalid type", "platform", "line"],
    ),
];

#[test]
fn unparsable_topologies_name_the_key_and_line() {
    let mut failures = Vec::new();
    for (label, edit, fragments) in UNPARSABLE {
        let mut table = minimal();
        edit(&mut table);
        match Topology::from_toml_str(&render(&table)) {
            Err(TopologyError::Parse { message }) => {
                for fragment in *fragments {
                    if !message.contains(fragment) {
                        failures.push(format!("{label}: no `{fragment}` in:\n{message}"));
                    }
                }
            }
            Err(other) => failures.push(format!("{label}: wrong kind of error: {other:?}")),
            Ok(_) => failures.push(format!("{label}: accepted")),
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn toml_syntax_errors_show_the_line() {
    let error = Topology::from_toml_str("[cluster]\nname = \"ke2\n").unwrap_err();
    let TopologyError::Parse { message } = &error else {
        panic!("expected a parse error, got {error:?}");
    };
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn a_missing_file_is_a_read_error_naming_the_path() {
    let error = Topology::load(Path::new("/nonexistent/topology.toml")).unwrap_err();
    assert!(matches!(error, TopologyError::Read { .. }));
    assert!(
        error
            .to_string()
            .starts_with("cannot read `/nonexistent/topology.toml`: "),
        "{error}"
    );
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

#[test]
fn fixtures_round_trip_through_toml() {
    for name in ["three-node", "three-node-vmxnet3"] {
        let topology = Topology::load(&fixture(name)).unwrap().topology;
        let text = topology.to_toml_string();
        let again = Topology::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("{name}: {e}\n{text}"))
            .topology;
        assert_eq!(again, topology, "{name}");
    }
}

#[test]
fn every_optional_value_round_trips() {
    let mut topology = Topology::from_toml_str(MINIMAL).unwrap().topology;
    topology.hosts[0].platform = Platform::Rhel9;
    topology.hosts[1].nic = Nic::E1000e;
    topology.hosts[2].interface = Some("ens192".into());
    topology.network.interface = Some("eth0".into());
    topology.network.cluster_hba = "10.20.0.0/16".into();
    topology.swarm.data_path_port = DataPathPort::Port(4800);
    topology.shared_dir.kind = SharedDirKind::Existing;
    topology.shared_dir.ping_timeout = Some(10);
    topology.credentials = CredentialSpec {
        use_document_defaults: true,
        postgres: Some(Secret::new("pg-Secret1")),
        repl: None,
        pgpool: Some(Secret::new("pool.Secret2")),
        kompira: None,
        pgpool_key: Some(Secret::new("key3")),
    };
    topology.postgres.synchronous = true;
    topology.stack.nginx_port_mode = NginxPortMode::Host;
    topology.stack.swarm_replicas = 2;
    topology.validate().expect("the edited topology is valid");

    let text = topology.to_toml_string();
    let again = Topology::from_toml_str(&text)
        .unwrap_or_else(|e| panic!("{e}\n{text}"))
        .topology;
    assert_eq!(again, topology);
}

// ---------------------------------------------------------------------------
// Credentials
// ---------------------------------------------------------------------------

#[test]
fn secrets_never_print_their_value() {
    let secret = Secret::new("hunter2-very-secret");
    assert_eq!(format!("{secret}"), "***");
    assert_eq!(format!("{secret:?}"), "***");
    assert_eq!(secret.expose(), "hunter2-very-secret");

    let spec = CredentialSpec {
        postgres: Some(secret.clone()),
        ..CredentialSpec::default()
    };
    let credentials = spec.resolve(None);
    let mut topology = Topology::from_toml_str(MINIMAL).unwrap().topology;
    topology.credentials = spec;
    for printed in [
        format!("{credentials:?}"),
        format!("{credentials:#?}"),
        format!("{topology:?}"),
    ] {
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(printed.contains("***"), "{printed}");
    }
}

#[test]
fn an_invalid_password_error_does_not_show_the_password() {
    let mut table = minimal();
    set(&mut table, "credentials.kompira", "sec ret'value");
    let error = Topology::from_toml_str(&render(&table)).unwrap_err();
    assert_eq!(error.field(), Some("credentials.kompira"));
    assert!(!error.to_string().contains("sec"), "{error}");
}

#[test]
fn generated_passwords_are_24_alphanumerics_and_stable_once_stored() {
    let spec = CredentialSpec::default();
    let first = spec.resolve(None);
    for secret in [
        &first.postgres,
        &first.repl,
        &first.pgpool,
        &first.kompira,
        &first.pgpool_key,
    ] {
        assert_eq!(secret.expose().len(), 24);
        assert!(secret.expose().chars().all(|c| c.is_ascii_alphanumeric()));
    }
    assert_ne!(
        first.postgres, first.repl,
        "each password is drawn separately"
    );
    assert_ne!(
        spec.resolve(None),
        first,
        "a fresh resolve draws new passwords"
    );
    assert_eq!(spec.resolve(Some(&first)), first);
    assert_eq!(spec.resolve(Some(&spec.resolve(Some(&first)))), first);
}

#[test]
fn explicit_values_win_over_stored_and_document_values() {
    let spec = CredentialSpec {
        use_document_defaults: true,
        repl: Some(Secret::new("explicit-repl")),
        ..CredentialSpec::default()
    };
    let mut stored = Credentials::document_defaults();
    stored.postgres = Secret::new("stored-postgres");
    stored.repl = Secret::new("stored-repl");
    let resolved = spec.resolve(Some(&stored));
    assert_eq!(resolved.repl.expose(), "explicit-repl");
    assert_eq!(resolved.postgres.expose(), "stored-postgres");
    assert_eq!(resolved.pgpool.expose(), "pgpool");
}

#[test]
fn document_defaults_are_the_documents_passwords() {
    let spec = CredentialSpec {
        use_document_defaults: true,
        ..CredentialSpec::default()
    };
    let resolved = spec.resolve(None);
    let values: Vec<&str> = [
        &resolved.postgres,
        &resolved.repl,
        &resolved.pgpool,
        &resolved.kompira,
        &resolved.pgpool_key,
    ]
    .iter()
    .map(|s| s.expose())
    .collect();
    assert_eq!(
        values,
        ["postgres", "repl", "pgpool", "kompira", "ke2pgpoolkey"]
    );
}

#[test]
fn credentials_file_is_private_and_reloads_equal() {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/ke2/credentials.toml");
    assert_eq!(Credentials::load_if_exists(&path).unwrap(), None);

    let credentials = CredentialSpec::default().resolve(None);
    credentials
        .save(&path)
        .expect("save creates the parent directory");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_eq!(Credentials::load(&path).unwrap(), credentials);
    assert_eq!(
        Credentials::load_if_exists(&path).unwrap(),
        Some(credentials.clone())
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(credentials.postgres.expose()),
        "the file holds the values"
    );

    // A file that someone made readable becomes private again on the next save.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let replaced = Credentials::document_defaults();
    replaced.save(&path).unwrap();
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "mode {mode:o}");
    assert_eq!(Credentials::load(&path).unwrap(), replaced);
    let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(leftovers, ["credentials.toml"], "no temporary file is left");
}

#[test]
fn a_malformed_credentials_file_is_a_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("credentials.toml");
    std::fs::write(&path, "postgres = \"x\"\n").unwrap();
    let error = Credentials::load(&path).unwrap_err();
    assert!(matches!(error, TopologyError::Parse { .. }), "{error:?}");
    assert!(error.to_string().contains("missing field"), "{error}");
}

// ---------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------

/// A valid topology of 3 to 7 hosts with distinct addresses in
/// `10.x.y.0/24` and a VIP in the same subnet.
fn valid_topology() -> impl Strategy<Value = Topology> {
    let octets =
        proptest::sample::subsequence((1u8..=254).collect::<Vec<_>>(), 4..=8).prop_shuffle();
    let platforms = proptest::collection::vec(proptest::sample::select(Platform::ALL), 8);
    let nics = proptest::collection::vec(proptest::sample::select(Nic::ALL), 8);
    (any::<u8>(), any::<u8>(), octets, platforms, nics).prop_map(
        |(x, y, mut octets, platforms, nics)| {
            let vip = octets.pop().unwrap();
            let hosts = octets
                .iter()
                .enumerate()
                .map(|(i, &last)| HostSpec {
                    name: format!("node-{i}"),
                    address: Ipv4Addr::new(10, x, y, last),
                    platform: platforms[i],
                    nic: nics[i],
                    interface: None,
                })
                .collect();
            Topology {
                cluster: ClusterSpec {
                    name: "prop".into(),
                },
                hosts,
                network: NetworkSpec {
                    prefix: 24,
                    vip: Ipv4Addr::new(10, x, y, vip),
                    interface: None,
                    cluster_hba: "samenet".into(),
                    kompira_hba: "samenet".into(),
                },
                swarm: SwarmSpec::default(),
                ports: Ports::default(),
                shared_dir: SharedDirSpec::default(),
                credentials: CredentialSpec::default(),
                postgres: PostgresSpec::default(),
                stack: StackSpec::default(),
            }
        },
    )
}

proptest! {
    #[test]
    fn distinct_hosts_in_one_subnet_validate(topology in valid_topology()) {
        let warnings = topology.validate();
        prop_assert!(warnings.is_ok(), "{:?}", warnings);
        let even = topology.hosts.len() % 2 == 0;
        prop_assert_eq!(warnings.unwrap().len(), usize::from(even));
        let expected_port = if topology.has_vmxnet3() { 7789 } else { 4789 };
        prop_assert_eq!(topology.data_path_port(), expected_port);
    }

    #[test]
    fn valid_topologies_round_trip(topology in valid_topology()) {
        let again = Topology::from_toml_str(&topology.to_toml_string());
        prop_assert_eq!(again.map(|v| v.topology).ok(), Some(topology));
    }

    #[test]
    fn a_duplicated_address_names_the_later_host(
        topology in valid_topology(),
        later in any::<proptest::sample::Index>(),
        earlier in any::<proptest::sample::Index>(),
    ) {
        let mut topology = topology;
        let i = 1 + later.index(topology.hosts.len() - 1);
        let j = earlier.index(i);
        let address = topology.hosts[j].address;
        topology.hosts[i].address = address;
        let error = topology.validate().unwrap_err();
        let field = format!("hosts[{i}].address");
        prop_assert_eq!(error.field(), Some(field.as_str()));
        prop_assert_eq!(
            error.to_string(),
            format!("`hosts[{i}].address`: duplicate address `{address}` (also used by `hosts[{j}]`)")
        );
    }
}
