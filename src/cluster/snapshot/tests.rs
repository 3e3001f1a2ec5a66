//! `verdict` on hand-built snapshots: healthy gives nothing, each kind of
//! fault its finding naming the host; the JSON round trip.

use super::*;

const HOSTS: [&str; 3] = ["ke2-server1", "ke2-server2", "ke2-server3"];

fn healthy() -> Snapshot {
    Snapshot::example()
}

/// Re-decides after a change of the view, as a snapshot would have.
fn redecide(s: &mut Snapshot) {
    s.pgpool.decision = view::decide(&s.pgpool.view);
}

#[test]
fn healthy_has_no_finding() {
    let s = healthy();
    assert_eq!(
        s.pgpool.decision,
        Decision::Healthy {
            leader: 0,
            primary: 0
        }
    );
    assert_eq!(verdict(&s), vec![]);
}

#[test]
fn each_fault_is_its_finding() {
    type Case = (
        &'static str,
        fn(&mut Snapshot),
        Option<&'static str>,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "a swarm node down",
            |s| s.swarm.as_mut().unwrap().nodes[1].status = NodeStatus::Down,
            Some("ke2-server2"),
            "host `ke2-server2`: swarm node `Down`, not Ready",
        ),
        (
            "a drained node",
            |s| s.swarm.as_mut().unwrap().nodes[2].availability = Availability::Drain,
            Some("ke2-server3"),
            "host `ke2-server3`: swarm node availability `Drain`, not Active",
        ),
        (
            "a manager unreachable",
            |s| s.swarm.as_mut().unwrap().nodes[1].manager = Some(ManagerStatus::Unreachable),
            Some("ke2-server2"),
            "host `ke2-server2`: swarm manager `Unreachable`, not reachable",
        ),
        (
            "a host outside the swarm",
            |s| {
                s.swarm.as_mut().unwrap().nodes.remove(2);
            },
            Some("ke2-server3"),
            "host `ke2-server3`: not a node of the swarm (as `ke2-server1` sees it)",
        ),
        (
            "a host that left the swarm",
            |s| s.hosts[2].swarm.as_mut().unwrap().state = LocalNodeState::Inactive,
            Some("ke2-server3"),
            "host `ke2-server3`: swarm state `inactive`, not active",
        ),
        (
            "a gluster peer disconnected",
            |s| s.hosts[0].gluster_peers.as_mut().unwrap()[1].connected = false,
            Some("ke2-server2"),
            "host `ke2-server1`: gluster peer `ke2-server2` `in_cluster`, disconnected",
        ),
        (
            "the shared directory not mounted",
            |s| {
                let m = s.hosts[1].shared_mount.as_mut().unwrap();
                m.mounted = false;
                m.fstype.clear();
            },
            Some("ke2-server2"),
            "host `ke2-server2`: `/mnt/gluster` is not a glusterfs mount",
        ),
        (
            "a brick offline",
            |s| s.gluster.as_mut().unwrap().bricks[2].online = false,
            Some("ke2-server3"),
            "volume `gvol0`: brick `ke2-server3:/var/glustervol0` offline",
        ),
        (
            "entries pending heal",
            |s| s.gluster.as_mut().unwrap().heal[0].pending = Some(4),
            Some("ke2-server1"),
            "volume `gvol0`: brick `ke2-server1:/var/glustervol0` has `4` entries pending heal",
        ),
        (
            "the volume stopped",
            |s| s.gluster.as_mut().unwrap().state = Some("Stopped".into()),
            None,
            "volume `gvol0`: `Stopped`, not started",
        ),
        (
            "a standby not streaming",
            |s| s.hosts[2].replication.as_mut().unwrap().state = "catchup".into(),
            Some("ke2-server3"),
            "host `ke2-server3`: PostgreSQL standby `catchup`, not streaming",
        ),
        (
            "the VIP on two hosts",
            |s| s.pgpool.vip_holders.push("ke2-server2".into()),
            None,
            "VIP `10.20.0.100`: held by `ke2-server1`, `ke2-server2`",
        ),
        (
            "the VIP on none",
            |s| s.pgpool.vip_holders.clear(),
            None,
            "VIP `10.20.0.100`: held by no host",
        ),
        (
            "a member the leader counts down: attach",
            |s| {
                s.pgpool.view.members[0].backends.as_mut().unwrap()[1].status_name = "down".into();
                redecide(s);
            },
            Some("ke2-server2"),
            "pgpool: the leader `ke2-server1` counts the streaming standby `ke2-server2` down",
        ),
        (
            "a stale member: resync",
            |s| {
                s.pgpool.view.members[2].backends.as_mut().unwrap()[1].status_name = "down".into();
                redecide(s);
            },
            Some("ke2-server3"),
            "pgpool: member `ke2-server3` counts `ke2-server2` down standby, the leader up standby",
        ),
        (
            "a service not converged",
            |s| {
                let sv = &mut s.stack.as_mut().unwrap().services[0];
                sv.replicas = "2/3 (max 1 per node)".into();
                sv.converged = false;
            },
            None,
            "stack `ke2`: service `ke2_nginx` at `2/3 (max 1 per node)` replicas",
        ),
        (
            "HTTPS 502 on a host",
            |s| s.stack.as_mut().unwrap().https[1].status = Some(502),
            Some("ke2-server2"),
            "host `ke2-server2`: HTTPS `/` answered `502`",
        ),
        (
            "HTTPS unanswered on a host meant to serve",
            |s| {
                let h = &mut s.stack.as_mut().unwrap().https[2];
                h.status = None;
                h.error = Some("connection refused".into());
            },
            Some("ke2-server3"),
            "host `ke2-server3`: HTTPS `/` unanswered: connection refused",
        ),
        (
            "no host publishing nginx",
            |s| {
                for h in &mut s.stack.as_mut().unwrap().https {
                    h.serves = false;
                }
            },
            None,
            "stack `ke2`: no host publishes nginx's 443",
        ),
        (
            "a probe that failed",
            |s| {
                s.errors.push(ProbeFailure {
                    host: "ke2-server3".into(),
                    probe: "docker info".into(),
                    error: "deadline of 10s passed".into(),
                })
            },
            Some("ke2-server3"),
            "host `ke2-server3`: `docker info` failed: deadline of 10s passed",
        ),
    ];
    for (what, change, host, message) in cases {
        let mut s = healthy();
        change(&mut s);
        let found = verdict(&s);
        assert!(
            found
                .iter()
                .any(|f| f.message == message && f.host.as_deref() == host),
            "{what}: want {message:?} for {host:?}, got {found:#?}"
        );
    }
}

