//! Step transcripts on `RecordingHost`: the exact commands the install runs
//! on each platform, as snapshots, and the idempotence contract (a second run
//! against the state the first one left changes nothing).

use ke2lab::host::{Output, Rule};
use ke2lab::install::{InstallReport, install_swarm};
use ke2lab::steps::Cx;
use ke2lab::steps::StepError;
use ke2lab::topology::{Platform, Topology};

/// Steps 1-3 (this file's subject); the database steps have their own
/// transcripts in `db_transcripts.rs`.
async fn install(cx: &Cx<'_>) -> Result<InstallReport, StepError> {
    let mut r = InstallReport::default();
    install_swarm(cx, &mut r).await?;
    Ok(r)
}

use support::swarm::{TOKEN, active, fresh_hosts};

mod support;

fn topology(fixture: &str, platform: Platform) -> Topology {
    support::on_platform(fixture, platform)
}

async fn transcript_of(
    fixture: &str,
    platform: Platform,
    engine_installed: bool,
) -> (String, String) {
    let t = topology(fixture, platform);
    let rec = fresh_hosts(&t, engine_installed);
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hosts);
    let first = install(&cx).await.unwrap();
    assert!(first.changes() > 0);
    let one = rec.transcript();
    rec.clear_events();
    let second = install(&cx).await.unwrap();
    assert_eq!(
        second.changes(),
        0,
        "a second run must change nothing:\n{second}"
    );
    let two = rec.transcript();
    for t in [&one, &two] {
        assert!(
            !t.contains(TOKEN),
            "the join token leaked into the transcript"
        );
    }
    (one, two)
}

#[tokio::test]
async fn debian_install_transcript() {
    let (first, second) = transcript_of("three-node", Platform::Debian, true).await;
    insta::assert_snapshot!("debian_first_run", first);
    insta::assert_snapshot!("debian_second_run", second);
}

#[tokio::test]
async fn rhel9_install_transcript() {
    let (first, second) = transcript_of("three-node", Platform::Rhel9, false).await;
    insta::assert_snapshot!("rhel9_first_run", first);
    insta::assert_snapshot!("rhel9_second_run", second);
}

#[tokio::test]
async fn rhel9_vmxnet3_opens_the_chosen_data_path_port() {
    let (first, _) = transcript_of("three-node-vmxnet3", Platform::Rhel9, true).await;
    assert!(first.contains("--add-port=7789/udp"), "{first}");
    assert!(!first.contains("4789"), "{first}");
    assert!(first.contains("--data-path-port 7789"), "{first}");
}

#[tokio::test]
async fn a_swarm_with_another_data_path_port_is_refused_naming_the_host() {
    let t = topology("three-node-vmxnet3", Platform::Debian);
    let rec = fresh_hosts(&t, true);
    rec.rule(Rule::on(
        "ke2-server1",
        "docker info",
        vec![active(&t, "n0", 4789)],
    ));
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let e = install(&Cx::new(&t, &hosts)).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "swarm on `ke2-server1`: the swarm uses data-path port `4789` but the topology asks for `7789`; \
         the port can only be chosen at `docker swarm init` (leave the swarm to change it)"
    );
}

#[tokio::test]
async fn a_manager_that_knows_no_cluster_is_not_an_anchor() {
    let t = topology("three-node", Platform::Debian);
    // Host 1 was cut from the majority: a manager, but no cluster (Raft
    // has no leader it can reach); hosts 2 and 3 know the cluster.
    let lost = Output::ok(
        r#"{"NodeID":"n0","NodeAddr":"x","LocalNodeState":"active","ControlAvailable":true,"Error":"","RemoteManagers":[{"NodeID":"n0","Addr":"10.20.0.1:2377"}],"Nodes":0,"Managers":0,"Cluster":{"ID":"","DataPathPort":0}}"#,
    );
    let rec = fresh_hosts(&t, true);
    rec.rule(Rule::on("ke2-server1", "docker info", vec![lost.clone()]));
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let e = install(&Cx::new(&t, &hosts)).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "swarm on `ke2-server1`: the swarm manager knows no cluster (no Raft leader reachable); \
         re-run once a majority of managers is back"
    );
    // Another manager that knows it anchors; 0 reads as the default 4789.
    for i in [2, 3] {
        rec.rule(Rule::on(
            format!("ke2-server{i}"),
            "docker info",
            vec![active(&t, &format!("n{}", i - 1), 0)],
        ));
    }
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let e = install(&Cx::new(&t, &hosts))
        .await
        .map(|_| ())
        .map_err(|e| e.to_string());
    assert!(
        !matches!(&e, Err(m) if m.contains("data-path port") || m.contains("knows no cluster")),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_vmxnet3_driver_in_sysfs_warns_even_when_the_topology_says_otherwise() {
    let mut t = topology("three-node", Platform::Debian);
    t.swarm.data_path_port = ke2lab::topology::DataPathPort::Port(4789);
    let rec = fresh_hosts(&t, true);
    rec.rule(Rule::on(
        "ke2-server2",
        "readlink -f /sys/class/net/ens192/device/driver",
        vec![Output::ok("/sys/bus/pci/drivers/vmxnet3\n")],
    ));
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let report = install(&Cx::new(&t, &hosts)).await.unwrap();
    let swarm = report.steps.iter().find(|s| s.step == "swarm").unwrap();
    assert_eq!(
        swarm.warnings,
        [
            "hosts `ke2-server2` (driver vmxnet3 in sysfs; the topology says `virtio`) have vmxnet3 NICs \
          and the swarm data-path port is 4789: TCP across nodes will fail while ping works; \
          use `data_path_port = \"auto\"` or another port"
        ]
    );
    // Read before the swarm is initialised.
    let t = rec.transcript();
    let readlink = t.find("readlink -f /sys/class/net").unwrap();
    assert!(readlink < t.find("docker swarm init").unwrap(), "{t}");
}

#[tokio::test]
async fn vmxnet3_with_4789_warns_before_init() {
    let mut t = topology("three-node-vmxnet3", Platform::Debian);
    t.swarm.data_path_port = ke2lab::topology::DataPathPort::Port(4789);
    let rec = fresh_hosts(&t, true);
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let report = install(&Cx::new(&t, &hosts)).await.unwrap();
    let swarm = report.steps.iter().find(|s| s.step == "swarm").unwrap();
    assert_eq!(swarm.warnings.len(), 1);
    assert!(
        swarm.warnings[0].contains("vmxnet3"),
        "{:?}",
        swarm.warnings
    );
}

#[tokio::test]
async fn a_failing_command_names_host_command_and_stderr() {
    let t = topology("three-node", Platform::Debian);
    let rec = fresh_hosts(&t, true);
    rec.rule(Rule::on(
        "ke2-server2",
        "docker swarm join",
        vec![Output::fail(
            1,
            format!("Error response from daemon: bad token {TOKEN}"),
        )],
    ));
    let hosts = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let e = install(&Cx::new(&t, &hosts)).await.unwrap_err().to_string();
    assert_eq!(
        e,
        "command `docker swarm join --token *** --advertise-addr 10.20.0.2 10.20.0.1:2377` failed on \
         `ke2-server2` (exit 1): Error response from daemon: bad token ***"
    );
}
