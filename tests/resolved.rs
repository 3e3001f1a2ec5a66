//! `ke2lab check`'s explanation (`cluster::resolved`): snapshots of the
//! table and the JSON for the shipped fixtures and larger clusters, the
//! tolerance figures as a property of the host count, and the per-host port
//! list checked against what the firewall steps open in the recorded rhel9
//! install transcripts (one source of firewall ports).

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use ke2lab::cluster::resolved::Resolved;
use ke2lab::steps::firewall::{self, Firewall};
use ke2lab::topology::{
    DataPathPort, HostSpec, NginxPortMode, Nic, Platform, SharedDirKind, Topology,
};
use proptest::prelude::*;

fn fixture(name: &str) -> Topology {
    Topology::fixture(name).unwrap().topology
}

/// The document's example grown to `n` hosts (`ke2-server1..n` =
/// `10.20.0.1..n`), validated.
fn grown(n: usize) -> Topology {
    let mut t = fixture("three-node");
    t.hosts = (1..=n)
        .map(|i| HostSpec {
            name: format!("ke2-server{i}"),
            address: Ipv4Addr::new(10, 20, 0, i as u8),
            platform: Platform::Debian,
            nic: Nic::Virtio,
            interface: None,
        })
        .collect();
    t
}

fn resolved(t: &Topology) -> Resolved {
    let warnings = t.validate().expect("the test topology is valid");
    Resolved::of_validated(&ke2lab::topology::Validated {
        topology: t.clone(),
        warnings,
    })
}

fn snapshot(name: &str, t: &Topology) {
    let r = resolved(t);
    insta::assert_snapshot!(format!("{name}_table"), r.to_string());
    insta::assert_snapshot!(format!("{name}_json"), r.to_json());
}

#[test]
fn three_node() {
    snapshot("three_node", &fixture("three-node"));
}

#[test]
fn three_node_vmxnet3() {
    snapshot("three_node_vmxnet3", &fixture("three-node-vmxnet3"));
}

#[test]
fn generated_credentials() {
    snapshot("generated_credentials", &fixture("generated-credentials"));
}

/// An even count: rhel9 hosts (firewalld, so the steps open the ports),
/// synchronous replication, nginx in host mode, an explicit data-path port
/// and an interface override.
#[test]
fn four_hosts_rhel9_synchronous() {
    let mut t = grown(4);
    for h in &mut t.hosts {
        h.platform = Platform::Rhel9;
    }
    t.hosts[2].interface = Some("ens192".into());
    t.postgres.synchronous = true;
    t.stack.nginx_port_mode = NginxPortMode::Host;
    t.swarm.data_path_port = DataPathPort::Port(4790);
    snapshot("four_hosts_rhel9_synchronous", &t);
}

/// Five hosts on an existing file server, one with a vmxnet3 NIC, moved
/// ports and a log directory of its own.
#[test]
fn five_hosts_existing_shared_dir() {
    let mut t = grown(5);
    t.hosts[3].nic = Nic::Vmxnet3;
    t.hosts[4].platform = Platform::Rhel9;
    t.shared_dir.kind = SharedDirKind::Existing;
    t.shared_dir.path = "/srv/kompira".into();
    t.shared_dir.ping_timeout = None;
    t.ports.postgres = 5433;
    t.ports.pgpool = 19999;
    t.stack.swarm_replicas = 5;
    t.stack.log_dir = Some("/var/log/kompira".into());
    snapshot("five_hosts_existing_shared_dir", &t);
}

/// The ports the recorded rhel9 install opens, per host, from its
/// transcript snapshots: `--add-port=` specs and `--add-service=` names.
fn opened_in_transcripts() -> BTreeMap<String, BTreeSet<String>> {
    let mut opened: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for snap in [
        include_str!("snapshots/transcripts__rhel9_first_run.snap"),
        include_str!("snapshots/gluster_transcripts__rhel9_first_run.snap"),
        include_str!("snapshots/db_transcripts__rhel9_db_first_run.snap"),
    ] {
        for line in snap.lines() {
            let Some((host, cmd)) = line
                .strip_prefix('[')
                .and_then(|l| l.split_once("] $ firewall-cmd --permanent --add-"))
            else {
                continue;
            };
            opened
                .entry(host.to_string())
                .or_default()
                .insert(cmd.to_string());
        }
    }
    opened
}

