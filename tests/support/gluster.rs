//! Step 4 (glusterd, the pool, the volume, the mounts) and the
//! `SHARED_DIR` layout on hosts that finished steps 1-3. The `--xml`
//! answers are generated for the topology's hosts, volume, brick and
//! options, in the shape Gluster 11 prints (see `tests/fixtures/gluster/`).

use ke2lab::host::{Output, Recorder, Rule};
use ke2lab::topology::Topology;

pub const MOUNTS: &str = "fuse-overlayfs / fuse.fuse-overlayfs rw 0 0\n";

/// A peer's uuid, stable per host index.
fn uuid(i: usize) -> String {
    format!("{:08x}-6722-4be4-a433-{:012x}", 0x4c5b_de42 + i, i)
}

fn cli(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<cliOutput>\n  <opRet>0</opRet>\n  <opErrno>0</opErrno>\n  <opErrstr/>\n{body}</cliOutput>\n"
    )
}

/// `gluster pool list --xml` on the first host before any probe.
pub fn pool_alone() -> Output {
    Output::ok(cli(&format!(
        "  <peerStatus>\n    <peer>\n      <uuid>{}</uuid>\n      <hostname>localhost</hostname>\n      <connected>1</connected>\n    </peer>\n  </peerStatus>\n",
        uuid(0)
    )))
}

/// `gluster pool list --xml` on the first host with every peer in.
pub fn pool_connected(t: &Topology) -> Output {
    let mut peers = String::new();
    for (i, h) in t.hosts.iter().enumerate().skip(1) {
        peers.push_str(&format!(
            "    <peer>\n      <uuid>{}</uuid>\n      <hostname>{n}</hostname>\n      <hostnames>\n        <hostname>{n}</hostname>\n      </hostnames>\n      <connected>1</connected>\n      <state>3</state>\n      <stateStr>Peer in Cluster</stateStr>\n    </peer>\n",
            uuid(i),
            n = h.name
        ));
    }
    peers.push_str(&format!(
        "    <peer>\n      <uuid>{}</uuid>\n      <hostname>localhost</hostname>\n      <connected>1</connected>\n    </peer>\n",
        uuid(0)
    ));
    Output::ok(cli(&format!("  <peerStatus>\n{peers}  </peerStatus>\n")))
}

/// `gluster volume info <v> --xml` of a volume that does not exist.
pub fn volume_absent() -> Output {
    Output::ok(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\n<cliOutput>\n  <opRet>-1</opRet>\n  <opErrno>30806</opErrno>\n  <opErrstr>Volume does not exist</opErrstr>\n  <volInfo>\n    <volumes>\n      <count>0</count>\n    </volumes>\n  </volInfo>\n</cliOutput>\n",
    )
}

/// `gluster volume info <v> --xml` of the topology's replica volume,
/// started, with the topology's options.
pub fn volume_started(t: &Topology) -> Output {
    let spec = &t.shared_dir;
    let n = t.hosts.len();
    let bricks: String = t
        .hosts
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let b = format!("{}:{}", h.name, spec.brick);
            format!(
                "          <brick uuid=\"{u}\">{b}<name>{b}</name><hostUuid>{u}</hostUuid><isArbiter>0</isArbiter></brick>\n",
                u = uuid(i)
            )
        })
        .collect();
    let mut options = vec![
        ("cluster.granular-entry-heal".to_string(), "on".to_string()),
        ("transport.address-family".into(), "inet".into()),
        ("nfs.disable".into(), "on".into()),
    ];
    if let Some(s) = spec.ping_timeout {
        options.insert(0, ("network.ping-timeout".into(), s.to_string()));
    }
    let opts: String = options
        .iter()
        .map(|(k, v)| {
            format!(
                "          <option>\n            <name>{k}</name>\n            <value>{v}</value>\n          </option>\n"
            )
        })
        .collect();
    Output::ok(cli(&format!(
        "  <volInfo>\n    <volumes>\n      <volume>\n        <name>{v}</name>\n        <id>2fb5c3a3-cbed-44ee-87c7-027340948c74</id>\n        <status>1</status>\n        <statusStr>Started</statusStr>\n        <snapshotCount>0</snapshotCount>\n        <brickCount>{n}</brickCount>\n        <distCount>1</distCount>\n        <replicaCount>{n}</replicaCount>\n        <arbiterCount>0</arbiterCount>\n        <disperseCount>0</disperseCount>\n        <redundancyCount>0</redundancyCount>\n        <type>2</type>\n        <typeStr>Replicate</typeStr>\n        <transport>0</transport>\n        <bricks>\n{bricks}        </bricks>\n        <optCount>{}</optCount>\n        <options>\n{opts}        </options>\n      </volume>\n      <count>1</count>\n    </volumes>\n  </volInfo>\n",
        options.len(),
        v = spec.volume,
    )))
}

