//! Steps 1-3 (Docker engine, firewall, swarm) on fresh hosts.

use ke2lab::host::{Output, Recorder, Rule};
use ke2lab::topology::Topology;

pub const ENGINE_UP: &str =
    r#"{"Client":{"Version":"26.1.5+dfsg1"},"Server":{"Version":"26.1.5+dfsg1"}}"#;
pub const TOKEN: &str = "SWMTKN-1-0123456789abcdefsecret";

pub fn inactive() -> Output {
    Output::ok(
        r#"{"NodeID":"","NodeAddr":"","LocalNodeState":"inactive","ControlAvailable":false,"Error":"","RemoteManagers":null}"#,
    )
}

/// `docker info` of an active manager of the topology's swarm.
pub fn active(t: &Topology, node: &str, port: u16) -> Output {
    let n = t.hosts.len();
    Output::ok(format!(
        r#"{{"NodeID":"{node}","NodeAddr":"x","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[{{"NodeID":"n0","Addr":"{}:2377"}}],"Nodes":{n},"Managers":{n},"Cluster":{{"ID":"cluster1","DataPathPort":{port}}}}}"#,
        t.hosts[0].address
    ))
}

pub fn node_ls(t: &Topology) -> Output {
    let lines: Vec<String> = t
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            format!(
                r#"{{"Availability":"Active","Hostname":"{}","ID":"n{i}","ManagerStatus":"{}","Self":{},"Status":"Ready","EngineVersion":"26.1.5"}}"#,
                h.name,
                if i == 0 { "Leader" } else { "Reachable" },
                i == 0
            )
        })
        .collect();
    Output::ok(lines.join("\n"))
}

/// `ip -j addr show` of a server whose cluster address is on `ens192`.
pub fn links(address: std::net::Ipv4Addr, prefix: u8) -> Output {
    Output::ok(format!(
        r#"[{{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"operstate":"UNKNOWN","addr_info":[{{"family":"inet","local":"127.0.0.1","prefixlen":8}}]}},{{"ifindex":2,"ifname":"ens192","flags":["BROADCAST","MULTICAST","UP","LOWER_UP"],"operstate":"UP","addr_info":[{{"family":"inet","local":"{address}","prefixlen":{prefix}}}]}}]"#
    ))
}

/// Hosts as steps 1-3 find them before the install, becoming a swarm as
/// the steps act on them. Without `engine_installed` the first `docker
/// version` finds no Docker.
pub fn fresh_hosts(t: &Topology, engine_installed: bool) -> Recorder {
    let rec = Recorder::new();
    let port = t.data_path_port();
    let all_ports = format!("2377/tcp 7946/tcp 7946/udp {port}/udp");
    for (i, h) in t.hosts.iter().enumerate() {
        let n = &h.name;
        let version = if engine_installed {
            vec![Output::ok(ENGINE_UP)]
        } else {
            vec![
                Output::fail(127, "sh: 1: docker: not found"),
                Output::ok(ENGINE_UP),
            ]
        };
        rec.rule(Rule::on(n, "docker version", version));
        rec.rule(Rule::on(
            n,
            "docker compose version",
            vec![Output::ok("2.26.1\n")],
        ));
        rec.rule(Rule::on(
            n,
            "firewall-cmd --permanent --list-ports",
            vec![Output::ok("\n"), Output::ok(all_ports.clone())],
        ));
        rec.rule(Rule::on(
            n,
            "docker info",
            vec![inactive(), active(t, &format!("n{i}"), port)],
        ));
        rec.rule(Rule::on(
            n,
            "ip -j addr show",
            vec![links(h.address, t.network.prefix)],
        ));
    }
    // A real server's NIC: a PCI device with its driver (virtio here; a
    // test may answer vmxnet3).
    rec.rule(Rule::any(
        "readlink -f /sys/class/net/ens192/device/driver",
        vec![Output::ok("/sys/bus/pci/drivers/virtio-pci\n")],
    ));
    rec.rule(Rule::any(
        "docker swarm join-token",
        vec![Output::ok(format!("{TOKEN}\n"))],
    ));
    rec.rule(Rule::any("docker node ls", vec![node_ls(t)]));
    rec
}