/// The explanation's managed ports are exactly what the install opens: the
/// same topology as the transcripts (the document's example on rhel9), the
/// ports each step opens, and the services they stand for.
#[test]
fn managed_ports_are_what_the_install_opens() {
    let mut t = fixture("three-node");
    for h in &mut t.hosts {
        h.platform = Platform::Rhel9;
    }
    let r = resolved(&t);
    let opened = opened_in_transcripts();
    assert_eq!(opened.len(), 3, "{opened:?}");
    let services: BTreeMap<&str, Vec<&str>> = firewall::firewalls(&t)
        .iter()
        .map(|fw| (fw.purpose, fw.services.clone()))
        .collect();
    for host in &r.firewall {
        let mut explained = BTreeSet::new();
        for p in &host.ports {
            let Some(step) = p.opened_by else { continue };
            match services.get(step) {
                Some(s) if !s.is_empty() => {
                    explained.extend(s.iter().map(|s| format!("service={s}")));
                }
                _ => {
                    explained.insert(format!("port={}/{}", p.port, p.proto));
                }
            }
        }
        assert_eq!(
            Some(&explained),
            opened.get(&host.host),
            "host `{}`",
            host.host
        );
    }
}

/// Gluster's ports that the explanation lists are ports the topology's
/// validation keeps clear of services, so both name the same ports.
#[test]
fn gluster_ports_are_the_ones_validation_reserves() {
    let t = fixture("three-node");
    let gluster = Firewall::for_gluster();
    for o in gluster.openings(&t) {
        let port: u16 = o.port.port.parse().unwrap();
        let mut bad = t.clone();
        bad.ports.pcp = port;
        let e = bad.validate().unwrap_err();
        assert_eq!(e.field(), Some("ports.pcp"), "{e}");
        assert!(
            e.to_string().contains("Gluster") || e.to_string().contains("glusterd"),
            "{e}"
        );
    }
}

/// Every firewalld service a step opens is explained port by port.
#[test]
fn every_opened_service_is_explained() {
    let t = fixture("three-node");
    for fw in firewall::firewalls(&t) {
        for s in &fw.services {
            assert!(
                !firewall::service_openings(s, &t).is_empty(),
                "`{}` opens the service `{s}`, which `service_openings` does not describe",
                fw.purpose
            );
        }
    }
}

#[test]
fn bad_topologies_still_fail_before_resolving() {
    let mut t = fixture("three-node");
    t.ports.pgpool = 2377;
    let e = t.validate().unwrap_err();
    assert_eq!(e.field(), Some("ports.pgpool"));
}

/// Ports from which a topology's five service ports and data-path port are
/// drawn: clear of the fixed ports and of Gluster's brick range.
const USABLE_PORTS: &[u16] = &[
    1024, 1025, 3000, 4789, 5432, 5433, 6000, 7789, 8000, 9000, 9694, 9898, 9999, 10000, 20000,
    30000, 40000, 61000, 65535,
];

fn any_topology() -> impl Strategy<Value = Topology> {
    (
        3usize..=40,
        proptest::collection::vec(proptest::sample::select(Platform::ALL), 40),
        proptest::collection::vec(proptest::sample::select(Nic::ALL), 40),
        proptest::sample::subsequence(USABLE_PORTS.to_vec(), 6).prop_shuffle(),
        any::<bool>(),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|(n, platforms, nics, ports, synchronous, existing, auto)| {
            let mut t = fixture("three-node");
            t.network.vip = Ipv4Addr::new(10, 20, 0, 200);
            t.hosts = (0..n)
                .map(|i| HostSpec {
                    name: format!("node-{i}"),
                    address: Ipv4Addr::new(10, 20, 0, i as u8 + 1),
                    platform: platforms[i],
                    nic: nics[i],
                    interface: None,
                })
                .collect();
            t.ports.postgres = ports[0];
            t.ports.pgpool = ports[1];
            t.ports.pcp = ports[2];
            t.ports.watchdog = ports[3];
            t.ports.heartbeat = ports[4];
            t.swarm.data_path_port = if auto {
                DataPathPort::Auto
            } else {
                DataPathPort::Port(ports[5])
            };
            t.postgres.synchronous = synchronous;
            if existing {
                t.shared_dir.kind = SharedDirKind::Existing;
            }
            t
        })
}

