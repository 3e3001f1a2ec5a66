//! The deploy step against recording hosts: without IPVS the stack file is
//! adapted (warned, every change listed) and deployed; a second run with
//! the same stack and running services changes nothing; hosts that all have
//! IPVS get the stack file unmodified. Transcripts for `debian` and `rhel9`.

use std::sync::Arc;

use ke2lab::host::{Host, Output, Recorder, Rule};
use ke2lab::render::stack::{adapt_without_ipvs, normalise};
use ke2lab::steps::deploy::{DEPLOYED_FILE, Deploy};
use ke2lab::steps::stack::StackOptions;
use ke2lab::steps::{self, Cx};
use ke2lab::topology::{Platform, Topology};

const COMPOSE_CONFIG: &str = include_str!("fixtures/stack/compose-config.yml");
const SWARM_DIR: &str = "/opt/ke2-docker/ke2/cluster/swarm";
const SERVICES: &str = r#"{"ID":"a1","Image":"nginx:x","Mode":"replicated","Name":"ke2_nginx","Ports":"","Replicas":"3/3 (max 1 per node)"}
"#;

fn topology(platform: Platform) -> Topology {
    let mut t = Topology::fixture("three-node").unwrap().topology;
    for h in &mut t.hosts {
        h.platform = platform;
    }
    t
}

/// A manager with the stack file; IPVS as given on every host; the stack's
/// services appear once it was deployed.
fn limits(hard_nofile: u64) -> String {
    format!(
        "Limit                     Soft Limit           Hard Limit           Units     \n\
         Max processes             96365                96365                processes \n\
         Max open files            1024                 {hard_nofile:<20} files     \n"
    )
}

fn hosts(rec: &Recorder, ipvs: bool) {
    hosts_with_nofile(rec, ipvs, 1_048_576);
}

fn hosts_with_nofile(rec: &Recorder, ipvs: bool, hard_nofile: u64) {
    rec.rule(Rule::any(
        "cat /proc/self/limits",
        vec![Output::ok(limits(hard_nofile))],
    ));
    let stack = normalise(COMPOSE_CONFIG).unwrap();
    rec.file(
        "ke2-server1",
        &format!("{SWARM_DIR}/docker-swarm.yml"),
        stack,
    );
    let answer = if ipvs {
        Output::ok("")
    } else {
        Output::fail(1, "")
    };
    rec.rule(Rule::any("sh -c 'test -e /proc/net/ip_vs", vec![answer]));
    rec.rule(Rule::on(
        "ke2-server1",
        "docker service ls",
        vec![Output::ok("")],
    ));
    rec.rule(
        Rule::on(
            "ke2-server1",
            "docker service ls",
            vec![Output::ok(SERVICES)],
        )
        .when("deployed"),
    );
    rec.rule(Rule::on("ke2-server1", "docker stack deploy", vec![Output::ok("")]).sets("deployed"));
}

async fn twice(platform: Platform, ipvs: bool) -> (String, Vec<String>, usize, Recorder) {
    let t = topology(platform);
    let rec = Recorder::new();
    hosts(&rec, ipvs);
    let hs: Vec<Arc<dyn Host>> = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hs);
    let step = Deploy {
        opts: StackOptions::from_topology(&t, "/opt/ke2-docker"),
    };
    let first = steps::run(&step, &cx).await.unwrap();
    assert_eq!(first.changes.len(), 1, "{:?}", first.changes);
    let transcript = rec.transcript();
    let second = steps::run(&step, &cx).await.unwrap();
    (transcript, first.warnings, second.changes.len(), rec)
}

#[tokio::test]
async fn without_ipvs_the_stack_is_adapted_warned_and_deployed_once() {
    for platform in [Platform::Debian, Platform::Rhel9] {
        let (transcript, warnings, again, rec) = twice(platform, false).await;
        assert_eq!(again, 0, "a second run must change nothing");
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0]
                .starts_with("no IPVS in the kernel of ke2-server1, ke2-server2, ke2-server3"),
            "{warnings:?}"
        );
        let (adapted, changes) = adapt_without_ipvs(&normalise(COMPOSE_CONFIG).unwrap()).unwrap();
        for c in &changes {
            assert!(warnings[0].contains(c.as_str()), "`{c}` not reported");
        }
        let deployed = rec
            .file_on("ke2-server1", &format!("{SWARM_DIR}/{DEPLOYED_FILE}"))
            .unwrap();
        assert_eq!(String::from_utf8(deployed).unwrap(), adapted);
        insta::assert_snapshot!(format!("deploy_without_ipvs_{platform:?}"), transcript);
    }
}

#[tokio::test]
async fn with_ipvs_the_stack_file_is_deployed_unmodified() {
    let (_, warnings, again, rec) = twice(Platform::Debian, true).await;
    assert!(warnings.is_empty(), "{warnings:?}");
    assert_eq!(again, 0);
    let deployed = rec
        .file_on("ke2-server1", &format!("{SWARM_DIR}/{DEPLOYED_FILE}"))
        .unwrap();
    assert_eq!(
        String::from_utf8(deployed).unwrap(),
        normalise(COMPOSE_CONFIG).unwrap()
    );
}

#[tokio::test]
async fn ulimits_above_the_hosts_hard_limit_are_lowered_and_warned() {
    let t = topology(Platform::Debian);
    let rec = Recorder::new();
    hosts_with_nofile(&rec, true, 20000);
    let hs: Vec<Arc<dyn Host>> = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hs);
    let step = Deploy {
        opts: StackOptions::from_topology(&t, "/opt/ke2-docker"),
    };
    let first = steps::run(&step, &cx).await.unwrap();
    let (capped, changes) =
        ke2lab::render::stack::cap_ulimit(&normalise(COMPOSE_CONFIG).unwrap(), "nofile", 20000)
            .unwrap();
    assert!(!changes.is_empty(), "the fixture asks for nofile 65535");
    assert_eq!(first.warnings.len(), 1, "{:?}", first.warnings);
    assert!(
        first.warnings[0].starts_with("the hosts' hard open-file limit is 20000"),
        "{:?}",
        first.warnings
    );
    let deployed = rec
        .file_on("ke2-server1", &format!("{SWARM_DIR}/{DEPLOYED_FILE}"))
        .unwrap();
    assert_eq!(String::from_utf8(deployed).unwrap(), capped);
    let second = steps::run(&step, &cx).await.unwrap();
    assert!(second.changes.is_empty());
}

#[tokio::test]
async fn no_stack_file_is_an_error_naming_host_and_path() {
    let t = topology(Platform::Debian);
    let rec = Recorder::new();
    let hs: Vec<Arc<dyn Host>> = rec.hosts(t.hosts.iter().map(|h| h.name.as_str()));
    let cx = Cx::new(&t, &hs);
    let step = Deploy {
        opts: StackOptions::from_topology(&t, "/opt/ke2-docker"),
    };
    let e = steps::run(&step, &cx).await.unwrap_err().to_string();
    assert_eq!(
        e,
        format!(
            "deploy on `ke2-server1`: no `{SWARM_DIR}/docker-swarm.yml`: the stack set-up must run first"
        )
    );
}