/// `gluster volume status <v> --xml` with every brick and self-heal daemon
/// online.
pub fn status_started(t: &Topology) -> Output {
    let spec = &t.shared_dir;
    let mut nodes = String::new();
    let node = |host: &str, path: &str, i: usize, port: String| {
        format!(
            "        <node>\n          <hostname>{host}</hostname>\n          <path>{path}</path>\n          <peerid>{}</peerid>\n          <status>1</status>\n          <port>{port}</port>\n          <ports>\n            <tcp>{port}</tcp>\n            <rdma>N/A</rdma>\n          </ports>\n          <pid>{}</pid>\n        </node>\n",
            uuid(i),
            400 + i
        )
    };
    for (i, h) in t.hosts.iter().enumerate() {
        nodes.push_str(&node(&h.name, &spec.brick, i, (50_000 + i).to_string()));
    }
    for (i, h) in t.hosts.iter().enumerate() {
        let path = if i == 0 { "localhost" } else { h.name.as_str() };
        nodes.push_str(&node("Self-heal Daemon", path, i, "N/A".into()));
    }
    Output::ok(cli(&format!(
        "  <volStatus>\n    <volumes>\n      <volume>\n        <volName>{}</volName>\n        <nodeCount>{}</nodeCount>\n{nodes}        <tasks/>\n      </volume>\n    </volumes>\n  </volStatus>\n",
        spec.volume,
        2 * t.hosts.len()
    )))
}

/// The `/proc/mounts` line of the mounted volume.
pub fn gluster_mount(t: &Topology) -> String {
    format!(
        "localhost:/{} {} fuse.glusterfs rw,relatime 0 0\n",
        t.shared_dir.volume, t.shared_dir.path
    )
}

/// Every host but the first sees the whole pool connected whenever asked
/// (it is asked only once the first host's probes are done: the create
/// waits until every host sees every peer).
pub fn others_connected(t: &Topology, rec: &Recorder) {
    for h in &t.hosts[1..] {
        rec.rule(Rule::on(
            &h.name,
            "gluster pool list --xml",
            vec![pool_connected(t)],
        ));
    }
}

/// The first host's view of pool and volume: `pool` and `info` answer in
/// turn (the last repeats).
pub fn first_host_view(t: &Topology, rec: &Recorder, pool: Vec<Output>, info: Vec<Output>) {
    let first = &t.hosts[0].name;
    let v = &t.shared_dir.volume;
    rec.rule(Rule::on(first, "gluster pool list --xml", pool));
    others_connected(t, rec);
    rec.rule(Rule::on(
        first,
        format!("gluster volume info {v} --xml"),
        info,
    ));
    rec.rule(Rule::on(
        first,
        format!("gluster volume status {v} --xml"),
        vec![status_started(t)],
    ));
}

/// Hosts that finished steps 1-3 and become a Gluster cluster as the steps
/// act on them. With `installed`, glusterfs-server is already there (the
/// lab image); otherwise the first probe finds nothing.
pub fn fresh_hosts(t: &Topology, installed: bool) -> Recorder {
    let rec = Recorder::new();
    for (i, h) in t.hosts.iter().enumerate() {
        let n = &h.name;
        let version = if installed {
            vec![Output::ok("glusterfs 11.1\n")]
        } else {
            vec![
                Output::fail(127, "sh: 1: glusterd: not found"),
                Output::ok("glusterfs 11.1\n"),
            ]
        };
        rec.rule(Rule::on(n, "glusterd --version", version));
        rec.rule(Rule::on(
            n,
            "pgrep -x glusterd",
            vec![Output::fail(1, ""), Output::ok(format!("{}\n", 400 + i))],
        ));
        rec.rule(Rule::on(
            n,
            "firewall-cmd --permanent --list-services",
            vec![
                Output::ok("cockpit dhcpv6-client ssh\n"),
                Output::ok("cockpit dhcpv6-client glusterfs ssh\n"),
            ],
        ));
        rec.rule(Rule::on(
            n,
            "cat /proc/mounts",
            vec![
                Output::ok(MOUNTS),
                Output::ok(format!("{MOUNTS}{}", gluster_mount(t))),
            ],
        ));
        rec.file(n, "/etc/fstab", "# UNCONFIGURED FSTAB FOR BASE SYSTEM\n");
    }
    first_host_view(
        t,
        &rec,
        vec![pool_alone(), pool_connected(t)],
        vec![volume_absent(), volume_started(t)],
    );
    layout_absent(t, &rec);
    rec
}

/// The stack's directories, absent until `mkdir -p` made them on the host
/// that must have them (the layout step makes a host's directories in one
/// command, in layout order).
pub fn layout_absent(t: &Topology, rec: &Recorder) {
    let mut per_host: Vec<Vec<String>> = vec![Vec::new(); t.hosts.len()];
    for (dir, hosts) in ke2lab::steps::shared_dir::layout(t) {
        for i in hosts {
            per_host[i].push(dir.clone());
        }
    }
    for (i, dirs) in per_host.iter().enumerate() {
        let Some(first) = dirs.first() else { continue };
        let n = &t.hosts[i].name;
        let flag = "layout made";
        for dir in dirs {
            rec.rule(Rule::on(
                n,
                format!("test -d {dir}"),
                vec![Output::fail(1, "")],
            ));
            rec.rule(Rule::on(n, format!("test -d {dir}"), vec![Output::ok("")]).when(flag));
        }
        rec.rule(Rule::on(n, format!("mkdir -p {first}"), vec![Output::ok("")]).sets(flag));
    }
}