proptest! {
    #[test]
    fn tolerances_follow_from_the_host_count(t in any_topology()) {
        // `auto` may land on a drawn port; such a topology is refused.
        prop_assume!(t.validate().is_ok());
        let n = t.hosts.len();
        let r = Resolved::of(&t);
        let q = &r.quorums;
        for quorum in q.all() {
            prop_assert_eq!(quorum.needed + quorum.tolerates, quorum.members, "{:?}", quorum);
        }
        prop_assert_eq!(q.swarm_raft.members, n);
        prop_assert_eq!(q.swarm_raft.tolerates, (n - 1) / 2);
        prop_assert_eq!(q.pgpool_watchdog.members, n);
        prop_assert_eq!(q.pgpool_watchdog.tolerates, (n - 1) / 2);
        match &q.gluster_client {
            Some(g) => {
                prop_assert_eq!(t.shared_dir.kind, SharedDirKind::Gluster);
                prop_assert_eq!(g.members, n);
                prop_assert_eq!(g.tolerates, (n - 1) / 2);
                prop_assert_eq!(g.tolerates_if_first_up, (n % 2 == 0).then_some(n / 2));
                prop_assert_eq!(r.shared_dir.replica, Some(n));
            }
            None => {
                prop_assert_eq!(t.shared_dir.kind, SharedDirKind::Existing);
                prop_assert_eq!(r.shared_dir.replica, None);
            }
        }
        let pg = &q.postgres_commit;
        prop_assert_eq!(pg.members, n - 1);
        prop_assert_eq!(pg.tolerates, if t.postgres.synchronous { n - 2 } else { n - 1 });
    }

    #[test]
    fn every_host_lists_every_configured_port_once(t in any_topology()) {
        prop_assume!(t.validate().is_ok());
        let r = Resolved::of(&t);
        prop_assert_eq!(r.firewall.len(), t.hosts.len());
        let p = &t.ports;
        let mut want = vec![
            format!("{}/tcp", p.postgres),
            format!("{}/tcp", p.pgpool),
            format!("{}/tcp", p.pcp),
            format!("{}/tcp", p.watchdog),
            format!("{}/udp", p.heartbeat),
            format!("{}/udp", t.data_path_port()),
            "2377/tcp".into(),
            "7946/tcp".into(),
            "7946/udp".into(),
            "22/tcp".into(),
            "443/tcp".into(),
        ];
        if t.shared_dir.kind == SharedDirKind::Gluster {
            want.extend(["24007/tcp".into(), "24008/tcp".into(), "49152/tcp".into()]);
        }
        for (host, spec) in r.firewall.iter().zip(&t.hosts) {
            let listed: Vec<String> =
                host.ports.iter().map(|p| format!("{}/{}", p.port, p.proto)).collect();
            let unique: BTreeSet<&String> = listed.iter().collect();
            prop_assert_eq!(unique.len(), listed.len(), "duplicates on `{}`: {:?}", host.host, listed);
            for w in &want {
                prop_assert!(listed.contains(w), "`{}` lacks `{}`: {:?}", host.host, w, listed);
            }
            prop_assert_eq!(host.firewalld, spec.platform.has_firewalld());
            // Only a firewalld host has ports that a step opens.
            prop_assert_eq!(
                host.ports.iter().any(|p| p.opened_by.is_some()),
                spec.platform.has_firewalld()
            );
        }
    }
}