/// In `host` mode with fewer nginx replicas than hosts, a host without an
/// nginx task has no listener: that is healthy.
#[test]
fn a_host_without_nginx_in_host_mode_need_not_answer() {
    let mut s = healthy();
    let h = &mut s.stack.as_mut().unwrap().https[2];
    h.serves = false;
    h.status = None;
    h.error = Some("connection refused".into());
    assert_eq!(verdict(&s), Vec::new());
}

#[test]
fn postgres_stopped_on_a_standby_names_that_host_everywhere() {
    // What the cluster tier's `verify` sees after PostgreSQL is stopped on
    // one standby: PostgreSQL down there, the decision waiting for it.
    let mut s = healthy();
    s.pgpool.view.pg[2] = PgState::Down("no server".into());
    s.pgpool
        .view
        .replicas
        .retain(|r| r.application_name != HOSTS[2]);
    s.hosts[2].postgres = s.pgpool.view.pg[2].clone();
    s.hosts[2].replication = None;
    redecide(&mut s);
    let found = verdict(&s);
    let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(
        messages,
        vec![
            "host `ke2-server3`: PostgreSQL down: no server",
            "pgpool: `ke2-server3` is not a streaming standby yet (PostgreSQL: Down(\"no server\"))",
        ]
    );
}

#[test]
fn a_pgpool_member_not_answering_is_named() {
    let mut s = healthy();
    s.pgpool.view.members[1].watchdog = Err("connection refused".into());
    s.pgpool.view.members[1].backends = Err("connection refused".into());
    redecide(&mut s);
    let found = verdict(&s);
    assert_eq!(found[0].host.as_deref(), Some("ke2-server2"));
    assert_eq!(
        found[0].message,
        "host `ke2-server2`: Pgpool-II does not answer: connection refused"
    );
    assert!(
        found
            .iter()
            .any(|f| f.message == "pgpool: member `ke2-server2` is not answering (not STANDBY yet)"),
        "{found:#?}"
    );
}

