//! Tests of the topology file: the shipped fixtures, the defaults, one
//! malformed topology per validation rule, TOML round trips and credentials.

use std::net::Ipv4Addr;
use std::path::Path;

use ke2lab::topology::{
    ClusterSpec, CredentialSpec, Credentials, DataPathPort, HostSpec, NetworkSpec, NginxPortMode,
    Nic, PgpoolSpec, Platform, Ports, PostgresSpec, Secret, SharedDirKind, SharedDirSpec,
    StackSpec, SwarmSpec, Topology, TopologyError,
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
    let validated = Topology::fixture("three-node").unwrap();
    assert_eq!(validated.hosts.len(), 3, "Validated derefs to its topology");
    // Embedded: every shipped file, as it is on disk, and nothing else.
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/topologies");
    let mut on_disk: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_str().unwrap().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    on_disk.sort();
    let mut embedded: Vec<(String, String)> = Topology::FIXTURES
        .iter()
        .map(|(n, t)| (n.to_string(), t.to_string()))
        .collect();
    embedded.sort();
    assert_eq!(embedded, on_disk, "Topology::FIXTURES lists every fixture");
    assert_eq!(
        Topology::fixture("no-such").unwrap_err().to_string(),
        format!(
            "cannot read `fixtures/topologies/no-such.toml`: {}",
            std::io::Error::from(std::io::ErrorKind::NotFound)
        )
    );
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
            log_dir: None,
            var_dir: None,
            ssl_dir: None,
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
    // A strict majority of 4 is 3: one failure, exactly as with 3 hosts.
    assert_eq!(
        warning.to_string(),
        "`hosts`: an even number of hosts (4) tolerates 1 failure, as 3 hosts do (swarm \
         and the Pgpool-II watchdog need a strict majority); the procedure expects an odd \
         count"
    );
}

#[test]
fn six_hosts_tolerate_two_failures_as_five_do() {
    let mut table = minimal();
    for i in 4..=6 {
        let mut host = Table::new();
        host.insert("name".into(), format!("ke2-server{i}").into());
        host.insert("address".into(), format!("10.20.0.{i}").into());
        hosts(&mut table).push(Value::Table(host));
    }
    let validated = Topology::from_toml_str(&render(&table)).unwrap();
    assert_eq!(
        validated.warnings[0].message,
        "an even number of hosts (6) tolerates 2 failures, as 5 hosts do (swarm and the \
         Pgpool-II watchdog need a strict majority); the procedure expects an odd count"
    );
}

#[test]
fn every_shipped_fixture_and_the_defaults_stay_valid() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/topologies");
    let mut seen = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            Topology::load(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            seen += 1;
        }
    }
    assert!(seen >= 3, "{seen} fixtures");
    let t = Topology::from_toml_str(MINIMAL).unwrap().topology;
    assert_eq!(t.shared_dir.brick, "/var/glustervol0");
    assert_eq!(t.postgres.archive_dir, "/var/lib/pgsql/archivedir");
}

#[test]
fn legal_places_and_ports_near_the_refused_ones_are_accepted() {
    for (path, value) in [
        // Inside the directories refused only as themselves.
        ("postgres.archive_dir", "/var/lib/postgresql/archivedir"),
        ("postgres.archive_dir", "/var/lib/pgsql//archivedir/"),
        ("shared_dir.brick", "/var/lib/ke2/brick"),
        // Names that only begin like a system directory.
        ("shared_dir.path", "/etcetera/share"),
        ("shared_dir.path", "/tmpfs/share"),
        ("shared_dir.brick", "/srv/x/../brick"),
    ] {
        let mut table = minimal();
        set(&mut table, path, value);
        Topology::from_toml_str(&render(&table)).unwrap_or_else(|e| panic!("{value}: {e}"));
    }
    // Gluster's ports are free when the shared directory is not Gluster.
    for (field, port) in [("ports.watchdog", 24007), ("ports.postgres", 50000)] {
        let mut table = minimal();
        set(&mut table, "shared_dir.kind", "existing");
        set(&mut table, field, port);
        Topology::from_toml_str(&render(&table)).unwrap_or_else(|e| panic!("{port}: {e}"));
    }
    // 63 bytes is the longest host name, 128 the most hosts.
    let mut table = minimal();
    set(
        &mut table,
        "hosts[0].name",
        format!("ke2.{}", "a".repeat(59)),
    );
    Topology::from_toml_str(&render(&table)).unwrap();
    let mut table = minimal();
    set(&mut table, "network.prefix", 16);
    set_host_count(&mut table, 128);
    Topology::from_toml_str(&render(&table)).unwrap();
}