#[test]
fn json_round_trip() {
    let mut s = healthy();
    s.errors.push(ProbeFailure {
        host: "ke2-server2".into(),
        probe: "gluster pool list".into(),
        error: "glusterd is not running".into(),
    });
    s.pgpool.view.members[1].watchdog = Err("refused".into());
    s.hosts[1].postgres = PgState::Down("no server".into());
    s.stack = None;
    let text = serde_json::to_string_pretty(&s).unwrap();
    let back: Snapshot = serde_json::from_str(&text).unwrap();
    assert_eq!(back, s);
    // A failed probe reads as what it is.
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        v["pgpool"]["view"]["members"][1]["watchdog"]["error"],
        "refused"
    );
    assert_eq!(
        v["pgpool"]["view"]["via_vip"]["ok"]["leader_host"],
        "ke2-server1"
    );
    assert_eq!(v["hosts"][1]["postgres"]["state"], "down");
    assert_eq!(v["version"], SNAPSHOT_VERSION);
}

#[test]
fn findings_carry_the_gist_of_a_failed_command() {
    let long = "command `(as postgres) psql -X -q -At -h /var/run/postgresql -p 5432 -c 'SELECT pg_is_in_recovery()'` failed on `ke2-server3` (exit 2): psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: Connection refused\n\tIs the server running locally?";
    assert_eq!(
        brief(long),
        "psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: Connection refused"
    );
    assert_eq!(brief("no server"), "no server");
    assert_eq!(
        brief("command `gluster pool list --xml` failed on `ke2-server1` (exit 1): "),
        "exit 1, nothing on stderr"
    );
    assert_eq!(brief(&"x".repeat(300)).chars().count(), 161);
    let mut s = healthy();
    s.pgpool.view.pg[2] = PgState::Down(long.into());
    s.pgpool
        .view
        .replicas
        .retain(|r| r.application_name != HOSTS[2]);
    s.hosts[2].postgres = s.pgpool.view.pg[2].clone();
    s.hosts[2].replication = None;
    s.errors.push(ProbeFailure {
        host: "VIP 10.20.0.100".into(),
        probe: "show pool_nodes".into(),
        error: "cannot reach `10.20.0.100:9999`: XX000: failed to create a backend connection"
            .into(),
    });
    redecide(&mut s);
    let messages: Vec<String> = verdict(&s).into_iter().map(|f| f.message).collect();
    assert_eq!(
        messages,
        vec![
            "VIP `10.20.0.100`: `show pool_nodes` failed: cannot reach `10.20.0.100:9999`: XX000: failed to create a backend connection".to_string(),
            "host `ke2-server3`: PostgreSQL down: psql: error: connection to server on socket \"/var/run/postgresql/.s.PGSQL.5432\" failed: Connection refused".to_string(),
            "pgpool: `ke2-server3` is not a streaming standby yet (PostgreSQL: Down(\"psql: error: connection to server on socket \\\"/var/run/postgresql/.s.PGSQL.5432\\\" failed: Connection refused\"))".to_string(),
        ]
    );
}