/// Replaces the hosts with `count` of them, `10.20.1.1` onwards (clear of
/// the VIP `10.20.0.100`; needs `network.prefix` 16).
fn set_host_count(table: &mut Table, count: usize) {
    let list = hosts(table);
    list.clear();
    for i in 0..count {
        let mut host = Table::new();
        host.insert("name".into(), format!("node{i}").into());
        host.insert(
            "address".into(),
            format!("10.20.{}.{}", 1 + i / 250, 1 + i % 250).into(),
        );
        list.push(Value::Table(host));
    }
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
        "`ports.pcp`: port `0` out of range 1024..=65535",
    ),
    (
        "port beyond 65535",
        |t| set(t, "ports.postgres", 70000),
        "`ports.postgres`: port `70000` out of range 1024..=65535",
    ),
    (
        "negative port",
        |t| set(t, "ports.heartbeat", -1),
        "`ports.heartbeat`: port `-1` out of range 1024..=65535",
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
    (
        "pgpool on RabbitMQ's published port",
        |t| set(t, "ports.pgpool", 5671),
        "`ports.pgpool`: port `5671` collides with RabbitMQ's published AMQPS port (`5671/tcp`, \
         fixed by the stack's `rabbitmq.yml`)",
    ),
    (
        "a var directory outside the shared directory",
        |t| set(t, "stack.var_dir", "/srv/kompira-var"),
        "`stack.var_dir`: `/srv/kompira-var` is outside the shared directory `/mnt/gluster` \
         (`shared_dir.path`); it holds `.secret_key`, which every node must read the same",
    ),
    (
        "an ssl directory outside the shared directory",
        |t| set(t, "stack.ssl_dir", "/srv/ssl"),
        "`stack.ssl_dir`: `/srv/ssl` is outside the shared directory `/mnt/gluster` \
         (`shared_dir.path`); the certificates are copied there on the manager and read by \
         nginx on every node",
    ),
    (
        "a log directory in the brick",
        |t| set(t, "stack.log_dir", "/var/glustervol0/log"),
        "`stack.log_dir`: `/var/glustervol0/log` overlaps the Gluster brick \
         `/var/glustervol0` (`shared_dir.brick`), whose contents only Gluster may write",
    ),
    (
        "a relative log directory",
        |t| set(t, "stack.log_dir", "log"),
        "`stack.log_dir`: `log` is not an absolute path",
    ),
    (
        "a log directory in /etc",
        |t| set(t, "stack.log_dir", "/etc/kompira"),
        "`stack.log_dir`: `/etc/kompira` is inside the system directory `/etc`",
    ),
    // ---- Dangerous places: system directories, after normalising ----
    (
        "shared directory on /etc",
        |t| set(t, "shared_dir.path", "/etc"),
        "`shared_dir.path`: `/etc` is the system directory `/etc`",
    ),
    (
        "shared directory inside /usr",
        |t| set(t, "shared_dir.path", "/usr/share/ke2"),
        "`shared_dir.path`: `/usr/share/ke2` is inside the system directory `/usr`",
    ),
    (
        "shared directory inside /home",
        |t| set(t, "shared_dir.path", "/home/ke2"),
        "`shared_dir.path`: `/home/ke2` is inside the system directory `/home`",
    ),
    (
        "shared directory inside /run",
        |t| set(t, "shared_dir.path", "/run/ke2"),
        "`shared_dir.path`: `/run/ke2` is inside the system directory `/run`",
    ),
    (
        "existing shared directory inside /root",
        |t| {
            set(t, "shared_dir.kind", "existing");
            set(t, "shared_dir.path", "/root/share");
        },
        "`shared_dir.path`: `/root/share` is inside the system directory `/root`",
    ),
    (
        "shared directory reaching /etc through ..",
        |t| set(t, "shared_dir.path", "/mnt/../etc"),
        "`shared_dir.path`: `/mnt/../etc` (`/etc` once normalised) is the system directory \
         `/etc`",
    ),
    (
        "shared directory inside /etc behind double slashes",
        |t| set(t, "shared_dir.path", "//etc//ke2/"),
        "`shared_dir.path`: `//etc//ke2/` (`/etc/ke2` once normalised) is inside the system \
         directory `/etc`",
    ),
    (
        "shared directory that climbs above the root",
        |t| set(t, "shared_dir.path", "/mnt/../../etc"),
        "`shared_dir.path`: `/mnt/../../etc` climbs above the root directory `/` with `..`",
    ),
    (
        "shared directory on the root",
        |t| set(t, "shared_dir.path", "/"),
        "`shared_dir.path`: must not be the root directory `/`",
    ),
    (
        "shared directory on the root once normalised",
        |t| set(t, "shared_dir.path", "/mnt/./.."),
        "`shared_dir.path`: must not be the root directory `/`",
    ),
    (
        "shared directory with a control character",
        |t| set(t, "shared_dir.path", "/mnt/glu\u{1b}ster"),
        "`shared_dir.path`: `/mnt/glu\\u{1b}ster` contains the control character `\\u{1b}`",
    ),
    (
        "brick on /var/lib",
        |t| set(t, "shared_dir.brick", "/var/lib"),
        "`shared_dir.brick`: `/var/lib` is the system directory `/var/lib`",
    ),
    (
        "brick inside /var/lib/docker",
        |t| set(t, "shared_dir.brick", "/var/lib/docker/brick"),
        "`shared_dir.brick`: `/var/lib/docker/brick` is inside the system directory \
         `/var/lib/docker`",
    ),
    (
        "brick inside /var/lib/glusterd",
        |t| set(t, "shared_dir.brick", "/var/lib/glusterd/vols/gvol0"),
        "`shared_dir.brick`: `/var/lib/glusterd/vols/gvol0` is inside the system directory \
         `/var/lib/glusterd`",
    ),
    (
        "brick inside /boot through . and ..",
        |t| set(t, "shared_dir.brick", "/srv/./../boot/brick"),
        "`shared_dir.brick`: `/srv/./../boot/brick` (`/boot/brick` once normalised) is \
         inside the system directory `/boot`",
    ),
    (
        "brick inside /dev",
        |t| set(t, "shared_dir.brick", "/dev/shm/brick"),
        "`shared_dir.brick`: `/dev/shm/brick` is inside the system directory `/dev`",
    ),
    (
        "brick inside /proc",
        |t| set(t, "shared_dir.brick", "/proc/brick"),
        "`shared_dir.brick`: `/proc/brick` is inside the system directory `/proc`",
    ),
    (
        "brick on /sys with a trailing slash",
        |t| set(t, "shared_dir.brick", "/sys/"),
        "`shared_dir.brick`: `/sys/` (`/sys` once normalised) is the system directory `/sys`",
    ),
    (
        "brick that climbs above the root",
        |t| set(t, "shared_dir.brick", "/.."),
        "`shared_dir.brick`: `/..` climbs above the root directory `/` with `..`",
    ),
    (
        "brick equal to the mount point once normalised",
        |t| set(t, "shared_dir.brick", "/mnt//gluster/."),
        "`shared_dir.brick`: `/mnt//gluster/.` overlaps the mount point `/mnt/gluster` \
         (`shared_dir.path`)",
    ),
    (
        "mount point inside the brick",
        |t| set(t, "shared_dir.path", "/var/glustervol0/mnt"),
        "`shared_dir.brick`: `/var/glustervol0` overlaps the mount point \
         `/var/glustervol0/mnt` (`shared_dir.path`)",
    ),
    (
        "mount point inside the brick through ..",
        |t| set(t, "shared_dir.path", "/mnt/../var/glustervol0/x"),
        "`shared_dir.brick`: `/var/glustervol0` overlaps the mount point \
         `/mnt/../var/glustervol0/x` (`shared_dir.path`)",
    ),
    (
        "archive on /var/lib/pgsql",
        |t| set(t, "postgres.archive_dir", "/var/lib/pgsql"),
        "`postgres.archive_dir`: `/var/lib/pgsql` is the system directory `/var/lib/pgsql`",
    ),
    (
        "archive on /var/lib/postgresql with a trailing slash",
        |t| set(t, "postgres.archive_dir", "/var/lib/postgresql/"),
        "`postgres.archive_dir`: `/var/lib/postgresql/` (`/var/lib/postgresql` once \
         normalised) is the system directory `/var/lib/postgresql`",
    ),
    (
        "archive inside /tmp",
        |t| set(t, "postgres.archive_dir", "/tmp/archive"),
        "`postgres.archive_dir`: `/tmp/archive` is inside the system directory `/tmp`",
    ),
    (
        "archive on / through ..",
        |t| set(t, "postgres.archive_dir", "/var/.."),
        "`postgres.archive_dir`: must not be the root directory `/`",
    ),
    (
        "relative archive",
        |t| set(t, "postgres.archive_dir", "archivedir"),
        "`postgres.archive_dir`: `archivedir` is not an absolute path",
    ),
    (
        "archive inside the shared directory",
        |t| set(t, "postgres.archive_dir", "/mnt/gluster/archive"),
        "`postgres.archive_dir`: `/mnt/gluster/archive` is inside the shared directory \
         `/mnt/gluster` (`shared_dir.path`); every host would archive its WAL into one place",
    ),
    (
        "archive inside an existing shared directory",
        |t| {
            set(t, "shared_dir.kind", "existing");
            set(t, "shared_dir.path", "/srv/ke2");
            set(t, "postgres.archive_dir", "/srv//ke2/wal");
        },
        "`postgres.archive_dir`: `/srv//ke2/wal` is inside the shared directory `/srv/ke2` \
         (`shared_dir.path`); every host would archive its WAL into one place",
    ),
    (
        "archive equal to the shared directory",
        |t| set(t, "postgres.archive_dir", "/mnt/gluster/"),
        "`postgres.archive_dir`: `/mnt/gluster/` is the shared directory `/mnt/gluster` \
         (`shared_dir.path`); every host would archive its WAL into one place",
    ),
    (
        "archive holding the shared directory",
        |t| set(t, "postgres.archive_dir", "/mnt"),
        "`postgres.archive_dir`: `/mnt` holds the shared directory `/mnt/gluster` \
         (`shared_dir.path`), which every host would mount inside its WAL archive",
    ),
    (
        "archive inside the brick",
        |t| set(t, "postgres.archive_dir", "/var/glustervol0/archive"),
        "`postgres.archive_dir`: `/var/glustervol0/archive` overlaps the Gluster brick \
         `/var/glustervol0` (`shared_dir.brick`), whose contents only Gluster may write",
    ),
    // ---- Host names ----
    (
        "host named by an IPv4 address",
        |t| set(t, "hosts[0].name", "10.20.0.1"),
        "`hosts[0].name`: `10.20.0.1` is an IP address, not a host name (put it in `address`)",
    ),
    (
        "host named by an IPv6 address",
        |t| set(t, "hosts[1].name", "fe80::1"),
        "`hosts[1].name`: `fe80::1` is an IP address, not a host name (put it in `address`)",
    ),
    (
        "host named localhost",
        |t| set(t, "hosts[2].name", "localhost"),
        "`hosts[2].name`: `localhost` resolves to the loopback address on every host, not to \
         this host",
    ),
    (
        "host named LocalHost",
        |t| set(t, "hosts[0].name", "LocalHost"),
        "`hosts[0].name`: `LocalHost` resolves to the loopback address on every host, not to \
         this host",
    ),
    (
        "host in the localhost domain",
        |t| set(t, "hosts[1].name", "db.localhost"),
        "`hosts[1].name`: `db.localhost` resolves to the loopback address on every host, not \
         to this host",
    ),
    (
        "host name whose first label exceeds 63 bytes",
        |t| set(t, "hosts[0].name", format!("{}.lab", "a".repeat(64))),
        "`hosts[0].name`: the first label of \
         `aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.lab` is 64 bytes \
         long, beyond the 63 of a container's host name",
    ),
    (
        "host name beyond 253 bytes, shown cut at 200 characters",
        |t| set(t, "hosts[1].name", vec!["b".repeat(60); 5].join(".")),
        "`hosts[1].name`: `bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.\
         bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.\
         bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.\
         bbbbbbbbbbbbbbbbb…` is 304 bytes long, beyond DNS's 253",
    ),
    (
        "host name longer than PostgreSQL's application_name",
        |t| {
            set(
                t,
                "hosts[2].name",
                format!("ke2-server3.{}", "c".repeat(52)),
            )
        },
        "`hosts[2].name`: `ke2-server3.cccccccccccccccccccccccccccccccccccccccccccccccccccc` \
         is 64 bytes long; it is PostgreSQL's `application_name`, which keeps 63 bytes, so a \
         host name is at most 63",
    ),
    (
        "host name with an escape character",
        |t| set(t, "hosts[0].name", "ke2\u{1b}[2Jserver1"),
        "`hosts[0].name`: `ke2\\u{1b}[2Jserver1` contains the control character `\\u{1b}`",
    ),
    (
        "host name with a newline",
        |t| set(t, "hosts[1].name", "ke2-server2\n"),
        "`hosts[1].name`: `ke2-server2\\u{a}` contains the control character `\\u{a}`",
    ),
    (
        "cluster name with a NUL",
        |t| set(t, "cluster.name", "ke2\u{0}"),
        "`cluster.name`: `ke2\\u{0}` contains the control character `\\u{0}`",
    ),
    (
        "cluster name with a DEL",
        |t| set(t, "cluster.name", "ke2\u{7f}lab"),
        "`cluster.name`: `ke2\\u{7f}lab` contains the control character `\\u{7f}`",
    ),
    (
        "more hosts than Pgpool-II's backends",
        |t| {
            set(t, "network.prefix", 16);
            set_host_count(t, 129);
        },
        "`hosts`: 129 hosts exceed Pgpool-II's limit of 128 backends (each host is one)",
    ),
    // ---- Ports ----
    (
        "postgres on a privileged port",
        |t| set(t, "ports.postgres", 80),
        "`ports.postgres`: port `80` out of range 1024..=65535",
    ),
    (
        "pcp on sshd's port",
        |t| set(t, "ports.pcp", 22),
        "`ports.pcp`: port `22` out of range 1024..=65535",
    ),
    (
        "pgpool just below 1024",
        |t| set(t, "ports.pgpool", 1023),
        "`ports.pgpool`: port `1023` out of range 1024..=65535",
    ),
    (
        "watchdog on glusterd's management port",
        |t| set(t, "ports.watchdog", 24007),
        "`ports.watchdog`: port `24007` collides with glusterd's management port \
         (`24007/tcp`, fixed)",
    ),
    (
        "heartbeat on glusterd's RDMA port",
        |t| set(t, "ports.heartbeat", 24008),
        "`ports.heartbeat`: port `24008` collides with glusterd's RDMA port (`24008/tcp`, fixed)",
    ),
    (
        "postgres at the start of the brick ports",
        |t| set(t, "ports.postgres", 49152),
        "`ports.postgres`: port `49152` is inside Gluster's brick port range \
         (`49152-60999/tcp`, fixed)",
    ),
    (
        "pgpool at the end of the brick ports",
        |t| set(t, "ports.pgpool", 60999),
        "`ports.pgpool`: port `60999` is inside Gluster's brick port range \
         (`49152-60999/tcp`, fixed)",
    ),
    (
        "data path port inside the brick ports",
        |t| set(t, "swarm.data_path_port", 50000),
        "`swarm.data_path_port`: port `50000` is inside Gluster's brick port range \
         (`49152-60999/tcp`, fixed)",
    ),
    (
        "watchdog on postgres's port",
        |t| set(t, "ports.postgres", 9000),
        "`ports.watchdog`: port `9000` collides with `ports.postgres`",
    ),
    (
        "data path port on the heartbeat port",
        |t| set(t, "swarm.data_path_port", 9694),
        "`swarm.data_path_port`: port `9694` collides with `ports.heartbeat`",
    ),
    // ---- Passwords (never echoed) ----
    (
        "password starting with a hyphen",
        |t| set(t, "credentials.postgres", "-secret"),
        "`credentials.postgres`: starts with `-`, which commands would read as an option",
    ),
    (
        "password with a NUL",
        |t| set(t, "credentials.pgpool_key", "ab\u{0}cd"),
        "`credentials.pgpool_key`: contains a control character (use printable ASCII without \
         quotes, `$`, `\\` or `:`)",
    ),
    (
        "password with an escape character",
        |t| set(t, "credentials.kompira", "ab\u{1b}cd"),
        "`credentials.kompira`: contains a control character (use printable ASCII without \
         quotes, `$`, `\\` or `:`)",
    ),
    (
        "password with a newline",
        |t| set(t, "credentials.repl", "line\nbreak"),
        "`credentials.repl`: contains a control character (use printable ASCII without \
         quotes, `$`, `\\` or `:`)",
    ),
    (
        "password with a DEL",
        |t| set(t, "credentials.pgpool", "abc\u{7f}"),
        "`credentials.pgpool`: contains a control character (use printable ASCII without \
         quotes, `$`, `\\` or `:`)",
    ),
    // ---- Clearer parse errors ----
    (
        "quoted data path port",
        |t| set(t, "swarm.data_path_port", "4789"),
        "`swarm.data_path_port`: the number `\"4789\"` is quoted, which makes it a string; \
         drop the quotes: `data_path_port = 4789`",
    ),
    (
        "quoted postgres port",
        |t| set(t, "ports.postgres", "5433"),
        "`ports.postgres`: the number `\"5433\"` is quoted, which makes it a string; drop the \
         quotes: `postgres = 5433`",
    ),
    (
        "quoted prefix",
        |t| set(t, "network.prefix", "24"),
        "`network.prefix`: the number `\"24\"` is quoted, which makes it a string; drop the \
         quotes: `prefix = 24`",
    ),
    (
        "quoted replica count",
        |t| set(t, "stack.swarm_replicas", "3"),
        "`stack.swarm_replicas`: the number `\"3\"` is quoted, which makes it a string; drop \
         the quotes: `swarm_replicas = 3`",
    ),
    (
        "one [hosts] table instead of [[hosts]]",
        |t| {
            let first = hosts(t)[0].clone();
            t.insert("hosts".into(), first);
        },
        "`hosts`: `[hosts]` is a single table; write each host as its own `[[hosts]]` (an \
         array of tables)",
    ),
    (
        "[[network]] instead of [network]",
        |t| {
            let network = t["network"].clone();
            t.insert("network".into(), Value::Array(vec![network]));
        },
        "`network`: `[[network]]` is an array of tables; write `[network]` (one table)",
    ),
    (
        "unknown platform with an escape character",
        |t| set(t, "hosts[0].platform", "deb\u{1b}[31mian"),
        "`hosts[0].platform`: unknown platform `deb\\u{1b}[31mian` (expected `debian` or \
         `rhel9`)",
    ),
    (
        "unknown nic, shown cut at 200 characters",
        |t| set(t, "hosts[1].nic", "x".repeat(300)),
        "`hosts[1].nic`: unknown nic `xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
         xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\
         xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx…` (expected `virtio`, \
         `vmxnet3`, `e1000` or `e1000e`)",
    ),
];

/// How many cases of `INVALID` came before the rules of issue 13; the
/// rest are its refused topologies.
const INVALID_BEFORE_ISSUE_13: usize = 57;

#[test]
fn malformed_topologies_are_rejected_naming_the_field() {
    assert!(INVALID.len() >= 20);
    assert!(
        INVALID.len() - INVALID_BEFORE_ISSUE_13 >= 30,
        "{}",
        INVALID.len()
    );
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
        "prefix as a word",
        |t| set(t, "network.prefix", "wide"),
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
    // The path and the OS error, each once.
    assert_eq!(
        error.to_string(),
        "cannot read `/nonexistent/topology.toml`: No such file or directory (os error 2)"
    );
}

#[test]
fn a_directory_is_a_read_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let error = Topology::load(dir.path()).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, TopologyError::Read { .. }), "{error:?}");
    assert_eq!(
        text.matches(&*dir.path().to_string_lossy()).count(),
        1,
        "{text}"
    );
    assert!(text.contains("(os error 21)"), "{text}");
}

/// serde's messages echo keys and values too; a control character in them
/// reaches the terminal escaped.
#[test]
fn parse_errors_escape_control_characters() {
    let text = MINIMAL.replace("[network]", "[network]\n\"col\\u001b[31mour\" = 1");
    let error = Topology::from_toml_str(&text).unwrap_err();
    let TopologyError::Parse { message } = &error else {
        panic!("expected a parse error, got {error:?}");
    };
    assert!(
        message.contains("unknown field `col\\u{1b}[31mour`"),
        "{message}"
    );
    assert!(!message.contains('\u{1b}'), "{message:?}");
    assert!(message.contains("line"), "{message}");
}

#[test]
fn parse_errors_cut_long_values() {
    let long = "z".repeat(500);
    let text = MINIMAL.replace("[network]", &format!("[network]\n{long} = 1"));
    let TopologyError::Parse { message } = Topology::from_toml_str(&text).unwrap_err() else {
        panic!("expected a parse error");
    };
    for line in message.lines() {
        assert!(line.chars().count() <= 201, "{line}");
    }
    assert!(message.contains('…'), "{message}");
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
                pgpool: PgpoolSpec::default(),
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

// ---------------------------------------------------------------------------
// Normalised paths cannot be bypassed
// ---------------------------------------------------------------------------

/// The system directories refused with everything inside them.
const REFUSED_TREES: &[&str] = &[
    "/etc",
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/var/lib/docker",
    "/var/lib/glusterd",
    "/boot",
    "/proc",
    "/sys",
    "/dev",
    "/run",
    "/root",
    "/home",
    "/tmp",
];

/// The ones refused only as themselves: the default archive lies inside.
const REFUSED_EXACTLY: &[&str] = &["/var/lib", "/var/lib/pgsql", "/var/lib/postgresql"];

/// What may stand before each component: `/` said in other ways.
const SEPARATORS: &[&str] = &[
    "/",
    "//",
    "/./",
    "/.//./",
    "/x/../",
    "/x/y/../../",
    "/./x/.././",
];
const ENDINGS: &[&str] = &["", "/", "/.", "//", "/x/.."];

/// `dir` with each `/` replaced by one of [`SEPARATORS`] and an ending.
fn disguised(dir: &str, seps: &[usize], ending: usize) -> String {
    let mut out = String::new();
    for (i, part) in dir.split('/').filter(|p| !p.is_empty()).enumerate() {
        out.push_str(SEPARATORS[seps[i % seps.len()] % SEPARATORS.len()]);
        out.push_str(part);
    }
    out.push_str(ENDINGS[ending % ENDINGS.len()]);
    out
}

fn refusal(field: &str, value: &str) -> Option<String> {
    let mut table = minimal();
    set(&mut table, field, value);
    match Topology::from_toml_str(&render(&table)) {
        Err(e) => Some(e.to_string()),
        Ok(_) => None,
    }
}

#[test]
fn every_disguise_of_a_system_directory_is_refused() {
    for field in [
        "shared_dir.path",
        "shared_dir.brick",
        "postgres.archive_dir",
    ] {
        for dir in REFUSED_TREES.iter().chain(REFUSED_EXACTLY) {
            for sep in 0..SEPARATORS.len() {
                for ending in 0..ENDINGS.len() {
                    let value = disguised(dir, &[sep], ending);
                    let message = refusal(field, &value)
                        .unwrap_or_else(|| panic!("`{field}` = `{value}` accepted"));
                    assert!(
                        message.ends_with(&format!("is the system directory `{dir}`")),
                        "{value}: {message}"
                    );
                }
            }
        }
    }
}

proptest! {
    #[test]
    fn disguised_paths_inside_system_trees_are_refused(
        dir in proptest::sample::select(REFUSED_TREES),
        seps in proptest::collection::vec(0..SEPARATORS.len(), 1..5),
        ending in 0..ENDINGS.len(),
        field in proptest::sample::select(&["shared_dir.path", "shared_dir.brick", "postgres.archive_dir"][..]),
        leaf in "[a-z]{1,8}",
    ) {
        let value = disguised(&format!("{dir}/{leaf}"), &seps, ending);
        let message = refusal(field, &value);
        prop_assert!(message.is_some(), "`{}` = `{}` accepted", field, value);
        let message = message.unwrap();
        prop_assert!(
            message.ends_with(&format!("is inside the system directory `{dir}`")),
            "{}: {}", value, message
        );
        prop_assert!(message.starts_with(&format!("`{field}`: ")), "{}", message);
    }

    #[test]
    fn climbing_above_the_root_is_refused_however_written(
        ups in 1usize..4,
        seps in proptest::collection::vec(0..SEPARATORS.len(), 1..4),
    ) {
        // `/a/../..` and so on: one `..` more than there are components.
        let value = format!("{}{}", disguised("/a", &seps, 0), "/..".repeat(ups + 1));
        let message = refusal("shared_dir.path", &value).unwrap();
        prop_assert!(message.contains("climbs above the root directory"), "{}: {}", value, message);
    }

    #[test]
    fn disguised_default_archive_stays_valid(
        seps in proptest::collection::vec(0..SEPARATORS.len(), 1..5),
        ending in 0..ENDINGS.len(),
    ) {
        let value = disguised("/var/lib/pgsql/archivedir", &seps, ending);
        prop_assert_eq!(refusal("postgres.archive_dir", &value), None, "{}", value);
    }
}
